"""NIQE (Mittal, Soundararajan & Bovik 2013, "Making a 'Completely Blind' Image Quality Analyzer"),
computed exactly as BasicSR 1.4.2's ``calculate_niqe(img, crop_border, input_order='HWC',
convert_to='y')`` (``basicsr/metrics/niqe.py`` with ``basicsr/utils/matlab_functions.py``;
Apache-2.0, XPixelGroup), which follows the MATLAB release of the LIVE lab:

1. MATLAB's Y (BT.601 studio swing, 16–235) with BasicSR's float32 roundings, the crop border,
   ``round()`` (half to even), float32;
2. the image cut to whole 96x96 blocks (top-left anchored);
3. at two scales (the image, then MATLAB's bicubic antialiased ``imresize(0.5)``): MSCN
   coefficients ``(I - mu) / (sigma + 1)`` with the pristine model's 7x7 Gaussian window
   (``scipy.ndimage.convolve(mode='nearest')``: edge-replicated borders, float64 sums stored as
   float32), then per block (96 px, then 48 px) 18 features: the AGGD fit of the coefficients
   (alpha, mean beta) and of their products with the 4 neighbours (circularly shifted within the
   block: alpha, mean, beta_l, beta_r each), alpha looked up in the table of
   ``r(g) = Gamma(2/g)^2 / (Gamma(1/g) Gamma(3/g))`` for g = 0.2, 0.201, ..., 10;
4. the image's model: the NaN-ignoring mean of the 36-dimensional block features, the covariance
   of the blocks without NaN; NIQE = sqrt((mu_p - mu)^T pinv((S_p + S) / 2) (mu_p - mu)).

Vectorised where it cannot change a bit, literal where it could: BasicSR computes in float32
with numpy's pairwise sums and picks alpha by an argmin over the table, so one last-bit
difference in a block's statistics can move alpha by a whole table step (0.001) and NIQE by
far more than 1e-6. Here the float32 statistics are the same numpy reductions over the same
values in the same order (row means of a (blocks, pixels) array equal numpy's per-block means
bit for bit), the per-block scalar arithmetic is numpy float32 scalars as BasicSR's, the
convolution is the same float64 multiply-adds in scipy's order, and the resize is BasicSR's
own float32 torch matrix-vector products. The table search is a binary search (the table is
increasing) that returns BasicSR's argmin. What is saved is BasicSR's recomputation of the
9,801-entry Gamma table for every one of the 250 fits of a 512x512 image, its per-block Python
loop for everything but the sign-selected means, and its per-pixel-row loop for the resize
weights.

Where BasicSR has no number, :class:`NIQERefused` says why in words: an image with fewer than two
96x96 blocks, or one whose blocks leave fewer than two feature vectors without NaN (flat regions):
the covariance of one feature vector is undefined and BasicSR's ``pinv`` fails with "SVD did not
converge".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import Unscorable
from ..nets import datafiles
from ..nets.datafiles import NIQEParams

BLOCK = 96
#: alpha's table: BasicSR's ``np.arange(0.2, 10.001, 0.001)``.
_GAM = np.arange(0.2, 10.001, 0.001)
_TABLES: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None


class NIQERefused(Unscorable):
    """BasicSR's NIQE has no value for this image; ``str()`` says why, ``fix`` what would help."""


