"""``--metrics``: PSNR, SSIM (RGB and Y) and LPIPS from the same pass as the hybrid, checked end to
end from the command line against independent implementations: BasicSR's numpy functions
restated with OpenCV (tests/basicsr_oracle.py), scikit-image's SSIM and the ``lpips`` package.
Also: direction and unit in every consumer (gates, baselines, compare, table, sort), identical
images (+inf PSNR, strict JSON), 16-bit images, maps, shards, and the refusals."""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from skimage.metrics import structural_similarity

from hlcli.cli import cli

from . import basicsr_oracle as B
from .cases import grey16, strict_json
from .conftest import degrade, save, textured

PIXEL = "psnr,psnr_y,ssim,ssim_y"


def run(*args):
    return CliRunner().invoke(cli, [*map(str, args)])


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    """Three 8-bit pairs of odd sizes (one exactly identical) and their arrays (RGB, HWC)."""
    root = tmp_path_factory.mktemp("paper")
    arrays = {}
    for i, (h, w) in enumerate([(67, 93), (48, 64), (40, 52)]):
        gt = textured(h, w, i + 10)
        restored = gt.copy() if i == 2 else degrade(gt, i + 10, amount=6 + 6 * i)
        save(root / "r" / f"p{i}.png", restored)
        save(root / "g" / f"p{i}.png", gt)
        arrays[f"p{i}"] = (restored, gt)
    return root, arrays


@pytest.fixture(scope="module")
def doc(dirs, weights_file, backbone_files):
    root, _ = dirs
    r = run("score", root / "r", root / "g", "--weights", weights_file, "--lpips-weights", backbone_files["alexnet"],
            "--lpips-vgg-weights", backbone_files["vgg16"], "--metrics", f"{PIXEL},lpips,lpips_vgg",
            "--layers", "conv2_2", "-f", "json")
    assert r.exit_code == 0, r.stderr
    return strict_json(r.stdout)


def bgr(a):
    return np.ascontiguousarray(a[..., ::-1])


@pytest.mark.parametrize("crop", [0, 4])
def test_psnr_and_ssim_agree_with_basicsr(dirs, weights_file, crop):
    root, arrays = dirs
    r = run("score", root / "r", root / "g", "--weights", weights_file, "--metrics", PIXEL, "--crop-border", crop,
            "--layers", "conv2_2", "-f", "json")
    assert r.exit_code == 0, r.stderr
    pairs = {p["key"]: p for p in strict_json(r.stdout)["pairs"]}
    for key, (restored, gt) in arrays.items():
        p = pairs[key]
        for name, y in (("psnr", False), ("psnr_y", True)):
            ref = B.calculate_psnr(bgr(restored), bgr(gt), crop, test_y_channel=y)
            if math.isinf(ref):
                assert p[name] is None  # +inf is null in strict JSON
            else:
                assert abs(p[name] - ref) <= 1e-8, (key, name)
        for name, y in (("ssim", False), ("ssim_y", True)):
            assert abs(p[name] - B.calculate_ssim(bgr(restored), bgr(gt), crop, test_y_channel=y)) <= 1e-9, (key, name)
        c = slice(crop, -crop) if crop else slice(None)
        sk = structural_similarity(gt[c, c].astype(np.float64), restored[c, c].astype(np.float64), gaussian_weights=True,
                                   sigma=1.5, use_sample_covariance=False, data_range=255, channel_axis=2)
        assert abs(p["ssim"] - sk) <= 1e-9


def test_lpips_agrees_with_the_lpips_package(dirs, doc, lpips_oracles):
    _, arrays = dirs
    pairs = {p["key"]: p for p in doc["pairs"]}
    for key, (restored, gt) in arrays.items():
        r, g = (torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255 for a in (restored, gt))
        for name, net in (("lpips", "alex"), ("lpips_vgg", "vgg")):
            with torch.no_grad():
                ref = float(lpips_oracles[net](r, g, normalize=True))
            assert pairs[key][name] == pytest.approx(ref, rel=1e-5, abs=1e-12), (key, name)
    lp = doc["settings"]["lpips_networks"]
    assert set(lp) == {"lpips-alex", "lpips-vgg"} and len(lp["lpips-alex"]["backbone"]["sha256"]) == 64
    assert lp["lpips-vgg"]["heads"]["package"] == "torchmetrics"


