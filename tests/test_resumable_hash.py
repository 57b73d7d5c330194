"""The run-folder hash that --resume checks: which spec changes change it. (Runs of older seqrec
releases are refused by their run format version before the hash is compared: test_run_format.py.)"""

from seqrec_cli.pipelines.common import resumable_hash
from seqrec_cli.spec.models import ExperimentSpec


def spec(**train) -> ExperimentSpec:
    return ExperimentSpec(name="h", data={"path": "x.txt", "format": "user_item_lines"}, train=train)


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
