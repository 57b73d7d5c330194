"""`seqrec evaluate`: full-ranking metrics of a run (best checkpoint, or a fitted baseline) on one split.

Writes eval/<split>.json (metrics, bootstrap CIs, list metrics, breakdowns, optional SAMPLED
metrics, protocol, fingerprint) and eval/<split>_cases.csv: one row per (case, target) pair with
the user, the target, its rank and the history length, so any breakdown can be recomputed.
"""

from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from seqrec_cli.atomic import atomic_write_json, atomic_write_text
from seqrec_cli.core.baselines import BASELINES, training_counts
from seqrec_cli.core.breakdowns import (
    HISTORY_EDGES,
    POPULARITY_EDGES,
    history_breakdown,
    popularity_breakdown,
)
from seqrec_cli.core.evaluation import ModelScorer, Ranked, Scorer, rank_cases
from seqrec_cli.core.metrics import list_metrics, mean_metrics, per_case_metrics
from seqrec_cli.core.uncertainty import bootstrap_ci
from seqrec_cli.data.io import sha256_file
from seqrec_cli.data.process import Sequences
from seqrec_cli.errors import UserError
from seqrec_cli.events import Events, no_events
from seqrec_cli.pipelines.build import BuiltModel, build_model
from seqrec_cli.pipelines.cold_eval import cold_start_section
from seqrec_cli.pipelines.common import (
    BEST,
    load_dataset,
    load_trained,
    rank_options,
    runtime_for,
    split_plan,
)
from seqrec_cli.pipelines.eval_report import Bootstrap, Breakdown, EvalReport, Protocol, Sampled
from seqrec_cli.pipelines.paths import output_root, run_dir
from seqrec_cli.pipelines.prepare import prepare
from seqrec_cli.pipelines.run_format import load_run_checkpoint
from seqrec_cli.pipelines.transfer import init_from
from seqrec_cli.spec.loader import spec_hash
from seqrec_cli.spec.models import ExperimentSpec

RANKING = "full catalogue"
TIES = "pessimistic: rank = 1 + number of other items scoring >= the target"
CI_LEVEL = 0.95
CASES_COLUMNS = ("case", "user", "target", "target_index", "rank", "history_len")


@dataclass
class EvaluateResult:
    path: Path
    report: EvalReport


def load_baseline(spec: ExperimentSpec, manifest: dict, checkpoint: str = BEST) -> tuple[Scorer, dict, Path]:
    path = run_dir(spec) / checkpoint
    payload = load_run_checkpoint(path)
    if payload.get("fingerprint") != manifest["fingerprint"]["hash"]:
        raise UserError("baseline was fitted on a different prepared dataset", where=str(path),
                        fix="evaluate with the spec the run was fitted with, or fit it again")
    if payload.get("kind") != spec.model.kind:
        raise UserError(
            f"run holds a {payload.get('kind')!r} model, the spec says model.kind={spec.model.kind!r}",
            where=str(path),
            fix="use the spec the run was made with",
        )
    return BASELINES[spec.model.kind](payload["state"]), payload, path


