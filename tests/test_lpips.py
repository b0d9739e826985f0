"""LPIPS v0.1 (hlcli.nets.lpips_net) against the independent ``lpips`` package (richzhang's reference,
the test oracle): the same random ImageNet-shaped backbones, its own copy of the v0.1 heads.
No network: the backbones are seeded random checkpoints loaded through hlcli's real loading code."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from hlcli.nets import lpips_net as L
from hlcli.errors import HlcliEnvironmentError, InputError

from .conftest import ROOT, degrade, make_vgg19_state_dict, textured

lpips = pytest.importorskip("lpips")
pytest.importorskip("torchmetrics")  # the heads' package: hlcli[lpips]

NETS = ["alex", "vgg"]


def tensor(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(arr).permute(2, 0, 1).float().div(255).unsqueeze(0)


def pair(h: int, w: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gt = textured(h, w, seed)
    return tensor(degrade(gt, seed, amount=20)), tensor(gt)


@pytest.fixture(scope="module")
def nets(backbone_files):
    """hlcli's LPIPSNet per net, built by build() from the random backbone file (the real path)."""
    return {net: L.build(net, backbone_files[L.BACKBONES[net]], offline=True) for net in NETS}


@pytest.fixture(scope="module")
def oracles(lpips_oracles):
    return lpips_oracles


def oracle(ref, restored, gt) -> torch.Tensor:
    """One pair at a time, as the reference computes it (inputs in [0, 1], normalize=True)."""
    with torch.no_grad():
        return torch.cat([ref(r[None], g[None], normalize=True).flatten() for r, g in zip(restored, gt)]).double()


@pytest.mark.parametrize("net", NETS)
@pytest.mark.parametrize("size", [(64, 64), (67, 93), (97, 41)], ids=str)
def test_agrees_with_the_lpips_package(net, size, nets, oracles):
    a, b = pair(*size, seed=size[0])
    c, d = pair(*size, seed=size[1] + 1)
    restored, gt = torch.cat([a, c]), torch.cat([b, d])  # a batch of 2
    with torch.no_grad():
        ours = nets[net][0](restored, gt)
    ref = oracle(oracles[net], restored, gt)
    assert ours.dtype == torch.float64 and ours.shape == (2,)
    assert (ref > 0).all()
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=0)


@pytest.mark.parametrize("net", NETS)
def test_identical_images_score_exactly_zero(net, nets):
    a, b = pair(45, 70, seed=3)
    restored, gt = torch.cat([a, b, b]), torch.cat([b, b, b])
    with torch.no_grad():
        values = nets[net][0](restored, gt)
    assert values[0] > 0 and values[1].item() == 0.0 and values[2].item() == 0.0


@pytest.mark.parametrize("net", NETS)
def test_score_does_not_depend_on_the_batch(net, nets):
    pairs = [pair(50, 60, seed=s) for s in range(3)]
    model = nets[net][0]
    with torch.no_grad():
        batch = model(torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs]))
        alone = torch.cat([model(*p) for p in pairs])
    torch.testing.assert_close(batch, alone, rtol=1e-6, atol=0)


@pytest.mark.parametrize("net", NETS)
def test_layer_maps_sum_to_the_value(net, nets, oracles):
    restored, gt = pair(67, 93, seed=5)
    model = nets[net][0]
    with torch.no_grad():
        maps = model.layer_maps(restored, gt)
        value = model(restored, gt)
        ref_layers = oracles[net](restored, gt, retPerLayer=True, normalize=True)[1]
    assert len(maps) == 5
    for m, ch, r in zip(maps, L.CHANNELS[net], ref_layers):
        assert m.dim() == 3 and m.shape[0] == 1 and m.dtype == torch.float32
        torch.testing.assert_close(m.double().mean(dim=(1, 2)), r.flatten().double(), rtol=1e-5, atol=1e-12)
    total = sum(m.double().mean(dim=(1, 2)) for m in maps)
    torch.testing.assert_close(total, value, rtol=1e-12, atol=0)


def test_gradients_reach_the_input(nets):
    model = nets["alex"][0]
    restored, gt = pair(40, 40, seed=9)
    restored.requires_grad_(True)
    model(restored, gt).sum().backward()
    assert restored.grad is not None and restored.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in model.parameters())
    assert not model.training


def test_relus_are_not_inplace_and_slices_end_on_relus(nets):
    for net in NETS:
        model = nets[net][0]
        for sl in model.slices:
            assert isinstance(sl[-1], torch.nn.ReLU)
        assert not any(getattr(m, "inplace", False) for m in model.modules())


@pytest.mark.parametrize("net", NETS)
def test_provenance_of_backbone_and_heads(net, nets, backbone_files):
    _, backbone, heads = nets[net]
    path = backbone_files[L.BACKBONES[net]]
    assert backbone.path == path and backbone.source == "option" and backbone.net == L.BACKBONES[net]
    assert backbone.sha256 == hashlib.sha256(path.read_bytes()).hexdigest() and not backbone.official
    assert heads.package == "torchmetrics" and heads.package_version
    assert heads.path.name == f"{net}.pth" and "lpips_models" in str(heads.path)
    assert heads.sha256 == hashlib.sha256(heads.path.read_bytes()).hexdigest()
    # torchmetrics' heads equal the lpips package's own copy
    own = torch.load(Path(lpips.__file__).parent / "weights" / "v0.1" / f"{net}.pth", map_location="cpu",
                     weights_only=True)
    assert set(own) == set(heads.state_dict)
    for k, v in own.items():
        assert torch.equal(v, heads.state_dict[k])


