"""Sentence vectors from a local Hugging Face encoder folder, as the folder's own pipeline defines them.

A sentence-transformers folder says in modules.json which steps follow the transformer (a Pooling
step whose 1_Pooling/config.json picks the modes, often a Normalize step) and in
sentence_bert_config.json its max_seq_length and lower-casing; `read_pipeline` reads those and
`pool` reproduces them (the test compares with sentence-transformers itself). A plain transformers
folder (no modules.json) gets mean pooling without normalisation. Steps we do not reproduce (Dense,
...) are refused rather than silently skipped. Nothing is downloaded: the folder must hold
config.json, the weights and the tokenizer files.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
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


# sentence-transformers' Pooling config keys, in the order its outputs are concatenated.
POOLING_KEYS = {
    "cls": "pooling_mode_cls_token",
    "max": "pooling_mode_max_tokens",
    "mean": "pooling_mode_mean_tokens",
    "mean_sqrt_len_tokens": "pooling_mode_mean_sqrt_len_tokens",
}
ST_POOLING = "sentence_transformers.models.Pooling"
ST_STEPS = {"sentence_transformers.models.Transformer", ST_POOLING, "sentence_transformers.models.Normalize"}


@dataclass(frozen=True)
class SentencePipeline:
    """What turns token states into a sentence vector; part of the vector cache key."""

    pooling: tuple[str, ...] = ("mean",)  # concatenated in this order
    normalize: bool = False
    max_seq_length: int | None = None  # the folder's own truncation (None: the tokenizer's)
    lower_case: bool = False

    def describe(self) -> dict:
        return asdict(self)


def _read_json(path: Path) -> dict | list:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(
            f"cannot read {path.name} ({exc})",
            where=str(path),
            fix="repair the encoder folder (it should be a saved sentence-transformers model)",
        ) from exc


def read_pipeline(folder: Path) -> SentencePipeline:
    """The folder's pooling and normalisation (modules.json); mean pooling for a plain transformers folder."""
    folder = Path(folder)
    if not (folder / "modules.json").is_file():
        return SentencePipeline()
    modules = _read_json(folder / "modules.json")
    kinds = [str(m.get("type", "")) for m in modules] if isinstance(modules, list) else []
    unknown = [k for k in kinds if k not in ST_STEPS]
    if not kinds or unknown:
        raise UserError(f"modules.json has steps this toolkit does not reproduce: {unknown or 'none at all'}",
                        where=str(folder / "modules.json"),
                        fix="use an encoder whose pipeline is Transformer -> Pooling [-> Normalize]")
    pooling: tuple[str, ...] = ("mean",)
    for module in modules:
        if module["type"] != ST_POOLING:
            continue
        config = _read_json(folder / module.get("path", "1_Pooling") / "config.json")
        if isinstance(config.get("pooling_mode"), str | list):  # newer configs name the modes directly
            modes = config["pooling_mode"]
            pooling = (modes,) if isinstance(modes, str) else tuple(modes)
        else:
            pooling = tuple(mode for mode, key in POOLING_KEYS.items() if config.get(key))
            others = [k for k, v in config.items() if k.startswith("pooling_mode_") and v
                      and k not in POOLING_KEYS.values()]
            if others:
                pooling += tuple(others)
        bad = [m for m in pooling if m not in POOLING_KEYS]
        if not pooling or bad:
            raise UserError(f"pooling modes {bad or 'none'} are not reproduced here",
                            where=str(folder / module.get("path", "1_Pooling") / "config.json"),
                            fix=f"use an encoder pooled with {', '.join(POOLING_KEYS)}")
    bert = (
        _read_json(folder / "sentence_bert_config.json")
        if (folder / "sentence_bert_config.json").is_file()
        else {}
    )
    return SentencePipeline(pooling, "sentence_transformers.models.Normalize" in kinds,
                            bert.get("max_seq_length"), bool(bert.get("do_lower_case", False)))


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """hidden [B, T, E], mask [B, T] (1 at real tokens) -> [B, E] mean over real tokens."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)  # [B, T, 1]
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)  # [B, E]


def pool(hidden: torch.Tensor, mask: torch.Tensor, pipeline: SentencePipeline) -> torch.Tensor:
    """hidden [B, T, E], mask [B, T] -> [B, len(pooling) * E]: the pipeline's pooling, then its norm."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)  # [B, T, 1]
    parts = []
    for mode in pipeline.pooling:
        if mode == "cls":
            parts.append(hidden[:, 0])  # [B, E] (right padding: token 0 is [CLS])
        elif mode == "max":
            parts.append(hidden.masked_fill(weights == 0, float("-inf")).max(dim=1).values)  # [B, E]
        elif mode == "mean":
            parts.append(mean_pool(hidden, mask))  # [B, E]
        else:  # mean_sqrt_len_tokens
            parts.append((hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9).sqrt())  # [B, E]
    out = torch.cat(parts, dim=-1)  # [B, P * E]
    return torch.nn.functional.normalize(out, p=2, dim=1) if pipeline.normalize else out


def token_limit(pipeline: SentencePipeline, max_length: int | None) -> int | None:
    """Tokens per text: model.text.max_length when set, else the folder's max_seq_length."""
    return max_length if max_length is not None else pipeline.max_seq_length


def tokenize(tokenizer, texts: list[str], pipeline: SentencePipeline, max_length: int | None) -> dict:
    texts = [t.strip().lower() if pipeline.lower_case else t.strip() for t in texts]
    limit = token_limit(pipeline, max_length)
    return tokenizer(texts, padding=True, truncation=True, max_length=limit, return_tensors="pt")


def sentence_vectors(model, batch: dict, pipeline: SentencePipeline) -> torch.Tensor:
    """One tokenized batch -> [B, P * E] vectors (with gradients when the caller allows them)."""
    hidden = model(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
    ).last_hidden_state  # [B, T, E]
    return pool(hidden, batch["attention_mask"], pipeline)  # [B, P * E]


@torch.no_grad()
def encode_texts(texts: list[str], tokenizer, model, batch_size: int, max_length: int | None,
                 on_batch: Callable[[int, int], None] = lambda done, total: None,
                 pipeline: SentencePipeline = SentencePipeline()) -> torch.Tensor:
    """[N] texts -> [N, P * E] float32 vectors. Texts go in length order (less padding; pooling over the
    attention mask makes the result independent of the batch's padding)."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = torch.zeros(len(texts), model.config.hidden_size * len(pipeline.pooling))  # [N, P * E]
    done = 0
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        batch = tokenize(tokenizer, [texts[i] for i in rows], pipeline, max_length)
        out[rows] = sentence_vectors(model, batch, pipeline).float()  # [B, P * E]
        done += len(rows)
        on_batch(done, len(texts))
    return out
