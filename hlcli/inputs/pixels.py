"""Pixels of an opened image as hlcli scores them: ``H x W x 3`` uint8 or uint16 samples.

Split from :mod:`hlcli.inputs.images` (which opens files, reads and checks headers, and turns every
decoder failure into the file's error): here the samples are recovered and converted. Pillow 13
truncates 16-bit colour PNG/TIFF samples to their high bytes, so those are decoded twice, the
second time with the byte-swapped rawmode, and recombined (:data:`LOW_BYTES`); binary 16-bit
PPM is read directly; palette, CMYK (through the embedded ICC profile), YCbCr and the like are
converted to RGB; alpha is refused, composited over black or dropped (``policy``); the EXIF
orientation is applied as ``ImageOps.exif_transpose`` would.
"""

from __future__ import annotations

import functools
import io
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image

from ..errors import InputError

try:
    from PIL import ImageCms
except ImportError:  # Pillow built without LittleCMS (CMYK images are then refused from the header)
    ImageCms = None  # type: ignore[assignment]

_NATIVE = "L" if sys.byteorder == "little" else "B"
#: 16-bit colour rawmodes -> the rawmode that yields their low bytes
LOW_BYTES = {f"{b};16{e}": f"{b};16{'B' if e == 'L' else 'L'}"
             for b in ("RGB", "RGBA", "RGBX") for e in "BL"}
LOW_BYTES.update({f"{b};16N": LOW_BYTES[f"{b};16{_NATIVE}"] for b in ("RGB", "RGBA", "RGBX")})
_KEY_SCALE = {"L;2": 85, "L;4": 17}  # Pillow leaves tRNS keys of 2/4-bit grey unscaled


def scale_of(arr: np.ndarray) -> int:
    """The maximum value of ``arr``'s dtype: 255 for uint8, 65535 for uint16."""
    if arr.dtype in (np.uint8, np.uint16):
        return int(np.iinfo(arr.dtype).max)
    raise TypeError(f"expected a uint8 or uint16 image array, got dtype {arr.dtype}")


def decoded(img: Image.Image, rawmode: str | None, bit_depth: int, orientation: int, size: tuple[int, int],
            path, policy: str, *, reopen: Callable[[Any], Any]) -> np.ndarray:
    """``H x W x 3`` uint8/uint16 samples of an opened image: 16-bit colour recovered, palette,
    CMYK and other modes converted, alpha handled by ``policy``, grey made RGB, EXIF
    ``orientation`` applied. ``size`` is the header's (H, W): a decoded size that differs from it
    is an error, never a silently wrong turn. ``reopen(path)`` opens the file again (16-bit
    colour needs a second decode)."""
    arr = _samples(img, rawmode, bit_depth, path, reopen)
    arr = _apply_alpha(arr, path, policy)
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    arr = np.ascontiguousarray(_orient(arr, orientation))
    if arr.shape[:2] != size:
        raise InputError(f"decoded size {arr.shape[1]}x{arr.shape[0]} differs from the header's "
                         f"{size[1]}x{size[0]}", path, "convert it to PNG")
    return arr


def _samples(img: Image.Image, rawmode: str | None, bit_depth: int, path,
             reopen: Callable[[Any], Any]) -> np.ndarray:
    """``H x W x C`` samples, alpha last when present (C is 1-4), before orientation."""
    mode = img.mode
    key = img.info.get("transparency") if mode in ("1", "L", "RGB") or mode[0] == "I" else None
    if rawmode in LOW_BYTES or rawmode == "LA;16B":
        arr = _wide16(img, path, rawmode, reopen)
    elif bit_depth == 16 and mode == "RGB":  # only binary PPM is left (see header)
        arr = _ppm16(img, path)
    else:
        if mode == "1":
            img = img.convert("L")
        elif mode in ("P", "PA"):
            img = img.convert("RGBA" if img.has_transparency_data else "RGB")
        elif mode in ("RGBX", "YCbCr", "HSV"):
            img = img.convert("RGB")
        elif mode == "CMYK":
            img = _cmyk_to_srgb(bytes(img.info["icc_profile"])).apply(img)
        arr = np.array(img)  # a writable copy (np.asarray would be read-only)
        if arr.ndim == 2:
            arr = arr[..., None]
        if mode.startswith("I"):
            if arr.size and (arr.min() < 0 or arr.max() > 65535):
                raise InputError("integer image with values outside 0..65535", path,
                                 "save it as a 16-bit PNG or TIFF")
            arr = arr.astype(np.uint16)
    if key is not None and np.size(key) == arr.shape[2]:
        key = np.asarray(key).reshape(-1) * _KEY_SCALE.get(rawmode, 1)
        opaque = ~np.all(arr == key, axis=2, keepdims=True)
        arr = np.concatenate([arr, (opaque * scale_of(arr)).astype(arr.dtype)], axis=2)
    return arr


