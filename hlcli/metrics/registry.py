"""What each metric is: one definition that every consumer iterates (no torch import).

A :class:`Metric` carries the metric's name, whether higher is better, its unit, how it is
shown, what it needs from a batch and where its per-pair computation lives. Summaries, gates,
baselines, ``compare``, ``hlcli table``, the terminal table, the report and the renderers ask
the definition (:func:`get`, :func:`better`, :func:`badness`, :func:`regression`); none of them spells a
metric's name. This module is the only place that does.

Always computed: ``l1``, one metric per scored VGG-19 layer (``conv3_3``…), ``perceptual`` and
``hybrid`` (all lower-is-better, unitless). Opt-in with ``--metrics`` (:data:`EXTRA`): the
numbers restoration papers print, computed as their reference implementations do (see
``docs/metrics.md``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
import difflib

__all__ = ["BASE", "EXTRA", "SCOPES", "Metric", "badness", "better", "check_extra", "get", "higher_is_better",
           "is_set_metric", "regression", "run_metrics", "set_metrics"]

#: What one value of a metric reads (``Metric.scope``).
SCOPES = ("pair", "image", "set")


@dataclass(frozen=True)
class Metric:
    """One metric. ``needs``: what it is computed from (``"vgg19"``: the hybrid's features;
    ``"pixels"``: the decoded integers; ``"lpips-alex"``/``"lpips-vgg"``: an LPIPS network).
    ``compute``: ``"module:function"`` of the per-batch computation (extras only).
    ``infinite``: whether a pair's value can be +inf (PSNR of identical images).
    ``scope``: what one value reads: ``"pair"`` (a restored image and its ground truth: every
    metric but NIQE, FID and KID), ``"image"`` (the restored image alone, no reference: NIQE) or
    ``"set"`` (one value per set of pairs — run, group, model — not per pair: FID, KID). An image
    metric has a value of its own for identical images (not 0) and ignores the ground truth."""

    name: str
    label: str
    higher_is_better: bool = False
    unit: str | None = None
    needs: str = "vgg19"
    compute: str | None = None
    map: str | None = None  # "module:function" of the per-pair map for --save-maps (extras)
    infinite: bool = False
    decimals: int | None = None  # fixed decimals for display (PSNR in dB: 3); None: by magnitude
    min_side: int = 1  # the smallest image side it can score (SSIM's window; LPIPS' deepest layer)
    definition: str = ""
    scope: str = "pair"  # one of SCOPES: "pair", "image" (restored alone) or "set" (FID, KID)
    brief: str = ""  # a few words for `score --metrics`' help where its group does not say it

    @property
    def is_set(self) -> bool:
        """Whether the metric has one value per set of pairs (run, group, model), not per pair."""
        return self.scope == "set"

    @property
    def arrow(self) -> str:
        return "↑" if self.higher_is_better else "↓"

    def header(self) -> str:
        """``PSNR↑ dB``-style column header: label, direction, unit."""
        return f"{self.label}{self.arrow}" + (f" {self.unit}" if self.unit else "")

    @property
    def direction(self) -> str:
        return "higher" if self.higher_is_better else "lower"

    @property
    def worsening(self) -> str:
        """The word for a change in the bad direction: ``drop`` (higher is better) or ``rise``."""
        return "drop" if self.higher_is_better else "rise"

    def amount(self, value: float, spec: str = ".6g") -> str:
        """``value`` with the metric's unit (``0.5 dB``, ``0.0017``); +inf is ``∞``."""
        text = "∞" if value == math.inf else format(value, spec)
        return f"{text} {self.unit}" if self.unit else text


_BASE = (
    Metric("l1", "L1", definition="mean absolute error over all H*W*C values in [0, 1]"),
    Metric("perceptual", "perceptual", definition="sum over layers of w_l * perceptual_l"),
    Metric("hybrid", "hybrid", definition="l1 + lambda * perceptual"),
)
BASE = tuple(m.name for m in _BASE)

