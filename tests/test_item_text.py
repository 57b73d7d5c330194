"""Item texts from a template, mean pooling, the tiny local text encoder, and the on-disk vector cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from seqrec_cli.core.text_encoder import encode_texts, load_text_encoder, mean_pool, model_hash
from seqrec_cli.data.item_text import item_texts, parse_template, render
from seqrec_cli.errors import SpecError, UserError
from seqrec_cli.pipelines import item_text as item_text_module
from seqrec_cli.pipelines.item_text import encoder_folder, text_vectors
from seqrec_cli.spec.models import ExperimentSpec, TextSpec

torch.set_num_threads(1)

ROWS = [
    {"item_id": "10", "title": "Heat", "year": "1995", "genres": "Action, Crime"},
    {"item_id": "11", "title": "Toy Story", "year": "", "genres": "Animation"},
    {"item_id": "12", "title": "Casino", "year": "1995", "genres": ""},
    {"item_id": "13", "title": "", "year": "", "genres": ""},
]


def test_template_fills_fields_and_drops_optional_parts_with_empty_fields():
    texts = item_texts(ROWS, "{title}[ ({year})][. Genres: {genres}]")
    assert texts == [
        "Heat (1995). Genres: Action, Crime",
        "Toy Story. Genres: Animation",
        "Casino (1995)",
        "",
    ]


def test_template_without_brackets_keeps_literal_text_and_collapses_spaces():
    assert item_texts(ROWS[1:2], "{title}  ({year}) id {item_id}") == ["Toy Story () id 11"]


def test_item_without_side_information_has_no_text():
    assert render(parse_template("Movie: {title}", ["title"]), {"title": ""}) == ""


@pytest.mark.parametrize(("template", "needle"), [
    ("{title} by {director}", "{director}"),
    ("{title}[ ({year})", "unbalanced"),
    ("{title}[ [{year}]]", "nested"),
    ("{title}] x", "without '['"),
    ("no fields at all", "no field"),
    ("{0}", "not a field name"),
])
def test_bad_templates_are_spec_errors_naming_the_key(template, needle):
    with pytest.raises(SpecError) as info:
        item_texts(ROWS, template)
    text = info.value.render()
    assert "model.text.template" in text and needle in text
    if "director" in needle:  # an unknown field lists the columns that exist
        assert "title, year, genres" in text


def test_mean_pool_averages_real_tokens_only():
    hidden = torch.arange(2 * 3 * 4, dtype=torch.float32).view(2, 3, 4)  # [B=2, T=3, E=4]
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    pooled = mean_pool(hidden, mask)
    torch.testing.assert_close(pooled[0], (hidden[0, 0] + hidden[0, 1]) / 2)
    torch.testing.assert_close(pooled[1], hidden[1, 0])


def test_encoding_does_not_depend_on_batching(tiny_encoder: Path):
    tokenizer, model = load_text_encoder(tiny_encoder)
    texts = ["toy story", "heat", "star wars return of the jedi", "casino (1995). genres: drama, thriller"]
    one = encode_texts(texts, tokenizer, model, batch_size=1, max_length=16)
    all_ = encode_texts(texts, tokenizer, model, batch_size=4, max_length=16)
    assert one.shape == (4, 16)
    torch.testing.assert_close(one, all_, atol=1e-5, rtol=0)
    assert not torch.allclose(one[0], one[1])  # different texts, different vectors
    seen = []
    encode_texts(
        texts, tokenizer, model, batch_size=3, max_length=16, on_batch=lambda d, t: seen.append((d, t))
    )
    assert seen == [(3, 4), (4, 4)]


def test_model_hash_follows_weights_not_folder_name(tiny_encoder: Path, tmp_path: Path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_encoder, copy)
    assert model_hash(copy) == model_hash(tiny_encoder)
    (copy / "config.json").write_text((copy / "config.json").read_text().replace('"hidden_dropout_prob": 0.1',
                                                                                '"hidden_dropout_prob": 0.2'))
    assert model_hash(copy) != model_hash(tiny_encoder)


def test_missing_encoder_folder_is_a_user_error(tmp_path: Path):
    with pytest.raises(UserError, match="not found"):
        encoder_folder(TextSpec(template="{title}", encoder=str(tmp_path / "nope")))
    with pytest.raises(UserError, match="config.json missing"):
        load_text_encoder(tmp_path)


def _prepared(folder: Path) -> Path:
    folder.mkdir()
    (folder / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return folder


def _spec(tmp_path: Path, encoder: Path, template: str) -> ExperimentSpec:
    return ExperimentSpec(name="t", data={"path": "x", "format": "table"},
                          model={"items": "text", "text": {"template": template, "encoder": str(encoder)}},
                          runtime={"output_root": str(tmp_path)})


def test_vectors_are_cached_by_model_and_texts(tiny_encoder: Path, tmp_path: Path, monkeypatch):
    prepared = _prepared(tmp_path / "prepared")
    spec = _spec(tmp_path, tiny_encoder, "{title}[ ({year})]")
    first = text_vectors(spec, prepared)
    assert not first.cached and first.vectors.shape == (len(ROWS) + 1, 16)
    assert first.vectors[0].abs().sum() == 0 and first.vectors[4].abs().sum() == 0  # PAD, item without text
    assert first.vectors[1:4].abs().sum(1).min() > 0

    def must_not_encode(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(item_text_module, "load_text_encoder", must_not_encode)
    again = text_vectors(spec, prepared)
    assert again.cached
    torch.testing.assert_close(again.vectors, first.vectors, atol=0, rtol=0)
    assert list((tmp_path / "cache" / "text").glob("*.safetensors")) == [
        tmp_path / "cache" / "text" / f"{first.model_hash[:16]}-{first.text_hash[:16]}.safetensors"]

    # another template is other texts: a cache miss (the encoder is called)
    with pytest.raises(AssertionError, match="cache should have been used"):
        text_vectors(_spec(tmp_path, tiny_encoder, "{title}"), prepared)
