"""Every registered encoder: shapes, causality (or its absence), padding invariance, and the
transformers backbones' config whitelisting and pretrained loading."""

from __future__ import annotations

import pytest
import torch

from seqrec_cli.core.encoders import ENCODERS
from seqrec_cli.core.model import SeqRecModel
from seqrec_cli.data.batching import PAD
from seqrec_cli.data.masked_batching import MASK
from seqrec_cli.errors import UserError
from seqrec_cli.spec.models import EncoderKind, ModelSpec

torch.set_num_threads(1)

B, L, D, N = 3, 5, 8, 11
ATOL = 1e-5
SPEC_KINDS = list(EncoderKind.__args__)
# "kind/variant": the same encoder with one model option set (VARIANTS), through every test below
VARIANTS = {
    "from_start": {"positions": "from_start"},
    "original": {"block": "original"},
    "post_ln": {"block": "post_ln"},
}
KINDS = SPEC_KINDS + [f"{kind}/{variant}" for variant in VARIANTS for kind in ("sasrec", "bert4rec")]
CAUSAL = [k for k in KINDS if ENCODERS[k.split("/")[0]].causal]
BIDIRECTIONAL = [k for k in KINDS if not ENCODERS[k.split("/")[0]].causal]


def test_registry_keys_are_the_spec_choices():
    assert set(ENCODERS) == set(SPEC_KINDS)
    assert set(CAUSAL) == {
        "sasrec",
        "gru4rec",
        "hstu",
        "hf_gpt2",
        "hf_llama",
        "sasrec/from_start",
        "sasrec/original",
        "sasrec/post_ln",
    }
    assert {ENCODERS[k.split("/")[0]].objective for k in BIDIRECTIONAL} == {"masked_item"}


def left_pad(items: list[int], width: int) -> list[int]:
    return [PAD] * (width - len(items)) + items


def make_model(kind: str, seed: int = 0, perturb: bool = True) -> SeqRecModel:
    torch.manual_seed(seed)
    kind, _, variant = kind.partition("/")
    spec = ModelSpec(
        encoder=kind, hidden=D, heads=2, layers=2, max_len=L, dropout=0.0, **VARIANTS.get(variant, {})
    )
    model = SeqRecModel(spec, num_items=N)
    if perturb:  # away from init (zero PAD row, zero biases): padding must stay unread when trained
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.3 * torch.randn_like(p))
    return model.eval()


@pytest.fixture(scope="module", params=KINDS)
def kind_model(request):
    return request.param, make_model(request.param)


def batch() -> torch.Tensor:
    return torch.tensor([left_pad([3, 7, 1, 11, 2], L), left_pad([5, 4], L), left_pad([9, 9, 6], L)])


def test_shapes(kind_model):
    _, model = kind_model
    with torch.no_grad():
        h = model.encode(batch())
        last = model.last_hidden(batch())
        scores = model.score_all(batch())
    assert h.shape == (B, L, D) and last.shape == (B, D) and scores.shape == (B, N + 1)
    assert torch.isfinite(h).all() and torch.isfinite(scores[:, 1:]).all()
    assert torch.all(scores[:, PAD] == float("-inf"))
    assert model.item_weights().shape == (N + 1, D)


@pytest.mark.parametrize("kind", CAUSAL)
def test_causal_encoders_never_look_ahead(kind):
    model = make_model(kind)
    x = batch()
    with torch.no_grad():
        base = model.encode(x)
        for t in range(1, L):
            changed = x.clone()
            changed[0, t] = 8 if int(x[0, t]) != 8 else 10  # row 0 has no padding
            out = model.encode(changed)
            torch.testing.assert_close(out[0, :t], base[0, :t], atol=ATOL, rtol=0)
            assert not torch.allclose(out[0, t:], base[0, t:], atol=1e-4)
            torch.testing.assert_close(out[1:], base[1:], atol=ATOL, rtol=0)
        # last_hidden of a causal model is the output at the last real item
        torch.testing.assert_close(model.last_hidden(x), base[:, -1], atol=ATOL, rtol=0)


