"""The spec reference (docs/spec.md), generated from the pydantic models so it cannot drift.

    python -m seqrec_cli.spec.reference docs/spec.md      # rewrite the generated part in place
    python -m seqrec_cli.spec.reference --check docs/spec.md   # exit 1 when it is stale

Only the text between the two markers is generated; the prose around it is written by hand.
"""

from __future__ import annotations

import argparse
import sys
import types
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from .models import ExperimentSpec

BEGIN = "<!-- BEGIN GENERATED: python -m seqrec_cli.spec.reference docs/spec.md -->"
END = "<!-- END GENERATED -->"

# Constraint attributes of annotated_types objects in FieldInfo.metadata, as they read in the table.
_BOUNDS = (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"), ("min_length", "min length"))


def _section_of(annotation: Any) -> type[BaseModel] | None:
    """The model class behind a field (also through `X | None`), or None for a plain value."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Literal:
        return " | ".join(str(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        names = [type_name(a) for a in args if a is not type(None)]
        return " | ".join(names) + (" | null" if type(None) in args else "")
    if origin is list:
        return f"list[{type_name(args[0])}]"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "section"
    return getattr(annotation, "__name__", str(annotation))


def _constraints(field: FieldInfo) -> str:
    parts = []
    for item in field.metadata:
        for attr, sign in _BOUNDS:
            value = getattr(item, attr, None)
            if value is not None:
                parts.append(f"{sign} {value}")
        pattern = getattr(item, "pattern", None)
        if pattern:
            parts.append(f"matches `{pattern}`")
    return ", ".join(parts)


def _value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, BaseModel):
        return "(section)"
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return str(value)


def default_text(field: FieldInfo) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "**required**"
    value = field.get_default(call_default_factory=True)
    return f"`{_value(value)}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _section_table(prefix: str, model: type[BaseModel], out: list[str]) -> None:
    doc = (model.__doc__ or "").strip()
    if doc == (BaseModel.__doc__ or "").strip():
        doc = ""
    out.append(f"### `{prefix}`" if prefix else "### top level")
    out.append("")
    if doc:
        out += [" ".join(doc.split()), ""]
    out += ["| field | type | default | description |", "|---|---|---|---|"]
    nested = []
    for name, field in model.model_fields.items():
        key = f"{prefix}.{name}" if prefix else name
        sub = _section_of(field.annotation)
        kind = type_name(field.annotation)
        bounds = _constraints(field)
        # Escaped so that <output_root> in a description is not read as an HTML tag.
        description = (field.description or "").replace("<", "&lt;").replace(">", "&gt;")
        if sub is not None:
            nested.append((key, sub))
            link = key.replace(".", "")
            description = (description + " " if description else "") + f"see [`{key}`](#{link})"
        type_cell = f"{kind}" + (f" ({bounds})" if bounds else "")
        out.append(f"| `{key}` | {_cell(type_cell)} | {_cell(default_text(field))} | {_cell(description)} |")
    out.append("")
    for key, sub in nested:
        _section_table(key, sub, out)


def render() -> str:
    """The generated part of docs/spec.md (between the markers, markers excluded)."""
    out: list[str] = []
    _section_table("", ExperimentSpec, out)
    return "\n".join(out).rstrip() + "\n"


def splice(document: str, generated: str) -> str:
    if BEGIN not in document or END not in document:
        raise ValueError(f"the document has no {BEGIN!r} ... {END!r} block to fill")
    head, rest = document.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n\n{generated}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, nargs="?", default=Path("docs/spec.md"))
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is not up to date")
    args = parser.parse_args(argv)
    current = args.path.read_text(encoding="utf-8")
    wanted = splice(current, render())
    if args.check:
        if current != wanted:
            print(f"{args.path} is stale; regenerate with: make docs", file=sys.stderr)
            return 1
        return 0
    if current != wanted:
        from ..atomic import atomic_write_text

        atomic_write_text(args.path, wanted)
        print(f"wrote {args.path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
