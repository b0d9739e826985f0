"""Reading a stored JSON document safely: the bytes, the JSON, and the schema (no torch import).

Every document hlcli reads back goes through :func:`read_json` and :func:`check_schema` before
the reader of its kind (``hlcli.runs.documents``) runs its cross-field checks. A problem is a
:class:`DocumentError` (exit 2) rendered as ``<file>: <JSON path>: <what is wrong>: <fix>``.

What is refused here, whatever the kind: a directory, an unreadable or empty file, bytes that are
not UTF-8, text that is not one complete JSON value, ``NaN``/``Infinity``, a number that is not
finite, beyond :data:`MAX_MAGNITUDE` (``1e999`` parses as infinity) or nonzero below
:data:`MIN_MAGNITUDE`, a duplicated key in an
object, a lone UTF-16 surrogate (it cannot be written back out), nesting deeper than
:data:`MAX_DEPTH`.

The schemas in ``hlcli/schema/`` are checked with ``jsonschema`` (a runtime dependency, imported
only here, so ``hlcli --help`` stays instant). When it cannot be imported (a broken or trimmed
installation), :func:`check_schema` applies the same schema with :func:`_fallback_errors`, a
checker of the JSON Schema subset those schemas use: the same documents pass either way.
"""

from __future__ import annotations

import functools
import json
import math
import re
from importlib import resources
from pathlib import Path
from typing import Any, Iterator

from ..errors import InputError

MAX_MAGNITUDE = 1e100  # no number hlcli writes comes near; products and sums of two stay finite
MIN_MAGNITUDE = 1e-100  # nor so near 0 (other than 0): quotients of two stay finite
MAX_DEPTH = 64
#: How far a bound of exact arithmetic that floating point can overshoot is relaxed in the schemas
#: (SSIM's ±1, a calibration share's 1): rounding overshoots by a few ulps (SSIM of identical
#: images: 1.0000000000000004) and at most about 1e-12, far below 1e-9; anything beyond is not a
#: number hlcli computed. Bounds that rounding cannot cross stay exact (docs/formats.md, Bounds).
ROUNDING_TOLERANCE = 1e-9
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def json_path(parts: Any) -> str:
    """``pairs[3].layers.conv4_3`` for ``["pairs", 3, "layers", "conv4_3"]``; a key that is not a
    plain name is quoted JSON-style (``settings["a b"]``), so control characters come out escaped."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENTIFIER.match(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part, ensure_ascii=True)}]"
    return out or "(top level)"


def shown(value: Any, limit: int = 60) -> str:
    """A value from a document, safe to print: JSON-quoted (control characters escaped), cut short."""
    text = json.dumps(value, ensure_ascii=True, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class DocumentError(InputError):
    """A stored document hlcli cannot use: ``<file>: <JSON path>: <what is wrong>: <fix>``. Exit 2."""

    def __init__(self, file: str | Path | None, where: Any, what: str, fix: str):
        self.where = where if isinstance(where, str) or where is None else json_path(where)
        super().__init__(what, file, fix)

    def render(self) -> str:
        parts = [p for p in (self.path, self.where, self.what, self.fix) if p]
        return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", " ".join(": ".join(parts).split()))


# -- bytes and JSON ---------------------------------------------------------------------------------

class _Duplicate(dict):
    """An object in which a key appeared twice (``duplicate`` names it); refused by :func:`_walk`."""

    duplicate: str = ""


def _pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            dup = _Duplicate(out)
            dup.duplicate = key
            out = dup
        out[key] = value
    return out


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number (JSON has no NaN or infinity)")


def read_json(path: str | Path, fix: str) -> Any:
    """The JSON value in ``path``, checked as described in the module docstring."""
    p = Path(path)
    if p.is_dir():
        raise DocumentError(path, None, "is a directory, not a file", fix)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise DocumentError(path, None, f"cannot be read ({exc.strerror or type(exc).__name__})", fix) from None
    return parse_json(data, path, fix)


def parse_json(data: bytes, path: str | Path | None, fix: str) -> Any:
    if not data.strip():
        raise DocumentError(path, None, "is empty" if not data else "holds only white space", fix)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DocumentError(path, None, f"is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})",
                            fix) from None
    try:
        doc = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_pairs_hook)
    except json.JSONDecodeError as exc:
        # Truncated: the error is at the end, in an unterminated string, or in a literal the cut
        # left unfinished (`-`, `1e`, `tru`: the decoder points at its start, not at the end).
        tail = text[exc.pos:].rstrip()
        ended = (not tail or exc.msg.startswith("Unterminated string")
                 or all(c.isalnum() or c in "+-." for c in tail))
        what = ("ends before its JSON is complete (truncated?)" if ended
                else f"is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})")
        raise DocumentError(path, None, what, fix) from None
    except ValueError as exc:  # NaN/Infinity, an integer with too many digits
        raise DocumentError(path, None, f"is not valid JSON ({exc})", fix) from None
    except RecursionError:
        raise DocumentError(path, None, f"is nested deeper than {MAX_DEPTH} levels", fix) from None
    problem = next(_walk(doc), None)
    if problem is not None:
        raise DocumentError(path, problem[0], problem[1], fix)
    return doc


def _walk(doc: Any) -> Iterator[tuple[list[Any], str]]:
    """The first value anywhere in ``doc`` that no reader may see (iterative: no recursion limit)."""
    stack: list[tuple[list[Any], Any]] = [([], doc)]
    while stack:
        where, value = stack.pop()
        if len(where) > MAX_DEPTH:
            yield where, f"is nested deeper than {MAX_DEPTH} levels"
            return
        if isinstance(value, dict):
            if isinstance(value, _Duplicate):
                yield [*where, value.duplicate], "appears twice in the same object (a duplicated key)"
                return
            for key, item in value.items():
                if _has_surrogate(key):
                    yield where, f"has a key with a lone UTF-16 surrogate ({shown(key)})"
                    return
                stack.append(([*where, key], item))
        elif isinstance(value, list):
            stack.extend(([*where, i], item) for i, item in enumerate(value))
        elif isinstance(value, bool) or value is None:
            continue
        elif isinstance(value, float) and not math.isfinite(value):
            yield where, "is a number too large to be finite"
            return
        elif isinstance(value, (int, float)) and (abs(value) > MAX_MAGNITUDE or 0 < abs(value) < MIN_MAGNITUDE):
            yield where, (f"is {shown(value, 24)}, outside 0 and ±{MIN_MAGNITUDE:g} to ±{MAX_MAGNITUDE:g} "
                          "(no hlcli document holds such a number)")
            return
        elif isinstance(value, str) and _has_surrogate(value):
            yield where, "is a string with a lone UTF-16 surrogate (not valid Unicode)"
            return


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


# -- schemas ----------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def schema(kind: str) -> dict[str, Any]:
    """``hlcli/schema/<kind>.schema.json``; the maps index borrows the score schema's ``$defs``."""
    loaded = json.loads(resources.files("hlcli").joinpath(f"schema/{kind}.schema.json").read_text("utf-8"))
    if kind == "maps":
        loaded["$defs"] = {**schema("score")["$defs"], **loaded.get("$defs", {})}
    return loaded


