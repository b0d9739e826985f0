"""VGG-19 feature extractor: torchvision's ``vgg19().features``, truncated after the deepest
requested layer, whose requested outputs are never overwritten by an in-place ReLU.

The network is built here from the layer table (same modules, same state-dict keys as
torchvision) rather than imported from torchvision: importing torchvision costs over a second of
start-up. torchvision's ReLUs are all ``inplace=True``, which overwrites a conv output kept by
reference (the "convX_Y is really reluX_Y" bug). Here a ReLU is in-place only where its input is
not a requested layer: that keeps every requested value intact while saving one full-size
activation allocation (and its page faults) per ReLU, which is measurably faster on the CPU.
ImageNet normalisation is part of the module, so callers feed RGB in [0, 1].

Modules are created on the ``meta`` device and the checkpoint's tensors are assigned to them
(cloned, in the requested memory format): no time is spent on a random initialisation that would
be overwritten at once, and the weights are copied exactly once.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import torch
from torch import nn

from .layers import IMAGENET_MEAN, IMAGENET_STD, LAYERS, LayerSpec


def build_vgg19_features(depth: int, *, keep: Collection[int] = (), device=None) -> nn.Sequential:
    """``vgg19().features[:depth]``, randomly initialised (uninitialised on ``device="meta"``).
    A ReLU is in-place unless the module before it is in ``keep`` (indices of outputs the caller
    holds on to); with the default ``keep=()`` every ReLU is in-place, as in torchvision."""
    modules: list[nn.Module] = []
    for spec in LAYERS[:depth]:
        if spec.kind == "conv":
            modules.append(nn.Conv2d(spec.in_channels, spec.channels, kernel_size=3, padding=1, device=device))
        elif spec.kind == "relu":
            modules.append(nn.ReLU(inplace=(spec.index - 1) not in keep))
        else:
            modules.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*modules)


class VGGFeatures(nn.Module):
    """Returns the feature maps of ``layers`` (in the given order) for a batch of RGB images in
    [0, 1], shape (N, 3, H, W). Runs the network only up to the deepest requested layer.

    ``memory_format``: layout of the conv weights (``torch.channels_last`` for the engine, whose
    inputs are channels-last too; the default keeps torchvision's layout). The module's weights
    are float32 copies of the checkpoint's, never views of the caller's tensors."""

    def __init__(
        self,
        state_dict: dict[str, torch.Tensor],
        layers: Sequence[LayerSpec],
        *,
        memory_format: torch.memory_format = torch.contiguous_format,
    ):
        super().__init__()
        if not layers:
            raise ValueError("at least one layer is required")
        self.layers = tuple(layers)
        self.depth = max(spec.index for spec in self.layers) + 1
        keep = {spec.index for spec in self.layers}
        self.features = build_vgg19_features(self.depth, keep=keep, device="meta")
        wanted = {}
        for k, v in state_dict.items():
            if int(k.split(".")[1]) < self.depth:
                v = v.detach().to(torch.float32)
                fmt = memory_format if v.dim() == 4 else torch.contiguous_format
                wanted[k.removeprefix("features.")] = v.clone(memory_format=fmt)
        self.features.load_state_dict(wanted, strict=True, assign=True)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self._slot = {spec.index: i for i, spec in enumerate(self.layers)}
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        out: list[torch.Tensor | None] = [None] * len(self.layers)
        for index, module in enumerate(self.features):
            x = module(x)
            slot = self._slot.get(index)
            if slot is not None:
                out[slot] = x
        return out  # type: ignore[return-value]
