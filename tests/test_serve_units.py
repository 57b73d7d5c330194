"""Serving parts without a server: the history store, blocked top-k, the approximate index, the batcher."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from seqrec_cli.serve.batcher import MicroBatcher
from seqrec_cli.serve.engine import Answer, Query
from seqrec_cli.serve.store import SQLiteStore, StoredEvent
from seqrec_cli.serve.topk import blocked_topk


def test_store_keeps_order_and_the_newest_cap_events(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "h.sqlite3", cap=4)
    assert store.history("nobody") == []
    assert store.append("a", [StoredEvent("1", 10.0), StoredEvent("2", None)]) == 2
    assert store.append("b", [StoredEvent("x", None)]) == 1
    assert store.append("a", [StoredEvent(str(i), float(i)) for i in range(3, 8)]) == 4
    assert [e.item for e in store.history("a")] == ["4", "5", "6", "7"]
    assert store.history("a")[0] == StoredEvent("4", 4.0)
    assert [e.item for e in store.history("b")] == ["x"]
    store.close()
    again = SQLiteStore(tmp_path / "h.sqlite3", cap=4)  # persisted, and WAL mode stays on
    assert [e.item for e in again.history("a")] == ["4", "5", "6", "7"]
    assert again.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert again.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    again.close()


def brute(vectors, table, k, invalid, exclude):
    s = vectors @ table.T  # [B, N + 1]
    s[:, invalid] = -np.inf
    for row, items in enumerate(exclude):
        s[row, items] = -np.inf
    idx = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(s, idx, 1), idx


def test_blocked_topk_matches_brute_force_across_blocks() -> None:
    rng = np.random.default_rng(3)
    table = rng.normal(size=(23, 5)).astype(np.float32)  # [N + 1, D], N = 22
    vectors = rng.normal(size=(3, 5)).astype(np.float32)  # [B, D]
    invalid = np.zeros(23, dtype=bool)
    invalid[[0, 7]] = True
    exclude = [np.array([1, 2, 20]), np.array([], dtype=np.int64), np.array([22])]
    for block in (4, 7, 100):
        s, i = blocked_topk(vectors, table, 6, invalid, exclude, block=block)
        bs, bi = brute(vectors, table, 6, invalid, exclude)
        assert (i == bi).all() and np.allclose(s, bs)
    s, _ = blocked_topk(vectors, table, 22, invalid, exclude, block=5)  # more than remain: -inf tails
    assert np.isinf(s[0, -4:]).all() and np.isfinite(s[1, :21]).all()


def test_ivf_index_reaches_its_calibrated_recall(tmp_path: Path) -> None:
    pytest.importorskip("faiss")
    from seqrec_cli.artifacts.ann import AnnIndex, build_ivf, exact_topk, recall_at

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(40, 16))
    table = (centres[rng.integers(0, 40, 6001)] + 0.3 * rng.normal(size=(6001, 16))).astype(np.float32)
    queries = rng.normal(size=(200, 16)).astype(np.float32)
    index = build_ivf(table, queries[:100], target_recall=0.98)
    assert index.recall_at_10 >= 0.98 and index.nprobe < index.index.nlist  # cheaper than a full scan
    index.save(tmp_path)
    loaded = AnnIndex.load(tmp_path)
    found = loaded.search(queries[100:], 10)[1]
    truth = exact_topk(queries[100:], table[1:], 10) + 1  # faiss ids are table rows; row 0 (PAD) not indexed
    assert recall_at(found, truth) >= 0.95  # held-out queries: close to the calibrated recall
    assert (found > 0).all()


class FakeModel:
    """Answers with the batch size it was called with, slowly, so requests pile up behind it."""

    def __init__(self):
        self.calls: list[int] = []

    def answer(self, queries: list[Query]) -> list[Answer]:
        self.calls.append(len(queries))
        time.sleep(0.05)
        return [Answer([(q.history[0], float(len(queries)))], [], None, 1) for q in queries]


def test_batcher_coalesces_concurrent_requests_and_keeps_their_order() -> None:
    model, sizes = FakeModel(), []
    batcher = MicroBatcher(lambda: model, max_batch=8, max_wait_ms=30, on_batch=sizes.append)
    batcher.start()
    results: dict[int, list[Answer]] = {}

    def ask(n: int) -> None:
        results[n] = batcher.submit([Query([f"item{n}"], None, 1, True, [])]).result(timeout=10)[0]

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    batcher.stop()
    assert not batcher.alive()
    assert sum(model.calls) == 20 and max(model.calls) > 1 and max(model.calls) <= 8
    assert sizes == model.calls
    assert all(results[n][0].items[0][0] == f"item{n}" for n in range(20))  # each got its own answer


def test_batch_size_one_never_coalesces() -> None:
    model, between = FakeModel(), []
    batcher = MicroBatcher(
        lambda: model, max_batch=1, max_wait_ms=0, between_batches=lambda: between.append(1)
    )
    batcher.start()
    futures = [batcher.submit([Query([str(n)], None, 1, True, [])]) for n in range(5)]
    assert [f.result(timeout=10)[0][0].items[0][0] for f in futures] == [str(n) for n in range(5)]
    batcher.stop()
    assert model.calls == [1] * 5
    assert len(between) == 5  # the housekeeping hook (heap trimming) ran after every batch
