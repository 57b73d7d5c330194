"""Reading evaluated runs back (eval/<split>.json + eval/<split>_cases.csv), checking that two runs
were evaluated the same way, and comparing them case by case."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqrec_cli.core.metrics import per_case_metrics
from seqrec_cli.core.uncertainty import paired_comparisons
from seqrec_cli.data.store import read_json_file
from seqrec_cli.errors import UserError
from seqrec_cli.pipelines.eval_report import EvalReport, read_eval_report


@dataclass
class RunEval:
    name: str
    folder: Path
    report: EvalReport
    case_of: np.ndarray  # [T]
    users: list[str]  # [T] raw user id of each pair
    targets: list[str]  # [T] raw target item id
    ranks: np.ndarray  # [T]
    history_len: np.ndarray  # [T]
    info: dict  # run.json
    epochs: list[dict]  # metrics.jsonl

    @property
    def num_cases(self) -> int:
        return int(self.case_of.max()) + 1 if len(self.case_of) else 0

    def per_case(self, ks: list[int] | None = None) -> dict[str, np.ndarray]:
        return per_case_metrics(self.case_of, self.ranks, self.num_cases, ks or self.report.protocol.ks)


def resolve_run(arg: str | Path, runs_root: Path = Path("runs")) -> Path:
    path = Path(arg).expanduser()
    if path.is_dir():
        return path
    if (runs_root / str(arg)).is_dir():
        return runs_root / str(arg)
    raise UserError(
        "no such run folder", where=str(arg), fix="give a run folder (runs/<name>) or a run name under runs/"
    )


def read_epochs(folder: Path) -> list[dict]:
    """A run folder's metrics.jsonl, one dict per epoch ([] when the run has none yet)."""
    path = Path(folder) / "metrics.jsonl"
    if not path.is_file():
        return []
    epochs = []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if line.strip():
            try:
                epochs.append(json.loads(line))
            except ValueError as exc:
                raise UserError(f"not a JSON line ({exc})", where=f"{path}:{number}",
                                fix="restore the run's metrics.jsonl, or remove that line") from exc
    return epochs


def first_best_epoch(epochs: list[dict], metric: str) -> tuple[int, float] | None:
    """(epoch, value) of the first epoch with the highest validation `metric`: the one best.pt holds,
    since only a strict improvement replaces it. None when no epoch was validated on it."""
    scored = [(e["valid"][metric], -e["epoch"]) for e in epochs if metric in e.get("valid", {})]
    if not scored:
        return None
    value, neg_epoch = max(scored)
    return -neg_epoch, value


def load_run_eval(arg: str | Path, split: str) -> RunEval:
    folder = resolve_run(arg)
    report_path = folder / "eval" / f"{split}.json"
    cases_path = folder / "eval" / f"{split}_cases.csv"
    for path in (report_path, cases_path):
        if not path.is_file():
            raise UserError(f"run has no {split} evaluation with per-user results", where=str(path),
                            fix=f"run `seqrec evaluate SPEC --split {split}` for this run first")
    fix = f"run `seqrec evaluate SPEC --split {split}` for this run again"
    report = read_eval_report(report_path)
    info_path = folder / "run.json"
    info = read_json_file(info_path, "the run's run.json", "restore run.json") if info_path.is_file() else {}
    epochs = read_epochs(folder)
    try:
        with open(cases_path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        return RunEval(
            name=info.get("name", folder.name), folder=folder, report=report,
            case_of=np.array([int(r["case"]) for r in rows], dtype=np.int64),
            users=[r["user"] for r in rows], targets=[r["target"] for r in rows],
            ranks=np.array([int(r["rank"]) for r in rows], dtype=np.int64),
            history_len=np.array([int(r["history_len"]) for r in rows], dtype=np.int64),
            info=info, epochs=epochs,
        )
    except (KeyError, TypeError, ValueError, AttributeError, csv.Error) as exc:
        raise UserError(f"the evaluation files are not what `seqrec evaluate` writes "
                        f"({type(exc).__name__}: {exc})", where=str(cases_path), fix=fix) from exc


def protocol_key(run: RunEval) -> dict:
    """What must match for two evaluations to be comparable."""
    proto = run.report.protocol
    return {"dataset fingerprint": run.report.dataset_fingerprint["hash"], "split": proto.split,
            "evaluated split": run.report.split, "filter_seen": proto.filter_seen, "ks": proto.ks,
            "ranking": proto.ranking, "ties": proto.ties}


def check_comparable(runs: list[RunEval]) -> None:
    base = protocol_key(runs[0])
    for run in runs[1:]:
        key = protocol_key(run)
        diff = [name for name in base if base[name] != key[name]]
        if diff:
            detail = "; ".join(f"{name}: {base[name]!r} vs {key[name]!r}" for name in diff)
            raise UserError(
                f"runs {runs[0].name!r} and {run.name!r} were not evaluated the same way ({detail})",
                where=str(run.folder),
                fix="compare runs evaluated on the same prepared dataset with "
                "the same split, filter_seen and ks",
            )
        if run.users != runs[0].users or run.targets != runs[0].targets:
            raise UserError(f"runs {runs[0].name!r} and {run.name!r} ranked different (user, target) cases",
                            where=str(run.folder), fix="re-evaluate both runs with the current seqrec")


def compare(a: RunEval, b: RunEval, resamples: int = 1000, seed: int = 0) -> dict:
    check_comparable([a, b])
    pa, pb = a.per_case(), b.per_case()
    return {"a": a.name, "b": b.name, "split": a.report.split, "cases": a.num_cases,
            "protocol": protocol_key(a), "bootstrap": {"resamples": resamples, "seed": seed, "level": 0.95},
            "metrics": paired_comparisons(pa, pb, resamples, seed)}
