"""Validate hlcli's JSON outputs against the schemas it ships (hlcli/schema/*.json).

Every test that parses a JSON document, a JSON Lines stream or a compare document should pass it
through one of these helpers, so that the published schema and the real output cannot drift.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

import jsonschema


def _reject(name: str) -> None:
    raise ValueError(f"non-finite number {name} in JSON output")


def loads_strict(text: str) -> Any:
    """``json.loads`` that refuses NaN and Infinity (hlcli's JSON must be strict)."""
    return json.loads(text, parse_constant=_reject)


@lru_cache(maxsize=None)
def schema(kind: str) -> dict[str, Any]:
    """The shipped schema, read as package data (the way users get it)."""
    text = resources.files("hlcli").joinpath(f"schema/{kind}.schema.json").read_text("utf-8")
    return json.loads(text)


@lru_cache(maxsize=None)
def _validator(kind: str, ref: str | None = None) -> jsonschema.Draft202012Validator:
    s = schema(kind)
    if ref is not None:
        s = {"$ref": f"#/$defs/{ref}", "$defs": s["$defs"]}
    return jsonschema.Draft202012Validator(s, format_checker=jsonschema.FormatChecker())


def validate_score(doc: Any) -> dict[str, Any]:
    """Validate an ``hlcli score -f json`` document (parsed or text); return it parsed."""
    if isinstance(doc, str):
        doc = loads_strict(doc)
    _validator("score").validate(doc)
    return doc


def validate_jsonl(text: str) -> list[dict[str, Any]]:
    """Validate every line of ``hlcli score -f jsonl`` and the order of line types: header
    first, summary (or aborted) last and only there. Returns the parsed lines."""
    lines = [loads_strict(line) for line in text.splitlines()]
    assert lines, "no JSON Lines output"
    for line in lines:
        _validator("score", "jsonl_line").validate(line)
    types = [line["type"] for line in lines]
    if types == ["aborted"]:  # refused before the header could be written
        return lines
    assert types[0] == "header", types
    assert types[-1] in ("summary", "aborted"), types
    assert all(t not in ("header", "summary", "aborted") for t in types[1:-1]), types
    return lines


def validate_compare(doc: Any) -> dict[str, Any]:
    """Validate an ``hlcli compare -f json`` document (parsed or text); return it parsed."""
    if isinstance(doc, str):
        doc = loads_strict(doc)
    _validator("compare").validate(doc)
    return doc
