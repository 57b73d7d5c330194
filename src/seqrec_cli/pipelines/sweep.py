"""`seqrec sweep`: many finetunes of one spec, chosen by Optuna (TPE), selected on validation only.

- The study lives in a database (SQLite under <output_root>/sweeps/<study>/ by default; any URL
  Optuna accepts), so a sweep is resumable and several processes or machines can share it.
- Every trial is an ordinary run folder, runs/<study>-t<number>, made by `finetune` itself; the
  pruner is fed from finetune's per-epoch events (no second training loop).
- --trials N counts COMPLETE + PRUNED trials of the study. A trial whose owner process died (kill -9)
  stays RUNNING in the database; it is marked FAIL when the owner is seen dead (same host: at once, by
  pid; another host: when its heartbeat is older than the grace period) and its parameters are tried
  again once, as a new trial. A FAIL never counts, so an interrupted trial is never counted twice.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import math
import multiprocessing
import os
import queue as queue_mod
import signal
import socket
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from seqrec_cli.atomic import atomic_write_json, atomic_write_text
from seqrec_cli.errors import UserError
from seqrec_cli.events import EpochDone, Event
from seqrec_cli.pipelines.paths import output_root, run_dir
from seqrec_cli.spec.loader import dump_spec
from seqrec_cli.spec.models import ExperimentSpec
from seqrec_cli.spec.space import CategoricalDist, FloatDist, IntDist, LogFloatDist, SearchSpace, apply_params

HEARTBEAT_SECONDS = 60
GRACE_SECONDS = 600  # a trial of another host is presumed dead after this long without a heartbeat
SQLITE_TIMEOUT = 120  # seconds a worker waits for the database lock (several workers share one file)


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


@dataclass(frozen=True)
class SweepConfig:
    spec: ExperimentSpec  # the base spec, validated (with --set applied)
    space: SearchSpace
    trials: int
    study: str
    storage: str | None = None  # None: SQLite under the study folder
    timeout_minutes: float | None = None
    jobs: int = 1
    spec_path: str = ""
    space_path: str = ""
    command: str = ""


@dataclass
class SweepResult:
    folder: Path
    counts: dict[str, int]
    best: dict | None  # number, value, params, run_dir
    best_spec_path: Path | None
    test: dict | None = None  # metrics + ci of the best trial on test, when asked for
    tested_trials: list[int] = field(default_factory=list)


# ---- the study ------------------------------------------------------------------------------------

def _optuna():
    try:
        import optuna
    except ImportError as exc:
        raise UserError("seqrec sweep needs Optuna, which is not installed", where="optuna",
                        fix="pip install 'seqrec[sweep]'") from exc
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # we beat the heartbeat ourselves (ask/tell, not Study.optimize): Optuna's reminder does not apply
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
    return optuna


def study_folder(spec: ExperimentSpec, study: str) -> Path:
    return output_root(spec) / "sweeps" / study


def storage_url(spec: ExperimentSpec, study: str, storage: str | None) -> str:
    if storage:
        return storage
    folder = study_folder(spec, study).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'study.db'}"


def base_fingerprint(spec: ExperimentSpec) -> str:
    """What a study is tied to: the base spec without its name and runtime (those may change on a rerun)."""
    payload = spec.model_dump(mode="json", exclude={"name", "runtime"})
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _storage(url: str):
    optuna = _optuna()
    kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT}} if url.startswith("sqlite") else {}
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs, heartbeat_interval=HEARTBEAT_SECONDS,
                                          grace_period=GRACE_SECONDS,
                                          heartbeat_stale_trial_callback=_retry_once)
    except Exception as exc:  # sqlalchemy's errors for a bad URL or an unreachable server
        raise UserError(f"cannot open the study database: {exc}", where=f"--storage {url}",
                        fix="pass a database URL Optuna accepts (sqlite:///path.db, postgresql://...)") from exc


def _pruner(config: SweepConfig):
    optuna = _optuna()
    pruner = config.space.pruner
    if pruner.kind == "median":
        # steps are 1-based epochs and Optuna prunes from step n_warmup_steps on: hence the + 1
        return optuna.pruners.MedianPruner(n_startup_trials=pruner.startup_trials,
                                           n_warmup_steps=pruner.warmup_epochs + 1)
    if pruner.kind == "hyperband":
        train = config.spec.train
        top = pruner.max_epochs or (train.epochs if train.max_steps is None else "auto")
        return optuna.pruners.HyperbandPruner(min_resource=pruner.min_epochs, max_resource=top,
                                              reduction_factor=pruner.reduction_factor)
    return optuna.pruners.NopPruner()


def open_study(config: SweepConfig, worker: int = 0):
    """Create or load the study; refuse one made from another spec or space."""
    optuna = _optuna()
    url = storage_url(config.spec, config.study, config.storage)
    study = optuna.create_study(storage=_storage(url), pruner=_pruner(config), study_name=config.study,
                                direction="maximize", load_if_exists=True)
    # Seeded by (seed, worker, trials so far): a fresh sweep is repeatable, and a resumed one does not
    # replay the draws of its first session.
    seed = int(np.random.SeedSequence([config.space.sampler.seed, worker, len(study.get_trials(deepcopy=False))])
               .generate_state(1)[0])
    study.sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=config.space.sampler.startup_trials)
    mine = {"base_spec": base_fingerprint(config.spec), "space": config.space.fingerprint(),
            "monitor": config.spec.train.monitor}
    attrs = study.user_attrs
    if not attrs.get("base_spec"):
        for key, value in mine.items():
            study.set_user_attr(key, value)
    else:
        differs = [key for key in mine if attrs.get(key) != mine[key]]
        if differs:
            raise UserError(f"study {config.study!r} was started with a different {' and '.join(differs)}",
                            where=url, fix="rerun with the original spec and space, or name a new study (--study)")
    return study


# ---- owners: who runs a trial, and whether it still lives -----------------------------------------

def _process_start(pid: int) -> str | None:
    """Start time of a process (Linux /proc), so a recycled pid is not mistaken for the owner."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else fields[19]  # a zombie has died already


