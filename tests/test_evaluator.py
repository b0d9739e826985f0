"""hlcli.Evaluator: the run of `hlcli score` from tensors in a training loop; equal to the CLI on the same
images saved as PNG, and under torch.distributed (gloo, 2 processes) equal to one process."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import hlcli
from hlcli.cli import cli
from hlcli.engine.evaluator import Evaluator

from .schemas import validate_score

LAYERS = ["conv2_2", "conv3_1"]


def _save_pngs(root, restored, gt) -> None:
    """The tensors as 8-bit PNG files ``root/restored/img<i>.png`` and ``root/gt/img<i>.png``."""
    for side, batch in (("restored", restored), ("gt", gt)):
        (root / side).mkdir()
        for i, img in enumerate(batch):
            arr = (img.permute(1, 2, 0).numpy().astype(np.float64) * 255).round().astype(np.uint8)
            Image.fromarray(arr).save(root / side / f"img{i}.png")


def test_compute_equals_hlcli_score_on_the_same_images_saved_as_png(tmp_path, weights_file):
    torch.manual_seed(1)
    gt = torch.rand(5, 3, 40, 48)
    restored = (gt + 0.05 * torch.randn_like(gt)).clamp(0, 1)
    ev = Evaluator(lam=0.05, layers=LAYERS, metrics=["psnr", "ssim"], weights=weights_file, device="cpu", batch_size=2)
    ev.update(restored[:3], gt[:3], keys=[f"img{i}" for i in range(3)])
    ev.update(restored[3:], gt[3:], keys=[f"img{i}" for i in range(3, 5)])
    run = ev.compute()
    _save_pngs(tmp_path, restored, gt)
    res = CliRunner().invoke(cli, ["score", str(tmp_path / "restored"), str(tmp_path / "gt"), "-f", "json", "--layers",
                                   ",".join(LAYERS), "--metrics", "psnr,ssim", "--weights", str(weights_file),
                                   "--device", "cpu", "--workers", "0", "-q"])
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    mine = validate_score(json.dumps(run.document()))
    assert [p["key"] for p in mine["pairs"]] == [p["key"] for p in doc["pairs"]]
    for a, b in zip(mine["pairs"], doc["pairs"]):
        for m in ("l1", "hybrid", "perceptual", "psnr", "ssim"):
            assert a[m] == pytest.approx(b[m], rel=1e-6, abs=1e-12), (a["key"], m)
    assert mine["settings"]["quantize"] == 8
    for m, s in doc["summary"]["metrics"].items():
        assert mine["summary"]["metrics"][m]["mean"] == pytest.approx(s["mean"], rel=1e-6)
    # its worst pairs' pixels travel with the run: TensorBoard panels without files
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run.to_tensorboard(tmp_path / "tb", step=3, worst=2)
    acc = EventAccumulator(str(tmp_path / "tb"), size_guidance={"images": 0})
    acc.Reload()
    assert acc.Tags()["images"] == ["hlcli/worst/1", "hlcli/worst/2"]
    ev.reset()
    ev.update(restored, gt)
    assert [p.key for p in ev.compute().pairs] == [f"{i:06d}" for i in range(5)]  # reset starts the numbering again


def test_quantize_none_scores_the_floats(weights_file):
    torch.manual_seed(2)
    gt = torch.rand(2, 3, 32, 32)
    restored = (gt + 0.001).clamp(0, 1)
    ev = Evaluator(layers=LAYERS, weights=weights_file, device="cpu", quantize=None)
    ev.update(restored, gt)
    run = ev.compute()
    assert run.settings["quantize"] is None
    exact = (restored.double() - gt.double()).abs().mean(dim=(1, 2, 3))
    assert [p.l1 for p in run.pairs] == pytest.approx(exact.tolist(), rel=1e-6)


def test_bad_inputs_say_what_was_expected(weights_file):
    ev = Evaluator(layers=LAYERS, weights=weights_file, device="cpu")
    with pytest.raises(ValueError, match=r"in \[0, 1\], got values in \[-1"):
        ev.update(torch.full((1, 3, 32, 32), -1.0), torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match=r"shape \(N, 3, H, W\)"):
        ev.update(torch.zeros(3, 32, 32), torch.zeros(3, 32, 32))
    with pytest.raises(ValueError, match="too small"):
        ev.update(torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 2, 2))
    x = torch.rand(1, 3, 32, 32)
    ev.update(x, x, keys=["a"])
    ev.update(x, x, keys=["a"])  # a repeat (DistributedSampler's padding) counts once
    assert len(ev.compute().pairs) == 1
    with pytest.raises(ValueError, match="twice with different scores"):
        ev.update(x, torch.rand(1, 3, 32, 32), keys=["a"])


def _rank(rank: int, world: int, init: str, weights: str, out: str, inception: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        torch.manual_seed(3)
        gt = torch.rand(5, 3, 32, 40)
        restored = (gt + 0.05 * torch.randn_like(gt)).clamp(0, 1)
        keys = [f"k{i}" for i in range(5)]
        # DistributedSampler's way: strided shards padded with a repeat (5 pairs, 2 ranks: 6 slots)
        idx = [0, 1, 2, 3, 4, 0][rank::world]
        ev = Evaluator(layers=LAYERS, metrics=["psnr", "fid"], weights=weights, device="cpu", fid_dims=64,
                       inception_weights=inception)
        ev.update(restored[idx], gt[idx], keys=[keys[i] for i in idx])
        run = ev.compute()
        torch.save(run.document(), f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_distributed_gather_on_two_gloo_processes_equals_one_process(tmp_path, weights_file, inception_file):
    import torch.multiprocessing as mp

    init = f"file://{tmp_path / 'rendezvous'}"
    mp.start_processes(_rank, args=(2, init, str(weights_file), str(tmp_path / "doc"), str(inception_file)), nprocs=2,
                       join=True, start_method="spawn")
    docs = [torch.load(tmp_path / f"doc.{r}", weights_only=False) for r in range(2)]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each rank; restored after, or every later test runs on one thread
    try:
        torch.manual_seed(3)
        gt = torch.rand(5, 3, 32, 40)
        restored = (gt + 0.05 * torch.randn_like(gt)).clamp(0, 1)
        ev = Evaluator(layers=LAYERS, metrics=["psnr", "fid"], weights=weights_file, device="cpu", fid_dims=64,
                       inception_weights=inception_file)
        ev.update(restored, gt, keys=[f"k{i}" for i in range(5)])
        single = ev.compute().document()
    finally:
        torch.set_num_threads(threads)
    for doc in docs:
        assert doc["distributed"] == {"world_size": 2, "backend": "gloo"}
        assert [p["key"] for p in doc["pairs"]] == [f"k{i}" for i in range(5)]
        for a, b in zip(doc["pairs"], single["pairs"]):
            for m in ("l1", "hybrid", "psnr"):
                assert a[m] == pytest.approx(b[m], rel=1e-6), (a["key"], m)
        assert doc["summary"]["count"] == 5
        assert doc["summary"]["sets"]["samples"] == 5  # every rank's features, the padding repeat once
        assert doc["summary"]["sets"]["fid"] == pytest.approx(single["summary"]["sets"]["fid"], rel=1e-9)


def test_quantize_16_rounds_as_a_16_bit_png(weights_file):
    torch.manual_seed(4)
    gt = torch.rand(2, 3, 32, 32)
    restored = (gt + 0.01).clamp(0, 1)
    ev = Evaluator(layers=LAYERS, weights=weights_file, device="cpu", quantize=16)
    ev.update(restored, gt)
    run = ev.compute()
    r16 = (restored.double() * 65535).round()
    g16 = (gt.double() * 65535).round()
    assert run.settings["quantize"] == 16
    assert [p.l1 for p in run.pairs] == pytest.approx(((r16 - g16).abs().mean(dim=(1, 2, 3)) / 65535).tolist(),
                                                      rel=1e-12)


def test_fid_and_kid_equal_hlcli_score_on_the_same_images(tmp_path, weights_file, fid_env):
    """Set metrics from tensors: each pair's Inception features are kept (a repeated key once), so
    compute()'s FID and KID equal `hlcli score --metrics fid,kid` on the same images saved as PNG
    (it used to end in a KeyError: the run had set metrics and no features)."""
    torch.manual_seed(4)
    gt = torch.rand(6, 3, 40, 48)
    restored = (gt + 0.08 * torch.randn_like(gt)).clamp(0, 1)
    ev = Evaluator(layers=LAYERS, metrics=["fid", "kid"], weights=weights_file, device="cpu", fid_dims=64,
                   inception_weights=fid_env)
    keys = [f"img{i}" for i in range(6)]
    ev.update(restored[:4], gt[:4], keys=keys[:4])
    ev.update(restored[3:], gt[3:], keys=keys[3:])  # img3 again: counted once
    run = ev.compute()
    _save_pngs(tmp_path, restored, gt)
    res = CliRunner().invoke(cli, ["score", str(tmp_path / "restored"), str(tmp_path / "gt"), "-f", "json", "--layers",
                                   ",".join(LAYERS), "--metrics", "fid,kid", "--fid-dims", "64", "--weights",
                                   str(weights_file), "--device", "cpu", "--workers", "0", "-q"])
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    mine = validate_score(json.dumps(run.document()))["summary"]["sets"]
    assert mine["samples"] == doc["summary"]["sets"]["samples"] == 6
    assert mine["fid"] == pytest.approx(doc["summary"]["sets"]["fid"], rel=1e-9)
    assert mine["kid"] == pytest.approx(doc["summary"]["sets"]["kid"], rel=1e-9)