@pytest.mark.parametrize("kind", BIDIRECTIONAL)
def test_bidirectional_encoders_see_both_ways_and_append_mask(kind):
    model = make_model(kind)
    x = batch()
    with torch.no_grad():
        base = model.encode(x)
        changed = x.clone()
        changed[0, 4] = 8
        assert not torch.allclose(model.encode(changed)[0, 0], base[0, 0], atol=1e-4)  # a later item matters
        # inference: the history shifts left by one and a [MASK] takes the last slot
        shifted = torch.cat([x[:, 1:], torch.full((B, 1), MASK)], dim=1)
        torch.testing.assert_close(model.last_hidden(x), model.encode(shifted)[:, -1], atol=ATOL, rtol=0)


def test_padding_invariance(kind_model):
    _, model = kind_model
    history = [4, 10, 2]
    with torch.no_grad():
        outs = {w: model.encode(torch.tensor([left_pad(history, w)])) for w in (3, 4, 5)}
        # widths above the history length, so a masked encoder's appended [MASK] drops only padding
        last = {w: model.last_hidden(torch.tensor([left_pad(history, w)])) for w in (4, 5)}
        mixed = model.last_hidden(torch.tensor([left_pad([3, 7, 1, 11, 2], L), left_pad(history, L)]))
    for w in (4, 5):
        torch.testing.assert_close(outs[w][0, -3:], outs[3][0], atol=ATOL, rtol=0)
    torch.testing.assert_close(last[5], last[4], atol=ATOL, rtol=0)
    torch.testing.assert_close(mixed[1], last[5][0], atol=ATOL, rtol=0)
    assert not torch.allclose(mixed[0], mixed[1], atol=1e-4)


def test_order_matters(kind_model):
    _, model = kind_model
    with torch.no_grad():
        a = model.last_hidden(torch.tensor([left_pad([1, 2, 3], L)]))
        b = model.last_hidden(torch.tensor([left_pad([3, 2, 1], L)]))
    assert not torch.allclose(a, b, atol=1e-4)


def test_every_parameter_gets_a_gradient(kind_model):
    kind, _ = kind_model
    model = make_model(kind, perturb=False).train()
    x = batch()
    if model.masked:
        x = x.clone()
        x[0, 2] = MASK
    model.encode(x).square().sum().backward()
    unused = {"backbone.wte.weight", "backbone.embeddings.word_embeddings.weight",
              "backbone.embed_tokens.weight", "backbone.embeddings.token_type_embeddings.weight"}
    if kind == "hstu":
        unused.add("rel_time.weight")  # only with timestamps (see the time-bias test)
    missing = [
        n for n, p in model.named_parameters() if p.grad is None and n.removeprefix("encoder.") not in unused
    ]
    assert not missing, missing


def test_hstu_time_bias_changes_output_and_stays_causal():
    torch.manual_seed(0)
    spec = ModelSpec(encoder="hstu", hidden=D, heads=2, layers=2, max_len=L, dropout=0.0)
    enc = ENCODERS["hstu"](spec).eval()
    with torch.no_grad():
        enc.rel_time.weight.normal_()
    x, real = torch.randn(B, L, D), torch.ones(B, L, dtype=torch.bool)
    times = torch.tensor([[0.0, 10.0, 1000.0, 1e5, 1e7]] * B)
    with torch.no_grad():
        base = enc(x, real, times)
        later = times.clone()
        later[:, 3:] += 5e6  # only the last two gaps change
        out = enc(x, real, later)
    torch.testing.assert_close(out[:, :3], base[:, :3], atol=ATOL, rtol=0)
    assert not torch.allclose(out[:, 3:], base[:, 3:], atol=1e-4)
    assert enc.time_buckets(torch.tensor([[0.0, 1.0, 3.0, 1e12]]))[0, 0].tolist() == [
        0,
        1,
        2,
        spec.time_buckets - 1,
    ]


