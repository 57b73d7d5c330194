"""prepare -> finetune -> evaluate -> export -> Recommender on a small synthetic dataset, through the CLI.

One module-scoped run (4 epochs of a 16-wide, 1-layer SASRec on 48 users x 24 items) is shared by the
tests; a second run is trained 2 epochs and resumed to 4, and must match the uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from seqrec_cli.artifacts import Recommender
from seqrec_cli.cli.app import app
from seqrec_cli.core.model import SeqRecModel
from seqrec_cli.errors import UserError
from seqrec_cli.spec.loader import load_spec, spec_hash

torch.set_num_threads(1)

USERS, ITEMS, EPOCHS = 48, 24, 4
runner = CliRunner()


def invoke(*args: str | Path):
    result = runner.invoke(app, [str(a) for a in args])
    return result


def ok(*args: str | Path):
    result = invoke(*args)
    assert result.exit_code == 0, (args, result.output, result.exception)
    return result


def flat(text: str) -> str:
    """Output with rich's line wrapping undone (it wraps at 80 columns when not on a terminal)."""
    return " ".join(text.split())


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def raw_item(index: int) -> str:
    """Raw ids that are not the dense indices, so a raw/index mix-up cannot go unnoticed."""
    return str(5000 + 7 * index)


def write_data(path: Path) -> Path:
    """User u walks the catalogue cyclically from a start item: the next item is always the
    'following' one."""
    lines = []
    for u in range(1, USERS + 1):
        start = (5 * u) % ITEMS
        for j in range(6 + u % 7):  # 6..12 items, some longer than max_len
            lines.append(f"user{u} {raw_item((start + j) % ITEMS)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def write_spec(folder: Path, data: Path) -> Path:
    spec = folder / "tiny.yaml"
    spec.write_text(f"""\
name: e2e
data:
  path: {data}
  format: user_item_lines
model:
  max_len: 10
  hidden: 16
  layers: 1
  heads: 2
  dropout: 0.1
train:
  epochs: {EPOCHS}
  batch_size: 16
  lr: 0.005
  patience: 50
  monitor: NDCG@10
  seed: 42
eval:
  ks: [5, 10]
runtime:
  device: cpu
  precision: fp32
  threads: 1
  output_root: {folder / "out"}
""")
    return spec


@dataclass
class Run:
    spec: Path
    out: Path
    prepared: Path
    run: Path
    export: Path
    outputs: dict


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Run:
    folder = tmp_path_factory.mktemp("e2e")
    spec = write_spec(folder, write_data(folder / "interactions.txt"))
    out = folder / "out"
    outputs = {
        "prepare": ok("prepare", spec).output,
        "prepare_again": ok("prepare", spec).output,
        "finetune": ok("finetune", spec).output,
        "evaluate_valid": ok("evaluate", spec, "--split", "valid").output,
        "evaluate_test": ok("evaluate", spec, "--split", "test").output,
        "export": ok("export", spec).output,
    }
    (prepared,) = (out / "prepared").iterdir()
    return Run(spec, out, prepared, out / "runs" / "e2e", out / "exports" / "e2e", outputs)


def metrics_records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def best_model(run: Run) -> tuple[SeqRecModel, list[str]]:
    """The model as the run's best checkpoint has it, built independently of the export."""
    spec = load_spec(run.spec)
    item_ids = json.loads((run.prepared / "item_ids.json").read_text())
    payload = torch.load(run.run / "checkpoints" / "best.pt", map_location="cpu", weights_only=True)
    model = SeqRecModel(spec.model, len(item_ids) - 1)
    model.load_state_dict(payload["model"])
    return model.eval(), item_ids


@torch.no_grad()
def reference_top(model: SeqRecModel, item_ids: list[str], history: list[str], k: int, max_len: int,
                  exclude: bool = True) -> list[str]:
    index = {raw: i for i, raw in enumerate(item_ids) if i}
    seen = [index[h] for h in history]
    window = seen[-max_len:]
    inputs = torch.zeros(1, max_len, dtype=torch.long)
    inputs[0, max_len - len(window):] = torch.tensor(window)
    scores = model.score_all(inputs)[0]
    if exclude:
        scores[seen] = float("-inf")
    top = torch.topk(scores, k)
    return [
        item_ids[i]
        for i, s in zip(top.indices.tolist(), top.values.tolist(), strict=True)
        if s != float("-inf")
    ]


HISTORIES = [
    [raw_item(3)],
    [raw_item(i) for i in (3, 4, 5)],
    [raw_item(i % ITEMS) for i in range(17, 31)],  # 14 items, longer than max_len
    [raw_item(i) for i in (20, 2, 11, 7)],
    [raw_item(0), raw_item(0), raw_item(1)],  # repeated item
]


# ---------------------------------------------------------------------------------------------------
# prepare
# ---------------------------------------------------------------------------------------------------


def test_prepare_writes_dataset_then_reuses_it(trained: Run) -> None:
    assert trained.outputs["prepare"].startswith("prepared")
    assert f"{USERS} users, {ITEMS} items" in flat(trained.outputs["prepare"])
    assert trained.outputs["prepare_again"].startswith("already prepared")
    manifest = json.loads((trained.prepared / "manifest.json").read_text())
    assert manifest["fingerprint"]["users"] == USERS and manifest["fingerprint"]["items"] == ITEMS
    item_ids = json.loads((trained.prepared / "item_ids.json").read_text())
    assert item_ids == [""] + [raw_item(i) for i in range(ITEMS)]


def test_prepare_again_is_a_no_op(trained: Run) -> None:
    before = snapshot(trained.prepared)
    result = ok("prepare", trained.spec)
    assert "already prepared" in result.output
    assert snapshot(trained.prepared) == before
    assert len(list((trained.out / "prepared").iterdir())) == 1


# ---------------------------------------------------------------------------------------------------
# finetune
# ---------------------------------------------------------------------------------------------------


def test_finetune_writes_run_folder(trained: Run) -> None:
    records = metrics_records(trained.run)
    assert [r["epoch"] for r in records] == list(range(1, EPOCHS + 1))
    assert all("valid" in r and "NDCG@10" in r["valid"] for r in records)
    info = json.loads((trained.run / "run.json").read_text())
    assert info["status"] == "finished" and info["stop_reason"] == "epochs" and info["epochs_run"] == EPOCHS
    assert info["spec_hash"] == spec_hash(load_spec(trained.spec))
    best = max(records, key=lambda r: (r["valid"]["NDCG@10"], -r["epoch"]))  # first maximum
    assert info["best_epoch"] == best["epoch"]
    payload = torch.load(trained.run / "checkpoints" / "best.pt", map_location="cpu", weights_only=True)
    assert payload["epoch"] == best["epoch"]
    last = torch.load(trained.run / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    assert last["epoch"] == EPOCHS
    assert load_spec(trained.run / "spec.yaml") == load_spec(trained.spec)
    # the loss went down on this easy pattern
    assert records[-1]["loss"] < records[0]["loss"]


def test_finetune_again_without_resume_exits_2_and_touches_nothing(trained: Run) -> None:
    before = snapshot(trained.run)
    result = invoke("finetune", trained.spec)
    assert result.exit_code == 2
    assert "already exists" in result.stderr and "--resume" in result.stderr
    assert snapshot(trained.run) == before


# ---------------------------------------------------------------------------------------------------
# evaluate
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("split", ["valid", "test"])
def test_evaluate_report(trained: Run, split: str) -> None:
    report = json.loads((trained.run / "eval" / f"{split}.json").read_text())
    assert report["split"] == split
    for key in ("NDCG@10", "HR@10", "MRR@10", "NDCG@5", "HR@5", "MRR@5"):
        assert 0.0 <= report["metrics"][key] <= 1.0, key
    assert report["metrics"]["HR@10"] >= report["metrics"]["NDCG@10"] >= report["metrics"]["MRR@10"]
    assert report["users"] == USERS and report["num_items"] == ITEMS
    manifest = json.loads((trained.prepared / "manifest.json").read_text())
    assert report["dataset_fingerprint"] == manifest["fingerprint"]
    assert report["spec_hash"] == spec_hash(load_spec(trained.spec))
    assert report["seed"] == 42
    ckpt = trained.run / "checkpoints" / "best.pt"
    assert Path(report["checkpoint"]["path"]) == ckpt
    assert report["checkpoint"]["sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert report["checkpoint"]["epoch"] == json.loads((trained.run / "run.json").read_text())["best_epoch"]
    assert f"checkpoint epoch {report['checkpoint']['epoch']}" in flat(trained.outputs[f"evaluate_{split}"])


def test_evaluate_valid_matches_validation_during_training(trained: Run) -> None:
    report = json.loads((trained.run / "eval" / "valid.json").read_text())
    epoch = report["checkpoint"]["epoch"]
    (record,) = [r for r in metrics_records(trained.run) if r["epoch"] == epoch]
    for key, value in record["valid"].items():
        assert report["metrics"][key] == pytest.approx(value, abs=1e-9), key


# ---------------------------------------------------------------------------------------------------
# export and Recommender
# ---------------------------------------------------------------------------------------------------


def test_export_folder(trained: Run) -> None:
    names = {p.name for p in trained.export.iterdir()}
    assert {"model.safetensors", "config.json", "item_ids.json", "items.jsonl", "metrics.json",
            "manifest.json"} <= names
    manifest = json.loads((trained.export / "manifest.json").read_text())
    assert set(manifest["files"]) == names - {"manifest.json"}
    assert manifest["spec_hash"] == spec_hash(load_spec(trained.spec))
    metrics = json.loads((trained.export / "metrics.json").read_text())
    assert set(metrics) == {"valid", "test"}
    # the exported weights are the best checkpoint's, bit for bit
    payload = torch.load(trained.run / "checkpoints" / "best.pt", map_location="cpu", weights_only=True)
    exported = load_file(str(trained.export / "model.safetensors"))
    assert set(exported) == set(payload["model"])
    for name, tensor in payload["model"].items():
        assert torch.equal(exported[name], tensor), name
    assert manifest["checkpoint"]["epoch"] == payload["epoch"]


def test_recommender_matches_trained_model_exactly(trained: Run) -> None:
    model, item_ids = best_model(trained)
    rec = Recommender.load(trained.export)
    for history in HISTORIES:
        expected = reference_top(model, item_ids, history, 10, 10)
        got = rec.recommend(history, k=10)
        assert [item for item, _ in got] == expected, history
        assert not set(expected) & set(history)
        assert all(a[1] >= b[1] for a, b in zip(got, got[1:], strict=False))  # best first


def test_recommender_include_history(trained: Run) -> None:
    model, item_ids = best_model(trained)
    rec = Recommender.load(trained.export)
    for history in HISTORIES:
        expected = reference_top(model, item_ids, history, 10, 10, exclude=False)
        assert [item for item, _ in rec.recommend(history, k=10, exclude_history=False)] == expected
        # the whole catalogue: history items are returned only without exclusion
        everything = rec.recommend(history, k=ITEMS, exclude_history=False)
        assert sorted(item for item, _ in everything) == sorted(item_ids[1:])
        excluded = rec.recommend(history, k=ITEMS)
        assert len(excluded) == ITEMS - len(set(history))
        assert not {item for item, _ in excluded} & set(history)


def test_recommender_single_vs_batch(trained: Run) -> None:
    rec = Recommender.load(trained.export)
    batch = rec.recommend(HISTORIES, k=5)
    assert len(batch) == len(HISTORIES)
    for history, from_batch in zip(HISTORIES, batch, strict=True):
        single = rec.recommend(history, k=5)
        assert [item for item, _ in from_batch] == [item for item, _ in single]
        assert [s for _, s in from_batch] == pytest.approx([s for _, s in single], rel=1e-5, abs=1e-5)
    # tuples and one-element batches are batches too
    assert rec.recommend([tuple(HISTORIES[1])], k=5) == [rec.recommend(HISTORIES[1], k=5)]


def test_recommender_unknown_items(trained: Run) -> None:
    rec = Recommender.load(trained.export)
    known = [raw_item(3), raw_item(4)]
    assert rec.recommend(known + ["not-an-item"], k=5) == rec.recommend(known, k=5)
    with pytest.raises(ValueError):
        rec.recommend(["not-an-item"], k=5)


@pytest.mark.parametrize("victim", ["model.safetensors", "item_ids.json", "config.json"])
def test_modified_export_is_refused(trained: Run, tmp_path: Path, victim: str) -> None:
    copy = tmp_path / "export"
    shutil.copytree(trained.export, copy)
    Recommender.load(copy)  # the untouched copy loads
    path = copy / victim
    data = bytearray(path.read_bytes())
    data[-2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(UserError) as exc:
        Recommender.load(copy)
    assert victim in str(exc.value) and "sha256" in str(exc.value)


def test_export_without_manifest_is_refused(trained: Run, tmp_path: Path) -> None:
    copy = tmp_path / "export"
    shutil.copytree(trained.export, copy)
    (copy / "manifest.json").unlink()
    with pytest.raises(UserError, match="manifest.json missing"):
        Recommender.load(copy)


def test_export_twice_exits_2_and_keeps_the_first(trained: Run) -> None:
    before = snapshot(trained.export)
    result = invoke("export", trained.spec)
    assert result.exit_code == 2
    assert str(trained.export) in result.stderr and "already exists" in result.stderr
    assert snapshot(trained.export) == before
    assert [p.name for p in trained.export.parent.iterdir()] == [trained.export.name]  # no temp folder left


# ---------------------------------------------------------------------------------------------------
# resume
# ---------------------------------------------------------------------------------------------------


def test_resume_continues_from_last_checkpoint(trained: Run) -> None:
    first = ok("finetune", trained.spec, "--set", "name=resumed", "--set", "train.epochs=2")
    assert "after 2 epochs" in flat(first.output)
    run_dir = trained.out / "runs" / "resumed"
    assert [r["epoch"] for r in metrics_records(run_dir)] == [1, 2]

    second = ok(
        "finetune", trained.spec, "--set", "name=resumed", "--set", f"train.epochs={EPOCHS}", "--resume"
    )
    assert "resuming after epoch 2" in flat(second.output)
    records = metrics_records(run_dir)
    assert [r["epoch"] for r in records] == list(range(1, EPOCHS + 1))
    assert json.loads((run_dir / "run.json").read_text())["epochs_run"] == EPOCHS

    # 2 + 2 epochs train exactly like the uninterrupted 4 (same seed, batch order, RNG and optimizer state)
    straight = metrics_records(trained.run)
    for a, b in zip(records, straight, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-5), a["epoch"]
        assert a["valid"]["NDCG@10"] == pytest.approx(b["valid"]["NDCG@10"], abs=1e-6), a["epoch"]

    # resuming a finished run adds nothing
    ok("finetune", trained.spec, "--set", "name=resumed", "--set", f"train.epochs={EPOCHS}", "--resume")
    assert [r["epoch"] for r in metrics_records(run_dir)] == list(range(1, EPOCHS + 1))

    # resuming with a changed model is refused
    before = snapshot(run_dir)
    changed = invoke(
        "finetune", trained.spec, "--set", "name=resumed", "--set", "model.hidden=32", "--resume"
    )
    assert changed.exit_code == 2 and "different spec" in changed.stderr
    assert snapshot(run_dir) == before


def test_init_from_starts_at_the_source_runs_best_weights(trained: Run) -> None:
    """A second run initialised from the first (by run name) begins exactly at its best checkpoint."""
    first = metrics_records(trained.run)
    best_valid = max(r["valid"]["NDCG@10"] for r in first)
    ok(
        "finetune",
        trained.spec,
        "--set",
        "name=e2e-init",
        "--set",
        "train.init_from=e2e",
        "--set",
        "train.epochs=1",
        "--set",
        "train.lr=1e-9",
    )  # a vanishing lr: the one epoch cannot move the weights measurably
    second = metrics_records(trained.out / "runs" / "e2e-init")
    assert second[0]["valid"]["NDCG@10"] == pytest.approx(best_valid, abs=1e-6)


def test_init_from_other_dataset_exits_2(trained: Run, tmp_path: Path) -> None:
    other = tmp_path / "other.txt"
    other.write_text("".join(f"u{u} {i}\n" for u in range(8) for i in range(1, 7)))
    result = invoke("finetune", trained.spec, "--set", f"data.path={other}", "--set", "name=e2e-other",
                    "--set", f"train.init_from={trained.run}")
    assert result.exit_code == 2, result.output
    assert "different prepared dataset" in flat(result.output)
