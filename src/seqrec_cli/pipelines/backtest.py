"""`seqrec backtest SPEC`: rolling evaluation of how to keep a model fresh on a timestamped log.

For each of N periods (pipelines/backtest_cases.py) and each strategy:
- retrain: the finetune pipeline from scratch on every event before the period (SPEC's train section);
- update: `seqrec update` of the previous period's update model (the first period: the retrained one)
  on the same log, trained on the users active since the parent's data ended (+ update.replay);
- frozen: the first period's model, never trained again.
Each model is then scored on the period's cases (full ranking, eval.filter_seen, eval.ks): metrics
are means over users (each user's mean over their cases in the period), with bootstrap CIs over
users and paired comparisons between strategies, as `evaluate` and `compare` do. Forgetting: the
updated model vs its parent on the FIRST period's cases (events both have trained on from the second
update on). New items: the cases whose target was first seen in the previous period (known to
retrain/update at this period, not to their parent or to frozen).

Every model's training log is written as a table holding only the events before its period, and
each run is checked after training: a model that saw an event at or after its period start is a bug.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seqrec_cli.atomic import atomic_write_json, atomic_write_text
from seqrec_cli.core.uncertainty import bootstrap_ci, paired_comparisons
from seqrec_cli.errors import UserError
from seqrec_cli.events import (
    BacktestDone,
    BacktestEvaluated,
    BacktestStarted,
    BacktestTraining,
    Events,
    no_events,
)
from seqrec_cli.pipelines.backtest_cases import Log, PeriodCases, make_periods, period_cases, rank_period
from seqrec_cli.pipelines.common import load_dataset, load_trained, runtime_for
from seqrec_cli.pipelines.finetune import finetune
from seqrec_cli.pipelines.paths import interactions_path, output_root, resolved_data_spec, run_dir
from seqrec_cli.pipelines.prepare import prepare
from seqrec_cli.pipelines.update import record_lineage, update
from seqrec_cli.spec.models import ColumnMap, DataSpec, ExperimentSpec

STRATEGIES = ("retrain", "update", "frozen")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_period(text: str) -> float:
    """'7d', '12h', '2w', '3600s' or plain seconds -> seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if not match or float(match.group(1)) <= 0:
        raise UserError(f"cannot read period length {text!r}", where="--period",
                        fix="give a positive number with a unit s, m, h, d or w, e.g. 7d or 2w")
    return float(match.group(1)) * UNITS[match.group(2) or "s"]


