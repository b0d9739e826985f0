"""The perception–distortion plane: ``hlcli tradeoff RUN.json ... --x METRIC --y METRIC``
(no torch import).

Each run is a point: for a pair metric (L1, PSNR, LPIPS, ...) its mean over the pairs every run
scored (``math.fsum``; PSNR's +inf values left out, as in the summary), for a set metric (FID, KID)
the run's own value (``summary.sets``, over the run's pairs). Each axis follows its metric's
direction (the registry's ``higher_is_better``): run a *dominates* run b when a is at least as good
on both axes and better on one; the Pareto front is the runs no run dominates (Blau & Michaeli,
CVPR 2018: distortion on one axis, perception on the other).
"""

from __future__ import annotations

import math
from typing import Any

from .._version import __version__
from ..errors import InputError
from ..metrics import registry
from ..runs.documents import common_pairs, load_runs, pair_value, unofficial_by_run
from ..runs.readers import metric_names

SCHEMA_VERSION = 1


def dominates(a: tuple[float, float], b: tuple[float, float], higher: tuple[bool, bool]) -> bool:
    """Whether point ``a`` dominates ``b``, each axis in its own direction.

    >>> dominates((30.0, 10.0), (28.0, 12.0), (True, False))   # higher PSNR, lower FID
    True
    >>> dominates((30.0, 12.0), (28.0, 10.0), (True, False))
    False
    """
    ok = all((a[i] >= b[i]) if higher[i] else (a[i] <= b[i]) for i in (0, 1))
    return ok and a != b


def pareto_flags(points: list[tuple[float, float]], higher: tuple[bool, bool]) -> list[bool]:
    """Whether each point is on the Pareto front (equal points both stay on it).

    >>> pareto_flags([(1.0, 2.0), (2.0, 1.0), (2.0, 2.0)], (False, False))
    [True, True, False]
    """
    return [not any(dominates(q, p, higher) for q in points) for p in points]


def axis(metric: str) -> dict[str, Any]:
    m = registry.get(metric)
    return {"metric": metric, "label": m.label, "unit": m.unit, "higher_is_better": m.higher_is_better,
            "scope": m.scope, "kind": "perception" if m.is_set else "distortion"}


def _value(doc: dict[str, Any], metric: str, keys: list[str], where: Any) -> float:
    if registry.get(metric).is_set:
        sets = (doc.get("summary") or {}).get("sets") or {}
        value = sets.get(metric)
        if value is None:
            raise InputError(f"the run has no {metric} value", where,
                             f"score it with --metrics {metric} (a set needs at least 2 pairs)")
        return float(value)
    if metric not in metric_names(doc["settings"]):
        raise InputError(f"the run has no {metric} scores", where, f"score it with --metrics {metric}")
    by_key = {p["key"]: p for p in doc["pairs"]}
    values = [v for v in (pair_value(by_key[k], metric) for k in keys) if math.isfinite(v)]
    if not values:
        raise InputError(f"no finite {metric} value over the common pairs", where, "use another metric")
    return math.fsum(values) / len(values)


def plane_runs(runs: Any, x: str, y: str, *, names: Any = None, allow_settings_mismatch: bool = False) -> dict[str, Any]:
    """The runs on the plane of metrics ``x`` and ``y``: each run's point, whether it is on the
    Pareto front, and which runs it dominates. ``runs``: score documents or their paths. The
    document's shape is hlcli/schema/plane.schema.json."""
    for m in (x, y):
        if m not in (*registry.BASE, *registry.EXTRA) and not registry.get(m).definition.startswith("mean squared"):
            raise InputError(f"unknown metric {m!r}", None, f"use one of {', '.join((*registry.BASE, *registry.EXTRA))} or a layer")
    stored, differences = load_runs(runs, names, ignore=("lambda",), allow_settings_mismatch=allow_settings_mismatch)
    keys, only = common_pairs(stored)
    if not keys:
        raise InputError("the runs have no pair in common", stored[0].path,
                         "give runs scored on the same ground truth (pairs are matched by key)")
    points = [(_value(s.doc, x, keys, s.path), _value(s.doc, y, keys, s.path)) for s in stored]
    higher = (registry.get(x).higher_is_better, registry.get(y).higher_is_better)
    flags = pareto_flags(points, higher)
    names_ = [s.name for s in stored]
    set_axes = [m for m in (x, y) if registry.get(m).is_set]
    return {
        "schema_version": SCHEMA_VERSION, "tool": "hlcli", "kind": "plane", "hlcli_version": __version__,
        "x": axis(x), "y": axis(y), "settings_differences": differences,
        "runs": [{"name": s.name, "path": s.path, "lambda": s.doc["settings"].get("lambda"), "x": p[0], "y": p[1],
                  "pareto": f, "dominates": [names_[j] for j, q in enumerate(points) if j != i and dominates(p, q, higher)]}
                 for i, (s, p, f) in enumerate(zip(stored, points, flags))],
        "pairs": {"common": len(keys), "only_in": {n: k for n, k in only.items() if k}},
        "note": (f"{', '.join(set_axes)}: each run's value over its own pairs" if set_axes and any(only.values())
                 else None),
        **unofficial_by_run([(s.name, s.doc["settings"]) for s in stored]),
    }
