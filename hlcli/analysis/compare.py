"""``hlcli compare A.json B.json``: two runs over the same ground truth, pair by pair (no torch).

Pairs are matched by key; only pairs in both runs are compared (the others are listed). For
each metric and each common pair, ``d = B − A``: B *wins* a pair when it is better by the
metric's direction (:mod:`hlcli.metrics.registry`: ``d < 0`` for a lower-is-better metric, ``d > 0``
for a higher-is-better one), *loses* when it is worse, ties on exact equality. The mean difference comes with a
seeded bootstrap percentile interval: ``resamples`` times, draw n pairs with replacement
(numpy ``default_rng(seed)``, the same draws for every metric), take the mean of d; the
interval is the 2.5th and 97.5th percentile (numpy's linear method) of those means.
Runs made with different settings are refused unless ``allow_settings_mismatch``.
"""

from __future__ import annotations

from typing import Any
import math

from .._version import __version__
from ..errors import InputError
from ..runs.documents import comparable_settings, mismatch_error, pair_value, settings_differences, unofficial_by_run
from ..runs.readers import metric_names as run_metric_names
from ..metrics.registry import get, set_metrics

SCHEMA_VERSION = 1
CONFIDENCE = 0.95
_CHUNK_VALUES = 2_000_000  # resampled indices held in memory at once


