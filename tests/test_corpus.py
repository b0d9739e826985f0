"""Issue #4, end to end through the CLI: every file is either scored correctly or refused clearly.

A corpus of malformed and awkward inputs, each generated in ``tmp_path`` and placed next to two
good pairs:

* every **bad** case is run with ``--on-error fail`` (exit 2, one ``Error:`` line naming the file,
  no traceback, nothing on stdout) and with ``--on-error skip`` (exit 2, the skip and its reason in
  the document and on stderr, the good pairs scored exactly as in a clean run);
* every **awkward but valid** case is scored and checked against an independent float64
  reference computed from the pixel values the test itself wrote (``tests/reference.py``);
* one run holds the whole corpus and checks that every skip is listed in every output format.

Whole-run problems (pairing, manifests, options) and the failure behaviour (NaN, devices, Ctrl-C,
broken pipes, warnings) follow below.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import struct
import subprocess
import sys
import time
import unicodedata
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageOps, features

from hlcli.cli import cli

from .conftest import ROOT, degrade, save, textured
from .reference import reference_model, reference_scores
from .test_images import _chunk, exif_bytes, write_png

SIZE = 32  # side of the good images: small and fast, deep enough for conv4_3
LAYERS = {"conv2_2": 7, "conv4_3": 23}  # name -> index in vgg19().features (VGG paper naming)
LAMBDA = 0.05
MAX_PIXELS = 20_000
COMMON = ["--layers", ",".join(LAYERS), "--max-pixels", str(MAX_PIXELS), "--workers", "0"]
GOODS = ("good_a", "good_b")
AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


# --------------------------------------------------------------------------------- helpers

def strict_json(text: str):
    """json.loads that refuses NaN/Infinity, as a strict consumer would."""
    def refuse(name):
        raise ValueError(f"non-standard JSON number {name}")
    return json.loads(text, parse_constant=refuse)


def invoke(env: dict[str, str], *args):
    return CliRunner(env=env).invoke(cli, ["score", *map(str, args)])


def encode(image, fmt: str, **kw) -> bytes:
    img = image if isinstance(image, Image.Image) else Image.fromarray(image)
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def rgb(seed: int, h: int = SIZE, w: int = SIZE) -> np.ndarray:
    return textured(h, w, seed)


def grey16(seed: int, h: int = SIZE, w: int = SIZE, top: int = 65535) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = textured(h, w, seed, channels=1)[..., 0].astype(np.float64) * (top / 255)
    return np.clip(base + rng.normal(0, top / 200, (h, w)), 0, top).astype(np.uint16)


def rgb16(seed: int, h: int = SIZE, w: int = SIZE) -> np.ndarray:
    return np.stack([grey16(seed + c, h, w) for c in range(3)], axis=2)


def f8(arr: np.ndarray) -> np.ndarray:
    arr = np.asarray(arr)
    arr = np.repeat(arr[..., None], 3, axis=2) if arr.ndim == 2 else arr[..., :3]
    return arr.astype(np.float64) / 255


def f16(arr: np.ndarray) -> np.ndarray:
    arr = np.asarray(arr)
    arr = np.repeat(arr[..., None], 3, axis=2) if arr.ndim == 2 else arr[..., :3]
    return arr.astype(np.float64) / 65535


def png_bytes(ihdr: bytes, idat: bytes = b"") -> bytes:
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(idat))
            + _chunk(b"IEND", b""))


def grey_i16(arr: np.ndarray) -> Image.Image:
    return Image.frombytes("I;16", (arr.shape[1], arr.shape[0]), arr.astype("<u2").tobytes())


def displayed(path: Path) -> np.ndarray:
    """What a viewer shows: Pillow's own EXIF transpose (an oracle independent of hlcli)."""
    with Image.open(path) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))


# --------------------------------------------------------------------------------- the corpus

@dataclass
class Bad:
    """A pair that must be refused. ``make(r, g, stem, seed)`` writes it and returns
    (restored, gt); ``culprit`` is the side whose path the error must name."""

    name: str
    culprit: str  # "restored" or "gt"
    needles: tuple[str, ...]
    make: Callable[[Path, Path, str, int], tuple[Path, Path]]
    skip_if: str | None = None  # a reason to skip this case here


@dataclass
class Scored:
    """A pair that must be scored. ``make`` returns (restored, gt, expected restored, expected gt)
    with the expected decodes as float64 RGB in [0, 1]; ``zero``: identical content."""

    name: str
    make: Callable[[Path, Path, str, int], tuple[Path, Path, np.ndarray, np.ndarray]]
    zero: bool = False
    key: str | None = None  # the pair's key in reports (default: name)
    skip_if: str | None = None  # a reason to skip this case here


def bad_file(side: str, ext: str, write: Callable[[Path, int], object]):
    """The ``side`` file is written by ``write(path, seed)``; the other side is a good PNG."""
    def make(r: Path, g: Path, stem: str, seed: int) -> tuple[Path, Path]:
        bad_dir, ok_dir = (r, g) if side == "restored" else (g, r)
        bad = bad_dir / f"{stem}{ext}"
        bad.parent.mkdir(parents=True, exist_ok=True)
        write(bad, seed)
        ok = save(ok_dir / f"{stem}.png", rgb(seed))
        return (bad, ok) if side == "restored" else (ok, bad)
    return make


def data(blob: bytes):
    return lambda path, seed: path.write_bytes(blob)


def truncated(fmt: str, keep: float = 0.6, **kw):
    def write(path, seed):
        blob = encode(rgb(seed), fmt, **kw)
        path.write_bytes(blob[: int(len(blob) * keep)])
    return write


def pil(factory: Callable[[int], Image.Image], **kw):
    return lambda path, seed: factory(seed).save(path, **kw)


def corrupt_png_data(path, seed):
    blob = bytearray(encode(rgb(seed), "PNG"))
    start = blob.index(b"IDAT") + 20
    for i in range(start, start + 40):
        blob[i] ^= 0x5A
    path.write_bytes(bytes(blob))


def corrupt_png_crc(path, seed):
    blob = bytearray(encode(rgb(seed), "PNG"))
    blob[29] ^= 0xFF  # IHDR's CRC
    path.write_bytes(bytes(blob))


def corrupt_tiff_data(path, seed):
    blob = bytearray(encode(rgb(seed), "TIFF", compression="tiff_deflate"))
    for i in range(20, 120):
        blob[i] ^= 0x33
    path.write_bytes(bytes(blob))


def rgba_transparent(seed):
    arr = np.dstack([rgb(seed), np.full((SIZE, SIZE), 255, np.uint8)])
    arr[4:12, 4:12, 3] = 0
    arr[20:24, :, 3] = 128
    return Image.fromarray(arr, "RGBA")


def la_transparent(seed):
    arr = np.dstack([rgb(seed)[..., 0], np.full((SIZE, SIZE), 255, np.uint8)])
    arr[::3, ::5, 1] = 40
    return Image.fromarray(arr, "LA")


def palette(seed, colours=16):
    img = Image.fromarray(rgb(seed)).quantize(colours)
    img.putpixel((0, 0), 3)  # index 3 is used, whatever quantize chose
    return img


def colour_key(path, seed):
    arr = rgb(seed)
    arr[3:6, 3:6] = (1, 2, 3)
    Image.fromarray(arr).save(path, transparency=(1, 2, 3))


def rgba16_transparent(path, seed):
    arr = np.dstack([rgb16(seed), np.full((SIZE, SIZE), 65535, np.uint16)])
    arr[5:9, 5:9, 3] = 30000
    write_png(path, arr)


def frames(n: int = 2):
    """A file with ``n`` different frames (the format follows the extension)."""
    def write(path, s):
        imgs = [Image.fromarray(rgb(s + i)) for i in range(n)]
        imgs[0].save(path, save_all=True, append_images=imgs[1:])
    return write


