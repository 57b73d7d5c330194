"""finetune/evaluate for baselines and a tiny SASRec, per-user results, compare and report, through the CLI.

One module-scoped workspace: a timestamped CSV log of 40 users x 15 items where each user walks the
catalogue cyclically (the next item is always the 'following' one), so a Markov chain is near perfect.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from seqrec_cli.cli.app import app
from seqrec_cli.core.metrics import per_case_metrics

torch.set_num_threads(1)
runner = CliRunner()
USERS, ITEMS = 40, 15
BASELINE_KINDS = ("popularity", "itemknn", "markov", "random")


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def ok(*args):
    result = invoke(*args)
    assert result.exit_code == 0, (args, result.output, result.exception)
    return result


def refused(result, *needles):
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in " ".join(result.stderr.split()), (needle, result.stderr)


def write_log(path: Path, shift: int = 0) -> Path:
    rows = ["user_id,item_id,timestamp"]
    for u in range(USERS):
        start = (3 * u + shift) % ITEMS
        for j in range(6 + u % 5):
            rows.append(f"{u},{100 + (start + j) % ITEMS},{1000 * j + u}")
    path.write_text("\n".join(rows) + "\n")
    return path


def write_spec(folder: Path, name: str, data: Path, kind: str = "neural", extra: str = "") -> Path:
    spec = folder / f"{name}.yaml"
    spec.write_text(f"""\
name: {name}
data:
  path: {data}
  format: table
model:
  kind: {kind}
  max_len: 8
  hidden: 8
  layers: 1
train:
  epochs: 2
  batch_size: 16
eval:
  ks: [1, 5, 10, 20]
  bootstrap: 200
