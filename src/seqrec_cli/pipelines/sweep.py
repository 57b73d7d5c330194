"""`seqrec sweep`: many finetunes of one spec, chosen by Optuna (TPE), selected on validation only.

- The study lives in a database (SQLite under <output_root>/sweeps/<study>/ by default; any URL
  Optuna accepts), so a sweep is resumable and several processes or machines can share it.
- Every trial is an ordinary run folder, runs/<study>-t<number>, made by `finetune` itself; the
  pruner is fed from finetune's per-epoch events (no second training loop).
- --trials N counts COMPLETE + PRUNED trials of the study; an interrupted trial is marked FAIL and
  retried, never counted twice (sweep_study.py).
"""

from __future__ import annotations

import ctypes
import json
import math
import multiprocessing
import os
import queue as queue_mod
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from seqrec_cli.atomic import atomic_write_json, atomic_write_text
from seqrec_cli.errors import UserError
from seqrec_cli.events import EpochDone, Event
from seqrec_cli.pipelines.paths import run_dir
from seqrec_cli.pipelines.sweep_study import (
    Heartbeat,
    SweepConfig,
    ask_lock,
    count_trials,
    load_optuna,
    open_study,
    owner_record,
    reap_dead_trials,
    storage_url,
    study_folder,
)
from seqrec_cli.spec.loader import dump_spec
from seqrec_cli.spec.models import ExperimentSpec
from seqrec_cli.spec.space import CategoricalDist, FloatDist, IntDist, LogFloatDist, apply_params

__all__ = ["SweepConfig", "open_study", "run_worker", "sweep"]


# ---- events (typed; the CLI renders them) -------------------------------------------------------

@dataclass(frozen=True)
class SweepStarted:
    study: str
    storage: str
    folder: str
    counted: int  # COMPLETE + PRUNED trials already in the study
    target: int
    jobs: int
    reaped: tuple[int, ...]  # trials found RUNNING with a dead owner, now FAIL (and retried)


@dataclass(frozen=True)
class TrialStarted:
    number: int
    params: dict
    run_dir: str
    retry_of: int | None


@dataclass(frozen=True)
class TrialEpoch:
    number: int
    epoch: int
    value: float
    monitor: str


@dataclass(frozen=True)
class TrialFinished:
    number: int
    state: str  # complete, pruned, failed
    value: float | None
    epochs: int
    seconds: float
    detail: str = ""


SweepEvent = SweepStarted | TrialStarted | TrialEpoch | TrialFinished
SweepEvents = Callable[[SweepEvent], None]


@dataclass
class SweepResult:
    folder: Path
    counts: dict[str, int]
    best: dict | None  # number, value, params, run_dir
    best_spec_path: Path | None
    test: dict | None = None  # metrics + ci of the best trial on test, when asked for
    tested_trials: list[int] = field(default_factory=list)


# ---- one trial --------------------------------------------------------------------------------------

def suggest(trial, key: str, dist) -> object:
    if isinstance(dist, LogFloatDist):
        return trial.suggest_float(key, dist.low, dist.high, log=True)
    if isinstance(dist, FloatDist):
        return trial.suggest_float(key, dist.low, dist.high, step=dist.step)
    if isinstance(dist, IntDist):
        return trial.suggest_int(key, dist.low, dist.high, step=dist.step, log=dist.log)
    if isinstance(dist, CategoricalDist):
        return trial.suggest_categorical(key, dist.choices)
    raise TypeError(f"unknown distribution {dist!r}")  # the space model admits no other


def trial_name(study: str, number: int) -> str:
    return f"{study}-t{number}"


def trial_spec(config: SweepConfig, number: int, params: dict, deadline: float | None) -> ExperimentSpec:
    """The base spec with the trial's values, its own run name and, under --timeout, a wall-clock cap
    so the trial ends with the sweep's budget. Raises pydantic's ValidationError for a bad combination."""
    raw = apply_params(config.spec.model_dump(mode="json"), params)
    raw["name"] = trial_name(config.study, number)
    if deadline is not None:
        left = max((deadline - time.time()) / 60, 0.1)
        mine = raw["train"].get("max_minutes")
        raw["train"]["max_minutes"] = round(min(mine, left) if mine else left, 2)
    return ExperimentSpec.model_validate(raw)