def srgb_profile() -> bytes:
    from PIL import ImageCms
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def cmyk16_tiff(path, seed):
    import tifffile
    tifffile.imwrite(path, rgb16(seed)[..., [0, 1, 2, 0]], photometric="separated")


def ppm16_plain(path, seed):
    path.write_bytes(b"P3\n2 2\n65535\n" + b"1 2 3 " * 4)


def ppm16_truncated(path, seed):
    arr = rgb16(seed)
    path.write_bytes(b"P6\n%d %d\n65535\n" % (SIZE, SIZE) + arr.astype(">u2").tobytes()[:-100])


def size_mismatch(r, g, stem, seed):
    return save(r / f"{stem}.png", rgb(seed)), save(g / f"{stem}.png", rgb(seed, SIZE, SIZE + 8))


def too_small(r, g, stem, seed):
    return save(r / f"{stem}.png", rgb(seed, 6, 6)), save(g / f"{stem}.png", rgb(seed, 6, 6))


def unreadable(r, g, stem, seed):
    rp, gp = save(r / f"{stem}.png", rgb(seed)), save(g / f"{stem}.png", rgb(seed))
    rp.chmod(0)
    return rp, gp


def _heif_installed() -> str | None:
    import importlib.util
    return "pillow-heif is installed here" if importlib.util.find_spec("pillow_heif") else None


def _no_tifffile() -> str | None:
    import importlib.util
    return None if importlib.util.find_spec("tifffile") else "tifffile is not installed"


BAD: list[Bad] = [
    # broken files
    Bad("truncated_png", "restored", ("truncated",), bad_file("restored", ".png", truncated("PNG"))),
    Bad("truncated_jpeg", "gt", ("truncated",), bad_file("gt", ".jpg", truncated("JPEG"))),
    Bad("truncated_tiff", "restored", ("truncated",), bad_file("restored", ".tif", truncated("TIFF"))),
    Bad("truncated_bmp", "gt", ("truncated",), bad_file("gt", ".bmp", truncated("BMP"))),
    Bad("truncated_gif", "restored", ("truncated",), bad_file("restored", ".gif", truncated("GIF"))),
    Bad("truncated_webp", "gt", ("cannot decode",),
        bad_file("gt", ".webp", truncated("WEBP", lossless=True)),
        skip_if=None if features.check("webp") else "no WebP support"),
    Bad("corrupt_png_data", "restored", ("cannot decode", "corrupt"), bad_file("restored", ".png", corrupt_png_data)),
    Bad("corrupt_png_header_crc", "gt", ("not a readable image",), bad_file("gt", ".png", corrupt_png_crc)),
    Bad("corrupt_tiff_data", "restored", ("cannot decode",), bad_file("restored", ".tif", corrupt_tiff_data)),
    Bad("empty_file", "gt", ("file is empty",), bad_file("gt", ".png", data(b""))),
    Bad("random_bytes_png", "restored", ("not a readable image",),
        bad_file("restored", ".png", data(np.random.default_rng(7).bytes(3000)))),
    Bad("text_named_png", "restored", ("not a readable image",), bad_file("restored", ".png", data(b"hello\n"))),
    Bad("html_named_jpg", "gt", ("not a readable image",),
        bad_file("gt", ".jpg", data(b"<!doctype html><html><body>404 Not Found</body></html>\n"))),
    Bad("zip_named_tif", "restored", ("not a readable image",),
        bad_file("restored", ".tif", data(b"PK\x03\x04" + b"\x00" * 200))),
    Bad("zero_width_png", "gt", ("not a readable image",),
        bad_file("gt", ".png", data(png_bytes(struct.pack(">IIBBBBB", 0, SIZE, 8, 2, 0, 0, 0))))),
    # decompression bombs: refused from the header, before decoding
    Bad("header_bomb_png", "restored", ("60000x60000", "decompression-bomb", "--max-pixels 3600000000"),
        bad_file("restored", ".png", data(png_bytes(struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0),
                                                    b"\x00" * 64)))),
    Bad("over_max_pixels", "gt", (f"limit of {MAX_PIXELS}", "--max-pixels 25600"),
        bad_file("gt", ".png", lambda p, s: save(p, rgb(s, 160, 160)))),
    # transparency without --alpha
    Bad("rgba_transparent", "restored", ("transparent pixels", "--alpha composite"),
        bad_file("restored", ".png", pil(rgba_transparent))),
    Bad("rgba16_transparent", "gt", ("transparent pixels",), bad_file("gt", ".png", rgba16_transparent)),
    Bad("la_transparent", "restored", ("transparent pixels",), bad_file("restored", ".png", pil(la_transparent))),
    Bad("palette_transparent", "gt", ("transparent pixels",), bad_file("gt", ".png", pil(palette, transparency=3))),
    Bad("colour_key_png", "restored", ("transparent pixels",), bad_file("restored", ".png", colour_key)),
    Bad("gif_transparent", "gt", ("transparent pixels",), bad_file("gt", ".gif", pil(palette, transparency=3))),
    # colour spaces, modes and depths that cannot be scored exactly
    Bad("cmyk_jpeg_no_profile", "restored", ("CMYK image without an ICC profile",),
        bad_file("restored", ".jpg", pil(lambda s: Image.fromarray(rgb(s)).convert("CMYK")))),
    Bad("cmyk_jpeg_rgb_profile", "gt", ("ICC profile is for RGB, not CMYK",),
        bad_file("gt", ".jpg", lambda p, s: Image.fromarray(rgb(s)).convert("CMYK").save(p, icc_profile=srgb_profile()))),
    Bad("cmyk16_tiff", "restored", ("16-bit",), bad_file("restored", ".tif", cmyk16_tiff), skip_if=_no_tifffile()),
    Bad("float_tiff", "gt", ("floating-point",),
        bad_file("gt", ".tif", pil(lambda s: Image.fromarray(rgb(s)[..., 0].astype(np.float32) / 255)))),
    Bad("int32_tiff_out_of_range", "restored", ("0..65535",),
        bad_file("restored", ".tif", pil(lambda s: Image.fromarray(np.full((SIZE, SIZE), 70000, np.int32))))),
    Bad("lab_tiff", "gt", ("LAB",), bad_file("gt", ".tif", pil(lambda s: Image.new("LAB", (SIZE, SIZE))))),
    Bad("plain_ppm_16bit", "restored", ("16-bit",), bad_file("restored", ".ppm", ppm16_plain)),
    Bad("truncated_ppm_16bit", "gt", ("truncated",), bad_file("gt", ".ppm", ppm16_truncated)),
    # several images in one file
    Bad("animated_gif", "restored", ("multi-frame", "2 frames"), bad_file("restored", ".gif", frames())),
    Bad("animated_png", "gt", ("multi-frame",), bad_file("gt", ".png", frames(3))),
    Bad("multipage_tiff", "restored", ("multi-frame",), bad_file("restored", ".tif", frames())),
    # formats this Pillow cannot read
    Bad("heic_without_plugin", "restored", ("pillow-heif",),
        bad_file("restored", ".heic", data(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64)),
        skip_if=_heif_installed()),
    # geometry
    Bad("size_mismatch", "restored", (f"restored is {SIZE}x{SIZE}", f"{SIZE + 8}x{SIZE}", "--size-mismatch"),
        size_mismatch),
    Bad("too_small_for_conv4_3", "gt", ("6x6", "at least 8x8"), too_small),
]


def scored_identical(write_r, write_g, ext_r=".png", ext_g=".png"):
    """Both sides written from the same content: ``write(path, seed) -> expected float64``."""
    def make(r, g, stem, seed):
        rp, gp = r / f"{stem}{ext_r}", g / f"{stem}{ext_g}"
        return rp, gp, write_r(rp, seed), write_g(gp, seed)
    return make


def w_png(arr_fn):
    def write(path, seed):
        arr = arr_fn(seed)
        save(path, arr)
        return f8(arr)
    return write


