"""``torchrun --standalone --nproc-per-node 2 -m hlcli score`` (gloo, CPU) as a subprocess: the
output is the single-process run's; failures on one rank are reported once, bounded in time, with
no output written. Each torchrun costs a few seconds of start-up, so these are few and slow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from hlcli.cli import cli

from .conftest import SAMPLES

pytestmark = pytest.mark.slow

HARNESS = Path(__file__).with_name("dist_harness.py")
FAST = ["--layers", "conv2_2,conv3_1", "--workers", "0", "--batch-size", "2"]
# fields that record the world size, the threads per rank, time or the command line
ENVIRONMENT = ("command", "threads", "device", "distributed", "platform", "versions", "hlcli_version")


def _photos(root: Path, count: int) -> tuple[Path, Path]:
    """``count`` pairs of real photos (samples/), made small: 64x48 and 48x64 crops."""
    names = sorted(p.stem for p in (SAMPLES / "gt").iterdir())
    for i in range(count):
        name = names[i % len(names)]
        box = (0, 0, 64, 48) if i % 2 == 0 else (16, 8, 64, 72)
        for side in ("restored", "gt"):
            src = next((SAMPLES / side).glob(f"{name}.*"))
            (root / side).mkdir(parents=True, exist_ok=True)
            Image.open(src).convert("RGB").resize((96, 96)).crop(box).save(root / side / f"{i:02}-{name}.png")
    return root / "restored", root / "gt"


def _torchrun(args: list, env: dict, timeout: float = 120, script: str | None = None) -> tuple[int, str, str, float]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    cmd += [str(script)] if script else ["-m", "hlcli"]
    started = time.monotonic()
    proc = subprocess.run(cmd + [str(a) for a in args], env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=timeout, start_new_session=True)
    return proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started


def _single(args: list) -> tuple[int, str, str]:
    """The same command in one process with one thread (as each rank has here): per-pair values
    are then bit for bit the same (the thread count changes oneDNN's summation order)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        r = CliRunner().invoke(cli, [str(a) for a in args])
    finally:
        torch.set_num_threads(threads)
    return r.exit_code, r.stdout, r.stderr


def _same_run(a: dict, b: dict) -> None:
    strip = lambda d: {k: v for k, v in d.items() if k not in ENVIRONMENT}  # noqa: E731
    assert strip(a) == strip(b)
    assert b["distributed"] == {"world_size": 2, "backend": "gloo"} and "distributed" not in a


@pytest.fixture
def env(weights_file):
    return {"HLCLI_WEIGHTS": str(weights_file), "HLCLI_DIST_TIMEOUT": "60"}


def test_five_pairs_on_two_ranks_is_the_single_process_run(tmp_path, env, monkeypatch):
    restored, gt = _photos(tmp_path, 5)
    monkeypatch.setenv("HLCLI_WEIGHTS", env["HLCLI_WEIGHTS"])
    args = ["score", restored, gt, *FAST, "-f", "json", "--fail-if", "mean.hybrid>1",
            "--metrics", "psnr,ssim_y", "--fail-if", "mean.psnr<1"]  # the extra metrics travel too
    code, out, err, _ = _torchrun([*args, "-o", tmp_path / "dist.json"], env)
    assert code == 0, err
    assert "Error" not in err
    single_code, single_out, _ = _single(args)
    assert single_code == 0
    dist = json.loads((tmp_path / "dist.json").read_text())
    _same_run(json.loads(single_out), dist)
    assert all("psnr" in p and 0 < p["ssim_y"] <= 1 for p in dist["pairs"]), dist["pairs"]
    assert dist["settings"]["metrics"] == ["psnr", "ssim_y"]
    assert out == ""  # one output, in the file, from rank 0 only


def test_fid_kid_on_two_ranks_are_the_single_process_values(tmp_path, env, inception_file, monkeypatch):
    """Each rank sends its pairs' Inception features; rank 0's FID and KID (and the whole
    document) are the single process's, bit for bit; the small-set note is said once."""
    restored, gt = _photos(tmp_path, 4)
    env = {**env, "HLCLI_INCEPTION_WEIGHTS": str(inception_file)}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    args = ["score", restored, gt, *FAST, "-f", "json", "--metrics", "fid,kid", "--fid-dims", "64",
            "--fail-if", "fid>1e9"]
    code, out, err, _ = _torchrun(args, env)
    assert code == 0, err
    single_code, single_out, _ = _single(args)
    assert single_code == 0
    dist, single = json.loads(out), json.loads(single_out)
    _same_run(single, dist)
    assert dist["summary"]["sets"]["samples"] == 4 and "fid" in dist["summary"]["sets"]
    assert err.count("covariance is singular") == 1


def test_one_pair_on_two_ranks_leaves_a_shard_empty(tmp_path, env, monkeypatch):
    restored, gt = _photos(tmp_path, 1)
    monkeypatch.setenv("HLCLI_WEIGHTS", env["HLCLI_WEIGHTS"])
    args = ["score", restored, gt, *FAST, "-f", "json"]
    code, out, err, _ = _torchrun(args, env)
    assert code == 0, err
    single = json.loads(_single(args)[1])
    _same_run(single, json.loads(out))
    assert json.loads(out)["summary"]["count"] == 1


def test_skipped_file_on_rank_1_is_gathered(tmp_path, env, monkeypatch):
    restored, gt = _photos(tmp_path, 5)
    last = sorted(restored.iterdir())[-1]  # the last pair: rank 1's range
    last.write_bytes(last.read_bytes()[:200])  # a valid header, truncated data: fails at decode
    monkeypatch.setenv("HLCLI_WEIGHTS", env["HLCLI_WEIGHTS"])
    args = ["score", restored, gt, *FAST, "-f", "json", "--on-error", "skip", "--allow-skips"]
    code, out, err, _ = _torchrun(args, env)
    assert code == 0, err
    assert err.count(f"Warning: skipped {last.stem}") == 1
    dist = json.loads(out)
    assert [s["key"] for s in dist["skipped"]] == [last.stem] and dist["complete"] is False
    _same_run(json.loads(_single(args)[1]), dist)

    # --on-error fail: rank 1's error is reported once, by rank 0, and nothing is written
    code, out, err, _ = _torchrun(["score", restored, gt, *FAST, "-o", tmp_path / "x.json"], env)
    assert code != 0 and out == ""
    errors = [line for line in err.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and f"({last})" in errors[0]
    assert "exitcode  : 2" in err  # rank 0's exit code, as a single process's
    assert not (tmp_path / "x.json").exists()


@pytest.mark.parametrize("action, rank_code", [("kill", "-9"), ("sigint", "130")])
def test_killed_or_interrupted_rank_stops_the_job_with_no_output(tmp_path, env, action, rank_code):
    restored, gt = _photos(tmp_path, 12)
    out_file = tmp_path / "run.json"
    code, out, err, elapsed = _torchrun(["score", restored, gt, *FAST, "--batch-size", "1", "-o", out_file],
                                        {**env, "HLCLI_TEST_FAIL": f"{action}:1"}, script=HARNESS)
    assert code != 0 and out == ""
    assert f"exitcode  : {rank_code}" in err  # torchrun's report names the rank that stopped
    assert not out_file.exists() and not list(tmp_path.glob(".run.json.*"))
    assert elapsed < 100  # bounded: torchrun stops the other rank at once


def test_a_hung_rank_is_given_up_after_the_timeout(tmp_path, env):
    restored, gt = _photos(tmp_path, 6)
    code, out, err, elapsed = _torchrun(["score", restored, gt, *FAST, "--batch-size", "1", "-o", tmp_path / "r.json"],
                                        {**env, "HLCLI_TEST_FAIL": "hang:1", "HLCLI_DIST_TIMEOUT": "3"},
                                        script=HARNESS)
    errors = [line for line in err.splitlines() if line.startswith("Error: ")]
    assert code != 0 and out == "" and "exitcode  : 3" in err
    assert errors == ["Error: no rank of the torchrun job made progress for 3 s: a rank or node is lost; rerun, "
                      "or raise $HLCLI_DIST_TIMEOUT if single pairs take that long"]
    assert not (tmp_path / "r.json").exists()
    assert elapsed < 100
