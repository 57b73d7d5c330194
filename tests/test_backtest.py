"""`seqrec backtest` on a tiny seeded log with drifting tastes: no model ever trains on an event at or
after its period's start (checked per period and strategy), the report holds every strategy, and
bad inputs exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from seqrec_cli.cli.app import app
from seqrec_cli.pipelines.common import load_dataset
from seqrec_cli.spec.loader import load_spec

torch.set_num_threads(1)
runner = CliRunner()
DAY = 86400.0


def flat(text: str) -> str:
    return " ".join(text.split())


def drifting_log(
    path: Path, users: int = 24, days: int = 40, seed: int = 0, gap: tuple[int, int] | None = None
) -> Path:
    """Item i enters the catalogue on day i; a user who starts on day s (some start late: new users)
    rates 6-10 items over the next 10 days, mostly the newest ones (tastes drift with the catalogue)."""
    rng = np.random.default_rng(seed)
    rows = ["user_id,item_id,timestamp"]
    for u in range(users):
        start = int(rng.integers(0, days - 10))
        for day in np.sort(rng.uniform(start, start + 10, size=int(rng.integers(6, 11)))):
            if gap and gap[0] <= day < gap[1]:
                continue
            item = max(0, int(day) - int(rng.geometric(0.3)) + 1)
            rows.append(f"user{u},film{item},{day * DAY:.0f}")
    path.write_text("\n".join(rows) + "\n")
    return path


def write_spec(folder: Path, log: Path, fmt: str = "table") -> Path:
    spec = folder / "bt.yaml"
    spec.write_text(f"""\
