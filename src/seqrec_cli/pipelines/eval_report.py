"""The evaluation report (eval/<split>.json): one typed, versioned definition, used to write it and to
read it back (compare, report, and anything else that reads results).

Compatibility: `format_version` is written in every report. A report of another version (older
reports have none) is refused with a message that says to run `seqrec evaluate` again; results are
cheap to recompute and a half-understood report is worse than none.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from seqrec_cli.errors import UserError

EVAL_REPORT_VERSION = 1


@dataclass(frozen=True)
class Bootstrap:
    resamples: int
    seed: int
    level: float
    over: str = "cases (users)"


@dataclass(frozen=True)
class Protocol:
    """How the ranks were made: what must match for two reports to be comparable."""

    split: dict[str, Any]  # the split plan's description (kind, cut times, ...)
    ranking: str
    ties: str
    filter_seen: bool
    ks: list[int]
    bootstrap: Bootstrap


@dataclass(frozen=True)
class Breakdown:
    edges: list[float]
    buckets: list[dict[str, Any]]  # one dict per bucket: bucket label, cases, metrics


@dataclass(frozen=True)
class Sampled:
    """Sampled metrics, labelled as such: the target against sampled negatives only."""

    warning: str
    strategy: str
    negatives: int
    seed: int
    metrics: dict[str, float]  # sampled_HR@10, ...


@dataclass(frozen=True)
class EvalReport:
    split: str
    metrics: dict[str, float]  # HR@K, NDCG@K, MRR@K, Recall@K, Precision@K, MAP@K (full ranking)
    ci: dict[str, dict[str, float]]  # metric -> {low, high} (empty when eval.bootstrap is 0)
    list_metrics: dict[str, float]  # Coverage@K, AvgPop@K, Novelty@K
    breakdowns: dict[str, Breakdown]  # history_length, target_popularity
    filter_seen: bool
    users: int
    cases: int
    targets: int
    num_items: int
    protocol: Protocol
    model: dict[str, str]  # kind (and encoder for networks)
    dataset_fingerprint: dict[str, Any]
    spec_hash: str
    seed: int
    checkpoint: dict[str, Any]  # path/epoch/sha256 of the checkpoint, or source/mode/zero_shot for --model
    runtime: dict[str, str]
    seconds: float
    cases_per_second: float
    items: dict[str, Any] | None = None  # item representation of a network
    sampled: Sampled | None = None
    cold_start: dict[str, Any] | None = None
    format_version: int = field(default=EVAL_REPORT_VERSION)

    def to_json(self) -> dict[str, Any]:
        """The JSON object written to eval/<split>.json (optional sections only when present)."""
        data = asdict(self)
        for name in ("items", "sampled", "cold_start"):
            if data[name] is None:
                del data[name]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str) -> EvalReport:
        version = data.get("format_version") if isinstance(data, dict) else None
        if version != EVAL_REPORT_VERSION:
            found = (
                "no format_version (written before seqrec 0.3)" if version is None else f"version {version}"
            )
            raise UserError(
                f"evaluation report has {found}; this seqrec reads version {EVAL_REPORT_VERSION}",
                where=where,
                fix="run `seqrec evaluate SPEC --split ...` again for this run (the checkpoint is unchanged)",
            )
        try:
            known = {f.name for f in fields(cls)}
            values = {k: v for k, v in data.items() if k in known}
            proto = dict(values["protocol"])
            proto["bootstrap"] = Bootstrap(**proto["bootstrap"])
            values["protocol"] = Protocol(**proto)
            values["breakdowns"] = {k: Breakdown(**v) for k, v in values["breakdowns"].items()}
            if values.get("sampled") is not None:
                values["sampled"] = Sampled(**values["sampled"])
            return cls(**values)
        except (KeyError, TypeError) as exc:
            raise UserError(f"evaluation report is incomplete or malformed ({exc})", where=where,
                            fix="run `seqrec evaluate` again for this run") from exc


def read_eval_report(path: Path) -> EvalReport:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except ValueError as exc:
        raise UserError(f"evaluation report is not valid JSON ({exc})", where=str(path),
                        fix="run `seqrec evaluate` again for this run") from exc
    return EvalReport.from_json(data, str(path))
