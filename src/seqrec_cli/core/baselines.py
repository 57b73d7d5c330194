"""Non-neural baselines, fitted on the training part of a split and ranked through the same
pessimistic full-ranking path as models (they implement core.evaluation.Scorer).

Registry keys are the spec's `model.kind` choices. Each baseline's state is a dict of tensors
(saved as a checkpoint with torch.save, reloaded with weights_only=True).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F

from seqrec_cli.data.batching import PAD, SPLIT_HOLDOUT
from seqrec_cli.data.process import Sequences

# Unseen transitions / co-occurrences fall back to popularity at this weight, so they are ordered
# by popularity instead of tying (ties count against the target) -- far below any real signal.
BACKOFF = 1e-6


def training_counts(seqs: Sequences, train_len: np.ndarray | None = None) -> np.ndarray:
    """[N + 1] interaction counts over each user's training part only (no held-out leakage)."""
    train_len = seqs.lengths() - SPLIT_HOLDOUT["train"] if train_len is None else train_len
    counts = np.zeros(seqs.num_items + 1, dtype=np.float64)
    for u in range(seqs.num_users):
        start = seqs.offsets[u]
        np.add.at(counts, seqs.items[start: start + max(int(train_len[u]), 0)], 1.0)
    return counts


def training_popularity(seqs: Sequences) -> torch.Tensor:
    """[N + 1] leave-one-out training counts as scores; PAD scores -inf."""
    scores = torch.from_numpy(training_counts(seqs)).float()  # [N + 1]
    scores[PAD] = float("-inf")
    return scores


def _train_parts(seqs: Sequences, train_len: np.ndarray):
    for u in range(seqs.num_users):
        start = seqs.offsets[u]
        yield u, seqs.items[start: start + max(int(train_len[u]), 0)].astype(np.int64)


def _share(counts: torch.Tensor) -> torch.Tensor:
    return counts / counts.sum().clamp(min=1.0)  # [N + 1]