def _owner() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "start": _process_start(os.getpid())}


def _owner_alive(owner: dict | None) -> bool | None:
    """True/False for an owner on this host; None when we cannot tell (another host, no owner yet)."""
    if not owner or owner.get("host") != socket.gethostname():
        return None
    pid = int(owner["pid"])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    start = _process_start(pid)
    if sys.platform.startswith("linux"):
        return start is not None and (owner.get("start") is None or start == owner["start"])
    return True


def _retry_once(study, trial) -> None:
    """Run an interrupted trial's parameters again as a new trial (once: a retry is not retried)."""
    if "retry_of" in trial.user_attrs or not trial.params:
        return
    study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number}, skip_if_exists=False)


def reap_dead_trials(study) -> list[int]:
    """Mark FAIL the RUNNING trials whose owner is dead; returns their numbers. Each is retried once."""
    optuna = _optuna()
    reaped = []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if _owner_alive(trial.user_attrs.get("owner")) is not False:
            continue
        try:
            study._storage.set_trial_user_attr(trial._trial_id, "failed_because", "its process died (killed?)")
            flipped = study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:  # another worker reaped it first
            continue
        if flipped:
            reaped.append(trial.number)
            _retry_once(study, trial)
    optuna.storages.fail_stale_trials(study)  # other hosts: by heartbeat age
    return reaped


def _count(study, *names: str) -> int:
    optuna = _optuna()
    states = tuple(getattr(optuna.trial.TrialState, n) for n in names)
    return len(study.get_trials(deepcopy=False, states=states))


class _Heartbeat:
    """Records the trial's heartbeat in the database while it runs (other hosts judge liveness by it)."""

    def __init__(self, storage, trial_id: int):
        self.storage, self.trial_id, self.stop = storage, trial_id, threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        while True:
            try:
                self.storage.record_heartbeat(self.trial_id)
            except Exception:  # a transient lock; the next beat retries
                pass
            if self.stop.wait(HEARTBEAT_SECONDS):
                return

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


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
            raise _optuna().TrialPruned(f"pruned at epoch {event.epoch} ({event.monitor} {event.monitored:.4f})")


def _mark_run(folder: Path, **fields) -> None:
    """Record the sweep's verdict in the trial's run.json (finetune left it 'running' when pruned)."""
    path = folder / "run.json"
    info = json.loads(path.read_text()) if path.is_file() else {}
    atomic_write_json(path, {**info, **fields})


def run_trial(study, trial, config: SweepConfig, deadline: float | None, events: SweepEvents) -> str:
    """Train an asked trial with finetune and tell its result. Returns its state."""
    optuna = _optuna()
    from pydantic import ValidationError

    from seqrec_cli.pipelines.finetune import finetune

    started = time.time()
    with _Heartbeat(study._storage, trial._trial_id):
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
            events(TrialFinished(trial.number, "pruned", feed.last, feed.epochs, time.time() - started, str(exc)))
            return "pruned"
        except (UserError, KeyboardInterrupt, Exception) as exc:
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


@contextlib.contextmanager
def _ask_lock(folder: Path):
    """An exclusive lock over counting and asking, shared by the workers of this machine (a study on a
    shared server, reached from several machines, can end up to one trial per extra machine over)."""
    try:
        import fcntl
    except ImportError:  # not a POSIX system: no lock, the small overshoot remains possible
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".ask.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# ---- workers --------------------------------------------------------------------------------------

def run_worker(config: SweepConfig, worker: int, deadline: float | None, events: SweepEvents) -> None:
    """Run trials until the study counts config.trials COMPLETE + PRUNED ones, or the deadline passes."""
    study = open_study(config, worker)
    failures = 0
    while deadline is None or time.time() < deadline:
        with _ask_lock(study_folder(config.spec, config.study)):  # count + ask as one step: no overshoot
            reap_dead_trials(study)
            if _count(study, "COMPLETE", "PRUNED", "RUNNING") >= config.trials:
                return  # done, or the last slots are taken by live workers
            trial = study.ask()
            trial.set_user_attr("owner", _owner())
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
        raise UserError(f"{len(bad)} sweep worker(s) stopped with exit codes {bad}", where=f"study {config.study}",
                        fix="see the lines above; rerun the same command to continue the study")


