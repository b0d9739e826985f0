"""Weights: resolution order, verification, the compact cache, download and import. No network:
downloads are exercised through torch.hub's downloader with the transfer function replaced."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from hlcli import weights as w
from hlcli.cli import cli
from hlcli.errors import HlcliEnvironmentError

from .conftest import make_vgg19_state_dict


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def score(args, **kw):
    return CliRunner().invoke(cli, ["score", *map(str, args)], **kw)


def test_option_wins_over_env_and_cache(weights_file, tmp_path, monkeypatch):
    other = tmp_path / "other.pth"
    shutil.copy(weights_file, other)
    monkeypatch.setenv("HLCLI_WEIGHTS", str(other))
    hub = w.hub_checkpoint_path()
    hub.parent.mkdir(parents=True)
    shutil.copy(weights_file, hub)
    assert w.resolve(weights_file) == w.ResolvedWeights(weights_file, "option")
    assert w.resolve(None) == w.ResolvedWeights(other, "env")
    monkeypatch.delenv("HLCLI_WEIGHTS")
    assert w.resolve(None) == w.ResolvedWeights(hub, "torch-cache")


def test_named_file_that_is_missing_never_falls_through(weights_file, tmp_path, monkeypatch):
    hub = w.hub_checkpoint_path()
    hub.parent.mkdir(parents=True)
    shutil.copy(weights_file, hub)
    with pytest.raises(HlcliEnvironmentError, match="--weights"):
        w.resolve(tmp_path / "nope.pth")
    monkeypatch.setenv("HLCLI_WEIGHTS", str(tmp_path / "nope.pth"))
    with pytest.raises(HlcliEnvironmentError, match="HLCLI_WEIGHTS"):
        w.resolve(None)


def test_torch_home_layout(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    assert w.hub_checkpoint_path() == tmp_path / "th" / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth"
    monkeypatch.delenv("TORCH_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert w.hub_checkpoint_path() == tmp_path / "xdg" / "torch" / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth"


def test_offline_without_weights_is_exit_3_with_the_fix(pair_dirs):
    r = score([*pair_dirs, "--offline"])
    assert r.exit_code == 3
    assert r.stdout == ""
    line = r.stderr.strip()
    assert line.count("\n") == 0 and line.startswith("Error: ")
    assert "hlcli weights download" in line and "--weights FILE" in line
    assert "Traceback" not in r.stderr


def test_download_failure_is_exit_3(pair_dirs, monkeypatch):
    import urllib.error

    def fail(url, dst, hash_prefix=None, progress=True):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", fail)
    r = score([*pair_dirs])
    assert r.exit_code == 3
    assert "could not download" in r.stderr and "hlcli weights download" in r.stderr


def test_download_uses_torchvision_url_and_hash_check(weights_file, monkeypatch):
    seen = {}

    def fake(url, dst, hash_prefix=None, progress=True):
        seen.update(url=url, hash_prefix=hash_prefix, progress=progress)
        shutil.copy(weights_file, dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake)
    path = w.download(progress=False)
    assert seen == {"url": "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
                    "hash_prefix": "dcbb9e9d", "progress": False}
    assert path == w.hub_checkpoint_path() and path.is_file()


def test_cached_file_with_wrong_hash_is_refused(weights_file, pair_dirs):
    hub = w.hub_checkpoint_path()
    hub.parent.mkdir(parents=True)
    shutil.copy(weights_file, hub)
    r = score([*pair_dirs])
    assert r.exit_code == 3
    assert "does not match torchvision" in r.stderr and "hlcli weights download" in r.stderr


def test_cached_official_file_is_used(weights_file, pair_dirs, monkeypatch):
    hub = w.hub_checkpoint_path()
    hub.parent.mkdir(parents=True)
    shutil.copy(weights_file, hub)
    monkeypatch.setattr(w, "OFFICIAL_SHA256_PREFIX", sha(weights_file)[:8])
    r = score([*pair_dirs, "-f", "json", "--offline"])
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["settings"]["weights"] == {"path": str(hub), "source": "torch-cache", "sha256": sha(weights_file),
                                          "official_imagenet1k_v1": True}


@pytest.mark.slow
@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_full_torchvision_checkpoint_accepted(tmp_path, legacy, state_dict):
    """torchvision's own file holds the classifier too and uses the pre-1.6 (non-zip) format."""
    path = tmp_path / "full.pth"
    full = make_vgg19_state_dict(full=True)
    torch.save(full, path, _use_new_zipfile_serialization=not legacy)
    loaded = w.load(w.ResolvedWeights(path, "option"))
    assert set(loaded.state_dict) == {k for k in full if k.startswith("features.")}
    for k, v in loaded.state_dict.items():
        assert torch.equal(v, state_dict[k])
    assert loaded.sha256 == sha(path) and not loaded.official


def test_compact_cache_written_then_used(weights_file, monkeypatch):
    first = w.load(w.ResolvedWeights(weights_file, "option"))
    assert first.compact_cache is not None and first.compact_cache.is_file()
    calls = []
    real = w._torch_load
    monkeypatch.setattr(w, "_torch_load", lambda p: calls.append(p) or real(p))
    second = w.load(w.ResolvedWeights(weights_file, "option"))
    assert calls == [first.compact_cache]  # the source is neither re-read nor re-hashed
    for k in first.state_dict:
        assert torch.equal(first.state_dict[k], second.state_dict[k])


