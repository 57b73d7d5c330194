"""YAML file + `--set section.key=value` overrides -> one validated ExperimentSpec.

Overrides are applied to the raw mapping before validation, so a typo in --set is caught exactly
like a typo in the file. Every problem is reported at once, with its dotted key and, where the key
comes from the file, its line number.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import yaml
from pydantic import ValidationError

from seqrec_cli.errors import SpecError
from seqrec_cli.spec.models import ExperimentSpec


def _key_lines(node: yaml.Node, prefix: str = "") -> dict[str, int]:
    """Dotted key -> 1-based line number, from the YAML node tree."""
    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            dotted = f"{prefix}.{key_node.value}" if prefix else str(key_node.value)
            lines[dotted] = key_node.start_mark.line + 1
            lines.update(_key_lines(value_node, dotted))
    return lines


def parse_override(text: str) -> tuple[list[str], object]:
    """'train.lr=0.001' -> (['train', 'lr'], 0.001). Values are parsed as YAML scalars/lists."""
    if "=" not in text:
        raise SpecError("--set", [(text, "expected section.key=value, e.g. --set train.epochs=5")])
    key, _, raw_value = text.partition("=")
    parts = key.strip().split(".")
    if not all(parts):
        raise SpecError("--set", [(key, "empty key segment; expected section.key=value")])
    try:
        value = yaml.safe_load(raw_value) if raw_value.strip() else None
    except yaml.YAMLError as exc:
        raise SpecError("--set", [(key, f"value {raw_value!r} is not valid YAML: {exc}")]) from exc
    return parts, value


def apply_override(raw: dict, parts: list[str], value: object) -> None:
    node = raw
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            dotted = ".".join(parts[: i + 1])
            raise SpecError("--set", [(".".join(parts), f"{dotted} is a value, not a section")])
        node = child
    node[parts[-1]] = value


def _format_errors(
    exc: ValidationError, lines: dict[str, int], overridden: set[str]
) -> list[tuple[str, str]]:
    problems = []
    for err in exc.errors():
        dotted = ".".join(str(p) for p in err["loc"])
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (typo?); remove it or check docs/spec.md (the spec reference)"
        elif err["type"] == "literal_error":
            msg = f"{msg} (got {err.get('input')!r})"
        where = dotted or "(top level)"
        if dotted in overridden:
            where += " [from --set]"
        elif dotted in lines:
            where += f" (line {lines[dotted]})"
        else:
            parent = ".".join(dotted.split(".")[:-1])
            if parent in lines:
                where += f" (section at line {lines[parent]})"
        problems.append((where, msg))
    return problems


def load_spec(path: str | Path, overrides: list[str] | None = None) -> ExperimentSpec:
    path = Path(path)
    if not path.is_file():
        raise SpecError(
            str(path),
            [
                (
                    "(file)",
                    "spec file not found; pass the path of a YAML spec, e.g. experiments/ml100k/sasrec.yaml",
                )
            ],
        )
    text = path.read_text(encoding="utf-8")
    try:
        node = yaml.compose(text)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "(file)"
        raise SpecError(str(path), [(where, f"not valid YAML: {getattr(exc, 'problem', exc)}")]) from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise SpecError(
            str(path), [("(top level)", "the spec must be a mapping of sections (name, data, model, ...)")]
        )
    lines = _key_lines(node) if node is not None else {}
    overridden = set()
    for text_override in overrides or []:
        parts, value = parse_override(text_override)
        apply_override(raw, parts, value)
        overridden.add(".".join(parts))
    try:
        return ExperimentSpec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(str(path), _format_errors(exc, lines, overridden)) from exc


def spec_hash(spec: ExperimentSpec) -> str:
    """Stable hash of the resolved spec (key order independent)."""
    canonical = json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def dump_spec(spec: ExperimentSpec) -> str:
    return yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False)