def test_identical_pair_and_strict_documents(doc, dirs, weights_file):
    same = next(p for p in doc["pairs"] if p["key"] == "p2")
    assert same["psnr"] is None and same["psnr_y"] is None  # +inf
    assert same["ssim"] == 1.0 and same["ssim_y"] == 1.0 and same["lpips"] == 0 and same["lpips_vgg"] == 0
    stats = doc["summary"]["metrics"]["psnr"]
    assert stats["infinite"] == 1 and stats["count"] == 2  # statistics over the finite values
    finite = [p["psnr"] for p in doc["pairs"] if p["psnr"] is not None]
    assert stats["mean"] == pytest.approx(np.mean(finite), rel=1e-15)
    assert "infinite" not in doc["summary"]["metrics"]["ssim"]
    assert doc["settings"]["metrics"] == ["psnr", "psnr_y", "ssim", "ssim_y", "lpips", "lpips_vgg"]
    assert doc["settings"]["metric_definitions"]["psnr"]["higher_is_better"] is True
    root, _ = dirs
    r = run("score", root / "r", root / "g", "--weights", weights_file, "--metrics", "psnr", "--layers", "conv2_2",
            "-f", "csv")
    rows = {row["key"]: row for row in csv.DictReader(io.StringIO(r.stdout))}
    assert rows["p2"]["psnr"] == "inf" and float(rows["p0"]["psnr"]) > 0
    r = run("score", root / "r", root / "g", "--weights", weights_file, "--metrics", "psnr", "--layers", "conv2_2",
            "-f", "jsonl")
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert any(x.get("key") == "p2" and x.get("psnr", 0) is None for x in lines)


def test_plain_runs_are_unchanged(dirs, weights_file):
    root, _ = dirs
    d = strict_json(run("score", root / "r", root / "g", "--weights", weights_file, "--layers", "conv2_2",
                        "-f", "json").stdout)
    assert "metrics" not in d["settings"] and set(d["summary"]["metrics"]) == {"l1", "conv2_2", "perceptual", "hybrid"}
    assert not {"psnr", "ssim", "lpips"} & set(d["pairs"][0])


def test_16_bit_images_on_the_8_bit_scale(tmp_path, weights_file):
    gt = np.stack([grey16(s, 40, 44) for s in (1, 2, 3)], axis=2)
    restored = np.clip(gt.astype(np.int64) + np.random.default_rng(0).integers(-900, 900, gt.shape), 0, 65535)
    restored = restored.astype(np.uint16)
    import tifffile

    for side, arr in (("r", restored), ("g", gt)):
        (tmp_path / side).mkdir()
        tifffile.imwrite(tmp_path / side / "a.tif", arr, photometric="rgb")
    d = strict_json(run("score", tmp_path / "r", tmp_path / "g", "--weights", weights_file, "--metrics", "psnr,ssim",
                        "--layers", "conv2_2", "-f", "json").stdout)
    a, b = restored / 65535 * 255, gt / 65535 * 255  # [0, 1] values on BasicSR's 0-255 scale
    psnr = 10 * np.log10(255 ** 2 / np.mean((a - b) ** 2))
    ssim = np.mean([B._ssim(a[..., c], b[..., c]) for c in range(3)])
    assert abs(d["pairs"][0]["psnr"] - psnr) <= 1e-8 and abs(d["pairs"][0]["ssim"] - ssim) <= 1e-9


