"""The HTTP service over an export (`seqrec serve`): request models, scoring backends, exact and
approximate top-k, the micro-batcher, the user-history store, metrics, and the FastAPI app.

Layer: above artifacts (it loads exports, never specs or run folders), below cli."""
