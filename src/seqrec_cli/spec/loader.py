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


def _duplicate_keys(node: yaml.Node | None, prefix: str = "") -> list[tuple[str, str]]:
    """(dotted key with line, message) for every key given twice in one mapping: YAML would keep the
    last silently, so a spec that sets a value twice is refused."""
    problems: list[tuple[str, str]] = []
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            dotted = f"{prefix}.{key}" if prefix else key
            line = key_node.start_mark.line + 1
            if key in seen:
                problems.append((f"{dotted} (line {line})", f"duplicate key: already set at line "
                                 f"{seen[key]}; YAML would silently keep the last one"))
            else:
                seen[key] = line
            problems.extend(_duplicate_keys(value_node, dotted))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            problems.extend(_duplicate_keys(item, f"{prefix}[{i}]"))
    return problems


def monitor_problem(spec: ExperimentSpec) -> str | None:
    """Why train.monitor is not a metric the spec computes (None when it is). --dry-run, the loader and
    finetune all use this one check."""
    name, _, k = spec.train.monitor.partition("@")
    if name not in ("HR", "NDCG", "MRR") or not k.isdigit() or int(k) not in spec.eval.ks:
        return (f"{spec.train.monitor!r} is not a metric this spec computes: use HR@K, NDCG@K or MRR@K "
                f"with K in eval.ks {spec.eval.ks}")
    return None


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
    except (yaml.YAMLError, ValueError, TypeError, RecursionError) as exc:
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
        msg = err["msg"].removeprefix("Value error, ")
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


def load_spec(path: str | Path, overrides: list[str] | None = None,
              for_training: bool = False) -> ExperimentSpec:
    """`for_training`: also check what only training needs (train.monitor among the metrics computed),
    so `finetune --dry-run` refuses exactly what `finetune` refuses."""
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
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(str(path), [("(file)", f"not UTF-8 text (byte {exc.start}: {exc.reason})")]) from exc
    except OSError as exc:
        raise SpecError(str(path), [("(file)", f"cannot read the spec: {exc.strerror or exc}")]) from exc
    try:
        node = yaml.compose(text)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "(file)"
        raise SpecError(str(path), [(where, f"not valid YAML: {getattr(exc, 'problem', exc)}")]) from exc
    except (ValueError, TypeError, RecursionError) as exc:  # e.g. a date like 2024-13-01, or deep nesting
        raise SpecError(str(path), [("(file)", f"not a usable YAML value: {exc}")]) from exc
    duplicates = _duplicate_keys(node)
    if duplicates:
        raise SpecError(str(path), duplicates)
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
        spec = ExperimentSpec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(str(path), _format_errors(exc, lines, overridden)) from exc
    problem = monitor_problem(spec) if for_training else None
    if problem:
        where = "train.monitor" + (" [from --set]" if "train.monitor" in overridden else
                                   f" (line {lines['train.monitor']})" if "train.monitor" in lines else "")
        raise SpecError(str(path), [(where, problem)])
    return spec


def spec_hash(spec: ExperimentSpec) -> str:
    """Stable hash of the resolved spec (key order independent)."""
    canonical = json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def dump_spec(spec: ExperimentSpec) -> str:
    return yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False)
