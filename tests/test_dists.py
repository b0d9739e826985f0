"""DISTS (hlcli.nets.dists_net, hlcli.metrics.dists) against dists-pytorch's own DISTS_pytorch.DISTS
(the reference, in the test extra): its VGG-16 replaced by the same random backbone and its
alpha/beta set to the same random values, 1e-6 absolute per pair; exact tiling; the alpha/beta
file's lookup and checks; DISTS in a run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from hlcli.cli import cli
from hlcli.errors import HlcliEnvironmentError
from hlcli.metrics import dists as M
from hlcli.nets import datafiles
from hlcli.nets import dists_net as D

from .conftest import degrade, make_backbone_state_dict, save, textured

ref_module = pytest.importorskip("DISTS_pytorch.DISTS_pt")  # the test extra's dists-pytorch


def _alpha_beta(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 1475, 1, 1, generator=g) * 0.2, torch.rand(1, 1475, 1, 1, generator=g) * 0.2


@pytest.fixture(scope="module")
def nets():
    """(the reference with the random backbone and alpha/beta, hlcli's network with the same)."""
    import torchvision

    features = make_backbone_state_dict("vgg16", seed=2)
    vgg = torchvision.models.vgg16(weights=None)
    vgg.load_state_dict(features, strict=False)
    alpha, beta = _alpha_beta()
    orig = ref_module.models.vgg16
    ref_module.models.vgg16 = lambda *a, **k: vgg  # its constructor asks torchvision for pretrained weights
    try:
        ref = ref_module.DISTS(load_weights=False).eval()
    finally:
        ref_module.models.vgg16 = orig
    ref.alpha.data, ref.beta.data = alpha.clone(), beta.clone()
    return ref, D.DISTS(features, alpha, beta)


def photo(name: str, h: int, w: int) -> torch.Tensor:
    from skimage import data

    a = getattr(data, name)()[:h, :w]
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))).float()[None] / 255


def noisy(x: torch.Tensor, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (x + torch.randint(-25, 26, x.shape, generator=g) / 255).clamp(0, 1)


def test_agrees_with_dists_pytorch_per_pair(nets):
    ref, ours = nets
    a, b = photo("astronaut", 97, 131), photo("coffee", 97, 131)
    x = torch.cat([noisy(a, 0), b, a])
    y = torch.cat([a, a, a])
    with torch.no_grad():
        want = ref(x, y).double()
    got = ours(x, y)
    assert got.dtype == torch.float64 and got.shape == (3,)
    assert (got - want).abs().max() <= 1e-6, (got, want)
    assert got[1] > 0.05  # two different photos: a real distance
    assert got[2] == 0.0  # identical images: exactly 0 (the reference: 1 - float32 sums, about 1e-7)
    for j in range(3):  # per pair, whatever the batch
        assert abs(float(ours(x[j:j + 1], y[j:j + 1])[0]) - float(got[j])) < 1e-9


def test_tiles_cutting_through_real_content_give_the_untiled_value(nets):
    _, ours = nets
    gt = photo("chelsea", 24, 300)  # wider than core + 2 halos: middle tiles' crops end inside the image
    x = noisy(gt, 1)
    whole = float(ours(x, gt)[0])
    spans = D.spans(300, 64)
    assert len(spans) == 5 and any(c0 > 0 for _, _, c0, _ in spans) and any(c1 < 300 for *_, c1 in spans)
    assert abs(float(ours(x, gt, tile_core=64)[0]) - whole) < 1e-8  # float32 convolutions of other shapes
    ours.halo = 96  # less than relu5_3's reach (105 px): no longer exact
    try:
        assert abs(float(ours(x, gt, tile_core=64)[0]) - whole) > 1e-7
    finally:
        ours.halo = D.HALO


def test_reach_and_halo():
    assert D.REACHES[-1] == (105, 90) and D.HALO == 112


# --------------------------------------------------------------------------------------------
# The alpha/beta file.


def test_the_package_file_is_the_official_one():
    loaded = datafiles.load("dists", offline=True)
    assert loaded.source == "package" and loaded.official and loaded.path.stat().st_size == 12288


def test_alpha_beta_files_are_checked(tmp_path):
    torch.save({"alpha": torch.zeros(1, 1474, 1, 1), "beta": torch.zeros(1, 1475, 1, 1)}, tmp_path / "shape.pt")
    with pytest.raises(HlcliEnvironmentError, match="shape"):
        datafiles.load("dists", tmp_path / "shape.pt")

    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))

    torch.save({"alpha": Evil(), "beta": torch.zeros(1)}, tmp_path / "evil.pt")
    with pytest.raises(HlcliEnvironmentError) as e:
        datafiles.load("dists", tmp_path / "evil.pt")
    assert e.value.exit_code == 3 and "not a DISTS weights file" in str(e.value)


def test_without_a_file_offline_is_exit_3_naming_the_extra(monkeypatch):
    monkeypatch.setattr(datafiles, "_package_file", lambda spec: None)
    with pytest.raises(HlcliEnvironmentError) as e:
        datafiles.load("dists", offline=True)
    assert e.value.exit_code == 3 and "hlcli[dists]" in e.value.render()
    assert "hlcli weights import --net dists" in e.value.render()


def test_import_and_show(tmp_path, monkeypatch):
    official = datafiles.load("dists", offline=True).path
    monkeypatch.setattr(datafiles, "_package_file", lambda spec: None)
    runner = CliRunner()
    r = runner.invoke(cli, ["weights", "import", "--net", "dists", str(official)])
    assert r.exit_code == 0, r.output
    assert datafiles.load("dists", offline=True).source == "cache"
    r = runner.invoke(cli, ["weights", "show", "--net", "dists"])
    assert r.exit_code == 0 and "dists-weights.pt" in r.output and "official" in r.output
    alpha, beta = _alpha_beta(3)
    torch.save({"alpha": alpha, "beta": beta}, tmp_path / "mine.pt")
    r = runner.invoke(cli, ["weights", "import", "--net", "dists", str(tmp_path / "mine.pt")])
    assert r.exit_code == 3 and "--dists-weights" in r.output


# --------------------------------------------------------------------------------------------
# DISTS in a run.


def test_dists_in_a_run(tmp_path, cli_env, backbone_files, nets):
    _, ours = nets
    gt = textured(64, 80, 4)
    save(tmp_path / "gt" / "a.png", gt)
    save(tmp_path / "restored" / "a.png", degrade(gt, 4, amount=20))
    save(tmp_path / "gt" / "same.png", gt)
    save(tmp_path / "restored" / "same.png", gt)
    alpha, beta = _alpha_beta()
    torch.save({"alpha": alpha, "beta": beta}, tmp_path / "ab.pt")
    args = ["score", str(tmp_path / "restored"), str(tmp_path / "gt"), "--metrics", "dists",
            "--vgg16-weights", str(backbone_files["vgg16"]), "--dists-weights", str(tmp_path / "ab.pt"), "-f", "json"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    by_key = {p["key"]: p for p in doc["pairs"]}
    x = torch.from_numpy(degrade(gt, 4, amount=20).transpose(2, 0, 1).copy()).float()[None] / 255
    y = torch.from_numpy(gt.transpose(2, 0, 1).copy()).float()[None] / 255
    assert by_key["a"]["dists"] == pytest.approx(float(ours(x, y)[0]), abs=1e-7)
    assert by_key["same"]["dists"] == 0.0
    r = CliRunner().invoke(cli, [*args, "--fail-if", "max.dists>0"])
    assert r.exit_code == 1
