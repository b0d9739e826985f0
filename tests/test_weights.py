"""Weights: resolution order, verification, the compact cache, download and import. No network:
downloads are exercised through torch.hub's downloader with the transfer function replaced."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from hlcli.nets import weights as w
from hlcli.cli import cli
from hlcli.errors import HlcliEnvironmentError

from .conftest import make_vgg19_state_dict


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_official(monkeypatch, path: Path, net: str = "vgg19") -> None:
    """Pretend ``path`` is torchvision's official checkpoint of ``net`` (its hash prefix)."""
    monkeypatch.setitem(w.NETS, net, dataclasses.replace(w.NETS[net], sha256_prefix=sha(path)[:8]))


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
    assert "--weights FILE" in r.stderr


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
    assert "--weights FILE" in r.stderr  # every missing-weights message names the option


def test_missing_env_weights_names_the_option(pair_dirs, tmp_path, monkeypatch):
    monkeypatch.setenv("HLCLI_WEIGHTS", str(tmp_path / "nowhere.pth"))
    r = score([*pair_dirs])
    assert r.exit_code == 3 and "--weights FILE" in r.stderr and "HLCLI_WEIGHTS" in r.stderr


def test_cached_official_file_is_used(weights_file, pair_dirs, monkeypatch):
    hub = w.hub_checkpoint_path()
    hub.parent.mkdir(parents=True)
    shutil.copy(weights_file, hub)
    make_official(monkeypatch, weights_file)
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
    monkeypatch.setattr(w, "_torch_load", lambda p, *a: calls.append(p) or real(p, *a))
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
    make_official(monkeypatch, weights_file)
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


# --------------------------------------------------------------------------------------------
# The LPIPS backbones (AlexNet, VGG-16) share the resolution and verification path.

LPIPS_NETS = [("alexnet", "HLCLI_LPIPS_WEIGHTS", "--lpips-weights", "alexnet-owt-7be5be79.pth"),
              ("vgg16", "HLCLI_VGG16_WEIGHTS", "--vgg16-weights", "vgg16-397923af.pth"),
              ("vgg16", "HLCLI_LPIPS_VGG_WEIGHTS", "--vgg16-weights", "vgg16-397923af.pth")]  # the old variable


@pytest.mark.parametrize("net,env,option,filename", LPIPS_NETS)
def test_lpips_backbone_resolution_order(net, env, option, filename, backbone_files, tmp_path, monkeypatch):
    src = backbone_files[net]
    other = tmp_path / "other.pth"
    shutil.copy(src, other)
    hub = w.hub_checkpoint_path(net)
    assert hub == w.torch_home() / "hub" / "checkpoints" / filename
    hub.parent.mkdir(parents=True)
    shutil.copy(src, hub)
    vgg19_hub = w.hub_checkpoint_path()
    monkeypatch.setenv(env, str(other))
    monkeypatch.setenv("HLCLI_WEIGHTS", str(tmp_path / "unrelated.pth"))  # another net's variable
    assert w.resolve(src, net=net) == w.ResolvedWeights(src, "option", net)
    assert w.resolve(None, net=net) == w.ResolvedWeights(other, "env", net)
    monkeypatch.delenv(env)
    assert w.resolve(None, net=net) == w.ResolvedWeights(hub, "torch-cache", net)
    assert not vgg19_hub.exists()
    with pytest.raises(HlcliEnvironmentError, match="does not match torchvision"):
        w.load(w.resolve(None, net=net))  # a random file under torchvision's name
    make_official(monkeypatch, src, net)
    loaded = w.load(w.resolve(None, net=net))
    assert loaded.official and loaded.net == net and loaded.source == "torch-cache"
    assert set(loaded.state_dict) == {f"{k}.{s}" for k in w.NETS[net].expected_shapes for s in ("weight", "bias")}
    assert loaded.compact_cache.name.startswith(f"{net}-features-")


@pytest.mark.parametrize("net,env,option,filename", LPIPS_NETS)
def test_lpips_backbone_named_missing_and_offline(net, env, option, filename, tmp_path, monkeypatch):
    with pytest.raises(HlcliEnvironmentError, match=f"given by {option} does not exist"):
        w.resolve(tmp_path / "nope.pth", net=net)
    monkeypatch.setenv(env, str(tmp_path / "nope.pth"))
    with pytest.raises(HlcliEnvironmentError, match=f"\\${env}"):
        w.resolve(None, net=net)
    monkeypatch.delenv(env)
    with pytest.raises(HlcliEnvironmentError) as err:
        w.load_weights(net=net, offline=True)
    assert err.value.exit_code == 3 and str(w.hub_checkpoint_path(net)) in str(err.value)
    assert (f"run `hlcli weights download --net {net}` on a machine with internet access, or copy {filename} "
            f"there and run `hlcli weights import --net {net} FILE`, or pass {option} FILE") in str(err.value)