def _inline(node: Any, root: dict[str, Any], seen: tuple[str, ...] = ()) -> Any:
    """``node`` with its local ``$ref``s replaced by their targets (a recursive one is kept):
    the same schema, checked about three times faster (no reference lookups per value)."""
    if isinstance(node, list):
        return [_inline(v, root, seen) for v in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/") and ref not in seen:
        target: Any = root
        for part in ref[2:].split("/"):
            target = target[part]
        return _inline({**target, **{k: v for k, v in node.items() if k != "$ref"}}, root, (*seen, ref))
    return {k: (v if k == "$defs" else _inline(v, root, seen)) for k, v in node.items()}


@functools.lru_cache(maxsize=None)
def inlined_schema(kind: str) -> dict[str, Any]:
    return _inline(schema(kind), schema(kind))


@functools.lru_cache(maxsize=None)
def _validator(kind: str) -> Any:
    import jsonschema  # lazy: keeps jsonschema off the cheap paths (import hlcli, --help, reading runs)

    base = jsonschema.Draft202012Validator
    # JSON Schema counts 1.0 as an integer; hlcli's readers index and count with them: ints only.
    checker = base.TYPE_CHECKER.redefine("integer", lambda _, x: isinstance(x, int) and not isinstance(x, bool))
    return jsonschema.validators.extend(base, type_checker=checker)(inlined_schema(kind))


def schema_problem(doc: Any, kind: str) -> tuple[list[Any], str] | None:
    """The first way ``doc`` breaks ``<kind>.schema.json`` as (JSON path, what), or None."""
    try:
        import jsonschema  # noqa: F401 - absent (or blocked in sys.modules): the fallback checker

        validator = _validator(kind)
    except ImportError:
        return next(_fallback_errors(doc, inlined_schema(kind), [], schema(kind)), None)
    # The first error, not best_match's pick among all of them: a refusal names one problem, and
    # stopping there keeps a broken document cheap to refuse.
    error = next(validator.iter_errors(doc), None)
    if error is None:
        return None
    return _describe(list(error.absolute_path), error.validator, error.validator_value, error.instance,
                     error.schema)


def as_floats(doc: Any, kind: str, file: str | Path | None, fix: str) -> Any:
    """``doc`` (already checked against ``<kind>.schema.json``) with every value that the schema
    types as a number (``"number"``, not ``"integer"``) converted to a Python float: the one place
    where a score or statistic written as an integer (``"hybrid": 1180591620717411303424``)
    becomes the float every consumer expects. A number too large for a float is refused. The
    conversion is in place (the readers' documents are freshly parsed); ``doc`` is returned."""
    return _floats(doc, inlined_schema(kind), [], file, fix)


def _floats(value: Any, sub: Any, where: list[Any], file: Any, fix: str) -> Any:
    if not isinstance(sub, dict):
        return value
    for part in sub.get("allOf", []):
        value = _floats(value, part, where, file, fix)
    for part in sub.get("oneOf", []) + sub.get("anyOf", []):
        if "type" not in part or _is_type(value, part["type"]):
            value = _floats(value, part, where, file, fix)
    kinds = sub.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    if "number" in kinds and isinstance(value, int) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            raise DocumentError(file, where, "is a number too large to be finite", fix) from None
    if isinstance(value, dict):
        props = sub.get("properties", {})
        extra = sub.get("additionalProperties")
        for key, item in value.items():
            target = props.get(key, extra if isinstance(extra, dict) else None)
            if target is not None:
                value[key] = _floats(item, target, [*where, key], file, fix)
    elif isinstance(value, list):
        prefix = sub.get("prefixItems", [])
        for i, item in enumerate(value):
            target = prefix[i] if i < len(prefix) else sub.get("items")
            if isinstance(target, dict):
                value[i] = _floats(item, target, [*where, i], file, fix)
    return value


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array",
            dict: "an object"}.get(type(value), type(value).__name__) if not isinstance(value, dict) else "an object"


