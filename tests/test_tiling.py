"""Exact tiling with the smallest halo: tiled == untiled at 1e-12 relative for every layer kind
(conv, relu, pool) at every depth, odd sizes, true borders; one stride less of halo is already
wrong (so the halo is the smallest on the stride grid); and the tiling overhead at 4096x4096
on the default CPU budget is at most 1.3x the untiled forward's FLOPs.

Deep layers use narrow images (one tile across, several down, and the transpose) so that each
case costs a few small forwards."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hlcli.engine.batch import BatchScorer
from hlcli.nets.tiling import TilePlan, forward_flops, reach, tile_plan, tiling_cost
from hlcli.nets.layers import BY_NAME, LAYERS, resolve_layers

from .conftest import degrade, textured

CPU = torch.device("cpu")
DEFAULT = resolve_layers(["conv3_3", "conv4_3"])

# (layers, height, width, core): every kind at every depth; odd sizes whose last tile is a
# partial core (and, for pools, not a multiple of the stride); the first tile's crop always ends
# inside the image (height or width > core + halo). 2-D grids for shallow layers; deep layers
# one tile across (alternating axes), which costs a few narrow forwards.
CASES = [
    (["conv1_1"], 21, 19, 8), (["relu1_2"], 23, 17, 8), (["pool1"], 27, 19, 8),
    (["conv2_1"], 33, 29, 10), (["relu2_2"], 37, 31, 10), (["pool2"], 45, 39, 12),
    (["conv3_3"], 45, 39, 16), (["relu3_4"], 17, 63, 16), (["pool3"], 59, 21, 24),
    (["conv4_3"], 83, 19, 24), (["relu4_4"], 25, 101, 32), (["pool4"], 109, 21, 32),
    (["conv5_4"], 171, 17, 32), (["relu5_1"], 17, 131, 32), pytest.param(["pool5"], 173, 33, 32, marks=pytest.mark.slow),
    (["relu1_1", "pool2", "conv3_3"], 71, 67, 24), (["conv2_2", "conv4_3"], 19, 89, 24),
]
WRONG = [c for c in CASES if isinstance(c, tuple) and c[0][0] in ("conv1_1", "pool1", "relu2_2", "pool3", "conv4_3", "pool4")]


def _pair(h: int, w: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gt = textured(h, w, seed)
    to_t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None]  # noqa: E731
    return to_t(degrade(gt, seed)), to_t(gt)


class Float64Scorer(BatchScorer):
    """The engine's own batching and tiling, with the network run in float64. fp32 kernels pick
    their algorithm (and so their rounding) by shape and batch: tiled and untiled then differ
    by 1e-8 to 1e-6 relative, which would hide nothing a halo one pixel too small does (1e-5
    and more) but makes a 1e-12 check about the kernels instead of the geometry."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.model.double()

    def _input(self, parts, scale):
        return super()._input(parts, scale).double()


def _untiled_and_tiled(state_dict, names, h, w, core, halo_delta=0):
    specs = resolve_layers(names)
    r, g = _pair(h, w, seed=len(names) + h)
    full = Float64Scorer(state_dict, specs, device=CPU, pixel_budget=1 << 24)
    tiled = Float64Scorer(state_dict, specs, device=CPU, pixel_budget=64, tile_core=core)
    assert tiled.is_tiled(h, w) and tiled.tiles.core < max(h, w)
    if halo_delta:
        tiled.tiles = TilePlan(core=tiled.tiles.core, halo=tiled.tiles.halo + halo_delta)
    l1a, pa = full.measure(r, g, 255)
    l1b, pb = tiled.measure(r, g, 255)
    assert l1a.item() == l1b.item()
    return pa, pb, tiled.tiles


