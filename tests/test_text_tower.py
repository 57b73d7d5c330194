"""The LoRA freezing rule (fresh layers train; LoRA over nothing loaded is refused), the trainable text
tower (LoRA / last layer on the text encoder), and export -> reload giving identical scores for every
item variant (id, text whiten, text moe, id+text, text with a LoRA-tuned tower)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from conftest import WORDS
from seqrec_cli.artifacts import Recommender
from seqrec_cli.cli.app import app
from seqrec_cli.core.losses import full_cross_entropy
from seqrec_cli.core.methods import apply_method, count_parameters, merge_lora
from seqrec_cli.core.model import SeqRecModel
from seqrec_cli.core.runtime import resolve_runtime
from seqrec_cli.core.text_encoder import SentencePipeline, encode_texts, load_text_encoder
from seqrec_cli.core.text_tower import TextTower, tokenize_catalogue
from seqrec_cli.data.batching import PAD, TrainBatcher
from seqrec_cli.data.process import Sequences
from seqrec_cli.pipelines.common import load_dataset, load_trained
from seqrec_cli.spec.loader import load_spec
from seqrec_cli.spec.models import ExperimentSpec, LoraSpec, ModelSpec

torch.set_num_threads(1)
runner = CliRunner()
B, L, D, N, W = 3, 5, 8, 11, 12  # W: the pretrained backbone's width (differs from D)


def toy_sequences(num_items: int = N) -> Sequences:
    rng = np.random.default_rng(3)
    lengths = [6, 9, 4, 12, 7, 3, 8, 10]
    items = np.concatenate([rng.integers(1, num_items + 1, size=n) for n in lengths]).astype(np.int32)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return Sequences(items, offsets, None, [f"u{u}" for u in range(len(lengths))],
                     [""] + [f"i{i}" for i in range(1, num_items + 1)])


def train_steps(model: SeqRecModel, steps: int = 3) -> None:
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    batcher = TrainBatcher(toy_sequences(model.num_items), max_len=L, batch_size=4, bucket_by_length=False)
    model.train()
    for _, batch in zip(range(steps), batcher.epoch(np.random.default_rng(0)), strict=False):
        loss = full_cross_entropy(model.encode(batch.inputs), batch.labels, model.item_weights())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()


@pytest.fixture(scope="module")
def pretrained_bert(tmp_path_factory) -> Path:
    """A saved 2-layer BERT of width W (!= D), as a model.pretrained folder."""
    from transformers import BertConfig, BertModel

    folder = tmp_path_factory.mktemp("pretrained-bert")
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=2, hidden_size=W, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=24, max_position_embeddings=16)).save_pretrained(str(folder))
    return folder


def hf_model(folder: Path | None) -> SeqRecModel:
    torch.manual_seed(0)
    spec = ModelSpec(encoder="hf_bert", hidden=D, heads=2, layers=2, max_len=L, dropout=0.0,
                     pretrained=str(folder) if folder else None)
    return SeqRecModel(spec, N)


@pytest.mark.parametrize("method", ["lora", "frozen"])
def test_fresh_layers_over_a_pretrained_backbone_train(pretrained_bert, method):
    model = hf_model(pretrained_bert)
    fresh = model.encoder.fresh_parameter_names()
    assert {"proj_in.weight", "proj_in.bias", "proj_out.weight", "norm.weight", "mask_token"} <= fresh
    assert not any(n.startswith("backbone.") for n in fresh)  # every backbone weight came from the folder
    apply_method(model, method, "hf_bert", LoraSpec(r=2, alpha=4))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    for name in ("proj_in.weight", "proj_out.weight", "norm.weight", "mask_token"):
        assert any(t.endswith(name) for t in trainable), name
    backbone_base = [n for n, p in model.named_parameters() if ".backbone." in n and "lora_" not in n]
    assert backbone_base and not any(n in trainable for n in backbone_base)  # loaded weights stay fixed
    assert any("lora_" in n for n in trainable) == (method == "lora")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    train_steps(model)
    after = dict(model.named_parameters())
    assert not torch.equal(before[next(n for n in before if n.endswith("proj_in.weight"))],
                           after[next(n for n in after if n.endswith("proj_in.weight"))])
    assert all(torch.equal(before[n], after[n]) for n in backbone_base)


def test_weights_missing_from_the_folder_are_fresh(pretrained_bert, tmp_path):
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "partial"
    folder.mkdir()
    (folder / "config.json").write_text((pretrained_bert / "config.json").read_text())
    state = load_file(str(pretrained_bert / "model.safetensors"))
    save_file(
        {k: v for k, v in state.items() if ".layer.1.output.dense." not in k},
        str(folder / "model.safetensors"),
        metadata={"format": "pt"},
    )
    model = hf_model(folder)
    fresh = model.encoder.fresh_parameter_names()
    assert "backbone.encoder.layer.1.output.dense.weight" in fresh
    apply_method(model, "lora", "hf_bert", LoraSpec(r=2, alpha=4))
    grads = {n: p.requires_grad for n, p in model.named_parameters()}
    assert any(g for n, g in grads.items() if "layer.1.output.dense" in n and "lora_" not in n)
    assert not any(g for n, g in grads.items() if "layer.0.output.dense" in n and "lora_" not in n)


def test_a_random_backbone_has_nothing_fresh_and_init_from_clears_it(pretrained_bert):
    assert hf_model(None).encoder.fresh_parameter_names() == set()
    model = hf_model(pretrained_bert)
    apply_method(model, "frozen", "hf_bert", LoraSpec(), encoder_from_init=True)
    assert not any(p.requires_grad for p in model.encoder.parameters())


def _spec(**train) -> dict:
    return {"name": "x", "data": {"path": "log.txt", "format": "user_item_lines"}, "train": train}


def test_lora_without_loaded_weights_is_refused(tmp_path):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="loads none"):
        ExperimentSpec(**_spec(method="lora"))
    ExperimentSpec(**_spec(method="lora", lora={"allow_random_base": True}))
    ExperimentSpec(**_spec(method="lora", init_from="some-run"))
    path = tmp_path / "s.yaml"
    path.write_text("name: x\ndata:\n  path: log.txt\n  format: user_item_lines\ntrain:\n  method: lora\n")
    result = runner.invoke(app, ["finetune", str(path), "--dry-run"])
    assert result.exit_code == 2 and "allow_random_base" in " ".join(result.output.split())


TEXTS = [f"{WORDS[i % len(WORDS)]} {WORDS[(i + 3) % len(WORDS)]}" for i in range(N)]


def tower_model(tiny_encoder: Path, tune: str, items: str = "text") -> SeqRecModel:
    tokenizer, encoder = load_text_encoder(tiny_encoder)
    pipeline = SentencePipeline(("mean",), True, None)
    texts = TEXTS[:-1] + [""]  # the last item has no text
    vectors = torch.cat(
        [torch.zeros(1, 16), encode_texts(texts, tokenizer, encoder, 4, 16, pipeline=pipeline)]
    )
    vectors[N] = 0.0
    torch.manual_seed(0)
    spec = ModelSpec(hidden=D, heads=2, layers=2, max_len=L, dropout=0.0, items=items,
                     text={"template": "{title}", "tune": tune})
    model = SeqRecModel(spec, N, vectors)
    ids, mask, rows = tokenize_catalogue(tokenizer, texts, pipeline, 16)
    model.text_items.attach_tower(
        TextTower(encoder, pipeline, (ids, mask, rows), N + 1, tune, 2, 4.0, chunk=3)
    )
    return model


def test_the_tower_starts_at_the_cached_vectors(tiny_encoder):
    model = tower_model(tiny_encoder, "lora").eval()
    with torch.no_grad():
        live = model.text_items.tower()  # [N + 1, 16]
    torch.testing.assert_close(live, model.text_items.vectors, atol=1e-5, rtol=0)
    assert torch.all(live[[PAD, N]] == 0)  # PAD and the item without text stay zero


def test_lora_on_the_text_encoder_trains_only_the_adapters(tiny_encoder):
    model = tower_model(tiny_encoder, "lora")
    counts = apply_method(
        model, "full", "sasrec", LoraSpec()
    )  # train.method full must not unfreeze the tower
    tower = model.text_items.tower
    trainable = [n for n, p in tower.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    rest = count_parameters(model).trainable - sum(p.numel() for p in tower.trainable())
    assert counts.trainable == rest + sum(p.numel() for n, p in tower.named_parameters() if "lora_" in n)
    base = {n: p.detach().clone() for n, p in tower.named_parameters() if "lora_" not in n}
    with torch.no_grad():
        start = tower.eval()().clone()
    train_steps(model)
    assert all(torch.equal(p, base[n]) for n, p in tower.named_parameters() if "lora_" not in n)
    assert any(p.abs().sum() > 0 for n, p in tower.named_parameters() if "lora_B" in n)
    with torch.no_grad():
        moved = tower()
        assert not torch.allclose(moved, start, atol=1e-6)  # the text vectors themselves changed
        scores = model.score_all(torch.tensor([[PAD, 1, 2, 3, 4]]))
    merge_lora(model)
    assert not any("lora" in n for n, _ in model.named_parameters())
    with torch.no_grad():
        torch.testing.assert_close(
            model.score_all(torch.tensor([[PAD, 1, 2, 3, 4]])), scores, atol=1e-5, rtol=0
        )


def test_last_layer_tuning_trains_the_last_layer_only(tiny_encoder):
    model = tower_model(tiny_encoder, "last_layer", items="id+text")
    apply_method(model, "full", "sasrec", LoraSpec())
    trainable = [n for n, p in model.text_items.tower.named_parameters() if p.requires_grad]
    assert trainable and all(
        n.startswith("encoder.encoder.layer.0.") for n in trainable
    )  # 1 layer: it is last
    frozen = [n for n, p in model.text_items.tower.named_parameters() if not p.requires_grad]
    assert any("embeddings" in n for n in frozen)


def test_the_tower_table_is_reused_within_a_step_and_cached_in_eval(tiny_encoder):
    model = tower_model(tiny_encoder, "lora")
    tower = model.text_items.tower
    calls = []
    original = tower.encode
    tower.encode = lambda: calls.append(1) or original()
    model.train()
    first = tower()
    assert tower() is first and len(calls) == 1  # inputs and loss share one encoding
    first.sum().backward()
    tower()
    assert len(calls) == 2  # after backward the next step encodes again
    model.eval()
    with torch.no_grad():
        a = tower()
        assert tower() is a and len(calls) == 3
        next(p for n, p in tower.named_parameters() if "lora_B" in n).add_(0.1)  # a weight change
        assert not torch.equal(tower(), a) and len(calls) == 4


# ----- export -> reload gives identical scores for every variant (CLI, tiny data) -----

USERS, ITEMS = 30, 16


def write_world(root: Path) -> tuple[Path, Path]:
    root.mkdir(parents=True, exist_ok=True)
    lines = []
    for u in range(USERS):
        lines += [f"u{u} {1 + (3 * u + j) % ITEMS}" for j in range(5 + u % 5)]
    (root / "log.txt").write_text("\n".join(lines) + "\n")
    rows = ["item_id,title"] + [
        f"{i + 1},{WORDS[i % len(WORDS)]} {WORDS[(i + 1) % len(WORDS)]}" for i in range(ITEMS)
    ]
    (root / "items.csv").write_text("\n".join(rows) + "\n")
    return root / "log.txt", root / "items.csv"


VARIANTS = {"id": ("id", "whiten", "frozen"), "text-whiten": ("text", "whiten", "frozen"),
            "text-moe": ("text", "moe", "frozen"), "idtext": ("id+text", "whiten", "frozen"),
            "text-tower-lora": ("text", "moe", "lora")}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_export_and_reload_give_identical_scores(tmp_path_factory, tiny_encoder, variant):
    items, adaptor, tune = VARIANTS[variant]
    root = tmp_path_factory.mktemp(variant)
    log, items_csv = write_world(root)
    text = "" if items == "id" else f"""
  text:
    template: "{{title}}"
    encoder: {tiny_encoder}
    adaptor: {adaptor}
    experts: 3
    tune: {tune}
    tune_lora_r: 2"""
    spec_path = root / "spec.yaml"
    spec_path.write_text(f"""name: v-{variant}