def rgba_opaque(r, g, stem, seed):
    arr = rgb(seed)
    rp = save(r / f"{stem}.png", np.dstack([arr, np.full((SIZE, SIZE), 255, np.uint8)]))
    return rp, save(g / f"{stem}.png", arr), f8(arr), f8(arr)


def la_opaque(r, g, stem, seed):
    grey = rgb(seed)[..., 1]
    rp = r / f"{stem}.png"
    Image.fromarray(np.dstack([grey, np.full_like(grey, 255)]), "LA").save(rp)
    return rp, save(g / f"{stem}.png", grey), f8(grey), f8(grey)


def palette_vs_rgb(r, g, stem, seed):
    img = palette(seed, 64)
    rp = r / f"{stem}.png"
    img.save(rp)
    arr = np.asarray(img.convert("RGB"))
    return rp, save(g / f"{stem}.png", arr), f8(arr), f8(arr)


def gif_opaque(r, g, stem, seed):
    img = palette(seed, 32)
    rp = r / f"{stem}.gif"
    img.save(rp)
    arr = np.asarray(img.convert("RGB"))
    return rp, save(g / f"{stem}.png", arr), f8(arr), f8(arr)


def grey_restored_rgb_gt(r, g, stem, seed):
    grey = rgb(seed)[..., 0]
    rp, gp = save(r / f"{stem}.png", grey), save(g / f"{stem}.png", np.repeat(grey[..., None], 3, axis=2))
    return rp, gp, f8(grey), f8(grey)


def rgb_restored_grey_gt(r, g, stem, seed):
    grey = degrade(rgb(seed), seed)[..., 2]
    rp, gp = save(r / f"{stem}.png", np.repeat(grey[..., None], 3, axis=2)), save(g / f"{stem}.jpg", grey, quality=95)
    with Image.open(gp) as im:
        decoded = np.asarray(im)
    assert decoded.ndim == 2  # a greyscale JPEG
    return rp, gp, f8(grey), f8(decoded)


def bilevel_vs_grey(r, g, stem, seed):
    bits = rgb(seed)[..., 0] > 127
    rp = r / f"{stem}.png"
    Image.fromarray(bits).save(rp)
    grey = bits.astype(np.uint8) * 255
    return rp, save(g / f"{stem}.png", grey), f8(grey), f8(grey)


def jpeg_named_png(r, g, stem, seed):
    blob = encode(rgb(seed), "JPEG", quality=80)
    rp = r / f"{stem}.png"
    rp.write_bytes(blob)
    arr = np.asarray(Image.open(io.BytesIO(blob)).convert("RGB"))
    return rp, save(g / f"{stem}.png", arr), f8(arr), f8(arr)


def upper_case_extensions(r, g, stem, seed):
    a = rgb(seed)
    b = degrade(a, seed)
    rp, gp = save(r / f"{stem}.PNG", b), save(g / f"{stem}.Tiff", a)
    return rp, gp, f8(b), f8(a)


def exif_png_rotated(r, g, stem, seed):
    upright = rgb(seed, SIZE, SIZE + 8)  # not square: a wrong turn changes the size
    rp = write_png(r / f"{stem}.png", np.rot90(upright, 1), exif=exif_bytes(6))  # shown turned 90° cw
    assert np.array_equal(displayed(rp), upright)
    return rp, save(g / f"{stem}.png", upright), f8(upright), f8(upright)


def exif_png_both_sides(r, g, stem, seed):
    upright = rgb(seed, SIZE, SIZE + 8)
    rp = write_png(r / f"{stem}.png", upright[::-1, ::-1], exif=exif_bytes(3), exif_late=True)
    gp = write_png(g / f"{stem}.png", np.rot90(upright, -1), exif=exif_bytes(8))
    assert np.array_equal(displayed(rp), upright) and np.array_equal(displayed(gp), upright)
    return rp, gp, f8(upright), f8(upright)


def exif_jpeg_rotated(r, g, stem, seed):
    upright = rgb(seed, SIZE, SIZE + 8)
    rp = r / f"{stem}.jpg"
    Image.fromarray(np.ascontiguousarray(np.rot90(upright, 1))).save(rp, exif=exif_bytes(6), quality=90)
    shown = displayed(rp)
    assert shown.shape == upright.shape
    return rp, save(g / f"{stem}.png", shown), f8(shown), f8(shown)


def grey16_png(r, g, stem, seed):
    a, b = grey16(seed), grey16(seed + 50)
    rp, gp = r / f"{stem}.png", g / f"{stem}.png"
    grey_i16(b).save(rp)
    grey_i16(a).save(gp)
    return rp, gp, f16(b), f16(a)


def grey16_dark_vs_black(r, g, stem, seed):
    """Values 0..1000 of 65535: scaled by 65535, never by the image's own maximum."""
    dark = grey16(seed, top=1000)
    rp, gp = r / f"{stem}.png", g / f"{stem}.tif"
    grey_i16(dark).save(rp)
    grey_i16(np.zeros_like(dark)).save(gp)
    return rp, gp, f16(dark), f16(np.zeros_like(dark))


def rgb16_png(r, g, stem, seed):
    a, b = rgb16(seed), rgb16(seed + 9)
    return write_png(r / f"{stem}.png", b), write_png(g / f"{stem}.png", a), f16(b), f16(a)


def rgb16_tiff(r, g, stem, seed):
    import tifffile
    a, b = rgb16(seed), rgb16(seed + 3)
    rp, gp = r / f"{stem}.tif", g / f"{stem}.tiff"
    tifffile.imwrite(rp, b, photometric="rgb", compression="zlib", predictor=True)
    tifffile.imwrite(gp, a, photometric="rgb")
    return rp, gp, f16(b), f16(a)


def mixed_depth(r, g, stem, seed):
    """8-bit restored against the same picture in 16 bits (v * 257): exactly equal."""
    a = rgb(seed)
    rp = save(r / f"{stem}.png", a)
    gp = write_png(g / f"{stem}.png", a.astype(np.uint16) * 257)
    return rp, gp, f8(a), f16(a.astype(np.uint16) * 257)


def ppm16_vs_png16(r, g, stem, seed):
    a = rgb16(seed)
    rp = r / f"{stem}.ppm"
    rp.write_bytes(b"P6\n%d %d\n65535\n" % (SIZE, SIZE) + a.astype(">u2").tobytes())
    return rp, write_png(g / f"{stem}.png", a), f16(a), f16(a)


def int32_tiff_vs_png16(r, g, stem, seed):
    a = grey16(seed)
    rp = r / f"{stem}.tif"
    Image.fromarray(a.astype(np.int32)).save(rp)  # mode I
    gp = g / f"{stem}.png"
    grey_i16(a).save(gp)
    return rp, gp, f16(a), f16(a)


def webp_lossless(r, g, stem, seed):
    a = rgb(seed)
    rp = r / f"{stem}.webp"
    Image.fromarray(a).save(rp, lossless=True)
    return rp, save(g / f"{stem}.png", a), f8(a), f8(a)


def unicode_nfd_name(r, g, stem, seed):
    a = rgb(seed)
    b = degrade(a, seed)
    rp = save(r / f"{unicodedata.normalize('NFD', stem)}.png", b)
    gp = save(g / f"{unicodedata.normalize('NFC', stem)}.png", a)
    return rp, gp, f8(b), f8(a)


