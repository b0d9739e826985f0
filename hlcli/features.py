"""VGG-19 feature extractor: torchvision's ``vgg19().features``, truncated after the deepest
requested layer, with ReLUs that are NOT in-place.

The network is built here from the layer table (same modules, same state-dict keys as
torchvision) rather than imported from torchvision: importing torchvision costs over a second of
start-up, and torchvision's ``inplace=True`` ReLUs would overwrite a conv output kept by
reference (the "convX_Y is really reluX_Y" bug). ImageNet normalisation is part of the module,
so callers feed RGB in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .layers import IMAGENET_MEAN, IMAGENET_STD, LAYERS, LayerSpec


def build_vgg19_features(depth: int) -> nn.Sequential:
    """``vgg19().features[:depth]`` with non-in-place ReLUs, randomly initialised."""
    modules: list[nn.Module] = []
    for spec in LAYERS[:depth]:
        if spec.kind == "conv":
            modules.append(nn.Conv2d(spec.in_channels, spec.channels, kernel_size=3, padding=1))
        elif spec.kind == "relu":
            modules.append(nn.ReLU(inplace=False))
        else:
            modules.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*modules)


class VGGFeatures(nn.Module):
    """Returns the feature maps of ``layers`` (in the given order) for a batch of RGB images in
    [0, 1], shape (N, 3, H, W). Runs the network only up to the deepest requested layer."""

    def __init__(self, state_dict: dict[str, torch.Tensor], layers: Sequence[LayerSpec]):
        super().__init__()
        if not layers:
            raise ValueError("at least one layer is required")
        self.layers = tuple(layers)
        self.depth = max(spec.index for spec in self.layers) + 1
        self.features = build_vgg19_features(self.depth)
        wanted = {
            k.removeprefix("features."): v
            for k, v in state_dict.items()
            if int(k.split(".")[1]) < self.depth
        }
        self.features.load_state_dict(wanted, strict=True)
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