@pytest.mark.parametrize("net,env,option,filename", LPIPS_NETS)
def test_lpips_backbone_download(net, env, option, filename, backbone_files, monkeypatch):
    seen = {}

    def fake(url, dst, hash_prefix=None, progress=True):
        seen.update(url=url, hash_prefix=hash_prefix)
        shutil.copy(backbone_files[net], dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake)
    r = CliRunner().invoke(cli, ["weights", "download", "--net", net, "-q"])
    assert r.exit_code == 0, r.stderr
    assert r.stdout.strip() == str(w.hub_checkpoint_path(net))
    assert seen == {"url": f"https://download.pytorch.org/models/{filename}", "hash_prefix": filename[-12:-4]}
    assert not w.hub_checkpoint_path().exists()  # not VGG-19's


def test_lpips_backbone_download_failure_names_the_net_fix(monkeypatch):
    import urllib.error

    def fail(url, dst, hash_prefix=None, progress=True):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", fail)
    with pytest.raises(HlcliEnvironmentError, match="could not download the VGG-16 weights") as err:
        w.load_weights(net="vgg16")
    assert "hlcli weights download --net vgg16" in str(err.value)


def test_lpips_backbone_import(backbone_files, weights_file, monkeypatch):
    src = backbone_files["alexnet"]
    r = CliRunner().invoke(cli, ["weights", "import", "--net", "alexnet", str(src)])
    assert r.exit_code == 3 and "valid AlexNet state dict but not torchvision's" in r.stderr
    assert "--lpips-weights FILE or $HLCLI_LPIPS_WEIGHTS" in r.stderr
    r = CliRunner().invoke(cli, ["weights", "import", "--net", "alexnet", str(weights_file)])
    assert r.exit_code == 3 and "not an AlexNet state dict" in r.stderr and str(weights_file) in r.stderr
    make_official(monkeypatch, src, "alexnet")
    r = CliRunner().invoke(cli, ["weights", "import", "--net", "alexnet", str(src)])
    assert r.exit_code == 0, r.stderr
    assert r.stdout.strip() == str(w.hub_checkpoint_path("alexnet")) and sha(w.hub_checkpoint_path("alexnet")) == sha(src)


def test_weights_show_lists_the_three_networks(backbone_files, monkeypatch):
    monkeypatch.setenv("HLCLI_LPIPS_VGG_WEIGHTS", str(backbone_files["vgg16"]))
    r = CliRunner().invoke(cli, ["weights", "show", "--lpips-weights", str(backbone_files["alexnet"])])
    assert r.exit_code == 0, r.stderr
    out = r.stdout
    for title, filename in (("VGG-19 (vgg19", "vgg19-dcbb9e9d.pth"), ("AlexNet (alexnet", "alexnet-owt-7be5be79.pth"),
                            ("VGG-16 (vgg16", "vgg16-397923af.pth")):
        assert title in out and filename in out and f"https://download.pytorch.org/models/{filename}" in out
    assert out.index("VGG-19") < out.index("AlexNet") < out.index("VGG-16")
    assert f"1. option       {backbone_files['alexnet']}  [found]" in out
    assert f"1. env          {backbone_files['vgg16']}  [found]" in out
    assert f"would use: {backbone_files['vgg16']} (sha256 {sha(backbone_files['vgg16'])}, NOT the official" in out
    r = CliRunner().invoke(cli, ["weights", "show", "--net", "alexnet"])
    assert "AlexNet" in r.stdout and "VGG-19" not in r.stdout and "VGG-16" not in r.stdout


def test_specs_match_torchvision_architectures():
    import torchvision

    from hlcli.nets import netspecs
    from hlcli.nets.layers import VGG19_CFG

    for net, ctor in (("alexnet", torchvision.models.alexnet), ("vgg16", torchvision.models.vgg16)):
        features = ctor(weights=None).features
        assert len(features) == len(netspecs.LAYOUTS[net])
        shapes = {k.rsplit(".", 1)[0]: None for k in features.state_dict()}
        assert set(f"features.{k}" for k in shapes) == set(w.NETS[net].expected_shapes)
        for key, (ws, bs) in w.NETS[net].expected_shapes.items():
            conv = features[int(key.split(".")[1])]
            assert tuple(conv.weight.shape) == ws and tuple(conv.bias.shape) == bs
    assert netspecs.conv_shapes(netspecs._vgg_layout(VGG19_CFG)) == w.EXPECTED_SHAPES


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


@pytest.mark.parametrize("net, option, argument", [("vgg19", "--weights FILE", "weights=PATH"),
                                                   ("alexnet", "--lpips-weights FILE", "lpips_weights=PATH"),
                                                   ("vgg16", "--vgg16-weights FILE", "vgg16_weights=PATH")])
def test_a_load_errors_fix_names_the_option_in_the_cli_and_the_argument_in_python(net, option, argument):
    from hlcli.nets.netspecs import get_spec

    assert w.how_to_pass(get_spec(net)) == argument
    token = w.CLI_OPTIONS.set(True)
    try:
        assert w.how_to_pass(get_spec(net)) == option
    finally:
        w.CLI_OPTIONS.reset(token)
