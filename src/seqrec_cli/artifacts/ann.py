"""Approximate top-k for large catalogues: a faiss inverted-file index built at export time.

IVF-Flat over inner product: the catalogue is cut into `nlist` k-means cells and a query scans the
`nprobe` cells nearest to it. nprobe is calibrated when the index is built: the smallest power of two
whose recall@10 against exact top-k, on the given sample of user vectors, reaches the target plus a
margin of 0.01 (so users outside the sample still get the target); the
index file stores it, so the service answers with the recall that was measured. IVF rather than HNSW:
with inner-product scores (not distances) HNSW's graph can miss high-norm items, and IVF builds in
minutes on 2 cores at 1M items.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqrec_cli.errors import UserError

ANN_FILE = "items.faiss"
ANN_INFO = "ann.json"
DEFAULT_MIN_ITEMS = 100_000  # below this exact blocked top-k is fast enough


def _faiss():
    try:
        import faiss
    except ImportError as exc:
        raise UserError(
            "the approximate index needs faiss", where="--ann", fix="pip install 'seqrec[serve]'"
        ) from exc
    return faiss


def exact_topk(queries: np.ndarray, table: np.ndarray, k: int, block: int = 100_000) -> np.ndarray:
    """[Q, D] x [N, D] -> [Q, k] row indices of the k highest inner products, scored block by block
    so the [Q, N] score matrix never exists at once."""
    best_s = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(queries), 0), dtype=np.int64)
    for start in range(0, len(table), block):
        s = queries @ table[start : start + block].T  # [Q, b]
        kk = min(k, s.shape[1])
        part = np.argpartition(-s, kk - 1, axis=1)[:, :kk]  # [Q, kk]
        best_s = np.concatenate([best_s, np.take_along_axis(s, part, 1)], axis=1)
        best_i = np.concatenate([best_i, part + start], axis=1)
        keep = np.argsort(-best_s, axis=1, kind="stable")[:, :k]  # [Q, <=k]
        best_s, best_i = np.take_along_axis(best_s, keep, 1), np.take_along_axis(best_i, keep, 1)
    return best_i


def recall_at(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of the exact top-k rows that the approximate answer found."""
    return float(
        np.mean([len(set(f.tolist()) & set(t.tolist())) / len(t) for f, t in zip(found, truth, strict=True)])
    )


@dataclass
class AnnIndex:
    index: object  # faiss.IndexIVFFlat
    nprobe: int
    recall_at_10: float  # measured at build time on the calibration queries

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """[Q, D] float32 -> ([Q, k] scores, [Q, k] row indices; -1 where fewer were found)."""
        self.index.nprobe = self.nprobe
        return self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)

    def save(self, folder: Path) -> None:
        _faiss().write_index(self.index, str(Path(folder) / ANN_FILE))
        (Path(folder) / ANN_INFO).write_text(
            json.dumps(
                {
                    "kind": "ivf_flat_ip",
                    "nlist": int(self.index.nlist),
                    "nprobe": self.nprobe,
                    "recall_at_10": self.recall_at_10,
                },
                indent=2,
            )
            + "\n"
        )

    @classmethod
    def load(cls, folder: Path) -> AnnIndex:
        info = json.loads((Path(folder) / ANN_INFO).read_text())
        return cls(_faiss().read_index(str(Path(folder) / ANN_FILE)), info["nprobe"], info["recall_at_10"])


CALIBRATION_MARGIN = 0.01  # calibrate for target + margin, so users outside the sample still get the target


def build_ivf(
    table: np.ndarray, queries: np.ndarray, target_recall: float = 0.98, seed: int = 0, skip_rows: int = 1
) -> AnnIndex:
    """table [N + skip, D] (row 0 = PAD is skipped: faiss ids are table rows), queries [Q, D] user vectors
    for calibration."""
    goal = min(1.0, target_recall + CALIBRATION_MARGIN)
    faiss = _faiss()
    items = np.ascontiguousarray(table[skip_rows:], dtype=np.float32)  # [N, D]
    n, d = items.shape
    # ~2 sqrt(N) cells (2,000 at 1M items); faiss wants >= 39 training points per cell
    nlist = int(max(1, min(2 * np.sqrt(n), n // 39)))
    quantizer = faiss.IndexFlatIP(d)
    index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(seed)
    sample = items[
        rng.choice(n, size=min(n, 64 * nlist), replace=False)
    ]  # k-means on a sample: minutes, not hours
    index.cp.seed = seed
    index.train(sample)
    index.add_with_ids(items, np.arange(skip_rows, n + skip_rows, dtype=np.int64))
    truth = exact_topk(queries.astype(np.float32), items, 10) + skip_rows  # [Q, 10]
    nprobe = 1
    while True:  # ends: at nprobe = nlist every cell is scanned, which is exact
        index.nprobe = nprobe
        recall = recall_at(index.search(queries.astype(np.float32), 10)[1], truth)
        if recall >= goal or nprobe == nlist:
            return AnnIndex(index, nprobe, recall)
        nprobe = min(2 * nprobe, nlist)
