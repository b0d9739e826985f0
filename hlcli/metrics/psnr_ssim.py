"""PSNR and SSIM on the decoded integers, as BasicSR's ``basicsr/metrics/psnr_ssim.py`` computes
them in its validation (``calculate_psnr`` / ``calculate_ssim``), batched, in float64, on the
scoring device. Definitions (``docs/metrics.md``):

* values on BasicSR's 0–255 scale: 8-bit images as they are; 16-bit images as ``x / 65535 * 255``;
* the crop border is already applied by the loader (``crop_border`` pixels off every edge);
* PSNR = 10·log10(255² / MSE), MSE over all H·W·C values; identical images give +inf
  (BasicSR's ``float('inf')``), which the documents write as ``null``;
* SSIM per channel with an 11×11 Gaussian window (σ = 1.5, ``cv2.getGaussianKernel``), valid
  region only, C1 = (0.01·255)², C2 = (0.03·255)², the mean of the map, then the mean over channels;
* the Y channel is BasicSR's ``to_y_channel`` including its float32 roundings: the image as
  float32 / 255, ``16 + 24.966 B + 128.553 G + 65.481 R`` in float64, ``/ 255``, cast to float32,
  ``* 255`` in float32.

Every metric function takes a :class:`PixelPair` (integer batches (N, 3, H, W) with white =
``scale``, 255 or 65535) and returns per-image float64 values (N,).
"""

from __future__ import annotations

import torch

__all__ = ["PixelPair", "psnr_rgb", "psnr_y", "ssim_map", "ssim_rgb", "ssim_rgb_map", "ssim_y", "ssim_y_map",
           "y_channel"]

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_CUT = SSIM_WINDOW // 2  # the valid region loses 5 pixels at each edge
C1 = (0.01 * 255) ** 2
C2 = (0.03 * 255) ** 2
#: Values (5C * rows * W) per SSIM band: each image is filtered on its own, in bands of rows
#: (with 10 rows of overlap, so the valid map is exactly the unbanded one) of about 8 MB. Small
#: working sets are the fast ones here: measured on 2 Xeon cores (AVX-512), 8 pairs of 256x256,
#: the whole batch at once (60 MB temporaries) 39 ms per pair for the four pixel metrics in a
#: run, one image in one band 14 ms. They also bound the memory of a 4096x4096 pair.
SSIM_BAND_VALUES = 1 << 20