def test_damaged_compact_cache_is_rebuilt(weights_file):
    first = w.load(w.ResolvedWeights(weights_file, "option"))
    first.compact_cache.write_bytes(b"garbage")
    with pytest.raises(HlcliEnvironmentError):
        w._torch_load(first.compact_cache)
    # load() must not trust it: it falls back to the source and rewrites the cache
    torch.save({"hlcli_compact": 1, "source_sha256": first.sha256, "state_dict": {"x": torch.zeros(1)}},
               first.compact_cache)
    again = w.load(w.ResolvedWeights(weights_file, "option"))
    assert set(again.state_dict) == set(first.state_dict)
    assert torch.load(first.compact_cache, weights_only=True)["state_dict"].keys() == first.state_dict.keys()


def test_changed_source_is_rehashed(tmp_path, state_dict):
    path = tmp_path / "w.pth"
    torch.save(state_dict, path)
    a = w.load(w.ResolvedWeights(path, "option"))
    other = dict(state_dict)
    other["features.0.bias"] = state_dict["features.0.bias"] + 1
    torch.save(other, path)
    b = w.load(w.ResolvedWeights(path, "option"))
    assert a.sha256 != b.sha256
    assert torch.equal(b.state_dict["features.0.bias"], other["features.0.bias"])


@pytest.mark.parametrize("case", ["missing-key", "wrong-shape", "not-a-dict", "int-tensor", "code", "garbage"])
def test_bad_weights_are_exit_3(case, tmp_path, pair_dirs, state_dict):
    path = tmp_path / "bad.pth"
    sd = dict(state_dict)
    if case == "missing-key":
        del sd["features.23.weight"]
        torch.save(sd, path)
    elif case == "wrong-shape":
        sd["features.23.weight"] = torch.zeros(512, 512, 1, 1)
        torch.save(sd, path)
    elif case == "not-a-dict":
        torch.save([1, 2, 3], path)
    elif case == "int-tensor":
        sd["features.0.bias"] = torch.zeros(64, dtype=torch.int64)
        torch.save(sd, path)
    elif case == "code":
        torch.save({"features.0.weight": Path("/etc/passwd")}, path)  # an arbitrary object
    else:
        path.write_bytes(b"\x00not a checkpoint")
    r = score([*pair_dirs, "--weights", path])
    assert r.exit_code == 3, (case, r.stderr)
    assert r.stderr.startswith("Error: ") and str(path) in r.stderr
    assert "Traceback" not in r.stderr and r.stderr.count("\n") == 1


def test_json_records_sha256_of_weights(cli_env, pair_dirs):
    r = score([*pair_dirs, "-f", "json"])
    assert r.exit_code == 0, r.stderr
    weights = json.loads(r.stdout)["settings"]["weights"]
    assert weights["sha256"] == sha(cli_env)
    assert weights["source"] == "env" and weights["official_imagenet1k_v1"] is False


def test_weights_show(weights_file, monkeypatch):
    r = CliRunner().invoke(cli, ["weights", "show"])
    assert r.exit_code == 0
    assert "torch-cache" in r.stdout and "absent" in r.stdout and "would use: a download" in r.stdout
    monkeypatch.setenv("HLCLI_WEIGHTS", str(weights_file))
    r = CliRunner().invoke(cli, ["weights", "show"])
    assert f"would use: {weights_file} (sha256 {sha(weights_file)}, NOT the official checkpoint)" in r.stdout


def test_weights_import(weights_file, monkeypatch, tmp_path):
    r = CliRunner().invoke(cli, ["weights", "import", str(weights_file)])
    assert r.exit_code == 3 and "not torchvision's IMAGENET1K_V1" in r.stderr
    assert not w.hub_checkpoint_path().exists()
    monkeypatch.setattr(w, "OFFICIAL_SHA256_PREFIX", sha(weights_file)[:8])
    r = CliRunner().invoke(cli, ["weights", "import", str(weights_file)])
    assert r.exit_code == 0, r.stderr
    assert r.stdout.strip() == str(w.hub_checkpoint_path())
    assert sha(w.hub_checkpoint_path()) == sha(weights_file)
    bad = tmp_path / "bad.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, bad)
    r = CliRunner().invoke(cli, ["weights", "import", str(bad)])
    assert r.exit_code == 3 and "not a VGG-19 state dict" in r.stderr


def test_weights_download_command(weights_file, monkeypatch):
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda url, dst, **kw: shutil.copy(weights_file, dst))
    r = CliRunner().invoke(cli, ["weights", "download", "-q"])
    assert r.exit_code == 0 and r.stdout.strip() == str(w.hub_checkpoint_path())


class _Hostile:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned",))


@pytest.mark.parametrize("case", ["readme", "hostile-pickle", "pickled-module", "truncated-zip"])
def test_unloadable_weights_say_what_the_file_is_not_without_torchs_advice(case, tmp_path, pair_dirs, state_dict):
    import pickle

    path = tmp_path / ("README.md" if case == "readme" else "bad.pth")
    if case == "readme":
        path.write_text("# hlcli\n\nA README, not weights.\n")
    elif case == "hostile-pickle":
        path.write_bytes(pickle.dumps({"features.0.weight": _Hostile()}, protocol=4))
    elif case == "pickled-module":
        torch.save({"model": torch.nn.Linear(2, 2)}, path)
    else:
        torch.save(state_dict, tmp_path / "good.pth")
        path.write_bytes((tmp_path / "good.pth").read_bytes()[:4096])
    r = score([*pair_dirs, "--weights", path])
    assert r.exit_code == 3, r.stderr
    assert r.stderr.count("\n") == 1 and "weights_only" not in r.stderr and "arbitrary code" not in r.stderr
    assert ("not" in r.stderr or "damaged" in r.stderr) and "--weights FILE" in r.stderr and "weights=PATH" not in r.stderr
    with pytest.raises(HlcliEnvironmentError) as info:  # the Python API names its argument
        w.load_weights(path)
    text = str(info.value)
    assert "weights=PATH" in text and "--weights" not in text and "weights_only" not in text
