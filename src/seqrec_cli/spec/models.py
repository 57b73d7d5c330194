"""One pydantic model per YAML section. extra="forbid" everywhere so a typo is an error, not a no-op.

Literal choices here are the keys of the registries that implement them (readers, encoders, losses),
so the spec and the code cannot drift apart silently.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

InteractionFormat = Literal["recbole", "movielens", "user_item_lines", "user_sequence_lines", "table"]
ItemInfoFormat = Literal["recbole", "movielens", "table", "attributes_json"]
SplitKind = Literal["leave_one_out", "temporal"]
TemporalTargets = Literal["next", "all"]
EncoderKind = Literal["sasrec"]
# "neural" trains model.encoder; the others are the non-neural baselines of core/baselines.BASELINES.
ModelKind = Literal["neural", "popularity", "itemknn", "markov", "random"]
SampledNegatives = Literal["uniform", "popularity"]
LossKind = Literal["full_ce"]
Device = Literal["auto", "cpu", "cuda", "mps"]
Schedule = Literal["constant", "cosine", "linear"]
Precision = Literal["auto", "fp32", "bf16"]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ColumnMap(Section):
    """Column names in a generic table (CSV/TSV/Parquet) or a RecBole header."""

    user: str = "user_id"
    item: str = "item_id"
    time: str | None = "timestamp"
    rating: str | None = None


class ItemInfoSpec(Section):
    """Item side information carried into the prepared item table (for text encoders later)."""

    path: str = Field(description="file with item side information, relative to data.path's folder or data_root")
    format: ItemInfoFormat
    id_column: str = "item_id"
    text_columns: list[str] | None = Field(
        default=None, description="table format: columns to keep (default: all but the id)"
    )
    id_map: str | None = Field(
        default=None,
        description="two-column file 'dataset_item_id info_item_id' when the interaction ids were remapped",
    )
    attribute_names: str | None = Field(
        default=None, description="attributes_json: JSON file with an id2attribute mapping (optional)"
    )
    delimiter: str | None = None


class TemporalSplitSpec(Section):
    """Global time cuts: train on events before the valid cut; valid targets lie in [valid cut, test
    cut), test targets at or after the test cut. A cut is a timestamp, or a quantile of all event times."""

    valid_quantile: float = Field(default=0.8, gt=0, lt=1, description="valid cut as a quantile of event times")
    test_quantile: float = Field(default=0.9, gt=0, lt=1, description="test cut as a quantile of event times")
    valid_time: float | None = Field(default=None, description="valid cut as a timestamp (overrides the quantile)")
    test_time: float | None = Field(default=None, description="test cut as a timestamp (overrides the quantile)")
    targets: TemporalTargets = Field(default="next", description="next: the first item after the cut; "
                                     "all: every distinct item in the window after the cut (multi-item target)")


class DataSpec(Section):
    dataset: str | None = Field(default=None, description="known dataset name; fills format and files")
    path: str | None = Field(default=None, description="file or folder; relative paths resolve under data_root")
    format: InteractionFormat | None = None
    interactions: str | None = Field(default=None, description="file inside `path` when it is a folder")
    columns: ColumnMap = ColumnMap()
    delimiter: str | None = Field(default=None, description="table format: field separator (default by extension)")
    items: ItemInfoSpec | None = None
    min_rating: float | None = Field(default=None, description="keep interactions with rating >= this")
    user_core: int = Field(default=0, ge=0, description="iterative k-core: min interactions per user")
    item_core: int = Field(default=0, ge=0, description="iterative k-core: min interactions per item")
    dedup: Literal["none", "first", "last"] = "none"
    split: SplitKind = "leave_one_out"
    temporal: TemporalSplitSpec | None = Field(default=None, description="cuts for split: temporal (default 0.8/0.9 quantiles)")
    min_user_len: int = Field(default=3, ge=3, description="users with fewer items are dropped (need train+valid+test)")
    prepared_dir: str | None = Field(
        default=None, description="where the prepared dataset goes (default: <output_root>/prepared/<name>-<hash>)"
    )
    sha256: str | None = Field(default=None, description="expected sha256 of the interactions file")


class ModelSpec(Section):
    kind: ModelKind = Field(default="neural", description="neural (model.encoder) or a non-neural baseline")
    encoder: EncoderKind = "sasrec"
    max_len: int = Field(default=200, ge=2, description="most recent items the model sees")
    hidden: int = Field(default=64, ge=2)
    layers: int = Field(default=2, ge=1)
    heads: int = Field(default=1, ge=1)
    ffn_mult: int = Field(default=4, ge=1, description="feed-forward width = ffn_mult * hidden")
    dropout: float = Field(default=0.2, ge=0.0, lt=1.0)
    attn_dropout: float | None = Field(default=None, ge=0.0, lt=1.0, description="default: same as dropout")

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> ModelSpec:
        if self.hidden % self.heads:
            raise ValueError(f"model.hidden ({self.hidden}) must be divisible by model.heads ({self.heads})")
        return self


class TrainSpec(Section):
    loss: LossKind = "full_ce"
    epochs: int = Field(default=200, ge=1)
    batch_size: int = Field(default=128, ge=1)
    lr: float = Field(default=1e-3, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    grad_clip: float | None = Field(default=1.0, gt=0)
    schedule: Schedule = Field(default="constant", description="learning rate after warmup: constant, or decay to 0")
    warmup_steps: int = Field(default=0, ge=0, description="linear warmup from 0 to lr over this many steps")
    init_from: str | None = Field(
        default=None,
        description="start from the weights of another run (a run name under runs/, a run folder: its best "
        "checkpoint, or a checkpoint file) trained on the same prepared dataset",
    )
    seed: int = 42
    eval_every: int = Field(default=1, ge=1, description="validate every N epochs")
    patience: int = Field(default=10, ge=1, description="stop after N validations without improvement")
    monitor: str = Field(default="NDCG@10", description="validation metric for early stopping")
    max_minutes: float | None = Field(default=None, gt=0, description="wall-clock budget; stops cleanly")
    bucket_by_length: bool = Field(default=True, description="batch users of similar length (less padding)")
    tensorboard: bool = Field(default=False, description="also log epochs to <run>/tensorboard (needs tensorboard)")


class EvalSpec(Section):
    ks: list[int] = Field(default=[1, 5, 10, 20, 50], min_length=1)
    filter_seen: bool = Field(default=True, description="mask items already in the user's history")
    batch_size: int = Field(default=256, ge=1)
    chunk_items: int = Field(default=262144, ge=1, description="score the catalogue in blocks of this many items")
    sampled: SampledNegatives | None = Field(default=None, description="also report SAMPLED metrics against "
                                             "sampled_negatives sampled items (uniform or by popularity)")
    sampled_negatives: int = Field(default=100, ge=1)
    bootstrap: int = Field(default=1000, ge=0, description="bootstrap resamples over users for CIs (0: none)")
    bootstrap_seed: int = 0

    @field_validator("ks")
    @classmethod
    def _positive_ks(cls, ks: list[int]) -> list[int]:
        if any(k < 1 for k in ks):
            raise ValueError("every K in eval.ks must be >= 1")
        return sorted(set(ks))


class RuntimeSpec(Section):
    device: Device = "auto"
    precision: Precision = "auto"
    threads: int | None = Field(default=None, ge=1, description="CPU threads for torch (default: torch's)")
    data_root: str | None = Field(default=None, description="root for relative data paths (env SEQREC_DATA_ROOT)")
    output_root: str = Field(default=".", description="prepared/, runs/ and exports/ go under this folder")


class ExportSpec(Section):
    dir: str | None = Field(default=None, description="default: <output_root>/exports/<name>")


class ExperimentSpec(Section):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="run name; names the run folder")
    data: DataSpec
    model: ModelSpec = ModelSpec()
    train: TrainSpec = TrainSpec()
    eval: EvalSpec = EvalSpec()
    runtime: RuntimeSpec = RuntimeSpec()
    export: ExportSpec = ExportSpec()