data:
  path: {log}
  format: user_item_lines
  items:
    path: {items_csv}
    format: table
model:
  items: {items}
  max_len: 6
  hidden: 8
  layers: 1
  heads: 2
  dropout: 0.1{text}
train:
  epochs: 1
  batch_size: 8
  lr: 0.01
runtime:
  device: cpu
  precision: fp32
  threads: 1
  output_root: {root / "out"}
""")
    for command in ("finetune", "export"):
        result = runner.invoke(app, [command, str(spec_path)])
        assert result.exit_code == 0, (command, result.output, result.exception)
    spec = load_spec(spec_path)
    seqs, manifest, _ = load_dataset(spec)
    built, _, _ = load_trained(spec, seqs, manifest, resolve_runtime("cpu", "fp32"))
    rec = Recommender.load(root / "out" / "exports" / f"v-{variant}")
    assert (rec.model.text_items is None) == (items == "id")
    if tune != "frozen":
        assert built.model.text_items.tower is not None and rec.model.text_items.tower is None  # baked
        assert not torch.allclose(
            rec.model.text_items.vectors, built.text.vectors, atol=1e-4
        )  # tuned vectors
    histories = [["1", "2", "3"], ["7", "8"], ["15", "16", "4", "5"]]
    with torch.no_grad():
        expected = built.model.eval().score_all(rec.encode_histories(histories)[0])
    torch.testing.assert_close(rec.scores(histories, exclude_history=False), expected, atol=1e-5, rtol=0)


def test_a_checkpoint_on_other_text_vectors_is_refused(tmp_path, tiny_encoder):
    """The run's encoder folder gains a Normalize step (as seqrec < 0.3 ignored it): the same spec now gives
    other vectors, and neither evaluate nor --resume may pair them with the adaptor trained on the old
    ones."""
    import json
    import shutil

    encoder = tmp_path / "encoder"
    shutil.copytree(tiny_encoder, encoder)
    log, items_csv = write_world(tmp_path)
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(f"""name: stale
data: {{path: {log}, format: user_item_lines, items: {{path: {items_csv}, format: table}}}}
model:
  items: text
  max_len: 6
  hidden: 8
  layers: 1
  heads: 2
  text: {{template: "{{title}}", encoder: {encoder}}}
train: {{epochs: 1, batch_size: 8}}
runtime: {{device: cpu, precision: fp32, threads: 1, output_root: {tmp_path / "out"}}}
""")
    assert runner.invoke(app, ["finetune", str(spec_path)]).exit_code == 0
    st = "sentence_transformers.models."
    (encoder / "1_Pooling").mkdir()
    (encoder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": True}))
    (encoder / "modules.json").write_text(json.dumps([{"path": "", "type": st + "Transformer"},
                                                      {"path": "1_Pooling", "type": st + "Pooling"},
                                                      {"path": "2_Normalize", "type": st + "Normalize"}]))
    resume = ["finetune", str(spec_path), "--resume", "--set", "train.epochs=2"]
    for command in (["evaluate", str(spec_path)], resume):
        result = runner.invoke(app, command)
        assert result.exit_code == 2 and "other item text vectors" in " ".join(result.output.split()), command
