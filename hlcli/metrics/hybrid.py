"""The metrics: one reduction path shared by the CLI's engine and the importable API.

* :func:`l1`: mean absolute error over all H*W*C values of images in [0, 1].
* :func:`feature_mse`: mean over all C*H*W values of the squared difference of two feature maps.
* :func:`perceptual`: ``sum_l w_l * perceptual_l``; :func:`hybrid`: ``L1 + lambda * perceptual``.
* :class:`HybridLoss`: the same numbers as a differentiable ``nn.Module``, for training.

Every per-image value is made the same way: a float64 sum (:func:`abs_diff_sum`,
:func:`squared_diff_sum`, possibly added up over tiles) divided once by the number of values
(:func:`l1_from_sum`, :func:`feature_mse_from_sum`), then combined by :func:`combine`. The engine
(:mod:`hlcli.engine.batch`) and :class:`HybridLoss` both go through these functions, so the CLI and the
training loss cannot drift apart. Sums accumulate in float64, so a mean over millions of values
adds no error of its own to float32 features; for 8/16-bit integer images the L1 sum is exact
(int64) and divided once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..nets.layers import DEFAULT_LAYERS, resolve_layers
from ..text import plural
from ..nets.weights import load_weights
from ..nets.features import VGGFeatures

__all__ = ["HybridLoss", "abs_diff_sum", "combine", "feature_mse", "feature_mse_from_sum", "hybrid", "l1",
           "l1_from_sum", "perceptual", "squared_diff_sum"]


def check_pair_shapes(restored: torch.Tensor, gt: torch.Tensor) -> None:
    if restored.shape != gt.shape:
        raise ValueError(
            f"restored and ground truth must have the same shape, got {tuple(restored.shape)} "
            f"and {tuple(gt.shape)}"
        )
    if restored.dim() != 4 or restored.shape[1] != 3:
        raise ValueError(f"expected a batch of RGB images (N, 3, H, W), got {tuple(restored.shape)}")


# -- sums (float64, per image) ----------------------------------------------------------------

def abs_diff_sum(restored: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Per-image sum of |restored - gt| as float64, shape (N,). Integer inputs (uint8/uint16,
    not yet scaled) are summed exactly in int64; float inputs are accumulated in float64."""
    if not restored.is_floating_point():
        diff = (restored.to(torch.int32) - gt.to(torch.int32)).abs_()
        return diff.flatten(1).sum(dim=1, dtype=torch.int64).to(torch.float64)
    return (restored - gt).abs().flatten(1).sum(dim=1, dtype=torch.float64)


