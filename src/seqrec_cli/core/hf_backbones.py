"""transformers backbones as sequence encoders, fed `inputs_embeds` (our item embeddings).

Configs are built from named ModelSpec fields only (transformers configs accept unknown keys
silently, so nothing from the YAML is passed through), or loaded from a local pretrained folder
(model.pretrained). When the backbone's width differs from model.hidden, linear maps go in and
out, so the item table (the scoring table) keeps model.hidden columns.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from seqrec_cli.errors import UserError
from seqrec_cli.spec.models import ModelSpec


def gpt2_config(spec: ModelSpec):
    from transformers import GPT2Config

    return GPT2Config(
        vocab_size=1,
        bos_token_id=None,
        eos_token_id=None,
        n_positions=spec.max_len,
        n_embd=spec.hidden,
        n_layer=spec.layers,
        n_head=spec.heads,
        n_inner=spec.ffn_mult * spec.hidden,
        resid_pdrop=spec.dropout,
        embd_pdrop=spec.dropout,
        attn_pdrop=spec.attention_dropout,
    )


def bert_config(spec: ModelSpec):
    from transformers import BertConfig

    return BertConfig(
        vocab_size=1,
        pad_token_id=None,
        type_vocab_size=1,
        max_position_embeddings=spec.max_len,
        hidden_size=spec.hidden,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        intermediate_size=spec.ffn_mult * spec.hidden,
        hidden_dropout_prob=spec.dropout,
        attention_probs_dropout_prob=spec.attention_dropout,
    )


def llama_config(spec: ModelSpec):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=1,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
        max_position_embeddings=spec.max_len,
        hidden_size=spec.hidden,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        num_key_value_heads=spec.kv_heads or spec.heads,
        intermediate_size=spec.ffn_mult * spec.hidden,
        attention_dropout=spec.attention_dropout,
    )


def load_pretrained(path: str, model_types: tuple[str, ...], max_len: int) -> tuple[nn.Module, set[str]]:
    """A transformers model from a local folder (its model_type must fit the chosen encoder), and the
    names of its parameters that the folder's weights did not provide (initialised fresh)."""
    from transformers import AutoConfig, AutoModel

    folder = Path(path).expanduser()
    if not (folder / "config.json").is_file():
        raise UserError(
            "model.pretrained is not a transformers model folder (no config.json)",
            where=str(folder),
            fix="point model.pretrained at a local folder saved with save_pretrained()",
        )
    config = AutoConfig.from_pretrained(folder, local_files_only=True)
    if config.model_type not in model_types:
        raise UserError(
            f"model.pretrained holds a {config.model_type!r} model, this encoder takes {model_types}",
            where="model.pretrained",
            fix="choose the matching model.encoder",
        )
    positions = getattr(config, "max_position_embeddings", getattr(config, "n_positions", None))
    if positions is not None and positions < max_len:
        raise UserError(f"model.pretrained supports {positions} positions, model.max_len is {max_len}",
                        where="model.max_len", fix=f"set model.max_len <= {positions}")
    model, info = AutoModel.from_pretrained(folder, local_files_only=True, output_loading_info=True)
    return model, set(info.get("missing_keys", ()))


class HFEncoder(nn.Module):
    """A transformers backbone over left-padded item embeddings.

    Position ids count from each sequence's first real item, so left padding does not move them.
    """

    keeps_own_init = True  # random configs use the backbone's own init; pretrained weights must survive
    model_types: tuple[str, ...] = ()

    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.loaded_pretrained = bool(spec.pretrained)
        missing: set[str] = set()
        if spec.pretrained:
            self.backbone, missing = load_pretrained(spec.pretrained, self.model_types, spec.max_len)
        else:
            from transformers import AutoModel

            self.backbone = AutoModel.from_config(self.make_config(spec), attn_implementation="sdpa")
        if getattr(self.backbone, "pooler", None) is not None:
            self.backbone.pooler = None  # BERT's [CLS] pooler: unused, and would sit without gradients
        width = self.backbone.config.hidden_size
        self.proj_in = nn.Linear(spec.hidden, width) if width != spec.hidden else nn.Identity()
        self.proj_out = nn.Linear(width, spec.hidden) if width != spec.hidden else nn.Identity()
        self.norm = nn.LayerNorm(spec.hidden)
        self._missing = {f"backbone.{name}" for name in missing}

    def fresh_parameter_names(self) -> set[str]:
        """Parameters initialised here rather than loaded from model.pretrained (proj_in/proj_out, the
        final norm, BertEncoder's [MASK], weights the folder lacked): they must train under every
        method, or random layers would sit between the pretrained backbone and the items. Empty for a
        random backbone, where nothing was loaded (the spec refuses LoRA over it)."""
        if not self.loaded_pretrained:
            return set()
        names = {name for name, _ in self.named_parameters()}
        return {n for n in names if not n.startswith("backbone.")} | (self._missing & names)

    @staticmethod
    def make_config(spec: ModelSpec):
        raise NotImplementedError

    def forward(self, x: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """x: [B, L, D] left-padded, real: [B, L] -> [B, L, D]."""
        positions = (real.long().cumsum(dim=1) - 1).clamp(min=0)  # [B, L]
        out = self.backbone(inputs_embeds=self.proj_in(x), attention_mask=real.long(),
                            position_ids=positions).last_hidden_state  # [B, L, width]
        out = self.norm(self.proj_out(out))  # [B, L, D]
        return torch.where(
            real.unsqueeze(-1), out, torch.zeros_like(out)
        )  # [B, L, D]; padding rows may be NaN


class GPT2Encoder(HFEncoder):
    causal = True
    objective = "next_item"
    model_types = ("gpt2",)
    make_config = staticmethod(gpt2_config)


class LlamaEncoder(HFEncoder):
    causal = True
    objective = "next_item"
    model_types = ("llama", "mistral", "qwen2", "qwen3")
    make_config = staticmethod(llama_config)


class BertEncoder(HFEncoder):
    """Bidirectional, so trained like BERT4Rec (masked items) and scored with a [MASK] appended."""

    causal = False
    objective = "masked_item"
    model_types = ("bert",)
    make_config = staticmethod(bert_config)

    def __init__(self, spec: ModelSpec):
        super().__init__(spec)
        self.mask_token = nn.Parameter(torch.randn(spec.hidden) / spec.hidden**0.5)  # [D], scaled like items


HF_ENCODERS: dict[str, type[nn.Module]] = {
    "hf_gpt2": GPT2Encoder,
    "hf_bert": BertEncoder,
    "hf_llama": LlamaEncoder,
}