SCORED: list[Scored] = [
    Scored("rgba_fully_opaque", rgba_opaque, zero=True),
    Scored("la_fully_opaque", la_opaque, zero=True),
    Scored("palette_vs_rgb", palette_vs_rgb, zero=True),
    Scored("gif_opaque", gif_opaque, zero=True),
    Scored("grey_restored_rgb_gt", grey_restored_rgb_gt, zero=True),
    Scored("rgb_restored_grey_jpeg_gt", rgb_restored_grey_gt),
    Scored("bilevel_vs_grey", bilevel_vs_grey, zero=True),
    Scored("jpeg_named_png", jpeg_named_png, zero=True),
    Scored("upper_case_extensions", upper_case_extensions),
    Scored("exif_png_rotated", exif_png_rotated, zero=True),
    Scored("exif_png_both_sides", exif_png_both_sides, zero=True),
    Scored("exif_jpeg_rotated", exif_jpeg_rotated, zero=True),
    Scored("grey16_png", grey16_png),
    Scored("grey16_dark_vs_black", grey16_dark_vs_black),
    Scored("rgb16_png", rgb16_png),
    Scored("rgb16_tiff", rgb16_tiff, skip_if=_no_tifffile()),
    Scored("mixed_8_and_16_bit", mixed_depth, zero=True),
    Scored("ppm16_vs_png16", ppm16_vs_png16, zero=True),
    Scored("int32_tiff_vs_png16", int32_tiff_vs_png16, zero=True),
    Scored("webp_lossless", webp_lossless, zero=True,
           skip_if=None if features.check("webp") else "no WebP support"),
    Scored("unicode_café", unicode_nfd_name),
]


def seed_of(name: str) -> int:
    return zlib.crc32(name.encode()) & 0xFFFF


def params(cases):
    return [pytest.param(c, id=c.name, marks=[pytest.mark.skip(reason=c.skip_if)] if c.skip_if else [])
            for c in cases]


def write_goods(r: Path, g: Path) -> None:
    for i, name in enumerate(GOODS):
        a = rgb(100 + i)
        save(g / f"{name}.png", a)
        save(r / f"{name}.png", degrade(a, 100 + i))


def goods_expected() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out = {}
    for i, name in enumerate(GOODS):
        a = rgb(100 + i)
        out[name] = (f8(degrade(a, 100 + i)), f8(a))
    return out


# --------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def env(weights_file, tmp_path_factory) -> dict[str, str]:
    """CliRunner environment: the seeded random weights, caches in a module temp dir."""
    home = tmp_path_factory.mktemp("corpus-home")
    return {"HLCLI_WEIGHTS": str(weights_file), "HLCLI_CACHE": str(home / "hlcli"),
            "TORCH_HOME": str(home / "torch"), "HLCLI_OFFLINE": "1", "NO_COLOR": "1"}


@pytest.fixture(scope="module")
def ref_model(state_dict):
    return reference_model(state_dict)


def reference(model, restored: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    l1, per = reference_scores(model, restored, gt, list(LAYERS.values()))
    layers = {name: per[idx] for name, idx in LAYERS.items()}
    perceptual = sum(layers.values())
    return {"l1": l1, **layers, "perceptual": perceptual, "hybrid": l1 + LAMBDA * perceptual}


def assert_matches_reference(pair: dict, expected: dict[str, float], what: str) -> None:
    assert pair["l1"] == pytest.approx(expected["l1"], rel=1e-9, abs=1e-15), what
    for name in LAYERS:
        assert pair["layers"][name] == pytest.approx(expected[name], rel=1e-4, abs=1e-12), (what, name)
    assert pair["perceptual"] == pytest.approx(expected["perceptual"], rel=1e-4, abs=1e-12), what
    assert pair["hybrid"] == pytest.approx(expected["hybrid"], rel=1e-4, abs=1e-12), what


def assert_zero(pair: dict, what: str) -> None:
    values = [pair["l1"], pair["perceptual"], pair["hybrid"], *pair["layers"].values()]
    assert values == [0.0] * len(values), (what, values)


def assert_same_as_baseline(doc: dict, baseline: dict[str, dict]) -> None:
    """The good pairs score as in a run holding nothing else (L1 exactly, features within fp32
    batch-composition noise)."""
    pairs = {p["key"]: p for p in doc["pairs"]}
    for key, base in baseline.items():
        p = pairs[key]
        assert p["l1"] == base["l1"], key
        for k in ("perceptual", "hybrid"):
            assert p[k] == pytest.approx(base[k], rel=1e-6, abs=0), (key, k)
        for name in LAYERS:
            assert p["layers"][name] == pytest.approx(base["layers"][name], rel=1e-6, abs=0), (key, name)


@pytest.fixture(scope="module")
def baseline(env, tmp_path_factory, ref_model) -> dict[str, dict]:
    """The two good pairs alone, checked against the float64 reference."""
    root = tmp_path_factory.mktemp("goods")
    write_goods(root / "r", root / "g")
    res = invoke(env, root / "r", root / "g", *COMMON, "-f", "json")
    assert res.exit_code == 0, res.stderr
    doc = strict_json(res.stdout)
    pairs = {p["key"]: p for p in doc["pairs"]}
    assert sorted(pairs) == sorted(GOODS)
    for name, (r01, g01) in goods_expected().items():
        assert_matches_reference(pairs[name], reference(ref_model, r01, g01), name)
        assert pairs[name]["l1"] > 0.01
    return pairs


def case_dirs(tmp_path: Path) -> tuple[Path, Path]:
    r, g = tmp_path / "restored", tmp_path / "gt"
    write_goods(r, g)
    return r, g


def assert_one_line_error(stderr: str, *needles: str) -> str:
    """stderr ends with exactly one ``Error: ...`` line holding every needle; no traceback."""
    assert "Traceback" not in stderr, stderr
    lines = stderr.splitlines()
    assert lines, "nothing on stderr"
    last = lines[-1]
    assert last.startswith("Error: "), stderr
    assert sum(line.startswith("Error:") for line in lines) == 1, stderr
    for needle in needles:
        assert needle in last, (needle, last)
    return last


# --------------------------------------------------------------------------------- bad inputs

def test_corpus_is_large_enough():
    assert len(BAD) + len(SCORED) >= 30 and len(BAD) >= 30
    names = [c.name for c in BAD + SCORED]
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("case", params(BAD))
def test_bad_input_refused_clearly(case: Bad, env, baseline, tmp_path):
    r, g = case_dirs(tmp_path)
    rp, gp = case.make(r, g, case.name, seed_of(case.name))
    culprit = str(rp if case.culprit == "restored" else gp)

    # --on-error fail (the default): exit 2, one line naming the file, nothing on stdout
    res = invoke(env, r, g, *COMMON, "-f", "json")
    assert res.exit_code == 2, (res.exit_code, res.stderr)
    assert res.stdout == ""
    assert res.stderr.count("\n") == 1, res.stderr
    assert_one_line_error(res.stderr, culprit, *case.needles)

    # --on-error skip: still exit 2, the skip is in the document and on stderr, the good pairs
    # are scored exactly as in a clean run
    res = invoke(env, r, g, *COMMON, "-f", "json", "--on-error", "skip")
    assert res.exit_code == 2, (res.exit_code, res.stderr)
    doc = strict_json(res.stdout)
    assert [s["key"] for s in doc["skipped"]] == [case.name]
    skip = doc["skipped"][0]
    assert skip["path"] == culprit and skip["exit_code"] == 2
    assert all(n in skip["reason"] for n in case.needles), skip["reason"]
    assert "\n" not in skip["reason"]
    assert doc["complete"] is False
    assert doc["summary"]["skipped"] == 1 and doc["summary"]["count"] == len(GOODS)
    assert sorted(p["key"] for p in doc["pairs"]) == sorted(GOODS)
    assert_same_as_baseline(doc, baseline)
    assert "Traceback" not in res.stderr
    assert res.stderr.splitlines() == [
        f"Warning: skipped {case.name}: {skip['reason']}",
        "Error: 1 pair(s) skipped: the result is incomplete (pass --allow-skips to accept that)",
    ]


# --------------------------------------------------------------------------------- awkward inputs

@pytest.mark.parametrize("case", params(SCORED))
def test_awkward_input_scored_correctly(case: Scored, env, baseline, ref_model, tmp_path):
    r, g = case_dirs(tmp_path)
    _, _, exp_r, exp_g = case.make(r, g, case.name, seed_of(case.name))
    res = invoke(env, r, g, *COMMON, "-f", "json")
    assert res.exit_code == 0, res.stderr
    assert res.stderr == ""
    doc = strict_json(res.stdout)
    assert doc["complete"] is True and doc["skipped"] == [] and doc["summary"]["count"] == 3
    pair = {p["key"]: p for p in doc["pairs"]}[case.key or case.name]
    assert (pair["width"], pair["height"]) == (exp_g.shape[1], exp_g.shape[0])
    assert pair["size_policy"] is None and "original_sizes" not in pair
    if case.zero:
        assert np.array_equal(exp_r, exp_g)  # the test's own premise
        assert_zero(pair, case.name)
    else:
        assert not np.array_equal(exp_r, exp_g)
        assert_matches_reference(pair, reference(ref_model, exp_r, exp_g), case.name)
    assert_same_as_baseline(doc, baseline)


def test_unreadable_file_is_refused_naming_it(env, baseline, tmp_path, monkeypatch):
    """chmod 000; as root (who reads any file) the open itself is made to fail the same way."""
    import builtins

    r, g = case_dirs(tmp_path)
    rp, _ = unreadable(r, g, "locked", 1)
    if AS_ROOT:
        real_open = builtins.open

        def guarded(file, *args, **kwargs):
            if isinstance(file, (str, os.PathLike)) and os.fspath(file) == str(rp):
                raise PermissionError(13, "Permission denied", str(rp))
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", guarded)
    res = invoke(env, r, g, *COMMON, "-f", "json")
    assert res.exit_code == 2 and res.stdout == ""
    assert_one_line_error(res.stderr, str(rp), "permission denied", "make the file readable")
    res = invoke(env, r, g, *COMMON, "-f", "json", "--on-error", "skip")
    assert res.exit_code == 2
    doc = strict_json(res.stdout)
    assert [(s["key"], s["path"]) for s in doc["skipped"]] == [("locked", str(rp))]
    assert_same_as_baseline(doc, baseline)


def test_sixteen_bit_is_scaled_by_65535_not_its_own_maximum(env, tmp_path):
    """A dark 16-bit image (max 1000) against black: L1 is mean/65535 exactly."""
    r, g = tmp_path / "r", tmp_path / "g"
    r.mkdir(), g.mkdir()
    _, _, exp_r, _ = grey16_dark_vs_black(r, g, "dark", 5)
    doc = strict_json(invoke(env, r, g, *COMMON, "-f", "json").stdout)
    (pair,) = doc["pairs"]
    raw = np.rint(exp_r[..., 0] * 65535).astype(np.int64)
    assert raw.max() <= 1000 and raw.max() > 900
    assert pair["l1"] == pytest.approx(raw.sum() / raw.size / 65535, rel=1e-12)
    assert pair["l1"] < 1000 / 65535  # never stretched to the image's own maximum


# --------------------------------------------------------------------------------- the whole corpus at once

@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, Path, dict]:
    """One directory pair holding every bad and every awkward case plus the good pairs."""
    root = tmp_path_factory.mktemp("corpus")
    r, g = root / "restored", root / "gt"
    write_goods(r, g)
    bad, scored = {}, {}
    for case in BAD:
        if case.skip_if:
            continue
        rp, gp = case.make(r, g, case.name, seed_of(case.name))
        bad[case.name] = (case, str(rp if case.culprit == "restored" else gp))
    for case in SCORED:
        if not case.skip_if:
            scored[case.key or case.name] = (case, *case.make(r, g, case.name, seed_of(case.name)))
    return r, g, {"bad": bad, "scored": scored}


