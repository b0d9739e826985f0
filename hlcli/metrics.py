"""The metrics, shared by the CLI engine and the importable API.

* ``l1``: mean absolute error over all H*W*C values of images in [0, 1].
* ``feature_mse``: mean over all C*H*W values of the squared difference of two feature maps.
* ``hybrid``: L1 + lambda * sum_l w_l * perceptual_l.

Per-image reductions accumulate in float64 (``sum(dtype=float64)``), so a mean over millions of
values adds no error of its own to the float32 features. For 8/16-bit integer images the L1 sum
is computed exactly in int64 and divided once.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .layers import DEFAULT_LAYERS, resolve_layers


def check_pair_shapes(restored: torch.Tensor, gt: torch.Tensor) -> None:
    if restored.shape != gt.shape:
        raise ValueError(
            f"restored and ground truth must have the same shape, got {tuple(restored.shape)} "
            f"and {tuple(gt.shape)}"
        )
    if restored.dim() != 4 or restored.shape[1] != 3:
        raise ValueError(f"expected a batch of RGB images (N, 3, H, W), got {tuple(restored.shape)}")


def abs_diff_sum(restored: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Per-image sum of |restored - gt| as float64, shape (N,). Integer inputs (uint8/uint16,
    not yet scaled) are summed exactly in int64; float inputs are accumulated in float64."""
    if not restored.is_floating_point():
        diff = (restored.to(torch.int32) - gt.to(torch.int32)).abs_()
        return diff.flatten(1).sum(dim=1, dtype=torch.int64).to(torch.float64)
    return (restored - gt).abs().flatten(1).sum(dim=1, dtype=torch.float64)


def l1(restored: torch.Tensor, gt: torch.Tensor, *, scale: float = 1.0) -> torch.Tensor:
    """Per-image mean absolute error, float64, shape (N,). ``scale`` is the value of white for
    integer inputs (255 or 65535); leave it 1.0 for float images in [0, 1]."""
    check_pair_shapes(restored, gt)
    count = restored[0].numel()
    return abs_diff_sum(restored, gt) / (count * scale)


def squared_diff_sum(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image sum of (a - b)^2 accumulated in float64, shape (N,)."""
    d = a.float() - b.float()  # bf16/fp16 features are widened before subtracting
    # Square in place when no gradient is needed, and reduce over every non-batch dim directly:
    # flatten(1) of a channels_last feature map would copy it first.
    d = d.square_() if not d.requires_grad else d * d
    return d.sum(dim=tuple(range(1, d.dim())), dtype=torch.float64)


def feature_mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image mean over C*H*W of (a - b)^2, float64, shape (N,)."""
    return squared_diff_sum(a, b) / a[0].numel()


def combine(
    l1_values: torch.Tensor, perceptual_per_layer: torch.Tensor, weights: Sequence[float], lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(perceptual, hybrid) from per-image L1 (N,) and per-layer perceptual (N, L)."""
    w = torch.as_tensor(list(weights), dtype=perceptual_per_layer.dtype, device=perceptual_per_layer.device)
    perceptual = (perceptual_per_layer * w).sum(dim=1)
    return perceptual, l1_values + lam * perceptual


class HybridLoss(nn.Module):
    """Differentiable hybrid loss, ``L1 + lambda * sum_l w_l * MSE(phi_l(restored), phi_l(gt))``,
    for training. Inputs are float RGB batches in [0, 1], shape (N, 3, H, W).

    ``reduction``: ``"mean"`` (default, a scalar), ``"sum"`` or ``"none"`` (per image).
    The weights are a verified VGG-19 state dict, e.g. ``hlcli.weights.load(...).state_dict``.
    """

    def __init__(
        self,
        state_dict: dict[str, torch.Tensor],
        *,
        layers: Sequence[str] = DEFAULT_LAYERS,
        layer_weights: Sequence[float] | None = None,
        lam: float = 0.05,
        reduction: str = "mean",
    ):
        super().__init__()
        from .features import VGGFeatures

        specs = resolve_layers(list(layers))
        if layer_weights is None:
            layer_weights = [1.0] * len(specs)
        if len(layer_weights) != len(specs):
            raise ValueError(f"{len(layer_weights)} layer weights given for {len(specs)} layers")
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        self.extractor = VGGFeatures(state_dict, specs)
        self.layer_weights = tuple(float(w) for w in layer_weights)
        self.lam = float(lam)
        self.reduction = reduction

    def forward(self, restored: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        check_pair_shapes(restored, gt)
        feats = self.extractor(torch.cat([restored, gt]))
        n = restored.shape[0]
        per_layer = torch.stack([feature_mse(f[:n], f[n:]) for f in feats], dim=1)
        _, hybrid = combine(l1(restored, gt), per_layer, self.layer_weights, self.lam)
        if self.reduction == "mean":
            return hybrid.mean()
        if self.reduction == "sum":
            return hybrid.sum()
        return hybrid
