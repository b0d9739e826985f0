"""``hlcli calibrate RUN.json``: how the mean hybrid of a stored run is made up, and the λ (and
layer weights) that give the perceptual term a chosen share of it (no torch import).

For a run with λ, layer weights w_l, mean L1 ``a``, mean unweighted perceptual per layer ``m_l``
and mean perceptual ``p = Σ_l w_l·m_l`` (means over the scored pairs, in float64):

* mean hybrid ``h = a + λ·p``; the terms are ``a``, ``λ·p`` and, per layer, ``λ·w_l·m_l``, each
  also as its share of ``h``;
* per pair, the perceptual share ``λ·p_i / (l1_i + λ·p_i)`` (pairs that score 0 have none):
  median, p5, p95 (numpy's linear percentiles), at the run's λ and at the calibrated λ;
* the λ at which the perceptual term is the share ``S`` of the mean hybrid:
  ``λ_S = S / (1 − S) · a / p`` (then ``λ_S·p / (a + λ_S·p) = S`` exactly, up to rounding);
* balanced layer weights ``w'_l = p / (L · m_l)``: every layer then contributes ``p / L``, and
  ``Σ_l w'_l·m_l = p`` is unchanged, so ``λ_S`` holds for the balanced weights too.
"""

from __future__ import annotations

import math
from typing import Any

from .._version import __version__
from ..runs.documents import as_document, unofficial_by_run
from ..errors import InputError

SCHEMA_VERSION = 1
DEFAULT_SHARE = 0.5
NORMALISATION = "w'_l = p / (L * m_l): every layer contributes p / L and the mean perceptual p is unchanged"


def _mean(values: list[float]) -> float:
    return math.fsum(values) / len(values)


def _share_stats(pairs: list[dict[str, Any]], lam: float, weights: dict[str, float]) -> dict[str, Any]:
    """The distribution over pairs of the perceptual share of the hybrid at ``lam`` with the
    layer weights ``weights``."""
    import numpy as np  # lazy: keeps numpy off the cheap paths (import hlcli, --help, reading runs)

    terms = [(p["l1"], lam * math.fsum(w * p["layers"][n] for n, w in weights.items())) for p in pairs]
    shares = [t / (a + t) for a, t in terms if a + t > 0]
    out: dict[str, Any] = {"lambda": lam, "count": len(shares), "undefined": len(pairs) - len(shares)}
    arr = np.asarray(shares, dtype=np.float64)
    for name, q in (("median", 50.0), ("p5", 5.0), ("p95", 95.0)):
        out[name] = float(np.percentile(arr, q, method="linear")) if len(shares) else None
    return out


def _terms(a: float, layer_means: dict[str, float], weights: dict[str, float], p: float, lam: float) -> dict[str, Any]:
    h = a + lam * p

    def term(value: float) -> dict[str, Any]:
        return {"value": value, "share": value / h if h > 0 else None}

    return {
        "hybrid": {"value": h},
        "l1": {"mean": a, **term(a)},
        "perceptual": {"mean": p, **term(lam * p)},
        "layers": {n: {"weight": weights[n], "mean": m, **term(lam * weights[n] * m)} for n, m in layer_means.items()},
    }


def _balanced(layer_means: dict[str, float], p: float, path: str | None) -> dict[str, float]:
    for name, m in layer_means.items():
        if not m > 0:
            raise InputError(f"layer {name} has mean perceptual 0 on this run, so no weight can make it contribute",
                             path, "drop that layer (--layers) or calibrate without --balance-layers")
    return {n: p / (len(layer_means) * m) for n, m in layer_means.items()}


def _options(lam: float, weights: dict[str, float] | None) -> str:
    text = f"--lambda {lam:.6g}"
    if weights is not None:
        text += " --layer-weights " + ",".join(f"{w:.6g}" for w in weights.values())
    return text


def calibrate_lambda(run: Any, *, share: float = DEFAULT_SHARE, balance_layers: bool = False) -> dict[str, Any]:
    """Calibrate λ on a stored run: the composition of its mean hybrid, the per-pair perceptual
    share, and the λ at which the perceptual term is the fraction ``share`` of the mean hybrid,
    ``λ = share / (1 − share) · mean(L1) / mean(perceptual)`` (with ``balance_layers``, also the
    layer weights that make every layer contribute equally). ``run`` is a :class:`~hlcli.Run`, a
    score document (dict) or the path of one. Returns the ``calibrate`` JSON document
    (hlcli/schema/calibrate.schema.json). A run whose mean perceptual is 0 is an ``InputError``.

    >>> from hlcli.runs.results import PairResult, Run
    >>> pairs = [PairResult("a", "r/a.png", "g/a.png", 8, 8, l1=0.02, layers={"conv3_3": 0.5},
    ...                     perceptual=0.5, hybrid=0.045)]
    >>> run = Run(settings={"lambda": 0.05, "layers": [{"name": "conv3_3", "weight": 1.0}]},
    ...           environment={}, layer_names=["conv3_3"], pairs=pairs)
    >>> c = hlcli.calibrate_lambda(run, share=0.5)
    >>> c["lambda"], c["terms"]["perceptual"]["share"]
    (0.04, 0.5555555555555556)
    """
    if not (isinstance(share, (int, float)) and 0 < share < 1):
        raise InputError(f"share {share!r} is not between 0 and 1", None, "give a fraction, e.g. --share 0.5")
    doc, path = as_document(run, "calibrated")
    pairs, settings = doc["pairs"], doc["settings"]
    if not pairs:
        raise InputError("the run has no scored pairs, so there is nothing to calibrate", path,
                         "score at least one pair")
    lam = float(settings["lambda"])
    weights = {layer["name"]: float(layer["weight"]) for layer in settings["layers"]}
    a = _mean([p["l1"] for p in pairs])
    p = _mean([p["perceptual"] for p in pairs])
    layer_means = {n: _mean([pair["layers"][n] for pair in pairs]) for n in weights}
    if not p > 0:
        raise InputError("the run's mean perceptual is 0 (every pair's features are identical), so no λ gives "
                         "the perceptual term a share of the hybrid", path, "calibrate on a run with differing images")
    if not a > 0:
        raise InputError("the run's mean L1 is 0, so the perceptual term is the whole hybrid for every λ > 0",
                         path, "calibrate on a run whose images differ in pixels")
    new_lam = share / (1 - share) * a / p
    balanced = _balanced(layer_means, p, path) if balance_layers else None
    return {
        "schema_version": SCHEMA_VERSION, "tool": "hlcli", "kind": "calibrate", "hlcli_version": __version__,
        "run": {"path": path, "pairs": len(pairs), "precision": settings.get("precision"),
                "weights_sha256": settings.get("weights", {}).get("sha256")},
        "current_lambda": lam, "share": share, "lambda": new_lam,
        **unofficial_by_run([(path or "run", settings)]),
        "terms": _terms(a, layer_means, weights, p, lam),
        "calibrated_terms": _terms(a, layer_means, balanced or weights, p, new_lam),
        "pair_share": {"current": _share_stats(pairs, lam, weights),
                       "calibrated": _share_stats(pairs, new_lam, balanced or weights)},
        "layer_weights": None if balanced is None else {"weights": balanced, "normalisation": NORMALISATION},
        "options": _options(new_lam, balanced),
    }
