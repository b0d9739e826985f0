"""``hlcli table A.json B.json ...``: the results table of a paper (no torch import).

One row per run, one column per (group, metric) and one per metric over all pairs; a value is
the mean over the pairs present in every run (the others are listed), in float64
(``math.fsum``). Groups come from the pair keys (:func:`hlcli.inputs.groups.group_of`: ``top`` is the
top-level folder, e.g. the dataset of ``Set5/baby``). In each column the best value follows the
metric's direction (:mod:`hlcli.metrics.registry`: the lowest L1, the highest PSNR); equal best values
are all best. Without a choice of metrics, the columns are :data:`DEFAULT_METRICS` and every
extra metric (``--metrics`` of ``hlcli score``) that every run scored. The runs must have
been made with the same settings (λ included: the hybrid depends on it).
"""

from __future__ import annotations

import math
from typing import Any

from .._version import __version__
from ..runs.documents import comparable_settings, common_pairs, load_runs, pair_value, unofficial_by_run
from ..runs.readers import metric_names as run_metric_names
from ..errors import InputError
from ..metrics.registry import EXTRA, better, get
from ..inputs.groups import GROUP_MODES, group_of

SCHEMA_VERSION = 1
DEFAULT_METRICS = ("hybrid", "l1", "perceptual")


AVERAGES = ("pairs", "groups")


def default_metrics(docs: list[dict[str, Any]]) -> list[str]:
    """The columns without ``--metrics``: :data:`DEFAULT_METRICS`, then each extra metric that
    every run scored, in :data:`hlcli.metrics.registry.EXTRA` order (as a sweep's table shows them)."""
    return [*DEFAULT_METRICS, *(m for m in EXTRA if all(m in run_metric_names(d["settings"]) for d in docs))]


def _metrics(metrics: Any, docs: list[dict[str, Any]]) -> list[str]:
    """The metrics asked for, each one scored by every run (extra metrics need --metrics);
    ``None``: :func:`default_metrics`."""
    if metrics is None:
        return default_metrics(docs)
    names = [m.strip() for m in (metrics.split(",") if isinstance(metrics, str) else metrics) if m.strip()]
    allowed = [m for m in run_metric_names(docs[0]["settings"]) if all(m in run_metric_names(d["settings"]) for d in docs[1:])]
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


def _value(pairs: dict[str, Any], column: dict[str, Any], group_keys: dict[str, list[str]] | None) -> float | None:
    """A run's value in ``column``: the mean over the column's pairs, or, for the overall column
    with ``--average groups``, the mean of the per-group means (BasicSR's REDS4 / Vid4 clips)."""
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
    metrics = _metrics(metrics, [s.doc for s in stored])
    columns = _columns(keys, group_by, metrics)
    group_keys = None
    if average == "groups":
        group_keys = {c["group"]: c["keys"] for c in columns if c["group"] is not None}
    by_key = [{p["key"]: p for p in s.doc["pairs"]} for s in stored]
    values = [[_value(pairs, c, group_keys) for c in columns] for pairs in by_key]
    for j, c in enumerate(columns):
        defined = [row[j] for row in values if row[j] is not None]
        top = better(c["metric"], defined) if defined else None
        c["best"] = [s.name for s, row in zip(stored, values) if defined and row[j] == top]
        c["higher_is_better"] = get(c["metric"]).higher_is_better
        if c["group"] is None and average == "groups":
            c["average"] = "groups"
        del c["keys"]
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
        **unofficial_by_run([(s.name, s.doc["settings"]) for s in stored]),
    }
