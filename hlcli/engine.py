"""The compute engine: device and precision, the truncated VGG-19, per-batch metrics, exact tiled
inference for images too large for one forward, and retry with smaller batches on CUDA OOM.

For each pair: L1 exactly from the integer pixels; per layer, the float64-accumulated sum of
squared feature differences divided by C_l*H_l*W_l. Restored and ground truth go through the
network in one forward (``torch.cat``), channels_last, under ``torch.inference_mode``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from . import metrics
from .errors import HlcliEnvironmentError
from .features import VGGFeatures
from .layers import LayerSpec

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def select_device(name: str) -> torch.device:
    """``auto`` picks CUDA, then MPS, then CPU. An explicitly requested device that is absent is
    an environment error (exit 3), never a silent fallback."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise HlcliEnvironmentError(
                "--device cuda was requested but CUDA is not available", None,
                f"install a CUDA build of torch (this one is {torch.__version__}) or use --device cpu",
            )
        dev = torch.device(name)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise HlcliEnvironmentError(
                f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) present", None,
                "use --device cuda:0",
            )
        return dev
    if name == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise HlcliEnvironmentError(
                "--device mps was requested but MPS is not available", None,
                "run on Apple silicon with an MPS build of torch, or use --device cpu",
            )
        return torch.device("mps")
    raise HlcliEnvironmentError(f"unknown device {name!r}", None, "use auto, cpu, cuda, cuda:N or mps")


def configure_backends(device: torch.device, *, deterministic: bool = True) -> dict[str, object]:
    """Make GPU results reproducible and full-precision by default; return what was set (for the
    JSON record). TF32 is off: it would silently round fp32 convolutions to 10-bit mantissas."""
    info: dict[str, object] = {}
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cudnn.deterministic = deterministic
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
        info = {
            "cudnn_version": torch.backends.cudnn.version(),
            "cudnn_benchmark": torch.backends.cudnn.benchmark,
            "cudnn_deterministic": torch.backends.cudnn.deterministic,
            "allow_tf32": False,
            "device_name": torch.cuda.get_device_name(device),
        }
    return info