def test_hf_configs_take_only_named_spec_fields():
    from seqrec_cli.core.hf_backbones import bert_config, gpt2_config, llama_config

    spec = ModelSpec(encoder="hf_llama", hidden=12, heads=4, kv_heads=2, layers=3, max_len=7, ffn_mult=2,
                     dropout=0.1, attn_dropout=0.05)
    g, b, ll = gpt2_config(spec), bert_config(spec), llama_config(spec)
    assert (g.n_embd, g.n_layer, g.n_head, g.n_inner, g.n_positions, g.attn_pdrop) == (12, 3, 4, 24, 7, 0.05)
    assert (b.hidden_size, b.num_hidden_layers, b.intermediate_size, b.max_position_embeddings) == (
        12,
        3,
        24,
        7,
    )
    assert (ll.hidden_size, ll.num_key_value_heads, ll.intermediate_size, ll.attention_dropout) == (
        12,
        2,
        24,
        0.05,
    )


def test_hf_pretrained_folder_loads_weights_and_projects(tmp_path):
    from transformers import GPT2Model

    from seqrec_cli.core.hf_backbones import gpt2_config

    torch.manual_seed(3)
    saved = GPT2Model(gpt2_config(ModelSpec(hidden=16, heads=2, layers=1, max_len=L)))
    saved.save_pretrained(tmp_path / "gpt2")
    model = SeqRecModel(ModelSpec(encoder="hf_gpt2", hidden=D, heads=2, max_len=L,
                                  pretrained=str(tmp_path / "gpt2")), num_items=N)
    torch.testing.assert_close(model.encoder.backbone.h[0].mlp.c_fc.weight, saved.h[0].mlp.c_fc.weight)
    assert model.encoder.proj_in.weight.shape == (16, D)  # pretrained width 16, items keep D = 8
    assert model.score_all(batch()).shape == (B, N + 1)

    with pytest.raises(UserError, match="takes"):  # a gpt2 folder is not a Llama
        SeqRecModel(
            ModelSpec(encoder="hf_llama", hidden=D, heads=2, max_len=L, pretrained=str(tmp_path / "gpt2")), N
        )
    with pytest.raises(UserError, match="positions"):
        SeqRecModel(ModelSpec(encoder="hf_gpt2", hidden=D, heads=2, max_len=L + 1,
                              pretrained=str(tmp_path / "gpt2")), N)
    with pytest.raises(UserError, match="config.json"):
        SeqRecModel(ModelSpec(encoder="hf_gpt2", hidden=D, heads=2, pretrained=str(tmp_path / "nothing")), N)


def test_pretrained_needs_a_transformers_encoder():
    with pytest.raises(ValueError, match="model.pretrained"):
        ModelSpec(encoder="sasrec", pretrained="/some/folder")


def test_position_schemes_index_real_items_only():
    # from_start: the oldest real item is position 0 whatever the padding; from_end: the newest is
    history = [4, 10, 2]
    start, end = make_model("sasrec/from_start", perturb=False), make_model("sasrec", perturb=False)
    with torch.no_grad():
        for model in (start, end):
            model.encoder.positions.weight.copy_(torch.arange(L).float().unsqueeze(1).expand(L, D))
        captured = {}
        for name, model in (("start", start), ("end", end)):
            model.encoder.drop.register_forward_hook(
                lambda m, args, out, name=name: captured.__setitem__(name, args[0])
            )
            model.encode(torch.tensor([left_pad(history, L)]))
        item_part = start.item_weights()[torch.tensor(history)] * D**0.5  # [3, D]
    torch.testing.assert_close(
        captured["start"][0, -3:] - item_part, torch.tensor([[0.0], [1.0], [2.0]]).expand(3, D)
    )
    torch.testing.assert_close(
        captured["end"][0, -3:] - item_part, torch.tensor([[2.0], [1.0], [0.0]]).expand(3, D)
    )
