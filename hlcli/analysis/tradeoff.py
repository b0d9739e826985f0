"""``hlcli tradeoff A.json B.json ...``: which of several runs (models, checkpoints) is best for
which λ, and which are on the Pareto front of mean L1 and mean perceptual (no torch import).

Runs must share the settings that change the numbers except λ (the variable here). Over the
pairs present in every run, run i has mean L1 ``a_i`` and mean perceptual ``p_i`` (float64,
``math.fsum``); its mean hybrid at λ is the line ``a_i + λ·p_i``.

* **Pareto front**: no other run has ``a_j <= a_i`` and ``p_j <= p_i`` with one of them strict.
* **Best λ interval**: the lower envelope of the lines for λ >= 0, walked from λ = 0: the run
  with the lowest ``a`` (then the lowest ``p``) starts, and at each step the next run is the one
  whose line crosses the current one first, ``λ = (a_j − a_i) / (p_i − p_j)`` for ``p_j < p_i``.
  Intervals are half-open ``[lo, hi)``: at a crossing the run that is best just above it is
  credited; ``hi`` is None when unbounded; runs never best have None. Runs with equal means tie
  everywhere: the first by name takes the interval and the tie is reported.
"""

from __future__ import annotations

import math
from typing import Any

from .._version import __version__
from ..runs.documents import comparable_settings, common_pairs, load_runs, unofficial_by_run
from ..errors import InputError

SCHEMA_VERSION = 1
INTERVALS = ("[lo, hi): the run has the lowest mean hybrid for lo <= λ < hi (hi null: no upper end); "
             "at a crossing the run best just above it is credited; runs with equal means tie "
             "everywhere and the tie is broken by name")


def pareto_flags(points: list[tuple[float, float]]) -> list[bool]:
    """For points ``(l1, perceptual)``: whether each is on the Pareto front (lower is better).

    >>> pareto_flags([(1.0, 2.0), (2.0, 1.0), (2.0, 2.0), (1.0, 2.0)])
    [True, True, False, True]
    """
    return [not any(b[0] <= a[0] and b[1] <= a[1] and (b[0] < a[0] or b[1] < a[1]) for b in points)
            for a in points]


def best_intervals(points: list[tuple[float, float]], names: list[str]) -> tuple[list[Any], list[list[str]]]:
    """The ``[lo, hi]`` interval of λ >= 0 on which each line ``l1 + λ·perceptual`` is the lowest
    (``hi`` None when unbounded; None when never lowest), and the groups of tied runs (equal
    points; the first by name represents them).

    >>> best_intervals([(1.0, 0.0), (0.0, 1.0), (2.0, 2.0)], ["a", "b", "c"])
    ([[1.0, None], [0.0, 1.0], None], [])
    """
    order = sorted(range(len(points)), key=lambda i: (points[i], names[i]))
    reps: list[int] = []
    ties: list[list[str]] = []
    for i in order:  # equal points are adjacent in this order
        if reps and points[reps[-1]] == points[i]:
            if ties and ties[-1][0] == names[reps[-1]]:
                ties[-1].append(names[i])
            else:
                ties.append([names[reps[-1]], names[i]])
        else:
            reps.append(i)
    intervals: list[Any] = [None] * len(points)
    current, lo = reps[0], 0.0  # lowest l1, then lowest perceptual, then first name
    while True:
        a, p = points[current]
        crossings = [(max((points[j][0] - a) / (p - points[j][1]), lo), points[j][1], names[j], j)
                     for j in reps if points[j][1] < p]
        if not crossings:
            intervals[current] = [lo, None]
            return intervals, ties
        at, _, _, nxt = min(crossings)  # first crossing; at equal λ the flattest line wins
        if at > lo:
            intervals[current] = [lo, at]
        current, lo = nxt, at


def _means(doc: dict[str, Any], keys: list[str]) -> tuple[float, float]:
    by_key = {p["key"]: p for p in doc["pairs"]}
    return (math.fsum(by_key[k]["l1"] for k in keys) / len(keys),
            math.fsum(by_key[k]["perceptual"] for k in keys) / len(keys))


def _best_per_pair(values: list[list[tuple[float, float]]], names: list[str], lam: float) -> tuple[list[int], int]:
    """Per run, how many pairs it is best on at ``lam`` (ties by name), and how many pairs tie."""
    wins, tied = [0] * len(names), 0
    for k in range(len(values[0])):
        scores = [(values[i][k][0] + lam * values[i][k][1], names[i], i) for i in range(len(names))]
        best = min(scores)
        wins[best[2]] += 1
        tied += sum(s[0] == best[0] for s in scores) > 1
    return wins, tied


