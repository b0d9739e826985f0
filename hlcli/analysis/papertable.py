"""``hlcli table A.json B.json ...``: the results table of a paper (no torch import).

One row per run, one column per (group, metric) and one per metric over all pairs; a value is
the mean over the pairs present in every run (the others are listed), in float64
(``math.fsum``). Groups come from the pair keys (:func:`hlcli.inputs.groups.group_of`: ``top`` is the
top-level folder, e.g. the dataset of ``Set5/baby``). In each column the best value follows the
metric's direction (:mod:`hlcli.metrics.registry`: the lowest L1, the highest PSNR); equal best values
are all best. Without a choice of metrics, the columns are :data:`DEFAULT_METRICS` and every
extra metric (``--metrics`` of ``hlcli score``) that every run scored. The runs must have
been made with the same settings (λ included: the hybrid depends on it).

A set metric (FID, KID: one value per set, not per pair) is read from each run's stored
``summary.sets`` (the overall column) or ``summary.groups.<group>.sets``, never recomputed: it is
over the run's own pairs (the pairs not in every run included), its groups exist only for the
``--group-by`` the run was scored with, and its small-set notes go to ``set_notes``.
"""

from __future__ import annotations

import math
from typing import Any

from .._version import __version__
from ..runs.documents import (comparable_settings, common_pairs, fid_differences, load_runs, mismatch_error,
                               pair_value, unofficial_by_run)
from ..runs.readers import extra_metric_names, metric_names as run_metric_names
from ..errors import InputError
from ..metrics.registry import EXTRA, better, get, set_metrics
from ..inputs.groups import GROUP_MODES, group_of

SCHEMA_VERSION = 1
DEFAULT_METRICS = ("hybrid", "l1", "perceptual")


AVERAGES = ("pairs", "groups")


def _columns_of(doc: dict[str, Any]) -> list[str]:
    """Every metric a run can give a table column: its per-pair metrics, then its set metrics
    (FID, KID: the stored values of its summary's ``sets``)."""
    return [*run_metric_names(doc["settings"]), *set_metrics(extra_metric_names(doc["settings"]))]


def _set_refusal(docs: list[dict[str, Any]], group_by: str) -> tuple[int, str] | None:
    """Why the set metrics cannot have columns per group of ``group_by`` (None when they can):
    a set value is stored per group only for the grouping the run was scored with, and never
    recomputed. ``(index of the first run at fault, its grouping)``."""
    if group_by == "none":
        return None
    for i, d in enumerate(docs):
        scored = d["settings"].get("group_by", "none")
        if scored != group_by:
            return i, scored
    return None


def default_metrics(docs: list[dict[str, Any]], group_by: str = "none") -> list[str]:
    """The columns without ``--metrics``: :data:`DEFAULT_METRICS`, then each extra metric that
    every run scored, in :data:`hlcli.metrics.registry.EXTRA` order (as a sweep's table shows them);
    a set metric (FID, KID) only where every run has its values for ``group_by``'s groups (the
    runs were scored with the same ``--group-by``)."""
    sets_ok = _set_refusal(docs, group_by) is None
    return [*DEFAULT_METRICS, *(m for m in EXTRA if all(m in _columns_of(d) for d in docs)
                                 and (sets_ok or not get(m).is_set))]


def _metrics(metrics: Any, docs: list[dict[str, Any]], group_by: str = "none",
             paths: list[str | None] | None = None) -> list[str]:
    """The metrics asked for, each one scored by every run (extra metrics need --metrics);
    ``None``: :func:`default_metrics`. A set metric per group needs runs scored with that
    ``--group-by``."""
    if metrics is None:
        return default_metrics(docs, group_by)
    names = [m.strip() for m in (metrics.split(",") if isinstance(metrics, str) else metrics) if m.strip()]
    allowed = [m for m in _columns_of(docs[0]) if all(m in _columns_of(d) for d in docs[1:])]
    refusal = _set_refusal(docs, group_by)
    sets = [m for m in names if m in allowed and get(m).is_set]
    if sets and refusal is not None:
        i, scored = refusal
        raise InputError(f"{', '.join(sets)} per group: the run was scored with --group-by {scored}, and a set value "
                         "is stored only for the groups it was scored with (it is never recomputed)",
                         (paths or [None] * len(docs))[i],
                         f"score every run with --group-by {group_by}, or tabulate {', '.join(sets)} "
                         "without --group-by")
    unknown = [m for m in names if m not in allowed]
    if unknown or not names:
        extra = [m for m in unknown if m in EXTRA]
        fix = (f"score every run with --metrics {','.join(extra)}" if extra
               else f"use one or more of {', '.join(allowed)}, comma-separated")
        what = "not scored by every run" if extra else "unknown metric"
        raise InputError(f"{what}: {', '.join(unknown) or '(none given)'}", None, fix)
    return list(dict.fromkeys(names))


