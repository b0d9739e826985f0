"""Result records of a run and their summary statistics (no torch import).

Statistics over the scored pairs, per metric, in float64 (numpy):
``count``, ``mean``, ``median``, ``std`` (population, ddof=0), ``min``, ``max`` and the
percentiles ``p50 p90 p95 p99`` with linear interpolation between closest ranks (numpy's default
``method="linear"``, Hyndman & Fan type 7: the p-th percentile of n sorted values v is
v[i] + f * (v[i+1] - v[i]) with i + f = p/100 * (n - 1)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

STATS = ("mean", "median", "std", "min", "max", "p50", "p90", "p95", "p99")
PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0}
BASE_METRICS = ("l1", "perceptual", "hybrid")


@dataclass
class PairResult:
    key: str
    restored: str
    gt: str
    width: int  # the size that was scored (after any size policy)
    height: int
    l1: float
    layers: dict[str, float]  # per-layer perceptual (unweighted), in requested order
    perceptual: float  # sum_l w_l * layers[l]
    hybrid: float
    size_policy: str | None = None  # "crop" / "resize-restored" when one was applied to this pair
    original_sizes: dict[str, list[int]] | None = None  # {"restored": [w, h], "gt": [w, h]} if a policy applied
    tiled: bool = False

    def metric(self, name: str) -> float:
        if name in BASE_METRICS:
            return getattr(self, name)
        return self.layers[name]

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "key": self.key,
            "restored": self.restored,
            "gt": self.gt,
            "width": self.width,
            "height": self.height,
            "l1": self.l1,
            "layers": dict(self.layers),
            "perceptual": self.perceptual,
            "hybrid": self.hybrid,
            "size_policy": self.size_policy,
            "tiled": self.tiled,
        }
        if self.original_sizes is not None:
            d["original_sizes"] = self.original_sizes
        return d


@dataclass
class Skipped:
    """A pair (or file) that was not scored, and why."""

    key: str
    path: str  # the file at fault
    reason: str  # the one-line error
    exit_code: int  # the exit code the error would have had under --on-error fail

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "path": self.path, "reason": self.reason, "exit_code": self.exit_code}


@dataclass
class Missing:
    restored_only: list[str] = field(default_factory=list)  # restored files with no ground truth
    gt_only: list[str] = field(default_factory=list)  # ground-truth files with no restored file

    def __len__(self) -> int:
        return len(self.restored_only) + len(self.gt_only)

    def as_dict(self) -> dict[str, Any]:
        return {"restored_only": list(self.restored_only), "gt_only": list(self.gt_only)}


def metric_names(layer_names: list[str] | tuple[str, ...]) -> list[str]:
    """Metric columns in their fixed order: l1, each layer, perceptual, hybrid."""
    return ["l1", *layer_names, "perceptual", "hybrid"]


def describe(values: list[float]) -> dict[str, float | int | None]:
    """count/mean/median/std/min/max/p50/p90/p95/p99 of ``values`` (float64, see module doc)."""
    import numpy as np

    n = len(values)
    if n == 0:
        return {"count": 0, **{s: None for s in STATS}}
    arr = np.asarray(values, dtype=np.float64)
    out: dict[str, float | int | None] = {
        "count": n,
        "mean": float(np.mean(arr)),
        "median": float(np.median(arr)),
        "std": float(np.std(arr)),
        "min": float(np.min(arr)),
        "max": float(np.max(arr)),
    }
    for name, q in PERCENTILES.items():
        out[name] = float(np.percentile(arr, q, method="linear"))
    return out


def summarize(
    pairs: list[PairResult], layer_names: list[str] | tuple[str, ...], *, worst: int = 5
) -> dict[str, Any]:
    metrics = {
        name: describe([p.metric(name) for p in pairs]) for name in metric_names(layer_names)
    }
    ranked = sorted(pairs, key=lambda p: (-p.hybrid, p.key))[: max(worst, 0)]
    return {
        "count": len(pairs),
        "metrics": metrics,
        "worst": [{"key": p.key, "hybrid": p.hybrid, "l1": p.l1, "perceptual": p.perceptual} for p in ranked],
    }


def format_change(delta: float, rel: float | None) -> str:
    """A change as people read it: relative, in percent, when the old value was non-zero
    (``rel`` given), else absolute."""
    return f"{rel * 100:+.3g}%" if rel is not None else f"{delta:+.6g}"


def is_finite_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