def test_whole_corpus_skip_mode_json(corpus, env, baseline, ref_model):
    r, g, info = corpus
    # --workers 1: decode errors cross the worker-process boundary intact
    res = invoke(env, r, g, *COMMON, "--workers", "1", "-f", "json", "--on-error", "skip")
    assert res.exit_code == 2, res.stderr
    assert "Traceback" not in res.stderr
    doc = strict_json(res.stdout)
    skipped = {s["key"]: s for s in doc["skipped"]}
    assert set(skipped) == set(info["bad"])
    for name, (case, culprit) in info["bad"].items():
        assert skipped[name]["path"] == culprit, name
        assert all(n in skipped[name]["reason"] for n in case.needles), (name, skipped[name]["reason"])
    pairs = {p["key"]: p for p in doc["pairs"]}
    assert set(pairs) == set(info["scored"]) | set(GOODS)
    for key, (case, _, _, exp_r, exp_g) in info["scored"].items():
        if case.zero:
            assert_zero(pairs[key], key)
        else:
            assert_matches_reference(pairs[key], reference(ref_model, exp_r, exp_g), key)
    assert_same_as_baseline(doc, baseline)
    summ = doc["summary"]
    assert summ["skipped"] == len(info["bad"]) and summ["count"] == len(pairs)
    assert doc["complete"] is False
    # stderr: one warning line per skip, then the error
    lines = res.stderr.splitlines()
    warnings = [line for line in lines if line.startswith("Warning: skipped ")]
    assert len(warnings) == len(info["bad"]) == len(lines) - 1
    for name, s in skipped.items():
        assert f"Warning: skipped {name}: {s['reason']}" in warnings
    assert lines[-1].startswith(f"Error: {len(info['bad'])} pair(s) skipped")


def test_whole_corpus_quiet_still_says_why_it_failed(corpus, env):
    r, g, info = corpus
    res = invoke(env, r, g, *COMMON, "-f", "csv", "--on-error", "skip", "--quiet")
    assert res.exit_code == 2
    assert res.stderr.splitlines() == [
        f"Error: {len(info['bad'])} pair(s) skipped: the result is incomplete (pass --allow-skips to accept that)"]


def test_whole_corpus_every_format_lists_every_skip(corpus, env):
    r, g, info = corpus
    args = [r, g, *COMMON, "--on-error", "skip", "--allow-skips"]
    bad = info["bad"]

    res = invoke(env, *args, "-f", "csv")
    assert res.exit_code == 0, res.stderr
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    skipped = {row["key"]: row for row in rows if row["status"] == "skipped"}
    assert set(skipped) == set(bad)
    for name, (case, culprit) in bad.items():
        assert skipped[name]["reason"].startswith(culprit)
        assert all(n in skipped[name]["reason"] for n in case.needles)
        assert skipped[name]["l1"] == skipped[name]["hybrid"] == ""
    assert sum(row["status"] == "ok" for row in rows) == len(info["scored"]) + len(GOODS)

    res = invoke(env, *args, "-f", "jsonl")
    assert res.exit_code == 0
    records = [strict_json(line) for line in res.stdout.splitlines()]
    assert {x["key"] for x in records if x["type"] == "skipped"} == set(bad)
    summary = records[-1]
    assert summary["type"] == "summary" and summary["skipped"] == len(bad) and summary["complete"] is False

    for fmt in ("table", "markdown"):
        res = invoke(env, *args, "-f", fmt)
        assert res.exit_code == 0, (fmt, res.stderr)
        for name in bad:
            assert f"skipped {name}:" in res.stdout or f"skipped `{name}`:" in res.stdout, (fmt, name)
        assert "incomplete" in res.stdout.lower()


# --------------------------------------------------------------------------------- alpha policies

