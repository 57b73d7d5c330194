"""A trainable text tower: the item text encoder itself, adapted inside training.

The default text path encodes every item once and caches the vectors (fast; the encoder never
changes). A tower instead keeps the encoder in the model and re-encodes the catalogue's texts from
pre-tokenized ids whenever its weights have changed, so gradients reach it:

  lora        low-rank adapters (peft) on the encoder's attention and feed-forward linears; only
              the adapters train (a few % of the encoder);
  last_layer  the encoder's last transformer layer trains, the layers below stay fixed.

Cost: a training step encodes every item with text (forward, plus backward through what trains), so
this is for GPUs or small catalogues; the cached path stays the default. Within a step the table
is computed once and reused by the inputs and the loss (a hook on its gradient drops the reuse
after backward); in eval mode it is cached until a weight changes.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from seqrec_cli.core.text_encoder import SentencePipeline, sentence_vectors

# peft targets in a BERT-like sentence encoder (MiniLM is BERT): attention and feed-forward linears.
TOWER_LORA_TARGETS = ["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"]


def _layers(encoder: nn.Module) -> nn.ModuleList:
    """The transformer layers of a BERT-like encoder (encoder.encoder.layer)."""
    stack = getattr(getattr(encoder, "encoder", None), "layer", None)
    if not isinstance(stack, nn.ModuleList) or not len(stack):
        raise ValueError(f"{type(encoder).__name__} has no encoder.layer list to finetune the last layer of")
    return stack


class TextTower(nn.Module):
    """Re-encodes the catalogue: tokens of M items with text -> [N + 1, P * E] vectors (PAD and items
    without text stay zero)."""

    def __init__(self, encoder: nn.Module, pipeline: SentencePipeline,
                 tokens: tuple[torch.Tensor, torch.Tensor, torch.Tensor], num_rows: int, tune: str,
                 lora_r: int = 8, lora_alpha: float = 16.0, chunk: int = 256):
        """tokens: (input_ids [M, T], attention_mask [M, T], rows [M]) as tokenize_catalogue returns them."""
        input_ids, attention_mask, rows = tokens
        super().__init__()
        self.pipeline = pipeline
        self.tune = tune
        self.num_rows = num_rows
        self.chunk = chunk
        self.width = encoder.config.hidden_size * len(pipeline.pooling)
        # Catalogue data, like TextItems.vectors: not part of the state dict.
        self.register_buffer("input_ids", input_ids.long(), persistent=False)  # [M, T]
        self.register_buffer("attention_mask", attention_mask.long(), persistent=False)  # [M, T]
        self.register_buffer("rows", rows.long(), persistent=False)  # [M] item id of each text
        if tune == "lora":
            from peft import LoraConfig
            from peft.tuners.lora import LoraModel

            config = LoraConfig(
                r=lora_r, lora_alpha=lora_alpha, lora_dropout=0.0, target_modules=TOWER_LORA_TARGETS
            )
            encoder = LoraModel(encoder, config, "default")
        self.encoder = encoder
        self.set_trainable()
        self._cached: torch.Tensor | None = None
        self._key: tuple | None = None

    def set_trainable(self) -> None:
        """lora: only the adapters; last_layer: only the last transformer layer. Called again after
        train.method has set the rest of the model, which must not unfreeze the tower."""
        self.encoder.requires_grad_(False)
        if self.tune == "lora":
            for name, p in self.encoder.named_parameters():
                if "lora_" in name:
                    p.requires_grad_(True)
        else:
            _layers(self.encoder)[-1].requires_grad_(True)

    def trainable(self) -> Iterator[nn.Parameter]:
        return (p for p in self.encoder.parameters() if p.requires_grad)

    def merge(self) -> None:
        """Fold LoRA adapters into the encoder's weights (no-op for last_layer)."""
        from peft.tuners.lora import LoraModel

        if isinstance(self.encoder, LoraModel):
            self.encoder = self.encoder.merge_and_unload()

    def _weights_version(self) -> tuple:
        # Any in-place change (optimizer step, load_state_dict) bumps a parameter's version counter.
        return tuple((id(p), p._version) for p in self.encoder.parameters())

    def _clear(self, grad: torch.Tensor) -> torch.Tensor:
        self._cached, self._key = None, None
        return grad

    def encode(self) -> torch.Tensor:
        """[N + 1, P * E] vectors under the encoder's current weights, with gradients in training."""
        out = torch.zeros(self.num_rows, self.width, device=self.input_ids.device)  # [N + 1, P * E]
        parts = []
        for start in range(0, len(self.rows), self.chunk):
            mask = self.attention_mask[start : start + self.chunk]  # [C, T]
            keep = int(mask.sum(1).max())  # texts are stored in length order: trim the chunk's padding
            batch = {
                "input_ids": self.input_ids[start : start + self.chunk, :keep],
                "attention_mask": mask[:, :keep],
            }
            parts.append(sentence_vectors(self.encoder, batch, self.pipeline).float())  # [C, P * E]
        return out.index_copy(0, self.rows, torch.cat(parts))  # [N + 1, P * E]

    def forward(self) -> torch.Tensor:
        key = (self.training, torch.is_grad_enabled(), self.input_ids.device, self._weights_version())
        if self._cached is not None and self._key == key:
            return self._cached
        vectors = self.encode()  # [N + 1, P * E]
        if vectors.requires_grad:  # reused by the step's inputs and loss; dropped once backward has run
            vectors.register_hook(self._clear)
        self._cached, self._key = vectors, key
        return vectors


def tokenize_catalogue(tokenizer, texts: list[str], pipeline: SentencePipeline, max_length: int | None):
    """texts of items 1..N -> (input_ids [M, T], attention_mask [M, T], rows [M]) for the M items with
    text, in token-length order (chunks then carry little padding)."""
    from seqrec_cli.core.text_encoder import tokenize

    have = [i for i, t in enumerate(texts) if t]
    batch = tokenize(tokenizer, [texts[i] for i in have], pipeline, max_length)
    order = torch.argsort(batch["attention_mask"].sum(1), stable=True)  # [M]
    rows = torch.tensor(have, dtype=torch.long)[order] + 1  # item ids are 1-based
    return batch["input_ids"][order], batch["attention_mask"][order], rows
