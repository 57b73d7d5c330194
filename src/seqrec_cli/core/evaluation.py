"""Full-ranking evaluation: every case of a split, in batches of users, chunked over the catalogue.

A scorer turns a batch of histories into a state once, then scores any block of items from it, so
the [B, N + 1] score matrix is never needed at once: a 1M-item catalogue is ranked block by block
(eval.chunk_items) while the per-target counts of better-or-equal items (pessimistic ties) and a
running top-K accumulate. Models and baselines go through exactly this code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from seqrec_cli.core.metrics import mean_metrics, metrics_at_k, per_case_metrics
from seqrec_cli.core.model import SeqRecModel
from seqrec_cli.core.repeat import WindowTotals
from seqrec_cli.core.runtime import Runtime
from seqrec_cli.data.batching import PAD, case_batches
from seqrec_cli.data.process import Sequences
from seqrec_cli.data.splits import EvalCases, leave_one_out

# Bounds the [targets, block] comparison matrix; the block shrinks when a batch has many targets.
MAX_BLOCK_ELEMENTS = 1 << 24


class Scorer(Protocol):
    num_items: int

    def begin(self, inputs: torch.Tensor, users: np.ndarray, times: torch.Tensor | None = None) -> Any:
        """inputs: [B, L] left-padded histories (on the device), users: [B], times: [B, L] their
        timestamps when the dataset has them -> per-batch state."""

    def block(self, state: Any, lo: int, hi: int) -> torch.Tensor:
        """Scores of items lo..hi-1 (item 0 is PAD): [B, hi - lo] float32, a fresh tensor the caller
        may modify."""

    def items(self, state: Any, rows: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores of given (row, item) pairs: rows, items [T] -> [T] float32."""


@dataclass
class ModelState:
    """ModelScorer's state for a batch of cases."""

    hidden: torch.Tensor  # [B, D] after the most recent item
    offsets: WindowTotals | None  # model.repeat_bias's offsets of the window items, or None


