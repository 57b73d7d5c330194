"""Spec loading: unknown keys, types, choices, several problems at once, --set overrides, hashing."""

from __future__ import annotations

from pathlib import Path

import pytest

from seqrec_cli.errors import SpecError, UserError
from seqrec_cli.spec.loader import load_spec, parse_override, spec_hash
from seqrec_cli.spec.models import ExperimentSpec

REPO = Path(__file__).resolve().parents[1]

BASE = """\
name: demo
data:
  path: interactions.txt
  format: user_item_lines
model:
  hidden: 16
  layers: 1
  heads: 1
train:
  epochs: 3
  lr: 0.001
eval:
  ks: [5, 10]
"""


def write_spec(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(exc: pytest.ExceptionInfo[SpecError]) -> dict[str, str]:
    """where (dotted key with line / origin) -> message."""
    return dict(exc.value.problems)


def find(problems: dict[str, str], key: str) -> tuple[str, str]:
    """The one problem whose location starts with the dotted `key` (followed by a space or nothing)."""
    hits = [(w, m) for w, m in problems.items() if w == key or w.startswith(key + " ")]
    assert len(hits) == 1, f"expected one problem for {key!r}, got {problems}"
    return hits[0]


# ---------------------------------------------------------------------------------------------------
# the file itself
# ---------------------------------------------------------------------------------------------------


def test_base_spec_is_valid_and_fills_defaults(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path, BASE))
    assert isinstance(spec, ExperimentSpec)
    assert spec.name == "demo"
    assert spec.model.hidden == 16 and spec.model.layers == 1
    assert spec.model.max_len == 200  # default
    assert spec.eval.ks == [5, 10]
    assert spec.data.format == "user_item_lines"


def test_unknown_top_level_key_names_key_and_line(tmp_path: Path) -> None:
    path = write_spec(tmp_path, BASE + "trian:\n  epochs: 5\n")
    with pytest.raises(SpecError) as exc:
        load_spec(path)
    where, msg = find(problems_of(exc), "trian")
    assert "(line 14)" in where
    assert "unknown key" in msg
    assert str(path) in str(exc.value)


def test_unknown_nested_key_names_dotted_key_and_line(tmp_path: Path) -> None:
    text = BASE.replace("  layers: 1\n", "  layers: 1\n  hiden: 32\n")
    with pytest.raises(SpecError) as exc:
        load_spec(write_spec(tmp_path, text))
    where, msg = find(problems_of(exc), "model.hiden")
    assert "(line 8)" in where
    assert "unknown key" in msg
    assert "model.hiden (line 8)" in str(exc.value)


def test_unknown_key_in_sub_section(tmp_path: Path) -> None:
    text = BASE.replace("  format: user_item_lines\n", "  format: user_item_lines\n  columns:\n    usr: u\n")
    with pytest.raises(SpecError) as exc:
        load_spec(write_spec(tmp_path, text))
    where, _ = find(problems_of(exc), "data.columns.usr")
    assert "(line 6)" in where