def parse_strategies(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    bad = [s for s in names if s not in STRATEGIES]
    if bad or not names:
        raise UserError(f"unknown strategies {bad or text!r}", where="--strategies",
                        fix=f"a comma-separated subset of {','.join(STRATEGIES)}")
    return names


@dataclass
class BacktestOptions:
    periods: int
    period_seconds: float
    strategies: tuple[str, ...] = STRATEGIES
    folder: Path | None = None  # work folder (default: <output_root>/backtests/<name>)


@dataclass
class Trained:
    name: str
    run_dir: Path
    seconds: float
    max_train_time: float  # the latest event its training log holds
    spec: ExperimentSpec


@dataclass
class BacktestResult:
    folder: Path
    report: dict
    png: Path
    table: list[dict] = field(default_factory=list)


def _period_log(folder: Path, log: Log, before: float, k: int) -> Path:
    """The events before `before` as a TSV table (chronological within each user)."""
    seqs, rows = log.seqs, np.flatnonzero(log.times < before)
    lines = [
        f"{seqs.user_ids[log.user_of[r]]}\t{seqs.item_ids[seqs.items[r]]}\t{float(log.times[r])!r}\n"
        for r in rows
    ]
    path = folder / "logs" / f"period-{k}.tsv"
    atomic_write_text(path, "user_id\titem_id\ttimestamp\n" + "".join(lines))
    return path


def _period_spec(spec: ExperimentSpec, folder: Path, log_path: Path, name: str) -> ExperimentSpec:
    data = resolved_data_spec(spec)
    items = None
    if data.items is not None:  # item text: the same side file, by absolute path
        source = interactions_path(spec, data)
        base = source.parent if source.is_file() else source
        items = data.items.model_copy(update={"path": str((base / data.items.path).resolve())})
    out = spec.model_copy(deep=True)
    out.name = name
    out.data = DataSpec(
        path=str(log_path.resolve()),
        format="table",
        delimiter="\t",
        items=items,
        columns=ColumnMap(user="user_id", item="item_id", time="timestamp"),
        split=spec.data.split,
        temporal=spec.data.temporal,
        min_user_len=spec.data.min_user_len,
    )
    out.runtime.output_root = str(folder)
    return out


def _check_before(spec: ExperimentSpec, start: float, name: str) -> float:
    """The latest event a run trained on; a bug (exit 1) if it is at or after its period's start."""
    seqs, _, _ = load_dataset(spec)
    latest = float(seqs.timestamps.max())
    if latest >= start:
        raise AssertionError(
            f"backtest leak: {name} trained on an event at {latest} >= its period start {start}"
        )
    return latest


def _user_means(values: np.ndarray, users: np.ndarray) -> np.ndarray:
    """[E] per-case values -> [U'] mean per user (users in sorted order)."""
    _, inverse, counts = np.unique(users, return_inverse=True, return_counts=True)
    return np.bincount(inverse, weights=values) / counts


def case_metrics(ranks: np.ndarray, ks: list[int]) -> dict[str, np.ndarray]:
    out = {}
    for k in ks:
        hit = ranks <= k
        out[f"HR@{k}"] = hit.astype(np.float64)
        out[f"NDCG@{k}"] = np.where(hit, 1.0 / np.log2(ranks + 1.0), 0.0)
        out[f"MRR@{k}"] = np.where(hit, 1.0 / ranks, 0.0)
    return out


def user_metrics(
    ranks: np.ndarray, cases: PeriodCases, ks: list[int], mask: np.ndarray | None = None
) -> dict:
    sel = np.ones(len(cases), dtype=bool) if mask is None else mask
    return {name: _user_means(v[sel], cases.users[sel]) for name, v in case_metrics(ranks, ks).items()}


def backtest(spec: ExperimentSpec, options: BacktestOptions, events: Events = no_events) -> BacktestResult:
    if spec.model.kind != "neural":
        raise UserError("the backtest trains and updates networks", where="model.kind",
                        fix="use model.kind neural (baselines have nothing to update)")
    prepare(spec, events)
    seqs, manifest, _ = load_dataset(spec)
    if seqs.timestamps is None:
        raise UserError(
            "the backtest needs a timestamped log, and this dataset has no timestamps",
            where="data",
            fix="map data.columns.time to the log's timestamp column (formats table, recbole, movielens)",
        )
    log = Log.of(seqs)
    periods = make_periods(log, options.periods, options.period_seconds)
    folder = options.folder or output_root(spec) / "backtests" / spec.name
    if (folder / "runs").exists() and any((folder / "runs").iterdir()):
        raise UserError(
            "backtest folder already holds runs; refusing to mix two backtests",
            where=str(folder),
            fix="choose another --out folder, or delete this one",
        )
    folder.mkdir(parents=True, exist_ok=True)
    ks, strategies = spec.eval.ks, options.strategies
    runtime = runtime_for(spec)
    events(
        BacktestStarted(str(folder), tuple(float(s) for s in periods.starts), strategies, int(len(log.times)))
    )

    models = _train_models(spec, folder, log, periods, strategies, events)
    report = _evaluate(spec, log, periods, models, ks, runtime, events)
    report.update(_report_header(spec, options, manifest, strategies))
    atomic_write_json(folder / "backtest.json", report)
    png = folder / "backtest.png"
    plot_backtest(report, png)
    events(BacktestDone(str(folder)))
    return BacktestResult(folder, report, png)


def _report_header(spec: ExperimentSpec, options: BacktestOptions, manifest: dict, strategies) -> dict:
    """What the backtest report says about how it was made."""
    ks = spec.eval.ks
    return {
        "spec": spec.name,
        "dataset_fingerprint": manifest["fingerprint"],
        "seed": spec.train.seed,
        "period_seconds": options.period_seconds,
        "strategies": list(strategies),
        "protocol": {
            "ranking": "full",
            "ties": "pessimistic",
            "filter_seen": spec.eval.filter_seen,
            "ks": ks,
            "average": "mean over users of each user's mean over their cases",
            "bootstrap": {
                "resamples": spec.eval.bootstrap,
                "seed": spec.eval.bootstrap_seed,
                "level": 0.95,
                "over": "users",
            },
        },
        "update": spec.update.model_dump(mode="json"),
    }


def _train_models(spec: ExperimentSpec, folder: Path, log: Log, periods, strategies,
                  events: Events) -> dict[str, list[Trained]]:
    """Each strategy's model for each period, trained only on events before the period starts."""
    models: dict[str, list[Trained]] = {s: [] for s in strategies}

    def train(k: int, start: float, path: Path, strategy: str) -> Trained:
        s = _period_spec(spec, folder, path, f"{spec.name}-{strategy}-p{k}")
        events(BacktestTraining(k, strategy))
        if strategy == "update":
            seconds = update(str(models["update"][k - 1].run_dir), s, events).seconds
        else:
            seconds = finetune(s, events=events).seconds
        latest = _check_before(s, start, s.name)
        record_lineage(run_dir(s), {"data_until": latest, "backtest_period": k, "period_start": start})
        return Trained(s.name, run_dir(s), seconds, latest, s)

    for k, start in enumerate(map(float, periods.starts)):
        path = _period_log(folder, log, start, k)
        if k == 0:  # every strategy starts from the one model trained before the first period
            first = train(0, start, path, "retrain")
            for name in strategies:
                models[name].append(first)
            continue
        for name in ("retrain", "update"):
            if name in strategies:
                models[name].append(train(k, start, path, name))
        if "frozen" in strategies:
            first = models["frozen"][0]
            models["frozen"].append(Trained(first.name, first.run_dir, 0.0, first.max_train_time, first.spec))
    return models


def _load(trained: Trained, runtime):
    seqs, manifest, _ = load_dataset(trained.spec)
    built, _, _ = load_trained(trained.spec, seqs, manifest, runtime)
    return built.model, seqs.item_ids


def _evaluate(spec: ExperimentSpec, log: Log, periods, models: dict[str, list[Trained]], ks: list[int],
              runtime, events: Events) -> dict:
    ev = spec.eval
    first_cases = period_cases(log, float(periods.starts[0]), float(periods.ends[0]))
    rows, per_period, comparisons = [], [], []
    cache: dict[Path, np.ndarray] = {}
    for k, (start, end) in enumerate(zip(periods.starts, periods.ends, strict=True)):
        cases = period_cases(log, float(start), float(end))
        prev_start = float(periods.starts[k - 1]) if k else float(start)
        fresh_items = (cases.target_first_seen >= prev_start) & (cases.target_first_seen < start)
        fresh = np.flatnonzero(
            (log.first_seen >= prev_start) & (log.first_seen < start)
        )  # items new last period
        period = {"period": k, "start": float(start), "end": float(end), "cases": len(cases),
                  "users": int(len(np.unique(cases.users))), "new_user_cases": int(cases.new_user.sum()),
                  "cold_target_cases": int((cases.target_first_seen >= start).sum()),
                  "new_item_cases": int(fresh_items.sum()), "new_items": len(fresh), "strategies": {}}
        per_user = {}
        for strategy, chain in models.items():
            entry, per_user[strategy] = _strategy_entry(spec, log, cases, (fresh_items, fresh), k, chain,
                                                        strategy, first_cases, runtime, cache)
            period["strategies"][strategy] = entry
            rows.append({"period": k, "strategy": strategy, "NDCG@10": entry["metrics"].get("NDCG@10"),
                         "HR@10": entry["metrics"].get("HR@10"), "seconds": entry["train_seconds"]})
            events(
                BacktestEvaluated(k, strategy, rows[-1]["NDCG@10"], rows[-1]["HR@10"], entry["train_seconds"])
            )
        names = list(per_user)
        pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
        comparisons.append({"period": k, "pairs": {f"{a} - {b}": paired_comparisons(
            per_user[a], per_user[b], ev.bootstrap or 1000, ev.bootstrap_seed) for a, b in pairs}})
        per_period.append(period)
    return {"periods": per_period, "comparisons": comparisons, "rows": rows,
            "summary": summarize(per_period, list(models))}


def _strategy_entry(spec: ExperimentSpec, log: Log, cases, new, k: int, chain: list[Trained], strategy: str,
                    first_cases, runtime, cache: dict) -> tuple[dict, dict]:
    """One strategy's model on period k: (its report entry, per-user metric values). new: (cases whose
    target is an item new last period, those items)."""
    ev, ks = spec.eval, spec.eval.ks
    fresh_items, fresh = new
    trained = chain[k]
    model, item_ids = _load(trained, runtime)
    ranked = rank_period(
        model,
        item_ids,
        log,
        cases,
        spec.model.max_len,
        ev.batch_size,
        ev.filter_seen,
        runtime,
        ev.chunk_items,
    )
    ranks = ranked.ranks
    values = user_metrics(ranks, cases, ks)
    cis = bootstrap_ci(values, ev.bootstrap, ev.bootstrap_seed) if ev.bootstrap else {}
    entry = {
        "run": trained.name,
        "train_seconds": round(trained.seconds, 2),
        "max_train_time": trained.max_train_time,
        "metrics": {n: float(v.mean()) for n, v in values.items()},
        "ci": cis,
        "new_users": {
            n: float(v.mean()) for n, v in user_metrics(ranks, cases, [10], cases.new_user).items()
        }
        if cases.new_user.any()
        else None,
        "new_items_HR@10": float((ranks[fresh_items] <= 10).mean()) if fresh_items.any() else None,
        "new_items_recommended": _recommended(ranked.top, fresh),
    }
    if strategy == "update" and k > 0:
        entry["forgetting"] = _forgetting(
            spec, log, first_cases, chain[k - 1], trained, model, item_ids, runtime, cache
        )
    return entry, values


def _forgetting(
    spec, log, first_cases, parent: Trained, child: Trained, model, item_ids, runtime, cache
) -> dict:
    """NDCG@10 on the first period's cases, before (parent) and after (this update)."""
    ev = spec.eval

    def score(trained: Trained, loaded=None) -> float:
        if trained.run_dir not in cache:
            m, ids = loaded or _load(trained, runtime)
            ranks = rank_period(m, ids, log, first_cases, spec.model.max_len, ev.batch_size, ev.filter_seen,
                                runtime, ev.chunk_items).ranks
            cache[trained.run_dir] = user_metrics(ranks, first_cases, [10])["NDCG@10"]
        return float(cache[trained.run_dir].mean())

    before, after = score(parent), score(child, (model, item_ids))
    return {"on_period": 0, "NDCG@10_before": before, "NDCG@10_after": after, "change": after - before}


def _recommended(top: np.ndarray, fresh: np.ndarray) -> dict:
    """How many of the items first seen in the previous period reach any top-10 list of this period's
    cases, and their share of all top-10 slots."""
    hits = np.isin(top, fresh)  # [E, K]
    filled = int((top >= 0).sum())
    return {"items": int(len(np.unique(top[hits]))), "of": int(len(fresh)),
            "slot_share": float(hits.sum() / filled) if filled else 0.0}


def summarize(per_period: list[dict], strategies: list[str]) -> dict:
    """Means over the periods after the first (where the strategies differ) and over all periods."""
    out: dict = {"strategies": {}}
    for strategy in strategies:
        ndcg = [p["strategies"][strategy]["metrics"]["NDCG@10"] for p in per_period]
        secs = [p["strategies"][strategy]["train_seconds"] for p in per_period]
        out["strategies"][strategy] = {
            "mean_NDCG@10_all": float(np.mean(ndcg)), "mean_NDCG@10_after_first": float(np.mean(ndcg[1:]))
            if len(ndcg) > 1 else None, "train_seconds_after_first": round(float(sum(secs[1:])), 2),
            "train_seconds_first": round(float(secs[0]), 2)}
    s = out["strategies"]
    if {"retrain", "update"} <= set(s) and len(per_period) > 1:
        r, u = s["retrain"], s["update"]
        out["update_vs_retrain"] = {
            "ndcg_ratio": u["mean_NDCG@10_after_first"] / r["mean_NDCG@10_after_first"]
            if r["mean_NDCG@10_after_first"] else None,
            "seconds_ratio": u["train_seconds_after_first"] / r["train_seconds_after_first"]
            if r["train_seconds_after_first"] else None}
        if "frozen" in s:
            f = s["frozen"]["mean_NDCG@10_after_first"]
            ratio = out["update_vs_retrain"]
            out["targets"] = {
                "update_keeps_95pct_of_retrain": bool(
                    ratio["ndcg_ratio"] is not None and ratio["ndcg_ratio"] >= 0.95
                ),
                "update_at_most_25pct_seconds": bool(
                    ratio["seconds_ratio"] is not None and ratio["seconds_ratio"] <= 0.25
                ),
                "both_beat_frozen": bool(
                    u["mean_NDCG@10_after_first"] > f and r["mean_NDCG@10_after_first"] > f
                ),
            }
    return out


def plot_backtest(report: dict, path: Path) -> None:
    """Left: NDCG@10 per period and strategy with 95% CIs; right: training seconds per period."""
    from seqrec_cli.pipelines.report_plots import _pyplot, _save

    plt = _pyplot()
    fig, (ax, bars) = plt.subplots(1, 2, figsize=(12, 4), gridspec_kw={"width_ratios": [3, 2]})
    periods = np.array([p["period"] for p in report["periods"]])
    names = report["strategies"]
    for i, strategy in enumerate(names):
        entries = [p["strategies"][strategy] for p in report["periods"]]
        values = np.array([e["metrics"]["NDCG@10"] for e in entries])
        cis = [e["ci"].get("NDCG@10") for e in entries]
        x = periods + (i - (len(names) - 1) / 2) * 0.08
        if all(cis):
            err = [values - [c["low"] for c in cis], [c["high"] for c in cis] - values]
            ax.errorbar(x, values, yerr=err, marker="o", capsize=3, label=strategy)
        else:
            ax.plot(x, values, marker="o", label=strategy)
        width = 0.8 / len(names)
        bars.bar(periods + (i - (len(names) - 1) / 2) * width, [e["train_seconds"] for e in entries], width,
                 label=strategy)
    ax.set_xlabel("period")
    ax.set_ylabel("NDCG@10 (mean over users, 95% CI)")
    ax.set_title(f"{report['spec']}: {report['period_seconds'] / 86400:g}-day periods")
    ax.set_xticks(periods)
    ax.grid(alpha=0.3)
    ax.legend()
    bars.set_xlabel("period")
    bars.set_ylabel("training seconds")
    bars.set_title("training cost (period 0: one shared model)")
    bars.set_xticks(periods)
    bars.grid(alpha=0.3, axis="y")
    _save(fig, path)


def copy_results(result: BacktestResult, json_path: Path | None, png_path: Path | None) -> None:
    """Also write the report and figure where the user asked (each replaced atomically: a make target
    regenerates its committed result)."""
    for src, dst in ((result.folder / "backtest.json", json_path), (result.png, png_path)):
        if dst is None:
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f".{dst.name}.tmp")
        shutil.copyfile(src, tmp)
        tmp.replace(dst)
