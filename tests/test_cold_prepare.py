"""`prepare` with data.cold_items: the held-out set is stored, fingerprinted and reproducible, and
specs without it keep their earlier prepared-folder hashes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from seqrec_cli.data.store import load_cold_items, load_prepared
from seqrec_cli.errors import UserError
from seqrec_cli.pipelines.paths import data_spec_hash
from seqrec_cli.pipelines.prepare import prepare
from seqrec_cli.spec.models import DataSpec, ExperimentSpec

ITEMS = 30


def write_log(path: Path) -> Path:
    rows = [f"u{u} {(u * 7 + j) % ITEMS + 1}" for u in range(50) for j in range(4 + u % 5)]
    path.write_text("\n".join(rows) + "\n")
    return path


def spec(tmp_path: Path, log: Path, cold: dict | None) -> ExperimentSpec:
    data = {"path": str(log), "format": "user_item_lines"}
    if cold is not None:
        data["cold_items"] = cold
    return ExperimentSpec(name="c", data=data, runtime={"output_root": str(tmp_path / "out")})


def test_cold_holdout_is_stored_fingerprinted_and_seeded(tmp_path: Path):
    log = write_log(tmp_path / "log.txt")
    plain = prepare(spec(tmp_path, log, None))
    first = prepare(spec(tmp_path, log, {"fraction": 0.2, "seed": 5}))
    cold = load_cold_items(first.folder)
    assert len(cold) == 6 and first.manifest["cold_items"] == 6
    assert load_cold_items(plain.folder) == [] and "cold_items" not in plain.manifest
    assert first.folder != plain.folder
    assert first.manifest["fingerprint"]["hash"] != plain.manifest["fingerprint"]["hash"]
    seqs, _ = load_prepared(first.folder)
    body = np.concatenate([seqs.user_items(u)[:-1] for u in range(seqs.num_users)])
    assert not np.isin(body, cold).any()
    # another seed, another set; the same seed in a new folder, the same set
    other = prepare(spec(tmp_path, log, {"fraction": 0.2, "seed": 6}))
    assert load_cold_items(other.folder) != cold
    again = prepare(spec(tmp_path / "again", log, {"fraction": 0.2, "seed": 5}))
    assert load_cold_items(again.folder) == cold
    # the set is part of the fingerprint: editing it is detected
    (first.folder / "cold_items.json").write_text(json.dumps(cold[:-1]))
    with pytest.raises(UserError, match="fingerprint"):
        load_prepared(first.folder)


def test_specs_without_cold_items_keep_their_prepared_hash():
    data = DataSpec(path="x.txt", format="user_item_lines")
    payload = data.model_dump(mode="json", exclude={"prepared_dir", "cold_items", "temporal", "engine",
                                                    "engine_memory_gb", "engine_threads"})
    assert data_spec_hash(data) == hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
