"""Write and verify an export folder.

  model.safetensors  weights of the trained model
  config.json        model section of the spec, catalogue size, format version
  item_ids.json      raw item id per item index (index 0 = PAD)
  items.jsonl        item side information, line i = item i
  metrics.json       evaluation reports of the run (valid/test) when present
  item_text.safetensors  `vectors` [N + 1, E]: item text vectors (text-based item tables only)
  manifest.json      sha256 of every file above, spec hash, dataset fingerprint
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file

from seqrec_cli.data.io import sha256_file
from seqrec_cli.errors import UserError

EXPORT_FORMAT = "seqrec-export"
EXPORT_VERSION = 1
MANIFEST = "manifest.json"


def write_export(folder: Path, state: dict[str, torch.Tensor], config: dict, json_files: dict[str, object],
                 text_files: dict[str, str], manifest_extra: dict,
                 tensor_files: dict[str, dict[str, torch.Tensor]] | None = None) -> Path:
    """Build the whole folder in a temp dir and rename it into place; never replaces an existing folder."""
    folder = Path(folder)
    if folder.exists():
        raise UserError("export folder already exists; refusing to overwrite it", where=str(folder),
                        fix="set export.dir to a new folder (--set export.dir=...), or delete the old export")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in state.items()}, str(tmp / "model.safetensors")
        )
        (tmp / "config.json").write_text(
            json.dumps({"format": EXPORT_FORMAT, "version": EXPORT_VERSION, **config}, indent=2) + "\n"
        )
        for name, obj in json_files.items():
            (tmp / name).write_text(json.dumps(obj, indent=2) + "\n")
        for name, text in text_files.items():
            (tmp / name).write_text(text, encoding="utf-8")
        for name, tensors in (tensor_files or {}).items():
            save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp / name))
        files = {p.name: sha256_file(p) for p in sorted(tmp.iterdir())}
        (tmp / MANIFEST).write_text(json.dumps({"format": EXPORT_FORMAT, "version": EXPORT_VERSION,
                                                "files": files, **manifest_extra}, indent=2) + "\n")
        os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def verify_export(folder: Path) -> dict:
    """Check every file against the manifest; returns the manifest."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise UserError("not a seqrec export (manifest.json missing)", where=str(folder),
                        fix="point at a folder written by `seqrec export`")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != EXPORT_FORMAT or manifest.get("version") != EXPORT_VERSION:
        raise UserError(
            f"unsupported export format {manifest.get('format')} v{manifest.get('version')}",
            where=str(path),
            fix=f"export again with this version of seqrec ({EXPORT_FORMAT} v{EXPORT_VERSION})",
        )
    for name, expected in manifest["files"].items():
        file = folder / name
        if not file.is_file() or sha256_file(file) != expected:
            raise UserError("file missing or modified since export (sha256 mismatch)", where=str(file),
                            fix="export again from the run folder")
    return manifest
