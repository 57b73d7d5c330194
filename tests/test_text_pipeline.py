"""The encoder-folder pipeline reader, the vector cache key, and the S3-Rec attribute names renumbering."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from seqrec_cli.core.text_encoder import SentencePipeline, pool, read_pipeline
from seqrec_cli.data.item_readers import read_item_info
from seqrec_cli.errors import DataError, UserError
from seqrec_cli.pipelines.item_text import texts_hash
from seqrec_cli.spec.models import ItemInfoSpec, TextSpec

ST = "sentence_transformers.models."


def st_folder(tmp_path: Path, pooling: dict, normalize: bool = True, extra: list[str] = ()) -> Path:
    modules = [{"idx": 0, "name": "0", "path": "", "type": ST + "Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": ST + "Pooling"}]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": ST + "Normalize"})
    modules += [{"idx": 9, "name": "9", "path": "x", "type": t} for t in extra]
    (tmp_path / "1_Pooling").mkdir(parents=True, exist_ok=True)
    (tmp_path / "modules.json").write_text(json.dumps(modules))
    pool_config = {"word_embedding_dimension": 4, **pooling}
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps(pool_config))
    bert_config = {"max_seq_length": 32, "do_lower_case": True}
    (tmp_path / "sentence_bert_config.json").write_text(json.dumps(bert_config))
    return tmp_path


def test_pipeline_reader(tmp_path):
    assert read_pipeline(tmp_path) == SentencePipeline()  # plain transformers folder: mean, no norm
    folder = st_folder(tmp_path, {"pooling_mode_mean_tokens": True, "pooling_mode_cls_token": True})
    assert read_pipeline(folder) == SentencePipeline(("cls", "mean"), True, 32, True)
    st_folder(tmp_path, {"pooling_mode": "max"}, normalize=False)
    assert read_pipeline(tmp_path) == SentencePipeline(("max",), False, 32, True)
    with pytest.raises(UserError, match="not reproduced"):
        read_pipeline(st_folder(tmp_path, {"pooling_mode_weightedmean_tokens": True}))
    with pytest.raises(UserError, match="does not reproduce"):
        read_pipeline(st_folder(tmp_path, {"pooling_mode_mean_tokens": True}, extra=[ST + "Dense"]))


def test_pool_modes_by_hand():
    hidden = torch.tensor([[[1.0, 0.0], [3.0, 4.0], [100.0, 100.0]]])  # [1, 3, 2]; the last token is padding
    mask = torch.tensor([[1, 1, 0]])
    mean = pool(hidden, mask, SentencePipeline(("mean",), False))
    torch.testing.assert_close(mean, torch.tensor([[2.0, 2.0]]))
    both = pool(hidden, mask, SentencePipeline(("cls", "max", "mean_sqrt_len_tokens"), False))
    torch.testing.assert_close(both, torch.tensor([[1.0, 0.0, 3.0, 4.0, 4 / 2**0.5, 4 / 2**0.5]]))
    normed = pool(hidden, mask, SentencePipeline(("mean",), True))
    torch.testing.assert_close(normed, torch.tensor([[2**-0.5, 2**-0.5]]))


def test_cache_key_covers_the_pipeline():
    text, texts = TextSpec(template="{title}"), ["a", "b"]
    keys = {texts_hash(texts, text, SentencePipeline(("mean",), False)),
            texts_hash(texts, text, SentencePipeline(("mean",), True)),
            texts_hash(texts, text, SentencePipeline(("mean",), True, 256)),
            texts_hash(texts, TextSpec(template="{title}", max_length=16),
                       SentencePipeline(("mean",), True, 256))}
    assert len(keys) == 4


def test_attribute_names_are_renumbered_and_count_checked(tmp_path):
    # names file: ids 1..5 with counts; the attribute file uses only those with count >= 2, renumbered 1..
    maps = {"id2attribute": {"1": "Rare", "2": "Makeup", "3": "Face", "4": "Once", "5": "Nails"},
            "attributeid2num": {"1": 1, "2": 3, "3": 2, "4": 1, "5": 2}}
    (tmp_path / "maps.json").write_text(json.dumps(maps))
    (tmp_path / "attrs.json").write_text(json.dumps({"10": [1, 2], "11": [1, 3], "12": [1, 2, 3]}))
    spec = {"path": "attrs.json", "format": "attributes_json", "attribute_names": "maps.json"}
    table = read_item_info(tmp_path, ItemInfoSpec(**spec, attribute_min_count=2))
    assert table.fields["attributes"] == ["Makeup, Face", "Makeup, Nails", "Makeup, Face, Nails"]
    with pytest.raises(DataError, match="different number of times"):  # the raw ids would give wrong names
        read_item_info(tmp_path, ItemInfoSpec(**spec))
    (tmp_path / "flat.json").write_text(json.dumps({"1": "Red"}))
    with pytest.raises(DataError, match="attributeid2num"):
        flat = {**spec, "attribute_names": "flat.json"}
        read_item_info(tmp_path, ItemInfoSpec(**flat, attribute_min_count=2))
