"""hlcli's numbers against an independent float64 computation, and the metric invariants: identical
images score 0; scores do not depend on batch composition, batch size, worker count or tiling;
reductions accumulate in float64; the network stops after the deepest layer."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from hlcli.metrics import hybrid as metrics
from hlcli.cli import cli
from hlcli.engine.batch import BatchScorer
from hlcli.nets.features import VGGFeatures
from hlcli.nets.layers import BY_NAME, resolve_layers
from hlcli.inputs.loader import batches, decode_pair, plan_pair
from hlcli.inputs.pairing import find_pairs

from .conftest import SAMPLES, degrade, save, textured
from .reference import load_rgb01, reference_model, reference_scores

LAYERS = ["relu1_2", "conv2_2", "conv3_3", "relu3_3", "conv4_3", "relu4_3", "pool4"]


@pytest.fixture(scope="module")
def ref_model(state_dict):
    return reference_model(state_dict)


def _score_dir(state_dict, restored, gt, layers, **kw):
    specs = resolve_layers(layers)
    scorer = BatchScorer(state_dict, specs, device=torch.device("cpu"), **kw)
    pairing = find_pairs(restored, gt)
    plans = [plan_pair(i, p, size_policy="error", max_pixels=None, min_side=1) for i, p in enumerate(pairing.pairs)]
    out = {}
    for group in batches(plans, batch_size=16, pixel_budget=scorer.pixel_budget):
        arrs = [decode_pair(p, alpha="error", max_pixels=None) for p in group]
        r = torch.from_numpy(np.stack([a for a, _ in arrs])).permute(0, 3, 1, 2)
        g = torch.from_numpy(np.stack([b for _, b in arrs])).permute(0, 3, 1, 2)
        l1, per_layer = scorer.measure(r, g, 255)
        for j, p in enumerate(group):
            out[p.pair.key] = (float(l1[j]), per_layer[j].tolist(), p)
    return out


@pytest.mark.slow
def test_matches_float64_reference_on_real_images(state_dict, ref_model):
    """The samples are real photos of different sizes (and one JPEG)."""
    results = _score_dir(state_dict, SAMPLES / "restored", SAMPLES / "gt", LAYERS)
    assert len(results) >= 4
    indices = [BY_NAME[n].index for n in LAYERS]
    for key, (l1, per_layer, plan) in results.items():
        rest, gt = load_rgb01(plan.pair.restored), load_rgb01(plan.pair.gt)
        ref_l1, ref_p = reference_scores(ref_model, rest, gt, indices)
        assert l1 == pytest.approx(ref_l1, rel=1e-9, abs=0), key
        for name, idx, value in zip(LAYERS, indices, per_layer):
            if ref_p[idx] == 0:
                assert value == 0, (key, name)
            else:
                assert value == pytest.approx(ref_p[idx], rel=1e-4), (key, name)


def test_conv_layer_is_before_relu(state_dict):
    specs = resolve_layers(["conv3_3", "relu3_3"])
    model = VGGFeatures(state_dict, specs)
    x = torch.from_numpy(textured(64, 64, 3)).permute(2, 0, 1)[None].float() / 255
    conv, relu = model(x)
    assert (conv < 0).any(), "conv3_3 must be the pre-activation output"
    assert not torch.equal(conv, relu)
    assert torch.equal(torch.relu(conv), relu)


def test_network_truncated_after_deepest_layer(state_dict):
    for names, depth in ((["conv1_1"], 1), (["conv3_3", "conv2_1"], 15), (["conv4_3"], 24), (["pool5"], 37)):
        model = VGGFeatures(state_dict, resolve_layers(names))
        assert len(model.features) == depth
        assert model.depth == depth


def test_identical_images_score_exactly_zero(state_dict, tmp_path):
    img = textured(72, 40, 5)
    save(tmp_path / "r" / "x.png", img)
    save(tmp_path / "g" / "x.png", img)
    res = _score_dir(state_dict, tmp_path / "r", tmp_path / "g", LAYERS)
    l1, per_layer, _ = res["x"]
    assert l1 == 0.0
    assert per_layer == [0.0] * len(LAYERS)


def test_scores_independent_of_batch_composition(state_dict, tmp_path):
    imgs = [textured(64, 64, s) for s in range(5)]
    for i, im in enumerate(imgs):
        save(tmp_path / "r" / f"{i}.png", degrade(im, i))
        save(tmp_path / "g" / f"{i}.png", im)
    specs = resolve_layers(["conv3_3", "conv4_3"])
    scorer = BatchScorer(state_dict, specs, device=torch.device("cpu"))

    def t(arrs):
        return torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2)

    rs = [degrade(im, i) for i, im in enumerate(imgs)]
    _, all5 = scorer.measure(t(rs), t(imgs), 255)
    for i in range(5):
        _, one = scorer.measure(t(rs[i : i + 1]), t(imgs[i : i + 1]), 255)
        torch.testing.assert_close(one[0], all5[i], rtol=1e-5, atol=0)
    _, two = scorer.measure(t(rs[3:5]), t(imgs[3:5]), 255)
    torch.testing.assert_close(two, all5[3:5], rtol=1e-5, atol=0)


@pytest.mark.slow
def test_scores_do_not_depend_on_batch_size_or_worker_count(cli_env, pair_dirs):
    """End to end through the CLI. Decoding in this process or in 2 worker processes gives the
    same scores (batch size 2: the pairs of pair_dirs make 3 batches through the DataLoader), and
    so does any batch size (1: every pair alone; 16: same-size pairs batched together)."""
    def run(batch_size: int, workers: int) -> dict[str, dict]:
        res = CliRunner().invoke(cli, ["score", *map(str, pair_dirs), "-f", "json", "--batch-size",
                                       str(batch_size), "--workers", str(workers)])
        assert res.exit_code == 0, res.stderr
        doc = json.loads(res.stdout)
        assert doc["settings"]["workers"] == workers
        return {p["key"]: p for p in doc["pairs"]}

    base = run(16, 0)
    in_process, in_workers = run(2, 0), run(2, 2)
    assert in_process.keys() == in_workers.keys() == base.keys() and len(base) == 4
    for key, p in in_process.items():  # worker count: every layer within 1e-6
        w = in_workers[key]
        assert w["l1"] == p["l1"]
        for name, v in p["layers"].items():
            assert w["layers"][name] == pytest.approx(v, rel=1e-6), (key, name)
    for other in (run(1, 0), in_process, in_workers):  # batch size and workers against the base
        for key, p in other.items():
            b = base[key]
            assert p["l1"] == b["l1"]
            for k in ("perceptual", "hybrid"):
                assert p[k] == pytest.approx(b[k], rel=1e-5, abs=0)


@pytest.mark.slow
def test_tiled_equals_untiled(state_dict):
    """Exact tiled inference: a tiny pixel budget forces tiles (with halo) on a pair whose
    untiled forward also fits, for several layer depths and odd sizes."""
    rng = np.random.default_rng(0)
    for names, (h, w) in ((["conv2_2", "conv3_3"], (203, 170)), (["conv3_3", "conv4_3"], (301, 259)),
                          (["relu1_1", "pool4"], (260, 333))):
        gt = textured(h, w, 11)
        rest = np.clip(gt.astype(int) + rng.integers(-20, 21, gt.shape), 0, 255).astype(np.uint8)
        specs = resolve_layers(names)
        r = torch.from_numpy(rest).permute(2, 0, 1)[None]
        g = torch.from_numpy(gt).permute(2, 0, 1)[None]
        full = BatchScorer(state_dict, specs, device=torch.device("cpu"), pixel_budget=1 << 24)
        tiled = BatchScorer(state_dict, specs, device=torch.device("cpu"),
                       pixel_budget=2 * 100 * 100, tile_core=96)
        assert 2 * h * w > tiled.pixel_budget and tiled.tiles.core < min(h, w)
        l1a, pa = full.measure(r, g, 255)
        l1b, pb = tiled.measure(r, g, 255)
        assert l1a.item() == l1b.item()
        torch.testing.assert_close(pb, pa, rtol=2e-5, atol=0)


def test_l1_is_exact_on_integers():
    a = torch.tensor([[[[0, 255], [7, 9]]]], dtype=torch.uint8).expand(1, 3, 2, 2)
    b = torch.tensor([[[[255, 0], [8, 9]]]], dtype=torch.uint8).expand(1, 3, 2, 2)
    assert metrics.l1(a, b, scale=255).item() == (255 + 255 + 1) / (4 * 255)


def test_feature_mse_accumulates_in_float64():
    # 2**25 values of 1 + 1e-4: a float32 running sum would lose the small part.
    a = torch.full((1, 1, 4096, 8192), 1.0001, dtype=torch.float32)
    b = torch.zeros_like(a)
    got = metrics.feature_mse(a, b).item()
    sq = float(np.float32(1.0001) * np.float32(1.0001))  # the square itself is float32
    assert got == pytest.approx(sq, rel=1e-12)
    naive = ((a - b) ** 2).sum().item() / a.numel()  # a float32 reduction drifts measurably
    assert naive != pytest.approx(sq, rel=1e-12)


def test_hybrid_loss_module_is_differentiable(state_dict):
    loss_fn = metrics.HybridLoss(state_dict, layers=["conv2_2"], lam=0.1)
    gt = torch.rand(2, 3, 32, 32)
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    loss = loss_fn(x, gt)
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert loss_fn(gt, gt).item() == 0.0
    per = metrics.HybridLoss(state_dict, layers=["conv2_2"], lam=0.1, reduction="none")(x.detach(), gt)
    assert per.shape == (2,)
    assert per.mean().item() == pytest.approx(loss.item(), rel=1e-9)
