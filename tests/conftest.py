"""Shared fixtures: a tiny random BERT text encoder saved as a local folder (no downloads)."""

from __future__ import annotations

from pathlib import Path

import pytest

WORDS = ("toy story heat casino star wars return of the jedi empire strikes back comedy drama action "
         "adventure animation children's sci-fi romance thriller genres 1995 1977 1980 1983 movie").split()


def make_tiny_encoder(folder: Path, seed: int = 0) -> Path:
    """A 1-layer, 16-wide BERT with a word-level vocabulary, random weights, saved to `folder`."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
        *sorted(set(WORDS)),
        "(",
        ")",
        ".",
        ":",
        ",",
        "-",
        "'",
    ]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizer(str(folder / "vocab.txt"))
    tokenizer.save_pretrained(str(folder))
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64)
    BertModel(config).save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory) -> Path:
    return make_tiny_encoder(tmp_path_factory.mktemp("tiny-bert"))
