"""The GPU path, for real (``pytest -m cuda``; every test is skipped without CUDA): fp32 on
CUDA equals the CPU to 1e-5 relative on the samples and on a tiled pair; bf16 and fp16 stay
within the documented tolerance (docs/performance.md) and never give NaN; out-of-memory
back-off under a real memory limit gives the same numbers; decode workers give the same
numbers; a CUDA index beyond the machine's GPUs is exit 3. Run by benchmarks/gpu.sh, whose
dry run (no GPU needed) is the one test here that runs everywhere."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from hlcli.cli import cli
from hlcli.engine.batch import BatchScorer
from hlcli.nets.layers import resolve_layers
from hlcli.inputs.pairing import find_pairs
from hlcli.engine.scoring import ScoreOptions, score_pairing

from .conftest import ROOT, SAMPLES, degrade, textured


def cuda_test(fn):
    return pytest.mark.cuda(pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")(fn))


DEFAULT = resolve_layers(["conv3_3", "conv4_3"])
#: Largest relative error of a perceptual value against fp32 (docs/performance.md, Precision).
TOLERANCE = {"bf16": 3e-2, "fp16": 3e-3}


def _run(device: str, precision: str = "fp32", workers: int = 0, **kw):
    opts = ScoreOptions(device=device, precision=precision, workers=workers, offline=True, **kw)
    run = score_pairing(find_pairs(SAMPLES / "restored", SAMPLES / "gt"), opts)
    return {p.key: p for p in run.pairs}, run


def _assert_close(a: dict, b: dict, rel: float) -> None:
    assert a.keys() == b.keys() and a
    for key in a:
        assert a[key].l1 == b[key].l1, key  # exact integer sums on every device
        for name, v in a[key].layers.items():
            got = b[key].layers[name]
            assert np.isfinite(got) and abs(got - v) <= rel * abs(v), (key, name, v, got)


@cuda_test
def test_fp32_on_cuda_equals_the_cpu_on_the_samples(cli_env):
    cpu, _ = _run("cpu")
    gpu, run = _run("cuda")
    assert run.environment["device"]["type"] == "cuda" and run.environment["device"]["allow_tf32"] is False
    assert run.environment["device"]["native_precision"] is True
    _assert_close(cpu, gpu, 1e-5)


@cuda_test
def test_tiled_pair_on_cuda_equals_the_cpu_untiled(state_dict):
    gt = textured(700, 611, 5)
    r = torch.from_numpy(degrade(gt, 5)).permute(2, 0, 1)[None]
    g = torch.from_numpy(gt).permute(2, 0, 1)[None]
    cpu = BatchScorer(state_dict, DEFAULT, device=torch.device("cpu"), pixel_budget=1 << 22)
    gpu = BatchScorer(state_dict, DEFAULT, device=torch.device("cuda"), pixel_budget=2 * 300 * 300)
    assert not cpu.is_tiled(700, 611) and gpu.is_tiled(700, 611)
    l1a, pa = cpu.measure(r, g, 255)
    l1b, pb = gpu.measure(r, g, 255)
    assert l1a.item() == l1b.item()
    torch.testing.assert_close(pb, pa, rtol=1e-5, atol=0)


@cuda_test
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_on_cuda_is_within_tolerance(cli_env, precision):
    fp32, _ = _run("cuda")
    low, run = _run("cuda", precision)
    assert run.settings["precision"] == precision
    assert isinstance(run.environment["device"]["native_precision"], bool)
    _assert_close(fp32, low, TOLERANCE[precision])


@cuda_test
def test_out_of_memory_back_off_gives_the_same_numbers(state_dict):
    """A real limit: 8 pairs of 1024x1024 in one forward need ~16 GB of activations; the
    process may use 3 GiB. The scorer splits the batch (and tiles if it must) and still gets
    the unconstrained numbers."""
    dev = torch.device("cuda")
    gts = [textured(1024, 1024, 40 + i) for i in range(8)]
    r = torch.from_numpy(np.stack([degrade(x, i) for i, x in enumerate(gts)])).permute(0, 3, 1, 2)
    g = torch.from_numpy(np.stack(gts)).permute(0, 3, 1, 2)
    free = BatchScorer(state_dict, DEFAULT, device=dev, pixel_budget=1 << 22)  # 2 pairs per forward
    _, want = free.measure(r, g, 255)
    del free
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(dev).total_memory
    ooms = torch.cuda.memory_stats(dev).get("num_ooms", 0)
    torch.cuda.set_per_process_memory_fraction(min(1.0, 3 * (1 << 30) / total), dev)
    try:
        tight = BatchScorer(state_dict, DEFAULT, device=dev, pixel_budget=1 << 25)  # all 8 in one forward
        _, got = tight.measure(r, g, 255)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, dev)
        torch.cuda.empty_cache()
    assert torch.cuda.memory_stats(dev).get("num_ooms", 0) > ooms  # the back-off really ran
    torch.testing.assert_close(got, want, rtol=1e-5, atol=0)


@cuda_test
def test_decode_workers_give_the_same_numbers(cli_env):
    none, _ = _run("cuda", workers=0, batch_size=1)
    some, run = _run("cuda", workers=2, batch_size=1)
    assert run.settings["workers"] == 2
    _assert_close(none, some, 1e-6)


@cuda_test
def test_a_cuda_index_beyond_the_gpus_is_exit_3(cli_env):
    index = torch.cuda.device_count()  # cuda:1 on a one-GPU machine
    res = CliRunner().invoke(cli, ["score", str(SAMPLES / "restored"), str(SAMPLES / "gt"),
                                   "--device", f"cuda:{index}"])
    assert res.exit_code == 3
    assert res.stderr.startswith(f"Error: --device cuda:{index}: only {index} CUDA device")


@cuda_test
def test_cli_on_cuda_records_the_gpu(cli_env):
    res = CliRunner().invoke(cli, ["score", str(SAMPLES / "restored"), str(SAMPLES / "gt"), "--device", "cuda",
                                   "-f", "json", "-q"])
    assert res.exit_code == 0, res.stderr
    device = json.loads(res.stdout)["device"]
    assert device["type"] == "cuda" and device["device_name"] and device["native_precision"] is True


def test_gpu_script_dry_run_lists_its_steps_and_writes_nothing(tmp_path):
    """benchmarks/gpu.sh is valid bash and, with --dry-run before or after OUTDIR, says what it
    would run (the cuda tests, `hlcli info --bench` and the 512x512 benchmark, within 8 minutes)
    and prints both summaries, without a GPU and without writing anything."""
    out = tmp_path / "gpu run"
    for args in ([str(out), "--dry-run"], ["--dry-run", str(out)]):
        res = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu.sh"), *args],
                             capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert res.returncode == 0, res.stderr
        steps = [line for line in res.stdout.splitlines() if line.startswith("[")]
        assert [line.split("]")[0] for line in steps] == ["[info", "[tests", "[bench", "[metrics"]
        assert "pytest -m cuda tests/test_cuda.py" in steps[1] and "bench.py --gpu" in steps[2]
        assert "benchmarks/metrics.py --device cuda" in steps[3]  # the cost of --metrics (issue #16)
        assert "hlcli info --bench --device cuda" in steps[0]
        assert sum(int(line.split("timeout ")[1].split("s:")[0]) for line in steps) <= 8 * 60
        assert "gpu\\ run/info.json" in steps[0]  # OUTDIR quoted inside the commands
        summary = res.stdout.split("summary.json (not written: dry run)\n")[1].split("--- ")[0]
        doc = json.loads(summary)
        assert doc["dry_run"] is True and set(doc["throughput_512_pairs_per_s"]) == {"fp32", "bf16", "fp16"}
        assert "# hlcli GPU run (dry run" in res.stdout
        assert not out.exists() and list(tmp_path.iterdir()) == []  # a dry run writes nothing
    bad = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu.sh")], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "usage" in bad.stderr
