"""Write and verify an export folder.

  model.safetensors  weights of the trained model
  config.json        model section of the spec, catalogue size, format version
  item_ids.json      raw item id per item index (index 0 = PAD)
  items.jsonl        item side information, line i = item i
  metrics.json       evaluation reports of the run (valid/test) when present
  item_text.safetensors  `vectors` [N + 1, E]: item text vectors (text-based item tables only)
  item_table.safetensors `table` [N + 1, D]: the eval-mode scoring table (what the service scores against)
  popularity.json    interactions per item index in the prepared data (the service's fallback ranking)
  model.onnx         the user tower as ONNX (`seqrec export --format onnx`)
  items.faiss, ann.json  approximate top-k index and its calibration (large catalogues, --ann)
  README.md          the model card
  manifest.json      sha256 of every file above, spec hash, dataset fingerprint
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import save_file

from seqrec_cli.atomic import io_errors, publish_dir, sweep_temps, temp_dir
from seqrec_cli.data.io import sha256_file
from seqrec_cli.data.store import read_json_file
from seqrec_cli.errors import UserError

EXPORT_FORMAT = "seqrec-export"
EXPORT_VERSION = 1
MANIFEST = "manifest.json"
REQUIRED_FILES = {"model.safetensors", "config.json", "item_ids.json", "items.jsonl"}
REEXPORT_FIX = "export again from the run folder (`seqrec export SPEC` with a new export.dir)"


def write_export(folder: Path, state: dict[str, torch.Tensor], config: dict, json_files: dict[str, object],
                 text_files: dict[str, str], manifest_extra: dict,
                 tensor_files: dict[str, dict[str, torch.Tensor]] | None = None,
                 writers: list[Callable[[Path], None]] | None = None) -> Path:
    """Build the whole folder in a temp dir and rename it into place; never replaces an existing folder.
    `writers` write further files into the (temp) folder; everything there goes into the manifest."""
    folder = Path(folder)
    if folder.exists():
        raise UserError("export folder already exists; refusing to overwrite it", where=str(folder),
                        fix="set export.dir to a new folder (--set export.dir=...), or delete the old export")
    sweep_temps(folder.parent)  # half-written exports of killed processes (this host's, pid gone)
    tmp = temp_dir(folder)
    try:
        with io_errors(folder):
            _write_files(tmp, state, config, json_files, text_files, manifest_extra, tensor_files, writers)
        with io_errors(folder):
            publish_dir(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _write_files(tmp: Path, state: dict[str, torch.Tensor], config: dict, json_files: dict[str, object],
                 text_files: dict[str, str], manifest_extra: dict,
                 tensor_files: dict[str, dict[str, torch.Tensor]] | None,
                 writers: list[Callable[[Path], None]] | None) -> None:
    save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(tmp / "model.safetensors"))
    head = {"format": EXPORT_FORMAT, "version": EXPORT_VERSION}
    (tmp / "config.json").write_text(json.dumps({**head, **config}, indent=2) + "\n")
    for name, obj in json_files.items():
        (tmp / name).write_text(json.dumps(obj, indent=2) + "\n")
    for name, text in text_files.items():
        (tmp / name).write_text(text, encoding="utf-8")
    for name, tensors in (tensor_files or {}).items():
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp / name))
    for write in writers or []:
        write(tmp)
    files = {p.name: sha256_file(p) for p in sorted(tmp.iterdir())}
    (tmp / MANIFEST).write_text(json.dumps({"format": EXPORT_FORMAT, "version": EXPORT_VERSION,
                                            "files": files, **manifest_extra}, indent=2) + "\n")


def verify_export(folder: Path) -> dict:
    """Check every file against the manifest; returns the manifest."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise UserError("not a seqrec export (manifest.json missing)", where=str(folder),
                        fix="point at a folder written by `seqrec export`")
    manifest = read_json_file(path, "the export's manifest", REEXPORT_FIX)
    if not isinstance(manifest, dict):
        raise UserError("the export's manifest is not a JSON object", where=str(path), fix=REEXPORT_FIX)
    if manifest.get("format") != EXPORT_FORMAT or manifest.get("version") != EXPORT_VERSION:
        raise UserError(f"unsupported export format {manifest.get('format')} v{manifest.get('version')}",
                        where=str(path),
                        fix=f"export again with this version of seqrec ({EXPORT_FORMAT} v{EXPORT_VERSION})")
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()) \
            or not REQUIRED_FILES <= set(files):
        needed = ", ".join(sorted(REQUIRED_FILES))
        raise UserError(f"the export's manifest does not list the sha256 of {needed}", where=str(path),
                        fix=REEXPORT_FIX)
    # Nothing unlisted is ever read: an extra file is refused, not trusted.
    extra = sorted(p.name for p in folder.iterdir() if p.name != MANIFEST and p.name not in files)
    if extra:
        raise UserError(f"file(s) not listed in the manifest: {', '.join(extra)}; nothing vouches for them",
                        where=str(folder / extra[0]), fix="remove the unlisted file(s), or export again")
    for name, expected in files.items():
        file = folder / name
        if "/" in name or not file.is_file() or sha256_file(file) != expected:
            raise UserError("file missing or modified since export (sha256 mismatch)", where=str(file),
                            fix=REEXPORT_FIX)
    return manifest