def _wide16(img: Image.Image, path, rawmode: str, reopen: Callable[[Any], Any]) -> np.ndarray:
    """Recover 16-bit colour that Pillow 13 truncates to its high bytes (see module doc)."""
    if rawmode == "LA;16B":  # 4 bytes/pixel, same as 8-bit RGBA: read the raw bytes L L A A
        raw = _load_rawmode(img, "RGBA").astype(np.uint16)
        return (raw[..., 0::2] << 8) | raw[..., 1::2]
    img.load()
    high = np.asarray(img).astype(np.uint16)
    with reopen(path) as twin:
        low = _load_rawmode(twin, LOW_BYTES[rawmode])
    if low.shape != high.shape:
        raise InputError("16-bit image changed while being read", path, "try again")
    return (high << 8) | low


def _load_rawmode(img: Image.Image, rawmode: str) -> np.ndarray:
    def swap(args):
        return (rawmode, *args[1:]) if isinstance(args, tuple) else rawmode
    img.tile = [type(tile)(*tile[:3], swap(tile[3])) if hasattr(tile, "_fields")
                else (*tile[:3], swap(tile[3])) for tile in img.tile]
    img.load()
    return np.asarray(img)


def _ppm16(img: Image.Image, path) -> np.ndarray:
    """Binary PPM with 2-byte big-endian samples; values rescaled from maxval to 65535."""
    (tile,) = img.tile
    maxval, (w, h) = tile[3][1], img.size
    img.fp.seek(tile[2])
    data = img.fp.read(w * h * 6)
    if len(data) < w * h * 6:
        raise InputError("image file is truncated", path, "re-export or re-download it")
    arr = np.frombuffer(data, ">u2").reshape(h, w, 3).astype(np.uint32)
    if arr.max(initial=0) > maxval:
        raise InputError(f"PPM sample above its maxval {maxval}", path, "re-export the image")
    return ((arr * 65535 + maxval // 2) // maxval).astype(np.uint16)


def _apply_alpha(arr: np.ndarray, path, policy: str) -> np.ndarray:
    if arr.shape[2] not in (2, 4):
        return arr
    colour, alpha, top = arr[..., :-1], arr[..., -1:], scale_of(arr)
    if policy == "ignore" or np.all(alpha == top):
        return colour
    if policy == "error":
        raise InputError("image has transparent pixels", path,
                         "pass --alpha composite (over black) or --alpha ignore (drop alpha)")
    wide = colour.astype(np.uint64) * alpha + top // 2
    return (wide // top).astype(arr.dtype)


def _orient(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) to an ``H x W x C`` array, as ImageOps.exif_transpose."""
    if orientation >= 5:  # 5-8 involve a transpose: 5 transpose, 6 rot 90 cw, 7 transverse, 8 ccw
        arr = arr.transpose(1, 0, 2)
        orientation = {5: 1, 6: 2, 7: 3, 8: 4}[orientation]
    if orientation in (2, 3):
        arr = arr[:, ::-1]
    if orientation in (3, 4):
        arr = arr[::-1]
    return arr


@functools.lru_cache(maxsize=8)
def _cmyk_to_srgb(icc: bytes) -> Any:
    """The CMYK -> sRGB transform of an ICC profile, built once per profile (LittleCMS takes
    ~40 ms to build one; a folder of CMYK images usually shares one profile). ``NOCACHE`` makes
    a transform safe to share between threads (it drops LittleCMS's one-pixel cache)."""
    return ImageCms.buildTransform(ImageCms.ImageCmsProfile(io.BytesIO(icc)),
                                   ImageCms.createProfile("sRGB"), "CMYK", "RGB",
                                   ImageCms.Intent.PERCEPTUAL, flags=ImageCms.Flags.NOCACHE)