def bootstrap_interval(diffs: Any, *, seed: int, resamples: int, confidence: float = CONFIDENCE) -> tuple[Any, Any]:
    """Percentile bootstrap interval of the mean of each column of ``diffs`` (n pairs × metrics).
    The result depends only on the data, ``seed`` and ``resamples`` (and numpy's generator)."""
    import numpy as np  # lazy: keeps numpy off the cheap paths (import hlcli, --help, reading runs)

    n, m = diffs.shape
    rng = np.random.default_rng(seed)
    means = np.empty((resamples, m), dtype=np.float64)
    chunk = max(1, min(resamples, _CHUNK_VALUES // n))
    for start in range(0, resamples, chunk):
        k = min(chunk, resamples - start)
        idx = rng.integers(0, n, size=(k, n))
        for j in range(m):
            means[start:start + k, j] = diffs[:, j][idx].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    return (np.percentile(means, tail, axis=0, method="linear"),
            np.percentile(means, 100 - tail, axis=0, method="linear"))


def _num(x: Any) -> float | None:
    """A finite float, or None (strict JSON: +inf PSNR and NaN differences are null)."""
    x = float(x)
    return x if math.isfinite(x) else None


def _intervals(d: Any, *, seed: int, resamples: int) -> tuple[list[Any], list[Any]]:
    """Per metric column of ``d`` (B - A per pair), the bootstrap interval of the mean over the
    pairs where the difference is finite. Columns finite on every pair share one joint bootstrap
    (as before extra metrics existed); a column with left-out pairs gets its own."""
    import numpy as np  # lazy: keeps numpy off the cheap paths (import hlcli, --help, reading runs)

    cols = d.shape[1]
    low: list[Any] = [None] * cols
    high: list[Any] = [None] * cols
    if resamples <= 0:
        return low, high
    finite = np.isfinite(d)
    full = [j for j in range(cols) if finite[:, j].all()]
    if full:
        lo, hi = bootstrap_interval(d[:, full], seed=seed, resamples=resamples)
        for k, j in enumerate(full):
            low[j], high[j] = lo[k], hi[k]
    for j in range(cols):
        if j not in full and finite[:, j].any():
            lo, hi = bootstrap_interval(d[finite[:, j], j : j + 1], seed=seed, resamples=resamples)
            low[j], high[j] = lo[0], hi[0]
    return low, high


def _brief(doc: dict[str, Any], path: str) -> dict[str, Any]:
    s = comparable_settings(doc["settings"])
    return {"path": path, "pairs": len(doc["pairs"]),
            "settings": {"lambda": s["lambda"], "layers": [{"name": n, "weight": w} for n, w in s["layers"]],
                         "weights_sha256": s["weights sha256"], "precision": s["precision"]}}


def compare_runs(a: dict[str, Any], b: dict[str, Any], *, a_name: str = "A", b_name: str = "B", seed: int = 0,
                 resamples: int = 10000, top: int = 10, by: str = "hybrid",
                 allow_settings_mismatch: bool = False) -> dict[str, Any]:
    """Compare two score documents (as loaded by :func:`hlcli.analysis.gate.load_document`)."""
    import numpy as np  # lazy: keeps numpy off the cheap paths (import hlcli, --help, reading runs)

    differences = settings_differences(a["settings"], b["settings"], (a_name, b_name))
    if differences and not allow_settings_mismatch:
        raise mismatch_error(differences, None)
    pa, pb = {p["key"]: p for p in a["pairs"]}, {p["key"]: p for p in b["pairs"]}
    common = sorted(pa.keys() & pb.keys())
    if not common:
        raise InputError(f"{a_name} and {b_name} have no pair in common", None,
                         "compare two runs over the same ground truth (pairs are matched by key)")
    in_b = set(run_metric_names(b["settings"]))
    metrics = [m for m in run_metric_names(a["settings"]) if m in in_b]
    if by not in metrics:
        raise InputError(f"--by {by}: not a metric of both runs", None, f"use one of {', '.join(metrics)}")
    va = np.array([[pair_value(pa[k], m) for m in metrics] for k in common], dtype=np.float64)
    vb = np.array([[pair_value(pb[k], m) for m in metrics] for k in common], dtype=np.float64)
    with np.errstate(invalid="ignore"):
        d = vb - va  # NaN where both are +inf (identical images' PSNR), +-inf where one is
    low, high = _intervals(d, seed=seed, resamples=resamples)
    out_metrics = {}
    for j, m in enumerate(metrics):
        ok = np.isfinite(d[:, j])  # means and intervals over the pairs finite in both runs
        up = get(m).higher_is_better
        mean_a = float(np.mean(va[ok, j])) if ok.any() else None
        mean_diff = float(np.mean(d[ok, j])) if ok.any() else None
        out_metrics[m] = {
            "higher_is_better": up, "unit": get(m).unit,
            "mean_a": mean_a, "mean_b": float(np.mean(vb[ok, j])) if ok.any() else None, "mean_diff": mean_diff,
            "relative_diff": mean_diff / abs(mean_a) if mean_a else None,
            "ci_low": None if low[j] is None else float(low[j]), "ci_high": None if high[j] is None else float(high[j]),
            # wins and losses by the metric's direction (B wins a PSNR pair by being higher)
            "b_wins": int(np.sum(vb[:, j] > va[:, j] if up else vb[:, j] < va[:, j])),
            "b_losses": int(np.sum(vb[:, j] < va[:, j] if up else vb[:, j] > va[:, j])),
            "ties": int(np.sum(vb[:, j] == va[:, j])),
            **({"pairs_left_out": int(np.sum(~ok))} if not ok.all() else {}),
        }
    j = metrics.index(by)
    size = np.where(np.isfinite(d[:, j]), np.abs(d[:, j]), np.where(np.isnan(d[:, j]), 0.0, np.inf))
    order = sorted(range(len(common)), key=lambda i: (-size[i], common[i]))[:top]
    changed = [{"key": common[i], "a": _num(va[i, j]), "b": _num(vb[i, j]), "diff": _num(d[i, j]),
                "relative_diff": _num(d[i, j] / abs(va[i, j])) if va[i, j] and np.isfinite(va[i, j]) else None}
               for i in order]
    return {
        "schema_version": SCHEMA_VERSION, "tool": "hlcli", "kind": "compare", "hlcli_version": __version__,
        "a": _brief(a, a_name), "b": _brief(b, b_name),
        **unofficial_by_run([(a_name, a["settings"]), (b_name, b["settings"])]),
        "settings_differences": differences,
        "difference": ("B - A; for a lower-is-better metric a negative difference means B is better, for a "
                       "higher-is-better one (PSNR, SSIM) a positive one"),
        "bootstrap": {"resamples": resamples, "seed": seed, "confidence": CONFIDENCE, "method": "percentile"},
        "pairs": {"common": len(common), "only_a": sorted(pa.keys() - pb.keys()),
                  "only_b": sorted(pb.keys() - pa.keys())},
        "metrics": out_metrics,
        "changed_most": {"by": by, "pairs": changed},
        **_set_comparison(a, b),
    }


def _set_comparison(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """``{"sets": {metric: {a, b, diff, relative_diff, b_better, ...}}}`` for the set metrics (FID,
    KID) both runs have: each run's one value over its own pairs (not only the common ones), or
    nothing when they share none."""
    sa = (a.get("summary") or {}).get("sets") or {}
    sb = (b.get("summary") or {}).get("sets") or {}
    out = {}
    for m in set_metrics([*sa, *sb]):
        va, vb = sa.get(m), sb.get(m)
        if va is None or vb is None:
            continue
        diff = float(vb) - float(va)
        up = get(m).higher_is_better
        out[m] = {"higher_is_better": up, "unit": get(m).unit, "a": float(va), "b": float(vb), "diff": diff,
                  "relative_diff": diff / abs(va) if va else None, "b_better": diff > 0 if up else diff < 0,
                  "samples_a": sa.get("samples"), "samples_b": sb.get("samples")}
    return {"sets": out} if out else {}