def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(r(g), sqrt(Gamma(1/g) / Gamma(3/g)), Gamma(2/g) / Gamma(1/g)) for every g of the table,
    with BasicSR's expressions (``math.gamma``; SciPy's differs by at most 2e-15 relative)."""
    global _TABLES
    if _TABLES is None:
        rec = np.reciprocal(_GAM)
        g1 = np.array([math.gamma(v) for v in rec])
        g2 = np.array([math.gamma(v) for v in rec * 2])
        g3 = np.array([math.gamma(v) for v in rec * 3])
        r_gam = np.square(g2) / (g1 * g3)
        # beta = std * np.sqrt(gamma(1 / alpha) / gamma(3 / alpha)); mean factor gamma(2/a) / gamma(1/a)
        inv = 1 / _GAM
        b1 = np.array([math.gamma(v) for v in inv])
        b3 = np.array([math.gamma(v) for v in 3 / _GAM])
        b2 = np.array([math.gamma(v) for v in 2 / _GAM])
        _TABLES = (r_gam, np.sqrt(b1 / b3), b2 / b1)
    return _TABLES


def _argmin_table(x: float) -> int:
    """``np.argmin((r_gam - x) ** 2)`` (the first minimum; 0 for a NaN or infinite x, as numpy)."""
    r_gam = _tables()[0]
    if not math.isfinite(x):
        return 0
    i = int(np.searchsorted(r_gam, x))
    lo, hi = max(0, i - 3), min(len(r_gam), i + 3)
    return lo + int(np.argmin((r_gam[lo:hi] - x) ** 2))


def _aggd(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """BasicSR's ``estimate_aggd_param`` of each row of ``blocks`` ((n, pixels) float32,
    C-contiguous, each row a flattened block): table index, alpha, beta_l, beta_r (float64)."""
    sq = blocks * blocks  # block ** 2 (numpy squares by multiplying)
    mean_abs = np.mean(np.abs(blocks), axis=1)  # per row: the same pairwise float32 sums as BasicSR
    mean_sq = np.mean(sq, axis=1)
    neg, pos = blocks < 0, blocks > 0
    n = blocks.shape[0]
    index = np.empty(n, np.intp)
    left = np.empty(n, np.float64)
    right = np.empty(n, np.float64)
    nan32 = np.float32(np.nan)
    with np.errstate(all="ignore"):
        for i in range(n):
            sel_l, sel_r = sq[i][neg[i]], sq[i][pos[i]]
            # np.mean of the selected squares: their float32 sum / their count (np.mean of empty: nan)
            left_std = np.sqrt(np.add.reduce(sel_l) / np.float32(sel_l.size)) if sel_l.size else nan32
            right_std = np.sqrt(np.add.reduce(sel_r) / np.float32(sel_r.size)) if sel_r.size else nan32
            gammahat = left_std / right_std
            rhat = (mean_abs[i]) ** 2 / mean_sq[i]
            rhatnorm = (rhat * (gammahat**3 + 1) * (gammahat + 1)) / ((gammahat**2 + 1) ** 2)
            index[i] = _argmin_table(float(rhatnorm))
            left[i], right[i] = left_std, right_std
    factor = _tables()[1][index]
    return index, _GAM[index], left * factor, right * factor


_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))


def _features(mscn: np.ndarray, size: int, nh: int, nw: int) -> np.ndarray:
    """(nh * nw, 18) BasicSR block features of one scale, blocks in its order (column by column)."""
    # (nw, nh, size, size): block (idx_h, idx_w) at [idx_w, idx_h], rows in BasicSR's loop order
    blocks = mscn[: nh * size, : nw * size].reshape(nh, size, nw, size).transpose(2, 0, 1, 3)
    blocks = np.ascontiguousarray(blocks).reshape(nh * nw, size, size)
    n = blocks.shape[0]
    out = np.empty((n, 18), np.float64)
    _, alpha, bl, br = _aggd(blocks.reshape(n, -1))
    out[:, 0], out[:, 1] = alpha, (bl + br) / 2
    mean_factor = _tables()[2]
    for k, shift in enumerate(_SHIFTS):
        prod = blocks * np.roll(blocks, shift, axis=(1, 2))
        idx, alpha, bl, br = _aggd(prod.reshape(n, -1))
        out[:, 2 + 4 * k] = alpha
        out[:, 3 + 4 * k] = (br - bl) * mean_factor[idx]
        out[:, 4 + 4 * k] = bl
        out[:, 5 + 4 * k] = br
    return out


def _convolve(img: np.ndarray, window: np.ndarray) -> np.ndarray:
    """``scipy.ndimage.convolve(img, window, mode='nearest')`` for float32 ``img``: per pixel the
    float64 sum of the 49 products in scipy's order (the flipped window, row-major), stored as
    float32."""
    k = window.shape[0]
    r = k // 2
    h, w = img.shape
    padded = np.pad(img, r, mode="edge").astype(np.float64)
    flipped = window[::-1, ::-1]
    acc = np.zeros((h, w), np.float64)
    tmp = np.empty((h, w), np.float64)
    for a in range(k):
        for b in range(k):
            np.multiply(padded[a : a + h, b : b + w], flipped[a, b], out=tmp)
            acc += tmp
    return acc.astype(np.float32)


def _mscn(img: np.ndarray, window: np.ndarray) -> np.ndarray:
    mu = _convolve(img, window)
    sigma = np.sqrt(np.abs(_convolve(np.square(img), window) - np.square(mu)))
    return (img - mu) / (sigma + 1)


def _resize_weights(in_length: int):
    """BasicSR's ``calculate_weights_indices(in, ceil(in / 2), 0.5, 'cubic', 4, True)``."""
    import torch

    scale, out_length = 0.5, math.ceil(in_length * 0.5)
    kernel_width = 4 / scale
    x = torch.linspace(1, out_length, out_length)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = torch.floor(u - kernel_width / 2)
    p = math.ceil(kernel_width) + 2
    indices = left.view(out_length, 1).expand(out_length, p) + torch.linspace(0, p - 1, p).view(1, p).expand(out_length, p)
    d = (u.view(out_length, 1).expand(out_length, p) - indices) * scale
    absx = torch.abs(d)
    absx2, absx3 = absx**2, absx**3
    cubic = (1.5 * absx3 - 2.5 * absx2 + 1) * ((absx <= 1).type_as(absx)) + (
        -0.5 * absx3 + 2.5 * absx2 - 4 * absx + 2) * (((absx > 1) * (absx <= 2)).type_as(absx))
    weights = scale * cubic
    weights = weights / torch.sum(weights, 1).view(out_length, 1).expand(out_length, p)
    zeros = torch.sum((weights == 0), 0)
    if not math.isclose(zeros[0], 0, rel_tol=1e-6):
        indices, weights = indices.narrow(1, 1, p - 2), weights.narrow(1, 1, p - 2)
    if not math.isclose(zeros[-1], 0, rel_tol=1e-6):
        indices, weights = indices.narrow(1, 0, p - 2), weights.narrow(1, 0, p - 2)
    weights, indices = weights.contiguous(), indices.contiguous()
    sym_s = int(-indices.min() + 1)
    sym_e = int(indices.max() - in_length)
    return weights, indices + sym_s - 1, sym_s, sym_e


