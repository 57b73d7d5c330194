"""`seqrec report`: a self-contained Markdown report (README.md + PNGs + report.json) over evaluated runs.

Every run must have been evaluated on the same prepared dataset with the same protocol (else the
leaderboard would compare different things): the report refuses otherwise.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from seqrec_cli.atomic import atomic_write_json, atomic_write_text
from seqrec_cli.core.breakdowns import HISTORY_EDGES, POPULARITY_EDGES
from seqrec_cli.errors import UserError
from seqrec_cli.pipelines import report_plots
from seqrec_cli.pipelines.eval_report import EvalReport
from seqrec_cli.pipelines.results import RunEval, check_comparable, compare, load_run_eval

MARKER = "report.json"  # a folder holding this was written by `seqrec report` and may be rewritten by it


def headline_k(ks: list[int]) -> int:
    return 10 if 10 in ks else ks[len(ks) // 2]


def _ci(run: RunEval, metric: str) -> str:
    value = run.report.metrics[metric]
    ci = run.report.ci.get(metric)
    return f"{value:.4f} [{ci['low']:.4f}, {ci['high']:.4f}]" if ci else f"{value:.4f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def format_p(p: float) -> str:
    """p-values below double precision print as a bound, not as a misleading 0."""
    return "<1e-300" if p < 1e-300 else f"{p:.2g}"


def _kind(run: RunEval) -> str:
    model = run.report.model
    return (
        model.get("encoder", model.get("kind", "?"))
        if model.get("kind") == "neural"
        else model.get("kind", "?")
    )


def claim_out_dir(out: Path) -> None:
    if out.exists() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise UserError(
            "output folder exists and was not written by `seqrec report`; refusing to overwrite it",
            where=str(out),
            fix="choose a new --out folder",
        )
    out.mkdir(parents=True, exist_ok=True)


def build_report(run_args: list[str], out: Path, split: str = "test", resamples: int = 1000, seed: int = 0,
                 title: str | None = None, command: str | None = None) -> Path:
    runs = [load_run_eval(arg, split) for arg in run_args]
    check_comparable(runs)
    out = Path(out)
    claim_out_dir(out)
    ks = runs[0].report.protocol.ks
    k = headline_k(ks)
    ndcg, hr = f"NDCG@{k}", f"HR@{k}"
    runs.sort(key=lambda r: -r.report.metrics[ndcg])
    best = runs[0]
    comparisons = [compare(best, other, resamples, seed) for other in runs[1:]]
    md = _header(best.report, split, title, command, resamples, seed)
    md += ["## Leaderboard", "", _leaderboard(runs, k), "", "![leaderboard](leaderboard.png)", ""]
    md += [
        f"## Is {best.name} really better? (paired, user by user)",
        "",
        _paired(best.name, comparisons, ndcg, hr),
    ]
    md += ["", "## Metric@K", "", _metric_at_k(runs, ks), "", "![metric at K](metric_at_k.png)", ""]
    report_plots.leaderboard(runs, k, out / "leaderboard.png")
    report_plots.metric_at_k(runs, out / "metric_at_k.png")
    md += _curves(runs, ndcg, out)
    md += _breakdowns(runs, ndcg, out)
    md += _sampled(runs, hr, ndcg)
    md += ["## Runs", "", _table(["run", "folder", "spec hash", "seed", "checkpoint epoch"],
                                 [[r.name, f"`{r.folder}`", r.report.spec_hash[:12], str(r.report.seed),
                                   str(r.report.checkpoint["epoch"])] for r in runs]), ""]
    leaderboard = {
        r.name: {"metrics": r.report.metrics, "ci": r.report.ci, "list_metrics": r.report.list_metrics}
        for r in runs
    }
    atomic_write_json(out / MARKER, {"split": split, "runs": [str(r.folder) for r in runs], "headline_k": k,
                                     "leaderboard": leaderboard, "comparisons": comparisons})
    path = out / "README.md"
    atomic_write_text(path, "\n".join(md))
    return path


def _header(first: EvalReport, split: str, title: str | None, command: str | None, resamples: int,
            seed: int) -> list[str]:
    proto = first.protocol
    split_desc = proto.split["kind"] + (
        f" (targets: {proto.split['targets']}, cuts {proto.split['cuts']})" if proto.split.get("cuts") else ""
    )
    fp = first.dataset_fingerprint
    md = [f"# {title or 'Evaluation report'}", ""]
    if command:
        md += ["Regenerate with:", "", "```bash", command, "```", ""]
    return md + [
        f"- **Split evaluated:** {split} · {first.cases:,} cases ({first.users:,} users), "
        f"{first.num_items:,} items · split protocol: {split_desc}",
        f"- **Ranking:** {proto.ranking}; ties {proto.ties}; filter_seen={proto.filter_seen}",
        f"- **Dataset fingerprint:** {fp['hash'][:16]} ({fp['users']:,} users, {fp['items']:,} items, "
        f"{fp['interactions']:,} interactions)",
        f"- **Confidence intervals:** 95% percentile bootstrap over users, {proto.bootstrap.resamples} "
        f"resamples (seed {proto.bootstrap.seed}); "
        f"paired comparisons: {resamples} resamples (seed {seed}), "
        "paired t-test and Wilcoxon signed-rank test (two-sided)",
        "",
    ]


def _leaderboard(runs: list[RunEval], k: int) -> str:
    ndcg, hr, mrr = f"NDCG@{k}", f"HR@{k}", f"MRR@{k}"
    return _table(
        [
            "run",
            "model",
            f"{ndcg} [95% CI]",
            f"{hr} [95% CI]",
            f"{mrr} [95% CI]",
            f"Coverage@{k}",
            f"Novelty@{k} (bits)",
            f"AvgPop@{k}",
        ],
        [
            [
                r.name,
                _kind(r),
                _ci(r, ndcg),
                _ci(r, hr),
                _ci(r, mrr),
                f"{r.report.list_metrics[f'Coverage@{k}']:.3f}",
                f"{r.report.list_metrics[f'Novelty@{k}']:.2f}",
                f"{r.report.list_metrics[f'AvgPop@{k}']:.0f}",
            ]
            for r in runs
        ],
    )


def _paired(best: str, comparisons: list[dict], ndcg: str, hr: str) -> str:
    return _table(
        [
            "vs",
            "metric",
            f"{best} - other",
            "95% CI",
            "t-test p",
            "Wilcoxon p",
            "users better / worse",
        ],
        [
            [
                c["b"],
                m,
                f"{c['metrics'][m]['diff']:+.4f}",
                f"[{c['metrics'][m]['low']:+.4f}, {c['metrics'][m]['high']:+.4f}]",
                format_p(c["metrics"][m]["t_test"]["p"]),
                format_p(c["metrics"][m]["wilcoxon"]["p"]),
                f"{c['metrics'][m]['a_better']:,} / {c['metrics'][m]['b_better']:,}",
            ]
            for c in comparisons
            for m in (ndcg, hr)
        ],
    )


def _metric_at_k(runs: list[RunEval], ks: list[int]) -> str:
    return _table(
        ["run"] + [f"NDCG@{x}" for x in ks] + [f"HR@{x}" for x in ks],
        [
            [r.name]
            + [f"{r.report.metrics[f'NDCG@{x}']:.4f}" for x in ks]
            + [f"{r.report.metrics[f'HR@{x}']:.4f}" for x in ks]
            for r in runs
        ],
    )


def _curves(runs: list[RunEval], ndcg: str, out: Path) -> list[str]:
    monitor = runs[0].info.get("monitor") or ndcg
    if not report_plots.training_curves(runs, monitor, out / "training_curves.png"):
        return []
    return [
        "## Training curves",
        "",
        f"Training loss and validation {monitor} per epoch (runs that train; "
        "baselines are fitted in one pass).",
        "",
        "![training curves](training_curves.png)",
        "",
    ]


def _breakdowns(runs: list[RunEval], ndcg: str, out: Path) -> list[str]:
    best = runs[0]
    md = [
        "## Breakdowns",
        "",
        f"History length = items before the target (buckets [lo, hi), edges {list(HISTORY_EDGES)}); target "
        f"popularity = the target's training interactions (edges {list(POPULARITY_EDGES)}).",
        "",
    ]
    for kind, label, png in (("history_length", "history length", "breakdown_history.png"),
                             ("target_popularity", "target popularity", "breakdown_popularity.png")):
        report_plots.breakdown(runs, kind, ndcg, f"{ndcg} by {label}", out / png)
        buckets = [b["bucket"] for b in best.report.breakdowns[kind].buckets]
        rows = []
        for r in runs:
            by = {b["bucket"]: b for b in r.report.breakdowns[kind].buckets}
            rows.append([r.name] + [f"{by[b][ndcg]:.4f}" if b in by else "-" for b in buckets])
        counts = {b["bucket"]: b["cases"] for b in best.report.breakdowns[kind].buckets}
        md += [
            f"### {ndcg} by {label}",
            "",
            _table(["run"] + [f"{b} (n={counts[b]:,})" for b in buckets], rows),
            "",
            f"![{label}]({png})",
            "",
        ]
    return md


def _sampled(runs: list[RunEval], hr: str, ndcg: str) -> list[str]:
    md: list[str] = []
    sampled = [r for r in runs if r.report.sampled is not None]
    if sampled:
        md += [
            "## SAMPLED metrics (not full ranking)",
            "",
            "The target ranked against sampled negatives only, as in older papers. These numbers are "
            "inflated and can reorder models; the full-ranking numbers above are the ones to trust.",
            "",
            _table(
                ["run", "negatives", f"sampled_{hr}", f"sampled_{ndcg}", f"full {hr}", f"full {ndcg}"],
                [
                    [
                        r.name,
                        f"{r.report.sampled.negatives} {r.report.sampled.strategy}",
                        f"{r.report.sampled.metrics[f'sampled_{hr}']:.4f}",
                        f"{r.report.sampled.metrics[f'sampled_{ndcg}']:.4f}",
                        f"{r.report.metrics[hr]:.4f}",
                        f"{r.report.metrics[ndcg]:.4f}",
                    ]
                    for r in sampled
                ],
            ),
            "",
        ]
    return md


def command_line(run_args: list[str], out: Path, split: str) -> str:
    return (
        "seqrec report "
        + " ".join(shlex.quote(a) for a in run_args)
        + f" --out {shlex.quote(str(out))} --split {split}"
    )
