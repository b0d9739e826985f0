"""The compute engine: device and precision, the truncated VGG-19, per-batch metrics, exact tiled
inference for images too large for one forward, and retry with smaller batches on CUDA OOM.

For each pair: L1 exactly from the integer pixels; per layer, the float64-accumulated sum of
squared feature differences divided by C_l*H_l*W_l. Restored and ground truth go through the
network in one forward (``torch.cat``), channels_last, under ``torch.inference_mode``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

# PyTorch's CPU allocator backs allocations of 2 MB and more with transparent huge pages when
# THP_MEM_ALLOC_ENABLE is set (read once, at its first allocation, so only if torch is not
# imported yet). Every activation of a forward is a fresh allocation of tens to hundreds of MB;
# with 4 KB pages the kernel takes one page fault per 4 KB of it. Measured on a 2-core EPYC:
# +10-20% VGG throughput at 256x256. A user's own setting (including 0) is respected.
if "torch" not in sys.modules:
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

import torch  # noqa: E402

from ..metrics import hybrid as metrics
from ..errors import HlcliEnvironmentError
from ..nets.features import VGGFeatures
from ..nets.layers import LayerSpec
from ..text import plural
from ..nets.tiling import tile_plan
from ..nets.tiling import spans as _spans

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
                f"--device {name}: only {plural(torch.cuda.device_count(), 'CUDA device')} present", None,
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


def native_precision(device: torch.device, precision: str) -> bool:
    """Whether ``device`` computes ``precision`` with its own instructions rather than emulating
    it (several times slower than fp32). fp32 is always native. CPU: oneDNN's own test for its
    bf16 kernels (AVX-512 or AMX) and fp16 kernels (AVX512-FP16 or AMX-FP16); CUDA: bf16 from
    compute capability 8.0 (Ampere), fp16 from 5.3; MPS: fp16 (bf16 only where a bf16 tensor can
    be made there)."""
    if precision == "fp32":
        return True
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}")
    if device.type == "cpu":
        probe = getattr(torch.ops.mkldnn, f"_is_mkldnn_{precision}_supported", None)
        try:
            return bool(probe()) if probe is not None else False
        except RuntimeError:
            return False
    if device.type == "cuda":
        if precision == "bf16":
            try:
                return bool(torch.cuda.is_bf16_supported(including_emulation=False))
            except TypeError:  # torch without the keyword: decide from the capability
                return torch.cuda.get_device_capability(device) >= (8, 0)
        return torch.cuda.get_device_capability(device) >= (5, 3)
    if device.type == "mps":
        if precision == "fp16":
            return True
        try:
            torch.zeros(1, dtype=torch.bfloat16, device=device)
            return True
        except (RuntimeError, TypeError):
            return False
    return False


def configure_backends(device: torch.device, *, deterministic: bool = True,
                       precision: str | None = None) -> dict[str, object]:
    """Make GPU results reproducible and full-precision by default; return what was set (for the
    JSON record). TF32 is off: it would silently round fp32 convolutions to 10-bit mantissas.
    ``deterministic=False`` lets cuDNN benchmark and pick the fastest (possibly
    non-deterministic) algorithms. With ``precision``, the record also says whether the device
    computes it natively (``native_precision``, see :func:`native_precision`)."""
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
    elif device.type == "cpu":
        info = {
            "mkldnn": torch.backends.mkldnn.is_available(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "huge_pages": os.environ.get("THP_MEM_ALLOC_ENABLE", "0") not in ("", "0"),
        }
    if precision is not None:
        info["native_precision"] = native_precision(device, precision)
    return info


def default_pixel_budget(device: torch.device) -> int:
    """Most pixels in one forward (restored + ground truth counted): the memory bound. Each input
    pixel costs about 0.5 KB of fp32 activations at conv1 (64 channels in, 64 out), so 2**21
    pixels (16 pairs of 256x256, one pair of 1024x1024) is about 1.1 GB on the CPU. On CUDA, a
    quarter of the free memory. A single pair above the budget is tiled exactly."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return max(1 << 20, int(free // 4 // 640))
    return 1 << 21


#: Pixels per forward that the CPU runs fastest at: small forwards keep more of each activation
#: in the caches. Measured on a 2-core AMD EPYC (AVX-512, 32 MB L3), VGG-19 to conv4_3,
#: channels_last, 256x256, in interleaved rounds: 1 pair per forward (2**17 px) 5.49 pairs/s,
#: 2 pairs 4.97, 4 and 8 pairs 4.58 (fp32); through hlcli, 2**17 vs 2**19 px per forward: +11%
#: fp32, +16% bf16. Small images are still batched up to this many pixels.
CPU_FORWARD_PIXELS = 1 << 17