def test_same_values_whatever_the_batch_and_tiling(dirs, doc, weights_file, backbone_files, monkeypatch):
    from hlcli.metrics import psnr_ssim as pixelmetrics

    monkeypatch.setattr(pixelmetrics, "SSIM_BAND_VALUES", 1 << 12)  # SSIM in bands of a few rows
    root, _ = dirs
    # LPIPS-VGG's own tiling has its own test below (test_lpips_vgg_tiles_exactly)
    r = run("score", root / "r", root / "g", "--weights", weights_file, "--lpips-weights", backbone_files["alexnet"],
            "--metrics", f"{PIXEL},lpips", "--layers", "conv2_2", "--batch-size", "1", "--pixel-budget", "4096",
            "-f", "json")
    assert r.exit_code == 0, r.stderr
    tiled = {p["key"]: p for p in strict_json(r.stdout)["pairs"]}
    for p in doc["pairs"]:
        assert tiled[p["key"]]["tiled"]
        for m in ("psnr", "psnr_y"):
            assert tiled[p["key"]][m] == p[m]
        for m in ("ssim", "ssim_y"):
            assert tiled[p["key"]][m] == pytest.approx(p[m], abs=1e-12)
        assert tiled[p["key"]]["lpips"] == pytest.approx(p["lpips"], rel=1e-6, abs=1e-12)


def test_direction_in_gates_baselines_sort_and_compare(dirs, weights_file, tmp_path):
    root, _ = dirs
    base = [root / "r", root / "g", "--weights", weights_file, "--metrics", "psnr,ssim", "--layers", "conv2_2"]
    d = strict_json(run("score", *base, "-f", "json").stdout)
    mean_psnr = d["summary"]["metrics"]["psnr"]["mean"]
    assert run("score", *base, "-f", "json", "--fail-if", f"mean.psnr<{mean_psnr - 1}").exit_code == 0
    failed = run("score", *base, "-f", "json", "--fail-if", f"mean.psnr<{mean_psnr + 1}")
    assert failed.exit_code == 1
    assert run("score", *base, "-f", "json", "--fail-if", "min.ssim<0.1").exit_code == 0
    # every pair identical: PSNR +inf throughout, the gate sees +inf (strict JSON: null + reason)
    same = tmp_path / "same"
    for side in ("r", "g"):
        save(same / side / "a.png", textured(32, 32, 3))
    r = run("score", same / "r", same / "g", "--weights", weights_file, "--metrics", "psnr", "--layers", "conv2_2",
            "-f", "json", "--fail-if", "min.psnr<30")
    assert r.exit_code == 0, r.stderr
    check = strict_json(r.stdout)["gate"]["checks"][0]
    assert check["observed"] is None and "+inf" in check["reason"] and check["passed"]
    # sort: worst first is the lowest PSNR
    r = run("score", *base, "-f", "table", "--sort", "psnr")
    lines = r.stdout.splitlines()
    body = [line for line in lines[: next(i for i, x in enumerate(lines) if x.startswith("└"))] if line.startswith("│")]
    lowest = min((p for p in d["pairs"] if p["psnr"] is not None), key=lambda p: p["psnr"])["key"]
    assert body[0].split("│")[1].strip() == lowest and "∞" in body[-1]
    low_psnr = next(p["psnr"] for p in d["pairs"] if p["key"] == lowest)
    assert "PSNR↑ dB" in r.stdout and f" {low_psnr:.3f} " in body[0]  # dB with 3 decimals, never ×10⁻³
    # baseline: a drop of PSNR is a regression, a rise is not
    better, worse = tmp_path / "better", tmp_path / "worse"
    for i, (h, w) in enumerate([(67, 93), (48, 64), (40, 52)]):
        gt = textured(h, w, i + 10)
        save(better / f"p{i}.png", gt if i == 2 else degrade(gt, i + 10, amount=2))  # p2 stays identical
        save(worse / f"p{i}.png", degrade(gt, i + 10, amount=30))
    stored = tmp_path / "base.json"
    stored.write_text(run("score", *base, "-f", "json").stdout)
    common = ["--weights", weights_file, "--metrics", "psnr,ssim", "--layers", "conv2_2", "-f", "json",
              "--baseline", stored, "--max-regression", "psnr=0.05", "--max-regression", "ssim=0.001"]
    up = run("score", better, root / "g", *common)
    assert up.exit_code == 0, up.stdout
    down = run("score", worse, root / "g", *common)
    assert down.exit_code == 1, down.stderr
    reg = strict_json(down.stdout)["gate"]["regressions"]
    assert {r["metric"] for r in reg["regressed"]} == {"psnr", "ssim"}
    assert all(r["delta"] < 0 for r in reg["regressed"] if r["delta"] is not None)  # drops
    # compare: B (better) wins PSNR pairs by being higher
    b_doc = tmp_path / "b.json"
    b_doc.write_text(run("score", better, root / "g", *base[2:], "-f", "json").stdout)
    c = strict_json(run("compare", stored, b_doc, "-f", "json").stdout)
    assert c["metrics"]["psnr"]["higher_is_better"] and c["metrics"]["psnr"]["b_wins"] == 2
    assert c["metrics"]["psnr"]["b_losses"] == 0 and c["metrics"]["l1"]["b_wins"] == 2
    assert c["metrics"]["psnr"]["pairs_left_out"] == 1 and c["metrics"]["psnr"]["ties"] == 1  # p2: +inf in both
    # table: the best PSNR is the highest; headers with arrows and units
    t = run("table", stored, b_doc, "--name", "a", "--name", "b", "--metrics", "psnr,ssim,hybrid", "-f", "markdown")
    assert t.exit_code == 0, t.stderr
    assert t.stdout.splitlines()[0] == "| run | PSNR↑ dB | SSIM↑ | hybrid↓ |"
    b_row = next(line for line in t.stdout.splitlines() if line.startswith("| b |"))
    assert b_row.count("**") == 6  # b is best on all three


