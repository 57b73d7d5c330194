"""`seqrec report --sweep`: a Markdown report of a study (read live from its database, so it works
while the sweep runs): trials, optimisation history, validation curves, parameter importances,
parallel coordinates, and the best trial against the shipped default, user by user."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path

from seqrec_cli.atomic import atomic_write_json, atomic_write_text
from seqrec_cli.errors import UserError
from seqrec_cli.pipelines import sweep_plots
from seqrec_cli.pipelines.report import MARKER, _table, claim_out_dir, format_p, headline_k
from seqrec_cli.pipelines.results import compare, load_run_eval, resolve_run


@dataclass
class TrialRow:
    number: int
    state: str  # complete, pruned, fail, running, waiting
    value: float | None  # complete: best validation; pruned: last reported validation
    params: dict
    intermediate: dict[int, float]
    run_dir: str | None
    epochs: int | None
    note: str


def load_sweep(folder: Path):
    """(sweep.json, Optuna study) of a study folder <output_root>/sweeps/<study>."""
    from seqrec_cli.pipelines.sweep import load_optuna

    path = Path(folder) / "sweep.json"
    if not path.is_file():
        raise UserError("not a sweep folder (no sweep.json)", where=str(folder),
                        fix="pass the study folder <output_root>/sweeps/<study> that `seqrec sweep` printed")
    info = json.loads(path.read_text())
    optuna = load_optuna()
    try:
        study = optuna.load_study(study_name=info["study"], storage=info["storage"])
    except KeyError as exc:
        raise UserError(f"study {info['study']!r} is not in its database", where=info["storage"],
                        fix="check the storage URL in sweep.json") from exc
    return info, study


def trial_rows(study) -> list[TrialRow]:
    rows = []
    for t in study.get_trials(deepcopy=False):
        state = t.state.name.lower()
        inter = {int(k): float(v) for k, v in t.intermediate_values.items()}
        value = (
            t.value if state == "complete" else (inter[max(inter)] if inter and state == "pruned" else None)
        )
        note = t.user_attrs.get("failed_because") or t.user_attrs.get("stop_reason") or ""
        if t.user_attrs.get("retry_of") is not None:
            note = f"retry of trial {t.user_attrs['retry_of']}; {note}".strip("; ")
        rows.append(TrialRow(t.number, state, value, dict(t.params), inter, t.user_attrs.get("run_dir"),
                             t.user_attrs.get("epochs"), note))
    return rows


def _importances(study) -> tuple[dict[str, float] | None, str]:
    from seqrec_cli.pipelines.sweep import load_optuna

    optuna = load_optuna()
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) < 3:
        return None, f"needs at least 3 complete trials (has {len(complete)})"
    try:
        values = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError) as exc:  # e.g. every complete trial drew the same values
        return None, str(exc)
    return dict(values), "fANOVA over the complete trials (Optuna's default evaluator)"


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _comparison(
    best: TrialRow | None, baseline: str | None, split: str, resamples: int, seed: int
) -> tuple[list[str], dict | None]:
    """Markdown lines and the JSON of best trial vs baseline on `split` (both must be evaluated)."""
    if best is None:
        return ["No complete trial yet."], None
    if baseline is None:
        return ["No baseline run found: train and evaluate the shipped default (`seqrec finetune SPEC` then "
                f"`seqrec evaluate SPEC --split {split}`) or pass `--baseline RUN`."], None
    try:
        a, b = load_run_eval(best.run_dir, split), load_run_eval(baseline, split)
        result = compare(a, b, resamples, seed)
    except UserError as exc:
        return [f"Not available: {exc.render()}"], None
    k = headline_k(a.report.protocol.ks)
    rows = []
    for m in (f"NDCG@{k}", f"HR@{k}", f"MRR@{k}"):
        r = result["metrics"][m]
        rows.append(
            [
                m,
                f"{r['a']:.4f}",
                f"{r['b']:.4f}",
                f"{r['diff']:+.4f}",
                f"[{r['low']:+.4f}, {r['high']:+.4f}]",
                format_p(r["t_test"]["p"]),
                format_p(r["wilcoxon"]["p"]),
                f"{r['a_better']:,} / {r['b_better']:,}",
            ]
        )
    ci = a.report.ci.get(f"NDCG@{k}")
    lines = [
        f"Best trial {best.number} (`{a.folder}`) against `{b.folder}` on {split}, {result['cases']:,} "
        f"users, "
        f"paired ({resamples} bootstrap resamples, seed {seed}).",
        f"Best trial {split} NDCG@{k}: {a.report.metrics[f'NDCG@{k}']:.4f}"
        + (f" [95% CI {ci['low']:.4f}, {ci['high']:.4f}]" if ci else ""),
        "",
        _table(
            [
                "metric",
                "best trial",
                "default",
                "difference",
                "95% CI",
                "t-test p",
                "Wilcoxon p",
                "users better / worse",
            ],
            rows,
        ),
    ]
    return lines, result


def _baseline_valid(baseline: str | None, monitor: str) -> float | None:
    """The baseline run's best validation value (its run.json), the figure the sweep must beat."""
    path = Path(baseline) / "run.json" if baseline else None
    if path is None or not path.is_file():
        return None
    value = json.loads(path.read_text()).get(f"best_valid_{monitor}")
    return float(value) if value is not None else None