name: bt
data: {{path: {log}, format: {fmt}}}
model: {{max_len: 6, hidden: 8, layers: 1, heads: 2, dropout: 0.0}}
train: {{epochs: 2, batch_size: 8, lr: 0.01, seed: 1}}
update: {{epochs: 1, replay: 0.5}}
eval: {{ks: [5, 10], bootstrap: 50}}
runtime: {{device: cpu, precision: fp32, threads: 1, output_root: {folder / "out"}}}
""")
    return spec


@pytest.fixture(scope="module")
def ran(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("backtest")
    log = drifting_log(folder / "log.csv")
    spec = write_spec(folder, log)
    result = runner.invoke(app, ["backtest", str(spec), "--periods", "3", "--period", "5d",
                                 "--out", str(folder / "bt"), "--json", str(folder / "copy.json")])
    assert result.exit_code == 0, (result.output, result.exception)
    return {"folder": folder, "log": log, "spec": spec, "out": result.output,
            "report": json.loads((folder / "bt" / "backtest.json").read_text())}


def test_no_model_sees_its_period(ran) -> None:
    report = ran["report"]
    times = np.loadtxt(ran["log"], delimiter=",", skiprows=1, usecols=2)
    users = np.loadtxt(ran["log"], delimiter=",", skiprows=1, usecols=0, dtype=str)
    end = np.nextafter(times.max(), np.inf)
    assert len(report["periods"]) == 3
    for k, period in enumerate(report["periods"]):
        assert period["start"] == pytest.approx(end - (3 - k) * 5 * DAY)
        for strategy, entry in period["strategies"].items():
            run = ran["folder"] / "bt" / "runs" / entry["run"]
            seqs, _, _ = load_dataset(load_spec(run / "spec.yaml"))
            latest = float(seqs.timestamps.max())
            assert latest < period["start"], (k, strategy)  # asserted per period, from the run's own data
            assert entry["max_train_time"] == latest
            # and it saw everything before its period (users with the 3 events a split needs)
            if strategy != "frozen":
                before = times < period["start"]
                names, counts = np.unique(users[before], return_counts=True)
                kept = before & np.isin(users, names[counts >= 3])
                assert latest == times[kept].max()


def test_report_has_every_strategy_and_comparison(ran) -> None:
    report = ran["report"]
    assert report["strategies"] == ["retrain", "update", "frozen"]
    runs = [{s: p["strategies"][s]["run"] for s in report["strategies"]} for p in report["periods"]]
    assert runs[0] == {"retrain": "bt-retrain-p0", "update": "bt-retrain-p0", "frozen": "bt-retrain-p0"}
    assert runs[2] == {"retrain": "bt-retrain-p2", "update": "bt-update-p2", "frozen": "bt-retrain-p0"}
    parent = json.loads((ran["folder"] / "bt" / "runs" / "bt-update-p2" / "run.json").read_text())["parent"]
    assert "bt-update-p1" in parent["path"]
    for period in report["periods"][1:]:
        assert period["strategies"]["frozen"]["train_seconds"] == 0.0
        assert period["strategies"]["update"]["forgetting"]["on_period"] == 0
        for entry in period["strategies"].values():
            ci = entry["ci"]["NDCG@10"]
            assert ci["low"] <= entry["metrics"]["NDCG@10"] <= ci["high"]
    pairs = report["comparisons"][1]["pairs"]
    assert set(pairs) == {"retrain - update", "retrain - frozen", "update - frozen"}
    assert pairs["update - frozen"]["NDCG@10"]["cases"] == report["periods"][1]["users"]
    summary = report["summary"]
    assert set(summary["targets"]) == {"update_keeps_95pct_of_retrain", "update_at_most_25pct_seconds",
                                       "both_beat_frozen"}
    assert (ran["folder"] / "bt" / "backtest.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((ran["folder"] / "copy.json").read_text()) == report
    assert "update / retrain" in flat(ran["out"])


def test_cases_new_users_and_unknown_targets(ran) -> None:
    """Every event inside a period with an earlier event of its user is a case; a target first seen
    inside the period is unknown to every model (a miss), and frozen never knows later items."""
    report = ran["report"]
    rows = [line.split(",") for line in ran["log"].read_text().splitlines()[1:]]
    first_of_user: dict[str, float] = {}
    for user, _, t in sorted(rows, key=lambda r: float(r[2])):
        first_of_user.setdefault(user, float(t))
    for period in report["periods"]:
        inside = [r for r in rows if period["start"] <= float(r[2]) < period["end"]]
        assert period["cases"] == sum(float(t) > first_of_user[u] for u, _, t in inside)
    assert sum(p["new_user_cases"] for p in report["periods"]) > 0
    assert sum(p["cold_target_cases"] for p in report["periods"]) > 0
    for period in report["periods"][1:]:
        frozen = period["strategies"]["frozen"]
        assert frozen["new_items_HR@10"] in (
            None,
            0.0,
        )  # items first seen after the first cut are unknown to it
        assert frozen["new_items_recommended"]["items"] == 0
        for entry in period["strategies"].values():
            assert 0 <= entry["new_items_recommended"]["items"] <= period["new_items"]
    assert any(p["strategies"]["update"]["new_items_recommended"]["items"] > 0 for p in report["periods"][1:])


def test_bad_inputs_exit_2(tmp_path: Path) -> None:
    log = drifting_log(tmp_path / "log.csv")
    spec = write_spec(tmp_path, log)
    cases = [
        (["--periods", "3", "--period", "20d"], "do not fit"),  # 60 days of periods in a 40-day log
        (["--periods", "2", "--period", "5x"], "cannot read period"),
        (["--strategies", "retrain,nope"], "unknown strategies"),
    ]
    for args, message in cases:
        result = runner.invoke(app, ["backtest", str(spec), *args])
        assert result.exit_code == 2 and message in flat(result.output), (args, result.output)
    gapped = write_spec(tmp_path, drifting_log(tmp_path / "gap.csv", gap=(26, 34)))
    result = runner.invoke(app, ["backtest", str(gapped), "--periods", "4", "--period", "3d"])
    assert result.exit_code == 2 and "hold no interaction" in flat(result.output)
    plain = tmp_path / "plain.txt"
    plain.write_text("".join(f"u{u} i{(u + j) % 9}\n" for u in range(8) for j in range(6)))
    result = runner.invoke(app, ["backtest", str(write_spec(tmp_path, plain, "user_item_lines"))])
    assert result.exit_code == 2 and "timestamped log" in flat(result.output)
