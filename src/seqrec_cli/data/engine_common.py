"""Pieces every out-of-core engine shares: the result type, the id orders, the staged array files.

The engines reproduce data/process.py exactly: rating filter, dedup (first/last by (time, row)),
iterative k-core (its fixed point does not depend on the order rows are dropped), natural id order
(`_natural_order`, applied here to the distinct kept ids only), then each user's items by
(timestamp, global row number).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqrec_cli.data.process import Sequences, _natural_order
from seqrec_cli.errors import DataError
from seqrec_cli.spec.models import DataSpec


@dataclass
class EngineResult:
    seqs: Sequences  # items / timestamps are memory-mapped staged files (moved into the dataset)
    rows: int  # raw rows read


def check_rating(spec: DataSpec, has_rating: bool, label: str) -> None:
    if spec.min_rating is not None and not has_rating:
        raise DataError("data.min_rating is set but the interactions have no rating column", where=label,
                        fix="remove data.min_rating, or name the rating column in data.columns.rating")


def empty_error(spec: DataSpec, label: str) -> DataError:
    return DataError(
        "no interactions left after filtering "
        f"(min_rating={spec.min_rating}, user_core={spec.user_core}, item_core={spec.item_core}, "
        f"min_user_len={spec.min_user_len})",
        where=label, fix="lower data.min_rating, data.user_core or data.item_core")


def id_order(values: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Distinct raw values (ints or strings) -> (values in natural id order, their strings)."""
    strings = values.astype(str)
    ordered = _natural_order(strings)
    # map the ordered strings back to the engine's own values (ints stay ints for the join)
    pos = np.argsort(strings, kind="stable")
    back = pos[np.searchsorted(strings[pos], ordered)]
    return values[back], ordered.tolist()


class ArrayWriter:
    """Fills a .npy file of known length from batches with plain writes: nothing of it stays in this
    process's memory (a memory map would keep every written page resident until it is flushed)."""

    def __init__(self, path: Path, dtype, length: int):
        self.path, self.dtype, self.length = path, np.dtype(dtype), length
        header = np.lib.format.open_memmap(path, mode="w+", dtype=self.dtype, shape=(length,))
        offset = header.offset
        del header
        self.handle = open(path, "r+b")  # noqa: SIM115 - closed in close()
        self.handle.seek(offset)
        self.filled = 0

    def add(self, values: np.ndarray) -> None:
        self.handle.write(np.ascontiguousarray(values, dtype=self.dtype).tobytes())
        self.filled += len(values)

    def close(self) -> np.ndarray:
        self.handle.close()
        if self.filled != self.length:
            raise RuntimeError(f"{self.path}: wrote {self.filled} of {self.length} values")
        return np.load(self.path, mmap_mode="r")


def offsets_from_counts(counts: np.ndarray) -> np.ndarray:
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets
