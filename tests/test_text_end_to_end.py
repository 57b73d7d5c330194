"""Text items through the CLI on small synthetic catalogues with the tiny local text encoder:
cold-start prepare + evaluation, LoRA finetuning, export/reload, transfer to another catalogue,
zero-shot evaluation, and the errors for what cannot transfer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from conftest import WORDS
from seqrec_cli.artifacts import Recommender
from seqrec_cli.cli.app import app
from seqrec_cli.core.runtime import resolve_runtime
from seqrec_cli.pipelines.common import load_dataset, load_trained
from seqrec_cli.spec.loader import load_spec

torch.set_num_threads(1)
runner = CliRunner()
USERS, ITEMS = 40, 20


def ok(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, (args, result.output, result.exception)
    return result


def flat(text: str) -> str:
    return " ".join(text.split())


def write_catalogue(folder: Path, first_id: int, shift: int) -> tuple[Path, Path]:
    """Users walk items cyclically; item i's title is two words that follow i (so neighbours share a word)."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for u in range(USERS):
        start = (3 * u) % ITEMS
        lines += [f"u{u} {first_id + (start + j) % ITEMS}" for j in range(5 + u % 6)]
    (folder / "log.txt").write_text("\n".join(lines) + "\n")
    rows = ["item_id,title,genres"]
    for i in range(ITEMS):
        rows.append(f"{first_id + i},{WORDS[(i + shift) % len(WORDS)]} {WORDS[(i + shift + 1) % len(WORDS)]},"
                    f"{'comedy' if i % 2 else 'drama'}")
    (folder / "items.csv").write_text("\n".join(rows) + "\n")
    return folder / "log.txt", folder / "items.csv"


def write_spec(
    path: Path,
    name: str,
    log: Path,
    items_csv: Path,
    encoder: Path,
    out: Path,
    extra_data: str = "",
    items: str = "text",
    train: str = "",
) -> Path:
    text = "" if items == "id" else f"""
  text:
    template: "{{title}}[. Genres: {{genres}}]"
    encoder: {encoder}
    max_length: 16"""
    path.write_text(f"""\
name: {name}
data:
  path: {log}
  format: user_item_lines
  items:
    path: {items_csv}
    format: table{extra_data}
model:
  items: {items}
  max_len: 8
  hidden: 16
  layers: 1
  heads: 2
  dropout: 0.1{text}
train:
  epochs: 2
  batch_size: 16
  lr: 0.005
  monitor: NDCG@10
  seed: 1{train}
eval:
  ks: [5, 10]
runtime:
  device: cpu
  precision: fp32
  threads: 1
  output_root: {out}
""")
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_encoder: Path) -> dict:
    root = tmp_path_factory.mktemp("text-e2e")
    out = root / "out"
    log_a, items_a = write_catalogue(root / "a", first_id=1, shift=0)
    log_b, items_b = write_catalogue(root / "b", first_id=500, shift=3)
    cold = "\n  cold_items:\n    fraction: 0.25\n    seed: 3"
    specs = {
        "lora": write_spec(
            root / "lora.yaml",
            "a-lora",
            log_a,
            items_a,
            tiny_encoder,
            out,
            cold,
            train="\n  method: lora\n  lora:\n    r: 2\n    alpha: 4\n    allow_random_base: true",
        ),
        "id": write_spec(root / "id.yaml", "a-id", log_a, items_a, tiny_encoder, out, cold, items="id"),
        "source": write_spec(root / "source.yaml", "a-text", log_a, items_a, tiny_encoder, out),
        "target": write_spec(root / "target.yaml", "b-text", log_b, items_b, tiny_encoder, out),
    }
    outputs = {"lora": ok("finetune", specs["lora"]).output, "source": ok("finetune", specs["source"]).output}
    outputs["lora_eval"] = ok("evaluate", specs["lora"], "--split", "test").output
    ok("export", specs["lora"])
    ok("export", specs["source"])
    return {"root": root, "out": out, "specs": specs, "outputs": outputs}


def test_lora_run_reports_trainable_parameters(world):
    info = json.loads((world["out"] / "runs" / "a-lora" / "run.json").read_text())
    assert info["method"] == "lora" and 0 < info["trainable_parameters"] < info["parameters"]
    assert f"{info['trainable_parameters']:,} trainable" in flat(world["outputs"]["lora"])
    assert info["items"]["items"] == "text" and info["items"]["text_model_hash"]


def test_cold_targets_are_ranked_from_text(world):
    report = json.loads((world["out"] / "runs" / "a-lora" / "eval" / "test.json").read_text())
    cold = report["cold_start"]
    assert cold["rankable"] and cold["cold_items"] == 5 and cold["cold_targets"] > 0
    assert set(cold["cold_metrics"]) == {"HR@5", "NDCG@5", "MRR@5", "HR@10", "NDCG@10", "MRR@10"}
    assert 0 < cold["cold_chance"]["HR@10"] <= 1
    assert "cold targets" in flat(world["outputs"]["lora_eval"])


def test_id_items_cannot_rank_cold_targets(world):
    spec = world["specs"]["id"]
    ok("finetune", spec, "--set", "train.epochs=1")
    result = ok("evaluate", spec, "--split", "test")
    cold = json.loads((world["out"] / "runs" / "a-id" / "eval" / "test.json").read_text())["cold_start"]
    assert not cold["rankable"] and cold["cold_targets"] > 0
    assert all(value == 0.0 for value in cold["cold_metrics"].values())  # each cold target ranked last
    assert "not rankable" in flat(result.output)
    # the export remembers them: its recommender never returns a held-out item either
    ok("export", spec)
    rec = Recommender.load(world["out"] / "exports" / "a-id")
    held_out = {rec.item_ids[i] for i in rec.model.held_out.tolist()}
    some_history = [rec.item_ids[i] for i in range(1, 4) if rec.item_ids[i] not in held_out]
    recommended = {item for item, _ in rec.recommend(some_history, k=len(rec.item_ids))}
    assert held_out and not recommended & held_out
    assert len(recommended) == len(rec.item_ids) - 1 - len(held_out) - len(some_history)


def test_lora_export_reloads_to_the_same_scores(world):
    spec = load_spec(world["specs"]["lora"])
    seqs, manifest, _ = load_dataset(spec)
    built, _, _ = load_trained(spec, seqs, manifest, resolve_runtime("cpu", "fp32"))
    assert any("lora_A" in key for key in built.model.state_dict())  # the checkpoint holds adapters
    rec = Recommender.load(world["out"] / "exports" / "a-lora")
    assert not any("lora" in key for key in rec.model.state_dict())  # the export holds merged weights
    histories = [["1", "2", "3"], ["7", "8"], ["15", "16", "17", "18"]]
    with torch.no_grad():
        expected = built.model.eval().score_all(rec.encode_histories(histories)[0])
    got = rec.scores(histories, exclude_history=False)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert [i for i, _ in rec.recommend(histories[0], k=5)] == \
        [rec.item_ids[i] for i in torch.topk(rec.scores(histories[:1])[0], 5).indices.tolist()]


def test_transfer_to_another_catalogue_starts_from_the_source(world):
    target, export = world["specs"]["target"], world["out"] / "exports" / "a-text"
    zero = ok("evaluate", target, "--split", "valid", "--model", export)
    assert "zero-shot" in flat(zero.output)
    report = json.loads((world["out"] / "evals" / "b-text-from-a-text" / "valid.json").read_text())
    assert not (world["out"] / "runs" / "b-text").exists()  # the run folder stays free for finetune
    assert report["checkpoint"]["zero_shot"] and report["checkpoint"]["mode"] == "transfer"
    # a finetune from the same export at a vanishing lr validates (epoch 1) at the zero-shot value
    out = ok("finetune", target, "--set", f"train.init_from={export}", "--set", "train.epochs=1",
             "--set", "train.lr=1e-9").output
    assert "transfer" in flat(out)
    first = json.loads((world["out"] / "runs" / "b-text" / "metrics.jsonl").read_text().splitlines()[0])
    assert first["valid"]["NDCG@10"] == pytest.approx(report["metrics"]["NDCG@10"], abs=1e-6)
    # and from a run folder by name (its best checkpoint) as well
    ok(
        "finetune",
        target,
        "--set",
        "name=b-from-run",
        "--set",
        "train.init_from=a-text",
        "--set",
        "train.epochs=1",
    )


def test_what_cannot_transfer_exits_2(world):
    target = world["specs"]["target"]
    id_target = write_spec(world["root"] / "id-b.yaml", "b-id", world["root"] / "b" / "log.txt",
                           world["root"] / "b" / "items.csv", Path("unused"), world["out"], items="id")
    result = runner.invoke(app, ["finetune", str(id_target), "--set", "train.init_from=a-text"])
    assert result.exit_code == 2 and "id items cannot transfer" in flat(result.output)
    result = runner.invoke(
        app, ["finetune", str(target), "--set", "name=b-bad", "--set", "train.init_from=a-lora"]
    )
    assert (
        result.exit_code == 2
        and "LoRA adapters" in flat(result.output)
        and "seqrec export" in flat(result.output)
    )
    assert not (world["out"] / "runs" / "b-bad" / "checkpoints").exists()
