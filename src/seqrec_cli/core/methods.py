"""Finetuning methods (registry keys = the spec's train.method): which weights train.

  full    every weight trains;
  frozen  the sequence encoder is fixed; the item representation (id table, text adaptor) trains;
  lora    the encoder's linear layers get low-rank adapters (peft) that train with the item
          representation; everything else in the encoder is fixed. `merge_lora` folds the adapters
          back into plain weights, so exports load as an ordinary model.

Under frozen and lora, parameters the encoder initialised fresh on top of loaded pretrained weights
(its `fresh_parameter_names`: width maps, final norm, [MASK], weights missing from the folder) train
too: nothing random may stay fixed. When the whole encoder came from train.init_from, nothing in it
is fresh. LoRA over an encoder that loaded nothing at all is refused by the spec (train.lora).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from seqrec_cli.core.model import SeqRecModel
from seqrec_cli.errors import UserError
from seqrec_cli.spec.models import LoraSpec

# Linear layers that get LoRA adapters, per encoder kind (peft matches module-name suffixes). The
# Hugging Face backbones' names are listed by model type; a kind with no entry gets every linear
# (and GPT-2 Conv1D) layer of its encoder, so a new encoder is never silently left without adapters.
LORA_TARGETS: dict[str, list[str]] = {
    "sasrec": ["attn.qkv", "attn.out", "ffn.0", "ffn.3"],
    "hf_gpt2": ["c_attn", "c_proj", "c_fc"],
    "hf_bert": ["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"],
    "hf_llama": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
}


@dataclass(frozen=True)
class ParameterCount:
    trainable: int
    total: int

    def describe(self) -> dict:
        return {"trainable": self.trainable, "total": self.total,
                "trainable_share": round(self.trainable / max(self.total, 1), 6)}


def count_parameters(model: nn.Module) -> ParameterCount:
    params = list(model.parameters())
    return ParameterCount(sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params))


def fresh_parameters(encoder: nn.Module) -> list[nn.Parameter]:
    """The encoder's freshly initialised parameters (see the module note); [] for our own encoders."""
    names = encoder.fresh_parameter_names() if hasattr(encoder, "fresh_parameter_names") else set()
    return [p for n, p in encoder.named_parameters() if n in names]


def _full(model: SeqRecModel, encoder_kind: str, lora: LoraSpec) -> None:
    model.requires_grad_(True)


def _frozen(model: SeqRecModel, encoder_kind: str, lora: LoraSpec) -> None:
    model.requires_grad_(True)
    model.encoder.requires_grad_(False)


def lora_targets(encoder_kind: str, encoder: nn.Module) -> list[str]:
    if encoder_kind in LORA_TARGETS:
        return LORA_TARGETS[encoder_kind]
    return sorted(name for name, module in encoder.named_modules()
                  if isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D")


def _lora(model: SeqRecModel, encoder_kind: str, lora: LoraSpec) -> None:
    from peft import LoraConfig
    from peft.tuners.lora import LoraModel

    targets = lora_targets(encoder_kind, model.encoder)
    if not targets:  # e.g. GRU4Rec: its recurrent weights are not linear layers peft can adapt
        raise UserError(f"train.method lora needs linear layers in the encoder, and {encoder_kind} has none",
                        where="train.method", fix="use train.method full or frozen with this encoder")
    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=targets)
    model.requires_grad_(True)
    # LoraModel freezes every non-adapter weight of the module it wraps: here the encoder only.
    model.encoder = LoraModel(model.encoder, config, "default")


METHODS: dict[str, Callable[[SeqRecModel, str, LoraSpec], None]] = {
    "full": _full,
    "frozen": _frozen,
    "lora": _lora,
}


def apply_method(model: SeqRecModel, method: str, encoder_kind: str, lora: LoraSpec,
                 encoder_from_init: bool = False) -> ParameterCount:
    """Set which weights train. encoder_from_init: every encoder weight was loaded from train.init_from
    (so none of them is fresh, even layers the encoder would otherwise initialise itself)."""
    fresh = [] if encoder_from_init else fresh_parameters(model.encoder)  # before peft renames them
    METHODS[method](model, encoder_kind, lora)
    for p in fresh:  # the same tensors survive peft's wrapping
        p.requires_grad_(True)
    tower = model.text_items.tower if model.text_items is not None else None
    if tower is not None:  # the text tower keeps its own rule (model.text.tune), whatever train.method says
        tower.set_trainable()
    return count_parameters(model)


def merge_lora(model: SeqRecModel) -> SeqRecModel:
    """Fold LoRA adapters into the encoder's weights (no-op without adapters); returns the model."""
    from peft.tuners.lora import LoraModel

    if isinstance(model.encoder, LoraModel):
        model.encoder = model.encoder.merge_and_unload()
    if model.text_items is not None and model.text_items.tower is not None:
        model.text_items.tower.merge()
    return model
