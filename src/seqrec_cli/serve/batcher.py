"""Dynamic micro-batching: requests that arrive together share one forward pass.

A single worker thread owns the model calls. It takes the first waiting job, then keeps taking jobs
until `max_batch` queries are gathered or `max_wait_ms` has passed since the first one, and answers
them all with one ServedModel.answer call. With max_wait_ms = 0 (the default) it takes whatever queued
up while the previous pass ran: on CPU a pass takes tens of ms, so requests gather anyway, and a timed
wait costs a thread wake-up that a busy machine can delay by far more than the wait itself. It reads
the current model once per batch, so a reload (which swaps the model reference) never changes the
model under a batch in flight.
max_batch=1 is plain one-request-at-a-time serving. Between batches, after the answers are out, it
runs `between_batches` (the server's heap trimming, serve/memory.py).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from seqrec_cli.serve.engine import Answer, Query, ServedModel


@dataclass
class Job:
    queries: list[Query]
    future: Future = field(default_factory=Future)  # -> (list[Answer], ServedModel)


class MicroBatcher:
    def __init__(
        self,
        current: Callable[[], ServedModel],
        max_batch: int,
        max_wait_ms: float,
        on_batch: Callable[[int], None] = lambda size: None,
        between_batches: Callable[[], None] = lambda: None,
    ):
        self.current = current
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.on_batch = on_batch
        self.between_batches = between_batches
        self.jobs: queue.Queue[Job | None] = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="seqrec-batcher", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.jobs.put(None)
        self.thread.join(timeout=10)

    def alive(self) -> bool:
        return self.thread.is_alive()

    def submit(self, queries: list[Query]) -> Future:
        job = Job(queries)
        self.jobs.put(job)
        return job.future

    def _gather(self, first: Job) -> tuple[list[Job], bool]:
        jobs, size, stop = [first], len(first.queries), False
        deadline = time.monotonic() + self.max_wait
        while size < self.max_batch:
            try:
                remaining = deadline - time.monotonic()
                job = self.jobs.get(timeout=remaining) if remaining > 0 else self.jobs.get_nowait()
            except queue.Empty:
                break
            if job is None:
                stop = True
                break
            jobs.append(job)
            size += len(job.queries)
        return jobs, stop

    def _run(self) -> None:
        while True:
            first = self.jobs.get()
            if first is None:
                return
            jobs, stop = self._gather(first)
            model = self.current()
            queries = [q for job in jobs for q in job.queries]
            try:
                answers: list[Answer] = model.answer(queries)
            except Exception as exc:  # a bug: fail these requests (500), keep serving the next ones
                for job in jobs:
                    job.future.set_exception(exc)
            else:
                self.on_batch(len(queries))
                start = 0
                for job in jobs:
                    job.future.set_result((answers[start : start + len(job.queries)], model))
                    start += len(job.queries)
            self.between_batches()
            if stop:
                return