def _mean(values: list[float]) -> float | None:
    """The mean of the finite values (+inf PSNR of identical images left out, as in a run's
    summary); None when there is none."""
    finite = [v for v in values if math.isfinite(v)]
    return math.fsum(finite) / len(finite) if finite else None


def _set_value(summary: dict[str, Any], column: dict[str, Any], groups: list[str] | None) -> float | None:
    """A run's value of a set metric (FID, KID) in ``column``, as stored in its document (never
    recomputed): the group's ``sets``, the run's, or, for the overall column with ``--average
    groups``, the mean of the groups' values."""
    metric = column["metric"]
    if column["group"] is None and groups is None:
        return (summary.get("sets") or {}).get(metric)
    if column["group"] is None:
        return _mean([v for v in (_set_value(summary, {"group": g, "metric": metric}, None) for g in groups or [])
                      if v is not None])
    return ((summary.get("groups") or {}).get(column["group"], {}).get("sets") or {}).get(metric)


def _value(pairs: dict[str, Any], column: dict[str, Any], group_keys: dict[str, list[str]] | None,
           summary: dict[str, Any] | None = None) -> float | None:
    """A run's value in ``column``: the mean over the column's pairs, or, for the overall column
    with ``--average groups``, the mean of the per-group means (BasicSR's REDS4 / Vid4 clips);
    a set metric's stored value (:func:`_set_value`)."""
    if get(column["metric"]).is_set:
        return _set_value(summary or {}, column, None if group_keys is None else list(group_keys))
    if group_keys is not None and column["group"] is None:
        means = [_mean([pair_value(pairs[k], column["metric"]) for k in ks]) for ks in group_keys.values()]
        return _mean([m for m in means if m is not None])
    return _mean([pair_value(pairs[k], column["metric"]) for k in column["keys"]])


def _columns(keys: list[str], group_by: str, metrics: list[str]) -> list[dict[str, Any]]:
    groups: dict[str, list[str]] = {}
    for k in keys:
        g = group_of(k, group_by)
        if g is not None:
            groups.setdefault(g, []).append(k)
    sets = [(g, groups[g]) for g in sorted(groups)] + [(None, keys)]
    return [{"group": g, "metric": m, "pairs": len(ks), "keys": ks} for g, ks in sets for m in metrics]


def _fid_differences(stored: list[Any]) -> list[str]:
    """How each run's FID/KID samples and features differ from the first run's
    (:func:`hlcli.runs.documents.fid_differences`)."""
    first = stored[0]
    return [d for s in stored[1:] for d in fid_differences(first.doc["settings"], s.doc["settings"], (first.name, s.name))]


def _check_set_settings(stored: list[Any], differences: list[str], allow_settings_mismatch: bool) -> list[str]:
    """``differences`` and the runs' FID/KID differences; an error naming the first run that
    differs unless ``allow_settings_mismatch``."""
    fid = _fid_differences(stored)
    if fid and not allow_settings_mismatch:
        raise mismatch_error(fid, next(s.path for s in stored[1:] if _fid_differences([stored[0], s])))
    return [*differences, *fid]


def _set_notes(stored: list[Any], metrics: list[str], columns: list[dict[str, Any]]) -> dict[str, Any]:
    """``set_notes`` (absent without set metrics): each run's stored small-set notes, for the sets
    the table shows (``run: group: note``)."""
    if not set_metrics(metrics):
        return {}
    groups = list(dict.fromkeys(c["group"] for c in columns))
    notes = []
    for s in stored:
        summary = s.doc.get("summary") or {}
        for g in groups:
            record = summary.get("sets") if g is None else ((summary.get("groups") or {}).get(g) or {}).get("sets")
            if record and record.get("note"):
                notes.append(f"{s.name}: {'all pairs' if g is None else g}: {record['note']}")
    return {"set_notes": notes}