class PruningFeed:
    """finetune's event listener for one trial: reports each validated epoch (EpochDone) to the pruner
    and stops the trial (optuna.TrialPruned, raised out of the training loop) when the pruner says so."""

    def __init__(self, trial, events: SweepEvents):
        self.trial, self.events = trial, events
        self.epochs, self.last = 0, None

    def __call__(self, event: Event) -> None:
        if not isinstance(event, EpochDone) or event.monitored is None:
            return
        self.epochs, self.last = event.epoch, event.monitored
        self.events(TrialEpoch(self.trial.number, event.epoch, event.monitored, event.monitor))
        self.trial.report(event.monitored, event.epoch)
        if self.trial.should_prune():
            raise load_optuna().TrialPruned(
                f"pruned at epoch {event.epoch} ({event.monitor} {event.monitored:.4f})"
            )


def _mark_run(folder: Path, **fields) -> None:
    """Record the sweep's verdict in the trial's run.json (finetune left it 'running' when pruned)."""
    path = folder / "run.json"
    info = json.loads(path.read_text()) if path.is_file() else {}
    atomic_write_json(path, {**info, **fields})


def run_trial(study, trial, config: SweepConfig, deadline: float | None, events: SweepEvents) -> str:
    """Train an asked trial with finetune and tell its result. Returns its state."""
    optuna = load_optuna()
    from pydantic import ValidationError

    from seqrec_cli.pipelines.finetune import finetune

    started = time.time()
    with Heartbeat(study._storage, trial._trial_id):
        try:
            params = {key: suggest(trial, key, dist) for key, dist in config.space.params.items()}
            spec = trial_spec(config, trial.number, params, deadline)
        except ValidationError as exc:
            detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            trial.set_user_attr("failed_because", f"the spec refuses this combination: {detail}")
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            events(TrialFinished(trial.number, "failed", None, 0, 0.0, f"invalid combination: {detail}"))
            return "failed"
        folder = run_dir(spec)
        trial.set_user_attr("run_dir", str(folder))
        events(TrialStarted(trial.number, params, str(folder), trial.user_attrs.get("retry_of")))
        feed = PruningFeed(trial, events)
        try:
            result = finetune(spec, events=feed)
        except optuna.TrialPruned as exc:
            _mark_run(folder, status="pruned", pruned_at_epoch=feed.epochs, sweep_trial=trial.number)
            trial.set_user_attr("epochs", feed.epochs)
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            events(
                TrialFinished(trial.number, "pruned", feed.last, feed.epochs, time.time() - started, str(exc))
            )
            return "pruned"
        except (KeyboardInterrupt, Exception) as exc:  # UserError included
            reason = exc.render() if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"
            trial.set_user_attr("failed_because", reason[:500])
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            events(TrialFinished(trial.number, "failed", None, feed.epochs, time.time() - started, reason))
            if isinstance(exc, UserError):
                return "failed"
            raise  # a bug or Ctrl-C: the trial is recorded as failed, the sweep stops
    if not math.isfinite(result.best_value):  # stopped before its first validation
        trial.set_user_attr("failed_because", f"no validation before it stopped ({result.stop_reason})")
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        events(TrialFinished(trial.number, "failed", None, 0, result.seconds, "no validation"))
        return "failed"
    for key, value in (("best_epoch", result.best_epoch), ("epochs", result.epochs_run),
                       ("stop_reason", result.stop_reason), ("seconds", round(result.seconds, 1))):
        trial.set_user_attr(key, value)
    _mark_run(folder, sweep_trial=trial.number)
    study.tell(trial, result.best_value)
    events(TrialFinished(trial.number, "complete", result.best_value, result.epochs_run, result.seconds,
                         result.stop_reason))
    return "complete"


# ---- workers --------------------------------------------------------------------------------------