_EXTRA = (
    Metric("psnr", "PSNR", True, "dB", "pixels", "hlcli.metrics.psnr_ssim:psnr_rgb", infinite=True, decimals=3,
           definition="BasicSR calculate_psnr, RGB, 8-bit scale, float64: 10*log10(255^2/MSE)"),
    Metric("psnr_y", "PSNR-Y", True, "dB", "pixels", "hlcli.metrics.psnr_ssim:psnr_y", infinite=True, decimals=3,
           definition="BasicSR calculate_psnr(test_y_channel=True): BT.601 Y with BasicSR's float32 roundings"),
    Metric("ssim", "SSIM", True, None, "pixels", "hlcli.metrics.psnr_ssim:ssim_rgb",
           "hlcli.metrics.psnr_ssim:ssim_rgb_map", decimals=4, min_side=11,
           definition="BasicSR calculate_ssim: 11x11 Gaussian (sigma 1.5), valid region, mean over channels"),
    Metric("ssim_y", "SSIM-Y", True, None, "pixels", "hlcli.metrics.psnr_ssim:ssim_y",
           "hlcli.metrics.psnr_ssim:ssim_y_map", decimals=4, min_side=11,
           definition="BasicSR calculate_ssim(test_y_channel=True)"),
    Metric("lpips", "LPIPS", False, None, "lpips-alex", "hlcli.metrics.lpips:lpips_alex",
           "hlcli.metrics.lpips:lpips_alex_map", min_side=31,
           definition="LPIPS v0.1, AlexNet backbone (lpips.LPIPS(net='alex', version='0.1'))"),
    Metric("lpips_vgg", "LPIPS-VGG", False, None, "lpips-vgg", "hlcli.metrics.lpips:lpips_vgg",
           "hlcli.metrics.lpips:lpips_vgg_map", min_side=16,
           definition="LPIPS v0.1, VGG-16 backbone (lpips.LPIPS(net='vgg', version='0.1'))"),
    Metric("dists", "DISTS", False, None, "dists", "hlcli.metrics.dists:dists",
           definition="DISTS_pytorch.DISTS (dists-pytorch 0.1): VGG-16 with L2 pooling, "
                      "1 - sum(alpha*S1 + beta*S2) over 1475 channels; no resize",
           brief="DISTS_pytorch's, no resize, its weights from hlcli[dists]"),
    Metric("niqe", "NIQE", False, None, "niqe", "hlcli.metrics.niqe:niqe", min_side=96, scope="image",
           definition="BasicSR 1.4.2 calculate_niqe(crop_border, convert_to='y') of the restored image only: "
                      "LIVE pristine model, MATLAB's Y, 96-px blocks, two scales",
           brief="BasicSR's, of the restored image only"),
    Metric("fid", "FID", False, None, "inception", decimals=4, scope="set",
           definition="Frechet distance of pytorch-fid's Inception features, restored set vs ground-truth set "
                      "(pytorch-fid 0.3.0 calculate_frechet_distance; resize per --fid-resize)"),
    Metric("kid", "KID", False, None, "inception", scope="set",
           definition="kernel Inception distance as torch-fidelity 0.4.0: (x.y/d+1)^3, unbiased MMD^2, "
                      "mean over 100 subsets of min(n, 1000)"),
)
EXTRA = tuple(m.name for m in _EXTRA)
_BY_NAME = {m.name: m for m in (*_BASE, *_EXTRA)}


def get(name: str) -> Metric:
    """The definition of ``name``; any other name is a VGG-19 layer (lower is better)."""
    known = _BY_NAME.get(name)
    if known is not None:
        return known
    return Metric(name, name, definition=f"mean squared difference of VGG-19 {name} features")


def run_metrics(layer_names: Sequence[str], extra: Sequence[str] = ()) -> list[str]:
    """A run's per-pair metric columns in their fixed order: l1, each layer, perceptual, hybrid,
    then the extra pair metrics in :data:`EXTRA` order (set metrics have no column: see
    :func:`set_metrics`)."""
    extras = [m for m in EXTRA if m in set(extra) and not _BY_NAME[m].is_set]
    return ["l1", *layer_names, "perceptual", "hybrid", *extras]


def set_metrics(extra: Sequence[str] = ()) -> list[str]:
    """The set metrics among ``extra`` (one value per run, group or model: FID, KID), in
    :data:`EXTRA` order."""
    return [m for m in EXTRA if m in set(extra) and _BY_NAME[m].is_set]


def is_set_metric(name: str) -> bool:
    return get(name).is_set


def check_extra(names: Iterable[str]) -> tuple[str, ...]:
    """The extra metrics named (deduplicated, in :data:`EXTRA` order); ``ValueError`` naming
    an unknown one and the nearest known names."""
    wanted = [n.strip().lower() for n in names if n.strip()]
    for n in wanted:
        if n not in EXTRA:
            if n in _BY_NAME:
                raise ValueError(f"{n} is always computed: --metrics adds {', '.join(EXTRA)}")
            near = difflib.get_close_matches(n, EXTRA, n=2)
            hint = f"did you mean {' or '.join(near)}? " if near else ""
            raise ValueError(f"unknown metric {n!r}: {hint}use a comma-separated list of {', '.join(EXTRA)}")
    return tuple(m for m in EXTRA if m in wanted)


def better(name: str, values: Iterable[float]) -> float:
    """The best of ``values`` for metric ``name`` (the max when higher is better)."""
    return max(values) if get(name).higher_is_better else min(values)


def badness(name: str, value: float | None) -> float:
    """A number that grows as ``value`` gets worse (for sorting worst first); a missing or NaN
    value counts as the best possible (+inf is the best PSNR, the worst of a lower-is-better one)."""
    if value is None or math.isnan(value):
        return -math.inf
    return -value if get(name).higher_is_better else value


def higher_is_better() -> tuple[str, ...]:
    """The named metrics (:data:`BASE` and :data:`EXTRA`) where higher is better."""
    return tuple(m.name for m in (*_BASE, *_EXTRA) if m.higher_is_better)


def regression(name: str, old: float, new: float) -> float:
    """How much worse ``new`` is than ``old`` (positive: worse), in the metric's unit: a rise for
    lower-is-better metrics, a drop for higher-is-better ones (PSNR: dB lost)."""
    if old == new:  # also inf == inf
        return 0.0
    return old - new if get(name).higher_is_better else new - old
