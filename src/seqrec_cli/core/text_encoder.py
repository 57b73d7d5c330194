"""Frozen sentence vectors from a local Hugging Face encoder folder (BERT-like), mean-pooled.

Nothing is downloaded: the folder must hold config.json, the weights and the tokenizer files.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import torch

from seqrec_cli.errors import UserError

HASHED_SUFFIXES = (".json", ".txt", ".safetensors", ".bin", ".model")  # what shapes the vectors


def model_hash(folder: Path) -> str:
    """sha256 over the encoder folder's config, vocabulary and weight files (names and bytes)."""
    folder = Path(folder)
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in HASHED_SUFFIXES):
        digest.update(str(path.relative_to(folder)).encode())
        with open(path, "rb") as handle:
            for chunk in iter(lambda h=handle: h.read(1 << 22), b""):
                digest.update(chunk)
    return digest.hexdigest()


def load_text_encoder(folder: Path):
    """(tokenizer, model) from a local folder, in eval mode; UserError when the folder is not one."""
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the CLI draws its own; a library must not print
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise UserError(
            "not a Hugging Face model folder (config.json missing)",
            where=str(folder),
            fix="point model.text.encoder at a local folder with config.json, weights and tokenizer",
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        model = AutoModel.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot load the text encoder ({type(exc).__name__}: {exc})", where=str(folder),
                        fix="the folder needs config.json, model weights and tokenizer files") from exc
    return tokenizer, model.eval()


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """hidden [B, T, E], mask [B, T] (1 at real tokens) -> [B, E] mean over real tokens."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)  # [B, T, 1]
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)  # [B, E]


@torch.no_grad()
def encode_texts(texts: list[str], tokenizer, model, batch_size: int, max_length: int,
                 on_batch: Callable[[int, int], None] = lambda done, total: None) -> torch.Tensor:
    """[N] texts -> [N, E] float32 mean-pooled vectors. Texts go in length order (less padding; mean
    pooling over the attention mask makes the result independent of the batch's padding)."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = torch.zeros(len(texts), model.config.hidden_size)  # [N, E]
    done = 0
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        batch = tokenizer([texts[i] for i in rows], padding=True, truncation=True, max_length=max_length,
                          return_tensors="pt")
        hidden = model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        ).last_hidden_state  # [B, T, E]
        out[rows] = mean_pool(hidden, batch["attention_mask"]).float()  # [B, E]
        done += len(rows)
        on_batch(done, len(texts))
    return out