def test_wrong_type(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as exc:
        load_spec(write_spec(tmp_path, BASE.replace("epochs: 3", "epochs: many")))
    where, msg = find(problems_of(exc), "train.epochs")
    assert "(line 10)" in where
    assert "integer" in msg


def test_out_of_range_value(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as exc:
        load_spec(write_spec(tmp_path, BASE.replace("lr: 0.001", "lr: -1")))
    _, msg = find(problems_of(exc), "train.lr")
    assert "greater than 0" in msg


def test_bad_literal_names_allowed_values(tmp_path: Path) -> None:
    text = BASE.replace("  hidden: 16\n", "  encoder: transformerx\n  hidden: 16\n")
    with pytest.raises(SpecError) as exc:
        load_spec(write_spec(tmp_path, text))
    where, msg = find(problems_of(exc), "model.encoder")
    assert "(line 6)" in where
    assert "'sasrec'" in msg and "transformerx" in msg


def test_bad_format_lists_every_format(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as exc:
        load_spec(write_spec(tmp_path, BASE.replace("format: user_item_lines", "format: csvv")))
    _, msg = find(problems_of(exc), "data.format")
    for choice in ("recbole", "movielens", "user_item_lines", "user_sequence_lines", "table"):
        assert f"'{choice}'" in msg


def test_several_problems_reported_at_once(tmp_path: Path) -> None:
    text = (BASE.replace("epochs: 3", "epochs: many")
            .replace("  hidden: 16\n", "  encoder: gru\n  hidden: 16\n")
            + "runtime:\n  devcie: cpu\n")
    with pytest.raises(SpecError) as exc:
        load_spec(write_spec(tmp_path, text))
    problems = problems_of(exc)
    assert len(problems) == 3, problems
    find(problems, "train.epochs")
    find(problems, "model.encoder")
    find(problems, "runtime.devcie")
    assert "3 problem(s)" in str(exc.value)


def test_missing_required_keys(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as exc:
        load_spec(write_spec(tmp_path, "model:\n  hidden: 16\n"))
    problems = problems_of(exc)
    find(problems, "name")
    find(problems, "data")


def test_bad_run_name(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as exc:
        load_spec(write_spec(tmp_path, BASE.replace("name: demo", "name: ../escape")))
    find(problems_of(exc), "name")


def test_hidden_not_divisible_by_heads(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as exc:
        load_spec(write_spec(tmp_path, BASE.replace("heads: 1", "heads: 3")))
    assert "must be divisible by model.heads" in str(exc.value)
    assert "model.hidden (16)" in str(exc.value)
    # and the same through --set
    with pytest.raises(SpecError):
        load_spec(write_spec(tmp_path, BASE), ["model.heads=5"])
    assert load_spec(write_spec(tmp_path, BASE), ["model.heads=4"]).model.heads == 4


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as exc:
        load_spec(tmp_path / "nope.yaml")
    assert "nope.yaml" in str(exc.value) and "not found" in str(exc.value)


def test_invalid_yaml_names_line(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as exc:
        load_spec(write_spec(tmp_path, BASE + "eval:\n  ks: [1, 2\n"))
    assert "not valid YAML" in str(exc.value)
    assert "line " in str(exc.value)


def test_non_mapping_spec(tmp_path: Path) -> None:
    with pytest.raises(SpecError):
        load_spec(write_spec(tmp_path, "- a\n- b\n"))


def test_spec_error_is_a_user_error() -> None:
    assert issubclass(SpecError, UserError)


# ---------------------------------------------------------------------------------------------------
# --set overrides
# ---------------------------------------------------------------------------------------------------


def test_override_number_bool_list_and_string(tmp_path: Path) -> None:
    path = write_spec(tmp_path, BASE)
    spec = load_spec(path, ["train.epochs=7", "train.lr=5e-4", "eval.filter_seen=false", "eval.ks=[20, 1, 5]",
                            "name=other-name", "runtime.device=cpu"])
    assert spec.train.epochs == 7 and isinstance(spec.train.epochs, int)
    assert spec.train.lr == pytest.approx(5e-4)
    assert spec.eval.filter_seen is False
    assert spec.eval.ks == [1, 5, 20]
    assert spec.name == "other-name"
    assert spec.runtime.device == "cpu"


def test_override_creates_missing_section(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path, BASE), ["export.dir=/tmp/somewhere", "data.columns.user=uid"])
    assert spec.export.dir == "/tmp/somewhere"
    assert spec.data.columns.user == "uid"


def test_override_last_one_wins(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path, BASE), ["train.epochs=7", "train.epochs=9"])
    assert spec.train.epochs == 9


def test_override_unknown_key_is_rejected_and_marked(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as exc:
        load_spec(write_spec(tmp_path, BASE), ["train.epochz=5"])
    where, msg = find(problems_of(exc), "train.epochz")
    assert "[from --set]" in where
    assert "unknown key" in msg


def test_override_nested_new_key_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as exc:
        load_spec(write_spec(tmp_path, BASE), ["model.extra.depth=3"])
    _, msg = find(problems_of(exc), "model.extra")
    assert "unknown key" in msg


def test_override_wrong_type(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as exc:
        load_spec(write_spec(tmp_path, BASE), ["train.epochs=lots"])
    where, _ = find(problems_of(exc), "train.epochs")
    assert "[from --set]" in where


def test_override_into_a_value_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as exc:
        load_spec(write_spec(tmp_path, BASE), ["name.first=x"])
    assert "not a section" in str(exc.value)


@pytest.mark.parametrize("text", ["foo", "train.epochs", "train..epochs=3", ".epochs=3", "eval.ks=[1, 2"])
def test_malformed_override(tmp_path: Path, text: str) -> None:
    with pytest.raises(SpecError) as exc:
        load_spec(write_spec(tmp_path, BASE), [text])
    assert "--set" in str(exc.value)


def test_parse_override_values() -> None:
    assert parse_override("train.epochs=5") == (["train", "epochs"], 5)
    assert parse_override("eval.filter_seen=true") == (["eval", "filter_seen"], True)
    assert parse_override("eval.ks=[1,2]") == (["eval", "ks"], [1, 2])
    assert parse_override("train.max_minutes=") == (["train", "max_minutes"], None)
    assert parse_override("runtime.output_root=a=b") == (["runtime", "output_root"], "a=b")


# ---------------------------------------------------------------------------------------------------
# hashing and the shipped specs
# ---------------------------------------------------------------------------------------------------


def test_spec_hash_ignores_key_order(tmp_path: Path) -> None:
    reordered = """\
eval:
  ks: [10, 5]
train:
  lr: 0.001
  epochs: 3
model:
  heads: 1
  layers: 1
  hidden: 16
data:
  format: user_item_lines
  path: interactions.txt
name: demo
"""
    a = load_spec(write_spec(tmp_path, BASE, "a.yaml"))
    b = load_spec(write_spec(tmp_path, reordered, "b.yaml"))
    assert spec_hash(a) == spec_hash(b)
    assert len(spec_hash(a)) == 64
    # explicit defaults do not change the hash either
    c = load_spec(write_spec(tmp_path, BASE + "runtime:\n  device: auto\n", "c.yaml"))
    assert spec_hash(c) == spec_hash(a)


def test_spec_hash_changes_with_any_value(tmp_path: Path) -> None:
    path = write_spec(tmp_path, BASE)
    base = spec_hash(load_spec(path))
    for override in ("train.epochs=4", "model.hidden=32", "eval.ks=[5]", "name=demo2", "data.user_core=2"):
        assert spec_hash(load_spec(path, [override])) != base, override


# Search spaces for `seqrec sweep` (*_space.yaml) are not specs; they are checked by their own loader below.
SHIPPED = sorted(p for p in (REPO / "experiments").glob("**/*.yaml") if not p.name.endswith("_space.yaml"))
SHIPPED_SPACES = sorted((REPO / "experiments").glob("**/*_space.yaml"))


def test_there_are_shipped_specs() -> None:
    assert SHIPPED, "no experiments/**/*.yaml found"


@pytest.mark.parametrize("path", SHIPPED_SPACES, ids=[str(p.relative_to(REPO)) for p in SHIPPED_SPACES])
def test_shipped_search_space_validates(path: Path) -> None:
    from seqrec_cli.spec.space import load_space

    assert load_space(path)


@pytest.mark.parametrize("path", SHIPPED, ids=[str(p.relative_to(REPO)) for p in SHIPPED])
def test_shipped_spec_validates(path: Path) -> None:
    spec = load_spec(path)
    assert spec.name
    # the early-stopping metric must be one the spec computes
    name, _, k = spec.train.monitor.partition("@")
    assert name in ("HR", "NDCG", "MRR") and int(k) in spec.eval.ks