def negative_sampler(strategy: str, count: int, train_counts: np.ndarray, seed: int):
    """Sampled-metric negatives: `count` distinct items per (case, target) pair, never in the case's
    history or targets, drawn uniformly or in proportion to training popularity (seeded).

    Sampling without replacement by random keys: the `count` smallest of -log(U) / weight over the
    allowed items (exponential races; uniform when all weights are equal)."""
    n_items = len(train_counts) - 1
    weights = (
        np.ones(n_items + 1) if strategy == "uniform" else np.asarray(train_counts, dtype=np.float64) + 1e-9
    )
    rng = np.random.default_rng(seed)
    rows_per_draw = max(1, (1 << 22) // (n_items + 1))  # bounds the [rows, N + 1] key matrix

    def sample(users, target_rows, seen_items, seen_rows, target_items) -> np.ndarray:
        batch = len(users)
        banned = np.zeros((batch, n_items + 1), dtype=bool)  # [B, N + 1]
        banned[:, 0] = True
        banned[seen_rows, seen_items] = True
        banned[target_rows, target_items] = True
        allowed = n_items + 1 - banned.sum(axis=1)
        if (allowed < count).any():
            raise UserError(
                f"cannot sample {count} negatives: a user has only {int(allowed.min())} unseen items",
                where="eval.sampled_negatives",
                fix="use fewer negatives",
            )
        picked = np.empty((batch, count), dtype=np.int64)
        for lo in range(0, batch, rows_per_draw):
            hi = min(lo + rows_per_draw, batch)
            keys = rng.exponential(size=(hi - lo, n_items + 1)) / weights  # [r, N + 1]
            keys[banned[lo:hi]] = np.inf
            picked[lo:hi] = np.argpartition(keys, count - 1, axis=1)[:, :count]
        return picked[target_rows]  # [T, count]: a case's targets share its negatives

    return sample


def cases_csv(ranked: Ranked, seqs: Sequences) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    columns = CASES_COLUMNS + (("sampled_rank",) if ranked.sampled_ranks is not None else ())
    writer.writerow(columns)
    first = np.r_[True, ranked.case_of[1:] != ranked.case_of[:-1]]
    index_in_case = np.arange(len(first)) - np.maximum.accumulate(np.where(first, np.arange(len(first)), 0))
    for t in range(len(ranked.ranks)):
        case = int(ranked.case_of[t])
        row = [case, seqs.user_ids[ranked.users[case]], seqs.item_ids[ranked.target_items[t]],
               int(index_in_case[t]), int(ranked.ranks[t]), int(ranked.history_len[case])]
        if ranked.sampled_ranks is not None:
            row.append(int(ranked.sampled_ranks[t]))
        writer.writerow(row)
    return buffer.getvalue()


@dataclass
class _Model:
    """What evaluate ranks with: a scorer on a device, where it came from, and the built network if any."""

    scorer: Scorer
    device: torch.device
    where: dict
    built: BuiltModel | None = None


def _checkpoint_record(path: Path, payload: dict) -> dict:
    return {"path": str(path), "epoch": int(payload.get("epoch", 0)), "sha256": sha256_file(path)}


def _load_model(spec: ExperimentSpec, seqs: Sequences, manifest: dict, prepared: Path, runtime,
                checkpoint: str, model_source: str | None, events: Events) -> _Model:
    if spec.model.kind != "neural":  # baselines are table lookups; they stay on the CPU
        scorer, payload, ckpt_path = load_baseline(spec, manifest, checkpoint)
        return _Model(scorer, torch.device("cpu"), _checkpoint_record(ckpt_path, payload))
    if model_source is None:
        built, payload, ckpt_path = load_trained(spec, seqs, manifest, runtime, checkpoint, events)
        where = _checkpoint_record(ckpt_path, payload)
    else:
        built = build_model(spec, seqs, prepared, events)
        done = init_from(built.model, built.items_info, model_source, manifest["fingerprint"]["hash"],
                         run_dir(spec).parent, item_ids=seqs.item_ids, init_items=spec.train.init_items)
        built.model.to(runtime.device)
        where = {"source": model_source, "mode": done["mode"], "zero_shot": done["mode"] == "transfer"}
    return _Model(ModelScorer(built.model, runtime), runtime.device, where, built)


def _protocol(spec: ExperimentSpec, plan) -> Protocol:
    ev = spec.eval
    return Protocol(split=plan.describe(), ranking=RANKING, ties=TIES, filter_seen=ev.filter_seen, ks=ev.ks,
                    bootstrap=Bootstrap(resamples=ev.bootstrap, seed=ev.bootstrap_seed, level=CI_LEVEL))


def _sampled_section(ranked: Ranked, spec: ExperimentSpec, strategy: str) -> Sampled:
    sampled_case = per_case_metrics(ranked.case_of, ranked.sampled_ranks, len(ranked.users), spec.eval.ks)
    return Sampled(
        warning="SAMPLED metrics: the target is ranked against sampled negatives only, not the catalogue",
        strategy=strategy, negatives=spec.eval.sampled_negatives, seed=spec.train.seed,
        metrics={f"sampled_{name}": value for name, value in mean_metrics(sampled_case).items()},
    )


def _report(spec: ExperimentSpec, split: str, plan, seqs: Sequences, manifest: dict, model: _Model,
            ranked: Ranked, counts, seconds: float, precision: str) -> EvalReport:
    ks = spec.eval.ks
    per_case = per_case_metrics(ranked.case_of, ranked.ranks, len(ranked.users), ks)
    ci = (
        bootstrap_ci(per_case, spec.eval.bootstrap, spec.eval.bootstrap_seed, CI_LEVEL)
        if spec.eval.bootstrap
        else {}
    )
    built = model.built
    return EvalReport(
        split=split,
        metrics=mean_metrics(per_case),
        ci=ci,
        list_metrics=list_metrics(ranked.topk, ks, counts),
        breakdowns={
            "history_length": Breakdown(list(HISTORY_EDGES), history_breakdown(ranked.history_len, per_case)),
            "target_popularity": Breakdown(
                list(POPULARITY_EDGES), popularity_breakdown(ranked.target_items, ranked.ranks, counts, ks)
            ),
        },
        filter_seen=spec.eval.filter_seen,
        users=int(len(np.unique(ranked.users))),
        cases=int(len(ranked.users)),
        targets=int(len(ranked.ranks)),
        num_items=seqs.num_items,
        protocol=_protocol(spec, plan),
        model={
            "kind": spec.model.kind,
            **({"encoder": spec.model.encoder} if spec.model.kind == "neural" else {}),
        },
        dataset_fingerprint=manifest["fingerprint"],
        spec_hash=spec_hash(spec),
        seed=spec.train.seed,
        checkpoint=model.where,
        runtime={"device": str(model.device), "precision": precision},
        seconds=round(seconds, 3),
        cases_per_second=round(len(ranked.users) / max(seconds, 1e-9), 1),
        items=built.items_info if built is not None else None,
        cold_start=cold_start_section(
            ranked, seqs, split, spec, built.cold_items, rankable=built.model.unrankable_items() is None
        )
        if built is not None and built.cold_items
        else None,
    )


def evaluate(spec: ExperimentSpec, split: str, checkpoint: str = BEST, sampled: str | None = None,
             model_source: str | None = None, events: Events = no_events) -> EvaluateResult:
    """The run's checkpoint (or fitted baseline) on `split`; with `model_source` (a run, checkpoint or
    export, possibly of another dataset) that model as it is instead: zero-shot when trained elsewhere."""
    if model_source is not None:
        prepare(spec, events)  # zero-shot may be the first command run on this dataset
    seqs, manifest, prepared = load_dataset(spec)
    plan = split_plan(spec, seqs)  # raises on any leakage
    cases = plan.cases[split]
    if len(cases) == 0:
        raise UserError(f"the {split} split has no cases (no user has events on both sides of the cut)",
                        where="data.temporal", fix="move the cuts so that some users have events after them")
    runtime = runtime_for(spec)
    model = _load_model(spec, seqs, manifest, prepared, runtime, checkpoint, model_source, events)
    counts = training_counts(seqs, plan.train_len)
    strategy = sampled or spec.eval.sampled
    sampler = (negative_sampler(strategy, spec.eval.sampled_negatives, counts, spec.train.seed)
               if strategy else None)
    started = time.perf_counter()
    ranked = rank_cases(
        model.scorer, seqs, cases, rank_options(spec, top_k=max(spec.eval.ks), sampled=sampler), model.device
    )
    seconds = time.perf_counter() - started
    precision = runtime.describe()["precision"] if spec.model.kind == "neural" else "fp32"
    report = _report(spec, split, plan, seqs, manifest, model, ranked, counts, seconds, precision)
    if ranked.sampled_ranks is not None:
        report = replace(report, sampled=_sampled_section(ranked, spec, strategy))
    # A model from elsewhere is reported outside the run folder: it never overwrites the run's own
    # report, and a later `finetune` of this spec still finds its run folder free.
    folder = run_dir(spec) / "eval" if model_source is None else \
        output_root(spec) / "evals" / f"{spec.name}-from-{Path(model_source).name}"
    atomic_write_text(folder / f"{split}_cases.csv", cases_csv(ranked, seqs))
    path = folder / f"{split}.json"
    atomic_write_json(path, report.to_json())
    return EvaluateResult(path, report)
