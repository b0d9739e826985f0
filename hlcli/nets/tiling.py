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


# -- what a run's tiling costs, known before its first forward ------------------------------------

#: Tiling that multiplies a run's forward FLOPs by more than this is warned about, and by more
#: than :data:`REFUSE_FACTOR` refused (exit 2), naming the smallest budget under WARN_FACTOR.
WARN_FACTOR = 2.0
REFUSE_FACTOR = 10.0


@dataclass(frozen=True)
class TiledNet:
    """A network that hlcli tiles: the layers that fix its halo (``stride`` and
    ``receptive_field`` each, for :func:`tile_plan`) and its convolutions as (in channels, out
    channels, stride of their input), for the FLOPs."""

    name: str
    layers: tuple
    convs: tuple[tuple[int, int, int], ...]


def vgg19_net(layers: Sequence[LayerSpec]) -> TiledNet:
    """VGG-19 up to the deepest of ``layers``, as the engine runs it."""
    convs = tuple((s.in_channels, s.channels, s.stride) for s in LAYERS[: max(s.index for s in layers) + 1]
                  if s.kind == "conv")
    return TiledNet("VGG-19", tuple(layers), convs)


def _axis_sums(size: int, plan: TilePlan | None, strides: set[int]) -> dict[int, int]:
    """Along one axis, per stride s: the sum over the crops of (crop length // s)."""
    lengths = [size] if plan is None else [e - b for _, _, b, e in spans(size, plan)]
    return {s: sum(n // s for n in lengths) for s in strides}


def net_flops(net: TiledNet, height: int, width: int, plan: TilePlan | None = None) -> int:
    """Multiply-adds x 2 of the 3x3 convolutions of one image through ``net``: whole
    (``plan`` None) or cut into the crops of ``plan``. Each pool floors the side."""
    strides = {s for _, _, s in net.convs}
    ys, xs = _axis_sums(height, plan, strides), _axis_sums(width, plan, strides)
    return sum(2 * 9 * cin * cout * ys[s] * xs[s] for cin, cout, s in net.convs)


def run_tiling_factor(nets: Sequence[TiledNet], sizes: dict[tuple[int, int], int], pixel_budget: int,
                      tile_core: dict[str, int | None] | None = None) -> float:
    """The forward FLOPs of a run over those of the same run untiled: every pair of ``sizes``
    ({(height, width): count}) through every network of ``nets``, a pair tiled as the engine
    tiles it (when both images exceed ``pixel_budget``). 1.0 when nothing is tiled."""
    tiled = whole = 0
    for (h, w), count in sizes.items():
        for net in nets:
            base = net_flops(net, h, w)
            whole += count * base
            if 2 * h * w > pixel_budget:
                plan = tile_plan(net.layers, pixel_budget, (tile_core or {}).get(net.name))
                tiled += count * net_flops(net, h, w, plan)
            else:
                tiled += count * base
    return tiled / whole if whole else 1.0


def smallest_budget(nets: Sequence[TiledNet], sizes: dict[tuple[int, int], int], *, limit: float = WARN_FACTOR,
                    minimum: int = 1 << 12) -> int:
    """A pixel budget at which :func:`run_tiling_factor` is at most ``limit``: the smallest
    found by bisection over the crop side (budgets 2 * side², each a distinct tile plan; at the
    top of the range no pair is tiled, factor 1), or a smaller one of the budgets 2 * h * w
    that leave every pair of a size untiled, if one is under ``limit``."""
    if not sizes:
        return minimum
    lo = max(1, math.isqrt(minimum // 2))
    hi = max(lo, math.isqrt(max(h * w for h, w in sizes) - 1) + 1)  # 2 * hi² >= 2 * h * w: untiled
    if run_tiling_factor(nets, sizes, max(minimum, 2 * lo * lo)) <= limit:
        return max(minimum, 2 * lo * lo)
    while hi - lo > 1:  # invariant: factor(lo) > limit >= factor(hi)
        mid = (lo + hi) // 2
        if run_tiling_factor(nets, sizes, 2 * mid * mid) <= limit:
            hi = mid
        else:
            lo = mid
    best = max(minimum, 2 * hi * hi)
    # A budget of exactly 2 * h * w leaves the pairs of that size untiled: often the cheapest.
    thresholds = sorted({2 * h * w for h, w in sizes if minimum <= 2 * h * w < best})
    return next((t for t in thresholds if run_tiling_factor(nets, sizes, t) <= limit), best)
