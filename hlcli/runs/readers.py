"""One reader per kind of document hlcli reads back (no torch import):

* :func:`read_score`: a run written by ``hlcli score --format json`` (``--baseline``, ``compare``,
  ``calibrate``, ``tradeoff``, ``table``, ``report``);
* :func:`read_part`: a part written by ``hlcli score --shard I/N -f json`` (``merge``, ``--resume``);
* :func:`read_maps_index`: ``DIR/maps.json`` of ``--save-maps DIR`` (``report --maps``).

Each reads the bytes and the JSON (:mod:`hlcli.runs.jsondoc`), refuses a newer schema version by
name, checks the kind's schema, converts every value the schema types as a number to a float
(:func:`~hlcli.runs.jsondoc.as_floats`: a score written as an integer reaches no consumer as one),
then the cross-field checks below, which a schema cannot state:
whatever passes is safe for every command downstream. A refusal is a
:class:`~hlcli.runs.jsondoc.DocumentError` (exit 2): ``<file>: <JSON path>: <what is wrong>: <fix>``.

Forward compatibility within a schema version: ``settings`` may hold keys this hlcli does not
know (they are kept, not read); per-pair metrics come from :func:`metric_names`, the one place
that says which numbers each pair must carry.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .jsondoc import DocumentError, as_floats, parse_json, read_json, schema_problem, shown
from .results import BASE_METRICS
from ..metrics.registry import is_set_metric, run_metrics
from .._version import __version__

SCHEMA_VERSION = 1  # of score documents (and their shard parts)
MAPS_VERSION = 1
FIX_SCORE = "give a file written by `hlcli score --format json` (with its pairs, not --summary-only)"
FIX_PART = "give the part written by `hlcli score --shard I/N -f json`, or rescore that shard"
FIX_MAPS = "give --maps the folder written by `hlcli score --save-maps DIR` for this run"
_METRIC_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def layer_names(settings: dict[str, Any]) -> list[str]:
    return [layer["name"] for layer in settings["layers"]]


def extra_metric_names(settings: dict[str, Any]) -> list[str]:
    """The opt-in metrics of the run (``settings.metrics``, absent in plain runs)."""
    return list(settings.get("metrics") or [])


def pair_extra_metric_names(settings: dict[str, Any]) -> list[str]:
    """The opt-in metrics each pair carries a number for (the set metrics, FID and KID, are in the
    summary's ``sets`` instead)."""
    return [m for m in extra_metric_names(settings) if not is_set_metric(m)]


def metric_names(settings: dict[str, Any]) -> list[str]:
    """Every number each pair of a run with these ``settings`` carries, by name: l1, the layers
    (under ``layers``), perceptual, hybrid, then the opt-in metrics (top-level keys of the pair),
    as :func:`hlcli.metrics.registry.run_metrics` orders them."""
    return run_metrics(layer_names(settings), extra_metric_names(settings))


# -- score documents ------------------------------------------------------------------------------

def read_score(path: str | Path, *, pairs_needed: bool = True) -> dict[str, Any]:
    """A checked score document from ``path`` (``pairs_needed``: refuse ``--summary-only``)."""
    return check_score(read_json(path, FIX_SCORE), path, pairs_needed=pairs_needed)


def read_part(path: str | Path) -> dict[str, Any]:
    """A checked shard part from ``path``: a score document with a consistent ``shard`` record."""
    doc = check_score(read_json(path, FIX_PART), path, fix=FIX_PART)
    if "shard" not in doc:
        raise DocumentError(path, "shard", "is missing: the document was not written by `hlcli score --shard I/N`",
                            FIX_PART)
    return doc


def score_from_bytes(data: bytes, name: str = "<bytes>") -> dict[str, Any]:
    """:func:`read_score` of bytes in memory (the fuzzer's entry point)."""
    return check_score(parse_json(data, name, FIX_SCORE), name)


def check_score(doc: Any, file: str | Path | None, *, pairs_needed: bool = True, fix: str = FIX_SCORE) -> dict[str, Any]:
    """``doc`` if it is a usable score document, else :class:`DocumentError`."""
    _check_version(doc, file, "schema_version", SCHEMA_VERSION, fix)
    problem = schema_problem(doc, "score")
    if problem is not None:
        raise DocumentError(file, problem[0], problem[1], fix)
    doc = as_floats(doc, "score", file, fix)
    settings = doc["settings"]
    _check_settings(settings, file, ["settings"], fix)
    if pairs_needed and doc.get("summary_only"):
        raise DocumentError(file, "summary_only", "is true: the run was written with --summary-only and has no pairs",
                            fix)
    pairs = doc.get("pairs", [])
    _check_pairs(pairs, settings, file, fix)
    _check_counts(doc, settings, file, fix)
    if "shard" in doc:
        _check_shard(doc, file, fix)
    return doc


def _check_version(doc: Any, file: Any, key: str, supported: int, fix: str) -> None:
    if not isinstance(doc, dict):
        raise DocumentError(file, None, f"holds {_kind(doc)}, not a JSON object", fix)
    version = doc.get(key)
    if isinstance(version, int) and not isinstance(version, bool) and version > supported:
        raise DocumentError(file, key, f"is {version}: the document was written by a newer hlcli; hlcli "
                            f"{__version__} reads {key} {supported}", "upgrade hlcli (pip install -U hlcli)")


def _kind(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")


def _check_settings(settings: dict[str, Any], file: Any, where: list[Any], fix: str) -> None:
    seen: set[str] = set()
    for i, name in enumerate(layer_names(settings)):
        if name in seen:
            raise DocumentError(file, [*where, "layers", i, "name"], f"names layer {name} a second time", fix)
        seen.add(name)
    metrics = settings.get("metrics")
    if metrics is None:
        return
    if not isinstance(metrics, list):
        raise DocumentError(file, [*where, "metrics"], f"is {_kind(metrics)}, expected an array of metric names", fix)
    for i, name in enumerate(metrics):
        if not isinstance(name, str) or not _METRIC_NAME.match(name) or name in seen or name in BASE_METRICS:
            raise DocumentError(file, [*where, "metrics", i], f"is {shown(name)}, not a new metric name", fix)
        seen.add(name)


def _check_key(key: str, file: Any, where: list[Any], fix: str) -> None:
    """A pair key is a relative path of its files, as hlcli wrote it: never absolute, no ``..``."""
    parts = key.split("/")
    if "\x00" in key or key.startswith("/") or "\\" in key or any(p in ("", ".", "..") for p in parts):
        raise DocumentError(file, where, f"is {shown(key)}, not a pair key (a relative path without . or .. parts)",
                            fix)


def _check_pairs(pairs: list[dict[str, Any]], settings: dict[str, Any], file: Any, fix: str) -> set[str]:
    layers = layer_names(settings)
    extra = pair_extra_metric_names(settings)
    keys: set[str] = set()
    for i, pair in enumerate(pairs):
        where = ["pairs", i]
        _check_key(pair["key"], file, [*where, "key"], fix)
        if pair["key"] in keys:
            raise DocumentError(file, [*where, "key"], f"is {shown(pair['key'])}, a key that an earlier pair has "
                                "(a duplicated pair)", fix)
        keys.add(pair["key"])
        for name in layers:
            if name not in pair["layers"]:
                raise DocumentError(file, [*where, "layers", name], "is missing: the settings name layers "
                                    f"{', '.join(layers)}, and every pair has a value for each", fix)
        for name in pair["layers"]:
            if name not in layers:
                raise DocumentError(file, [*where, "layers", name], "is not one of the settings' layers "
                                    f"({', '.join(layers)})", fix)
        for name in extra:
            value = pair.get(name)  # null is PSNR's +inf (identical images); the schema says where
            if name not in pair or isinstance(value, bool) or not isinstance(value, (int, float, type(None))):
                raise DocumentError(file, [*where, name], f"is {'missing' if name not in pair else _kind(value)}: "
                                    f"settings.metrics names {name}, and every pair has a number for it", fix)
    return keys


def _check_counts(doc: dict[str, Any], settings: dict[str, Any], file: Any, fix: str) -> None:
    summary = doc["summary"]
    missing = doc["missing"]
    counts = [("count", len(doc.get("pairs", [])) if "pairs" in doc else summary["count"], "pairs"),
              ("skipped", len(doc["skipped"]), "skipped"),
              ("missing", len(missing["restored_only"]) + len(missing["gt_only"]), "missing"),
              ("ignored", len(doc["ignored"]), "ignored")]
    for key, actual, what in counts:
        if summary[key] != actual:
            raise DocumentError(file, ["summary", key], f"is {summary[key]}, but the document lists {actual} {what}",
                                fix)
    names = set(metric_names(settings))
    for name in summary["metrics"]:
        if name not in names:
            raise DocumentError(file, ["summary", "metrics", name], "is not a metric of the run's settings", fix)
    for name in metric_names(settings):
        if name not in summary["metrics"]:
            raise DocumentError(file, ["summary", "metrics", name], "is missing (a metric of the run)", fix)


def _check_shard(doc: dict[str, Any], file: Any, fix: str) -> None:
    info = doc["shard"]
    start, stop = info["range"]
    if info["index"] >= info["count"]:
        raise DocumentError(file, ["shard", "index"], f"is {info['index']}, not below the shard count {info['count']}",
                            fix)
    if not start <= stop <= info["total_pairs"]:
        raise DocumentError(file, ["shard", "range"], f"is [{start}, {stop}), not a range within the "
                            f"{info['total_pairs']} pairs of the plan", fix)
    found = len(doc.get("pairs", [])) + len(doc["skipped"])
    if "pairs" in doc and found != stop - start:
        raise DocumentError(file, ["shard", "range"], f"is [{start}, {stop}) ({stop - start} pairs), but the part "
                            f"holds {found} (pairs and skipped)", fix)


# -- maps index -----------------------------------------------------------------------------------

MAPS_FILE = "maps.json"  # the index of ``--save-maps DIR`` (hlcli.runs.maps writes it)

def read_maps_index(directory: str | Path) -> dict[str, Any]:
    """The checked ``DIR/maps.json`` of ``hlcli score --save-maps DIR``."""
    path = Path(directory) / MAPS_FILE
    if not path.exists():
        raise DocumentError(path, None, "does not exist: the folder has no maps index", FIX_MAPS)
    return check_maps_index(read_json(path, FIX_MAPS), path)


def check_maps_index(doc: Any, file: Any) -> dict[str, Any]:
    _check_version(doc, file, "version", MAPS_VERSION, FIX_MAPS)
    problem = schema_problem(doc, "maps")
    if problem is not None:
        raise DocumentError(file, problem[0], problem[1], FIX_MAPS)
    doc = as_floats(doc, "maps", file, FIX_MAPS)
    _check_settings(doc["settings"], file, ["settings"], FIX_MAPS)
    layers = [layer["name"] for layer in doc["layers"]]
    if layers != layer_names(doc["settings"]):
        raise DocumentError(file, "layers", f"are {', '.join(layers)}, the settings' are "
                            f"{', '.join(layer_names(doc['settings']))}", FIX_MAPS)
    kinds = ["l1", *layers, "perceptual"]
    seen: set[str] = set()
    for i, key in enumerate(doc["keys"]):
        _check_key(key, file, ["keys", i], FIX_MAPS)
        if key in seen:
            raise DocumentError(file, ["keys", i], f"is {shown(key)} a second time", FIX_MAPS)
        seen.add(key)
    if seen != set(doc["pairs"]):
        odd = sorted(seen ^ set(doc["pairs"]))[0]
        raise DocumentError(file, ["pairs", odd] if odd in doc["pairs"] else "keys",
                            f"{'is not listed in keys' if odd in doc['pairs'] else 'lists a key with no pairs entry'}",
                            FIX_MAPS)
    for where, ranges in [(["range"], doc["range"])] + [(["pairs", k, "range"], v.get("range"))
                                                        for k, v in doc["pairs"].items() if "range" in v]:
        for kind in kinds:
            if kind not in ranges:
                raise DocumentError(file, [*where, kind], "is missing (a kind of map of the run)", FIX_MAPS)
        for kind, (low, high) in ranges.items():
            if low > high:
                raise DocumentError(file, [*where, kind], f"is [{low}, {high}], a range that ends before it starts",
                                    FIX_MAPS)
    return doc