def default_pixel_budget(device: torch.device) -> int:
    """Pixels per forward (restored + ground truth counted). Each input pixel costs about
    0.6 KB of fp32 activations at conv1 (64 channels, conv output and ReLU output alive), so
    2**21 pixels (16 pairs of 256x256) is about 1.3 GB on the CPU. On CUDA, a quarter of the free memory."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return max(1 << 20, int(free // 4 // 640))
    return 1 << 21


@dataclass(frozen=True)
class TilePlan:
    core: int  # tile side (input pixels) whose features are kept; a multiple of the stride
    halo: int  # context added on each side; >= the receptive field of the deepest layer


def tile_plan(layers: Sequence[LayerSpec], pixel_budget: int, core: int | None = None) -> TilePlan:
    """Tiles whose two crops (restored + ground truth, with halo) fit the pixel budget, or
    whose core is ``core`` pixels (rounded down to the deepest layer's stride)."""
    stride = max(s.stride for s in layers)
    rf = max(s.receptive_field for s in layers)
    halo = math.ceil(rf / stride) * stride
    if core is None:
        side = int(math.sqrt(pixel_budget / 2))  # crop side with halo, two images per forward
        core = side - 2 * halo
    return TilePlan(core=max(stride, core // stride * stride), halo=halo)


class Scorer:
    """Scores batches of pairs with one loaded network."""

    def __init__(
        self,
        state_dict: dict[str, torch.Tensor],
        layers: Sequence[LayerSpec],
        layer_weights: Sequence[float],
        lam: float,
        *,
        device: torch.device,
        precision: str = "fp32",
        pixel_budget: int | None = None,
        tile_core: int | None = None,
    ):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}")
        self.layers = tuple(layers)
        self.layer_weights = tuple(float(w) for w in layer_weights)
        self.lam = float(lam)
        self.device = device
        self.precision = precision
        self.pixel_budget = pixel_budget or default_pixel_budget(device)
        self.tiles = tile_plan(self.layers, self.pixel_budget, tile_core)
        model = VGGFeatures(state_dict, self.layers)
        self.model = model.to(device=device, memory_format=torch.channels_last)
        self.depth = model.depth

    # -- the forward pass ---------------------------------------------------------------------

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.precision == "fp32":
            return self.model(x)
        with torch.autocast(device_type=self.device.type, dtype=PRECISIONS[self.precision]):
            return self.model(x)

    def _sq_sums(self, r: torch.Tensor, g: torch.Tensor) -> list[torch.Tensor]:
        """Per layer, per image float64 sums of squared feature differences."""
        n = r.shape[0]
        feats = self._features(torch.cat([r, g]).contiguous(memory_format=torch.channels_last))
        return [metrics.squared_diff_sum(f[:n], f[n:]) for f in feats]

    def _to_float(self, x: torch.Tensor, scale: int) -> torch.Tensor:
        return x.to(self.device, non_blocking=True).float().div_(scale)

    # -- public -------------------------------------------------------------------------------

    @torch.inference_mode()
    def score(self, restored: torch.Tensor, gt: torch.Tensor, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Score a batch of same-size integer images (N, 3, H, W) with white = ``scale``.
        Returns (l1 (N,), per-layer perceptual (N, L)), float64 on the CPU."""
        n, _, h, w = restored.shape
        r_dev = restored.to(self.device, non_blocking=True)
        g_dev = gt.to(self.device, non_blocking=True)
        l1 = metrics.abs_diff_sum(r_dev, g_dev) / (3 * h * w * scale)
        if 2 * n * h * w > self.pixel_budget and n == 1:
            sums = self._tiled_sq_sums(r_dev, g_dev, scale)
        else:
            sums = self._sq_sums_retrying(r_dev, g_dev, scale)
        counts = torch.tensor(
            [self.feature_count(s, h, w) for s in self.layers], dtype=torch.float64
        )
        per_layer = torch.stack([s.cpu() for s in sums], dim=1) / counts
        return l1.cpu(), per_layer

    def feature_count(self, spec: LayerSpec, h: int, w: int) -> int:
        """C_l * H_l * W_l: each 2x2 pool floors the side."""
        return spec.channels * (h // spec.stride) * (w // spec.stride)

    def combine(self, l1: torch.Tensor, per_layer: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return metrics.combine(l1, per_layer, self.layer_weights, self.lam)

    # -- memory -------------------------------------------------------------------------------

    def _sq_sums_retrying(self, r: torch.Tensor, g: torch.Tensor, scale: int) -> list[torch.Tensor]:
        """Forward a batch; on CUDA out-of-memory, split it in halves (same results, since
        pairs never interact). A single pair that still does not fit is tiled."""
        try:
            return self._sq_sums(self._to_float(r, scale), self._to_float(g, scale))
        except torch.cuda.OutOfMemoryError:
            if self.device.type != "cuda":
                raise
            torch.cuda.empty_cache()
            n = r.shape[0]
            if n == 1:
                self.pixel_budget = max(1 << 16, self.pixel_budget // 2)
                self.tiles = tile_plan(self.layers, self.pixel_budget)
                return self._tiled_sq_sums(r, g, scale)
            half = n // 2
            a = self._sq_sums_retrying(r[:half], g[:half], scale)
            b = self._sq_sums_retrying(r[half:], g[half:], scale)
            return [torch.cat([x, y]) for x, y in zip(a, b)]

    def _tiled_sq_sums(self, r: torch.Tensor, g: torch.Tensor, scale: int) -> list[torch.Tensor]:
        """Exact tiled inference for one pair. The image is cut into cores on a grid aligned to
        the deepest layer's stride S; each core is run with a halo of at least the receptive
        field (rounded up to S) of context, clipped at the image border, and only the core's
        feature values are kept. Every kept value therefore sees exactly the pixels (and the
        zero padding at true image borders) that it sees in the untiled forward, and 2x2 pools
        see the same windows because every crop starts at a multiple of S."""
        _, _, h, w = r.shape
        core, halo = self.tiles.core, self.tiles.halo
        totals = [torch.zeros(1, dtype=torch.float64, device=self.device) for _ in self.layers]
        for y0 in range(0, h, core):
            y1 = min(h, y0 + core)
            cy0, cy1 = max(0, y0 - halo), min(h, y1 + halo)
            for x0 in range(0, w, core):
                x1 = min(w, x0 + core)
                cx0, cx1 = max(0, x0 - halo), min(w, x1 + halo)
                rc = self._to_float(r[:, :, cy0:cy1, cx0:cx1], scale)
                gc = self._to_float(g[:, :, cy0:cy1, cx0:cx1], scale)
                feats = self._features(torch.cat([rc, gc]).contiguous(memory_format=torch.channels_last))
                for i, (spec, f) in enumerate(zip(self.layers, feats)):
                    s = spec.stride
                    # Core in this layer's grid, relative to the crop. The last tile on each
                    # axis runs to the image's own (floored) edge.
                    fy0 = (y0 - cy0) // s
                    fy1 = (h // s if y1 == h else y1 // s) - cy0 // s
                    fx0 = (x0 - cx0) // s
                    fx1 = (w // s if x1 == w else x1 // s) - cx0 // s
                    a, b = f[:1, :, fy0:fy1, fx0:fx1], f[1:, :, fy0:fy1, fx0:fx1]
                    totals[i] += metrics.squared_diff_sum(a, b)
                del feats
        return totals
