"""LPIPS v0.1 (Zhang et al. 2018), computed exactly as ``lpips.LPIPS(net='alex'|'vgg', version='0.1')``
of richzhang/PerceptualSimilarity (``lpips/lpips.py``, ``pretrained_networks.py``):

    x -> 2x - 1 -> ScalingLayer -> backbone slices (5 ReLU outputs) -> unit-normalise over channels
      -> squared difference -> 1x1 linear head (no bias) -> spatial mean -> sum over the 5 layers.

The backbone is torchvision's ``alexnet().features`` or ``vgg16().features`` with ImageNet
weights (resolved and verified by :mod:`hlcli.nets.weights`, nets ``alexnet`` and ``vgg16``), built here
with non-inplace ReLUs. The linear heads are the v0.1 heads shipped by the optional extra
``hlcli[lpips]`` (torchmetrics: ``torchmetrics/functional/image/lpips_models/{alex,vgg}.pth``),
found without importing torchmetrics.

>>> net, backbone, heads = build("alex", offline=True)      # doctest: +SKIP
>>> net(restored, gt)                                         # doctest: +SKIP
tensor([0.1234, 0.0567], dtype=torch.float64)
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from importlib import metadata

import torch
from torch import nn

from . import weights
from ..errors import HlcliEnvironmentError, InputError
from .netspecs import LAYOUTS

HEADS_PACKAGE = "torchmetrics"
HEADS_EXTRA_FIX = "pip install 'hlcli[lpips]'"

# LPIPS' net name -> torchvision backbone (hlcli.nets.weights' net name).
BACKBONES: dict[str, str] = {"alex": "alexnet", "vgg": "vgg16"}
# End (exclusive) of each of the 5 slices of ``features``: each ends on a ReLU
# (pretrained_networks.py: alexnet 2/5/8/10/12, vgg16 4/9/16/23/30).
SLICE_ENDS: dict[str, tuple[int, ...]] = {"alex": (2, 5, 8, 10, 12), "vgg": (4, 9, 16, 23, 30)}
CHANNELS: dict[str, tuple[int, ...]] = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
EPS = 1e-10


def _check_net(net: str) -> str:
    if net not in BACKBONES:
        raise InputError(f"unknown LPIPS network {net!r}", None, f"use one of: {', '.join(BACKBONES)}")
    return net


def heads_shapes(net: str) -> dict[str, tuple[int, ...]]:
    """The keys and shapes of the v0.1 linear heads of ``net``: ``linK.model.1.weight``."""
    return {f"lin{k}.model.1.weight": (1, c, 1, 1) for k, c in enumerate(CHANNELS[_check_net(net)])}


# --------------------------------------------------------------------------------------------
# The linear heads (from the optional extra hlcli[lpips] = torchmetrics).


@dataclass(frozen=True)
class LPIPSHeads:
    """Verified LPIPS v0.1 linear heads of one network, and where they came from."""

    net: str  # "alex" or "vgg"
    state_dict: dict[str, torch.Tensor]  # linK.model.1.weight, float32, (1, C_k, 1, 1)
    path: Path
    sha256: str
    package: str  # "torchmetrics"
    package_version: str | None


def heads_path(net: str) -> Path:
    """Where the installed torchmetrics keeps the v0.1 heads of ``net``, found without importing
    torchmetrics. No torchmetrics: :class:`~hlcli.InputError` (exit 2) naming the extra."""
    _check_net(net)
    try:
        spec = importlib.util.find_spec(HEADS_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise InputError(
            f"LPIPS needs the v0.1 linear heads from the optional package {HEADS_PACKAGE}, which is "
            "not installed", None, HEADS_EXTRA_FIX,
        )
    path = Path(locations[0]) / "functional" / "image" / "lpips_models" / f"{net}.pth"
    if not path.is_file():
        raise InputError(
            f"the installed {HEADS_PACKAGE} has no LPIPS heads for {net!r}", path,
            f"pip install --upgrade '{HEADS_PACKAGE}>=1.0' (or {HEADS_EXTRA_FIX})",
        )
    return path


def check_heads(obj: Any, net: str, path: str | os.PathLike[str] | None = None) -> dict[str, torch.Tensor]:
    """Check ``obj`` holds exactly the v0.1 heads of ``net`` (keys, floating dtype, shapes, finite
    non-negative weights) and return them as float32 tensors."""
    expected = heads_shapes(net)
    fix = f"reinstall the heads' package ({HEADS_EXTRA_FIX})"
    if not isinstance(obj, dict):
        raise HlcliEnvironmentError(f"LPIPS heads file holds a {type(obj).__name__}, not a state dict", path, fix)
    if set(obj) != set(expected):
        missing = sorted(set(expected) - set(obj))
        unexpected = sorted(map(str, set(obj) - set(expected)))
        raise HlcliEnvironmentError(
            f"not the LPIPS v0.1 {net} heads (missing {missing or 'none'}; unexpected {unexpected[:4] or 'none'})",
            path, fix,
        )
    out = {}
    for key, shape in expected.items():
        t = obj[key]
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise HlcliEnvironmentError(f"LPIPS heads entry {key} is not a floating-point tensor", path, fix)
        if tuple(t.shape) != shape:
            raise HlcliEnvironmentError(
                f"LPIPS heads entry {key} has shape {tuple(t.shape)}, expected {shape}", path, fix
            )
        if not bool(torch.isfinite(t).all()) or bool((t < 0).any()):
            # v0.1's heads are trained clamped to >= 0: LPIPS is then a sum of non-negative terms,
            # never below 0 by rounding either (the schemas' `minimum 0`, docs/formats.md)
            raise HlcliEnvironmentError(f"LPIPS heads entry {key} has negative or non-finite weights, which "
                                        "LPIPS v0.1's heads never have", path, fix)
        out[key] = t.detach().to(torch.float32).contiguous()
    return out


def load_heads(net: str = "alex") -> LPIPSHeads:
    """Find, read (``weights_only``) and verify the v0.1 linear heads of ``net`` ("alex" or
    "vgg") shipped by torchmetrics, with their sha256."""
    path = heads_path(net)
    data = path.read_bytes()
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)  # saved from CUDA tensors
    except Exception as exc:
        raise HlcliEnvironmentError(
            f"cannot read LPIPS heads file: {type(exc).__name__}", path,
            f"reinstall the heads' package ({HEADS_EXTRA_FIX})",
        ) from exc
    try:
        version = metadata.version(HEADS_PACKAGE)
    except metadata.PackageNotFoundError:
        version = None
    return LPIPSHeads(net, check_heads(obj, net, path), path, hashlib.sha256(data).hexdigest(),
                      HEADS_PACKAGE, version)


def load_backbone(net: str = "alex", path: str | os.PathLike[str] | None = None, *, offline: bool = False,
                  progress: bool = False) -> weights.LoadedWeights:
    """The verified ImageNet backbone of LPIPS ``net``: :func:`hlcli.nets.weights.load_weights` with
    ``net="alexnet"`` (for "alex") or ``"vgg16"`` (for "vgg"), in the order ``path``
    (``--lpips-weights`` / ``--lpips-vgg-weights``), ``$HLCLI_LPIPS_WEIGHTS`` /
    ``$HLCLI_LPIPS_VGG_WEIGHTS``, the torch hub cache, a hash-checked download."""
    return weights.load_weights(path, offline=offline, progress=progress, net=BACKBONES[_check_net(net)])


# --------------------------------------------------------------------------------------------
# The network.


def min_size(net: str) -> int:
    """The smallest height (and width) whose every LPIPS layer of ``net`` is at least 1x1."""
    layout = LAYOUTS[BACKBONES[_check_net(net)]][: SLICE_ENDS[net][-1]]

    def out(n: int) -> int:
        for m in layout:
            if m[0] == "conv":
                n = (n + 2 * m[5] - m[3]) // m[4] + 1
            elif m[0] == "pool":
                n = (n - m[1]) // m[2] + 1
            if n < 1:
                return 0
        return n

    size = 1
    while out(size) < 1:
        size += 1
    return size


def _features(layout: tuple, end: int) -> list[nn.Module]:
    mods: list[nn.Module] = []
    for m in layout[:end]:
        if m[0] == "conv":
            _, cin, cout, k, stride, pad = m
            mods.append(nn.Conv2d(cin, cout, k, stride=stride, padding=pad))
        elif m[0] == "relu":
            mods.append(nn.ReLU(inplace=False))  # torchvision's are in-place
        else:
            mods.append(nn.MaxPool2d(kernel_size=m[1], stride=m[2]))
    return mods


class LPIPSNet(nn.Module):
    """LPIPS v0.1 with an AlexNet (``net="alex"``) or VGG-16 (``net="vgg"``) backbone.

    ``backbone_state_dict``: torchvision's ``features.*`` tensors (full checkpoint or features
    only; e.g. ``load_backbone(net).state_dict``); ``heads_state_dict``: the v0.1 heads
    (``linK.model.1.weight``; e.g. ``load_heads(net).state_dict``). Both are checked key by key
    and shape by shape. Runs in float32, in eval mode; parameters do not require grad, but
    gradients flow to the inputs.
    """

    def __init__(self, backbone_state_dict: dict[str, Any], heads_state_dict: dict[str, Any], net: str = "alex"):
        super().__init__()
        self.net = _check_net(net)
        self.min_size = min_size(net)
        backbone = BACKBONES[net]
        feats = weights.extract_features(backbone_state_dict, None, backbone)
        heads = check_heads(heads_state_dict, net)
        mods = _features(LAYOUTS[backbone], SLICE_ENDS[net][-1])
        with torch.no_grad():
            for i, mod in enumerate(mods):
                if isinstance(mod, nn.Conv2d):
                    mod.weight.copy_(feats[f"features.{i}.weight"])
                    mod.bias.copy_(feats[f"features.{i}.bias"])
        starts = (0, *SLICE_ENDS[net][:-1])
        self.slices = nn.ModuleList(nn.Sequential(*mods[a:b]) for a, b in zip(starts, SLICE_ENDS[net]))
        self.heads = nn.ModuleList()
        for k, c in enumerate(CHANNELS[net]):
            conv = nn.Conv2d(c, 1, 1, stride=1, padding=0, bias=False)
            with torch.no_grad():
                conv.weight.copy_(heads[f"lin{k}.model.1.weight"])
            self.heads.append(conv)
        self.register_buffer("shift", torch.tensor(SHIFT, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE, dtype=torch.float32).view(1, 3, 1, 1))
        self.float().eval().requires_grad_(False)

    def _check(self, restored: torch.Tensor, gt: torch.Tensor) -> None:
        for name, t in (("restored", restored), ("gt", gt)):
            if not isinstance(t, torch.Tensor):
                raise InputError(f"LPIPS {name} must be a tensor, got {type(t).__name__}")
            if t.dim() != 4 or t.shape[1] != 3:
                raise InputError(f"LPIPS {name} must have shape (N, 3, H, W), got {tuple(t.shape)}")
            if not t.is_floating_point():
                raise InputError(f"LPIPS {name} must be float RGB in [0, 1], got dtype {t.dtype}")
        if restored.shape != gt.shape:
            raise InputError(f"LPIPS needs images of one shape: restored {tuple(restored.shape)}, "
                             f"gt {tuple(gt.shape)}")
        if min(restored.shape[2:]) < self.min_size:
            raise InputError(f"image of {restored.shape[2]}x{restored.shape[3]} pixels is too small for "
                             f"LPIPS ({self.net}), which needs at least {self.min_size}x{self.min_size}")

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = x.to(device=self.shift.device, dtype=torch.float32)
        h = ((x * 2 - 1) - self.shift) / self.scale
        out = []
        for sl in self.slices:
            h = sl(h)
            out.append(h)
        return out

    def layer_maps(self, restored: torch.Tensor, gt: torch.Tensor) -> list[torch.Tensor]:
        """Per layer, the map after the linear head, shape (N, h_l, w_l), float32: the spatial
        mean of map l is layer l's share of the LPIPS value (the value is their sum)."""
        self._check(restored, gt)
        maps = []
        for f0, f1, head in zip(self._features(restored), self._features(gt), self.heads):
            n0 = f0 / (torch.sqrt(torch.sum(f0 ** 2, dim=1, keepdim=True)) + EPS)
            n1 = f1 / (torch.sqrt(torch.sum(f1 ** 2, dim=1, keepdim=True)) + EPS)
            maps.append(head((n0 - n1) ** 2)[:, 0])
        return maps

    def forward(self, restored: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        """Per-image LPIPS, shape (N,), float64 (spatial means accumulated in float64)."""
        maps = self.layer_maps(restored, gt)
        return torch.stack([m.double().mean(dim=(1, 2)) for m in maps]).sum(dim=0)


def build(net: str = "alex", path: str | os.PathLike[str] | None = None, *, offline: bool = False,
          progress: bool = False) -> tuple[LPIPSNet, weights.LoadedWeights, LPIPSHeads]:
    """An :class:`LPIPSNet` for ``net`` from the resolved backbone (``path`` first, see
    :func:`load_backbone`) and torchmetrics' heads, with both provenances (for the JSON
    settings: backbone path/source/sha256/official, heads path/sha256/package version).
    The heads are checked first: without ``hlcli[lpips]`` nothing is downloaded."""
    heads = load_heads(net)
    backbone = load_backbone(net, path, offline=offline, progress=progress)
    return LPIPSNet(backbone.state_dict, heads.state_dict, net), backbone, heads