def _per_pair(stored: list[Any], keys: list[str], intervals: list[Any], lambdas: list[float]) -> list[dict[str, Any]]:
    names = [s.name for s in stored]
    values = []
    for s in stored:
        by_key = {p["key"]: p for p in s.doc["pairs"]}
        values.append([(by_key[k]["l1"], by_key[k]["perceptual"]) for k in keys])
    points: dict[float, list[str]] = {}
    for lam in lambdas:
        points.setdefault(lam, []).append("the runs' λ" if len(set(lambdas)) == 1 else "a run's λ")
    for name, iv in zip(names, intervals):
        for end, label in zip(iv or (), ("interval starts", "interval ends")):
            if end is not None:
                points.setdefault(end, []).append(f"{name}: {label}")
    out = []
    for lam in sorted(points):
        wins, tied = _best_per_pair(values, names, lam)
        out.append({"lambda": lam, "why": sorted(set(points[lam])), "ties": tied,
                    "best": {n: w / len(keys) for n, w in zip(names, wins)}})
    return out


def tradeoff_runs(runs: Any, *, names: Any = None, lam: float | None = None, per_pair: bool = False,
                  allow_settings_mismatch: bool = False) -> dict[str, Any]:
    """The λ trade-off between runs scored on the same ground truth: per run, mean L1 and mean
    perceptual over the common pairs, whether it is on the Pareto front, and the interval of λ
    on which it has the lowest mean hybrid. ``runs``: :class:`~hlcli.Run` objects, score
    documents or their paths; ``names`` default to the file stems. ``lam`` (default: the runs'
    own λ when they agree) is the λ at which the mean hybrids are given. Returns the
    ``tradeoff`` JSON document (hlcli/schema/tradeoff.schema.json).

    >>> runs = ["sharp.json", "smooth.json"]          # written by `hlcli score -f json`
    >>> t = hlcli.tradeoff_runs(runs)                # doctest: +SKIP
    >>> [(r["name"], r["pareto"], r["best_lambda"]) for r in t["runs"]]  # doctest: +SKIP
    [('sharp', True, [0.0123, None]), ('smooth', True, [0.0, 0.0123])]
    """
    if lam is not None and not (math.isfinite(lam) and lam >= 0):
        raise InputError(f"λ {lam!r} is not a finite number >= 0", None, "give --lambda 0 or more")
    stored, differences = load_runs(runs, names, ignore=("lambda",), allow_settings_mismatch=allow_settings_mismatch)
    keys, only = common_pairs(stored)
    if not keys:
        raise InputError("the runs have no pair in common", stored[0].path,
                         "give runs scored on the same ground truth (pairs are matched by key)")
    names = [s.name for s in stored]
    points = [_means(s.doc, keys) for s in stored]
    lambdas = [float(s.doc["settings"]["lambda"]) for s in stored]
    chosen = lam if lam is not None else (lambdas[0] if len(set(lambdas)) == 1 else None)
    intervals, ties = best_intervals(points, names)
    hybrids = [None if chosen is None else a + chosen * p for a, p in points]
    best = None if chosen is None else min(range(len(names)), key=lambda i: (hybrids[i], names[i]))
    first = comparable_settings(stored[0].doc["settings"])
    return {
        "schema_version": SCHEMA_VERSION, "tool": "hlcli", "kind": "tradeoff", "hlcli_version": __version__,
        "settings": {"layers": [{"name": n, "weight": w} for n, w in first["layers"]],
                     "weights_sha256": first["weights sha256"], "precision": first["precision"]},
        "settings_differences": differences,
        "lambda": chosen, "best": None if best is None else names[best],
        "runs": [{"name": s.name, "path": s.path, "lambda": lambdas[i], "pairs": len(s.doc["pairs"]),
                  "l1": points[i][0], "perceptual": points[i][1], "hybrid": hybrids[i],
                  "pareto": flag, "best_lambda": intervals[i]}
                 for i, (s, flag) in enumerate(zip(stored, pareto_flags(points)))],
        "ties": ties, "intervals": INTERVALS,
        "pairs": {"common": len(keys), "only_in": {n: k for n, k in only.items() if k}},
        "per_pair": _per_pair(stored, keys, intervals, lambdas) if per_pair else None,
        **unofficial_by_run([(s.name, s.doc["settings"]) for s in stored]),
    }
