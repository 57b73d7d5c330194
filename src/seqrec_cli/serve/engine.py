"""One loaded export, ready to answer: raw ids -> indices, a backend for user vectors, exact or
approximate top-k, and the popularity fallback. Loading verifies every file against the manifest
and refuses anything it could not serve, so a reload never swaps in a broken model."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqrec_cli.artifacts.format import MANIFEST, verify_export
from seqrec_cli.data.batching import PAD
from seqrec_cli.errors import UserError
from seqrec_cli.serve.backends import BACKENDS
from seqrec_cli.serve.topk import blocked_topk


@dataclass
class Query:
    """One history to answer, as the request gave it (raw ids): the batch worker encodes it with the
    model it runs, so a reload between request and batch cannot mix two catalogues."""

    history: list[str]
    times: list[float] | None
    k: int
    exclude_history: bool
    exclude: list[str]


@dataclass
class Answer:
    items: list[tuple[str, float]]
    unknown: list[str]
    fallback: str | None
    used: int  # history items the model saw
    error: str | None = None  # a reason for a 422 (nothing to answer from and no fallback)


def _need(folder: Path, name: str) -> Path:
    path = folder / name
    if not path.is_file():
        raise UserError(
            f"export has no {name} (written by an older seqrec)",
            where=str(folder),
            fix="export again with this version: `seqrec export SPEC`",
        )
    return path


class ServedModel:
    def __init__(
        self, folder: str | Path, backend: str = "torch", threads: int | None = None, use_ann: bool = True
    ):
        from safetensors.numpy import load_file

        folder = Path(folder)
        self.folder = folder
        self.manifest = verify_export(folder)
        self.fingerprint = hashlib.sha256((folder / MANIFEST).read_bytes()).hexdigest()[:16]
        self.name = str(self.manifest.get("name", folder.name))
        self.config = json.loads((folder / "config.json").read_text())
        self.item_ids: list[str] = json.loads((folder / "item_ids.json").read_text())
        self.index = {raw: i for i, raw in enumerate(self.item_ids) if i != PAD}
        self.max_len = int(self.config["model"]["max_len"])
        self.table = load_file(str(_need(folder, "item_table.safetensors")))["table"].astype(
            np.float32
        )  # [N + 1, D]
        if self.table.shape[0] != len(self.item_ids):
            raise UserError(
                "item_table.safetensors does not match item_ids.json", where=str(folder), fix="export again"
            )
        self.invalid = np.zeros(len(self.item_ids), dtype=bool)  # [N + 1] never recommended
        self.invalid[PAD] = True
        self.invalid[np.asarray(self.config.get("unrankable_items", []), dtype=np.int64)] = True
        self.rankable = int((~self.invalid).sum())
        popularity = np.asarray(json.loads(_need(folder, "popularity.json").read_text()), dtype=np.float64)
        popularity[self.invalid] = -1
        self.popular = np.argsort(-popularity, kind="stable")[: self.rankable]  # most interacted first
        self.popularity = popularity
        self.card = (
            (folder / "README.md").read_text(encoding="utf-8") if (folder / "README.md").is_file() else ""
        )
        self.backend = BACKENDS[backend](folder, threads, self.manifest)
        self.ann = None
        if use_ann and (folder / "items.faiss").is_file():
            from seqrec_cli.artifacts.ann import AnnIndex

            self.ann = AnnIndex.load(folder)
        self.trim = self._width_free()

    def ref(self) -> dict:
        return {"name": self.name, "fingerprint": self.fingerprint}

    def _width_free(self) -> bool:
        """Whether trimming left padding leaves user vectors unchanged (true of our encoders; checked
        once here rather than assumed, so a backbone that reads absolute positions stays correct)."""
        rng = np.random.default_rng(0)
        rows = [rng.integers(1, len(self.item_ids), size=n).tolist() for n in (3, min(7, self.max_len - 1))]
        full = self.backend.user_vectors(self._pad(rows, self.max_len)[0], None)
        cut = self.backend.user_vectors(self._pad(rows, max(len(r) for r in rows) + 1)[0], None)
        return bool(np.allclose(full, cut, atol=1e-4, rtol=1e-4))

    @staticmethod
    def _pad(rows: list[list[int]], width: int, times: list[list[float]] | None = None):
        inputs = np.zeros((len(rows), width), dtype=np.int64)  # [B, W] left-padded
        stamps = None if times is None else np.zeros((len(rows), width), dtype=np.float64)  # [B, W]
        for r, row in enumerate(rows):
            if row:
                inputs[r, width - len(row) :] = row
                if stamps is not None:
                    stamps[r, width - len(row) :] = times[r]
        return inputs, stamps

    def user_vectors(self, rows: list[list[int]], times: list[list[float]] | None) -> np.ndarray:
        """Known-item index rows (each <= max_len, non-empty) -> [B, D].

        Cost grows with the padded width, so a batch of mixed lengths runs as a few passes of similar
        lengths (longest first; a new pass starts where a row is under 2/3 of the pass's width)."""
        if not self.trim:
            return self.backend.user_vectors(*self._pad(rows, self.max_len, times))
        order = sorted(range(len(rows)), key=lambda i: -len(rows[i]))
        out = np.empty((len(rows), self.table.shape[1]), dtype=np.float32)  # [B, D]
        start = 0
        while start < len(order):
            width = min(self.max_len, len(rows[order[start]]) + 1)
            stop = start + 1
            while stop < len(order) and 3 * (len(rows[order[stop]]) + 1) >= 2 * width:
                stop += 1
            pick = order[start:stop]
            inputs, stamps = self._pad(
                [rows[i] for i in pick], width, None if times is None else [times[i] for i in pick]
            )
            out[pick] = self.backend.user_vectors(inputs, stamps)
            start = stop
        return out

    def answer(self, queries: list[Query]) -> list[Answer]:
        """Encode, one forward pass for every query with a known item, then top-k per query."""
        encoded = []
        for q in queries:
            keep = [i for i, h in enumerate(q.history) if h in self.index][-self.max_len :]
            unknown = list(dict.fromkeys(h for h in q.history + q.exclude if h not in self.index))
            encoded.append(
                (
                    [self.index[q.history[i]] for i in keep],
                    None if q.times is None else [float(q.times[i]) for i in keep],
                    unknown,
                )
            )
        answers: list[Answer | None] = [None] * len(queries)
        model_rows = [i for i, (rows, _, _) in enumerate(encoded) if rows]
        for i, q in enumerate(queries):
            rows, _, unknown = encoded[i]
            if q.k > self.rankable:
                answers[i] = Answer(
                    [], unknown, None, 0, f"k={q.k} exceeds the {self.rankable} items this model ranks"
                )
            elif not rows:
                answers[i] = self._popular(q, unknown)
        model_rows = [i for i in model_rows if answers[i] is None]
        # time-aware models: rows with and without times go through separate passes
        for timed in (False, True):
            group = [
                i for i in model_rows if (encoded[i][1] is not None and self.backend.uses_times) == timed
            ]
            if not group:
                continue
            times = [encoded[i][1] for i in group] if timed else None
            vectors = self.user_vectors([encoded[i][0] for i in group], times)  # [G, D]
            for i, ranked in zip(group, self._top(vectors, [queries[i] for i in group]), strict=True):
                answers[i] = Answer(ranked, encoded[i][2], None, len(encoded[i][0]))
        return answers

    def _excluded(self, q: Query) -> np.ndarray:
        """Item indices never to recommend for q: its `exclude` ids and, with exclude_history, every
        known item of the history (also those older than the max_len window the model reads)."""
        drop = q.exclude + q.history if q.exclude_history else q.exclude
        return np.asarray([self.index[h] for h in drop if h in self.index], dtype=np.int64)

    def _top(self, vectors: np.ndarray, queries: list[Query]) -> list[list[tuple[str, float]]]:
        k = max(q.k for q in queries)
        excludes = [self._excluded(q) for q in queries]
        if self.ann is not None:
            return [self._ann_top(v, q.k, ex) for v, q, ex in zip(vectors, queries, excludes, strict=True)]
        scores, idx = blocked_topk(vectors, self.table, k, self.invalid, excludes)  # [B, k]
        return [
            [
                (self.item_ids[i], float(s))
                for i, s in zip(idx[r, : q.k], scores[r, : q.k], strict=True)
                if s != -np.inf
            ]
            for r, q in enumerate(queries)
        ]

    def _ann_top(self, vector: np.ndarray, k: int, exclude: np.ndarray) -> list[tuple[str, float]]:
        """Approximate top-k; asks for extra rows to cover exclusions, exact when even that falls short."""
        drop = set(exclude.tolist())
        scores, idx = self.ann.search(vector[None], k + len(drop) + 8)
        out = [
            (self.item_ids[i], float(s))
            for i, s in zip(idx[0], scores[0], strict=True)
            if i > 0 and not self.invalid[i] and i not in drop
        ][:k]
        if len(out) == k:
            return out
        s, i = blocked_topk(vector[None], self.table, k, self.invalid, [exclude])
        return [(self.item_ids[j], float(v)) for j, v in zip(i[0], s[0], strict=True) if v != -np.inf]

    def _popular(self, q: Query, unknown: list[str]) -> Answer:
        drop = set(self._excluded(q).tolist())
        picks = [int(i) for i in self.popular[: q.k + len(drop)] if int(i) not in drop][: q.k]
        return Answer(
            [(self.item_ids[i], float(self.popularity[i])) for i in picks], unknown, "popularity", 0
        )
