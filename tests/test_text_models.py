"""Text-based item tables, cold-start holdout, finetuning methods (full / frozen / LoRA) and transfer."""

from __future__ import annotations

import typing

import numpy as np
import pytest
import torch

from seqrec_cli.core.encoders import ENCODERS
from seqrec_cli.core.item_repr import TextItems
from seqrec_cli.core.losses import full_cross_entropy
from seqrec_cli.core.methods import LORA_TARGETS, apply_method, count_parameters, lora_targets, merge_lora
from seqrec_cli.core.model import SeqRecModel
from seqrec_cli.data.batching import PAD, SPLIT_HOLDOUT, TrainBatcher, eval_batches
from seqrec_cli.data.cold import draw_cold_items, hold_out_items, split_targets
from seqrec_cli.data.process import Sequences
from seqrec_cli.errors import UserError
from seqrec_cli.spec.models import EncoderKind, LoraSpec, ModelSpec

torch.set_num_threads(1)

B, L, D, N, E = 3, 5, 8, 11, 6
ATOL = 1e-5


def text_vectors(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    vectors = torch.randn(N + 1, E, generator=g) + 0.5  # [N + 1, E], off-centre like real sentence vectors
    vectors[PAD] = 0.0
    return vectors


def make(
    items: str, adaptor: str = "whiten", seed: int = 0, vectors: torch.Tensor | None = None
) -> SeqRecModel:
    torch.manual_seed(seed)
    spec = ModelSpec(
        hidden=D,
        heads=2,
        layers=2,
        max_len=L,
        dropout=0.0,
        items=items,
        text=None if items == "id" else {"template": "{title}", "adaptor": adaptor, "experts": 3},
    )
    return SeqRecModel(
        spec, N, None if items == "id" else (text_vectors() if vectors is None else vectors)
    ).eval()


def inputs() -> torch.Tensor:
    return torch.tensor([[PAD, 3, 7, 1, 2], [PAD, PAD, PAD, 5, 4], [PAD, PAD, 9, 9, 6]])  # [B, L]


@pytest.mark.parametrize("items", ["text", "id+text"])
@pytest.mark.parametrize("adaptor", ["whiten", "moe"])
def test_text_item_tables_have_the_model_shapes(items, adaptor):
    model = make(items, adaptor)
    weights = model.item_weights()
    assert weights.shape == (N + 1, D)
    assert torch.all(weights[PAD] == 0)
    with torch.no_grad():
        scores = model.score_all(inputs())
    assert scores.shape == (B, N + 1) and torch.isinf(scores[:, PAD]).all()
    # the id table exists exactly for id+text, and starts at zero there (the text decides at first)
    assert (model.item_emb is not None) == (items == "id+text")
    if model.item_emb is not None:
        assert model.item_emb.weight.abs().sum() == 0
    # scale: text rows start near the id table's 1/sqrt(D) per dimension
    assert 0.2 / D**0.5 < float(weights[1:].detach().std()) < 5.0 / D**0.5


def test_scores_come_from_the_text_table_for_inputs_and_targets():
    model = make("text")
    h = model.last_hidden(inputs())  # [B, D]
    with torch.no_grad():
        scores = model.score_all(inputs())
    torch.testing.assert_close(scores[:, 1:], (h @ model.item_weights().T)[:, 1:], atol=ATOL, rtol=0)
    # an item's text decides its score: swapping two items' texts swaps their score columns
    vectors = text_vectors()
    swapped = vectors.clone()
    swapped[[4, 10]] = vectors[[10, 4]]
    other = make("text", vectors=swapped)
    probe = torch.tensor([[PAD, PAD, PAD, PAD, 8]])  # a history without items 4 and 10
    with torch.no_grad():
        a, b = model.score_all(probe), other.score_all(probe)
    torch.testing.assert_close(a[0, [4, 10]], b[0, [10, 4]], atol=ATOL, rtol=0)


def test_text_vectors_are_not_part_of_the_state_dict():
    model = make("text")
    assert not any("vectors" in key for key in model.state_dict())
    assert all(not key.startswith("item_emb") for key in model.state_dict())
    assert isinstance(model.text_items, TextItems)


def test_held_out_items_contribute_nothing_while_training():
    model = make("text")
    model.hold_out_items(torch.tensor([4, 10]))
    model.train()
    assert model.item_weights()[[4, 10]].abs().sum() == 0
    model.eval()
    assert model.item_weights()[[4, 10]].abs().sum(1).min() > 0  # evaluation ranks them from their text


def toy_sequences() -> Sequences:
    rng = np.random.default_rng(3)
    lengths = [6, 9, 4, 12, 7, 3, 8, 10]
    items = np.concatenate([rng.integers(1, N + 1, size=n) for n in lengths]).astype(np.int32)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return Sequences(items, offsets, None, [f"u{u}" for u in range(len(lengths))],
                     [""] + [f"i{i}" for i in range(1, N + 1)])


def test_cold_draw_is_seeded_and_sized():
    a, b, c = draw_cold_items(100, 0.1, 7), draw_cold_items(100, 0.1, 7), draw_cold_items(100, 0.1, 8)
    assert len(a) == 10 and np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.min() >= 1 and a.max() <= 100 and len(set(a.tolist())) == 10


def test_cold_items_never_reach_training_or_validation():
    seqs = toy_sequences()
    cold = np.array([2, 5, 9])
    held = hold_out_items(seqs, cold, min_user_len=3)
    is_cold = np.isin(np.arange(N + 1), cold)
    # the only cold interactions left are users' last items (test targets)
    last = held.offsets[1:] - 1
    body = np.delete(held.items, last)
    assert not is_cold[body].any()
    assert held.num_items == N and held.item_ids == seqs.item_ids  # the catalogue keeps every item
    # training inputs/labels, validation inputs/targets and test inputs: no cold item anywhere
    batcher = TrainBatcher(held, max_len=4, batch_size=3, bucket_by_length=True)
    for batch in batcher.epoch(np.random.default_rng(0)):
        assert not is_cold[batch.inputs.numpy()].any()
        labels = batch.labels.numpy()
        assert not is_cold[labels[labels >= 0]].any()
    for split in ("valid", "test"):
        for batch in eval_batches(held, split, max_len=4, batch_size=3):
            assert not is_cold[batch.inputs.numpy()].any() and not is_cold[batch.seen_items.numpy()].any()
    assert not is_cold[split_targets(held, "valid")].any()
    assert is_cold[split_targets(held, "test")].any()  # some test targets are cold: they get evaluated
    # users left with fewer than 3 items are dropped; the rest keep their warm items in order
    for u, raw in enumerate(held.user_ids):
        src = seqs.user_items(seqs.user_ids.index(raw))
        kept = held.user_items(u)
        assert len(kept) >= 3 and kept[-1] == src[-1]
        np.testing.assert_array_equal(kept[:-1], src[:-1][~is_cold[src[:-1]]])
    assert SPLIT_HOLDOUT["test"] == 0  # the holdout relies on test = last item


def _train_steps(model: SeqRecModel, seqs: Sequences, steps: int = 3) -> None:
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    batcher = TrainBatcher(seqs, max_len=L, batch_size=4, bucket_by_length=False)
    model.train()
    for step, batch in zip(range(steps), batcher.epoch(np.random.default_rng(0)), strict=False):
        loss = full_cross_entropy(model.encode(batch.inputs), batch.labels, model.item_weights())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        del step
    model.eval()


def test_training_is_blind_to_cold_items_texts():
    """Change only the held-out items' text vectors: training ends with the very same weights."""
    seqs = hold_out_items(toy_sequences(), np.array([2, 5, 9]), min_user_len=3)
    vectors = text_vectors()
    changed = vectors.clone()
    changed[[2, 5, 9]] = torch.randn(3, E)
    models = []
    for v in (vectors, changed):
        # the adaptor's data-dependent init reads all vectors: start both from the same weights
        model = make("text", vectors=v)
        if models:
            model.load_state_dict(models[0][1])
        model.hold_out_items(torch.tensor([2, 5, 9]))
        start = {k: t.clone() for k, t in model.state_dict().items()}
        _train_steps(model, seqs)
        models.append((model, start))
    for key, value in models[0][0].state_dict().items():
        torch.testing.assert_close(value, models[1][0].state_dict()[key], atol=0, rtol=0)
    assert any(
        not torch.equal(v, models[0][1][k]) for k, v in models[0][0].state_dict().items()
    )  # it trained


def test_frozen_trains_the_item_table_only():
    model = make("text")
    counts = apply_method(model, "frozen", "sasrec", LoraSpec())
    encoder_before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    adaptor_before = {k: v.clone() for k, v in model.text_items.state_dict().items()}
    _train_steps(model, toy_sequences())
    assert all(torch.equal(v, model.encoder.state_dict()[k]) for k, v in encoder_before.items())
    assert any(not torch.equal(v, model.text_items.state_dict()[k]) for k, v in adaptor_before.items())
    assert counts.trainable == sum(p.numel() for p in model.text_items.parameters())
    assert counts.total == sum(p.numel() for p in model.parameters())


def test_lora_wraps_every_sasrec_linear_and_trains_a_fraction():
    model = make("id+text")
    total_before = count_parameters(model).total
    counts = apply_method(model, "lora", "sasrec", LoraSpec(r=2, alpha=4))
    lora_a = [name for name, _ in model.named_parameters() if "lora_A" in name]
    assert len(lora_a) == 4 * 2  # qkv, out, ffn in, ffn out in each of the 2 blocks
    lora_size = sum(p.numel() for name, p in model.named_parameters() if "lora_" in name)
    item_size = sum(p.numel() for p in model.text_items.parameters()) + model.item_emb.weight.numel()
    assert counts.trainable == lora_size + item_size
    assert counts.total == total_before + lora_size
    assert counts.trainable < counts.total


def test_lora_merge_keeps_scores_and_restores_plain_weights():
    model = make("text")
    apply_method(model, "lora", "sasrec", LoraSpec(r=2, alpha=4))
    _train_steps(model, toy_sequences())  # lora_B starts at zero; training makes the update non-zero
    assert any(p.abs().sum() > 0 for n, p in model.named_parameters() if "lora_B" in n)
    with torch.no_grad():
        before = model.score_all(inputs())
    merge_lora(model)
    plain = make("text")
    assert set(model.state_dict()) == set(plain.state_dict())  # loads as an ordinary model
    plain.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(plain.score_all(inputs()), before, atol=1e-5, rtol=0)


def test_every_encoder_kind_with_linear_layers_gets_lora_targets():
    for kind in typing.get_args(EncoderKind):
        model = make("id")
        model.encoder = ENCODERS[kind](ModelSpec(encoder=kind, hidden=D, heads=2, layers=2, max_len=L))
        if kind == "gru4rec":  # no linear layers: LoRA is refused with a clear error
            assert lora_targets(kind, model.encoder) == []
            with pytest.raises(UserError, match="linear layers"):
                apply_method(model, "lora", kind, LoraSpec())
            continue
        assert lora_targets(kind, model.encoder), kind
        named = {name for name, _ in model.encoder.named_modules()}
        assert all(any(n.endswith(t) for n in named) for t in lora_targets(kind, model.encoder)), kind
    assert LORA_TARGETS["sasrec"] == ["attn.qkv", "attn.out", "ffn.0", "ffn.3"]


class TinyGPT2Encoder(torch.nn.Module):
    """A transformers GPT-2 backbone behind the encoder interface (x [B, L, D], real [B, L] -> [B, L, D])."""

    def __init__(self):
        super().__init__()
        from transformers import GPT2Config, GPT2Model

        self.backbone = GPT2Model(GPT2Config(n_embd=D, n_layer=2, n_head=2, n_positions=L, vocab_size=1,
                                             resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0))

    def forward(self, x: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        return self.backbone(inputs_embeds=x, attention_mask=real.long()).last_hidden_state  # [B, L, D]


@pytest.mark.parametrize("kind", ["hf_gpt2", "hf-kind-without-an-entry"])
def test_lora_on_a_transformers_backbone_trains_a_fraction_and_merges(kind):
    torch.manual_seed(0)
    model = make("text")
    model.encoder = TinyGPT2Encoder()
    base = count_parameters(model).total
    counts = apply_method(model, "lora", kind, LoraSpec(r=2, alpha=4))
    wrapped = [n for n, _ in model.named_parameters() if "lora_A" in n]
    assert len(wrapped) == 2 * 4  # c_attn, attn c_proj, c_fc, mlp c_proj in each of the 2 layers
    assert 0 < counts.trainable < base < counts.total
    _train_steps(model, toy_sequences())
    with torch.no_grad():
        before = model.score_all(inputs())
    merge_lora(model)
    assert not any("lora" in n for n, _ in model.named_parameters())
    with torch.no_grad():
        torch.testing.assert_close(model.score_all(inputs()), before, atol=1e-5, rtol=0)


def test_registries_match_the_spec_choices():
    from seqrec_cli.core.item_repr import ADAPTORS
    from seqrec_cli.core.methods import METHODS
    from seqrec_cli.spec.models import TextAdaptorKind, TrainMethod

    assert set(ADAPTORS) == set(typing.get_args(TextAdaptorKind))
    assert set(METHODS) == set(typing.get_args(TrainMethod))


def test_text_items_need_a_text_section():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="needs a model.text section"):
        ModelSpec(items="text")
    with pytest.raises(ValueError, match="needs text vectors"):
        SeqRecModel(ModelSpec(items="text", text={"template": "{title}"}), N)


def test_id_dropout_drops_whole_id_rows_in_training_only():
    from seqrec_cli.core.model import SeqRecModel
    from seqrec_cli.spec.models import ModelSpec

    spec = ModelSpec(hidden=8, max_len=4, items="id+text", text={"template": "{title}", "id_dropout": 0.5})
    torch.manual_seed(0)
    model = SeqRecModel(spec, 200, text_vectors=torch.randn(201, 6))
    model.eval()  # the adaptor's own dropout is off in eval mode
    with torch.no_grad():
        model.item_emb.weight.normal_()
        text_only = model.text_items()  # [N + 1, D]
    torch.testing.assert_close(model.item_weights(), text_only + model.item_emb.weight)
    model.train()
    model.text_items.eval()  # isolate the id dropout from the adaptor's own dropout
    table = model.item_weights().detach()
    dropped = torch.isclose(table, text_only).all(dim=1)  # rows that are text alone
    kept = torch.isclose(table, text_only + model.item_emb.weight).all(dim=1)
    assert torch.all(dropped | kept) and 60 < int(dropped[1:].sum()) < 140
    with pytest.raises(ValueError, match="id_dropout applies to model.items id\\+text"):
        ModelSpec(items="text", text={"template": "{title}", "id_dropout": 0.5})
