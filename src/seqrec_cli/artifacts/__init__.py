"""Export format: safetensors weights + JSON, with a sha256 manifest. No pickle anywhere."""

from seqrec_cli.artifacts.recommender import Recommender

__all__ = ["Recommender"]