def on_255(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Integer images as float64 on BasicSR's 0–255 scale (16-bit: ``x / 65535 * 255``), in the
    plain (N, C, H, W) layout whatever the decoded batch's (the loader's is channels-last: the
    filters' matrix products would copy every slice of it)."""
    x = x.to(torch.float64, memory_format=torch.contiguous_format)
    return x if scale == 255 else x / scale * 255.0


def y_channel(x: torch.Tensor, scale: int) -> torch.Tensor:
    """BasicSR's ``to_y_channel`` of RGB integer images: (N, 1, H, W) float64 on 0–255 with its
    float32 roundings (see the module doc). BasicSR reads BGR; the weights below are applied to
    the same colours, in its order (B first)."""
    f = x.to(torch.float32, memory_format=torch.contiguous_format) / scale  # img.astype(np.float32) / 255.
    f = f.to(torch.float64)
    y = f[:, 2] * 24.966 + f[:, 1] * 128.553 + f[:, 0] * 65.481 + 16.0  # np.dot(img, [...]) + 16.0
    y = (y / 255.0).to(torch.float32) * 255.0  # /= 255., .astype(np.float32), then * 255. in float32
    return y.to(torch.float64).unsqueeze(1)


def _psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    mse = (a - b).square_().mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(255.0 * 255.0 / mse)  # mse == 0 gives +inf, as BasicSR


class PixelPair:
    """One batch of integer pairs on the device and its conversions, each made once however
    many metrics use it (``rgb``: both sides on 0–255 in float64; ``y``: BasicSR's Y)."""

    def __init__(self, restored: torch.Tensor, gt: torch.Tensor, scale: int):
        self.restored, self.gt, self.scale = restored, gt, scale
        self._rgb: tuple[torch.Tensor, torch.Tensor] | None = None
        self._y: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def rgb(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._rgb is None:
            self._rgb = on_255(self.restored, self.scale), on_255(self.gt, self.scale)
        return self._rgb

    @property
    def y(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._y is None:
            self._y = y_channel(self.restored, self.scale), y_channel(self.gt, self.scale)
        return self._y


def psnr_rgb(px: PixelPair) -> torch.Tensor:
    if px.scale == 255:  # exact: integer squared differences summed in int64
        d = px.restored.to(torch.int32) - px.gt.to(torch.int32)
        mse = (d * d).flatten(1).sum(dim=1, dtype=torch.int64).to(torch.float64) / px.restored[0].numel()
        return 10.0 * torch.log10(255.0 * 255.0 / mse)
    return _psnr(*px.rgb)


def psnr_y(px: PixelPair) -> torch.Tensor:
    return _psnr(*px.y)


def ssim_rgb(px: PixelPair) -> torch.Tensor:
    return _ssim(*px.rgb)


def ssim_y(px: PixelPair) -> torch.Tensor:
    return _ssim(*px.y)


def _gaussian(device: torch.device) -> torch.Tensor:
    """``cv2.getGaussianKernel(11, 1.5)``: exp(-(i - 5)² / (2σ²)), normalised to sum 1, float64."""
    i = torch.arange(SSIM_WINDOW, dtype=torch.float64, device=device) - SSIM_CUT
    k = torch.exp(-(i * i) / (2 * SSIM_SIGMA * SSIM_SIGMA))
    return k / k.sum()


#: Output rows (and columns) per block of the banded filter matrix (see :func:`_filter_valid`).
FILTER_BLOCK = 64


def _band_matrix(k: torch.Tensor) -> torch.Tensor:
    """(B, B + 10): row i holds the kernel at columns i..i+10 (one block of the valid filter)."""
    m = torch.zeros(FILTER_BLOCK, FILTER_BLOCK + SSIM_WINDOW - 1, dtype=torch.float64, device=k.device)
    for i in range(FILTER_BLOCK):
        m[i, i : i + SSIM_WINDOW] = k
    return m


def _filter_valid(s: torch.Tensor) -> torch.Tensor:
    """The 11x11 Gaussian window over every (H, W) plane of ``s`` (float64), valid region only:
    (..., H - 10, W - 10). The window is separable (BasicSR's is the outer product of the
    kernel), so a vertical then a horizontal pass, each as block-banded matrix products.
    Measured on 2 cores, 5 maps x 3 channels of 512x512: depthwise ``conv2d`` in float64
    0.98 s, shifted slices 0.34 s, these matrix products 0.018 s (VGG's forward: about 2 s)."""
    m = _band_matrix(_gaussian(s.device))
    h, w = s.shape[-2] - SSIM_WINDOW + 1, s.shape[-1] - SSIM_WINDOW + 1
    extra = SSIM_WINDOW - 1
    v = torch.empty(*s.shape[:-2], h, s.shape[-1], dtype=torch.float64, device=s.device)
    for r in range(0, h, FILTER_BLOCK):
        b = min(FILTER_BLOCK, h - r)
        v[..., r : r + b, :] = torch.matmul(m[:b, : b + extra], s[..., r : r + b + extra, :])
    out = torch.empty(*s.shape[:-2], h, w, dtype=torch.float64, device=s.device)
    mt = m.t()
    for q in range(0, w, FILTER_BLOCK):
        b = min(FILTER_BLOCK, w - q)
        out[..., q : q + b] = torch.matmul(v[..., q : q + b + extra], mt[: b + extra, :b])
    return out


def _ssim_band_map(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-channel SSIM map of the valid region of float64 images (N, C, H, W) on 0–255:
    (N, C, H - 10, W - 10)."""
    c = a.shape[1]
    stack = _filter_valid(torch.cat([a, b, a * a, b * b, a * b], dim=1))  # (N, 5C, H-10, W-10)
    mu1, mu2, e11, e22, e12 = stack.split(c, dim=1)
    mu1_sq, mu2_sq, mu1_mu2 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    s1, s2, s12 = e11 - mu1_sq, e22 - mu2_sq, e12 - mu1_mu2
    return ((2 * mu1_mu2 + C1) * (2 * s12 + C2)) / ((mu1_sq + mu2_sq + C1) * (s1 + s2 + C2))


def _bands(a: torch.Tensor, b: torch.Tensor):
    """Yield (image index, band of a, band of b), image by image: bands of rows overlapping by
    the window's 10 rows, so that their valid maps tile the image's whole valid map exactly."""
    n, c, h, w = a.shape
    rows = max(SSIM_WINDOW + 1, SSIM_BAND_VALUES // max(1, 5 * c * w))
    step = rows - 2 * SSIM_CUT
    for i in range(n):
        for y in range(0, h - 2 * SSIM_CUT, step):
            yield i, a[i : i + 1, :, y : y + rows], b[i : i + 1, :, y : y + rows]


def ssim_map(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-channel SSIM map (N, C, H - 10, W - 10), float64, of float64 images on 0–255."""
    if min(a.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, "
                         f"got {a.shape[-1]}x{a.shape[-2]}")
    bands = [(i, _ssim_band_map(x, y)) for i, x, y in _bands(a, b)]
    return torch.cat([torch.cat([m for j, m in bands if j == i], dim=2) for i in range(a.shape[0])])


def _ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per image: the mean over channels of each channel's mean SSIM (BasicSR's order)."""
    n, c, h, w = a.shape
    if min(h, w) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, got {w}x{h}")
    sums = torch.zeros(n, c, dtype=torch.float64, device=a.device)
    for i, x, y in _bands(a, b):
        sums[i] += _ssim_band_map(x, y)[0].sum(dim=(1, 2))
    per_channel = sums / ((h - 2 * SSIM_CUT) * (w - 2 * SSIM_CUT))
    return per_channel.mean(dim=1)


def ssim_rgb_map(px: PixelPair) -> torch.Tensor:
    """The SSIM map of each pair for ``--save-maps``: per valid position, the mean over channels
    (N, H - 10, W - 10), float64; its mean is the pair's SSIM."""
    return ssim_map(*px.rgb).mean(dim=1)


def ssim_y_map(px: PixelPair) -> torch.Tensor:
    return ssim_map(*px.y)[:, 0]
