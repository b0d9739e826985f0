#!/usr/bin/env python3
"""Regenerate hlcli's bundled sample data (samples/gt and samples/restored).

Every source photo comes from scikit-image's bundled data module
(``skimage.data``), which ships inside the installed package, so no network
access is needed. Only photos that scikit-image documents as public domain or
CC0 are used; see samples/README.md for the sources and licences.

Each photo is centre-cropped to the target aspect ratio, downscaled with
Pillow's LANCZOS filter and written to ``gt/<name>.png``. A "restored"
version with one typical restoration defect is written to
``restored/<name>.<ext>``. hlcli pairs files by relative path without the
extension, so ``restored/coffee.jpg`` pairs with ``gt/coffee.png``.

Usage (from any directory)::

    python samples/make_samples.py

The script is deterministic (fixed numpy seed) and idempotent: it overwrites
its outputs on every run.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter
from skimage import data

HERE = Path(__file__).resolve().parent
GT_DIR = HERE / "gt"
RESTORED_DIR = HERE / "restored"

SEED = 20240601
BLUR_RADIUS = 1.5
NOISE_SIGMA = 8.0  # in 0..255 units, i.e. sigma = 8/255 on a [0, 1] scale
JPEG_QUALITY = 20

# name -> (skimage.data loader, (width, height), defect)
SAMPLES = {
    "astronaut": (data.astronaut, (256, 256), "blur"),
    "chelsea": (data.chelsea, (320, 240), "noise"),
    "coffee": (data.coffee, (384, 256), "jpeg"),
    "rocket": (data.rocket, (256, 192), "identical"),
}

RESTORED_EXT = {"blur": ".png", "noise": ".png", "jpeg": ".jpg", "identical": ".png"}


def load_rgb(loader) -> Image.Image:
    arr = np.asarray(loader())
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    arr = arr[..., :3]
    if arr.dtype != np.uint8:
        raise TypeError(f"expected uint8 image, got {arr.dtype}")
    return Image.fromarray(np.ascontiguousarray(arr))


def centre_crop_resize(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Centre-crop ``img`` to the aspect ratio of ``size``, then LANCZOS-resize."""
    tw, th = size
    w, h = img.size
    if w * th > h * tw:  # too wide: crop width
        cw, ch = round(h * tw / th), h
    else:  # too tall: crop height
        cw, ch = w, round(w * th / tw)
    left = (w - cw) // 2
    top = (h - ch) // 2
    img = img.crop((left, top, left + cw, top + ch))
    return img.resize(size, Image.Resampling.LANCZOS)


def add_noise(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    arr = np.asarray(img, dtype=np.float64)
    arr = arr + rng.normal(0.0, NOISE_SIGMA, size=arr.shape)
    arr = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
    return Image.fromarray(arr)


def save_png(img: Image.Image, path: Path) -> None:
    img.save(path, format="PNG", optimize=True)


def main() -> None:
    GT_DIR.mkdir(parents=True, exist_ok=True)
    RESTORED_DIR.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)

    for name, (loader, size, defect) in SAMPLES.items():
        for s in size:
            assert s % 8 == 0 and s >= 128, (name, size)
        gt = centre_crop_resize(load_rgb(loader), size)
        gt_path = GT_DIR / f"{name}.png"
        save_png(gt, gt_path)

        ext = RESTORED_EXT[defect]
        out = RESTORED_DIR / f"{name}{ext}"
        # Remove stale outputs for this stem with another extension, so each
        # gt image has exactly one restored counterpart.
        for stale in RESTORED_DIR.glob(f"{name}.*"):
            if stale != out:
                stale.unlink()

        if defect == "blur":
            save_png(gt.filter(ImageFilter.GaussianBlur(BLUR_RADIUS)), out)
        elif defect == "noise":
            save_png(add_noise(gt, rng), out)
        elif defect == "jpeg":
            gt.save(out, format="JPEG", quality=JPEG_QUALITY, optimize=True)
        elif defect == "identical":
            shutil.copyfile(gt_path, out)
        else:
            raise ValueError(defect)
        print(f"{name}: {size[0]}x{size[1]} {defect} -> "
              f"{gt_path.relative_to(HERE)}, {out.relative_to(HERE)}")


if __name__ == "__main__":
    main()