# ---- the sweep ---------------------------------------------------------------------------------------

def sweep(config: SweepConfig, events: SweepEvents = lambda event: None, evaluate_best: bool = False) -> SweepResult:
    from seqrec_cli.pipelines.common import check_monitor
    from seqrec_cli.pipelines.prepare import prepare

    check_monitor(config.spec)
    if config.spec.model.kind != "neural":
        raise UserError("a sweep tunes a trained (neural) model", where="model.kind",
                        fix="sweep a spec with model.kind: neural")
    folder = study_folder(config.spec, config.study)
    folder.mkdir(parents=True, exist_ok=True)
    deadline = time.time() + 60 * config.timeout_minutes if config.timeout_minutes else None
    prepare(config.spec)  # once, here: workers must not race to write the same prepared folder
    study = open_study(config)
    reaped = reap_dead_trials(study)
    url = storage_url(config.spec, config.study, config.storage)
    # written now and rewritten at the end: `seqrec report --sweep` reads the study while it runs
    atomic_write_json(folder / "sweep.json", summary(config, study, SweepResult(folder, {}, None, None)))
    events(SweepStarted(config.study, url, str(folder), _count(study, "COMPLETE", "PRUNED"), config.trials,
                        config.jobs, tuple(reaped)))
    if config.jobs == 1:
        run_worker(config, 0, deadline, events)
    else:
        _run_workers(config, deadline, events)
    return finish(config, study, evaluate_best)


def finish(config: SweepConfig, study, evaluate_best: bool) -> SweepResult:
    """Summarise the study (sweep.json, best_spec.yaml) and, on request, test the best trial once."""
    optuna = _optuna()
    folder = study_folder(config.spec, config.study)
    trials = study.get_trials(deepcopy=False)
    counts = {state.name.lower(): sum(t.state == state for t in trials) for state in optuna.trial.TrialState}
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = max(complete, key=lambda t: (t.value, -t.number)) if complete else None  # ties: the earlier trial
    result = SweepResult(folder, counts, None, None, tested_trials=list(study.user_attrs.get("tested_trials", [])))
    if best is not None:
        saved = Path(best.user_attrs.get("run_dir", ""), "spec.yaml")
        # as it ran (a --timeout cap included); rebuilt from its parameters when its folder is elsewhere
        spec = (ExperimentSpec.model_validate(_saved_spec(best)) if saved.is_file()
                else trial_spec(config, best.number, best.params, None))
        result.best = {"number": best.number, "value": best.value, "params": best.params,
                       "run_dir": best.user_attrs.get("run_dir"), "epochs": best.user_attrs.get("epochs"),
                       "best_epoch": best.user_attrs.get("best_epoch")}
        result.best_spec_path = folder / "best_spec.yaml"
        header = (f"# Best trial of study {config.study}: trial {best.number}, valid {config.spec.train.monitor} "
                  f"{best.value:.4f}\n# Its run folder is {result.best['run_dir']}: `seqrec evaluate THIS_FILE "
                  "--split test` evaluates it; change `name` to train it again.\n")
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
    from seqrec_cli.pipelines.evaluate import evaluate

    path = run_dir(spec) / "eval" / "test.json"
    report = json.loads(path.read_text()) if path.is_file() else evaluate(spec, "test").report
    if number not in result.tested_trials:
        result.tested_trials.append(number)
        study.set_user_attr("tested_trials", result.tested_trials)
    return {"trial": number, "path": str(path), "metrics": report["metrics"], "ci": report.get("ci", {})}


def summary(config: SweepConfig, study, result: SweepResult) -> dict:
    trials = []
    for t in study.get_trials(deepcopy=False):
        trials.append({"number": t.number, "state": t.state.name.lower(), "value": t.value, "params": t.params,
                       "intermediate": {str(k): v for k, v in sorted(t.intermediate_values.items())},
                       "run_dir": t.user_attrs.get("run_dir"), "epochs": t.user_attrs.get("epochs"),
                       "retry_of": t.user_attrs.get("retry_of"), "failed_because": t.user_attrs.get("failed_because"),
                       "seconds": (t.datetime_complete - t.datetime_start).total_seconds()
                       if t.datetime_complete and t.datetime_start else None})
    return {"study": config.study, "storage": storage_url(config.spec, config.study, config.storage),
            "command": config.command, "spec": config.spec_path, "space": config.space_path,
            "base_spec_name": config.spec.name, "monitor": config.spec.train.monitor, "split": "valid",
            "target_trials": config.trials, "counts": result.counts, "best": result.best,
            "best_spec": str(result.best_spec_path) if result.best_spec_path else None,
            "test": result.test, "tested_trials": result.tested_trials,
            "space_file": config.space.model_dump(mode="json"), "trials": trials}


def event_dict(event: SweepEvent) -> dict:
    return {"event": type(event).__name__, **asdict(event)}
