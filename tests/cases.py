"""Input cases for the end-to-end tests, each generated in ``tmp_path`` next to two good pairs:

* ``BAD``: malformed or unscorable files that must be refused clearly (exit 2, one ``Error:`` line
  naming the file, or a listed skip with ``--on-error skip``);
* ``SCORED``: awkward but valid files that must be scored, with the decode each must give as
  float64 RGB in [0, 1] (checked against ``tests/reference.py``'s independent computation);

and the helpers and module-scoped fixtures the tests share: ``env`` (CliRunner environment with the
seeded random weights), ``ref_model``, ``baseline`` (the good pairs alone, checked against the
reference). Test modules import the fixtures they use from here.
"""

from __future__ import annotations

import io
import json
import os
import struct
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

from .conftest import degrade, save, textured
from .imagefiles import chunk, exif_bytes, write_png
from .reference import reference_model, reference_scores
from .schemas import validate_score

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
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(idat))
            + chunk(b"IEND", b""))


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


def score(*args, **kw):
    """``hlcli score ARGS`` through Click's runner (stdout and stderr apart)."""
    return CliRunner().invoke(cli, ["score", *map(str, args)], **kw)


def ok_json(*args):
    """The JSON document of a ``hlcli score ARGS`` that must succeed."""
    r = score(*args, "-f", "json")
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)


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


@pytest.fixture
def dir_doc(cli_env, pair_dirs):
    """The JSON document of the pair_dirs run, for comparison with other ways of scoring it."""
    restored, gt = pair_dirs
    res = CliRunner().invoke(cli, ["score", str(restored), str(gt), "-f", "json", "--workers", "0"])
    assert res.exit_code == 0, res.stderr
    return validate_score(res.stdout)