def test_video_average_of_clip_means(tmp_path, weights_file):
    """--average groups: the mean of per-clip means (BasicSR's REDS4/Vid4), beside the per-frame mean."""
    for clip, frames in (("000", 1), ("011", 3)):
        for f in range(frames):
            gt = textured(32, 32, 7 * f + len(clip) + int(clip))
            save(tmp_path / "r" / clip / f"{f}.png", degrade(gt, f, amount=4 + 10 * int(clip == "011")))
            save(tmp_path / "g" / clip / f"{f}.png", gt)
    stored = tmp_path / "run.json"
    r = run("score", tmp_path / "r", tmp_path / "g", "-r", "--group-by", "dir", "--weights", weights_file,
            "--metrics", "psnr", "--layers", "conv2_2", "-f", "json", "-o", stored)
    assert r.exit_code == 0, r.stderr
    d = json.loads(stored.read_text())
    clips = d["summary"]["groups"]
    per_clip = np.mean([clips[c]["metrics"]["psnr"]["mean"] for c in clips])
    t = strict_json(run("table", stored, "--group-by", "dir", "--average", "groups", "--metrics", "psnr",
                        "-f", "json").stdout)
    overall = next(j for j, c in enumerate(t["columns"]) if c["group"] is None)
    assert t["rows"][0]["values"][overall] == pytest.approx(per_clip, rel=1e-15)
    assert per_clip != pytest.approx(d["summary"]["metrics"]["psnr"]["mean"], rel=1e-6)  # not the per-frame mean
    bad = run("table", stored, "--average", "groups", "--metrics", "psnr")
    assert bad.exit_code == 2 and "--group-by" in bad.stderr


def test_maps_means_equal_scores(dirs, weights_file, backbone_files, tmp_path):
    root, _ = dirs
    out = tmp_path / "maps"
    r = run("score", root / "r", root / "g", "--weights", weights_file, "--lpips-weights", backbone_files["alexnet"],
            "--metrics", "ssim,ssim_y,lpips", "--layers", "conv2_2", "--save-maps", out, "--maps-format", "npy",
            "-f", "json")
    assert r.exit_code == 0, r.stderr
    for p in strict_json(r.stdout)["pairs"]:
        for m in ("ssim", "ssim_y", "lpips"):
            arr = np.load(out / f"{p['key']}.{m}.npy")
            assert abs(float(arr.astype(np.float64).mean()) - p[m]) <= 1e-6, (p["key"], m)
        assert np.load(out / f"{p['key']}.ssim.npy").shape == (p["height"] - 10, p["width"] - 10)
        assert np.load(out / f"{p['key']}.lpips.npy").shape == (p["height"], p["width"])


