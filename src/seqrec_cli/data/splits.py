"""Which events train the model and which are held out, for each split kind; and the leakage check.

A user's items are s[0..n-1] in time order. A split plan says, per user, how many leading items
training may use (`train_len`: inputs AND labels come only from s[:train_len]) and, per evaluation
split, a list of cases: input = s[:input_end] (most recent max_len of it), targets =
s[target_start:target_end] (distinct items; the target window is never part of the input).

- leave_one_out: train_len = n - 2; valid: input s[:n-2], target s[n-2]; test: input s[:n-1]
  (includes the valid item), target s[n-1].
- temporal: two global time cuts t_valid < t_test. Training uses only events before t_valid.
  valid: input = events before t_valid, targets in [t_valid, t_test); test: input = events before
  t_test, targets at or after t_test. `targets: next` keeps only the first item after the cut,
  `all` keeps every item of the window (multi-item target). Users with no event before the cut,
  or none inside the window, are not evaluated on that split.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from seqrec_cli.data.process import Sequences
from seqrec_cli.errors import DataError
from seqrec_cli.spec.models import TemporalSplitSpec

EVAL_SPLITS = ("valid", "test")


@dataclass
class EvalCases:
    users: np.ndarray  # [E] dense user index
    input_end: np.ndarray  # [E] input = the user's items[:input_end]
    target_start: np.ndarray  # [E]
    target_end: np.ndarray  # [E] targets = items[target_start:target_end]

    def __len__(self) -> int:
        return len(self.users)


@dataclass
class SplitPlan:
    kind: str
    train_len: np.ndarray  # [U] leading items of each user that training may use
    cases: dict[str, EvalCases]
    cuts: dict[str, float] = field(default_factory=dict)  # temporal only: resolved cut timestamps
    targets: str = "next"

    def describe(self) -> dict:
        return {"kind": self.kind, "targets": self.targets, **({"cuts": self.cuts} if self.cuts else {})}


def leave_one_out(seqs: Sequences) -> SplitPlan:
    n = seqs.lengths()
    users = np.arange(seqs.num_users)
    cases = {split: EvalCases(users, n - holdout - 1, n - holdout - 1, n - holdout)
             for split, holdout in (("valid", 1), ("test", 0))}
    return SplitPlan("leave_one_out", n - 2, cases)


def _cut(times: np.ndarray, quantile: float, fixed: float | None) -> float:
    return float(fixed) if fixed is not None else float(np.quantile(times, quantile))


def temporal(seqs: Sequences, spec: TemporalSplitSpec | None) -> SplitPlan:
    spec = spec or TemporalSplitSpec()
    if seqs.timestamps is None:
        raise DataError("data.split: temporal needs timestamps, and this dataset has none",
                        where="data.split", fix="use split: leave_one_out, or a data file with a time column")
    t_valid = _cut(seqs.timestamps, spec.valid_quantile, spec.valid_time)
    t_test = _cut(seqs.timestamps, spec.test_quantile, spec.test_time)
    if not t_valid < t_test:
        raise DataError(
            f"the valid cut ({t_valid}) must come before the test cut ({t_test})",
            where="data.temporal",
            fix="use valid_quantile < test_quantile (or valid_time < test_time)",
        )
    # per user: number of events strictly before each cut (items are time-sorted within a user)
    before_valid = np.empty(seqs.num_users, dtype=np.int64)
    before_test = np.empty(seqs.num_users, dtype=np.int64)
    for u in range(seqs.num_users):
        ts = seqs.timestamps[seqs.offsets[u]: seqs.offsets[u + 1]]
        before_valid[u] = np.searchsorted(ts, t_valid, side="left")
        before_test[u] = np.searchsorted(ts, t_test, side="left")
    n = seqs.lengths()

    def cases(start: np.ndarray, window_end: np.ndarray) -> EvalCases:
        keep = np.flatnonzero((start > 0) & (window_end > start))
        end = start[keep] + 1 if spec.targets == "next" else window_end[keep]
        return EvalCases(keep, start[keep], start[keep], end)

    return SplitPlan("temporal", before_valid.copy(),
                     {"valid": cases(before_valid, before_test), "test": cases(before_test, n)},
                     cuts={"valid": t_valid, "test": t_test}, targets=spec.targets)


def make_plan(seqs: Sequences, kind: str, temporal_spec: TemporalSplitSpec | None = None) -> SplitPlan:
    plan = leave_one_out(seqs) if kind == "leave_one_out" else temporal(seqs, temporal_spec)
    check_no_leakage(seqs, plan)
    return plan


def check_no_leakage(seqs: Sequences, plan: SplitPlan) -> None:
    """Raise DataError if any held-out target, or any event at or after a target, can reach the model.

    Checked per case: training never reads a user's items at or after the earliest evaluated
    target of that user, and the input ends before the target window starts. For temporal splits,
    globally: every training event is older than every target, and every input event is older than
    its case's targets.
    """
    problems: list[str] = []
    for split, c in plan.cases.items():
        if len(c) == 0:
            continue
        if (c.input_end > c.target_start).any():
            problems.append(
                f"{split}: {int((c.input_end > c.target_start).sum())} case(s) whose input reaches the target"
            )
        if (c.target_end <= c.target_start).any():
            problems.append(f"{split}: case(s) without a target")
        over = plan.train_len[c.users] > c.target_start
        if over.any():
            u = int(c.users[over][0])
            problems.append(f"{split}: training reads held-out targets for {int(over.sum())} user(s) "
                            f"(first: user {seqs.user_ids[u]!r})")
    if seqs.timestamps is not None and plan.kind == "temporal":
        ts, off = seqs.timestamps, seqs.offsets
        train_mask = np.zeros(len(ts), dtype=bool)
        for u in range(seqs.num_users):
            train_mask[off[u]: off[u] + plan.train_len[u]] = True
        latest_train = ts[train_mask].max() if train_mask.any() else -np.inf
        for split, c in plan.cases.items():
            for i in range(len(c)):
                base = off[c.users[i]]
                first_target = ts[base + c.target_start[i]]
                if first_target <= latest_train:
                    problems.append(
                        f"{split}: a target at time {first_target} is not after the latest training "
                        f"event ({latest_train})"
                    )
                    break
                if c.input_end[i] > 0 and ts[base + c.input_end[i] - 1] >= plan.cuts[split]:
                    problems.append(
                        f"{split}: an input event is not before the {split} cut ({plan.cuts[split]})"
                    )
                    break
    if problems:
        raise DataError(
            "evaluation leakage: " + "; ".join(problems),
            where=f"split {plan.kind}",
            fix="this is a bug or a corrupted prepared dataset; re-run `seqrec prepare` and report it",
        )
