"""Shared fixtures. No network: a seeded, randomly initialised VGG-19 checkpoint in torchvision's
format is made once per session and loaded through hlcli's real loading code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"


@pytest.fixture(autouse=True)
def _isolated_caches(tmp_path_factory, monkeypatch):
    """Every test gets empty torch and hlcli caches, and never downloads."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("TORCH_HOME", str(home / "torch"))
    monkeypatch.setenv("HLCLI_CACHE", str(home / "hlcli"))
    monkeypatch.delenv("HLCLI_WEIGHTS", raising=False)
    monkeypatch.delenv("HLCLI_LPIPS_WEIGHTS", raising=False)
    monkeypatch.delenv("HLCLI_LPIPS_VGG_WEIGHTS", raising=False)
    monkeypatch.delenv("HLCLI_VGG16_WEIGHTS", raising=False)
    monkeypatch.delenv("HLCLI_DISTS_WEIGHTS", raising=False)
    monkeypatch.delenv("HLCLI_NIQE_PARAMS", raising=False)
    monkeypatch.delenv("HLCLI_OFFLINE", raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)


def make_vgg19_state_dict(seed: int = 0, *, full: bool = False) -> dict:
    """torchvision's vgg19() with seeded random weights and small random biases (so that bias
    loading is exercised). ``full`` keeps the classifier, like torchvision's checkpoint."""
    import torch
    import torchvision

    torch.manual_seed(seed)
    model = torchvision.models.vgg19(weights=None)
    with torch.no_grad():
        for m in model.features:
            if isinstance(m, torch.nn.Conv2d):
                m.bias.normal_(0.0, 0.05)
    sd = model.state_dict()
    if not full:
        sd = {k: v for k, v in sd.items() if k.startswith("features.")}
    return sd


def make_backbone_state_dict(net: str, seed: int = 0) -> dict:
    """torchvision's alexnet() or vgg16() (the LPIPS backbones) with seeded random weights and
    small random biases, ``features.*`` only (enough for hlcli; the classifier is never used)."""
    import torch
    import torchvision

    torch.manual_seed(seed)
    model = {"alexnet": torchvision.models.alexnet, "vgg16": torchvision.models.vgg16}[net](weights=None)
    with torch.no_grad():
        for m in model.features:
            if isinstance(m, torch.nn.Conv2d):
                m.bias.normal_(0.0, 0.05)
    return {k: v for k, v in model.state_dict().items() if k.startswith("features.")}


@pytest.fixture(scope="session")
def backbone_files(tmp_path_factory) -> dict[str, Path]:
    """Random AlexNet and VGG-16 checkpoints (torchvision format), one file each per session."""
    import torch

    root = tmp_path_factory.mktemp("backbones")
    out = {}
    for seed, net in enumerate(("alexnet", "vgg16"), 1):
        out[net] = root / f"{net}-random-features.pth"
        torch.save(make_backbone_state_dict(net, seed), out[net])
    return out


@pytest.fixture(scope="session")
def weights_file(tmp_path_factory) -> Path:
    import torch

    path = tmp_path_factory.mktemp("weights") / "vgg19-random-features.pth"
    torch.save(make_vgg19_state_dict(), path)
    return path


@pytest.fixture(scope="session")
def scored_documents(tmp_path_factory) -> dict:
    """One small real run, its two shard parts and its maps index (``tests/docfixtures.py``),
    scored once per session for the document readers' tests and fuzzer."""
    from .docfixtures import make_documents

    return make_documents(tmp_path_factory.mktemp("documents"))


@pytest.fixture(scope="session")
def state_dict(weights_file):
    import torch

    return torch.load(weights_file, weights_only=True)