def _describe(where: list[Any], keyword: str, expected: Any, value: Any, sub: dict[str, Any]) -> tuple[list[Any], str]:
    """(JSON path, what is wrong) for a failed schema keyword, in hlcli's words (values escaped)."""
    if keyword == "required":
        missing = [k for k in expected if isinstance(value, dict) and k not in value]
        return [*where, missing[0] if missing else "?"], "is missing (a required key)"
    if keyword == "additionalProperties" and isinstance(value, dict):
        known = set(sub.get("properties", {}))
        extra = [k for k in value if k not in known]
        return [*where, extra[0] if extra else "?"], "is not a key of this document kind (a misspelt or foreign key?)"
    if keyword == "type":
        wanted = expected if isinstance(expected, list) else [expected]
        return where, f"is {_type_name(value)}, expected {' or '.join(wanted)}"
    if keyword in ("const", "enum"):
        options = [expected] if keyword == "const" else expected
        return where, f"is {shown(value)}, expected {' or '.join(shown(o) for o in options)}"
    if keyword in ("minimum", "maximum"):
        return where, f"is {shown(value, 24)}, {'below the minimum' if keyword == 'minimum' else 'above the maximum'} {expected}"
    if keyword == "uniqueItems":
        return where, "names an item twice"
    if keyword in ("minItems", "maxItems", "minProperties", "minLength"):
        return where, f"has the wrong length ({keyword} {expected})"
    if keyword == "pattern":
        return where, f"is {shown(value)}, which does not have the expected form ({expected})"
    if keyword == "propertyNames":
        return where, "has a key that is not an hlcli name (a layer or metric name)"
    return where, f"does not fit hlcli's schema ({keyword})"


def _fallback_errors(value: Any, sub: Any, where: list[Any], root: dict[str, Any]) -> Iterator[tuple[list[Any], str]]:
    """Without jsonschema: the errors of ``value`` against ``sub``, for the keywords hlcli's own
    schemas use (type, required, properties, additionalProperties, items, enum, const, minimum,
    maximum, min/maxItems, uniqueItems, minLength, minProperties, pattern, propertyNames, $ref, allOf, oneOf,
    not, if/then/else). Depth-first, first error first."""
    if sub is True or not isinstance(sub, dict):
        return
    if "$ref" in sub:
        target: Any = root
        for part in sub["$ref"].lstrip("#/").split("/"):
            target = target[part]
        yield from _fallback_errors(value, target, where, root)
    if "type" in sub and not _is_type(value, sub["type"]):
        yield _describe(where, "type", sub["type"], value, sub)
        return
    yield from _scalar_errors(value, sub, where)
    if isinstance(value, list):
        yield from _list_errors(value, sub, where, root)
    if isinstance(value, dict):
        yield from _object_errors(value, sub, where, root)
    yield from _combinator_errors(value, sub, where, root)


