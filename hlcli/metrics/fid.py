"""Set statistics of Inception features: FID (Fréchet distance) and KID, and the patches they are
taken over (numpy only; no torch, no scipy).

* **FID** as pytorch-fid 0.3.0's ``calculate_frechet_distance``: float64 mean and covariance
  (``ddof=1``), FD = |mu1 - mu2|^2 + tr S1 + tr S2 - 2 tr sqrt(S1 S2). The trace of the square
  root is the sum of the square roots of the eigenvalues of S1 S2, computed from the symmetric
  positive semi-definite matrix sqrt(S1) S2 sqrt(S1) that has the same eigenvalues (two symmetric
  eigendecomposition after a Cholesky factorisation; SciPy's ``sqrtm``, whose ``disp`` argument
  SciPy 1.18 removed, is not needed), or, for a set with no more samples than dimensions, from the
  singular values of the n1 x n2 product of the centred features (see :func:`fid`). Robust as pytorch-fid is: when the result is not finite, 1e-6 * I is added to both
  covariances; an eigenvalue that is negative beyond rounding (its square root's imaginary part
  over 1e-3, pytorch-fid's tolerance) is an error that names the cause.
* **KID** as torch-fidelity 0.4.0's ``kid_features_to_metric``: polynomial kernel
  k(x, y) = (x.y / d + 1)^3, unbiased MMD^2 (diagonals of K_XX and K_YY left out, K_XY whole), over
  ``subsets`` random subsets of size ``min(n, subset_size)`` drawn by ``numpy.random.RandomState(seed)``
  (restored subset first, then ground truth, in each round, as torch-fidelity draws them); the mean
  and the (population) standard deviation of the subsets' values. When ``n <= subset_size`` every
  subset is the whole set, in another order, so the value is computed once (exact and
  deterministic; std 0).
* **Patches** as NeuralCompression's ``update_patch_fid`` (HiFiC's FID/256): the non-overlapping
  S x S grid from the top-left corner, plus, when H >= 1.5 S and W >= 1.5 S, the grid from
  (S // 2, S // 2); pixels past the last whole patch are not used.
* **Small sets**: with n samples the covariance has rank at most n - 1, so when n <= d it is
  singular and FID is biased (it depends on n): :func:`small_set_note` says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

EPS = 1e-6  # pytorch-fid's offset
IMAG_TOL = 1e-3  # pytorch-fid's tolerance on the imaginary part
KID_SUBSETS = 100  # torch-fidelity's defaults
KID_SUBSET_SIZE = 1000
KID_SEED = 2020  # torch-fidelity's default rng_seed


class FIDError(ValueError):
    """The Fréchet distance cannot be computed from these statistics (the message says why)."""


# --------------------------------------------------------------------------------------------
# Moments and the Fréchet distance.


def moments(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float64 mean and covariance (``ddof=1``, ``np.cov(rowvar=False)``) of ``n x d`` features."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise FIDError(f"needs at least 2 samples of features, got {f.shape[0] if f.ndim == 2 else f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def _sym_sqrt(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(s)
    if w.size and w.min() < -IMAG_TOL ** 2:
        raise FIDError(f"a covariance has a negative eigenvalue ({w.min():.3g}): it is not a covariance of "
                       "real features, and the square root of the product would be complex")
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def _trace_sqrt_product(s1: np.ndarray, s2: np.ndarray) -> tuple[float, float]:
    """(tr sqrt(S1 S2), the imaginary part the most negative eigenvalue of S1 S2 would give).
    The eigenvalues of S1 S2 are those of the symmetric L^T S2 L (S1 = L L^T, Cholesky) or, when S1
    is singular, of sqrt(S1) S2 sqrt(S1)."""
    try:
        c = np.linalg.cholesky(s1)
        m = c.T @ s2 @ c
    except np.linalg.LinAlgError:
        r = _sym_sqrt(s1)
        m = r @ s2 @ r
    ev = np.linalg.eigvalsh((m + m.T) / 2)
    imag = math.sqrt(-float(ev.min())) if ev.size and ev.min() < 0 else 0.0
    return float(np.sqrt(np.clip(ev, 0.0, None)).sum()), imag


def _checked(mu1, s1, mu2, s2):
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(s1, np.float64)), np.atleast_2d(np.asarray(s2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise FIDError(f"statistics of different dimensions ({mu1.shape}, {s1.shape} vs {mu2.shape}, {s2.shape})")
    if not (np.isfinite(mu1).all() and np.isfinite(mu2).all() and np.isfinite(s1).all() and np.isfinite(s2).all()):
        raise FIDError("the features' mean or covariance holds non-finite values")
    return mu1, s1, mu2, s2


def frechet_distance(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray,
                     eps: float = EPS) -> float:
    """The Fréchet distance of N(mu1, S1) and N(mu2, S2), as pytorch-fid computes it."""
    mu1, s1, mu2, s2 = _checked(mu1, s1, mu2, s2)
    diff = mu1 - mu2
    try:
        tr, imag = _trace_sqrt_product(s1, s2)
        finite = math.isfinite(tr)
    except np.linalg.LinAlgError:
        finite = False
    if not finite:  # pytorch-fid: "adding eps to diagonal of cov estimates"
        off = np.eye(s1.shape[0]) * eps
        tr, imag = _trace_sqrt_product(s1 + off, s2 + off)
    if imag > IMAG_TOL:
        raise FIDError(
            f"the product of the covariances has a negative eigenvalue (-{imag ** 2:.3g}); its square root "
            f"has an imaginary part of {imag:.3g} > {IMAG_TOL:g}, which is not rounding"
        )
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr)


def fid(restored: np.ndarray, ground_truth: np.ndarray) -> float:
    """FID of two sets of features (``n x d`` each). When a set has no more samples than
    dimensions (a singular covariance), tr sqrt(S1 S2) is the nuclear norm of
    X1c X2c^T / sqrt((n1 - 1)(n2 - 1)) (Xc: the centred features), the sum of the singular values
    of an n1 x n2 matrix: exact and cheap where the d x d route sums d - n square roots of
    rounding noise."""
    x = np.asarray(restored, dtype=np.float64)
    y = np.asarray(ground_truth, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise FIDError(f"features of different shapes {x.shape} and {y.shape}")
    n1, n2, d = x.shape[0], y.shape[0], x.shape[1]
    if min(n1, n2) < 2:
        raise FIDError(f"FID needs at least 2 samples in each set, got {n1} and {n2}")
    if max(n1, n2) > d and min(n1, n2) > d:
        return frechet_distance(*moments(x), *moments(y))
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise FIDError("the features hold non-finite values")
    mu1, mu2 = x.mean(axis=0), y.mean(axis=0)
    xc, yc = x - mu1, y - mu2
    tr1 = float(np.einsum("ij,ij->", xc, xc)) / (n1 - 1)
    tr2 = float(np.einsum("ij,ij->", yc, yc)) / (n2 - 1)
    try:
        sv = np.linalg.svd(xc @ yc.T, compute_uv=False)
    except np.linalg.LinAlgError:
        return frechet_distance(*moments(x), *moments(y))
    tr = float(sv.sum()) / math.sqrt((n1 - 1) * (n2 - 1))
    diff = mu1 - mu2
    return float(diff @ diff + tr1 + tr2 - 2.0 * tr)


# --------------------------------------------------------------------------------------------
# KID.


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]
    kxx = (x @ x.T / d + 1.0) ** 3
    kyy = (y @ y.T / d + 1.0) ** 3
    kxy = (x @ y.T / d + 1.0) ** 3
    m = x.shape[0]
    sxx = kxx.sum() - np.trace(kxx)
    syy = kyy.sum() - np.trace(kyy)
    return float((sxx + syy) / (m * (m - 1)) - 2.0 * kxy.sum() / (m * m))


@dataclass(frozen=True)
class KID:
    mean: float
    std: float
    subsets: int  # how many subsets were drawn (1 when each would be the whole set)
    subset_size: int
    seed: int


def kid(restored: np.ndarray, ground_truth: np.ndarray, *, subsets: int = KID_SUBSETS,
        subset_size: int = KID_SUBSET_SIZE, seed: int = KID_SEED) -> KID:
    """KID of two sets of features, as torch-fidelity 0.4.0 with ``kid_subset_size=min(n, subset_size)``."""
    x = np.asarray(restored, dtype=np.float64)
    y = np.asarray(ground_truth, dtype=np.float64)
    n1, n2 = x.shape[0], y.shape[0]
    m = min(n1, n2, subset_size)
    if m < 2:
        raise FIDError(f"KID needs at least 2 samples in each set, got {n1} and {n2}")
    if n1 == m and n2 == m:
        v = _mmd2_unbiased(x, y)
        return KID(v, 0.0, 1, m, seed)
    rng = np.random.RandomState(seed)
    vals = np.empty(subsets)
    for i in range(subsets):
        a = x[rng.choice(n1, m, replace=False)]
        b = y[rng.choice(n2, m, replace=False)]
        vals[i] = _mmd2_unbiased(a, b)
    return KID(float(vals.mean()), float(vals.std()), subsets, m, seed)


# --------------------------------------------------------------------------------------------
# Patches.


def patch_origins(h: int, w: int, size: int) -> list[tuple[int, int]]:
    """Top-left corners (y, x) of the patches NeuralCompression's ``update_patch_fid`` cuts from an
    ``h x w`` image: the grid from (0, 0) row by row, then, when ``h >= 1.5 size`` and
    ``w >= 1.5 size``, the grid from (size // 2, size // 2)."""
    out = [(y, x) for y in range(0, h - size + 1, size) for x in range(0, w - size + 1, size)]
    if h >= 1.5 * size and w >= 1.5 * size:
        o = size // 2
        out += [(y, x) for y in range(o, h - size + 1, size) for x in range(o, w - size + 1, size)]
    return out


def patch_count(h: int, w: int, size: int) -> int:
    return len(patch_origins(h, w, size))


def cut_patches(arr: np.ndarray, size: int) -> np.ndarray:
    """The patches of one ``H x W x C`` image, ``P x size x size x C`` (a copy)."""
    h, w = arr.shape[:2]
    orig = patch_origins(h, w, size)
    if not orig:
        return np.empty((0, size, size) + arr.shape[2:], dtype=arr.dtype)
    return np.stack([arr[y:y + size, x:x + size] for y, x in orig])


# --------------------------------------------------------------------------------------------
# Small sets.


def is_small(n: int, dims: int) -> bool:
    """Whether ``n`` samples give a singular ``dims x dims`` covariance (rank <= n - 1 < dims)."""
    return n <= dims


def small_set_note(n: int, dims: int, patches: int | None) -> str | None:
    """The warning for a set of ``n`` samples with ``dims`` features, or None when it is large enough."""
    if not is_small(n, dims):
        return None
    what = "patches" if patches else "images"
    fixes = []
    if not patches:
        fixes.append("--fid-patches 64 (or another size) to measure over more samples")
    smaller = [d for d in (64, 192, 768, 2048) if d < n]
    if smaller:
        fixes.append(f"--fid-dims {smaller[-1]}")
    fix = "; use " + " or ".join(fixes) if fixes else ""
    return (f"FID over {n} {what} with {dims} features: the covariance is singular "
            f"({n} <= {dims}), so the value is biased and depends on the number of samples{fix}")


def set_record(restored: np.ndarray, ground_truth: np.ndarray, want: tuple[str, ...] = ("fid", "kid"), *,
               kid_seed: int = KID_SEED, patches: int | None = None) -> dict[str, Any]:
    """What a set (run, group, model) records: ``samples`` (per side), ``dims``, ``small``
    (samples <= dims) and ``note`` (the small-set warning, or None), then ``fid`` and/or ``kid``
    with ``kid_std``, ``kid_subsets``, ``kid_subset_size``, ``kid_seed``. With fewer than 2
    samples the values are None and ``note`` says why."""
    n, dims = restored.shape
    out: dict[str, Any] = {"samples": int(n), "dims": int(dims), "small": is_small(n, dims),
                           "note": small_set_note(n, dims, patches)}
    if n < 2:
        out["note"] = f"{n} sample{'s' if n != 1 else ''}: FID and KID need at least 2"
        for name in want:
            out[name] = None
        if "kid" in want:
            out.update(kid_std=None, kid_subsets=0, kid_subset_size=0, kid_seed=kid_seed)
        return out
    if "fid" in want:
        out["fid"] = fid(restored, ground_truth)
    if "kid" in want:
        k = kid(restored, ground_truth, seed=kid_seed)
        out.update(kid=k.mean, kid_std=k.std, kid_subsets=k.subsets, kid_subset_size=k.subset_size, kid_seed=k.seed)
    return out
