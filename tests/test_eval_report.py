"""eval/<split>.json has one typed, versioned definition: what is written reads back equal, and a
report of another version (or none) is refused with a fix."""

from __future__ import annotations

import json

import pytest

from seqrec_cli.errors import UserError
from seqrec_cli.pipelines.eval_report import (
    EVAL_REPORT_VERSION,
    Bootstrap,
    Breakdown,
    EvalReport,
    Protocol,
    Sampled,
    read_eval_report,
)


def a_report(**changes) -> EvalReport:
    values = dict(
        split="test",
        metrics={"HR@10": 0.5, "NDCG@10": 0.3},
        ci={"HR@10": {"low": 0.4, "high": 0.6}},
        list_metrics={"Coverage@10": 0.2},
        breakdowns={"history_length": Breakdown([1, 5], [{"bucket": "[1, 5)", "cases": 3}])},
        filter_seen=True,
        users=3,
        cases=3,
        targets=3,
        num_items=10,
        protocol=Protocol(
            split={"kind": "leave_one_out"},
            ranking="full catalogue",
            ties="pessimistic",
            filter_seen=True,
            ks=[10],
            bootstrap=Bootstrap(resamples=100, seed=0, level=0.95),
        ),
        model={"kind": "neural", "encoder": "sasrec"},
        dataset_fingerprint={"hash": "abc"},
        spec_hash="h",
        seed=42,
        checkpoint={"path": "best.pt", "epoch": 3},
        runtime={"device": "cpu", "precision": "fp32"},
        seconds=0.5,
        cases_per_second=6.0,
    )
    values.update(changes)
    return EvalReport(**values)


@pytest.mark.parametrize("report", [
    a_report(),
    a_report(sampled=Sampled("SAMPLED", "uniform", 5, 42, {"sampled_HR@10": 0.9}),
             cold_start={"rankable": False}, items={"items": "id"}),
])
def test_written_report_reads_back_equal(tmp_path, report):
    path = tmp_path / "test.json"
    path.write_text(json.dumps(report.to_json()))
    data = json.loads(path.read_text())
    assert data["format_version"] == EVAL_REPORT_VERSION
    assert ("sampled" in data) == (report.sampled is not None)
    assert read_eval_report(path) == report


@pytest.mark.parametrize("version, says", [(None, "no format_version"), (EVAL_REPORT_VERSION + 1, "version")])
def test_other_versions_are_refused_with_a_fix(tmp_path, version, says):
    data = a_report().to_json()
    if version is None:
        del data["format_version"]
    else:
        data["format_version"] = version
    path = tmp_path / "test.json"
    path.write_text(json.dumps(data))
    with pytest.raises(UserError, match=says) as info:
        read_eval_report(path)
    assert "seqrec evaluate" in info.value.render()


def test_a_malformed_report_is_a_user_error(tmp_path):
    data = a_report().to_json()
    del data["protocol"]
    path = tmp_path / "test.json"
    path.write_text(json.dumps(data))
    with pytest.raises(UserError, match="malformed"):
        read_eval_report(path)