runtime:
  device: cpu
  output_root: {folder / "out"}
{extra}""")
    return spec


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("evalcli")
    data = write_log(folder / "log.csv")
    for kind in BASELINE_KINDS:
        spec = write_spec(folder, kind, data, kind)
        ok("finetune", spec)
        ok("evaluate", spec, "--split", "test")
    spec = write_spec(folder, "sasrec", data)
    ok("finetune", spec)
    ok("evaluate", spec, "--split", "test", "--sampled", "uniform", "--set", "eval.sampled_negatives=5")
    return folder


def runs(work: Path) -> Path:
    return work / "out" / "runs"


def test_baseline_run_folders_look_like_trained_runs(work):
    for kind in BASELINE_KINDS:
        folder = runs(work) / kind
        info = json.loads((folder / "run.json").read_text())
        assert info["kind"] == kind and info["status"] == "finished"
        assert (folder / "checkpoints" / "best.pt").is_file() and (folder / "spec.yaml").is_file()
        assert "valid" in json.loads((folder / "metrics.jsonl").read_text().splitlines()[0])
        state = torch.load(folder / "checkpoints" / "best.pt", weights_only=True)
        assert state["kind"] == kind
    markov = json.loads((runs(work) / "markov" / "eval" / "test.json").read_text())
    popularity = json.loads((runs(work) / "popularity" / "eval" / "test.json").read_text())
    random = json.loads((runs(work) / "random" / "eval" / "test.json").read_text())
    assert markov["metrics"]["HR@1"] > 0.9  # the next item always follows the last one
    assert (
        markov["metrics"]["NDCG@10"] > popularity["metrics"]["NDCG@10"] > random["metrics"]["NDCG@10"] - 0.2
    )


def test_per_user_results_recompute_the_reported_metrics(work):
    report = json.loads((runs(work) / "sasrec" / "eval" / "test.json").read_text())
    with open(runs(work) / "sasrec" / "eval" / "test_cases.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == USERS and set(rows[0]) >= {"user", "target", "rank", "history_len", "sampled_rank"}
    case_of = np.array([int(r["case"]) for r in rows])
    ranks = np.array([int(r["rank"]) for r in rows])
    per_case = per_case_metrics(case_of, ranks, USERS, [1, 5, 10, 20])
    for name, values in per_case.items():
        assert report["metrics"][name] == pytest.approx(values.mean())
        ci = report["ci"][name]
        assert ci["low"] <= report["metrics"][name] <= ci["high"]
    assert sorted(int(r["history_len"]) for r in rows) == sorted(5 + u % 5 for u in range(USERS))
    # sampled metrics only on request, always labelled as such
    assert set(report["sampled"]["metrics"]) == {f"sampled_{k}" for k in report["metrics"]}
    assert not any(k.startswith("sampled") for k in report["metrics"])
    assert report["sampled"]["negatives"] == 5 and report["sampled"]["strategy"] == "uniform"
    sampled = np.array([int(r["sampled_rank"]) for r in rows])
    assert (sampled <= 6).all() and (sampled <= ranks).all()  # 5 negatives can only flatter the rank
    assert "sampled" not in json.loads((runs(work) / "markov" / "eval" / "test.json").read_text())
    assert sum(b["cases"] for b in report["breakdowns"]["history_length"]["buckets"]) == USERS


def test_compare_paired_and_refuses_different_protocols(work, tmp_path):
    result = ok("compare", runs(work) / "markov", runs(work) / "popularity", "--out", tmp_path / "cmp.json")
    assert "Wilcoxon" in result.output
    cmp = json.loads((tmp_path / "cmp.json").read_text())
    assert cmp["metrics"]["NDCG@10"]["diff"] > 0 and cmp["metrics"]["NDCG@10"]["t_test"]["p"] < 0.01
    # a run evaluated with another filter_seen
    spec = write_spec(work, "pop-unfiltered", work / "log.csv", "popularity", "")
    ok("finetune", spec)
    ok("evaluate", spec, "--set", "eval.filter_seen=false")
    refused(invoke("compare", runs(work) / "markov", runs(work) / "pop-unfiltered"), "filter_seen")
    # a run on a different dataset (different fingerprint)
    other = tmp_path / "other"
    other.mkdir()
    spec = write_spec(other, "pop-other", write_log(other / "log.csv", shift=1), "popularity")
    ok("finetune", spec)
    ok("evaluate", spec)
    refused(
        invoke("compare", runs(work) / "markov", other / "out" / "runs" / "pop-other"), "dataset fingerprint"
    )
    refused(invoke("compare", runs(work) / "markov", runs(work) / "nope"), "no such run folder")


def test_report_writes_markdown_and_pngs(work, tmp_path):
    out = tmp_path / "report"
    names = [runs(work) / k for k in ("sasrec",) + BASELINE_KINDS]
    ok("report", *names, "--out", out, "--resamples", "200")
    text = (out / "README.md").read_text()
    for png in ("leaderboard.png", "metric_at_k.png", "training_curves.png", "breakdown_history.png",
                "breakdown_popularity.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"({png})" in text
    assert "## Leaderboard" in text and "Wilcoxon p" in text and "SAMPLED" in text
    assert text.index("| markov |") < text.index("| random |")  # sorted by NDCG@10
    ok("report", *names[:2], "--out", out)  # a report folder may be rewritten by report
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.md").write_text("keep me")
    refused(invoke("report", *names[:2], "--out", tmp_path / "mine"), "refusing to overwrite")
    assert (tmp_path / "mine" / "notes.md").read_text() == "keep me"


def test_temporal_split_through_finetune_and_evaluate(tmp_path):
    spec = (
        write_spec(tmp_path, "temporal", write_log(tmp_path / "log.csv"), "neural", "")
        .read_text()
        .replace(
            "  format: table\n",
            "  format: table\n  split: temporal\n"
            "  temporal: {valid_time: 4000, test_time: 6000, targets: all}\n",
        )
    )
    path = tmp_path / "temporal.yaml"
    path.write_text(spec)
    ok("finetune", path, "--set", "train.epochs=1")
    ok("evaluate", path)
    report = json.loads((tmp_path / "out" / "runs" / "temporal" / "eval" / "test.json").read_text())
    assert report["protocol"]["split"] == {"kind": "temporal", "targets": "all",
                                           "cuts": {"valid": 4000.0, "test": 6000.0}}
    # users with items at j = 6..9 (timestamps >= 6000) have several targets each
    assert report["cases"] == sum(1 for u in range(USERS) if 6 + u % 5 > 6)
    assert report["targets"] == sum(6 + u % 5 - 6 for u in range(USERS))
    assert report["metrics"]["Recall@20"] >= report["metrics"]["Recall@10"]


def test_tensorboard_is_off_by_default_and_an_error_without_the_package(tmp_path):
    from seqrec_cli.pipelines.tensorboard_log import epoch_logger

    assert epoch_logger(tmp_path, False) is None
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        with pytest.raises(Exception, match="tensorboard package is not installed"):
            epoch_logger(tmp_path, True)
    else:
        log = epoch_logger(tmp_path, True)
        log({"epoch": 1, "loss": 1.0, "valid": {"NDCG@10": 0.1}})
        assert any((tmp_path / "tensorboard").iterdir())


@pytest.mark.parametrize("strategy", ["uniform", "popularity"])
def test_sampled_negatives_avoid_history_and_targets(strategy):
    from seqrec_cli.pipelines.evaluate import negative_sampler

    counts = np.array([0] + [1] * 10 + [1000] * 10, dtype=float)  # items 11..20 are 1000x more popular
    sample = negative_sampler(strategy, 5, counts, seed=0)
    seen_rows, seen_items = np.array([0, 0, 1]), np.array([11, 12, 3])
    target_rows, target_items = np.array([0, 1, 1]), np.array([13, 4, 5])
    drawn = [sample(np.array([0, 1]), target_rows, seen_items, seen_rows, target_items) for _ in range(200)]
    for neg in drawn:
        assert neg.shape == (3, 5) and np.array_equal(neg[1], neg[2])  # one case's targets share negatives
        assert {11, 12, 13}.isdisjoint(neg[0]) and {3, 4, 5}.isdisjoint(neg[1]) and (neg > 0).all()
        assert all(len(set(row)) == 5 for row in neg)
    popular = np.mean([np.mean(neg >= 11) for neg in drawn])
    if strategy == "uniform":
        assert 0.3 < popular < 0.6  # 7 of 17 allowed items in row 0, 10 of 17 in row 1
    else:
        assert popular > 0.95
    with pytest.raises(Exception, match="cannot sample"):
        negative_sampler(strategy, 19, counts, 0)(
            np.array([0]), np.array([0]), np.array([1]), np.array([0]), np.array([2])
        )