class ModelScorer:
    """A trained model: state = the hidden state after the most recent item; scores = dot products
    (plus model.repeat_bias's offsets for the items in the window).

    Items the model cannot rank (held out of training, id table only) score -inf: they are never
    recommended, and as a target such an item ranks after every finite candidate (a miss).
    """

    def __init__(self, model: SeqRecModel, runtime: Runtime):
        self.model = model.eval()
        self.runtime = runtime
        self.num_items = model.num_items
        self.unrankable = model.unrankable_items()  # [C] or None
        # Made once per ranking, not per batch and block: a text table runs its adaptor to make it.
        with torch.no_grad():
            self.table = model.item_weights().float()  # [N + 1, D]

    def begin(
        self, inputs: torch.Tensor, users: np.ndarray, times: torch.Tensor | None = None
    ) -> ModelState:
        with self.runtime.autocast():
            hidden = self.model.last_hidden(inputs, times).float()  # [B, D]
        offsets = self.model.window_offsets(inputs, hidden)
        return ModelState(hidden, None if offsets is None else offsets.totals())

    def block(self, state: ModelState, lo: int, hi: int) -> torch.Tensor:
        scores = state.hidden @ self.table[lo:hi].T  # [B, C]
        if state.offsets is not None:
            scores = state.offsets.place(scores, lo)  # [B, C]
        if self.unrankable is not None:
            inside = self.unrankable[(self.unrankable >= lo) & (self.unrankable < hi)]  # [C_in]
            scores[:, inside - lo] = float("-inf")
        return scores

    def items(self, state: ModelState, rows: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        # the same matmul as block() (only the column set differs), so a target scores as inside a block
        scores = state.hidden @ self.table[items].T  # [B, T]
        picked = scores[rows, torch.arange(len(items), device=scores.device)]  # [T]
        if state.offsets is not None:
            picked = state.offsets.of_items(picked, rows, items)  # [T]
        if self.unrankable is not None:
            picked[torch.isin(items, self.unrankable)] = float("-inf")
        return picked


@dataclass
class Ranked:
    """What a split's ranking produced, pair by pair and case by case."""

    case_of: np.ndarray  # [T] case index of each (case, target) pair
    target_items: np.ndarray  # [T]
    ranks: np.ndarray  # [T] 1-based pessimistic rank among all other candidates
    users: np.ndarray  # [E] dense user index per case
    history_len: np.ndarray  # [E]
    topk: np.ndarray  # [E, K] recommended items, best first; -1 past the last finite candidate
    sampled_ranks: np.ndarray | None = None  # [T] rank among the target + sampled negatives only


@dataclass(frozen=True)
class RankOptions:
    """How a split is ranked (the spec's eval section, and the model's window)."""

    max_len: int  # most recent items a case's input holds
    batch_size: int  # cases per scoring batch
    filter_seen: bool  # remove the case's history from the candidates (targets never)
    top_k: int = 0  # also keep each case's top-k list (0: none)
    chunk_items: int = 1 << 18  # score the catalogue in blocks of this many items
    # sampled(users, target_rows, seen_items, seen_rows, target_items) -> [T, S] negatives per pair,
    # for the (labelled) sampled metrics
    sampled: Callable[..., np.ndarray] | None = None


@torch.no_grad()
def rank_cases(scorer: Scorer, seqs: Sequences, cases: EvalCases, options: RankOptions,
               device: torch.device) -> Ranked:
    """Rank each case's targets against the whole catalogue (pessimistic ties).

    filter_seen removes items of the case's full history from the candidates; targets are never
    removed. `options.sampled` adds each pair's rank among sampled negatives only.
    """
    # batch cases of similar history length so each batch is only as wide as its longest window
    # (positions count back from the most recent item, so the width never changes a score)
    by_length = np.argsort(cases.input_end, kind="stable")
    cases = EvalCases(cases.users[by_length], cases.input_end[by_length], cases.target_start[by_length],
                      cases.target_end[by_length])
    out: dict[str, list[np.ndarray]] = {
        key: [] for key in ("case_of", "items", "ranks", "users", "hist", "topk", "sampled")
    }
    for batch in case_batches(seqs, cases, options.max_len, options.batch_size, trim=True):
        for key, value in _rank_batch(scorer, batch, options, device).items():
            out[key].append(value)
    cat = {key: np.concatenate(v) if v else np.zeros(0, dtype=np.int64) for key, v in out.items()}
    # back to the caller's case order
    inverse = np.argsort(by_length, kind="stable")
    case_of = by_length[cat["case_of"]]
    pairs = np.argsort(case_of, kind="stable")  # targets keep their order within a case
    k = min(options.top_k, scorer.num_items)
    topk = (
        cat["topk"].reshape(len(cat["users"]), -1) if k else np.zeros((len(cat["users"]), 0), dtype=np.int64)
    )
    return Ranked(case_of=case_of[pairs], target_items=cat["items"][pairs], ranks=cat["ranks"][pairs],
                  users=cat["users"][inverse], history_len=cat["hist"][inverse], topk=topk[inverse],
                  sampled_ranks=cat["sampled"][pairs] if options.sampled is not None else None)


def _rank_batch(scorer: Scorer, batch, options: RankOptions, device: torch.device) -> dict[str, np.ndarray]:
    """One batch of cases: every target's pessimistic rank, the top-k lists, the sampled ranks."""
    n = scorer.num_items
    k = min(options.top_k, n)
    times = None if batch.times is None else batch.times.to(device)  # [B, W]
    state = scorer.begin(batch.inputs.to(device), batch.users, times)
    t_rows = batch.target_rows.to(device)  # [T]
    t_items = batch.target_items.to(device)  # [T]
    s_rows = batch.seen_rows.to(device)  # [S]
    s_items = batch.seen_items.to(device)  # [S]
    target_scores = scorer.items(state, t_rows, t_items)  # [T]
    bad_target = ~torch.isfinite(target_scores)  # [T]
    any_bad = bool(bad_target.any())
    one_per_row = len(t_rows) == len(batch.users)  # then t_rows == arange(B): no [T, C] gather
    beaten = torch.zeros_like(t_rows)  # [T] other candidates scoring >= the target
    finite = torch.zeros_like(t_rows)  # [T] finite other candidates
    top_vals = torch.empty(len(batch.users), 0, device=device)  # [B, k]
    top_idx = torch.empty(len(batch.users), 0, dtype=torch.long, device=device)  # [B, k]
    step = max(1, min(options.chunk_items, MAX_BLOCK_ELEMENTS // max(len(t_rows), 1)))
    for lo in range(0, n + 1, step):
        hi = min(lo + step, n + 1)
        scores = scorer.block(state, lo, hi).float()  # [B, C] (fresh: masked in place below)
        if lo == 0:
            scores[:, PAD] = float("-inf")
        if options.filter_seen:
            inside = (s_items >= lo) & (s_items < hi)  # [S]
            scores[s_rows[inside], s_items[inside] - lo] = float("-inf")
        if k:  # the recommended list: seen items stay out of it even when they are targets
            top_vals, top_idx = _merge_topk(top_vals, top_idx, scores, lo, k)
        t_inside = (t_items >= lo) & (t_items < hi)  # [T]
        if options.filter_seen:  # targets are never removed, even when they are in the history
            restore = scorer.items(state, t_rows[t_inside], t_items[t_inside])  # [T_in]
            scores[t_rows[t_inside], t_items[t_inside] - lo] = restore
        rows_scores = scores if one_per_row else scores[t_rows]  # [T, C]
        beaten += (rows_scores >= target_scores.unsqueeze(1)).sum(dim=1)
        # the target's own column never counts against itself
        own = torch.full_like(target_scores, float("-inf"))  # [T]
        own[t_inside] = scores[t_rows[t_inside], t_items[t_inside] - lo]
        beaten -= (own >= target_scores).long()
        if any_bad:
            finite += torch.isfinite(rows_scores).sum(dim=1) - torch.isfinite(own).long()
    ranks = torch.where(bad_target, finite, beaten) + 1  # [T]
    out = {"case_of": batch.cases[batch.target_rows.numpy()], "items": batch.target_items.numpy(),
           "ranks": ranks.cpu().numpy(), "users": batch.users, "hist": batch.history_len}
    if k:
        out["topk"] = torch.where(torch.isfinite(top_vals), top_idx, -1).cpu().numpy()
    if options.sampled is not None:
        out["sampled"] = _sampled_ranks(scorer, state, batch, options.sampled, target_scores, device)
    return out


def _merge_topk(top_vals: torch.Tensor, top_idx: torch.Tensor, scores: torch.Tensor, lo: int,
                k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The running top-k ([B, k] values and item ids) updated with one block of scores starting at item lo."""
    block_k = min(k, scores.shape[1])
    vals, idx = torch.topk(scores, block_k, dim=1)  # [B, block_k]
    top_vals, order = torch.topk(torch.cat([top_vals, vals], 1), min(k, top_vals.shape[1] + block_k), dim=1)
    return top_vals, torch.gather(torch.cat([top_idx, idx + lo], 1), 1, order)  # [B, k]


def _sampled_ranks(
    scorer: Scorer,
    state,
    batch,
    sampled: Callable[..., np.ndarray],
    target_scores: torch.Tensor,
    device: torch.device,
) -> np.ndarray:
    """Each pair's rank among its sampled negatives only ([T])."""
    negatives = torch.from_numpy(
        sampled(
            batch.users,
            batch.target_rows.numpy(),
            batch.seen_items.numpy(),
            batch.seen_rows.numpy(),
            batch.target_items.numpy(),
        )
    ).to(device)  # [T, S]
    neg_rows = batch.target_rows.to(device).unsqueeze(1).expand_as(negatives)  # [T, S]
    neg_scores = scorer.items(state, neg_rows.reshape(-1), negatives.reshape(-1)).view_as(negatives)  # [T, S]
    count = (neg_scores >= target_scores.unsqueeze(1)).sum(dim=1)  # [T]
    bad_target = ~torch.isfinite(target_scores)
    return (torch.where(bad_target, negatives.shape[1], count) + 1).cpu().numpy()


def split_metrics(ranked: Ranked, ks: list[int]) -> dict[str, np.ndarray]:
    """Per-case metric values ([E] each) of a ranked split."""
    return per_case_metrics(ranked.case_of, ranked.ranks, len(ranked.users), ks)


def evaluate_split(model: SeqRecModel, seqs: Sequences, split: str, options: RankOptions, ks: list[int],
                   runtime: Runtime, cases: EvalCases | None = None) -> tuple[dict[str, float], np.ndarray]:
    """Validation during training: mean metrics and the per-pair ranks (leave-one-out unless `cases`)."""
    cases = cases if cases is not None else leave_one_out(seqs).cases[split]
    ranked = rank_cases(ModelScorer(model, runtime), seqs, cases, options, runtime.device)
    if len(ranked.ranks) == len(ranked.users):  # one target per case: the classic three
        return metrics_at_k(ranked.ranks, ks), ranked.ranks
    return mean_metrics(split_metrics(ranked, ks)), ranked.ranks


class DenseScorer:
    """Adapter for a function that scores the whole catalogue at once: [B, L] -> [B, N + 1]."""

    def __init__(self, score_all: Callable[[torch.Tensor], torch.Tensor], num_items: int):
        self.score_all = score_all
        self.num_items = num_items

    def begin(
        self, inputs: torch.Tensor, users: np.ndarray, times: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.score_all(inputs).float()  # [B, N + 1]

    def block(self, state: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
        return state[:, lo:hi].clone()  # [B, C]

    def items(self, state: torch.Tensor, rows: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return state[rows, items]  # [T]


def rank_targets(score_all: Callable[[torch.Tensor], torch.Tensor], seqs: Sequences, split: str, max_len: int,
                 batch_size: int, filter_seen: bool, device: torch.device) -> np.ndarray:
    """Leave-one-out rank of each user's held-out item for `split`, from a whole-catalogue scorer."""
    cases = leave_one_out(seqs).cases[split]
    options = RankOptions(max_len, batch_size, filter_seen)
    return rank_cases(DenseScorer(score_all, seqs.num_items), seqs, cases, options, device).ranks
