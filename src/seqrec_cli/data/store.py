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

The fingerprint's `hash` covers the four files that define the sequences (checkpoints and exports
are matched against it, so it is the same as in format version 1); its `files` record holds the
sha256 of every file, timestamps.npy and items.jsonl included, and every load checks them all.
A version-1 folder (no `files`) is refused with the fix: prepare it again, which gives the same
`hash`, so runs trained on it stay valid.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np

from seqrec_cli.atomic import io_errors, publish_dir, temp_dir
from seqrec_cli.data.io import sha256_file
from seqrec_cli.data.process import Sequences
from seqrec_cli.data.raw import ItemTable
from seqrec_cli.errors import UserError

FORMAT_VERSION = 2  # 2: the fingerprint records the sha256 of every file (`files`)
FINGERPRINT_FILES = ("sequences.npy", "offsets.npy", "user_ids.json", "item_ids.json")
COLD_ITEMS = "cold_items.json"
MANIFEST = "manifest.json"
REPREPARE_FIX = ("move this folder aside (or delete it) and run `seqrec prepare SPEC` again; the same data "
                 "gives the same fingerprint, so runs trained on it stay valid")


def _files_hash(folder: Path, names: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    for name in names:
        digest.update(name.encode())
        with open(folder / name, "rb") as handle:  # streamed: a 100M-row dataset is GBs
            for chunk in iter(lambda: handle.read(1 << 22), b""):
                digest.update(chunk)
    return digest.hexdigest()


def read_json_file(path: Path, what: str, fix: str) -> object:
    """JSON from `path`; a missing, unreadable or invalid file is a UserError naming it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} is missing", where=str(path), fix=fix)
    try:
        with io_errors(path):
            return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        line = f" (line {exc.lineno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise UserError(f"{what} is not valid JSON{line}: {exc}", where=str(path), fix=fix) from exc


def _save_array(path: Path, array: np.ndarray, dtype) -> None:
    """np.save, except that an engine's staged .npy file of the right dtype is moved, not copied."""
    staged = getattr(array, "filename", None)
    if isinstance(array, np.memmap) and staged and array.dtype == dtype and array.offset > 0:
        staged = Path(staged)
        if staged.name == path.name and staged.stat().st_dev == path.parent.stat().st_dev:
            os.replace(staged, path)  # the memmap keeps reading the same inode
            return
    np.save(path, np.asarray(array).astype(dtype, copy=False))


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
    tmp = temp_dir(folder)
    try:
        with io_errors(folder):
            manifest = _write_files(tmp, seqs, table, manifest, cold_items)
        publish_dir(tmp, folder)  # atomic on one filesystem; fails if folder appeared meanwhile
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def _write_files(tmp: Path, seqs: Sequences, table: ItemTable | None, manifest: dict,
                 cold_items: list[int] | None) -> dict:
    _save_array(tmp / "sequences.npy", seqs.items, np.int32)
    np.save(tmp / "offsets.npy", seqs.offsets.astype(np.int64))
    if seqs.timestamps is not None:
        _save_array(tmp / "timestamps.npy", seqs.timestamps, seqs.timestamps.dtype)
    (tmp / "user_ids.json").write_text(json.dumps(seqs.user_ids))
    (tmp / "item_ids.json").write_text(json.dumps(seqs.item_ids))
    fingerprinted = FINGERPRINT_FILES
    if cold_items is not None:
        (tmp / COLD_ITEMS).write_text(json.dumps(cold_items))
        fingerprinted = (*FINGERPRINT_FILES, COLD_ITEMS)
    rows = item_rows(seqs, table)
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    (tmp / "items.jsonl").write_text(lines, encoding="utf-8")
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
    manifest["fingerprint"]["files"] = {p.name: sha256_file(p) for p in sorted(tmp.iterdir())}
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def read_manifest(folder: Path) -> dict:
    """The prepared dataset's manifest, checked for the fields every reader relies on."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise UserError("no prepared dataset here (manifest.json missing)", where=str(folder),
                        fix="run `seqrec prepare SPEC` first")
    manifest = read_json_file(path, "the prepared dataset's manifest", REPREPARE_FIX)
    fingerprint = manifest.get("fingerprint") if isinstance(manifest, dict) else None
    if not isinstance(fingerprint, dict) or not all(
            isinstance(fingerprint.get(key), want) for key, want in
            (("hash", str), ("users", int), ("items", int), ("interactions", int))):
        raise UserError("the prepared dataset's manifest lacks its fingerprint (hash, users, items, "
                        "interactions)", where=str(path), fix=REPREPARE_FIX)
    return manifest


def verify_prepared(folder: Path, manifest: dict) -> None:
    """Every file against the fingerprint's per-file digests, and the sequences against its hash."""
    files = manifest["fingerprint"].get("files")
    if not isinstance(files, dict):
        raise UserError("prepared by an earlier seqrec (format 1), whose fingerprint leaves timestamps.npy "
                        "and items.jsonl unchecked; refusing to use files nothing vouches for",
                        where=str(Path(folder) / MANIFEST), fix=REPREPARE_FIX)
    for name, expected in files.items():
        path = Path(folder) / str(name)
        if "/" in str(name) or not path.is_file():
            raise UserError("a file of the prepared dataset is missing", where=str(path), fix=REPREPARE_FIX)
        if sha256_file(path) != expected:
            raise UserError("a file of the prepared dataset was modified or damaged (sha256 differs from the "
                            "fingerprint's)", where=str(path), fix=REPREPARE_FIX)
    # Each file matches the digest recorded when the hash was computed from it, so the hash holds unless
    # the manifest lost a file from its record (hashing everything twice would double a large load).
    fingerprinted = (*FINGERPRINT_FILES, COLD_ITEMS) if "cold_items" in manifest else FINGERPRINT_FILES
    if any(name not in files for name in fingerprinted):
        raise UserError("prepared dataset files do not match their manifest fingerprint (modified or "
                        "corrupted)", where=str(folder), fix=REPREPARE_FIX)


def _load_array(path: Path, mmap_mode: str | None = None) -> np.ndarray:
    try:
        with io_errors(path):
            return np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
    except (ValueError, EOFError) as exc:
        raise UserError(f"not a readable numpy array ({exc})", where=str(path), fix=REPREPARE_FIX) from exc


def load_prepared(folder: Path, verify: bool = True) -> tuple[Sequences, dict]:
    folder = Path(folder)
    manifest = read_manifest(folder)
    if verify:
        verify_prepared(folder, manifest)
    ts_path = folder / "timestamps.npy"
    if manifest.get("has_timestamps") and not ts_path.is_file():
        raise UserError("timestamps.npy is missing", where=str(ts_path), fix=REPREPARE_FIX)
    # Memory-mapped and read-only: a dataset larger than RAM trains, pages come in as batches need them.
    seqs = Sequences(
        items=_load_array(folder / "sequences.npy", mmap_mode="r"),
        offsets=_load_array(folder / "offsets.npy"),
        timestamps=_load_array(ts_path, mmap_mode="r") if ts_path.exists() else None,
        user_ids=read_json_file(folder / "user_ids.json", "the user id list", REPREPARE_FIX),
        item_ids=read_json_file(folder / "item_ids.json", "the item id list", REPREPARE_FIX),
    )
    return seqs, manifest


def load_item_rows(folder: Path, fix: str = REPREPARE_FIX) -> list[dict]:
    path = Path(folder) / "items.jsonl"
    rows = []
    with io_errors(path), open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            try:
                rows.append(json.loads(line))
            except ValueError as exc:
                raise UserError(f"not a JSON line ({exc})", where=f"{path}:{number}", fix=fix) from exc
    return rows


def load_cold_items(folder: Path) -> list[int]:
    """Item ids held out of training ([] when the dataset has none)."""
    path = Path(folder) / COLD_ITEMS
    return read_json_file(path, "the cold item list", REPREPARE_FIX) if path.is_file() else []