def _summary_lines(info: dict, rows: list[TrialRow], best: TrialRow | None, command: str | None) -> list[str]:
    """Title, how to regenerate, what was run, the best trial and the table of every trial."""
    monitor, params = info["monitor"], list(info["space_file"]["params"])
    counts = {
        s: sum(r.state == s for r in rows) for s in ("complete", "pruned", "fail", "running", "waiting")
    }
    md = [f"# Sweep {info['study']}", ""]
    if command:
        md += ["Regenerate with:", "", "```bash", command, "```", ""]
    md += [
        f"- **Sweep command:** `{info.get('command') or '?'}`",
        f"- **Spec / space:** `{info['spec']}` / `{info['space']}`; storage `{info['storage']}`",
        f"- **Objective:** best validation {monitor} of each trial (maximised); selection on validation only",
        "- **Trials:** "
        + ", ".join(f"{v} {k}" for k, v in counts.items() if v)
        + f" (target {info['target_trials']} complete + pruned)",
        "",
    ]
    if best is not None:
        md += [
            "## Best trial",
            "",
            _table(
                ["parameter", "value"],
                [[k, _fmt(v)] for k, v in best.params.items()]
                + [[f"valid {monitor}", f"{best.value:.4f}"], ["run folder", f"`{best.run_dir}`"]],
            ),
            "",
        ]
        if info.get("best_spec"):
            md += [f"Ready spec: `{info['best_spec']}`.", ""]
    md += [
        "## Trials",
        "",
        _table(
            ["trial", "state", f"valid {monitor}", "epochs", *params, "note"],
            [
                [
                    str(r.number),
                    r.state,
                    "-" if r.value is None else f"{r.value:.4f}",
                    str(r.epochs or len(r.intermediate) or "-"),
                    *[_fmt(r.params.get(p, "-")) for p in params],
                    r.note,
                ]
                for r in rows
            ],
        ),
        "",
    ]
    return md


def _plot_lines(
    info: dict, study, rows: list[TrialRow], reference: float | None, out: Path
) -> tuple[list[str], dict]:
    """The four figures (importances and parallel coordinates when there is enough to show)."""
    monitor, space = info["monitor"], info["space_file"]["params"]
    sweep_plots.history(rows, monitor, out / "history.png",
                        None if reference is None else ("default's best validation", reference))
    sweep_plots.curves(rows, monitor, out / "curves.png")
    md = [
        "## Optimisation history",
        "",
        "![history](history.png)",
        "",
        "![validation curves](curves.png)",
        "",
    ]
    values, how = _importances(study)
    md += ["## Parameter importances", ""]
    if values:
        sweep_plots.importances(values, out / "importances.png")
        md += [
            f"{how}.",
            "",
            _table(["parameter", "importance"], [[k, f"{v:.3f}"] for k, v in values.items()]),
            "",
            "![importances](importances.png)",
            "",
        ]
    else:
        md += [f"Not computed: {how}.", ""]
    if any(r.state == "complete" for r in rows):
        log_params = {k for k, d in space.items() if d["type"] == "log_float" or d.get("log")}
        sweep_plots.parallel_coordinates(
            rows, list(space), log_params, monitor, out / "parallel_coordinates.png"
        )
        md += ["## Parallel coordinates", "", "![parallel coordinates](parallel_coordinates.png)", ""]
    return md, values


def build_sweep_report(folder: Path, out: Path, baseline: str | None = None, split: str = "test",
                       resamples: int = 1000, seed: int = 0, command: str | None = None) -> Path:
    info, study = load_sweep(folder)
    out = Path(out)
    claim_out_dir(out)
    monitor = info["monitor"]
    rows = trial_rows(study)
    complete = [r for r in rows if r.state == "complete" and r.value is not None]
    best = max(complete, key=lambda r: (r.value, -r.number)) if complete else None
    if baseline is None:  # the shipped default: the base spec's own run beside the trials
        guess = Path(folder).resolve().parent.parent / "runs" / info["base_spec_name"]
        baseline = str(guess) if guess.is_dir() else None
    else:
        baseline = str(resolve_run(baseline))
    reference = _baseline_valid(baseline, monitor)
    md = _summary_lines(info, rows, best, command)
    plots, importances = _plot_lines(info, study, rows, reference, out)
    md += plots
    lines, comparison = _comparison(best, baseline, split, resamples, seed)
    md += [f"## Best trial vs the shipped default ({split})", ""]
    if reference is not None and best is not None:
        verdict = "beats" if best.value > reference else "does not beat"
        md += [
            f"On validation (the selection split), the best trial's {monitor} {best.value:.4f} {verdict} the "
            f"default's {reference:.4f} (`{baseline}`).",
            "",
        ]
    md += [*lines, ""]
    atomic_write_json(
        out / MARKER,
        {
            "sweep": str(folder),
            "study": info["study"],
            "split": split,
            "counts": {
                s: sum(r.state == s for r in rows)
                for s in ("complete", "pruned", "fail", "running", "waiting")
            },
            "best": None
            if best is None
            else {"number": best.number, "value": best.value, "params": best.params, "run_dir": best.run_dir},
            "importances": importances,
            "baseline": baseline,
            "baseline_valid": reference,
            "comparison": comparison,
        },
    )
    path = out / "README.md"
    atomic_write_text(path, "\n".join(md))
    return path


def sweep_command_line(folder: Path, out: Path, baseline: str | None, split: str) -> str:
    extra = f" --baseline {shlex.quote(baseline)}" if baseline else ""
    return f"seqrec report --sweep {shlex.quote(str(folder))}{extra} --out {shlex.quote(str(out))} "
    f"--split {split}"
