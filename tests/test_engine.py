"""The throughput engine: device selection, backend settings, batching under a pixel budget,
forward chunking, CUDA out-of-memory retry, reduced precision, tiling plans, the loader's batches
(worker-count invariance is checked end to end in test_metrics.py). Everything here runs on the
CPU; CUDA paths are exercised with the CUDA queries monkeypatched."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hlcli.engine import batch as engine
from hlcli.engine.batch import BatchScorer, select_device, tile_plan
from hlcli.nets.tiling import reach
from hlcli.errors import HlcliEnvironmentError
from hlcli.nets.features import VGGFeatures
from hlcli.nets.layers import LAYERS, resolve_layers
from hlcli.inputs.loader import BatchDataset, Planned, batches, decoded_batches
from hlcli.inputs.pairing import Pair, find_pairs

from .conftest import degrade, save, textured

CPU = torch.device("cpu")
DEFAULT = resolve_layers(["conv3_3", "conv4_3"])


def _t(arrs) -> torch.Tensor:
    """HxWx3 uint8 arrays -> (N, 3, H, W) channels-last view, as the loader delivers them."""
    return torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2)


def _pairs(n: int, h: int, w: int, seed: int = 0):
    gts = [textured(h, w, seed + i) for i in range(n)]
    return [degrade(g, seed + i) for i, g in enumerate(gts)], gts


# -- device selection --------------------------------------------------------------------------


def test_explicit_cuda_without_cuda_is_an_environment_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for name in ("cuda", "cuda:0", "cuda:3"):
        with pytest.raises(HlcliEnvironmentError, match="CUDA is not available") as exc:
            select_device(name)
        assert exc.value.exit_code == 3
        assert "--device cpu" in exc.value.render()


def test_cuda_index_beyond_device_count(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert select_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(HlcliEnvironmentError, match="only 1 CUDA device"):
        select_device("cuda:1")


def test_explicit_mps_without_mps(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(HlcliEnvironmentError, match="MPS is not available"):
        select_device("mps")


def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert select_device("auto") == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert select_device("auto") == torch.device("mps")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert select_device("auto") == CPU
    assert select_device("cpu") == CPU


def test_unknown_device():
    with pytest.raises(HlcliEnvironmentError, match="unknown device"):
        select_device("tpu")


# -- backend settings ----------------------------------------------------------------------------


@pytest.fixture
def restore_cudnn_flags():
    saved = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic,
             torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    yield
    (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic,
     torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) = saved


def test_configure_backends_on_cuda_is_deterministic_without_tf32(monkeypatch, restore_cudnn_flags):
    """The CUDA branch, with the two queries that need a GPU faked."""
    monkeypatch.setattr(torch.backends.cudnn, "version", lambda: 90100)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake GPU")
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cuda.matmul.allow_tf32 = True
    info = engine.configure_backends(torch.device("cuda"))
    assert info == {"cudnn_version": 90100, "cudnn_benchmark": False, "cudnn_deterministic": True,
                    "allow_tf32": False, "device_name": "Fake GPU"}
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    info = engine.configure_backends(torch.device("cuda"), deterministic=False)
    assert info["cudnn_benchmark"] is True and info["cudnn_deterministic"] is False
    assert not torch.backends.cudnn.allow_tf32  # TF32 stays off either way


def test_configure_backends_on_cpu_records_the_cpu_path():
    info = engine.configure_backends(CPU)
    assert set(info) == {"mkldnn", "cpu_capability", "huge_pages"}
    assert isinstance(info["cpu_capability"], str)


@pytest.mark.slow
def test_importing_the_engine_enables_huge_page_allocations_unless_set():
    """THP_MEM_ALLOC_ENABLE must be in the environment before torch's first allocation, so the
    engine sets it only when it is the first to import torch, and never overrides the user."""
    code = "import os, hlcli.engine.batch; print(os.environ.get('THP_MEM_ALLOC_ENABLE'))"
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"
    out = subprocess.run([sys.executable, "-c", code], env={**env, "THP_MEM_ALLOC_ENABLE": "0"},
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0"


# -- pixel budget and forward size -----------------------------------------------------------


def test_default_budgets():
    assert engine.default_pixel_budget(CPU) == 1 << 21
    assert engine.default_forward_pixels(CPU, 1 << 21) == engine.CPU_FORWARD_PIXELS
    assert engine.default_forward_pixels(CPU, 1 << 16) == 1 << 16  # never above the memory bound


def test_forward_pixels_never_exceed_budget(state_dict):
    s = BatchScorer(state_dict, DEFAULT, device=CPU, pixel_budget=1 << 16, forward_pixels=1 << 20)
    assert s.forward_pixels == 1 << 16


def test_batch_is_forwarded_in_chunks_with_identical_results(state_dict, monkeypatch):
    rs, gs = _pairs(5, 48, 40)
    one = BatchScorer(state_dict, DEFAULT, device=CPU)  # all 5 pairs in one forward
    l1a, pa = one.measure(_t(rs), _t(gs), 255)
    chunked = BatchScorer(state_dict, DEFAULT, device=CPU, forward_pixels=2 * 2 * 48 * 40)
    seen = []
    real = BatchScorer._features

    def spy(self, x):
        seen.append(x.shape[0] * x.shape[2] * x.shape[3])
        return real(self, x)

    monkeypatch.setattr(BatchScorer, "_features", spy)
    l1b, pb = chunked.measure(_t(rs), _t(gs), 255)
    assert seen == [4 * 48 * 40, 4 * 48 * 40, 2 * 48 * 40]  # 2 + 2 + 1 pairs
    assert torch.equal(l1a, l1b)
    torch.testing.assert_close(pb, pa, rtol=1e-5, atol=0)


def test_pair_above_forward_size_runs_restored_and_gt_separately(state_dict, monkeypatch):
    rs, gs = _pairs(2, 64, 80, seed=9)
    joint = BatchScorer(state_dict, DEFAULT, device=CPU)
    l1a, pa = joint.measure(_t(rs), _t(gs), 255)
    split = BatchScorer(state_dict, DEFAULT, device=CPU, forward_pixels=64 * 80)
    seen = []
    real = BatchScorer._features

    def spy(self, x):
        seen.append(tuple(x.shape))
        return real(self, x)

    monkeypatch.setattr(BatchScorer, "_features", spy)
    l1b, pb = split.measure(_t(rs), _t(gs), 255)
    assert seen == [(1, 3, 64, 80)] * 4  # pair by pair, one image per forward
    assert torch.equal(l1a, l1b)
    torch.testing.assert_close(pb, pa, rtol=1e-5, atol=0)


# -- batching ------------------------------------------------------------------------------------


def _plan(i: int, h: int, w: int, depth: int = 8) -> Planned:
    pair = Pair(f"p{i}", Path(f"r/p{i}.png"), Path(f"g/p{i}.png"))
    return Planned(i, pair, w, h, None, (w, h), (w, h), depth)


def test_batches_group_by_size_within_budget_never_mixing():
    sizes = [(64, 64), (32, 48), (64, 64), (64, 64), (32, 48), (512, 512), (64, 64), (64, 64, 16), (64, 64)]
    plans = [_plan(i, *s) for i, s in enumerate(sizes)]
    budget = 3 * 2 * 64 * 64  # three 64x64 pairs
    out = batches(plans, batch_size=16, pixel_budget=budget)
    assert sorted(p.index for b in out for p in b) == list(range(len(plans)))  # each pair once
    for b in out:
        assert len({(p.height, p.width, p.depth) for p in b}) == 1  # never mixed, so never padded
        assert len(b) == 1 or 2 * sum(p.height * p.width for p in b) <= budget
        assert [p.index for p in b] == sorted(p.index for p in b)  # original order kept
    by_first = {b[0].index: [p.index for p in b] for b in out}
    assert by_first[0] == [0, 2, 3] and by_first[6] == [6, 8]  # cut at the budget
    assert by_first[5] == [5]  # over the budget alone: a batch of one (tiled by the engine)
    assert by_first[7] == [7]  # 16-bit pairs are their own group
    assert [len(b) for b in batches(plans, batch_size=2, pixel_budget=1 << 30) if b[0].height == 64 and
            b[0].depth == 8] == [2, 2, 1]


# -- CUDA out-of-memory retry ---------------------------------------------------------------


def test_oom_retry_splits_batches_and_tiles_single_pairs(state_dict, monkeypatch):
    """Fake a CUDA scorer whose forward runs out of memory above a size: the batch is split in
    halves, a single pair that still does not fit is tiled, and the results are the same."""
    rs, gs = _pairs(4, 96, 96)
    r, g = _t(rs), _t(gs)
    ref = BatchScorer(state_dict, DEFAULT, device=CPU)
    want = ref._sq_sums(r, g, 255)

    s = BatchScorer(state_dict, DEFAULT, device=CPU, pixel_budget=1 << 20)
    s.device = torch.device("cuda")  # only the retry logic looks at it
    limit = {"pixels": 2 * 2 * 96 * 96}  # two pairs fit, four do not
    calls = []
    real = BatchScorer._sq_sums

    def fake(self, r, g, scale):
        px = 2 * r.shape[0] * r.shape[2] * r.shape[3]
        calls.append(r.shape[0])
        if px > limit["pixels"]:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(self, r, g, scale)

    monkeypatch.setattr(BatchScorer, "_sq_sums", fake)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    got = s._sq_sums_retrying(r, g, 255)
    assert calls == [4, 2, 2]
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=0)

    # Now not even one pair fits: it is tiled with a halved budget (tiles bypass _sq_sums).
    limit["pixels"] = 0
    calls.clear()
    got = s._sq_sums_retrying(r[:1], g[:1], 255)
    assert calls == [1]
    assert s.pixel_budget == 1 << 19 and s.forward_pixels <= s.pixel_budget
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b[:1], rtol=2e-5, atol=0)


def test_oom_on_cpu_is_not_swallowed(state_dict, monkeypatch):
    s = BatchScorer(state_dict, DEFAULT, device=CPU)

    def boom(self, r, g, scale):
        raise torch.cuda.OutOfMemoryError("simulated")

    monkeypatch.setattr(BatchScorer, "_sq_sums", boom)
    rs, gs = _pairs(2, 32, 32)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        s.measure(_t(rs), _t(gs), 255)


# -- reduced precision ---------------------------------------------------------------------------


@pytest.mark.slow
def test_bf16_is_close_to_fp32(state_dict):
    """bf16 autocast keeps 8 mantissa bits in the convolutions; the float64 reductions and the
    exact L1 are unchanged. Measured on photo-like pairs: per-layer relative error ~1e-3
    (see the README's precision table); 2e-2 leaves room for other images and weights."""
    rs, gs = _pairs(3, 96, 128, seed=3)
    fp32 = BatchScorer(state_dict, DEFAULT, device=CPU)
    bf16 = BatchScorer(state_dict, DEFAULT, device=CPU, precision="bf16")
    l1a, pa = fp32.measure(_t(rs), _t(gs), 255)
    l1b, pb = bf16.measure(_t(rs), _t(gs), 255)
    assert torch.equal(l1a, l1b)  # L1 never goes through reduced precision
    assert pb.dtype == torch.float64
    rel = ((pb - pa).abs() / pa).max().item()
    assert 0 < rel < 2e-2
    # identical images still score exactly 0
    _, same = bf16.measure(_t(gs), _t(gs), 255)
    assert (same == 0).all()


def test_reduced_precision_casts_weights_once_with_identical_numbers(state_dict):
    """The low-precision scorer keeps its conv weights in bf16 instead of letting autocast cast
    them on every forward; autocast leaves them alone, so the numbers are bit for bit those of
    autocast over fp32 weights. Normalisation stays fp32."""
    from hlcli.metrics import hybrid as metrics

    rs, gs = _pairs(2, 64, 48, seed=5)
    s = BatchScorer(state_dict, DEFAULT, device=CPU, precision="bf16")
    assert s.model.features[0].weight.dtype == torch.bfloat16
    assert s.model.mean.dtype == s.model.std.dtype == torch.float32
    with torch.inference_mode():
        got = s._sq_sums(_t(rs), _t(gs), 255)
        model = VGGFeatures(state_dict, DEFAULT, memory_format=torch.channels_last)
        x = torch.cat([_t(rs), _t(gs)]).contiguous(memory_format=torch.channels_last).float().div_(255)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            feats = model(x)
        want = [metrics.squared_diff_sum(f[:2], f[2:]) for f in feats]
    for a, b in zip(got, want):
        assert torch.equal(a, b)


def test_unknown_precision(state_dict):
    with pytest.raises(ValueError, match="precision"):
        BatchScorer(state_dict, DEFAULT, device=CPU, precision="fp8")


# -- tiling --------------------------------------------------------------------------------------


@pytest.mark.parametrize("names", [["conv1_1"], ["relu2_2"], ["conv3_3", "conv4_3"], ["pool4"], ["conv5_4"],
                                   ["conv2_1", "pool5"]])
@pytest.mark.parametrize("budget", [1 << 18, 1 << 21, 1 << 24])
def test_tile_plan_halo_covers_the_reach_on_the_stride_grid(names, budget):
    """The halo is the layers' reach (what a value sees beyond its own stride block), rounded up
    to the deepest stride: the smallest that keeps tiled == untiled (tests/test_tiling.py)."""
    specs = resolve_layers(names)
    stride = max(s.stride for s in specs)
    r = max(reach(s) for s in specs)
    plan = tile_plan(specs, budget)
    assert plan.halo >= r and plan.halo % stride == 0 and plan.halo - r < stride
    assert plan.core >= stride and plan.core % stride == 0
    if plan.core > stride:  # not clamped to the minimum: the crops fit the budget
        assert 2 * (plan.core + 2 * plan.halo) ** 2 <= budget


def test_default_layers_tile_plan_numbers():
    plan = tile_plan(DEFAULT, 1 << 21)
    assert plan.halo == 48  # conv4_3 reaches (100 - 8) / 2 = 46 px beyond its block, rounded up to its stride 8
    assert plan.core == 928  # 1024 px crops on the CPU default budget


def test_l1_bands_are_exact():
    rng = np.random.default_rng(1)
    r = torch.from_numpy(rng.integers(0, 256, (2, 3, 37, 29), dtype=np.uint8))
    g = torch.from_numpy(rng.integers(0, 256, (2, 3, 37, 29), dtype=np.uint8))
    whole = engine._abs_diff_sums(r, g)
    banded = engine._abs_diff_sums(r, g, chunk_values=2 * 3 * 29 * 5)  # 5-row bands
    assert torch.equal(whole, banded)
    assert whole[0].item() == float((r[0].int() - g[0].int()).abs().sum())


# -- the network ---------------------------------------------------------------------------------


def test_relu_inplace_only_where_no_requested_output_is_overwritten(state_dict):
    model = VGGFeatures(state_dict, resolve_layers(["conv3_3", "relu4_1", "conv4_3"]))
    for index, module in enumerate(model.features):
        if isinstance(module, torch.nn.ReLU):
            kept_before = index - 1 in {14, 23}
            assert module.inplace is not kept_before, LAYERS[index].name


def test_network_weights_are_float32_copies_in_the_requested_layout(state_dict):
    sd = {k: v.clone() for k, v in state_dict.items()}
    model = VGGFeatures(sd, DEFAULT, memory_format=torch.channels_last)
    w = model.features[0].weight
    assert w.dtype == torch.float32 and w.is_contiguous(memory_format=torch.channels_last)
    sd["features.0.weight"].zero_()
    assert w.abs().sum() > 0  # not a view of the caller's tensor
    half = {k: v.half() for k, v in state_dict.items()}
    assert VGGFeatures(half, DEFAULT).features[0].weight.dtype == torch.float32


# -- loader and runner ---------------------------------------------------------------------------


@pytest.fixture
def many_pairs(tmp_path):
    for i in range(5):
        gt = textured(40, 48, 50 + i)
        save(tmp_path / "g" / f"{i}.png", gt)
        save(tmp_path / "r" / f"{i}.png", degrade(gt, 50 + i))
    return tmp_path / "r", tmp_path / "g"


def test_single_batch_is_decoded_in_process(many_pairs, monkeypatch):
    import torch.utils.data

    def no_loader(*a, **k):
        raise AssertionError("a DataLoader was started for a single batch")

    monkeypatch.setattr(torch.utils.data, "DataLoader", no_loader)
    pairing = find_pairs(*many_pairs)
    plans = [_plan_from(i, p) for i, p in enumerate(pairing.pairs)]
    groups = batches(plans, batch_size=16, pixel_budget=1 << 21)
    assert len(groups) == 1
    items = list(decoded_batches(groups, alpha="error", max_pixels=None, workers=4, pin_memory=False))
    assert len(items) == 1 and items[0][1].shape == (5, 3, 40, 48)
    assert items[0][1].dtype == torch.uint8


def _plan_from(i, pair):
    from hlcli.inputs.loader import plan_pair

    return plan_pair(i, pair, size_policy="error", max_pixels=None, min_side=8)


def test_batch_dataset_items_are_channels_last_integers(many_pairs):
    pairing = find_pairs(*many_pairs)
    plans = [_plan_from(i, p) for i, p in enumerate(pairing.pairs)]
    ok, r, g, failures = BatchDataset([plans[:3]], alpha="error", max_pixels=None)[0]
    assert [p.index for p in ok] == [0, 1, 2] and not failures
    assert r.is_contiguous(memory_format=torch.channels_last)
    assert r.shape == g.shape == (3, 3, 40, 48)


def test_auto_workers():
    from hlcli.engine.scoring import auto_workers

    assert auto_workers("cpu") == 0  # the forward already uses every core (see its docstring)
    assert 1 <= auto_workers("cuda") <= 8
