"""The backtest's periods and test cases, and how one model ranks them.

Periods: N windows of equal length ending just after the log's last event; period k is
[start_k, start_k + length). A model for period k is trained only on events before start_k.

Cases of period k: every event inside the window whose user has an earlier event (in the whole
log): input = the user's events before it (inside the window too: what a live service would have
seen; the weights never do), target = its item. New users count from their second event on.
A model ranks its own catalogue; its input drops items it does not know, and a target it does not
know (an item first seen after its training data ended), or a case with no known input item, is a
miss (rank = catalogue + 1). So every strategy is scored on exactly the same cases.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seqrec_cli.core.evaluation import ModelScorer, RankOptions, rank_cases
from seqrec_cli.core.model import SeqRecModel
from seqrec_cli.core.runtime import Runtime
from seqrec_cli.data.process import Sequences
from seqrec_cli.data.splits import EvalCases
from seqrec_cli.errors import UserError


@dataclass
class Log:
    """The whole prepared log as flat events, chronological within each user."""

    seqs: Sequences  # items in the full log's own ids
    user_of: np.ndarray  # [R] dense user of each event
    times: np.ndarray  # [R]
    first_seen: np.ndarray  # [G + 1] earliest event time of each item of the full log

    @classmethod
    def of(cls, seqs: Sequences) -> Log:
        user_of = np.repeat(np.arange(seqs.num_users), seqs.lengths())
        first = np.full(seqs.num_items + 1, np.inf)
        np.minimum.at(first, seqs.items, seqs.timestamps)
        return cls(seqs, user_of, seqs.timestamps, first)


@dataclass
class Periods:
    starts: np.ndarray  # [N] start of each period
    length: float  # seconds

    @property
    def ends(self) -> np.ndarray:
        return self.starts + self.length


def make_periods(log: Log, count: int, length: float) -> Periods:
    """N windows ending just after the last event; refuses windows the log cannot fill."""
    first, last = float(log.times.min()), float(log.times.max())
    end = float(np.nextafter(last, np.inf))
    starts = end - length * np.arange(count, 0, -1)
    if starts[0] <= first:
        span = (last - first) / 86400
        raise UserError(
            f"{count} periods of {length / 86400:g} days ({count * length / 86400:g} days) do not fit "
            f"in the log's {span:.1f} days after its first event: the first model would have no "
            "training data",
            where="--periods/--period",
            fix="ask for fewer or shorter periods (e.g. --periods 8 --period 7d)",
        )
    counts = np.histogram(log.times, bins=np.append(starts, end))[0]
    empty = [k for k, c in enumerate(counts) if c == 0]
    if empty:
        raise UserError(
            f"period(s) {empty} of {count} hold no interaction (gaps in the log)",
            where="--periods/--period",
            fix="use longer periods, or fewer so they stop before the gap",
        )
    return Periods(starts, length)


def training_rows(log: Log, before: float) -> np.ndarray:
    """[R] mask of the events a model of a period starting at `before` may train on."""
    return log.times < before


@dataclass
class PeriodCases:
    events: np.ndarray  # [E] flat index of each case's event in the log
    users: np.ndarray  # [E] dense user (full log)
    positions: np.ndarray  # [E] index of the event within its user's sequence (>= 1)
    new_user: np.ndarray  # [E] bool: the user's first event lies in this period
    target_first_seen: np.ndarray  # [E] when the target item first appears in the log

    def __len__(self) -> int:
        return len(self.events)


def period_cases(log: Log, start: float, end: float) -> PeriodCases:
    seqs = log.seqs
    inside = np.flatnonzero((log.times >= start) & (log.times < end))
    positions = inside - seqs.offsets[log.user_of[inside]]
    keep = positions >= 1  # a first-ever event has no history to predict it from
    events, users, positions = inside[keep], log.user_of[inside[keep]], positions[keep]
    new_user = log.times[seqs.offsets[users]] >= start
    return PeriodCases(events, users, positions, new_user, log.first_seen[seqs.items[events]])


@dataclass
class PeriodRanks:
    ranks: np.ndarray  # [E] pessimistic rank of each case's target (misses: the model's catalogue + 1)
    top: np.ndarray  # [E, K] recommended items in the LOG's ids, best first (-1: none, e.g. a miss)


def rank_period(
    model: SeqRecModel,
    item_ids: list[str],
    log: Log,
    cases: PeriodCases,
    max_len: int,
    batch_size: int,
    filter_seen: bool,
    runtime: Runtime,
    chunk_items: int,
    top_k: int = 10,
) -> PeriodRanks:
    """Rank each case's target in the model's catalogue, and keep its top-K list."""
    seqs = log.seqs
    index = {raw: i for i, raw in enumerate(item_ids) if i}
    to_model = np.array([index.get(raw, 0) for raw in seqs.item_ids], dtype=np.int64)  # [G + 1] 0: unknown
    to_log = np.full(len(item_ids) + 1, -1, dtype=np.int64)  # [N + 2] model id -> log id (slot -1 stays -1)
    to_log[to_model[to_model > 0]] = np.flatnonzero(to_model > 0)
    ranks = np.full(len(cases), model.num_items + 1, dtype=np.int64)
    top = np.full((len(cases), top_k), -1, dtype=np.int64)
    users = np.unique(cases.users)
    parts, stamps, offsets, input_end, target_at, rankable = [], [], [0], [], [], []
    for row, u in enumerate(users):
        own = np.flatnonzero(cases.users == u)
        mapped = to_model[seqs.user_items(u)]  # [n] model ids, 0 where unknown
        known = mapped > 0
        before = np.concatenate([[0], np.cumsum(known)])  # known items before each position
        parts.append(mapped[known])
        stamps.append(log.times[seqs.offsets[u]:seqs.offsets[u + 1]][known])  # time-aware encoders read them
        offsets.append(offsets[-1] + int(known.sum()))
        for c in own:
            p = cases.positions[c]
            if known[p] and before[p] > 0:
                rankable.append(c)
                input_end.append(before[p])
                target_at.append(row)
    if not rankable:
        return PeriodRanks(ranks, top)
    model_seqs = Sequences(
        items=np.concatenate(parts).astype(np.int32),
        offsets=np.array(offsets, dtype=np.int64),
        timestamps=np.concatenate(stamps),
        user_ids=[seqs.user_ids[u] for u in users],
        item_ids=item_ids,
    )
    ends = np.array(input_end, dtype=np.int64)
    eval_cases = EvalCases(np.array(target_at, dtype=np.int64), ends, ends, ends + 1)
    options = RankOptions(max_len, batch_size, filter_seen, top_k=top_k, chunk_items=chunk_items)
    ranked = rank_cases(ModelScorer(model, runtime), model_seqs, eval_cases, options, runtime.device)
    ranks[np.array(rankable)] = ranked.ranks
    top[np.array(rankable), :ranked.topk.shape[1]] = to_log[ranked.topk]  # -1 (no candidate) maps to -1
    return PeriodRanks(ranks, top)
