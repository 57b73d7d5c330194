"""One text per item from the prepared item table and a spec template.

Template rules (model.text.template):
  - `{field}` is replaced by that item-table field (any column of items.jsonl, including item_id);
  - a `[...]` part is dropped when any field inside it is empty, so
    "{title}[ ({year})][. Genres: {genres}]" gives "Heat (1995). Genres: Action" or just "Heat";
  - an empty field outside brackets becomes "", and runs of whitespace collapse to one space.
An item whose text comes out empty has no text (its text vector is zero).
"""

from __future__ import annotations

import string
from dataclasses import dataclass

from seqrec_cli.errors import SpecError

WHERE = "model.text.template"


@dataclass(frozen=True)
class Part:
    text: str  # a str.format template without brackets
    fields: tuple[str, ...]
    optional: bool  # came from [...]: dropped when a field inside is empty


def _fields(text: str, columns: list[str]) -> tuple[str, ...]:
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise SpecError(WHERE, [(WHERE, f"cannot parse {text!r}: {exc}")],
                        fix="write fields as {name}; double literal braces as {{ and }}") from exc
    names = []
    for _, name, _, _ in parsed:
        if name is None:
            continue
        if name == "" or not name.isidentifier():
            raise SpecError(WHERE, [(WHERE, f"placeholder {{{name}}} is not a field name")],
                            fix=f"use field names from the item table: {', '.join(columns)}")
        if name not in columns:
            raise SpecError(
                WHERE,
                [(WHERE, f"unknown field {{{name}}}; the item table has: {', '.join(columns)}")],
                fix="use only those field names in the template",
            )
        names.append(name)
    return tuple(names)


def parse_template(template: str, columns: list[str]) -> list[Part]:
    """Split into plain and [optional] parts and check every field against the item table's columns."""
    parts: list[Part] = []
    rest = template
    while rest:
        open_at = rest.find("[")
        close_at = rest.find("]")
        if close_at != -1 and (open_at == -1 or close_at < open_at):
            raise SpecError(WHERE, [(WHERE, f"']' without '[' in {template!r}")], fix="balance the brackets")
        if open_at == -1:
            parts.append(Part(rest, _fields(rest, columns), optional=False))
            break
        if open_at:
            parts.append(Part(rest[:open_at], _fields(rest[:open_at], columns), optional=False))
        end = rest.find("]", open_at)
        if end == -1 or "[" in rest[open_at + 1 : end]:
            raise SpecError(WHERE, [(WHERE, f"unbalanced or nested '[' in {template!r}")],
                            fix="close every [ with ] (no nesting)")
        inner = rest[open_at + 1 : end]
        parts.append(Part(inner, _fields(inner, columns), optional=True))
        rest = rest[end + 1 :]
    if not any(part.fields for part in parts):
        raise SpecError(WHERE, [(WHERE, "the template uses no field, so every item would get the same text")],
                        fix=f"use at least one of: {', '.join(columns)}")
    return parts


def render(parts: list[Part], row: dict) -> str:
    values = {name: str(row.get(name, "") or "").strip() for part in parts for name in part.fields}
    out = []
    for part in parts:
        if part.optional and any(not values[name] for name in part.fields):
            continue
        out.append(part.text.format_map(values))
    text = " ".join("".join(out).split())
    # A row with no field at all gives no text, not the template's bare punctuation.
    return text if any(values.values()) else ""


def item_texts(rows: list[dict], template: str) -> list[str]:
    """rows: items.jsonl lines (item 1..N) -> their texts, same order."""
    columns = list(dict.fromkeys(key for row in rows[:1] for key in row))
    parts = parse_template(template, columns)
    return [render(parts, row) for row in rows]