def _mirror(img, dim: int, start: int, end: int):
    """``img`` (h, w) with ``start`` / ``end`` mirrored rows (dim 0) or columns (dim 1) added."""
    import torch

    n = img.shape[dim]
    head = img.narrow(dim, 0, start).flip(dim)
    tail = img.narrow(dim, n - end, end).flip(dim)
    return torch.cat([head, img, tail], dim)


def imresize_half(img: np.ndarray) -> np.ndarray:
    """BasicSR's ``imresize(img, 0.5, antialiasing=True)`` of a 2-D float32 image in [0, 1]:
    MATLAB's bicubic with the antialiasing kernel, symmetric borders, its float32 products."""
    import torch

    t = torch.from_numpy(np.ascontiguousarray(img, np.float32))
    h, w = t.shape
    wh, ih, sh, eh = _resize_weights(h)
    ww, iw, sw, ew = _resize_weights(w)
    aug = _mirror(t, 0, sh, eh)
    kh = wh.size(1)
    out1 = torch.empty(wh.size(0), w)
    for i in range(wh.size(0)):
        idx = int(ih[i][0])
        out1[i, :] = aug[idx : idx + kh, :].transpose(0, 1).mv(wh[i])
    aug = _mirror(out1, 1, sw, ew)
    kw = ww.size(1)
    out2 = torch.empty(wh.size(0), ww.size(0))
    for i in range(ww.size(0)):
        idx = int(iw[i][0])
        out2[:, i] = aug[:, idx : idx + kw].mv(ww[i])
    return out2.numpy()