def squared_diff_sum(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image sum of (a - b)^2 accumulated in float64, shape (N,)."""
    wide = torch.promote_types(a.dtype, torch.float32)  # bf16/fp16 widened; float64 kept (gradcheck)
    d = a.to(wide) - b.to(wide)
    # Square in place when no gradient is needed, and reduce over every non-batch dim directly:
    # flatten(1) of a channels_last feature map would copy it first.
    d = d.square_() if not d.requires_grad else d * d
    return d.sum(dim=tuple(range(1, d.dim())), dtype=torch.float64)


# -- per-image means from sums ----------------------------------------------------------------

def l1_from_sum(abs_sum: torch.Tensor, values: int, *, scale: float = 1.0) -> torch.Tensor:
    """Per-image L1 from the per-image sum of absolute differences over ``values`` values
    (H*W*C) of images whose white is ``scale`` (255 or 65535 for integer images, 1 for floats)."""
    return abs_sum / (values * scale)


def feature_mse_from_sum(sq_sum: torch.Tensor, values: Any) -> torch.Tensor:
    """Per-image feature MSE from per-image sums of squared differences over ``values``
    (C_l*H_l*W_l) values; ``values`` may be a tensor of counts, one per layer column."""
    return sq_sum / values


def combine(l1_values: torch.Tensor, per_layer: torch.Tensor, layer_weights: Sequence[float],
            lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(perceptual, hybrid) per image from L1 (N,) and per-layer perceptual (N, L):
    perceptual = sum_l w_l * per_layer[:, l]; hybrid = L1 + lam * perceptual."""
    w = torch.as_tensor(list(layer_weights), dtype=per_layer.dtype, device=per_layer.device)
    weighted = (per_layer * w).sum(dim=1)
    return weighted, l1_values + lam * weighted


# -- the functional API -----------------------------------------------------------------------

def l1(restored: torch.Tensor, gt: torch.Tensor, *, scale: float = 1.0) -> torch.Tensor:
    """Per-image mean absolute error, float64, shape (N,). ``scale`` is the value of white for
    integer inputs (255 or 65535); leave it 1.0 for float images in [0, 1].

    >>> import torch, hlcli
    >>> hlcli.l1(torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.25))
    tensor([0.2500], dtype=torch.float64)
    """
    check_pair_shapes(restored, gt)
    return l1_from_sum(abs_diff_sum(restored, gt), restored[0].numel(), scale=scale)


def feature_mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image mean over C*H*W of (a - b)^2, float64, shape (N,).

    >>> import torch, hlcli
    >>> hlcli.feature_mse(torch.zeros(2, 8, 4, 4), torch.full((2, 8, 4, 4), 0.5))
    tensor([0.2500, 0.2500], dtype=torch.float64)
    """
    return feature_mse_from_sum(squared_diff_sum(a, b), a[0].numel())


def perceptual(restored: torch.Tensor, gt: torch.Tensor, *, layers: Sequence[str] = DEFAULT_LAYERS,
               layer_weights: Sequence[float] | None = None, weights: Any = None) -> torch.Tensor:
    """Per-image ``sum_l w_l * feature_mse(phi_l(restored), phi_l(gt))``, float64, shape (N,),
    for float RGB batches in [0, 1]. ``weights``: a VGG-19 state dict, a
    :class:`~hlcli.nets.weights.LoadedWeights` or a checkpoint path (default: the resolution order of
    :func:`hlcli.load_weights`). The network is built once per (weights, layers, device).

    >>> hlcli.perceptual(restored, gt, layers=["conv3_3"], weights=sd)  # doctest: +SKIP
    tensor([0.0123], dtype=torch.float64)
    """
    return _cached_loss(weights, layers, layer_weights, 0.0, restored.device).terms(restored, gt)["perceptual"]


def hybrid(restored: torch.Tensor, gt: torch.Tensor, *, lam: float = 0.05,
           layers: Sequence[str] = DEFAULT_LAYERS, layer_weights: Sequence[float] | None = None,
           weights: Any = None) -> torch.Tensor:
    """Per-image ``l1 + lam * perceptual``, float64, shape (N,): the number ``hlcli score``
    reports for each pair. Arguments as in :func:`perceptual`.

    >>> hlcli.hybrid(restored, gt, lam=0.05, weights="vgg19-dcbb9e9d.pth")  # doctest: +SKIP
    tensor([0.0421], dtype=torch.float64)
    """
    return _cached_loss(weights, layers, layer_weights, lam, restored.device).terms(restored, gt)["hybrid"]


_LOSSES: dict[tuple, HybridLoss] = {}


def _cached_loss(weights: Any, layers: Sequence[str], layer_weights: Sequence[float] | None, lam: float,
                 device: torch.device) -> HybridLoss:
    ident = weights if isinstance(weights, (str, type(None))) else id(weights)
    key = (str(ident), tuple(layers), None if layer_weights is None else tuple(layer_weights), lam, str(device))
    loss = _LOSSES.get(key)
    if loss is None:
        if len(_LOSSES) >= 4:  # a handful of networks at most: each holds the weights
            _LOSSES.clear()
        loss = _LOSSES[key] = HybridLoss(weights, layers=layers, layer_weights=layer_weights, lam=lam,
                                         reduction="none").to(device)
    return loss


def _state_dict(weights: Any) -> dict[str, torch.Tensor]:
    """A verified features state dict from a state dict, LoadedWeights, a path or None."""
    if isinstance(weights, dict):
        return weights
    if hasattr(weights, "state_dict") and isinstance(weights.state_dict, dict):
        return weights.state_dict

    return load_weights(weights).state_dict


class HybridLoss(nn.Module):
    """Differentiable hybrid loss, ``L1 + lam * sum_l w_l * MSE(phi_l(restored), phi_l(gt))``:
    the definition ``hlcli score`` uses, for training. Inputs are float RGB batches in [0, 1],
    shape (N, 3, H, W), on any device the module is on; it works under ``torch.autocast``.

    ``weights``: a VGG-19 state dict (torchvision format), a :class:`~hlcli.nets.weights.LoadedWeights`,
    a checkpoint path, or None for the resolution order of :func:`hlcli.load_weights`.
    ``crop_border``: pixels shaved from every side of both images before every metric
    (BasicSR's ``crop_border``). ``reduction``: ``"mean"`` (default, a scalar), ``"sum"`` or
    ``"none"`` (per image, float64).

    >>> loss_fn = hlcli.HybridLoss(lam=0.05, layers=["conv3_3", "conv4_3"])  # doctest: +SKIP
    >>> loss = loss_fn(model(lr), hr); loss.backward()                       # doctest: +SKIP
    """

    def __init__(
        self,
        weights: Any = None,
        *,
        layers: Sequence[str] = DEFAULT_LAYERS,
        layer_weights: Sequence[float] | None = None,
        lam: float = 0.05,
        crop_border: int = 0,
        reduction: str = "mean",
    ):
        super().__init__()

        specs = resolve_layers(list(layers))
        if layer_weights is None:
            layer_weights = [1.0] * len(specs)
        if len(layer_weights) != len(specs):
            raise ValueError(f"{plural(len(layer_weights), 'layer weight')} given for {plural(len(specs), 'layer')}")
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        if crop_border < 0:
            raise ValueError(f"crop_border must be >= 0, got {crop_border}")
        self.extractor = VGGFeatures(_state_dict(weights), specs)
        self.layer_weights = tuple(float(w) for w in layer_weights)
        self.lam = float(lam)
        self.crop_border = int(crop_border)
        self.reduction = reduction

    def terms(self, restored: torch.Tensor, gt: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-image ``l1``, ``layers`` (N, L: unweighted perceptual per layer, in the order
        given), ``perceptual`` and ``hybrid``, all float64."""
        check_pair_shapes(restored, gt)
        if self.crop_border:
            c = self.crop_border
            if min(restored.shape[-2:]) <= 2 * c:
                raise ValueError(f"crop_border {c} leaves nothing of a {tuple(restored.shape[-2:])} image")
            restored, gt = restored[:, :, c:-c, c:-c], gt[:, :, c:-c, c:-c]
        n = restored.shape[0]
        feats = self.extractor(torch.cat([restored, gt]))
        per_layer = torch.stack([feature_mse(f[:n], f[n:]) for f in feats], dim=1)
        l1_values = l1(restored, gt)
        weighted, total = combine(l1_values, per_layer, self.layer_weights, self.lam)
        return {"l1": l1_values, "layers": per_layer, "perceptual": weighted, "hybrid": total}

    def forward(self, restored: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        total = self.terms(restored, gt)["hybrid"]
        if self.reduction == "mean":
            return total.mean()
        if self.reduction == "sum":
            return total.sum()
        return total
