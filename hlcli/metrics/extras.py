"""The opt-in metrics of a run (``--metrics``, :data:`hlcli.metrics.registry.EXTRA`), computed per batch
from the same decoded integers as the hybrid, on the scoring device: each definition names its
per-batch function (``Metric.compute``) and its map (``Metric.map``); this module only runs them.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Sequence
from typing import Any

import torch

from . import registry as metricdefs
from ..errors import NonFiniteError
from .psnr_ssim import PixelPair
from .dists import load_dists
from .lpips import load_lpips
from .niqe import load_niqe

#: ``Metric.needs`` -> the function loading it once per run (``(need, opts, device)``).
LOADERS = {"lpips-alex": load_lpips, "lpips-vgg": load_lpips,
           "dists": lambda need, opts, device: load_dists(opts, device),
           "niqe": lambda need, opts, device: load_niqe(opts)}


def _function(path: str):
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


class ExtraScorer:
    """Computes ``names`` (extra metric names) for batches of integer pairs. ``nets``: the
    networks some metrics need, keyed by ``Metric.needs`` (the LPIPS networks), on ``device``."""

    def __init__(self, names: Sequence[str], device: torch.device, nets: dict[str, Any] | None = None,
                 pixel_budget: int | None = None):
        self.metrics = [metricdefs.get(n) for n in names]
        self.device = device
        self.pixel_budget = pixel_budget  # pairs above it are tiled where a metric's network needs it
        self.nets = dict(nets or {})
        self._fns = {m.name: _function(m.compute) for m in self.metrics}
        self._maps = {m.name: _function(m.map) for m in self.metrics if m.map}

    def __bool__(self) -> bool:
        return bool(self.metrics)

    def _pixels(self, restored: torch.Tensor, gt: torch.Tensor, scale: int) -> PixelPair:
        px = PixelPair(restored.to(self.device), gt.to(self.device), scale)
        px.nets = self.nets
        px.pixel_budget = self.pixel_budget
        return px

    @torch.inference_mode()
    def measure(self, restored: torch.Tensor, gt: torch.Tensor, scale: int) -> dict[str, list[Any]]:
        """Per metric, each pair's value as a Python float (+inf only where the metric allows
        it: PSNR of identical images), or, where the metric's reference has no value for that
        pair (NIQE of a flat image), the exception saying why (:class:`hlcli.errors.Unscorable`)."""
        px = self._pixels(restored, gt, scale)
        out = {}
        for m in self.metrics:
            values = self._fns[m.name](px)
            out[m.name] = values.cpu().tolist() if isinstance(values, torch.Tensor) else list(values)
        return out

    @torch.inference_mode()
    def maps(self, restored: torch.Tensor, gt: torch.Tensor, scale: int) -> list[dict[str, torch.Tensor]]:
        """Per pair, ``{metric: map (H', W') float32 on the CPU}`` for the metrics with a map;
        each map's mean is the pair's value."""
        px = self._pixels(restored, gt, scale)
        per_metric = {name: fn(px).float().cpu() for name, fn in self._maps.items()}
        return [{name: m[j] for name, m in per_metric.items()} for j in range(restored.shape[0])]


def check_values(values: dict[str, float], where: Any) -> None:
    """``NonFiniteError`` (exit 3) for a NaN, or an infinity where the metric cannot have one."""
    for name, v in values.items():
        if math.isnan(v) or (math.isinf(v) and not (metricdefs.get(name).infinite and v > 0)):
            raise NonFiniteError(f"{name} is not finite ({v})", where,
                                 "check the image for NaN-producing content; if it persists, report it")


def load_nets(names: Sequence[str], opts: Any, device: torch.device) -> dict[str, Any]:
    """The networks the metrics ``names`` need (keyed by ``Metric.needs``), loaded once each."""
    needs = {metricdefs.get(n).needs for n in names} - {"pixels"}
    if not needs:
        return {}

    return {need: LOADERS[need](need, opts, device) for need in sorted(needs)}