def textured(h: int, w: int, seed: int, channels: int = 3) -> np.ndarray:
    """A deterministic, photo-like uint8 image: smooth gradients plus texture."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    base = np.stack([
        127 + 80 * np.sin(xx / (7 + c * 3) + seed) * np.cos(yy / (11 + c)) for c in range(channels)
    ], axis=2)
    noise = rng.normal(0, 25, size=(h, w, channels))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def degrade(img: np.ndarray, seed: int, amount: float = 12.0) -> np.ndarray:
    rng = np.random.default_rng(seed + 1000)
    return np.clip(img.astype(np.float64) + rng.normal(0, amount, img.shape), 0, 255).astype(np.uint8)


def save(path: Path, arr: np.ndarray, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, **kwargs)
    return path


@pytest.fixture
def pair_dirs(tmp_path):
    """restored/ and gt/ with a few pairs of different sizes (one identical pair)."""
    sizes = {"a": (64, 64), "b": (48, 80), "c": (64, 64), "same": (40, 56)}
    for i, (name, (h, w)) in enumerate(sizes.items()):
        gt = textured(h, w, seed=i)
        save(tmp_path / "gt" / f"{name}.png", gt)
        rest = gt if name == "same" else degrade(gt, seed=i)
        save(tmp_path / "restored" / f"{name}.png", rest)
    return tmp_path / "restored", tmp_path / "gt"


@pytest.fixture
def cli_env(weights_file, monkeypatch):
    """Point hlcli at the random weights through $HLCLI_WEIGHTS (the real resolution path)."""
    monkeypatch.setenv("HLCLI_WEIGHTS", str(weights_file))
    return weights_file


@pytest.fixture(scope="session")
def inception_file(tmp_path_factory) -> Path:
    """A random FID Inception checkpoint (pytorch-fid's keys), one file per session."""
    import torch

    from hlcli.nets import inception

    path = tmp_path_factory.mktemp("inception") / "inception.pth"
    torch.save(inception.random_state_dict(11), path)
    return path


@pytest.fixture
def fid_env(cli_env, inception_file, monkeypatch):
    """:func:`cli_env` and the random Inception through $HLCLI_INCEPTION_WEIGHTS."""
    monkeypatch.setenv("HLCLI_INCEPTION_WEIGHTS", str(inception_file))
    return inception_file


@pytest.fixture(scope="session")
def lpips_oracles(backbone_files):
    """lpips.LPIPS(net, version='0.1') with the lpips package's own heads and the random backbones of
    ``backbone_files``: the independent oracle of the LPIPS tests."""
    import warnings

    import lpips
    import torch

    out = {}
    for net in ("alex", "vgg"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torchvision's `pretrained=` deprecation
            ref = lpips.LPIPS(net=net, version="0.1", pretrained=True, pnet_rand=True, verbose=False)
        sd = torch.load(backbone_files[{"alex": "alexnet", "vgg": "vgg16"}[net]], weights_only=True)
        slices = [ref.net.slice1, ref.net.slice2, ref.net.slice3, ref.net.slice4, ref.net.slice5]
        copied = 0
        with torch.no_grad():
            for sl in slices:
                for name, mod in sl.named_children():  # named by their index in features
                    if isinstance(mod, torch.nn.Conv2d):
                        mod.weight.copy_(sd[f"features.{name}.weight"])
                        mod.bias.copy_(sd[f"features.{name}.bias"])
                        copied += 1
        assert copied == len([k for k in sd if k.endswith(".weight")])
        out[net] = ref.eval()
    return out


def grouped_samples(root: Path) -> tuple[Path, Path]:
    """The four bundled pairs in two groups under ``root`` (``A``: astronaut, chelsea; ``B``:
    coffee, rocket): ``(restored, gt)`` folders to score with ``-r --group-by top``."""
    import shutil

    for group, names in (("A", ("astronaut", "chelsea")), ("B", ("coffee", "rocket"))):
        for name in names:
            (root / "gt" / group).mkdir(parents=True, exist_ok=True)
            (root / "restored" / group).mkdir(parents=True, exist_ok=True)
            shutil.copy(SAMPLES / "gt" / f"{name}.png", root / "gt" / group)
            shutil.copy(next((SAMPLES / "restored").glob(f"{name}.*")), root / "restored" / group)
    return root / "restored", root / "gt"


@pytest.fixture(scope="session")
def fid_run(tmp_path_factory, weights_file, inception_file):
    """One grouped run with set metrics (psnr, fid, kid; 64 Inception features; ``--group-by
    top`` over :func:`grouped_samples`), scored once per session: ``(run, path of its stored JSON
    document)``. Views render the live run or read the document back."""
    from hlcli.engine.scoring import score_dirs

    root = tmp_path_factory.mktemp("fidrun")
    restored, gt = grouped_samples(root)
    import warnings

    with warnings.catch_warnings():  # the small-set warning (4 samples, 64 features): said in the document too
        warnings.simplefilter("ignore")
        run = score_dirs(restored, gt, recursive=True, weights=str(weights_file), inception_weights=str(inception_file),
                         metrics=("psnr", "fid", "kid"), fid_dims=64, group_by="top")
    path = root / "run.json"
    import json

    path.write_text(json.dumps(run.document(), allow_nan=False))
    return run, path


@pytest.fixture(autouse=True)
def _torch_threads_unchanged():
    """A test that changes torch's thread count must put it back: every later test would run on
    its count (one test left one thread behind, and the rest of the suite ran at half speed)."""
    import torch

    before = torch.get_num_threads()
    yield
    after = torch.get_num_threads()
    torch.set_num_threads(before)
    assert after == before, f"the test left torch.get_num_threads() at {after} (it was {before})"
