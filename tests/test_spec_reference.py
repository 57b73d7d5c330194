"""docs/spec.md's generated reference matches the pydantic models (regenerate: make docs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from seqrec_cli.spec import reference
from seqrec_cli.spec.models import ExperimentSpec

DOC = Path(__file__).resolve().parents[1] / "docs" / "spec.md"


def _all_keys(prefix: str, model) -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        key = f"{prefix}.{name}" if prefix else name
        keys.append(key)
        sub = reference._section_of(field.annotation)
        if sub is not None:
            keys += _all_keys(key, sub)
    return keys


def test_spec_reference_is_up_to_date():
    text = DOC.read_text(encoding="utf-8")
    assert text == reference.splice(text, reference.render()), "docs/spec.md is stale: run `make docs`"


def test_reference_lists_every_field_with_its_default():
    generated = reference.render()
    for key in _all_keys("", ExperimentSpec):
        assert f"| `{key}` |" in generated, key
    assert "| `train.epochs` | int (>= 1) | `200` |" in generated
    assert "| `name` | str" in generated and "**required**" in generated
    assert "| `model.encoder` | sasrec | bert4rec |" not in generated  # pipes in a cell are escaped


def test_check_mode_reports_a_stale_file(tmp_path, capsys):
    stale = tmp_path / "spec.md"
    stale.write_text(f"intro\n{reference.BEGIN}\nold table\n{reference.END}\noutro\n", encoding="utf-8")
    assert reference.main(["--check", str(stale)]) == 1
    assert "make docs" in capsys.readouterr().err
    assert reference.main([str(stale)]) == 0
    fresh = stale.read_text(encoding="utf-8")
    assert fresh.startswith("intro\n") and fresh.endswith("outro\n") and "old table" not in fresh
    assert reference.main(["--check", str(stale)]) == 0


def test_a_document_without_markers_is_refused():
    with pytest.raises(ValueError, match="BEGIN GENERATED"):
        reference.splice("no markers here", "table")


def test_every_field_has_a_description():
    missing = []

    def walk(prefix: str, model) -> None:
        for name, field in model.model_fields.items():
            key = f"{prefix}.{name}" if prefix else name
            sub = reference._section_of(field.annotation)
            if sub is not None:
                walk(key, sub)
            elif not field.description:
                missing.append(key)

    walk("", ExperimentSpec)
    assert missing == [], "add Field(description=...) for these, then `make docs`"
