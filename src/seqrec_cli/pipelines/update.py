"""`seqrec update PARENT SPEC`: keep a trained model fresh on a newer log with a short finetune.

The parent (a run name, run folder, checkpoint or export) warm-starts a model of SPEC's log by raw
item id (core/warm_start.py): known items keep their rows exactly, new ones start from text or the
mean known row, vanished ones are dropped. Then the finetune pipeline trains it briefly
(update.epochs or update.max_steps, at update.lr) on the users active since the parent's data ended
(update.since; train.active_since), plus a replay share of the other users (update.replay) against
catastrophic forgetting. The new run folder's run.json records its parent.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from seqrec_cli.atomic import atomic_write_json
from seqrec_cli.core.checkpoint import save_checkpoint
from seqrec_cli.core.warm_start import context_rows, row_map
from seqrec_cli.data.batching import PAD
from seqrec_cli.errors import UserError
from seqrec_cli.events import Event, Events, InitializedFrom, no_events
from seqrec_cli.pipelines.build import build_model
from seqrec_cli.pipelines.common import load_dataset, split_plan
from seqrec_cli.pipelines.finetune import finetune
from seqrec_cli.pipelines.finetune_result import FinetuneResult
from seqrec_cli.pipelines.paths import run_dir
from seqrec_cli.pipelines.prepare import prepare
from seqrec_cli.pipelines.run_format import stamped
from seqrec_cli.pipelines.transfer import Source, init_from, load_source
from seqrec_cli.spec.models import ExperimentSpec


@dataclass
class UpdateResult:
    run_dir: Path
    parent: str
    since: float | None  # users active at or after this trained (None: every user)
    warm_start: dict  # what the warm start did (kept / new / dropped items)
    data_until: float | None  # last timestamp of the new log (the next update's default `since`)
    finetune: FinetuneResult

    @property
    def seconds(self) -> float:
        return self.finetune.seconds


def parent_data_until(src: Source) -> float | None:
    """The last timestamp the parent was trained on: its run.json's record, else its prepared data."""
    if src.prepared is None:
        return None
    info_path = Path(src.where).parent.parent / "run.json"  # <run>/checkpoints/<file>
    if info_path.is_file():
        recorded = json.loads(info_path.read_text()).get("data_until")
        if recorded is not None:
            return float(recorded)
    times = src.prepared / "timestamps.npy"
    return float(np.load(times).max()) if times.is_file() else None


def update_spec(spec: ExperimentSpec, parent: str, since: float | None) -> ExperimentSpec:
    """SPEC with its train section turned into the update's short finetune from `parent`."""
    out = spec.model_copy(deep=True)
    out.train.init_from = parent
    out.train.init_items = "by_raw_id"
    out.train.epochs = spec.update.epochs
    out.train.max_steps = spec.update.max_steps
    out.train.lr = spec.update.lr or spec.train.lr
    out.train.active_since = since
    out.train.replay = spec.update.replay if since is not None else 0.0
    return out


def data_until(spec: ExperimentSpec) -> float | None:
    seqs, _, _ = load_dataset(spec)
    return float(seqs.timestamps.max()) if seqs.timestamps is not None else None


def record_lineage(folder: Path, fields: dict) -> None:
    """Add the parent (and what the update did) to the run's run.json."""
    path = folder / "run.json"
    info = json.loads(path.read_text()) if path.is_file() else {}
    atomic_write_json(path, {**info, **fields})


def _context_start(spec: ExperimentSpec, src: Source, scratch: Path,
                   events: Events) -> tuple[str, dict] | None:
    """An id model with new items and update.new_items context: the warm-started weights with the new
    rows placed by core/warm_start.context_rows, as a checkpoint of the new dataset (the finetune then
    loads it whole). None when that does not apply (the finetune warm-starts from the parent itself)."""
    if spec.update.new_items != "context" or spec.model.items != "id" or src.item_ids is None:
        return None
    prepare(spec, events)
    seqs, manifest, prepared = load_dataset(spec)
    rows = row_map(src.item_ids, seqs.item_ids)  # [N + 1] -1: new
    if not bool((rows[1:] < 0).any()):
        return None
    built = build_model(spec, seqs, prepared, events)
    done = init_from(built.model, built.items_info, src.where, manifest["fingerprint"]["hash"], scratch,
                     item_ids=seqs.item_ids, init_items="by_raw_id")
    # every training occurrence of a new item (never a valid/test target) with the history before it
    train_len, width = split_plan(spec, seqs).train_len, spec.model.max_len
    fresh = np.flatnonzero(rows.numpy() < 0)
    items, prefixes = [], []
    for u in range(seqs.num_users):
        own = seqs.user_items(u)[: train_len[u]]
        for p in np.flatnonzero(np.isin(own, fresh)):
            if p == 0:
                continue
            window = np.full(width, PAD, dtype=np.int64)
            history = own[max(0, p - width):p]
            window[width - len(history):] = history
            items.append(int(own[p]))
            prefixes.append(window)
    placed = 0
    if items:
        placed = context_rows(built.model, torch.tensor(items), torch.from_numpy(np.stack(prefixes)),
                              spec.update.new_item_scale)
    path = scratch / "warm.pt"
    save_checkpoint(path, stamped({"model": built.model.state_dict(), "epoch": 0,
                                   "fingerprint": manifest["fingerprint"]["hash"],
                                   "items": built.items_info}))
    return str(path), {**done, "new_init": f"context x{spec.update.new_item_scale:g} ({placed} placed, the "
                                           "other new items: mean_known_row)"}


def update(parent: str, spec: ExperimentSpec, events: Events = no_events) -> UpdateResult:
    if spec.model.kind != "neural":
        raise UserError(f"model.kind {spec.model.kind!r} is fitted, not trained: there is nothing to update",
                        where="model.kind", fix="refit the baseline on the new log with `seqrec finetune`")
    runs_root = run_dir(spec).parent
    src = load_source(parent, runs_root)  # fails early (exit 2) on a missing or unreadable parent
    since = spec.update.since if spec.update.since is not None else parent_data_until(src)
    warm: dict = {}

    def relay(event: Event) -> None:
        if isinstance(event, InitializedFrom):
            warm.update({k: v for k, v in asdict(event).items() if k not in ("moved", "fresh")})
        events(event)

    scratch = runs_root / f".{spec.name}.warm-start"  # never the run folder itself: finetune claims that
    try:
        start = _context_start(spec, src, scratch, events)
        if start is not None:
            warm.update(start[1])
        # src.where is the resolved checkpoint file or export folder: a relative name cannot change meaning
        init = start[0] if start is not None else src.where
        result = finetune(update_spec(spec, init, since), events=relay if start is None else events)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    until = data_until(spec)
    if result.is_main:
        record_lineage(result.run_dir, {
            "parent": {"source": parent, "path": src.where, "dataset_fingerprint": src.fingerprint},
            "update": {"since": since, "replay": spec.update.replay if since is not None else 0.0,
                       "epochs": spec.update.epochs, "max_steps": spec.update.max_steps,
                       "lr": spec.update.lr or spec.train.lr, "warm_start": warm},
            "data_until": until})
    return UpdateResult(result.run_dir, parent, since, warm, until, result)
