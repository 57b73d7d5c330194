"""`seqrec sweep`: the search space is validated like the spec; a tiny 3-trial sweep on MovieLens-100K
runs end to end (run folders, best spec, one test evaluation, report); the pruner stops a bad trial
early; a sweep killed with SIGKILL and rerun keeps the study's trial count right."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from engine_fixtures import DATA_ROOT, REPO, child_env, needs_ml100k, seqrec_command
from seqrec_cli.cli.app import app
from seqrec_cli.errors import SpecError
from seqrec_cli.spec.loader import load_spec
from seqrec_cli.spec.space import load_space

optuna = pytest.importorskip("optuna")
SPEC = REPO / "experiments/ml100k/sasrec.yaml"
TINY = ["model.max_len=20", "model.hidden=16", "model.layers=1", "model.heads=1", "train.batch_size=64",
        "train.max_minutes=null", "train.patience=50", "eval.ks=[10]", "eval.bootstrap=100",
        "runtime.device=cpu", "runtime.precision=fp32", "runtime.threads=1"]
runner = CliRunner()


def sets(out: Path, *extra: str) -> list[str]:
    args = []
    for item in [f"runtime.output_root={out}", f"runtime.data_root={DATA_ROOT}", *TINY, *extra]:
        args += ["--set", item]
    return args


def write_space(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def base_raw(*extra: str) -> dict:
    return load_spec(SPEC, [*TINY, *extra]).model_dump(mode="json")


# ---- the space file -----------------------------------------------------------------------------------

def problems_of(path: Path, raw: dict | None = None) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        load_space(path, raw)
    return dict(info.value.problems)


def test_space_names_each_bad_key_with_its_line(tmp_path):
    space = write_space(tmp_path / "space.yaml", "params:\n"
                        "  train.lr: {type: log_float, low: 0.01, high: 0.001}\n"
                        "  model.hiden: {type: int, low: 1, high: 3}\n"
                        "  data.user_core: {type: int, low: 1, high: 5}\n"
                        "  train: {type: int, low: 1, high: 2}\n"
                        "  model.layers: {type: integer, low: 1, high: 3}\n"
                        "  model.heads: {type: categorical, choices: [1]}\n")
    problems = problems_of(space)
    assert "low (0.01) must be below high (0.001)" in problems["params.train.lr (line 2)"]
    assert "unknown spec key 'model.hiden'" in problems["params.model.hiden (line 3)"]
    assert "hidden" in problems["params.model.hiden (line 3)"]  # the valid keys are listed
    assert "validation cases" in problems["params.data.user_core (line 4)"]
    assert "is a section" in problems["params.train (line 5)"]
    assert any(key.startswith("params.model.layers (line 6)") for key in problems)
    assert any(key.startswith("params.model.heads") and "at least 2" in msg for key, msg in problems.items())
    assert len(problems) == 6


def test_space_bounds_are_checked_against_the_spec(tmp_path):
    space = write_space(tmp_path / "space.yaml", "params:\n"
                        "  model.dropout: {type: float, low: 0.1, high: 1.0}\n"
                        "  model.block: {type: categorical, choices: [pre_ln, bogus]}\n"
                        "  model.hidden: {type: float, low: 8, high: 64}\n"
                        "  train.lr: {type: log_float, low: 1.0e-4, high: 1.0e-2}\n")
    problems = problems_of(space, base_raw())
    assert "value 1.0 is refused by the spec" in problems["params.model.dropout (line 2)"]
    assert "'bogus'" in problems["params.model.block (line 3)"]
    assert "integer" in problems["params.model.hidden (line 4)"]  # a float range on an int key
    assert len(problems) == 3
    good = write_space(
        tmp_path / "good.yaml", "params:\n  model.dropout: {type: float, low: 0.1, high: 0.5}\n"
    )
    assert load_space(good, base_raw()).pruner.kind == "median"  # the default pruner


def test_bad_space_exits_2_naming_file_key_and_line(tmp_path):
    space = write_space(tmp_path / "space.yaml", "params:\n  train.lr: {type: log_float, low: 0, high: 0.1}\n"
                        "pruner: {kind: sometimes}\n")
    result = runner.invoke(app, ["sweep", str(SPEC), "--space", str(space), *sets(tmp_path)])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "error:" in text and str(space) in text and "fix:" in text
    assert "params.train.lr.low (line 2)" in text and "pruner (line 3)" in text
    missing = runner.invoke(
        app, ["sweep", str(SPEC), "--space", str(tmp_path / "nope.yaml"), *sets(tmp_path)]
    )
    assert missing.exit_code == 2 and "not found" in missing.output


# ---- a real sweep ----------------------------------------------------------------------------------------

SPACE = """params:
  train.lr: {type: log_float, low: 1.0e-3, high: 2.0e-2}
  model.dropout: {type: float, low: 0.0, high: 0.4, step: 0.1}
  model.hidden: {type: categorical, choices: [8, 16]}
