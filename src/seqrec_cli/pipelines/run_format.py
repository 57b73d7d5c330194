"""The compatibility policy for what seqrec writes and later reads back.

Every stored artifact carries a format version, and a reader accepts exactly the version it writes:
- run folders: run.json and every checkpoint carry `format_version` = RUN_FORMAT_VERSION (here);
- exports: `format` + `version` in config.json and manifest.json (artifacts/format.py);
- evaluation reports: `format_version` (pipelines/eval_report.py);
- prepared datasets: `format_version` in manifest.json (data/store.py).

Anything else, including the unversioned run folders of seqrec 0.2 and earlier, is refused (exit 2)
with a message naming what was found and the fix. There are no per-field fallbacks for older
layouts: when a stored field is added, removed or changes meaning (a default that changes how
training goes counts), the version goes up, and the old folders are finished with the release that
wrote them. Exports are the portable form of a model: export a run before upgrading to keep it.
"""

from __future__ import annotations

from seqrec_cli.core.checkpoint import load_checkpoint
from seqrec_cli.errors import UserError

RUN_FORMAT_VERSION = 2  # 1: seqrec 0.3, the first versioned run folder; 2: train.windows defaults to sliding


def stamped(record: dict) -> dict:
    """`record` (a run.json or a checkpoint payload) with this seqrec's run format version."""
    return {**record, "format_version": RUN_FORMAT_VERSION}


def check_run_format(record: dict, where: str, what: str = "checkpoint") -> None:
    version = record.get("format_version") if isinstance(record, dict) else None
    if version == RUN_FORMAT_VERSION:
        return
    found = ("has no format version (written by seqrec 0.2 or earlier)" if version is None
             else f"has run format version {version}")
    raise UserError(
        f"this {what} {found}; this seqrec reads run format version {RUN_FORMAT_VERSION} only",
        where=where,
        fix="finish, evaluate or export the run with the seqrec release that wrote it (its export loads "
        "here), or train it again under a new name (--set name=...)",
    )


def load_run_checkpoint(path) -> dict:
    """A run's checkpoint (integrity-checked by core/checkpoint.py), refused unless it is this format."""
    payload = load_checkpoint(path)
    check_run_format(payload, str(path))
    return payload