def transparent_cases(r: Path, composite: Path, ignore: Path) -> None:
    """Restored images with real transparency; the expected decode under each policy as gt."""
    def comp(colour, alpha, top):
        return np.round(colour.astype(np.float64) * alpha[..., None] / top).astype(colour.dtype)

    rgba = np.asarray(rgba_transparent(1))
    Image.fromarray(rgba, "RGBA").save(r / "rgba.png")
    save(composite / "rgba.png", comp(rgba[..., :3], rgba[..., 3], 255))
    save(ignore / "rgba.png", rgba[..., :3])

    la = np.asarray(la_transparent(2))
    Image.fromarray(la, "LA").save(r / "la.png")
    save(composite / "la.png", comp(la[..., :1], la[..., 1], 255)[..., 0])
    save(ignore / "la.png", la[..., 0])

    for name, ext in (("palette", ".png"), ("gif", ".gif")):
        img = palette(3)
        img.save(r / f"{name}{ext}", transparency=3)
        with Image.open(r / f"{name}{ext}") as im:
            rgba_p = np.asarray(im.convert("RGBA"))
        assert (rgba_p[..., 3] == 0).any()
        save(composite / f"{name}.png", comp(rgba_p[..., :3], rgba_p[..., 3], 255))
        save(ignore / f"{name}.png", rgba_p[..., :3])

    colour_key(r / "key.png", 4)
    with Image.open(r / "key.png") as im:
        arr = np.asarray(im.convert("RGB"))
    keyed = np.all(arr == (1, 2, 3), axis=2)
    save(composite / "key.png", np.where(keyed[..., None], 0, arr).astype(np.uint8))
    save(ignore / "key.png", arr)

    rgba16_transparent(r / "rgba16.png", 5)
    arr16 = np.dstack([rgb16(5), np.full((SIZE, SIZE), 65535, np.uint16)])
    arr16[5:9, 5:9, 3] = 30000
    write_png(composite / "rgba16.png", comp(arr16[..., :3], arr16[..., 3], 65535))
    write_png(ignore / "rgba16.png", arr16[..., :3])


def test_alpha_policies_composite_and_ignore(env, tmp_path):
    r, comp, ign = tmp_path / "r", tmp_path / "composite", tmp_path / "ignore"
    for d in (r, comp, ign):
        d.mkdir()
    transparent_cases(r, comp, ign)
    res = invoke(env, r, comp, *COMMON, "-f", "json")
    assert res.exit_code == 2 and "transparent pixels" in res.stderr and "--alpha" in res.stderr
    for policy, gt in (("composite", comp), ("ignore", ign)):
        res = invoke(env, r, gt, *COMMON, "-f", "json", "--alpha", policy)
        assert res.exit_code == 0, (policy, res.stderr)
        doc = strict_json(res.stdout)
        assert doc["settings"]["alpha"] == policy
        assert len(doc["pairs"]) == 6
        for p in doc["pairs"]:
            assert_zero(p, f"{policy}:{p['key']}")


# --------------------------------------------------------------------------------- geometry

def test_size_mismatch_policies_recorded_per_pair(env, ref_model, tmp_path):
    r, g = tmp_path / "r", tmp_path / "g"
    write_goods(r, g)
    big, small = rgb(1, SIZE, SIZE + 8), rgb(2, SIZE + 4, SIZE)  # 40x32 restored, 32x36 gt
    save(r / "mis.png", big)
    save(g / "mis.png", small)

    res = invoke(env, r, g, *COMMON, "-f", "json")
    assert res.exit_code == 2
    assert_one_line_error(res.stderr, str(r / "mis.png"), str(g / "mis.png"), "40x32", "32x36")

    doc = strict_json(invoke(env, r, g, *COMMON, "-f", "json", "--size-mismatch", "crop").stdout)
    pairs = {p["key"]: p for p in doc["pairs"]}
    mis = pairs["mis"]
    assert mis["size_policy"] == "crop" and (mis["width"], mis["height"]) == (32, 32)
    assert mis["original_sizes"] == {"restored": [40, 32], "gt": [32, 36]}
    assert_matches_reference(mis, reference(ref_model, f8(big[:32, :32]), f8(small[:32, :32])), "crop")
    for name in GOODS:
        assert pairs[name]["size_policy"] is None and "original_sizes" not in pairs[name]
    assert doc["settings"]["size_mismatch"] == "crop" and doc["complete"] is True

    doc = strict_json(invoke(env, r, g, *COMMON, "-f", "json", "--size-mismatch", "resize-restored").stdout)
    mis = {p["key"]: p for p in doc["pairs"]}["mis"]
    assert mis["size_policy"] == "resize-restored" and (mis["width"], mis["height"]) == (32, 36)
    assert mis["original_sizes"] == {"restored": [40, 32], "gt": [32, 36]}
    assert 0 < mis["l1"] < 1 and mis["hybrid"] > mis["l1"]

    for policy in ("crop", "resize-restored"):
        res = invoke(env, r, g, *COMMON, "-f", "csv", "--size-mismatch", policy)
        assert res.exit_code == 0
        rows = {row["key"]: row for row in csv.DictReader(io.StringIO(res.stdout))}
        assert rows["mis"]["size_policy"] == policy
        assert rows["good_a"]["size_policy"] == ""


@pytest.mark.parametrize("layer,side", [("conv1_2", 1), ("conv2_2", 2), ("conv3_3", 4), ("conv4_3", 8),
                                        ("conv5_4", 16)])
def test_too_small_names_the_minimum_size(env, tmp_path, layer, side):
    r, g = tmp_path / "r", tmp_path / "g"
    common = ["--layers", layer, "--workers", "0", "-f", "json"]
    if side > 1:
        save(r / "x.png", rgb(1, side - 1, side + 3))
        save(g / "x.png", rgb(2, side - 1, side + 3))
        res = invoke(env, r, g, *common)
        assert res.exit_code == 2
        assert_one_line_error(res.stderr, f"at least {side}x{side}", f"{side + 3}x{side - 1}", str(g / "x.png"),
                              "--layers")
    save(r / "x.png", rgb(1, side, side))
    save(g / "x.png", rgb(2, side, side))
    res = invoke(env, r, g, *common)
    assert res.exit_code == 0, res.stderr
    assert strict_json(res.stdout)["pairs"][0]["hybrid"] > 0


# --------------------------------------------------------------------------------- pairing (whole-run errors)

def _dup_stem(r, g):
    save(r / "dup.png", rgb(1))
    save(r / "dup.jpg", rgb(1))
    save(g / "dup.png", rgb(1))
    return [r, g], [str(r / "dup.jpg"), str(r / "dup.png"), "same name"]


def _dup_unicode(r, g):
    save(r / unicodedata.normalize("NFC", "café.png"), rgb(1))
    save(r / unicodedata.normalize("NFD", "café.png"), rgb(1))
    save(g / "café.png", rgb(1))
    return [r, g], [str(r / unicodedata.normalize("NFC", "café.png")),
                    str(r / unicodedata.normalize("NFD", "café.png"))]


def _dup_case_ext(r, g):
    save(r / "x.png", rgb(1))
    save(r / "x.PNG", rgb(1))
    save(g / "x.png", rgb(1))
    if len(list(r.iterdir())) < 4:
        pytest.skip("case-insensitive file system")
    return [r, g], [str(r / "x.PNG"), str(r / "x.png")]


def _restored_only(r, g):
    save(r / "extra.png", rgb(1))
    return [r, g], [str(r / "extra.png"), "no ground-truth file", "--allow-missing"]


def _gt_only(r, g):
    save(g / "extra.tif", rgb(1))
    save(g / "more.png", rgb(1))
    return [r, g], [str(g / "extra.tif"), "2 files without a partner", "--allow-missing"]


def _directory_named_like_image(r, g):
    (r / "folder.png").mkdir()
    save(g / "folder.png", rgb(1))
    return [r, g], [str(g / "folder.png"), "no restored file"]


def _dangling_symlink(r, g, tmp_path=None):
    (r / "gone.png").symlink_to(r.parent / "nowhere.png")
    save(g / "gone.png", rgb(1))
    return [r, g], [str(g / "gone.png"), "no restored file"]


def _empty_dir(r, g):
    empty = r.parent / "empty"
    empty.mkdir()
    return [empty, g], [str(empty), "no images found"]


def _only_hidden(r, g):
    hidden = r.parent / "hidden"
    save(hidden / ".x.png", rgb(1))
    save(hidden / "._good_a.png", rgb(1))
    (hidden / "notes.txt").write_text("x")
    return [r, hidden], [str(hidden), "no images found"]