pruner: {kind: median, startup_trials: 2, warmup_epochs: 0}
sampler: {seed: 3, startup_trials: 2}
"""


@pytest.fixture(scope="module")
def swept(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("sweep")
    space = write_space(out / "space.yaml", SPACE)
    args = ["sweep", str(SPEC), "--space", str(space), "--trials", "3", "--study", "tiny", "--evaluate-best",
            *sets(out, "train.max_steps=30")]
    result = runner.invoke(app, args)
    again = runner.invoke(app, args)  # the study is complete: nothing runs, nothing is tested again
    return {"out": out, "result": result, "again": again, "folder": out / "sweeps/tiny"}


@needs_ml100k
def test_three_trials_are_ordinary_run_folders(swept):
    assert swept["result"].exit_code == 0, swept["result"].output
    summary = json.loads((swept["folder"] / "sweep.json").read_text())
    counted = [t for t in summary["trials"] if t["state"] in ("complete", "pruned")]
    assert len(counted) == 3 and len(summary["trials"]) == 3
    for trial in summary["trials"]:
        run = Path(trial["run_dir"])
        assert run.name == f"tiny-t{trial['number']}"
        assert (run / "spec.yaml").is_file() and (run / "checkpoints/best.pt").is_file()
        assert (run / "metrics.jsonl").read_text().strip()
        saved = yaml.safe_load((run / "spec.yaml").read_text())
        assert saved["name"] == run.name
        assert saved["train"]["lr"] == pytest.approx(trial["params"]["train.lr"])
        assert saved["model"]["hidden"] == trial["params"]["model.hidden"]
    assert summary["study"] == "tiny" and summary["storage"].startswith("sqlite:///")


@needs_ml100k
def test_best_is_chosen_on_validation_and_only_it_is_tested(swept):
    summary = json.loads((swept["folder"] / "sweep.json").read_text())
    complete = [t for t in summary["trials"] if t["state"] == "complete"]
    best = max(complete, key=lambda t: t["value"])
    assert summary["best"]["number"] == best["number"]
    run = json.loads((Path(best["run_dir"]) / "run.json").read_text())
    assert summary["best"]["value"] == pytest.approx(run["best_valid_NDCG@10"])  # the objective is validation
    tested = [t for t in summary["trials"] if (Path(t["run_dir"]) / "eval/test.json").is_file()]
    assert [t["number"] for t in tested] == [best["number"]]
    assert summary["tested_trials"] == [best["number"]] and summary["test"]["trial"] == best["number"]
    spec = load_spec(swept["folder"] / "best_spec.yaml")  # a ready spec: loads as it is
    assert spec.name == f"tiny-t{best['number']}" and spec.train.lr == pytest.approx(
        best["params"]["train.lr"]
    )
    assert "test (best trial only)" in " ".join(swept["result"].output.split())


@needs_ml100k
def test_rerunning_a_finished_study_adds_no_trial(swept):
    assert swept["again"].exit_code == 0, swept["again"].output
    assert "3 of 3 trials counted" in " ".join(swept["again"].output.split())
    summary = json.loads((swept["folder"] / "sweep.json").read_text())
    assert len(summary["trials"]) == 3 and summary["tested_trials"] == [summary["best"]["number"]]


@needs_ml100k
def test_report_learns_a_sweep(swept, tmp_path):
    summary = json.loads((swept["folder"] / "sweep.json").read_text())
    other = next(t for t in summary["trials"] if t["number"] != summary["best"]["number"])
    # stand-in for the shipped default: another trial, evaluated on test, as --baseline
    baseline_spec = Path(other["run_dir"]) / "spec.yaml"
    assert runner.invoke(app, ["evaluate", str(baseline_spec)]).exit_code == 0
    report = tmp_path / "report"
    result = runner.invoke(app, ["report", "--sweep", str(swept["folder"]), "--baseline", other["run_dir"],
                                 "--out", str(report), "--resamples", "100"])
    assert result.exit_code == 0, result.output
    text = (report / "README.md").read_text()
    for png in ("history.png", "curves.png", "parallel_coordinates.png", "importances.png"):
        assert (report / png).stat().st_size > 1000 and f"({png})" in text
    data = json.loads((report / "report.json").read_text())
    assert data["best"]["number"] == summary["best"]["number"]
    assert data["comparison"]["a"] == f"tiny-t{summary['best']['number']}"
    assert data["comparison"]["b"] == f"tiny-t{other['number']}"
    assert set(data["importances"]) == {"train.lr", "model.dropout", "model.hidden"}
    assert "users better / worse" in text


# ---- pruning --------------------------------------------------------------------------------------------

@needs_ml100k
def test_pruner_stops_a_bad_trial_early(tmp_path):
    from seqrec_cli.pipelines.prepare import prepare
    from seqrec_cli.pipelines.sweep import SweepConfig, open_study, run_worker

    spec = load_spec(SPEC, [f"runtime.output_root={tmp_path}", f"runtime.data_root={DATA_ROOT}", *TINY,
                            "train.epochs=4"])
    space = load_space(write_space(tmp_path / "space.yaml", "params:\n"
                                   "  train.lr: {type: categorical, choices: [0.02, 1.0e-6]}\n"
                                   "pruner: {kind: median, startup_trials: 1, warmup_epochs: 1}\n"),
                       spec.model_dump(mode="json"))
    config = SweepConfig(spec=spec, space=space, trials=2, study="prune")
    prepare(spec)
    study = open_study(config)
    study.enqueue_trial({"train.lr": 0.02})  # learns: completes 4 epochs
    study.enqueue_trial({"train.lr": 1.0e-6})  # barely moves from its random start
    events = []
    run_worker(config, 0, None, events.append)
    good, bad = study.get_trials()
    assert good.state == optuna.trial.TrialState.COMPLETE and len(good.intermediate_values) == 4
    assert bad.state == optuna.trial.TrialState.PRUNED
    assert max(bad.intermediate_values) == 2  # warmup epoch 1 is never pruned; epoch 2 was its last
    run = Path(bad.user_attrs["run_dir"])
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2  # it really stopped training
    assert json.loads((run / "run.json").read_text())["status"] == "pruned"
    assert [type(e).__name__ for e in events].count("TrialEpoch") == 6


# ---- kill -9 and resume --------------------------------------------------------------------------------

@needs_ml100k
def test_kill_during_a_sweep_then_rerun_counts_each_trial_once(tmp_path):
    space = write_space(
        tmp_path / "space.yaml", SPACE.replace("startup_trials: 2, warmup", "startup_trials: 5, warmup")
    )
    cmd = [*seqrec_command(), "sweep", str(SPEC), "--space", str(space), "--trials", "2", "--study", "k",
           *sets(tmp_path, "train.epochs=2", "train.batch_size=32")]
    proc = subprocess.Popen(cmd, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    metrics = tmp_path / "runs/k-t0/metrics.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if metrics.is_file() and metrics.read_text().strip():  # trial 0 is inside its training
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    first = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == -signal.SIGKILL, first
    storage = f"sqlite:///{tmp_path / 'sweeps/k/study.db'}"
    (t0,) = optuna.load_study(study_name="k", storage=storage).get_trials()
    assert t0.state == optuna.trial.TrialState.RUNNING  # what a kill leaves behind

    rerun = subprocess.run(cmd, env=child_env(), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "interrupted" in rerun.stdout
    trials = optuna.load_study(study_name="k", storage=storage).get_trials()
    states = {t.number: t.state for t in trials}
    assert states[0] == optuna.trial.TrialState.FAIL and "died" in trials[0].user_attrs["failed_because"]
    counted = [
        t for t in trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    ]
    assert len(counted) == 2 and len(trials) == 3  # the retry and one more; the killed one never counts
    retry = next(t for t in trials if t.user_attrs.get("retry_of") == 0)
    assert retry.params == trials[0].params


# ---- owners and reaping, without training ------------------------------------------------------------

def test_only_trials_of_dead_owners_are_reaped_and_each_is_retried_once(tmp_path):
    from seqrec_cli.pipelines.sweep import SweepConfig, open_study
    from seqrec_cli.pipelines.sweep_study import owner_record, reap_dead_trials

    spec = load_spec(SPEC, [f"runtime.output_root={tmp_path}", *TINY])
    space = load_space(write_space(tmp_path / "space.yaml", "params:\n"
                                   "  train.lr: {type: log_float, low: 1.0e-4, high: 1.0e-2}\n"))
    study = open_study(SweepConfig(spec=spec, space=space, trials=5, study="owners"))
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid that no longer runs
    trials = [study.ask() for _ in range(3)]
    for trial in trials:
        trial.suggest_float("train.lr", 1e-4, 1e-2, log=True)
    trials[0].set_user_attr("owner", {**owner_record(), "pid": gone.pid})  # dead, this host
    trials[1].set_user_attr("owner", owner_record())  # alive: this very process
    trials[2].set_user_attr("owner", {**owner_record(), "host": "elsewhere"})  # left to the heartbeat
    assert reap_dead_trials(study) == [trials[0].number]
    assert reap_dead_trials(study) == []  # already FAIL: not reaped, not retried, twice
    states = {t.number: t.state.name for t in study.get_trials()}
    assert states == {0: "FAIL", 1: "RUNNING", 2: "RUNNING", 3: "WAITING"}
    retry = study.get_trials()[3]
    assert retry.user_attrs["retry_of"] == 0  # enqueued with the dead trial's values:
    assert retry.system_attrs["fixed_params"] == study.get_trials()[0].params


def test_a_bad_storage_url_exits_2_before_any_work(tmp_path):
    space = write_space(
        tmp_path / "space.yaml", "params:\n  train.lr: {type: log_float, low: 1.0e-4, high: 0.01}\n"
    )
    result = runner.invoke(app, ["sweep", str(SPEC), "--space", str(space), "--storage", "nosuchdb://x/y",
                                 *sets(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "--storage nosuchdb://x/y" in " ".join(result.output.split())
    assert not (tmp_path / "prepared").exists()