def test_without_torchmetrics_is_exit_2_naming_the_extra(monkeypatch, backbone_files):
    monkeypatch.setitem(sys.modules, "torchmetrics", None)  # find_spec() then answers None
    for call in (lambda: L.load_heads("alex"), lambda: L.build("vgg", backbone_files["vgg16"], offline=True)):
        with pytest.raises(InputError) as err:
            call()
        assert err.value.exit_code == 2
        assert "pip install 'hlcli[lpips]'" in str(err.value) and "torchmetrics" in str(err.value)


def test_bad_heads_are_refused():
    heads = L.load_heads("alex").state_dict
    with pytest.raises(HlcliEnvironmentError, match="lin4.model.1.weight"):
        L.check_heads({k: v for k, v in heads.items() if k != "lin4.model.1.weight"}, "alex")
    with pytest.raises(HlcliEnvironmentError, match="expected \\(1, 64, 1, 1\\)"):
        L.check_heads({**heads, "lin0.model.1.weight": torch.zeros(1, 63, 1, 1)}, "alex")
    with pytest.raises(HlcliEnvironmentError, match="lin1.model.1.weight has shape .1, 192, 1, 1."):
        L.check_heads(heads, "vgg")  # alex heads for vgg
    with pytest.raises(HlcliEnvironmentError, match="not the LPIPS v0.1 alex heads"):
        L.check_heads({**heads, "lin5.model.1.weight": heads["lin4.model.1.weight"]}, "alex")
    with pytest.raises(HlcliEnvironmentError, match="not a state dict"):
        L.check_heads([1, 2], "alex")
    # negative weights would make LPIPS negative, below the schemas' minimum 0 (docs/formats.md)
    for bad in (-1e-3, float("nan")):
        broken = heads["lin2.model.1.weight"].clone()
        broken[0, 3] = bad
        with pytest.raises(HlcliEnvironmentError, match="lin2.model.1.weight has negative or non-finite"):
            L.check_heads({**heads, "lin2.model.1.weight": broken}, "alex")


@pytest.mark.parametrize("case", ["wrong-shape", "missing-key", "other-net", "not-a-dict", "code", "garbage"])
def test_bad_backbone_file_is_exit_3_naming_it(case, tmp_path, backbone_files):
    path = tmp_path / "bad.pth"
    sd = torch.load(backbone_files["alexnet"], weights_only=True)
    if case == "wrong-shape":
        sd["features.3.weight"] = torch.zeros(192, 64, 3, 3)
        torch.save(sd, path)
    elif case == "missing-key":
        del sd["features.10.bias"]
        torch.save(sd, path)
    elif case == "other-net":
        torch.save(make_vgg19_state_dict(), path)
    elif case == "not-a-dict":
        torch.save([1, 2, 3], path)
    elif case == "code":
        torch.save({"features.0.weight": Path("/etc/passwd")}, path)
    else:
        path.write_bytes(b"\x00not a checkpoint")
    with pytest.raises(HlcliEnvironmentError) as err:
        L.build("alex", path, offline=True)
    assert err.value.exit_code == 3 and str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_backbone_of_another_network_in_code_is_refused(backbone_files):
    heads = L.load_heads("alex").state_dict
    vgg16 = torch.load(backbone_files["vgg16"], weights_only=True)
    with pytest.raises(HlcliEnvironmentError, match="not an AlexNet state dict"):
        L.LPIPSNet(vgg16, heads, "alex")
    with pytest.raises(InputError, match="unknown LPIPS network"):
        L.LPIPSNet(vgg16, heads, "squeeze")


def test_bad_inputs_are_input_errors(nets):
    model = nets["alex"][0]
    a, b = pair(40, 40, seed=1)
    with pytest.raises(InputError, match="one shape"):
        model(a, b[:, :, :39])
    with pytest.raises(InputError, match=r"\(N, 3, H, W\)"):
        model(a[:, :1], b[:, :1])
    with pytest.raises(InputError, match="dtype"):
        model((a * 255).to(torch.uint8), (b * 255).to(torch.uint8))
    small = L.min_size("alex") - 1
    with pytest.raises(InputError, match=f"at least {small + 1}x{small + 1}"):
        model(a[:, :, :small, :small], b[:, :, :small, :small])
    with torch.no_grad():
        assert model(a[:, :, : small + 1, : small + 1], b[:, :, : small + 1, : small + 1]).shape == (1,)


def test_lpips_backbones_offline_missing_is_exit_3_with_the_fix():
    with pytest.raises(HlcliEnvironmentError) as err:
        L.build("alex", offline=True)
    text = str(err.value)
    assert err.value.exit_code == 3 and "AlexNet weights not found" in text
    assert "hlcli weights download --net alexnet" in text and "--lpips-weights FILE" in text
    with pytest.raises(HlcliEnvironmentError, match="hlcli weights download --net vgg16"):
        L.load_backbone("vgg", offline=True)


def test_importing_hlcli_and_weights_stays_torch_free():
    code = ("import sys, hlcli, hlcli.nets.weights, hlcli.nets.netspecs, hlcli.cli.weights; "
            "assert 'torch' not in sys.modules and 'torchmetrics' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_heads_are_found_without_importing_torchmetrics():
    code = ("import sys; from hlcli.nets import lpips_net; lpips_net.load_heads('vgg'); "
            "assert 'torchmetrics' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