def default_forward_pixels(device: torch.device, pixel_budget: int) -> int:
    """Pixels per forward for speed (never above the memory bound ``pixel_budget``): on the CPU,
    small forwards; on a GPU, the whole budget (large batches keep it busy)."""
    if device.type == "cpu":
        return min(pixel_budget, CPU_FORWARD_PIXELS)
    return pixel_budget


def _abs_diff_sums(r: torch.Tensor, g: torch.Tensor, chunk_values: int = 1 << 24) -> torch.Tensor:
    """Per-image exact sums of |r - g| (float64, shape (N,)), computed over bands of rows so that
    the int32 temporaries stay small (a 4096x4096 pair in one go would need 3 x 200 MB)."""
    n, c, h, w = r.shape
    rows = max(1, chunk_values // max(1, n * c * w))
    if rows >= h:
        return metrics.abs_diff_sum(r, g)
    total = torch.zeros(n, dtype=torch.float64, device=r.device)
    for y in range(0, h, rows):
        # Each band's sum is an exact integer < 2**53, so float64 additions stay exact.
        total += metrics.abs_diff_sum(r[:, :, y : y + rows], g[:, :, y : y + rows])
    return total


class BatchScorer:
    """Measures batches of pairs with one loaded network: per image, the L1 and the unweighted
    perceptual value of each layer (combined into perceptual and hybrid by
    :func:`hlcli.metrics.hybrid.combine`).

    Memory is bounded by ``pixel_budget`` (pixels in one forward, both images counted): a batch
    is forwarded in chunks of at most ``forward_pixels`` pixels (the speed optimum, never above
    the budget), and a single pair above the budget is tiled exactly. On CUDA out-of-memory a
    chunk is split in halves, down to tiling a single pair with a halved budget."""

    def __init__(
        self,
        state_dict: dict[str, torch.Tensor],
        layers: Sequence[LayerSpec],
        *,
        device: torch.device,
        precision: str = "fp32",
        pixel_budget: int | None = None,
        tile_core: int | None = None,
        forward_pixels: int | None = None,
    ):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}")
        self.layers = tuple(layers)
        self.device = device
        self.precision = precision
        self.pixel_budget = pixel_budget or default_pixel_budget(device)
        self.forward_pixels = min(self.pixel_budget, forward_pixels or default_forward_pixels(device, self.pixel_budget))
        self.tiles = tile_plan(self.layers, self.pixel_budget, tile_core)
        model = VGGFeatures(state_dict, self.layers, memory_format=torch.channels_last)
        self.model = model.to(device=device, memory_format=torch.channels_last)
        if precision != "fp32":
            # Autocast would cast every conv's weights to the low precision again on each
            # forward (its cast cache keeps only leaf tensors that require grad). Cast them once:
            # autocast leaves tensors already in its dtype alone, so the numbers are identical.
            # The normalisation buffers stay fp32 (autocast runs it in fp32).
            self.model.features.to(PRECISIONS[precision])
        self.depth = model.depth

    # -- the forward pass ---------------------------------------------------------------------

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.precision == "fp32":
            return self.model(x)
        with torch.autocast(device_type=self.device.type, dtype=PRECISIONS[self.precision]):
            return self.model(x)

    def _input(self, parts: Sequence[torch.Tensor], scale: int) -> torch.Tensor:
        """Integer images (on the device) as one float batch in [0, 1], channels_last:
        concatenated as integers, converted once."""
        x = torch.cat(list(parts)) if len(parts) > 1 else parts[0]
        return x.contiguous(memory_format=torch.channels_last).float().div_(scale)

    def _pair_features(self, r: torch.Tensor, g: torch.Tensor, scale: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Features of restored and ground truth: in one forward, or in two when the pair is
        larger than ``forward_pixels`` (on the CPU, two half-size forwards are faster than one:
        measured at 1024x1024, +12%; the kept feature maps of the first are small)."""
        n, _, h, w = r.shape
        if n > 1 or 2 * h * w <= self.forward_pixels:
            feats = self._features(self._input([r, g], scale))
            return [f[:n] for f in feats], [f[n:] for f in feats]
        return self._features(self._input([r], scale)), self._features(self._input([g], scale))

    def _sq_sums(self, r: torch.Tensor, g: torch.Tensor, scale: int) -> list[torch.Tensor]:
        """Per layer, per image float64 sums of squared feature differences."""
        fr, fg = self._pair_features(r, g, scale)
        return [metrics.squared_diff_sum(a, b) for a, b in zip(fr, fg)]

    # -- public -------------------------------------------------------------------------------

    def is_tiled(self, height: int, width: int) -> bool:
        """Whether a pair of this size is scored by tiles (its forward exceeds the budget)."""
        return 2 * height * width > self.pixel_budget

    @torch.inference_mode()
    def measure(self, restored: torch.Tensor, gt: torch.Tensor, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Measure a batch of same-size integer images (N, 3, H, W) with white = ``scale``.
        Returns (l1 (N,), per-layer perceptual (N, L)), float64 on the CPU."""
        n, _, h, w = restored.shape
        r_dev = restored.to(self.device, non_blocking=True)
        g_dev = gt.to(self.device, non_blocking=True)
        l1 = metrics.l1_from_sum(_abs_diff_sums(r_dev, g_dev), 3 * h * w, scale=scale)
        if self.is_tiled(h, w):
            parts = [self._tiled_sq_sums(r_dev[i : i + 1], g_dev[i : i + 1], scale) for i in range(n)]
        else:
            per = max(1, self.forward_pixels // (2 * h * w))
            parts = [
                self._sq_sums_retrying(r_dev[i : i + per], g_dev[i : i + per], scale)
                for i in range(0, n, per)
            ]
        sums = torch.stack([torch.cat(layer_parts).cpu() for layer_parts in zip(*parts)], dim=1)
        counts = torch.tensor([self.feature_count(s, h, w) for s in self.layers], dtype=torch.float64)
        return l1.cpu(), metrics.feature_mse_from_sum(sums, counts)

    def feature_count(self, spec: LayerSpec, h: int, w: int) -> int:
        """C_l * H_l * W_l: each 2x2 pool floors the side."""
        return spec.channels * (h // spec.stride) * (w // spec.stride)

    # -- memory -------------------------------------------------------------------------------

    def _sq_sums_retrying(self, r: torch.Tensor, g: torch.Tensor, scale: int) -> list[torch.Tensor]:
        """Forward a batch; on CUDA out-of-memory, split it in halves (same results, since
        pairs never interact). A single pair that still does not fit is tiled, with the budget
        halved for the rest of the run."""
        try:
            return self._sq_sums(r, g, scale)
        except torch.cuda.OutOfMemoryError:
            if self.device.type != "cuda":
                raise
        # Out of the except block: the traceback no longer pins the failed forward's tensors.
        torch.cuda.empty_cache()
        n = r.shape[0]
        if n == 1:
            self.pixel_budget = max(1 << 16, self.pixel_budget // 2)
            self.forward_pixels = min(self.forward_pixels, self.pixel_budget)
            self.tiles = tile_plan(self.layers, self.pixel_budget)
            return self._tiled_sq_sums(r, g, scale)
        half = n // 2
        a = self._sq_sums_retrying(r[:half], g[:half], scale)
        b = self._sq_sums_retrying(r[half:], g[half:], scale)
        return [torch.cat([x, y]) for x, y in zip(a, b)]

    def _tiled_sq_sums(self, r: torch.Tensor, g: torch.Tensor, scale: int) -> list[torch.Tensor]:
        """Exact tiled inference for one pair. The image is cut into cores on a grid aligned to
        the deepest layer's stride S; each core is run with a halo (the layers' reach rounded
        up to S, :func:`tile_plan`) of context, clipped at the image border, and only the core's
        feature values are kept. Every kept value therefore sees exactly the pixels (and the
        zero padding at true image borders) that it sees in the untiled forward, and 2x2 pools
        see the same windows because every crop starts at a multiple of S."""
        _, _, h, w = r.shape
        totals = [torch.zeros(1, dtype=torch.float64, device=r.device) for _ in self.layers]
        for y0, y1, cy0, cy1 in _spans(h, self.tiles):
            for x0, x1, cx0, cx1 in _spans(w, self.tiles):
                fr, fg = self._pair_features(r[:, :, cy0:cy1, cx0:cx1], g[:, :, cy0:cy1, cx0:cx1], scale)
                for i, (spec, a, b) in enumerate(zip(self.layers, fr, fg)):
                    s = spec.stride
                    # Core in this layer's grid, relative to the crop. The last tile on each
                    # axis runs to the image's own (floored) edge.
                    fy0 = (y0 - cy0) // s
                    fy1 = (h // s if y1 == h else y1 // s) - cy0 // s
                    fx0 = (x0 - cx0) // s
                    fx1 = (w // s if x1 == w else x1 // s) - cx0 // s
                    core_r, core_g = a[:, :, fy0:fy1, fx0:fx1], b[:, :, fy0:fy1, fx0:fx1]
                    totals[i] += metrics.squared_diff_sum(core_r, core_g)
                del fr, fg
        return totals

    # -- error maps (hlcli score --save-maps) -------------------------------------------------

    @torch.inference_mode()
    def measure_maps(self, restored: torch.Tensor, gt: torch.Tensor,
                     scale: int) -> tuple[torch.Tensor, torch.Tensor, list[list[torch.Tensor]]]:
        """:meth:`measure` plus each pair's error maps, from the same features the scores come
        from: per image ``[l1_map (H, W), map_l (H_l, W_l) for each layer]``, float32 on the CPU.
        The L1 map is the per-pixel mean over channels of |r - g| / scale; a layer map is the
        per-position mean over channels of the squared feature difference (accumulated in
        float64), so each map's mean is the pair's value. Tiled pairs stitch their cores' maps
        (the same exact cores as the scores). No OOM retry here: maps are opt-in."""
        n, _, h, w = restored.shape
        r_dev = restored.to(self.device, non_blocking=True)
        g_dev = gt.to(self.device, non_blocking=True)
        l1 = metrics.l1_from_sum(_abs_diff_sums(r_dev, g_dev), 3 * h * w, scale=scale)
        out: list[list[torch.Tensor]] = []
        sums: list[torch.Tensor] = []
        per = 1 if self.is_tiled(h, w) else max(1, self.forward_pixels // (2 * h * w))
        for i in range(0, n, per):
            r, g = r_dev[i : i + per], g_dev[i : i + per]
            if self.is_tiled(h, w):
                layer_maps, layer_sums = self._tiled_maps(r, g, scale)
            else:
                fr, fg = self._pair_features(r, g, scale)
                layer_maps = [_sq_map(a, b) for a, b in zip(fr, fg)]
                # The scores by measure()'s own reduction, so they are identical to a run
                # without maps (a sum of the map's rows rounds differently in the last digit).
                layer_sums = [metrics.squared_diff_sum(a, b) for a, b in zip(fr, fg)]
            sums.append(torch.stack(layer_sums, 1))
            l1_maps = _l1_map(r, g, scale)
            for j in range(r.shape[0]):
                out.append([l1_maps[j]] + [m[j].float().cpu() for m in layer_maps])
        counts = torch.tensor([self.feature_count(s, h, w) for s in self.layers], dtype=torch.float64)
        return l1.cpu(), metrics.feature_mse_from_sum(torch.cat(sums).cpu(), counts), out

    def _tiled_maps(self, r: torch.Tensor, g: torch.Tensor,
                    scale: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Layer maps (1, H_l, W_l) of one tiled pair, float32, and their float64 sums: the tiles
        and cores of :meth:`_tiled_sq_sums`, each core's map written to its place in the whole
        map (kept in float32, the stored precision, so a 4096x4096 pair's maps stay small)."""
        _, _, h, w = r.shape
        maps = [torch.zeros(1, h // s.stride, w // s.stride, dtype=torch.float32, device=r.device)
                for s in self.layers]
        totals = [torch.zeros(1, dtype=torch.float64, device=r.device) for _ in self.layers]
        for y0, y1, cy0, cy1 in _spans(h, self.tiles):
            for x0, x1, cx0, cx1 in _spans(w, self.tiles):
                fr, fg = self._pair_features(r[:, :, cy0:cy1, cx0:cx1], g[:, :, cy0:cy1, cx0:cx1], scale)
                for spec, a, b, whole, total in zip(self.layers, fr, fg, maps, totals):
                    s = spec.stride
                    fy0, fx0 = (y0 - cy0) // s, (x0 - cx0) // s
                    fy1 = (h // s if y1 == h else y1 // s) - cy0 // s
                    fx1 = (w // s if x1 == w else x1 // s) - cx0 // s
                    core_r, core_g = a[:, :, fy0:fy1, fx0:fx1], b[:, :, fy0:fy1, fx0:fx1]
                    part = _sq_map(core_r, core_g)
                    whole[:, y0 // s : y0 // s + part.shape[1], x0 // s : x0 // s + part.shape[2]] = part
                    total += metrics.squared_diff_sum(core_r, core_g)  # as _tiled_sq_sums
                del fr, fg
        return maps, totals


def _sq_map(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-position mean over channels of (a - b)^2, float64, shape (N, H_l, W_l)."""
    d = a.float() - b.float()
    return d.square_().sum(dim=1, dtype=torch.float64) / a.shape[1]


def _l1_map(r: torch.Tensor, g: torch.Tensor, scale: int, chunk_rows: int = 256) -> torch.Tensor:
    """Per-pixel mean over channels of |r - g| / scale, float32 (N, H, W) on the CPU, computed
    in bands of rows from the exact integer differences (a 4096x4096 pair never holds more than
    a band of int32 temporaries)."""
    n, _, h, w = r.shape
    out = torch.empty(n, h, w, dtype=torch.float32)
    for y in range(0, h, chunk_rows):
        d = (r[:, :, y : y + chunk_rows].to(torch.int32) - g[:, :, y : y + chunk_rows].to(torch.int32)).abs_()
        out[:, y : y + chunk_rows] = (d.sum(dim=1, dtype=torch.float64) / (3 * scale)).float().cpu()
    return out