class Popularity:
    """Most popular items in training; the same list for everyone."""

    def __init__(self, state: dict[str, torch.Tensor]):
        self.counts = state["counts"].float()  # [N + 1]
        self.num_items = len(self.counts) - 1

    @staticmethod
    def fit(seqs: Sequences, train_len: np.ndarray, seed: int) -> dict[str, torch.Tensor]:
        return {"counts": torch.from_numpy(training_counts(seqs, train_len)).float()}  # [N + 1]

    def begin(self, inputs: torch.Tensor, users: np.ndarray, times: torch.Tensor | None = None) -> int:
        return len(inputs)

    def block(self, batch: int, lo: int, hi: int) -> torch.Tensor:
        return self.counts[lo:hi].unsqueeze(0).repeat(batch, 1)  # [B, C]

    def items(self, batch: int, rows: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.counts[items]  # [T]


class ItemKNN:
    """Item-based nearest neighbours: score(i) = sum over history items j of cos(i, j), where items are
    vectors of the users whose training part holds them (co-occurrence cosine); popularity backoff."""

    def __init__(self, state: dict[str, torch.Tensor]):
        self.sim = state["similarity"].float()  # [N + 1, N + 1]
        self.prior = BACKOFF * _share(state["counts"].float())  # [N + 1]
        self.num_items = len(self.prior) - 1

    @staticmethod
    def fit(seqs: Sequences, train_len: np.ndarray, seed: int) -> dict[str, torch.Tensor]:
        rows, cols = [], []
        for u, items in _train_parts(seqs, train_len):
            distinct = np.unique(items)
            rows.append(np.full(len(distinct), u))
            cols.append(distinct)
        index = torch.from_numpy(np.stack([np.concatenate(rows), np.concatenate(cols)]))  # [2, P]
        with warnings.catch_warnings():  # torch flags sparse support as beta; these are plain COO products
            warnings.simplefilter("ignore", UserWarning)
            x = torch.sparse_coo_tensor(
                index, torch.ones(index.shape[1]), (seqs.num_users, seqs.num_items + 1)
            )
            x = x.coalesce()  # [U, N + 1] binary user-item matrix
            co = torch.sparse.mm(x.t(), x).to_dense()  # [N + 1, N + 1] users holding both items
        norm = co.diagonal().clamp(min=1.0).sqrt()  # [N + 1]
        sim = co / (
            norm.unsqueeze(0) * norm.unsqueeze(1)
        )  # [N + 1, N + 1] (an outer product: exactly symmetric)
        sim.fill_diagonal_(0.0)
        counts = torch.from_numpy(training_counts(seqs, train_len)).float()  # [N + 1]
        return {"similarity": sim.float(), "counts": counts}

    def begin(
        self, inputs: torch.Tensor, users: np.ndarray, times: torch.Tensor | None = None
    ) -> torch.Tensor:
        return inputs  # [B, L] history window; PAD rows of the similarity are zero

    def block(self, inputs: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
        # sum of the history items' similarity rows (sim is symmetric), without a [B, L, C] tensor
        return F.embedding_bag(inputs, self.sim[:, lo:hi], mode="sum") + self.prior[lo:hi]  # [B, C]

    def items(self, inputs: torch.Tensor, rows: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.sim[inputs[rows], items.unsqueeze(1)].sum(dim=1) + self.prior[items]  # [T]


class Markov:
    """First-order Markov chain: P(next = i | last item = j) from consecutive training pairs;
    popularity backoff."""

    def __init__(self, state: dict[str, torch.Tensor]):
        counts = state["transitions"].float()  # [N + 1, N + 1]
        self.prob = counts / counts.sum(dim=1, keepdim=True).clamp(min=1.0)  # [N + 1, N + 1]
        self.prior = BACKOFF * _share(state["counts"].float())  # [N + 1]
        self.num_items = len(self.prior) - 1

    @staticmethod
    def fit(seqs: Sequences, train_len: np.ndarray, seed: int) -> dict[str, torch.Tensor]:
        n = seqs.num_items + 1
        flat = np.zeros(n * n, dtype=np.float64)
        for _, items in _train_parts(seqs, train_len):
            np.add.at(flat, items[:-1] * n + items[1:], 1.0)
        counts = torch.from_numpy(training_counts(seqs, train_len)).float()  # [N + 1]
        return {"transitions": torch.from_numpy(flat.reshape(n, n)).float(), "counts": counts}

    def begin(
        self, inputs: torch.Tensor, users: np.ndarray, times: torch.Tensor | None = None
    ) -> torch.Tensor:
        return inputs[:, -1]  # [B] most recent item (left padding: the last column)

    def block(self, last: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
        return self.prob[last, lo:hi] + self.prior[lo:hi]  # [B, C]

    def items(self, last: torch.Tensor, rows: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.prob[last[rows], items] + self.prior[items]  # [T]


def _int64(value: int) -> int:
    """A 64-bit constant as the signed int64 torch stores (multiplication then wraps modulo 2**64)."""
    return value - (1 << 64) if value >= 1 << 63 else value


GOLDEN, MIX1, MIX2 = _int64(0x9E3779B97F4A7C15), _int64(0xBF58476D1CE4E5B9), _int64(0x94D049BB133111EB)


class RandomScores:
    """Uniform random scores, a fixed function of (seed, user, item): the same in every block and run."""

    def __init__(self, state: dict[str, torch.Tensor]):
        self.seed = int(state["seed"])
        self.num_items = int(state["num_items"])

    @staticmethod
    def fit(seqs: Sequences, train_len: np.ndarray, seed: int) -> dict[str, torch.Tensor]:
        return {"seed": torch.tensor(seed), "num_items": torch.tensor(seqs.num_items)}

    def _hash(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        # splitmix64-style mixing in wrapping int64 arithmetic; 24 high bits -> [0, 1)
        x = users * GOLDEN + items * MIX1 + torch.tensor(self.seed, dtype=torch.int64) * MIX2
        x = x ^ (x >> 31)
        x = x * MIX1
        x = x ^ (x >> 29)
        x = x * MIX2
        x = x ^ (x >> 32)
        return ((x >> 20) & 0xFFFFFF).float() / float(1 << 24)

    def begin(
        self, inputs: torch.Tensor, users: np.ndarray, times: torch.Tensor | None = None
    ) -> torch.Tensor:
        return torch.from_numpy(np.asarray(users, dtype=np.int64))  # [B]

    def block(self, users: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
        return self._hash(users.unsqueeze(1), torch.arange(lo, hi).unsqueeze(0))  # [B, C]

    def items(self, users: torch.Tensor, rows: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self._hash(users[rows], items)  # [T]


BASELINES = {"popularity": Popularity, "itemknn": ItemKNN, "markov": Markov, "random": RandomScores}
