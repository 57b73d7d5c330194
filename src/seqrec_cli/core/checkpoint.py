"""Checkpoints hold tensors and primitives only, so they load with torch.load(weights_only=True).

Each checkpoint `X.pt` has a sidecar `X.pt.sha256` (JSON: sha256 and size of the file) that is
checked before torch.load ever sees the bytes, so a truncated or corrupted file is reported, never
half-loaded. The sidecar is written first, then the checkpoint; a crash between the two renames
leaves the previous checkpoint in place, which the new sidecar still accepts (`previous_sha256`).
A checkpoint without a sidecar is refused: nothing vouches for its bytes. `trust_checkpoint` (the
`seqrec trust` command) writes the sidecar for a file the user vouches for.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import torch

from seqrec_cli.atomic import atomic_write, atomic_write_json
from seqrec_cli.errors import UserError

REWRITE_FIX = (
    "re-create it: train again (`seqrec finetune SPEC --restart` moves the old run folder aside), "
    "restore the file and its .sha256 from a backup, or point at another run"
)
UNSIGNED_FIX = (
    "restore its .sha256 file if you have it; if you trust these bytes (e.g. a checkpoint written by "
    "a seqrec without digests), vouch for them with `seqrec trust {path}`; or re-create it: train "
    "again (`seqrec finetune SPEC --restart` moves the old run folder aside)"
)


def digest_path(path: Path) -> Path:
    return Path(path).with_name(Path(path).name + ".sha256")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _accepted_digests(path: Path) -> set[str] | None:
    """The digests the sidecar accepts for `path`; None when there is no sidecar."""
    sidecar = digest_path(path)
    if not sidecar.is_file():
        return None
    try:
        record = json.loads(sidecar.read_text())
        accepted = {record["sha256"], *([record["previous_sha256"]] if record.get("previous_sha256") else [])}
        if not all(isinstance(d, str) and len(d) == 64 for d in accepted):
            raise ValueError("a digest is not 64 hex digits")
        return accepted
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
        raise UserError(
            f"checkpoint digest file is unreadable ({exc})", where=str(sidecar), fix=REWRITE_FIX
        ) from exc


def save_checkpoint(path: Path, payload: dict, about: dict | None = None) -> None:
    """Write payload atomically; `about` (primitives, e.g. epoch and step) goes into the sidecar so
    people and tools can see what a checkpoint holds without loading it."""
    path = Path(path)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    record = {"sha256": _sha256(data), "bytes": len(data), **(about or {})}
    if path.is_file() and digest_path(path).is_file():
        # the file now in place stays acceptable until the rename below has happened (if it was vouched for)
        try:
            accepted = _accepted_digests(path)
        except UserError:
            accepted = None
        current = _sha256(path.read_bytes())
        if accepted is not None and current in accepted:
            record["previous_sha256"] = current
    atomic_write_json(digest_path(path), record)
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(
            "checkpoint not found",
            where=str(path),
            fix="run `seqrec finetune SPEC` first (or check the spec's name and runtime.output_root)",
        )
    accepted = _accepted_digests(path)
    if accepted is None:
        raise UserError(
            f"checkpoint has no digest file ({digest_path(path).name}), so nothing vouches for its "
            "bytes; refusing to load it",
            where=str(path),
            fix=UNSIGNED_FIX.format(path=path),
        )
    data = path.read_bytes()
    if _sha256(data) not in accepted:
        raise UserError(
            f"checkpoint is truncated or corrupted: its sha256 ({len(data)} bytes) does not match "
            f"{digest_path(path).name}",
            where=str(path),
            fix=REWRITE_FIX,
        )
    return _torch_load(data, path, map_location)


def _torch_load(data: bytes, path: Path, map_location: str | torch.device = "cpu") -> dict:
    try:
        payload = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except Exception as exc:  # a foreign or damaged file: report, never half-load
        raise UserError(
            f"checkpoint cannot be read ({type(exc).__name__}: {exc})", where=str(path), fix=REWRITE_FIX
        ) from exc
    if not isinstance(payload, dict):
        raise UserError(
            f"not a seqrec checkpoint (holds a {type(payload).__name__}, not a dict)",
            where=str(path),
            fix=REWRITE_FIX,
        )
    return payload


def trust_checkpoint(path: Path) -> dict:
    """Write the sidecar of a checkpoint the user vouches for, after checking that it loads as tensors
    and primitives; returns the sidecar record. Refuses a file whose sidecar exists and disagrees."""
    path = Path(path)
    if not path.is_file():
        raise UserError("checkpoint not found", where=str(path), fix="give the path of a .pt file")
    data = path.read_bytes()
    accepted = _accepted_digests(path) if digest_path(path).is_file() else None
    if accepted is not None and _sha256(data) not in accepted:
        raise UserError(
            f"its digest file {digest_path(path).name} says these bytes were altered; refusing to "
            "vouch for them",
            where=str(path),
            fix=REWRITE_FIX,
        )
    _torch_load(data, path)
    record = {"sha256": _sha256(data), "bytes": len(data), "trusted_by_user": True}
    atomic_write_json(digest_path(path), record)
    return record
