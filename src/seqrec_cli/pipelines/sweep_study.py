"""The study side of `seqrec sweep`: the database, who owns a running trial and whether it still
lives, reaping interrupted trials, heartbeats, and the lock that makes count + ask one step.

A trial whose owner process died (kill -9) stays RUNNING in the database. It is marked FAIL when its
owner is seen dead (same host: at once, by pid and process start time; another host: when its
heartbeat is older than the grace period) and its parameters are tried again once, as a new trial.
A FAIL never counts toward --trials, so an interrupted trial is never counted twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import sys
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqrec_cli.errors import UserError
from seqrec_cli.pipelines.paths import output_root
from seqrec_cli.spec.models import ExperimentSpec
from seqrec_cli.spec.space import SearchSpace

HEARTBEAT_SECONDS = 60
GRACE_SECONDS = 600  # a trial of another host is presumed dead after this long without a heartbeat
SQLITE_TIMEOUT = 120  # seconds a worker waits for the database lock (several workers share one file)


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


# ---- the study ------------------------------------------------------------------------------------

def load_optuna():
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
    optuna = load_optuna()
    kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT}} if url.startswith("sqlite") else {}
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs, heartbeat_interval=HEARTBEAT_SECONDS,
                                          grace_period=GRACE_SECONDS,
                                          heartbeat_stale_trial_callback=_retry_once)
    except Exception as exc:  # sqlalchemy's errors for a bad URL or an unreachable server
        raise UserError(
            f"cannot open the study database: {exc}",
            where=f"--storage {url}",
            fix="pass a database URL Optuna accepts (sqlite:///path.db, postgresql://...)",
        ) from exc


def _pruner(config: SweepConfig):
    optuna = load_optuna()
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
    optuna = load_optuna()
    url = storage_url(config.spec, config.study, config.storage)
    study = optuna.create_study(storage=_storage(url), pruner=_pruner(config), study_name=config.study,
                                direction="maximize", load_if_exists=True)
    # Seeded by (seed, worker, trials so far): a fresh sweep is repeatable, and a resumed one does not
    # replay the draws of its first session.
    seed = int(
        np.random.SeedSequence(
            [config.space.sampler.seed, worker, len(study.get_trials(deepcopy=False))]
        ).generate_state(1)[0]
    )
    study.sampler = optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=config.space.sampler.startup_trials
    )
    mine = {"base_spec": base_fingerprint(config.spec), "space": config.space.fingerprint(),
            "monitor": config.spec.train.monitor}
    attrs = study.user_attrs
    if not attrs.get("base_spec"):
        for key, value in mine.items():
            study.set_user_attr(key, value)
    else:
        differs = [key for key in mine if attrs.get(key) != mine[key]]
        if differs:
            raise UserError(
                f"study {config.study!r} was started with a different {' and '.join(differs)}",
                where=url,
                fix="rerun with the original spec and space, or name a new study (--study)",
            )
    return study


# ---- owners: who runs a trial, and whether it still lives -----------------------------------------

def _process_start(pid: int) -> str | None:
    """Start time of a process (Linux /proc), so a recycled pid is not mistaken for the owner."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else fields[19]  # a zombie has died already


def owner_record() -> dict:
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
    optuna = load_optuna()
    reaped = []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if _owner_alive(trial.user_attrs.get("owner")) is not False:
            continue
        try:
            study._storage.set_trial_user_attr(
                trial._trial_id, "failed_because", "its process died (killed?)"
            )
            flipped = study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:  # another worker reaped it first
            continue
        if flipped:
            reaped.append(trial.number)
            _retry_once(study, trial)
    optuna.storages.fail_stale_trials(study)  # other hosts: by heartbeat age
    return reaped


def count_trials(study, *names: str) -> int:
    optuna = load_optuna()
    states = tuple(getattr(optuna.trial.TrialState, n) for n in names)
    return len(study.get_trials(deepcopy=False, states=states))


class Heartbeat:
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


@contextlib.contextmanager
def ask_lock(folder: Path):
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
