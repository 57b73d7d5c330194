"""One compatibility policy: run folders carry a format version, and a run of another version (older
releases wrote none) is refused with a fix instead of being read through fallbacks."""

from __future__ import annotations

import json

import pytest
from tests.test_events import tiny_spec

from seqrec_cli.core.checkpoint import load_checkpoint, save_checkpoint
from seqrec_cli.errors import UserError
from seqrec_cli.pipelines.evaluate import evaluate
from seqrec_cli.pipelines.finetune import finetune
from seqrec_cli.pipelines.run_format import RUN_FORMAT_VERSION, check_run_format


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fmt")
    spec = tiny_spec(tmp, epochs=1, monitor="NDCG@5")
    result = finetune(spec)
    return spec, result.run_dir


def rewrite(path, **changes):
    payload = load_checkpoint(path)
    for key, value in changes.items():
        if value is None:
            payload.pop(key, None)
        else:
            payload[key] = value
    save_checkpoint(path, payload)


def test_run_folder_records_its_format_version(trained):
    _, folder = trained
    assert json.loads((folder / "run.json").read_text())["format_version"] == RUN_FORMAT_VERSION
    for name in ("best.pt", "last.pt"):
        assert load_checkpoint(folder / "checkpoints" / name)["format_version"] == RUN_FORMAT_VERSION


@pytest.mark.parametrize(
    "version, says",
    [(None, "no format version"), (RUN_FORMAT_VERSION - 1, f"version {RUN_FORMAT_VERSION - 1}"),
     (RUN_FORMAT_VERSION + 1, f"version {RUN_FORMAT_VERSION + 1}")],
)
def test_resume_and_evaluate_refuse_other_versions(trained, tmp_path, version, says):
    spec, folder = trained
    last, best = folder / "checkpoints" / "last.pt", folder / "checkpoints" / "best.pt"
    keep = {p: (p.read_bytes(), (p.parent / (p.name + ".sha256")).read_bytes()) for p in (last, best)}
    try:
        rewrite(last, format_version=version)
        with pytest.raises(UserError, match=says) as info:
            finetune(
                spec.model_copy(update={"train": spec.train.model_copy(update={"epochs": 2})}), resume=True
            )
        assert "release that wrote it" in info.value.render()
        rewrite(best, format_version=version)
        with pytest.raises(UserError, match=says):
            evaluate(spec, "test")
    finally:
        for path, (data, digest) in keep.items():
            path.write_bytes(data)
            (path.parent / (path.name + ".sha256")).write_bytes(digest)
    assert evaluate(spec, "test").report.cases > 0  # the untouched run still reads


def test_check_accepts_exactly_the_current_version():
    check_run_format({"format_version": RUN_FORMAT_VERSION}, "x")
    for record in ({}, {"format_version": RUN_FORMAT_VERSION - 1}, "not a dict"):
        with pytest.raises(UserError):
            check_run_format(record, "x")
