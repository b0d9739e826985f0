"""``hlcli table A.json B.json ...``: the results table of a paper (no torch import).

One row per run, one column per (group, metric) and one per metric over all pairs; a value is
the mean over the pairs present in every run (the others are listed), in float64
(``math.fsum``). Groups come from the pair keys (:func:`hlcli.groups.group_of`: ``top`` is the
top-level folder, e.g. the dataset of ``Set5/baby``). In each column the lowest value is the
best (every metric is lower-is-better); equal lowest values are all best. The runs must have
been made with the same settings (λ included: the hybrid depends on it).
"""

from __future__ import annotations

import math
from typing import Any

from . import __version__
from .documents import comparable_settings, common_pairs, load_runs, pair_value
from .errors import InputError
from .groups import GROUP_MODES, group_of

SCHEMA_VERSION = 1
DEFAULT_METRICS = ("hybrid", "l1", "perceptual")


def _metrics(metrics: Any, settings: dict[str, Any]) -> list[str]:
    names = [m.strip() for m in (metrics.split(",") if isinstance(metrics, str) else metrics) if m.strip()]
    allowed = ["l1", "perceptual", "hybrid", *(layer["name"] for layer in settings["layers"])]
    unknown = [m for m in names if m not in allowed]
    if unknown or not names:
        raise InputError(f"unknown metric {', '.join(unknown) or '(none given)'}", None,
                         f"use one or more of {', '.join(allowed)}, comma-separated")
    return list(dict.fromkeys(names))


def _columns(keys: list[str], group_by: str, metrics: list[str]) -> list[dict[str, Any]]:
    groups: dict[str, list[str]] = {}
    for k in keys:
        g = group_of(k, group_by)
        if g is not None:
            groups.setdefault(g, []).append(k)
    sets = [(g, groups[g]) for g in sorted(groups)] + [(None, keys)]
    return [{"group": g, "metric": m, "pairs": len(ks), "keys": ks} for g, ks in sets for m in metrics]


def paper_table(runs: Any, *, names: Any = None, metrics: Any = DEFAULT_METRICS, group_by: str = "none",
                allow_settings_mismatch: bool = False) -> dict[str, Any]:
    """The results table of a paper from stored runs: one row per run, one column per (group,
    metric) plus each metric's mean over all pairs, with the best (lowest) run of each column.
    ``runs``: :class:`~hlcli.Run` objects, score documents or their paths; ``metrics``: names
    (``"hybrid,l1"`` or a list) among l1, perceptual, hybrid and the runs' layers; ``group_by``:
    ``none``, ``top`` or ``dir``. Returns the ``table`` JSON document
    (hlcli/schema/table.schema.json); :mod:`hlcli.render.papertable` writes it as Markdown,
    LaTeX (booktabs), CSV or a terminal table.

    >>> t = hlcli.paper_table(["ours.json", "baseline.json"], group_by="top")  # doctest: +SKIP
    >>> [(c["group"], c["metric"], c["best"]) for c in t["columns"]][:2]      # doctest: +SKIP
    [('Set5', 'hybrid', ['ours']), ('Set5', 'l1', ['baseline'])]
    """
    if group_by not in GROUP_MODES:
        raise InputError(f"unknown --group-by {group_by!r}", None, f"use one of {', '.join(GROUP_MODES)}")
    stored, differences = load_runs(runs, names, allow_settings_mismatch=allow_settings_mismatch)
    keys, only = common_pairs(stored)
    if not keys:
        raise InputError("the runs have no pair in common", stored[0].path,
                         "give runs scored on the same ground truth (pairs are matched by key)")
    metrics = _metrics(metrics, stored[0].doc["settings"])
    columns = _columns(keys, group_by, metrics)
    by_key = [{p["key"]: p for p in s.doc["pairs"]} for s in stored]
    values = [[math.fsum(pair_value(pairs[k], c["metric"]) for k in c["keys"]) / len(c["keys"]) for c in columns]
              for pairs in by_key]
    for j, c in enumerate(columns):
        low = min(row[j] for row in values)
        c["best"] = [s.name for s, row in zip(stored, values) if row[j] == low]
        del c["keys"]
    first = comparable_settings(stored[0].doc["settings"])
    return {
        "schema_version": SCHEMA_VERSION, "tool": "hlcli", "kind": "table", "hlcli_version": __version__,
        "settings": {"lambda": first["lambda"], "layers": [{"name": n, "weight": w} for n, w in first["layers"]],
                     "weights_sha256": first["weights sha256"], "precision": first["precision"]},
        "settings_differences": differences,
        "group_by": group_by, "metrics": metrics,
        "pairs": {"common": len(keys), "only_in": {n: k for n, k in only.items() if k}},
        "columns": columns,
        "rows": [{"name": s.name, "path": s.path, "values": row} for s, row in zip(stored, values)],
    }
