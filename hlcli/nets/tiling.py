"""Exact tiling plans for pairs larger than the pixel budget: the smallest halo that keeps tiled
== untiled, the tile grid, and what tiling costs in FLOPs. Pure Python (no torch): the engine
runs the plan (:meth:`hlcli.engine.batch.BatchScorer._tiled_sq_sums`), benchmarks and tests cost it.

Geometry (VGG-19: 3x3 convolutions with padding 1, 2x2 max-pools with stride 2): a value at
position p of a layer with total stride s covers input pixels [p*s - r, (p+1)*s - 1 + r], its
*reach* r being (receptive field - s) / 2. A kept value is exact when every value it depends on,
at every depth, is computed from pixels inside its crop or lies beyond a true image border (zero
padding in both forwards); and a 2x2 pool sees the same windows when the crop starts on a
multiple of the deepest stride.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .layers import LAYERS, LayerSpec


@dataclass(frozen=True)
class TilePlan:
    core: int  # tile side (input pixels) whose features are kept; a multiple of the stride
    halo: int  # context added on each side: the layers' reach, rounded up to the deepest stride


def reach(spec: LayerSpec) -> int:
    """Input pixels a value of ``spec`` sees beyond its own stride-sized block on each side:
    a value at position p covers input pixels [p*s - reach, (p+1)*s - 1 + reach]. Each 3x3
    convolution adds its current stride on both sides; a 2x2 pool widens only the block
    (rf = s + 2 * reach). conv4_3: (100 - 8) / 2 = 46 px."""
    return (spec.receptive_field - spec.stride) // 2


def tile_plan(layers: Sequence[LayerSpec], pixel_budget: int, core: int | None = None) -> TilePlan:
    """Tiles whose two crops (restored + ground truth, with halo) fit the pixel budget, or
    whose core is ``core`` pixels (rounded down to the deepest layer's stride).

    The halo is the smallest that keeps tiled == untiled: the largest :func:`reach` of the
    layers, rounded up to the deepest stride S so that every crop starts on a multiple of S
    (every 2x2 pool then sees the windows it sees untiled). conv3_3,conv4_3: 46 -> 48 px.
    Every value a kept feature depends on, at every depth, then lies inside its crop (or
    beyond a true image border, zero-padded in both cases)."""
    stride = max(s.stride for s in layers)
    halo = math.ceil(max(reach(s) for s in layers) / stride) * stride
    if core is None:
        side = int(math.sqrt(pixel_budget / 2))  # crop side with halo, two images per forward
        core = side - 2 * halo
    return TilePlan(core=max(stride, core // stride * stride), halo=halo)


def spans(size: int, plan: TilePlan) -> list[tuple[int, int, int, int]]:
    """Along one axis: (core start, core end, crop start, crop end) of each tile."""
    out = []
    for c0 in range(0, size, plan.core):
        c1 = min(size, c0 + plan.core)
        out.append((c0, c1, max(0, c0 - plan.halo), min(size, c1 + plan.halo)))
    return out


def forward_flops(layers: Sequence[LayerSpec], height: int, width: int) -> int:
    """Multiply-adds x 2 of the convolutions of one image's forward up to the deepest of
    ``layers`` (the pools and ReLUs are negligible). Each pool floors the side."""
    total = 0
    for spec in LAYERS[: max(s.index for s in layers) + 1]:
        if spec.kind == "conv":
            total += 2 * 9 * spec.in_channels * spec.channels * (height // spec.stride) * (width // spec.stride)
    return total


def tiling_cost(layers: Sequence[LayerSpec], height: int, width: int, plan: TilePlan) -> float:
    """FLOPs of the tiled forwards of one image divided by those of one untiled forward."""
    ys, xs = spans(height, plan), spans(width, plan)
    tiled = sum(forward_flops(layers, y[3] - y[2], x[3] - x[2]) for y in ys for x in xs)
    return tiled / forward_flops(layers, height, width)