def _subdirs_without_recursive(r, g):
    nested = r.parent / "nested"
    save(nested / "sub" / "good_a.png", rgb(1))
    return [nested, g], [str(nested), "--recursive"]


def _file_and_directory(r, g):
    return [r / "good_a.png", g], [str(r / "good_a.png"), str(g), "both be directories or both be files"]


def _nonexistent(r, g):
    return [r.parent / "nope", g], [str(r.parent / "nope"), "does not exist"]


def _manifest_missing_file(r, g):
    m = r.parent / "pairs.csv"
    m.write_text(f"restored,gt\n{r / 'good_a.png'},{g / 'good_a.png'}\n{r / 'ghost.png'},{g / 'good_b.png'}\n")
    return ["--pairs", m], [str(r / "ghost.png"), "line 3", "does not exist"]


def _manifest_directory(r, g):
    m = r.parent / "pairs.csv"
    m.write_text(f"{r},{g / 'good_a.png'}\n")
    return ["--pairs", m], [str(r), "line 1", "is not a file"]


def _manifest_bad_row(r, g):
    m = r.parent / "pairs.csv"
    m.write_text(f"{r / 'good_a.png'};{g / 'good_a.png'}\n")
    return ["--pairs", m], [str(m), "line 1", "1 column"]


def _manifest_duplicate_row(r, g):
    m = r.parent / "pairs.csv"
    row = f"{r / 'good_a.png'},{g / 'good_a.png'}\n"
    m.write_text(row + row)
    return ["--pairs", m], [str(m), "line 2 repeats the pair on line 1"]


def _manifest_empty(r, g):
    m = r.parent / "pairs.csv"
    m.write_text("restored,gt\n# nothing\n")
    return ["--pairs", m], [str(m), "lists no pairs"]


WHOLE_RUN = [_dup_stem, _dup_unicode, _dup_case_ext, _restored_only, _gt_only, _directory_named_like_image,
             _dangling_symlink, _empty_dir, _only_hidden, _subdirs_without_recursive, _file_and_directory,
             _nonexistent, _manifest_missing_file, _manifest_directory, _manifest_bad_row,
             _manifest_duplicate_row, _manifest_empty]


@pytest.mark.parametrize("make", WHOLE_RUN, ids=[f.__name__.strip("_") for f in WHOLE_RUN])
def test_whole_run_input_errors(make, env, tmp_path):
    """Problems with the set of files, not one pair: exit 2 whatever --on-error says."""
    r, g = case_dirs(tmp_path)
    args, needles = make(r, g)
    for mode in ("fail", "skip"):
        res = invoke(env, *args, *COMMON, "-f", "json", "--on-error", mode)
        assert res.exit_code == 2, (mode, res.stderr)
        assert res.stdout == ""
        assert_one_line_error(res.stderr, *needles)


def test_hidden_and_appledouble_files_are_skipped_and_counted(env, baseline, tmp_path):
    r, g = case_dirs(tmp_path)
    junk = [r / ".hidden.png", r / "._good_a.png", g / "._good_b.png", g / ".DS_Store", g / "notes.txt",
            r / "Thumbs.db"]
    for path in junk:
        path.write_bytes(b"\x00\x05\x16\x07 AppleDouble junk")
    doc = strict_json(invoke(env, r, g, *COMMON, "-f", "json").stdout)
    assert sorted(doc["ignored"]) == sorted(map(str, junk))
    assert doc["summary"]["ignored"] == len(junk) and doc["summary"]["skipped"] == 0
    assert doc["complete"] is True
    assert_same_as_baseline(doc, baseline)


def test_recursive_keys_by_relative_path_and_survives_symlink_loops(env, baseline, tmp_path):
    r, g = tmp_path / "r", tmp_path / "g"
    for root, make in ((r, lambda a, s: degrade(a, s)), (g, lambda a, s: a)):
        for i, key in enumerate(("a/x", "b/x", "b/c/y")):
            save(root / f"{key}.png", make(rgb(200 + i), 200 + i))
    (r / "b" / "c" / "up").symlink_to(r / "b", target_is_directory=True)  # a loop
    (r / "loop").symlink_to(r, target_is_directory=True)  # another loop
    (g / "b" / "c" / "back").symlink_to(g, target_is_directory=True)
    res = invoke(env, r, g, *COMMON, "-f", "json", "-r")
    assert res.exit_code == 0, res.stderr
    doc = strict_json(res.stdout)
    assert [p["key"] for p in doc["pairs"]] == ["a/x", "b/c/y", "b/x"]
    assert all(p["l1"] > 0 for p in doc["pairs"])
    # a symlink to a sibling is not a loop: its files are listed by the path they are reached by
    (r / "alias").symlink_to(r / "a", target_is_directory=True)
    res = invoke(env, r, g, *COMMON, "-f", "json", "-r")
    assert res.exit_code == 2
    assert_one_line_error(res.stderr, str(r / "alias" / "x.png"), "no ground-truth file")
    save(g / "alias" / "x.png", rgb(200))
    doc = strict_json(invoke(env, r, g, *COMMON, "-f", "json", "-r").stdout)
    by_key = {p["key"]: p for p in doc["pairs"]}
    assert by_key["alias/x"]["l1"] == by_key["a/x"]["l1"]


def test_manifest_pairs_non_mirrored_layouts(env, baseline, tmp_path):
    """--pairs FILE: restored and gt in unrelated layouts, paths relative to the manifest."""
    goods = tmp_path / "goods"
    write_goods(goods / "r", goods / "g")
    out = tmp_path / "runs" / "model-7" / "epoch 3"
    ref = tmp_path / "datasets" / "val" / "hr"
    (out / "nested").mkdir(parents=True)
    ref.mkdir(parents=True)
    (out / "nested" / "pred_0001.png").write_bytes((goods / "r" / "good_a.png").read_bytes())
    (out / "b, final.png").write_bytes((goods / "r" / "good_b.png").read_bytes())
    (ref / "0001.png").write_bytes((goods / "g" / "good_a.png").read_bytes())
    (ref / "0002.png").write_bytes((goods / "g" / "good_b.png").read_bytes())
    lists = tmp_path / "lists"
    lists.mkdir()
    manifest = lists / "pairs.csv"
    manifest.write_text(
        "restored,gt\n"
        "# model 7 against the validation set\n"
        "../runs/model-7/epoch 3/nested/pred_0001.png,../datasets/val/hr/0001.png\n"
        f"\"{out / 'b, final.png'}\",{ref / '0002.png'}\n", encoding="utf-8")
    res = invoke(env, "--pairs", manifest, *COMMON, "-f", "json")
    assert res.exit_code == 0, res.stderr
    doc = strict_json(res.stdout)
    pairs = {p["key"]: p for p in doc["pairs"]}
    assert set(pairs) == {"pred_0001", "b, final"}
    assert pairs["pred_0001"]["gt"] == str(lists / "../datasets/val/hr/0001.png")
    assert_same_as_baseline({"pairs": [{**pairs["pred_0001"], "key": "good_a"},
                                       {**pairs["b, final"], "key": "good_b"}]}, baseline)
    assert doc["settings"]["inputs"] == {"pairs": str(manifest)}

    # a broken file listed in the manifest: refused, or skipped and listed
    (ref / "0003.png").write_bytes(b"")
    (out / "3.png").write_bytes((goods / "r" / "good_a.png").read_bytes())
    with manifest.open("a", encoding="utf-8") as fh:
        fh.write("../runs/model-7/epoch 3/3.png,../datasets/val/hr/0003.png\n")
    res = invoke(env, "--pairs", manifest, *COMMON, "-f", "json")
    assert res.exit_code == 2
    assert_one_line_error(res.stderr, str(lists / "../datasets/val/hr/0003.png"), "file is empty")
    res = invoke(env, "--pairs", manifest, *COMMON, "-f", "json", "--on-error", "skip")
    assert res.exit_code == 2
    doc = strict_json(res.stdout)
    assert [s["key"] for s in doc["skipped"]] == ["3"] and doc["summary"]["count"] == 2