def niqe_y(y: np.ndarray, params: NIQEParams) -> float:
    """NIQE of a Y image (2-D, 0–255 float32 before rounding, the crop border already cut)."""
    y = np.asarray(y, np.float32)
    h, w = y.shape
    nh, nw = h // BLOCK, w // BLOCK
    if nh * nw < 2:  # one block's features have no covariance (BasicSR: "SVD did not converge")
        raise NIQERefused(f"it needs two {BLOCK}x{BLOCK} blocks after the crop border (at least {BLOCK}x{2 * BLOCK} "
                          f"or {2 * BLOCK}x{BLOCK} pixels), the image has {w}x{h}",
                          "use larger images or a smaller --crop-border")
    img = y.round()[: nh * BLOCK, : nw * BLOCK]
    feats = []
    for scale in (1, 2):
        feats.append(_features(_mscn(img, params.window), BLOCK // scale, nh, nw))
        if scale == 1:
            img = imresize_half(img / 255.0) * 255.0
    dist = np.concatenate(feats, axis=1)
    finite = dist[~np.isnan(dist).any(axis=1)]
    if finite.shape[0] < 2:
        raise NIQERefused(
            f"it needs at least 2 of its {dist.shape[0]} {BLOCK}x{BLOCK} blocks with usable statistics to estimate "
            f"a covariance, and {finite.shape[0]} have them (the others are flat, or have no values below or above "
            "their local mean; BasicSR fails here with 'SVD did not converge')",
            "use --on-error skip --allow-skips to score the other pairs, or leave niqe out of --metrics")
    with np.errstate(all="ignore"):
        mu = np.nanmean(dist, axis=0)
        cov = np.cov(finite, rowvar=False)
        d = params.mu - mu
        try:
            inv = np.linalg.pinv((params.cov + cov) / 2)
        except np.linalg.LinAlgError as e:
            raise NIQERefused(f"its feature covariance has no pseudo-inverse ({e})",
                              "use --on-error skip --allow-skips to score the other pairs") from None
        q = float(np.squeeze(np.sqrt(np.matmul(np.matmul(d, inv), np.transpose(d)))))
    if not math.isfinite(q):
        raise NIQERefused("its feature statistics are not finite",
                          "use --on-error skip --allow-skips to score the other pairs")
    return q


# --------------------------------------------------------------------------------------------
# As an extra metric of a run (``--metrics niqe``): the restored image of each pair only.


@dataclass
class LoadedNIQE:
    """The pristine model and the provenance recorded in the settings."""

    params: NIQEParams
    record: dict


def load_niqe(opts, device=None) -> LoadedNIQE:
    """The pristine model from ``--niqe-params`` / ``$HLCLI_NIQE_PARAMS`` / the cache / a
    hash-checked download (:mod:`hlcli.nets.datafiles`)."""
    loaded = datafiles.load("niqe", opts.niqe_params, offline=opts.offline, progress=opts.download_progress)
    return LoadedNIQE(loaded.value, {"reference": "basicsr.metrics.niqe.calculate_niqe (BasicSR 1.4.2), "
                                                  "convert_to='y'", "params": loaded.record()})


def niqe(px) -> list:
    """Per pair, NIQE of its restored image (BasicSR's Y of the decoded integers, the crop border
    already cut by the loader), or the :class:`NIQERefused` saying why it has none."""
    from .psnr_ssim import y_channel

    params = px.nets["niqe"].params
    ys = y_channel(px.restored, px.scale).cpu().numpy().astype(np.float32)  # float32 values held in float64
    out: list = []
    for j in range(ys.shape[0]):
        try:
            out.append(niqe_y(ys[j, 0], params))
        except NIQERefused as refusal:
            out.append(refusal)
    return out
