"""The prepared-dataset folder: compact sequences, id maps, item table and a manifest.

Layout (all written into a temp folder, then renamed into place, so a crash never leaves a
half-written dataset behind):
  sequences.npy   int32 [R]   item ids 1..N, each user's items chronological, users in id order
  offsets.npy     int64 [U+1] user u = sequences[offsets[u]:offsets[u+1]]
  timestamps.npy  float64 [R] (only when the source has timestamps)
  user_ids.json   raw user id per dense user index
  item_ids.json   raw item id per item id (index 0 = PAD = "")
  items.jsonl     line i (1-based) = side information of item i
  cold_items.json item ids held out of training (only with data.cold_items; see data/cold.py)
  manifest.json   counts, fingerprint, data-spec hash, source file and checksum
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from seqrec_cli.data.process import Sequences
from seqrec_cli.data.raw import ItemTable
from seqrec_cli.errors import UserError

FORMAT_VERSION = 1
FINGERPRINT_FILES = ("sequences.npy", "offsets.npy", "user_ids.json", "item_ids.json")
COLD_ITEMS = "cold_items.json"


def _files_hash(folder: Path, names: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    for name in names:
        digest.update(name.encode())
        digest.update((folder / name).read_bytes())
    return digest.hexdigest()


def item_rows(seqs: Sequences, table: ItemTable | None) -> list[dict]:
    """Item table aligned to item ids 1..N; items without side information get empty fields."""
    names = list(table.fields) if table else []
    lookup = {}
    if table:
        for row, raw_id in enumerate(table.ids):
            lookup[raw_id] = {name: table.fields[name][row] for name in names}
    empty = dict.fromkeys(names, "")
    return [{"item_id": raw, **lookup.get(raw, empty)} for raw in seqs.item_ids[1:]]


def write_prepared(folder: Path, seqs: Sequences, table: ItemTable | None, manifest: dict,
                   cold_items: list[int] | None = None) -> dict:
    """Write the dataset into `folder` (which must not exist yet); returns the final manifest."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        np.save(tmp / "sequences.npy", seqs.items.astype(np.int32))
        np.save(tmp / "offsets.npy", seqs.offsets.astype(np.int64))
        if seqs.timestamps is not None:
            np.save(tmp / "timestamps.npy", seqs.timestamps)
        (tmp / "user_ids.json").write_text(json.dumps(seqs.user_ids))
        (tmp / "item_ids.json").write_text(json.dumps(seqs.item_ids))
        fingerprinted = FINGERPRINT_FILES
        if cold_items is not None:
            (tmp / COLD_ITEMS).write_text(json.dumps(cold_items))
            fingerprinted = (*FINGERPRINT_FILES, COLD_ITEMS)
        rows = item_rows(seqs, table)
        (tmp / "items.jsonl").write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
        )
        manifest = {
            "format_version": FORMAT_VERSION,
            **manifest,
            "fingerprint": {
                "users": seqs.num_users,
                "items": seqs.num_items,
                "interactions": int(len(seqs.items)),
                "hash": _files_hash(tmp, fingerprinted),
            },
            **({"cold_items": len(cold_items)} if cold_items is not None else {}),
            "item_fields": list(rows[0].keys())[1:] if rows else [],
            "has_timestamps": seqs.timestamps is not None,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        os.replace(tmp, folder)  # atomic on one filesystem; fails if folder appeared meanwhile
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def read_manifest(folder: Path) -> dict:
    path = Path(folder) / "manifest.json"
    if not path.is_file():
        raise UserError("no prepared dataset here (manifest.json missing)", where=str(folder),
                        fix="run `seqrec prepare SPEC` first")
    return json.loads(path.read_text())


def load_prepared(folder: Path, verify: bool = True) -> tuple[Sequences, dict]:
    folder = Path(folder)
    manifest = read_manifest(folder)
    fingerprinted = (*FINGERPRINT_FILES, COLD_ITEMS) if "cold_items" in manifest else FINGERPRINT_FILES
    if verify and _files_hash(folder, fingerprinted) != manifest["fingerprint"]["hash"]:
        raise UserError(
            "prepared dataset files do not match their manifest fingerprint (modified or corrupted)",
            where=str(folder),
            fix="delete this folder and run `seqrec prepare SPEC` again",
        )
    ts_path = folder / "timestamps.npy"
    seqs = Sequences(
        items=np.load(folder / "sequences.npy", allow_pickle=False),
        offsets=np.load(folder / "offsets.npy", allow_pickle=False),
        timestamps=np.load(ts_path, allow_pickle=False) if ts_path.exists() else None,
        user_ids=json.loads((folder / "user_ids.json").read_text()),
        item_ids=json.loads((folder / "item_ids.json").read_text()),
    )
    return seqs, manifest


def load_item_rows(folder: Path) -> list[dict]:
    with open(Path(folder) / "items.jsonl", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def load_cold_items(folder: Path) -> list[int]:
    """Item ids held out of training ([] when the dataset has none)."""
    path = Path(folder) / COLD_ITEMS
    return json.loads(path.read_text()) if path.is_file() else []