def _describe_columns(columns: list[dict[str, Any]], values: list[list[float | None]], names: list[str],
                      average: str) -> None:
    """Each column as the document gives it: its best runs (by the metric's direction), the
    direction, ``scope`` for a set metric, ``average`` for an overall column of group means; its
    pair keys dropped."""
    for j, c in enumerate(columns):
        defined = [row[j] for row in values if row[j] is not None]
        top = better(c["metric"], defined) if defined else None
        c["best"] = [name for name, row in zip(names, values) if defined and row[j] == top]
        c["higher_is_better"] = get(c["metric"]).higher_is_better
        if get(c["metric"]).is_set:
            c["scope"] = "set"
        if c["group"] is None and average == "groups":
            c["average"] = "groups"
        del c["keys"]


def paper_table(runs: Any, *, names: Any = None, metrics: Any = None, group_by: str = "none",
                allow_settings_mismatch: bool = False, average: str = "pairs") -> dict[str, Any]:
    """The results table of a paper from stored runs: one row per run, one column per (group,
    metric) plus each metric's mean over all pairs, with the best (lowest) run of each column.
    ``runs``: :class:`~hlcli.Run` objects, score documents or their paths; ``metrics``: names
    (``"hybrid,l1"`` or a list) among l1, perceptual, hybrid, the runs' layers and the extra
    metrics every run scored (default None: hybrid, l1, perceptual and those extras); ``group_by``:
    ``none``, ``top`` or ``dir``; ``average``: the overall column is the mean over all ``pairs``
    (default) or, with groups, the mean of the per-group means (``groups``: BasicSR's convention
    for video clips). The best of a column follows the metric's direction (highest PSNR, lowest
    L1). Returns the ``table`` JSON document
    (hlcli/schema/table.schema.json); :mod:`hlcli.render.papertable` writes it as Markdown,
    LaTeX (booktabs), CSV or a terminal table.

    >>> t = hlcli.paper_table(["ours.json", "baseline.json"], group_by="top")  # doctest: +SKIP
    >>> [(c["group"], c["metric"], c["best"]) for c in t["columns"]][:2]      # doctest: +SKIP
    [('Set5', 'hybrid', ['ours']), ('Set5', 'l1', ['baseline'])]
    """
    if group_by not in GROUP_MODES:
        raise InputError(f"unknown --group-by {group_by!r}", None, f"use one of {', '.join(GROUP_MODES)}")
    if average not in AVERAGES:
        raise InputError(f"unknown --average {average!r}", None, f"use one of {', '.join(AVERAGES)}")
    if average == "groups" and group_by == "none":
        raise InputError("--average groups needs groups", None,
                         "add --group-by dir (one folder per clip) or --group-by top")
    stored, differences = load_runs(runs, names, allow_settings_mismatch=allow_settings_mismatch)
    keys, only = common_pairs(stored)
    if not keys:
        raise InputError("the runs have no pair in common", stored[0].path,
                         "give runs scored on the same ground truth (pairs are matched by key)")
    metrics = _metrics(metrics, [s.doc for s in stored], group_by, [s.path for s in stored])
    if set_metrics(metrics):
        differences = _check_set_settings(stored, differences, allow_settings_mismatch)
    columns = _columns(keys, group_by, metrics)
    group_keys = None
    if average == "groups":
        group_keys = {c["group"]: c["keys"] for c in columns if c["group"] is not None}
    by_key = [{p["key"]: p for p in s.doc["pairs"]} for s in stored]
    values = [[_value(pairs, c, group_keys, s.doc.get("summary")) for c in columns] for s, pairs in zip(stored, by_key)]
    _describe_columns(columns, values, [s.name for s in stored], average)
    first = comparable_settings(stored[0].doc["settings"])
    return {
        "schema_version": SCHEMA_VERSION, "tool": "hlcli", "kind": "table", "hlcli_version": __version__,
        "settings": {"lambda": first["lambda"], "layers": [{"name": n, "weight": w} for n, w in first["layers"]],
                     "weights_sha256": first["weights sha256"], "precision": first["precision"]},
        "settings_differences": differences,
        "group_by": group_by, "metrics": metrics, "average": average,
        "pairs": {"common": len(keys), "only_in": {n: k for n, k in only.items() if k}},
        "columns": columns,
        "rows": [{"name": s.name, "path": s.path, "values": row} for s, row in zip(stored, values)],
        **_set_notes(stored, metrics, columns),
        **unofficial_by_run([(s.name, s.doc["settings"]) for s in stored]),
    }