def run_worker(config: SweepConfig, worker: int, deadline: float | None, events: SweepEvents) -> None:
    """Run trials until the study counts config.trials COMPLETE + PRUNED ones, or the deadline passes."""
    study = open_study(config, worker)
    failures = 0
    while deadline is None or time.time() < deadline:
        with ask_lock(study_folder(config.spec, config.study)):  # count + ask as one step: no overshoot
            reap_dead_trials(study)
            if count_trials(study, "COMPLETE", "PRUNED", "RUNNING") >= config.trials:
                return  # done, or the last slots are taken by live workers
            trial = study.ask()
            trial.set_user_attr("owner", owner_record())
        state = run_trial(study, trial, config, deadline, events)
        failures = failures + 1 if state == "failed" else 0
        if failures >= 3:
            raise UserError(f"{failures} trials in a row failed (see the sweep's trial lines above)",
                            where=f"study {config.study}", fix="narrow the search space or fix the spec")


def _die_with_parent(parent: int) -> None:
    """A worker must not outlive the `seqrec sweep` that started it (kill -9 of the parent included)."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _worker_main(config: SweepConfig, worker: int, deadline: float | None, events_queue, parent: int) -> None:
    _die_with_parent(parent)
    try:
        run_worker(config, worker, deadline, events_queue.put)
    except UserError as exc:
        events_queue.put(TrialFinished(-1, "failed", None, 0, 0.0, f"worker {worker}: {exc.render()}"))
        sys.exit(2)


def _run_workers(config: SweepConfig, deadline: float | None, events: SweepEvents) -> None:
    context = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools and locks
    events_queue = context.Queue()
    procs = [context.Process(target=_worker_main, args=(config, i, deadline, events_queue, os.getpid()),
                             name=f"seqrec-sweep-{i}") for i in range(config.jobs)]
    for proc in procs:
        proc.start()
        time.sleep(0.5)  # staggered: the first asks do not all land in the same instant
    try:
        while any(p.is_alive() for p in procs) or not events_queue.empty():
            try:
                events(events_queue.get(timeout=0.5))
            except queue_mod.Empty:
                pass
    finally:
        for proc in procs:
            proc.join(timeout=5)
    bad = [p.exitcode for p in procs if p.exitcode]
    if any(code not in (2, -signal.SIGINT) for code in bad):  # a bug: its traceback is above
        raise RuntimeError(f"sweep worker(s) crashed with exit codes {bad}")
    if bad:
        raise UserError(
            f"{len(bad)} sweep worker(s) stopped with exit codes {bad}",
            where=f"study {config.study}",
            fix="see the lines above; rerun the same command to continue the study",
        )


# ---- the sweep ---------------------------------------------------------------------------------------

def sweep(
    config: SweepConfig, events: SweepEvents = lambda event: None, evaluate_best: bool = False
) -> SweepResult:
    from seqrec_cli.pipelines.common import check_monitor
    from seqrec_cli.pipelines.prepare import prepare

    check_monitor(config.spec)
    if config.spec.model.kind != "neural":
        raise UserError("a sweep tunes a trained (neural) model", where="model.kind",
                        fix="sweep a spec with model.kind: neural")
    folder = study_folder(config.spec, config.study)
    folder.mkdir(parents=True, exist_ok=True)
    deadline = time.time() + 60 * config.timeout_minutes if config.timeout_minutes else None
    study = open_study(config)  # first: a bad --storage or a mismatched study fails before any work
    prepare(config.spec)  # once, here: workers must not race to write the same prepared folder
    reaped = reap_dead_trials(study)
    url = storage_url(config.spec, config.study, config.storage)
    # written now and rewritten at the end: `seqrec report --sweep` reads the study while it runs
    atomic_write_json(folder / "sweep.json", summary(config, study, SweepResult(folder, {}, None, None)))
    events(
        SweepStarted(
            config.study,
            url,
            str(folder),
            count_trials(study, "COMPLETE", "PRUNED"),
            config.trials,
            config.jobs,
            tuple(reaped),
        )
    )
    if config.jobs == 1:
        run_worker(config, 0, deadline, events)
    else:
        _run_workers(config, deadline, events)
    return finish(config, study, evaluate_best)


def finish(config: SweepConfig, study, evaluate_best: bool) -> SweepResult:
    """Summarise the study (sweep.json, best_spec.yaml) and, on request, test the best trial once."""
    optuna = load_optuna()
    folder = study_folder(config.spec, config.study)
    trials = study.get_trials(deepcopy=False)
    counts = {state.name.lower(): sum(t.state == state for t in trials) for state in optuna.trial.TrialState}
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = max(complete, key=lambda t: (t.value, -t.number)) if complete else None  # ties: the earlier trial
    result = SweepResult(
        folder, counts, None, None, tested_trials=list(study.user_attrs.get("tested_trials", []))
    )
    if best is not None:
        saved = Path(best.user_attrs.get("run_dir", ""), "spec.yaml")
        # as it ran (a --timeout cap included); rebuilt from its parameters when its folder is elsewhere
        spec = (ExperimentSpec.model_validate(_saved_spec(best)) if saved.is_file()
                else trial_spec(config, best.number, best.params, None))
        result.best = {"number": best.number, "value": best.value, "params": best.params,
                       "run_dir": best.user_attrs.get("run_dir"), "epochs": best.user_attrs.get("epochs"),
                       "best_epoch": best.user_attrs.get("best_epoch")}
        result.best_spec_path = folder / "best_spec.yaml"
        header = (
            f"# Best trial of study {config.study}: trial {best.number}, valid {config.spec.train.monitor} "
            f"{best.value:.4f}\n# Its run folder is {result.best['run_dir']}: `seqrec evaluate THIS_FILE "
            "--split test` evaluates it; change `name` to train it again.\n"
        )
        atomic_write_text(result.best_spec_path, header + dump_spec(spec))
        if evaluate_best:
            result.test = _test_once(study, spec, best.number, result)
    atomic_write_json(folder / "sweep.json", summary(config, study, result))
    return result


def _saved_spec(trial) -> dict:
    """The spec a trial really ran (its run folder's spec.yaml), as a mapping."""
    import yaml

    return yaml.safe_load(Path(trial.user_attrs["run_dir"], "spec.yaml").read_text())


def _test_once(study, spec: ExperimentSpec, number: int, result: SweepResult) -> dict:
    """Test the best trial; never twice for one trial (an existing test report is read back)."""
    from seqrec_cli.pipelines.eval_report import read_eval_report
    from seqrec_cli.pipelines.evaluate import evaluate

    path = run_dir(spec) / "eval" / "test.json"
    report = read_eval_report(path) if path.is_file() else evaluate(spec, "test").report
    if number not in result.tested_trials:
        result.tested_trials.append(number)
        study.set_user_attr("tested_trials", result.tested_trials)
    return {"trial": number, "path": str(path), "metrics": report.metrics, "ci": report.ci}


def summary(config: SweepConfig, study, result: SweepResult) -> dict:
    trials = []
    for t in study.get_trials(deepcopy=False):
        trials.append(
            {
                "number": t.number,
                "state": t.state.name.lower(),
                "value": t.value,
                "params": t.params,
                "intermediate": {str(k): v for k, v in sorted(t.intermediate_values.items())},
                "run_dir": t.user_attrs.get("run_dir"),
                "epochs": t.user_attrs.get("epochs"),
                "retry_of": t.user_attrs.get("retry_of"),
                "failed_because": t.user_attrs.get("failed_because"),
                "seconds": (t.datetime_complete - t.datetime_start).total_seconds()
                if t.datetime_complete and t.datetime_start
                else None,
            }
        )
    return {"study": config.study, "storage": storage_url(config.spec, config.study, config.storage),
            "command": config.command, "spec": config.spec_path, "space": config.space_path,
            "base_spec_name": config.spec.name, "monitor": config.spec.train.monitor, "split": "valid",
            "target_trials": config.trials, "counts": result.counts, "best": result.best,
            "best_spec": str(result.best_spec_path) if result.best_spec_path else None,
            "test": result.test, "tested_trials": result.tested_trials,
            "space_file": config.space.model_dump(mode="json"), "trials": trials}


def event_dict(event: SweepEvent) -> dict:
    return {"event": type(event).__name__, **asdict(event)}