def test_shards_merge_with_metrics(dirs, weights_file, tmp_path):
    root, _ = dirs
    base = [root / "r", root / "g", "--weights", weights_file, "--metrics", "psnr,ssim_y", "--layers", "conv2_2"]
    whole = strict_json(run("score", *base, "-f", "json").stdout)
    parts = []
    for i in range(2):
        parts.append(tmp_path / f"part{i}.json")
        assert run("score", *base, "--shard", f"{i}/2", "-f", "json", "-o", parts[-1]).exit_code == 0
    merged = strict_json(run("merge", *parts, "-f", "json").stdout)
    strip = ("command",)
    assert [{k: v for k, v in p.items() if k not in strip} for p in merged["pairs"]] == whole["pairs"]
    assert merged["summary"]["metrics"]["psnr"] == whole["summary"]["metrics"]["psnr"]


def test_refusals(dirs, weights_file, monkeypatch):
    root, _ = dirs
    base = ["score", root / "r", root / "g", "--weights", weights_file, "--layers", "conv2_2"]
    r = run(*base, "--metrics", "psnry")
    assert r.exit_code == 2 and "did you mean psnr_y" in r.stderr
    r = run(*base, "--metrics", "hybrid")
    assert r.exit_code == 2 and "always computed" in r.stderr
    r = run(*base, "--fail-if", "mean.psnr<30")
    assert r.exit_code == 2 and "add --metrics psnr" in r.stderr
    r = run(*base, "--metrics", "ssim", "--fail-if", "mean.lpips>0.1")
    assert r.exit_code == 2 and "add --metrics ssim,lpips" in r.stderr
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name.startswith("torchmetrics") else real(name, *a))
    r = run(*base, "--metrics", "lpips", "--offline")
    assert r.exit_code == 2 and "pip install 'hlcli[lpips]'" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_python_api(dirs, weights_file):
    import hlcli

    root, arrays = dirs
    run_ = hlcli.score_dirs(root / "r", root / "g", layers=["conv2_2"], weights=str(weights_file),
                            metrics=("psnr", "ssim_y"))
    p = next(p for p in run_.pairs if p.key == "p0")
    restored, gt = arrays["p0"]
    assert abs(p.metric("psnr") - B.calculate_psnr(bgr(restored), bgr(gt), 0)) <= 1e-8
    assert p.metric("ssim_y") == p.extra["ssim_y"] and run_.metric_names[-2:] == ["psnr", "ssim_y"]
    assert math.isinf(next(p for p in run_.pairs if p.key == "p2").metric("psnr"))


def test_lpips_vgg_tiles_exactly(backbone_files, monkeypatch):
    """A pair above the pixel budget is tiled for LPIPS-VGG as for VGG-19: with real cuts (48 px
    cores, 96 px halo on a 150x170 pair) the value and the map equal the untiled ones; one
    stride less of halo is measurably wrong (the halo is the smallest exact one)."""
    from hlcli.metrics import lpips as LM
    from hlcli.nets import lpips_net
    from hlcli.nets import tiling
    from hlcli.metrics.psnr_ssim import PixelPair

    net = lpips_net.build("vgg", backbone_files["vgg16"], offline=True)[0]
    gt = textured(150, 170, 3)
    t = [torch.from_numpy(a).permute(2, 0, 1)[None] for a in (degrade(gt, 3, amount=20), gt)]
    px = PixelPair(*t, 255)
    px.nets, px.pixel_budget = {"lpips-vgg": LM.LoadedLPIPS(net, {})}, None
    whole, whole_map = LM.lpips_vgg(px), LM.lpips_vgg_map(px)
    monkeypatch.setattr(LM, "TILE_CORE", 48)
    px.pixel_budget = 4096
    assert tiling.tile_plan(LM.VGG16_LAYERS, 4096, 48).halo == 96
    assert float(LM.lpips_vgg(px)) == pytest.approx(float(whole), rel=1e-6)
    assert torch.allclose(LM.lpips_vgg_map(px), whole_map, rtol=1e-5, atol=1e-9)
    real_plan = tiling.tile_plan
    monkeypatch.setattr(LM, "tile_plan", lambda *a: tiling.TilePlan(48, real_plan(*a).halo - 16))
    assert float(LM.lpips_vgg(px)) != pytest.approx(float(whole), rel=1e-6)
