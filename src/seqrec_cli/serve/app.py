"""The FastAPI app of `seqrec serve`. Routes:

  POST /recommend, POST /recommend/batch      top-k for histories given in the request
  POST /users/{user_id}/events                append events to the user's stored history
  GET  /users/{user_id}/recommendations?k=    top-k from the stored history
  GET  /healthz /readyz /metrics /model       liveness, readiness, Prometheus text, model card
  POST /admin/reload                          swap to a (new) export; refused ones leave the old serving

Bad input is a 4xx with a reason, never a 5xx: FastAPI answers malformed JSON and wrong types with
422; the checks here add k beyond the catalogue, too-long histories and mismatched times.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi import Query as Param
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from seqrec_cli.errors import UserError
from seqrec_cli.serve.batcher import MicroBatcher
from seqrec_cli.serve.engine import Answer, Query, ServedModel
from seqrec_cli.serve.memory import HeapTrimmer
from seqrec_cli.serve.metrics import ServeMetrics
from seqrec_cli.serve.schemas import (
    BatchRecommendRequest,
    BatchRecommendResponse,
    Event,
    EventsRequest,
    EventsResponse,
    RecommendRequest,
    RecommendResponse,
    ReloadRequest,
    UserRecommendResponse,
)
from seqrec_cli.serve.store import HistoryStore, StoredEvent

TOKEN_ENV = "SEQREC_ADMIN_TOKEN"
LOCAL_HOSTS = {"127.0.0.1", "::1", "localhost"}


@dataclass(frozen=True)
class ServeConfig:
    export: Path
    backend: str = "torch"
    threads: int | None = None
    max_batch: int = 32
    max_wait_ms: float = 0.0
    max_history: int = 2000  # longest history a request may send (items); longer is a 422
    use_ann: bool = True
    trim_interval_s: float = 1.0  # free heap pages go back to the system this often (serve/memory.py)


class Problem(Exception):
    """A request we answer with 422 and this reason."""


class State:
    def __init__(self, config: ServeConfig, model: ServedModel, store: HistoryStore):
        self.config = config
        self.model = model
        self.store = store
        self.metrics = ServeMetrics.create()
        self.reload_lock = threading.Lock()
        self.heap = HeapTrimmer(config.trim_interval_s)
        self.batcher = MicroBatcher(
            lambda: self.model,
            config.max_batch,
            config.max_wait_ms,
            self.metrics.batch_size.observe,
            self.heap.maybe_trim,
        )


def _query(body: RecommendRequest, limit: int) -> Query:
    if len(body.history) > limit:
        raise Problem(
            f"history has {len(body.history)} items; this service accepts at most {limit} "
            "(--max-history); send the most recent ones"
        )
    if body.times is not None and len(body.times) != len(body.history):
        raise Problem(f"times has {len(body.times)} entries for {len(body.history)} history items")
    return Query(
        [str(h) for h in body.history],
        body.times,
        body.k,
        body.exclude_history,
        [str(e) for e in body.exclude],
    )


def _response(answer: Answer, model: ServedModel, cls=RecommendResponse, **extra):
    if answer.error:
        raise Problem(answer.error)
    return cls(
        items=[{"id": i, "score": s} for i, s in answer.items],
        unknown_items=answer.unknown,
        model=model.ref(),
        fallback=answer.fallback,
        history_used=answer.used,
        **extra,
    )


class Metered:
    """ASGI middleware: count every response by route template and status, and time it."""

    def __init__(self, app, state: State):
        self.app, self.state = app, state

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), [500]

        async def sending(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.state.metrics.requests.labels(route, scope["method"], str(status[0])).inc()
            self.state.metrics.latency.labels(route).observe(time.perf_counter() - start)


def create_app(config: ServeConfig, model: ServedModel, store: HistoryStore) -> FastAPI:
    state = State(config, model, store)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state.batcher.start()
        yield
        state.batcher.stop()
        store.close()

    app = FastAPI(title="seqrec serve", lifespan=lifespan)
    app.state.seqrec = state
    app.add_middleware(Metered, state=state)

    @app.exception_handler(Problem)
    async def problem(request: Request, exc: Problem):
        return JSONResponse(status_code=422, content={"detail": str(exc)})

    async def run(queries: list[Query]) -> tuple[list[Answer], ServedModel]:
        return await asyncio.wrap_future(state.batcher.submit(queries))

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz():
        ready = state.batcher.alive()
        return JSONResponse(
            status_code=200 if ready else 503, content={"ready": ready, "model": state.model.ref()}
        )

    @app.get("/metrics")
    async def metrics():
        body, kind = state.metrics.render()
        return Response(content=body, media_type=kind)

    @app.get("/model")
    async def model_card():
        m = state.model
        return {
            "model": m.ref(),
            "backend": m.backend.kind,
            "folder": str(m.folder),
            "items": m.rankable,
            "max_len": m.max_len,
            "config": m.config["model"],
            "dataset_fingerprint": m.manifest.get("dataset_fingerprint"),
            "spec_hash": m.manifest.get("spec_hash"),
            "formats": m.manifest.get("formats", ["safetensors"]),
            "ann": None if m.ann is None else {"nprobe": m.ann.nprobe, "recall_at_10": m.ann.recall_at_10},
            "batching": {"max_batch": config.max_batch, "max_wait_ms": config.max_wait_ms},
            "card": m.card,
        }

    @app.post("/recommend", response_model=RecommendResponse)
    async def recommend(body: RecommendRequest):
        answers, m = await run([_query(body, config.max_history)])
        return _response(answers[0], m)

    @app.post("/recommend/batch", response_model=BatchRecommendResponse)
    async def recommend_batch(body: BatchRecommendRequest):
        queries = []
        for n, one in enumerate(body.requests):
            try:
                queries.append(_query(one, config.max_history))
            except Problem as exc:
                raise Problem(f"requests[{n}]: {exc}") from exc
        answers, m = await run(queries)
        bad = [f"requests[{n}]: {a.error}" for n, a in enumerate(answers) if a.error]
        if bad:
            raise Problem("; ".join(bad))
        return {"results": [_response(a, m) for a in answers]}

    def _user(user_id: str) -> str:
        if not 0 < len(user_id) <= 256:
            raise Problem("user id must have 1..256 characters")
        return user_id

    @app.post("/users/{user_id}/events", response_model=EventsResponse)
    def add_events(user_id: str, body: EventsRequest | Event):
        events = body.events if isinstance(body, EventsRequest) else [body]
        stored = state.store.append(_user(user_id), [StoredEvent(str(e.item), e.time) for e in events])
        unknown = list(dict.fromkeys(str(e.item) for e in events if str(e.item) not in state.model.index))
        return {"user": user_id, "stored": stored, "unknown_items": unknown}

    @app.get("/users/{user_id}/recommendations", response_model=UserRecommendResponse)
    async def user_recommendations(user_id: str, k: int = Param(10, ge=1), exclude_history: bool = True):
        events = await run_in_threadpool(state.store.history, _user(user_id))
        timed = bool(events) and all(e.time is not None for e in events)
        query = Query(
            [e.item for e in events], [e.time for e in events] if timed else None, k, exclude_history, []
        )
        answers, m = await run([query])
        return _response(answers[0], m, UserRecommendResponse, user=user_id, user_known=bool(events))

    def _allowed(request: Request) -> bool:
        token = os.environ.get(TOKEN_ENV)
        if token:
            given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            return hmac.compare_digest(given.encode(), token.encode())
        return request.client is not None and request.client.host in LOCAL_HOSTS

    @app.post("/admin/reload")
    async def reload(request: Request, body: ReloadRequest | None = None):
        if not _allowed(request):
            return JSONResponse(
                status_code=403,
                content={
                    "detail": "reload is allowed from localhost, or with "
                    f"'Authorization: Bearer <${TOKEN_ENV}>'"
                },
            )
        path = Path(body.path) if body and body.path else state.model.folder
        old = state.model.ref()

        def load() -> ServedModel:
            with state.reload_lock:  # one reload at a time; requests keep flowing meanwhile
                fresh = ServedModel(path, config.backend, config.threads, config.use_ann)
                state.model = fresh  # one reference assignment: the next batch uses it, running ones finish
                return fresh

        try:
            fresh = await run_in_threadpool(load)
        except UserError as exc:
            state.metrics.reloads.labels("refused").inc()
            return JSONResponse(
                status_code=422, content={"detail": f"reload refused: {exc.render()}", "serving": old}
            )
        except Exception as exc:  # a corrupt file can fail deep in a loader; refuse it all the same
            state.metrics.reloads.labels("refused").inc()
            return JSONResponse(
                status_code=422,
                content={"detail": f"reload refused: {type(exc).__name__}: {exc}", "serving": old},
            )
        state.metrics.reloads.labels("ok").inc()
        return {"model": fresh.ref(), "previous": old}

    return app