# --------------------------------------------------------------------------------- numerics and environment

@pytest.fixture(scope="module")
def nan_weights(state_dict, tmp_path_factory) -> Path:
    import torch

    sd = {k: v.clone() for k, v in state_dict.items()}
    sd["features.5.bias"][3] = float("nan")  # conv2_1: every later feature is NaN
    path = tmp_path_factory.mktemp("nan") / "vgg19-nan.pth"
    torch.save(sd, path)
    return path


def test_non_finite_scores_are_exit_3_and_never_written(env, nan_weights, tmp_path):
    r, g = case_dirs(tmp_path)
    args = [r, g, *COMMON, "--weights", nan_weights]
    for mode in ("fail", "skip"):
        res = invoke(env, *args, "-f", "json", "--on-error", mode)
        assert res.exit_code == 3, res.stderr
        assert res.stdout == ""
        assert_one_line_error(res.stderr, "not finite", str(r / "good_a.png"))
    out = tmp_path / "scores.json"
    res = invoke(env, *args, "-o", out)
    assert res.exit_code == 3 and not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    res = invoke(env, *args, "-f", "jsonl")
    assert res.exit_code == 3
    records = [strict_json(line) for line in res.stdout.splitlines()]  # every line strict JSON
    assert records[0]["type"] == "header" and records[-1]["type"] == "aborted"
    assert records[-1]["exit_code"] == 3 and "not finite" in records[-1]["error"]
    assert all(x["type"] != "pair" for x in records)
    res = invoke(env, *args, "-f", "csv")
    assert res.exit_code == 3 and "nan" not in res.stdout.lower()


def test_json_writer_refuses_non_finite_numbers():
    from hlcli.render.common import dumps_strict

    for bad in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(ValueError):
            dumps_strict({"x": bad})


def test_absent_mps_is_exit_3(env, tmp_path):
    import torch

    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        pytest.skip("this machine has MPS")
    r, g = case_dirs(tmp_path)
    res = invoke(env, r, g, *COMMON, "--device", "mps", "-f", "json")
    assert res.exit_code == 3 and res.stdout == ""
    assert_one_line_error(res.stderr, "MPS is not available", "--device cpu")


def test_library_has_no_assert_statements():
    """Input validation must survive ``python -O``: no ``assert`` anywhere in hlcli/."""
    import ast

    offenders = []
    for path in sorted((ROOT / "hlcli").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Assert):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def test_library_input_errors_are_typed_under_python_dash_O(tmp_path):
    """The importable API raises InputError (exit code 2), never AssertionError, even with -O."""
    bad = tmp_path / "x.png"
    bad.write_bytes(b"junk")
    code = (
        "import sys\n"
        "from hlcli.errors import InputError\n"
        "from hlcli import images, pairing, scoring as runner\n"
        "calls = [lambda: images.decode(sys.argv[1]), lambda: images.probe(sys.argv[1]),\n"
        "         lambda: images.decode(sys.argv[1], alpha='maybe'),\n"
        "         lambda: pairing.find_pairs(sys.argv[1] + '-nope', sys.argv[1]),\n"
        "         lambda: runner.validate_options(runner.ScoreOptions(batch_size=0)),\n"
        "         lambda: runner.validate_options(runner.ScoreOptions(size_mismatch='stretch')),\n"
        "         lambda: runner.validate_options(runner.ScoreOptions(layers=('conv9_9',))),\n"
        "         lambda: runner.score_pairing(pairing.Pairing(pairs=[]), runner.ScoreOptions())]\n"
        "for call in calls:\n"
        "    try:\n"
        "        call()\n"
        "    except InputError as err:\n"
        "        print(type(err).__name__, err.exit_code, err.render().count(chr(10)))\n"
    )
    r = subprocess.run([sys.executable, "-O", "-c", code, str(bad)], capture_output=True, text=True,
                       cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["InputError 2 0"] * 8


# --------------------------------------------------------------------------------- real processes: warnings, Ctrl-C, pipes

@pytest.fixture(scope="module")
def proc_env(env) -> dict[str, str]:
    """Environment of a real ``hlcli`` process (sharing the module's warm weights cache)."""
    return {**os.environ, **env}


@pytest.fixture(scope="module")
def many_pairs(tmp_path_factory) -> tuple[Path, Path]:
    """300 small pairs with long names: a run long enough to interrupt, and every format's
    output larger than a pipe's buffer (64 KiB), so that `| head -1` really closes it early."""
    root = tmp_path_factory.mktemp("many")
    a = rgb(1, 48, 48)
    rb, gb = encode(degrade(a, 1), "PNG"), encode(a, "PNG")
    for d, blob in ((root / "r", rb), (root / "g", gb)):
        d.mkdir()
        for i in range(300):
            (d / f"p{i:04d}_{'x' * 120}.png").write_bytes(blob)
    return root / "r", root / "g"


def test_pillow_bomb_warning_does_not_leak_to_stderr(proc_env, tmp_path):
    """Images over Pillow's warning threshold but under --max-pixels: no Python warning."""
    r, g = case_dirs(tmp_path)
    save(r / "big.png", rgb(3, 40, 40))  # 1600 pixels: Pillow warns above 1000 (set below)
    save(g / "big.png", rgb(4, 40, 40))
    code = ("import sys\n"
            "from PIL import Image\n"
            "Image.MAX_IMAGE_PIXELS = 1000\n"
            "from hlcli.cli import main\n"
            "main()\n")
    for workers in ("0", "1"):
        res = subprocess.run(
            [sys.executable, "-c", code, "score", str(r), str(g), "--layers", "conv2_2", "--workers", workers,
             "-f", "csv"], capture_output=True, text=True, cwd=ROOT, timeout=120, env=proc_env)
        assert res.returncode == 0, res.stderr
        assert res.stderr == "", res.stderr
        assert "big," in res.stdout


def test_ctrl_c_exits_130_without_traceback_or_half_file(proc_env, many_pairs, tmp_path):
    r, g = many_pairs
    base = [sys.executable, "-m", "hlcli", "score", str(r), str(g), "--layers", "conv4_3", "--batch-size", "1",
            "--workers", "1"]
    env = proc_env

    # to stdout: interrupt once the first pair has been streamed
    proc = subprocess.Popen([*base, "-f", "jsonl"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT, env=env, start_new_session=True)
    try:
        for line in proc.stdout:
            if '"type": "pair"' in line:
                break
        os.killpg(proc.pid, signal.SIGINT)  # like Ctrl-C: the whole process group
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert err.splitlines()[-1] == "Interrupted."

    # to a file: nothing is left behind, not even the temporary file
    out = tmp_path / "out" / "scores.jsonl"
    out.parent.mkdir()
    proc = subprocess.Popen([*base, "-o", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not any(p.stat().st_size > 0 for p in out.parent.iterdir()):
            assert proc.poll() is None and time.monotonic() < deadline, "finished before it could be interrupted"
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "Traceback" not in err, err
    assert list(out.parent.iterdir()) == []


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "table"])
def test_head_dash_1_gives_no_traceback(proc_env, many_pairs, fmt):
    r, g = many_pairs
    cmd = (f"{sys.executable} -m hlcli score '{r}' '{g}' --layers conv1_1 -f {fmt} --workers 0 | head -1; "
           "echo rc=${PIPESTATUS[0]}")
    res = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=120, env=proc_env)
    assert "Traceback" not in res.stderr and "Exception ignored" not in res.stderr, res.stderr
    assert "Error" not in res.stderr, res.stderr
    lines = res.stdout.splitlines()
    assert len(lines) == 2 and lines[1] == "rc=141", res.stdout  # the pipe really was closed early
