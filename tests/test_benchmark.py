"""The benchmark script runs end to end (``--quick``): every section, the JSON it saves, and the
figures that must hold even on a tiny smoke run (tiling exact, memory measured, hlcli faster
than the per-pair baseline is not asserted here: a shared machine makes speed flaky)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .conftest import ROOT


@pytest.mark.slow
def test_bench_quick_runs_every_section(tmp_path, weights_file):
    out = tmp_path / "bench.json"
    res = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--quick", "--weights", str(weights_file),
         "--json", str(out), "--workdir", str(tmp_path / "work")],
        capture_output=True, text=True, timeout=600,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    fig = json.loads(out.read_text())
    tp = fig["throughput_pairs_per_s"]
    for key in ("hlcli_fp32", "hlcli_bf16", "baseline", "limit_fp32"):
        assert tp[key] and tp[key] > 0, key
    assert fig["tiling"]["l1_equal"] and fig["tiling"]["max_rel_diff"] < 1e-4
    assert fig["memory"]["rc"] == 0 and fig["memory"]["tiled"]
    assert 0.3 < fig["memory"]["peak_rss_gib"] < 3
    assert fig["startup"]["hlcli_warm_s"] > 0 and fig["startup"]["import_torch_s"] > 0
    assert set(fig["scaling_fp32"]) == {"128", "256"}
    for key in ("fp32_vs_baseline", "fp32_vs_limit", "bf16_vs_baseline", "startup_vs_import_torch"):
        assert fig["ratios"][key] > 0
    assert "ratios:" in res.stdout and "machine:" in res.stdout


@pytest.mark.slow
def test_metrics_cost_benchmark_quick(tmp_path):
    """benchmarks/metrics.py (the cost of --metrics) runs end to end and saves every figure."""
    out = tmp_path / "metrics.json"
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "metrics.py"), "--quick", "--json", str(out)],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    fig = json.loads(out.read_text())
    entry = fig["sizes"]["128"]
    assert set(entry["ratio"]) == {"hybrid only", "+ psnr,ssim,psnr_y,ssim_y", "+ those and lpips"}
    assert set(entry["per_pair_seconds"]) == {"hybrid (VGG-19)", "psnr", "ssim", "psnr_y", "ssim_y", "lpips"}
    assert all(v > 0 for v in entry["per_pair_seconds"].values())
    assert "device:" in res.stdout and "of VGG-19" in res.stdout


@pytest.mark.slow
def test_sweep_benchmark_quick(tmp_path):
    """benchmarks/sweep.py (a sweep vs separate runs, peak RSS) runs end to end and saves every figure."""
    out = tmp_path / "sweep.json"
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "sweep.py"), "--quick", "--json", str(out)],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    fig = json.loads(out.read_text())
    assert fig["time"]["2"]["sweep_s"] > 0 and fig["time"]["2"]["separate_s"] > 0
    assert fig["peak_rss"]["single"] > 0 and fig["peak_rss"]["sweep"] > 0
    assert "machine:" in res.stdout and "peak RSS" in res.stdout