def _scalar_errors(value: Any, sub: dict[str, Any], where: list[Any]) -> Iterator[tuple[list[Any], str]]:
    """const, enum, minimum/maximum (numbers), minLength and pattern (strings)."""
    if "const" in sub and not _same(value, sub["const"]):
        yield _describe(where, "const", sub["const"], value, sub)
    if "enum" in sub and not any(_same(value, o) for o in sub["enum"]):
        yield _describe(where, "enum", sub["enum"], value, sub)
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if number and "minimum" in sub and value < sub["minimum"]:
        yield _describe(where, "minimum", sub["minimum"], value, sub)
    if number and "maximum" in sub and value > sub["maximum"]:
        yield _describe(where, "maximum", sub["maximum"], value, sub)
    if isinstance(value, str):
        if len(value) < sub.get("minLength", 0):
            yield _describe(where, "minLength", sub["minLength"], value, sub)
        if "pattern" in sub and not re.search(sub["pattern"], value):
            yield _describe(where, "pattern", sub["pattern"], value, sub)


def _list_errors(value: list[Any], sub: dict[str, Any], where: list[Any],
                 root: dict[str, Any]) -> Iterator[tuple[list[Any], str]]:
    """uniqueItems, minItems/maxItems, then each item against ``items``."""
    if sub.get("uniqueItems") and len({json.dumps(v, sort_keys=True) for v in value}) < len(value):
        yield _describe(where, "uniqueItems", True, value, sub)
    for keyword in ("minItems", "maxItems"):
        if keyword in sub and (len(value) < sub[keyword] if keyword == "minItems" else len(value) > sub[keyword]):
            yield _describe(where, keyword, sub[keyword], value, sub)
    if "items" in sub:
        for i, item in enumerate(value):
            yield from _fallback_errors(item, sub["items"], [*where, i], root)


def _object_errors(value: dict[str, Any], sub: dict[str, Any], where: list[Any],
                   root: dict[str, Any]) -> Iterator[tuple[list[Any], str]]:
    """required, minProperties, propertyNames, then each key against ``properties`` or
    ``additionalProperties``."""
    for key in sub.get("required", []):
        if key not in value:
            yield [*where, key], "is missing (a required key)"
    if len(value) < sub.get("minProperties", 0):
        yield _describe(where, "minProperties", sub["minProperties"], value, sub)
    props = sub.get("properties", {})
    for key, item in value.items():
        if "propertyNames" in sub and next(_fallback_errors(key, sub["propertyNames"], where, root), None):
            yield _describe(where, "propertyNames", None, value, sub)
        if key in props:
            yield from _fallback_errors(item, props[key], [*where, key], root)
        elif sub.get("additionalProperties") is False:
            yield [*where, key], "is not a key of this document kind (a misspelt or foreign key?)"
        elif isinstance(sub.get("additionalProperties"), dict):
            yield from _fallback_errors(item, sub["additionalProperties"], [*where, key], root)


def _combinator_errors(value: Any, sub: dict[str, Any], where: list[Any],
                       root: dict[str, Any]) -> Iterator[tuple[list[Any], str]]:
    """allOf, oneOf, not and if/then/else."""
    for part in sub.get("allOf", []):
        yield from _fallback_errors(value, part, where, root)
    if "oneOf" in sub:
        passing = [part for part in sub["oneOf"] if next(_fallback_errors(value, part, where, root), None) is None]
        if len(passing) != 1:
            first = [next(_fallback_errors(value, part, where, root), None) for part in sub["oneOf"]]
            yield next((f for f in first if f and len(f[0]) > len(where)), None) or (where, "does not fit hlcli's schema (oneOf)")
    if "not" in sub and next(_fallback_errors(value, sub["not"], where, root), None) is None:
        yield where, "holds what this document kind must not (e.g. pairs with summary_only)"
    if "if" in sub:
        branch = "then" if next(_fallback_errors(value, sub["if"], where, root), None) is None else "else"
        if branch in sub:
            yield from _fallback_errors(value, sub[branch], where, root)


def _is_type(value: Any, wanted: Any) -> bool:
    kinds = wanted if isinstance(wanted, list) else [wanted]
    checks = {"object": lambda v: isinstance(v, dict), "array": lambda v: isinstance(v, list),
              "string": lambda v: isinstance(v, str), "boolean": lambda v: isinstance(v, bool),
              "null": lambda v: v is None, "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
              "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)}
    return any(checks[k](value) for k in kinds)


def _same(a: Any, b: Any) -> bool:
    """JSON equality: ``true`` is not ``1``."""
    return type(a) is type(b) and a == b if isinstance(a, bool) or isinstance(b, bool) else a == b