@pytest.mark.parametrize("names,h,w,core", CASES)
def test_tiled_equals_untiled_with_the_smallest_halo(state_dict, names, h, w, core):
    pa, pb, plan = _untiled_and_tiled(state_dict, names, h, w, core)
    stride = max(BY_NAME[n].stride for n in names)
    assert plan.halo % stride == 0 and plan.halo - max(reach(BY_NAME[n]) for n in names) < stride
    assert (pa > 0).all()
    torch.testing.assert_close(pb, pa, rtol=1e-12, atol=0)


@pytest.mark.parametrize("names,h,w,core", WRONG)
def test_one_stride_less_halo_is_wrong(state_dict, names, h, w, core):
    """The halo cannot shrink by one step of the stride grid: kept values at the core's edges
    would then see zero padding where the untiled forward sees pixels."""
    stride = max(BY_NAME[n].stride for n in names)
    pa, pb, plan = _untiled_and_tiled(state_dict, names, h, w, core, halo_delta=-stride)
    assert plan.halo >= 0
    rel = ((pb - pa).abs() / pa).max().item()
    assert rel > 1e-7, rel


def test_reach_matches_a_perturbation_of_one_pixel(state_dict):
    """Independent check of the reach formula: changing one input pixel changes exactly the
    values whose window [p*s - reach, (p+1)*s - 1 + reach] holds it (float64, no tiling)."""
    from hlcli.nets.features import VGGFeatures

    specs = resolve_layers(["conv2_2", "pool2", "conv3_1"])
    model = VGGFeatures(state_dict, specs).double()
    x = torch.rand(1, 3, 64, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y = x.clone()
    y[0, :, 30, 30] += 0.5
    with torch.no_grad():
        for spec, a, b in zip(specs, model(x), model(y)):
            changed = (a - b).abs().amax(dim=(0, 1, 3)).nonzero().flatten().tolist()
            s, k = spec.stride, reach(spec)
            window = [p for p in range(64 // s) if p * s - k <= 30 <= (p + 1) * s - 1 + k]
            assert changed == window, spec.name


def test_default_plan_and_overhead_at_4096():
    """conv3_3,conv4_3 on the default CPU budget (2**21 pixels, 1024 px crops): halo 48 (reach
    46 rounded up to the stride 8) instead of 104, and the 4096x4096 tiled forwards cost 1.20x
    the untiled FLOPs instead of 1.52x (target <= 1.3x)."""
    plan = tile_plan(DEFAULT, 1 << 21)
    assert plan == TilePlan(core=928, halo=48)
    assert 2 * (plan.core + 2 * plan.halo) ** 2 <= 1 << 21
    after = tiling_cost(DEFAULT, 4096, 4096, plan)
    before = tiling_cost(DEFAULT, 4096, 4096, TilePlan(core=816, halo=104))
    assert after <= 1.3 < before
    assert after == pytest.approx(1.196, abs=1e-3) and before == pytest.approx(1.519, abs=1e-3)


@pytest.mark.parametrize("budget", [1 << 18, 1 << 21, 1 << 24])
def test_every_layer_plan_fits_the_budget_on_the_stride_grid(budget):
    for spec in LAYERS:
        plan = tile_plan([spec], budget)
        assert plan.halo % spec.stride == 0 and reach(spec) <= plan.halo < reach(spec) + spec.stride
        assert plan.core >= spec.stride and plan.core % spec.stride == 0
        if plan.core > spec.stride:
            assert 2 * (plan.core + 2 * plan.halo) ** 2 <= budget


def test_forward_flops_counts_the_convolutions():
    """conv1_1 alone on 10x10: 2 * 9 * 3 * 64 * 100; a pool floors the side of what follows."""
    assert forward_flops(resolve_layers(["conv1_1"]), 10, 10) == 2 * 9 * 3 * 64 * 100
    two = forward_flops(resolve_layers(["conv2_1"]), 11, 11)
    assert two == 2 * 9 * (3 * 64 + 64 * 64) * 121 + 2 * 9 * 64 * 128 * 25
    assert tiling_cost(DEFAULT, 512, 512, tile_plan(DEFAULT, 1 << 24)) == 1.0  # one tile
