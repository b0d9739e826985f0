"""Help-text fragments built from the registries (:mod:`hlcli.metrics.registry` for metric names and
directions, :mod:`hlcli.runs.documents` for the settings runs must share), so that no ``--help``
states a metric list or a direction by hand. tests/test_directions.py checks every help text
and doc page against the registry. No torch import."""

from __future__ import annotations

from ..runs.documents import compared_settings
from ..metrics.registry import BASE, EXTRA, get, higher_is_better

__all__ = ["compared_settings", "directions", "extra_metrics", "extra_metrics_by_need", "metric_names", "worse_words"]


def extra_metrics() -> str:
    """``psnr, psnr_y, ssim, ssim_y, lpips, lpips_vgg``: what ``--metrics`` adds."""
    return ", ".join(EXTRA)


def metric_names(layer: str = "a scored layer") -> str:
    """Every metric a command accepts by name: ``l1, perceptual, hybrid, a scored layer, or one
    of psnr, ... (scored with hlcli score --metrics)``."""
    return f"{', '.join(BASE)}, {layer}, or one of {extra_metrics()} (scored with `hlcli score --metrics`)"


def extra_metrics_by_need() -> str:
    """What ``score --metrics`` offers, grouped by what each is computed from:
    ``psnr, psnr_y, ssim, ssim_y (BasicSR's definitions, with --crop-border), lpips, lpips_vgg
    (LPIPS v0.1, needs hlcli[lpips])``."""
    pixels = [m for m in EXTRA if get(m).needs == "pixels"]
    lpips = [m for m in EXTRA if get(m).needs.startswith("lpips")]
    sets = [m for m in EXTRA if get(m).is_set]
    other = [m for m in EXTRA if m not in pixels and m not in lpips and m not in sets]
    parts = [f"{', '.join(pixels)} (BasicSR's definitions, with --crop-border)",
             f"{', '.join(lpips)} (LPIPS v0.1, needs hlcli[lpips])",
             *(f"{m} ({get(m).brief})" if get(m).brief else m for m in other),
             *([f"{', '.join(sets)} (one value per run and group, on pytorch-fid's Inception)"] if sets else [])]
    return ", ".join(parts)


def directions() -> str:
    """``↑ higher is better: psnr, psnr_y, ssim, ssim_y; every other metric ↓ lower``."""
    return f"↑ higher is better: {', '.join(higher_is_better())}; every other metric ↓ lower"


def worse_words() -> str:
    """How each direction gets worse: ``a rise of a lower-is-better metric, a drop of a
    higher-is-better one``."""
    lower, higher = get(BASE[0]), next(get(m) for m in EXTRA if get(m).higher_is_better)
    return f"a {lower.worsening} of a lower-is-better metric, a {higher.worsening} of a higher-is-better one"
