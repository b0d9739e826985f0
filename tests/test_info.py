"""`hlcli info` and native-precision detection: what the machine offers, the weights `score`
would use, a short benchmark through the real engine, the JSON `native_precision` record and
the one warning line for a precision the device only emulates."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from hlcli.engine import batch as engine
from hlcli.engine import sysinfo
from hlcli.cli import cli

from .schemas import validate_score

CPU_NATIVE = {"fp32": True, "bf16": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()),
              "fp16": bool(torch.ops.mkldnn._is_mkldnn_fp16_supported())}


def test_native_precision_on_the_cpu_follows_onednn():
    for p, native in CPU_NATIVE.items():
        assert engine.native_precision(torch.device("cpu"), p) is native
    assert engine.configure_backends(torch.device("cpu"), precision="bf16")["native_precision"] is CPU_NATIVE["bf16"]
    assert "native_precision" not in engine.configure_backends(torch.device("cpu"))
    with pytest.raises(ValueError):
        engine.native_precision(torch.device("cpu"), "fp8")


def test_native_precision_on_cuda_from_the_capability(monkeypatch):
    """The CUDA branch with the GPU queries faked: bf16 native from Ampere (8.0), fp16 from 5.3."""
    for cap, bf16, fp16 in (((7, 0), False, True), ((9, 0), True, True), ((5, 0), False, False)):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None, c=cap: c)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True, b=bf16: b)
        assert engine.native_precision(torch.device("cuda"), "bf16") is bf16
        assert engine.native_precision(torch.device("cuda"), "fp16") is fp16
        assert engine.native_precision(torch.device("cuda"), "fp32") is True


def test_precision_warning_text():
    cpu = {"type": "cpu", "cpu_capability": "AVX2", "native_precision": False}
    text = sysinfo.precision_warning(cpu, "bf16")
    assert "bf16 is emulated on this CPU (capability AVX2" in text
    assert "slower than fp32" in text and "--precision fp32" in text
    assert sysinfo.precision_warning({**cpu, "native_precision": True}, "bf16") is None
    assert sysinfo.precision_warning(cpu, "fp32") is None
    assert sysinfo.precision_warning({"type": "cpu"}, "bf16") is None  # an old record: no claim
    gpu = sysinfo.precision_warning({"type": "cuda", "device_name": "Tesla V100", "native_precision": False}, "bf16")
    assert "Tesla V100" in gpu


def test_info_table_and_json(cli_env):
    runner = CliRunner()
    res = runner.invoke(cli, ["info", "-f", "json"])
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["selected_device"] in ("cpu", "cuda", "mps")
    assert doc["cpu"]["capability"] == torch.backends.cpu.get_cpu_capability()
    assert doc["cpu"]["threads"] == torch.get_num_threads() and doc["cpu"]["model"]
    assert doc["devices"][0] == {"name": "cpu", "description": doc["cpu"]["model"], "native": CPU_NATIVE}
    assert doc["versions"]["torch"] == torch.__version__
    use = doc["weights"]["would_use"]  # the test's random weights: not comparable, and said so
    assert {k: use[k] for k in ("source", "path", "official_imagenet1k_v1")} == {
        "source": "env", "path": str(cli_env), "official_imagenet1k_v1": False}
    assert "NOT the official ImageNet VGG-19" in use["note"]
    assert doc["weights"]["hlcli_cache"] and doc["weights"]["torch_hub_checkpoints"]
    assert "bench" not in doc

    res = runner.invoke(cli, ["info"])
    assert res.exit_code == 0 and res.stderr == ""
    text = res.stdout
    assert f"capability {doc['cpu']['capability']}" in text and str(cli_env) in text
    assert "NOT the official ImageNet VGG-19" in text
    emulated = [p for p, ok in CPU_NATIVE.items() if not ok]
    for p in emulated:
        assert f"{p} EMULATED" in text


def test_info_weights_without_any_file_never_downloads(tmp_path):
    res = CliRunner().invoke(cli, ["info", "-f", "json"])
    assert res.exit_code == 0
    use = json.loads(res.stdout)["weights"]["would_use"]
    assert use["source"] == "download" and "--offline" in use["note"]
    res = CliRunner().invoke(cli, ["info", "-f", "json", "--weights", str(tmp_path / "nope.pth")])
    use = json.loads(res.stdout)["weights"]["would_use"]
    assert use["source"] == "option" and "exit 3" in use["note"]


def test_info_absent_device_is_exit_3(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    res = CliRunner().invoke(cli, ["info", "--device", "cuda:1"])
    assert res.exit_code == 3 and res.stderr.startswith("Error: --device cuda")


def test_info_bench_measures_every_precision(cli_env, monkeypatch):
    """The real engine on small pairs (the size is the only thing shrunk for the test)."""
    monkeypatch.setattr(sysinfo, "BENCH_SIZE", 32)
    monkeypatch.setattr(sysinfo, "BENCH_SECONDS", 0.2)
    res = CliRunner().invoke(cli, ["info", "--bench", "--device", "cpu", "-f", "json"])
    assert res.exit_code == 0, res.stderr
    b = json.loads(res.stdout)["bench"]
    assert b["size"] == 32 and b["device"] == "cpu" and str(cli_env) in b["weights"]
    assert set(b["pairs_per_s"]) == {"fp32", "bf16", "fp16"} and all(v > 0 for v in b["pairs_per_s"].values())
    assert b["pairs_per_s"][b["fastest"]] == max(b["pairs_per_s"].values())
    assert "measuring bf16 on cpu" in res.stderr


def test_bench_without_weights_uses_random_ones():
    out = sysinfo.bench("cpu", size=32, seconds=0.0)
    assert out["weights"].startswith("random weights")
    assert all(v > 0 for v in out["pairs_per_s"].values())
    assert sorted(out["estimated"]) == ["bf16", "fp16", "fp32"]  # seconds=0: the warm-up pair alone


def test_score_records_native_precision_and_warns_once(cli_env, pair_dirs, tmp_path):
    restored, gt = map(str, pair_dirs)
    runner = CliRunner()
    out = tmp_path / "run.json"
    res = runner.invoke(cli, ["score", restored, gt, "--device", "cpu", "--precision", "bf16", "--workers", "0",
                              "-f", "json", "-o", str(out)])
    assert res.exit_code == 0, res.stderr
    doc = validate_score(out.read_text())
    assert doc["device"]["native_precision"] is CPU_NATIVE["bf16"]
    warnings = [line for line in res.stderr.splitlines() if "emulated" in line]
    if CPU_NATIVE["bf16"]:
        assert warnings == []
    else:
        assert len(warnings) == 1 and warnings[0].startswith("Warning: --precision bf16 is emulated on this CPU")
    quiet = runner.invoke(cli, ["score", restored, gt, "--device", "cpu", "--precision", "bf16", "--workers", "0",
                                "-f", "csv", "-q"])
    assert quiet.exit_code == 0 and "emulated" not in quiet.stderr
    fp32 = runner.invoke(cli, ["score", restored, gt, "--device", "cpu", "--workers", "0", "-f", "json"])
    assert json.loads(fp32.stdout)["device"]["native_precision"] is True and "emulated" not in fp32.stderr
