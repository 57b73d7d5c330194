"""The run-folder hash that --resume checks: which spec changes it, across default changes; and how a
run folder's saved spec is read back after a default changed."""

import hashlib
import json

import yaml

from seqrec_cli.pipelines.common import resumable_hash, saved_spec_overrides
from seqrec_cli.spec.loader import load_spec
from seqrec_cli.spec.models import ExperimentSpec


def spec(**train) -> ExperimentSpec:
    return ExperimentSpec(name="h", data={"path": "x.txt", "format": "user_item_lines"}, train=train)


def hash_before_the_loss_norm_default_changed(s: ExperimentSpec) -> str:
    """What resumable_hash wrote into run.json while loss_norm defaulted to step: the non-default
    fields of the spec with its run-length and runtime fields reset (no loss_norm unless it was epoch)."""
    values = s.model_dump(mode="json", exclude_defaults=True)
    values.pop("runtime", None)
    values.setdefault("train", {}).pop("loss_norm", None)
    if s.train.loss_norm == "epoch":  # not the default then, so it was written out
        values["train"]["loss_norm"] = "epoch"
    values["train"] |= {"epochs": 1, "patience": 1}
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()


def test_run_length_and_runtime_do_not_change_the_hash():
    base = spec(epochs=50)
    longer = spec(epochs=300, patience=40, max_minutes=90)
    longer.runtime.threads = 1
    assert resumable_hash(base) == resumable_hash(longer)
    assert resumable_hash(base) != resumable_hash(spec(lr=0.002))


def test_loss_norm_epoch_is_the_default_and_step_hashes_differently():
    assert spec().train.loss_norm == "epoch"
    assert resumable_hash(spec()) != resumable_hash(spec(loss_norm="step"))
    assert resumable_hash(spec()) == resumable_hash(spec(loss_norm="epoch"))


def test_runs_started_under_either_old_setting_keep_their_hash():
    # Old default (step, left out of the spec) must resume only with an explicit step now;
    # an old explicit epoch is the new default and must resume as it is.
    for loss_norm in ("step", "epoch"):
        now = spec(loss_norm=loss_norm, lr=0.002)
        assert resumable_hash(now) == hash_before_the_loss_norm_default_changed(now)


def test_a_saved_spec_without_a_changed_field_is_read_under_its_first_default(tmp_path):
    # Run folders save every field; one saved before loss_norm existed trained with per-step means.
    old = {"name": "r", "train": {"loss": "full_ce", "lr": 0.001}}
    new = {"name": "r", "train": {"loss": "full_ce", "loss_norm": "epoch"}}
    assert saved_spec_overrides(old) == ["train.loss_norm=step"]
    assert saved_spec_overrides(new) == []
    assert saved_spec_overrides({"name": "r"}) == ["train.loss_norm=step"]
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({**old, "data": {"dataset": "ml-100k"}}))
    assert load_spec(path, saved_spec_overrides(old)).train.loss_norm == "step"
    assert load_spec(path).train.loss_norm == "epoch"
