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


