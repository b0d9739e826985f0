"""Decode image files into exact integer RGB arrays (numpy + Pillow only, no torch).

:func:`decode` returns an ``H x W x 3`` C-contiguous array of the file's own sample values:
``uint8`` for 8-bit sources, ``uint16`` for 16-bit ones; :func:`to_float` scales by the dtype's
maximum (255 or 65535), never by the image's own. :func:`probe` reads the header only. All are
module-level functions, safe to use in DataLoader worker processes.

Policies (each refusal is an :class:`~hlcli.errors.InputError` naming the file and the fix):

* **Broken files** (empty, truncated, corrupt, not an image) are refused; truncated data is never
  padded (``ImageFile.LOAD_TRUNCATED_IMAGES`` is left alone), nor is an image whose data (TIFF
  strips...) does not cover it. Multi-frame files are refused.
* **Every exception** raised while reading a file (by Pillow, a plugin, numpy, zlib, ...) is
  that file's :class:`InputError`, the original chained as its ``__cause__``; only
  ``KeyboardInterrupt``, ``MemoryError`` and hlcli's own errors pass through unchanged (a plugin
  that is installed but fails to import is an :class:`HlcliEnvironmentError`).
* **Warnings** that Pillow (or numpy) raises while reading a file, and the warnings and errors
  Pillow logs, are caught for the calling thread only (:func:`hlcli.inputs.diagnostics.capture`) and
  replaced by at most one :class:`~hlcli.errors.InputWarning` ``"<path>: <what>"`` per call,
  none if the file is refused. Filters still apply first (``error`` makes the file refused).
* **Size**: ``width * height > max_pixels`` is refused from the header, before decoding. The
  default is Pillow's own hard limit, 2 * ``Image.MAX_IMAGE_PIXELS``; ``None`` disables it. If
  Pillow's global bomb check stops an image we accept, the file is reopened with that check off
  for this call only (under a lock, then restored). Pillow's ``DecompressionBombWarning`` for
  the 89-179 MP images the default accepts becomes an ``InputWarning`` (``hlcli score``
  ignores it).
* **Orientation**: EXIF (or XMP) orientation is applied; :func:`probe` reports the oriented size.
* **Grey** is repeated into three identical channels.
* **16 bits**: grey PNG/TIFF/PGM are read natively. Pillow 13 keeps only the high bytes of
  16-bit RGB(A) and grey+alpha PNG/TIFF, so those are decoded again with a rawmode yielding the
  low bytes and recombined exactly; 16-bit binary PPM is read from its raw bytes. Other 16-bit
  colour (SGI, CMYK, plain PPM) is refused rather than cut to 8 bits. Pillow's JPEG 2000 and
  AVIF codecs (and the HEIF plugin, by default) return high-bit-depth colour as 8 bits, which
  the header does not reveal.
* **Alpha** (RGBA, LA, PA, palette or colour-key transparency) is dropped silently if every
  pixel is opaque. Otherwise ``alpha="error"`` refuses, ``"ignore"`` drops it, ``"composite"``
  composites over **black**, ``round(colour * alpha / max)`` in the same dtype (premultiplied
  colour: no guess about the background of the other image is needed).
* **CMYK** goes to sRGB through its embedded ICC profile (LittleCMS), or is refused without one.
  ``F`` (float) and ``LAB`` are refused. ICC profiles of RGB/grey images are not applied.
* **Plugins**: ``.heic``/``.heif`` (pillow-heif) and ``.jxl`` (pillow-jxl-plugin) are read
  through their Pillow plugin, imported and registered on first use; without it they are refused
  with the package to install.

This module opens files and reads and checks headers; the conversion of the samples (16-bit
recovery, modes, alpha, orientation) is in :mod:`hlcli.inputs.pixels`.
"""

from __future__ import annotations

import importlib
import io
import os
import struct
import threading
import warnings
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

import numpy as np
from PIL import Image, UnidentifiedImageError, features

from . import diagnostics
from . import pixels
from ..errors import HlcliEnvironmentError, HlcliError, InputError
from .pixels import LOW_BYTES, scale_of

try:
    from PIL import ImageCms
except ImportError:  # Pillow built without LittleCMS
    ImageCms = None  # type: ignore[assignment]

ALPHA_POLICIES = ("error", "composite", "ignore")
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    ".png .jpg .jpeg .jpe .bmp .tif .tiff .webp .ppm .pgm .pbm .pnm .gif .tga .jp2 .j2k .avif"
    " .heic .heif .jxl".split()
)
#: Pillow's hard decompression-bomb limit (2 * 89,478,485 pixels, e.g. 16384 x 10922).
DEFAULT_MAX_PIXELS = 178_956_970

_ORIENTATION_TAG = 0x0112
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error,
                  *((ImageCms.PyCMSError,) if ImageCms is not None else ()))
# Extension -> (PIL.features name, library) for codecs a Pillow build may lack.
_CODECS = {".avif": ("avif", "libavif"), ".webp": ("webp", "libwebp"),
           ".jp2": ("jpg_2000", "OpenJPEG"), ".j2k": ("jpg_2000", "OpenJPEG")}
# Formats Pillow reads only through a third-party plugin, loaded on first use when installed:
# extension -> (module, pip package, registration function, or None if importing registers it).
_PLUGINS = {".heic": ("pillow_heif", "pillow-heif", "register_heif_opener"),
            ".heif": ("pillow_heif", "pillow-heif", "register_heif_opener"),
            ".jxl": ("pillow_jxl", "pillow-jxl-plugin", None)}
_PLUGINS_LOADED: set[str] = set()
_MODES = {"1", "L", "P", "PA", "LA", "RGB", "RGBA", "RGBX", "YCbCr", "HSV", "CMYK",
          "I", "I;16", "I;16L", "I;16B", "I;16N"}
_REFUSED_MODES = {"F": "floating-point image (mode F)", "LAB": "CIELAB image (mode LAB)"}
# 16-bit rawmodes Pillow unpacks to their high bytes -> the rawmode giving the low bytes instead.
_WIDE_CODECS = {"zip", "raw", "libtiff"}  # decoders verified to pass the rawmode through
_LIMIT_LOCK = threading.Lock()
_BIG_READ = 1 << 20  # reads larger than this are capped at what the file holds (see _File)
_FIX_CORRUPT = ("the file is corrupt or uses a feature Pillow cannot read: check or re-export it "
                "(--on-error skip scores the other pairs)")


@dataclass(frozen=True)
class ImageInfo:
    """What the header says. ``width``/``height`` are after EXIF orientation."""

    path: str
    width: int
    height: int
    mode: str  # Pillow mode as opened, e.g. "RGB", "I;16", "P"
    format: str | None  # Pillow format, e.g. "PNG"
    bit_depth: int  # 8 or 16: the dtype decode() returns is uint8 or uint16


class _Header(NamedTuple):
    info: ImageInfo
    orientation: int
    rawmode: str | None


def probe(path: str | os.PathLike[str], *,
          max_pixels: int | None = DEFAULT_MAX_PIXELS) -> ImageInfo:
    """Read an image's header (no pixel decoding) and check it is decodable; see module doc."""
    return _run(path, max_pixels, lambda img, header: header.info)


def decode(path: str | os.PathLike[str], *, alpha: str = "error",
           max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode to an oriented ``H x W x 3`` uint8/uint16 array (unscaled); see module doc.

    ``alpha`` is one of :data:`ALPHA_POLICIES`; ``"composite"`` composites over black.
    """
    if alpha not in ALPHA_POLICIES:
        raise InputError(f"unknown alpha policy {alpha!r}",
                         fix="use one of: " + ", ".join(ALPHA_POLICIES))
    return _run(path, max_pixels, lambda img, header: _decode_opened(img, header, path, alpha))


def _decode_opened(img: Image.Image, header: _Header, path, policy: str) -> np.ndarray:
    """The pixels of an opened image (see :mod:`hlcli.inputs.pixels`), oriented, 3 channels."""
    return pixels.decoded(img, header.rawmode, header.info.bit_depth, header.orientation,
                          (header.info.height, header.info.width), path, policy, reopen=_open)


def to_float(arr: np.ndarray, dtype: Any = np.float32) -> np.ndarray:
    """Scale a decoded array to ``[0, 1]`` by its dtype's maximum (never by the image's own)."""
    if not np.issubdtype(np.dtype(dtype), np.floating):
        raise TypeError(f"dtype must be a floating type, got {np.dtype(dtype)}")
    scale = np.dtype(dtype).type(scale_of(arr))
    out = arr.astype(dtype)
    out /= scale
    return out


# --- opening and header checks ------------------------------------------------------------------

@contextmanager
def _pillow_limit_lifted():
    """Disable Pillow's global bomb check for one call; we apply ``max_pixels`` ourselves."""
    with _LIMIT_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _run(path, max_pixels: int | None, work: Callable[[Image.Image, _Header], Any]) -> Any:
    """Open ``path`` and do ``work``: every exception but hlcli's own, ``KeyboardInterrupt`` and
    ``MemoryError`` becomes an :class:`InputError` for this file, and the warnings raised while
    reading it become at most one :class:`InputWarning` (none if the file is refused)."""
    valid = isinstance(max_pixels, (int, np.integer)) and not isinstance(max_pixels, bool)
    if max_pixels is not None and not (valid and max_pixels >= 1):
        raise InputError(f"invalid max_pixels {max_pixels!r}", fix="pass a positive integer")
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext in _PLUGINS:
        _load_plugin(ext)
    with diagnostics.capture() as caught:
        result = _attempt(path, max_pixels, work)
    if caught:
        warnings.warn(diagnostics.input_warning(path, caught), stacklevel=3)  # at probe's caller
    return result


def _attempt(path, max_pixels: int | None, work: Callable[[Image.Image, _Header], Any], *,
             lifted: bool = False) -> Any:
    try:
        with _pillow_limit_lifted() if lifted else nullcontext(), _open(path) as img:
            return work(img, _read_header(img, path, max_pixels))
    except HlcliError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        if lifted:  # unreachable: Pillow's check is off
            raise InputError("image too large", path, "pass a larger --max-pixels") from None
    except (FileNotFoundError, NotADirectoryError):
        raise InputError("no such file", path, "check the path") from None
    except IsADirectoryError:
        raise InputError("is a directory, not an image file", path, "pass an image file") from None
    except PermissionError:
        raise InputError("permission denied", path, "make the file readable") from None
    except UnidentifiedImageError as err:
        raise _unidentified(path) from err
    except _DECODE_ERRORS as err:
        raise InputError(f"cannot decode image: {_text(err)}", path,
                         "the file is truncated or corrupt; re-export or re-download it") from err
    except MemoryError:
        raise
    except Exception as exc:  # whatever else Pillow, a plugin or numpy raise on a broken file
        raise InputError(f"cannot decode image ({_describe(exc)})", path, _FIX_CORRUPT) from exc
    # Pillow's own bomb check stopped it: retry without that; our max_pixels check still applies.
    return _attempt(path, max_pixels, work, lifted=True)


def _text(exc: BaseException) -> str:
    """An exception's message on one line, at most 200 characters (else its type's name)."""
    text = " ".join(str(exc).split())
    return (text if len(text) <= 200 else text[:197] + "...") or type(exc).__name__


class _File(io.BufferedReader):
    """The file Pillow reads from: ``read(n)`` never asks for more than the file holds. A corrupt
    length field (a JPEG 2000 box of 2**62 bytes) would make ``read`` allocate that much before
    reading, a ``MemoryError`` that says nothing about the machine; a read cut short at the end
    of the file is what ``read`` returns anyway, and Pillow treats it as truncation."""

    def read(self, size: int | None = -1, /) -> bytes:
        if size is not None and size > _BIG_READ:
            size = max(0, min(size, os.fstat(self.fileno()).st_size - self.tell()))
        return super().read(size)


@contextmanager
def _open(path):
    with _File(io.FileIO(path, "rb")) as fp, Image.open(fp) as img:
        yield img


def _describe(exc: BaseException) -> str:
    """``TypeError: Missing dimensions``: the type and the message, on one line."""
    text = _text(exc)
    return type(exc).__name__ if text == type(exc).__name__ else f"{type(exc).__name__}: {text}"


def _check_size(img: Image.Image, path, max_pixels: int | None) -> None:
    w, h = img.size
    if max_pixels is not None and w * h > max_pixels:
        raise InputError(f"image has {w}x{h} = {w * h} pixels, more than the limit of {max_pixels} "
                         "(decompression-bomb guard)", path,
                         f"if the image is legitimate, pass --max-pixels {w * h} (or more)")


def _load_plugin(ext: str) -> bool:
    """Import and register the Pillow plugin for ``ext`` (once); False if it is not installed."""
    module, _, register = _PLUGINS[ext]
    if module not in _PLUGINS_LOADED:
        try:
            plugin = importlib.import_module(module)
        except ImportError:
            return False
        except Exception as exc:  # installed but broken: the environment's problem, not a file's
            raise _broken_plugin(ext, exc) from exc
        if register:
            try:
                getattr(plugin, register)()
            except Exception as exc:
                raise _broken_plugin(ext, exc) from exc
        _PLUGINS_LOADED.add(module)
    return True


def _broken_plugin(ext: str, exc: Exception) -> HlcliEnvironmentError:
    package = _PLUGINS[ext][1]
    return HlcliEnvironmentError(f"the {package} plugin for {ext} images fails to load "
                                 f"({_describe(exc)})",
                                 fix=f"reinstall it: pip install --force-reinstall {package}")


def _unidentified(path) -> InputError:
    ext = os.path.splitext(os.fspath(path))[1].lower()
    try:
        empty = os.path.getsize(path) == 0
    except OSError:
        empty = False
    if empty:
        return InputError("file is empty", path, "re-export or replace the image")
    if ext in _CODECS and not features.check(_CODECS[ext][0]):
        name, lib = _CODECS[ext]
        return InputError(f"this Pillow cannot read {ext} images (built without {name} support)",
                          path, f"install a Pillow built with {lib} (recent official wheels "
                          "include it), or convert the image to PNG")
    if ext in _PLUGINS and not _load_plugin(ext):
        package = _PLUGINS[ext][1]
        return InputError(f"Pillow cannot read {ext} images without the {package} plugin", path,
                          f"pip install {package} (hlcli loads it by itself), or convert the "
                          "image to PNG")
    return InputError("not a readable image (unknown format or corrupt header)", path,
                      "check that the file is a valid image, e.g. PNG, JPEG or TIFF")


def _read_header(img: Image.Image, path, max_pixels: int | None) -> _Header:
    _check_size(img, path, max_pixels)
    mode, tiles = img.mode, img.tile
    if getattr(img, "n_frames", 1) > 1 and img.format != "MPO":  # MPO: frame 0 is the main image
        raise InputError(f"multi-frame image ({img.n_frames} frames)", path,
                         "extract the frame to score into its own file")
    _check_coverage(img, tiles, path)
    args = tiles[0][3] if tiles else None  # tiles: (codec, extents, offset, args), by position
    rawmode = args[0] if isinstance(args, tuple) and args else args
    rawmode = rawmode if isinstance(rawmode, str) else None
    codec = tiles[0][0] if tiles else None  # (a NamedTuple only since Pillow 11)
    depth = 8
    if mode.startswith("I"):
        depth = 16
    elif rawmode is not None and ";16" in rawmode:
        depth = 16
        if (rawmode not in LOW_BYTES and rawmode != "LA;16B") or codec not in _WIDE_CODECS:
            raise InputError(f"16-bit {mode} data ({img.format}, {rawmode}) cannot be decoded "
                             "without losing precision", path, "convert it to 16-bit RGB PNG/TIFF")
    elif codec in ("ppm", "ppm_plain") and isinstance(args, tuple) and args[1:] and args[1] > 255:
        depth = 16
        if mode != "RGB" or codec != "ppm" or len(tiles) != 1:
            raise InputError("16-bit plain-text PPM cannot be decoded without losing precision",
                             path, "convert it to a 16-bit PNG or binary PPM")
    if mode not in _MODES:
        raise InputError(f"{_REFUSED_MODES.get(mode, 'image mode ' + mode)} is not supported", path,
                         "convert it to an 8- or 16-bit RGB or greyscale PNG or TIFF")
    if mode == "CMYK" and (ImageCms is None or not img.info.get("icc_profile")):
        what = ("and this Pillow lacks LittleCMS" if img.info.get("icc_profile")
                else "without an ICC profile")
        raise InputError(f"CMYK image {what}", path, "convert it to RGB first, with its profile")
    if mode == "CMYK":
        _check_cmyk_profile(img.info["icc_profile"], path)
    orientation, (w, h) = _orientation(img), img.size
    if img.format == "TIFF":  # Pillow transposes TIFFs itself when loading them (and since 11.0
        w, h = img.tag_v2.get(256, w), img.tag_v2.get(257, h)  # reports that size at open)
    if orientation >= 5:
        w, h = h, w
    if img.format == "TIFF":
        orientation = 1
    info = ImageInfo(os.fspath(path), w, h, mode, img.format, depth)
    return _Header(info, orientation, rawmode)


def _check_coverage(img: Image.Image, tiles: list, path) -> None:
    """Refuse a file whose data does not cover the whole image, from the header: Pillow decodes
    the tiles (TIFF strips...) the file lists and leaves the rest of the image black without a
    word (a TIFF whose strips stop short: 16x12 pixels of data in a 16x8388620 image)."""
    if not tiles or img.format == "GIF":  # a GIF frame may cover part of its screen
        return
    w, h = img.size
    if img.format == "TIFF":  # tiles are in the file's own orientation
        w, h = img.tag_v2.get(256, w), img.tag_v2.get(257, h)
    covered = 0
    for tile in tiles:
        extents = tile[1]
        if extents is None:  # the whole image
            return
        if not all(isinstance(v, int) for v in (w, h, *extents)):  # e.g. rational tag values
            raise InputError(f"invalid image data layout (tile {extents} of a {w}x{h} image)", path,
                             "the file is corrupt; re-export or re-download it")
        x0, y0, x1, y1 = extents
        covered += max(0, min(x1, w) - max(x0, 0)) * max(0, min(y1, h) - max(y0, 0))
    if covered < w * h:
        raise InputError(f"the file's image data covers {covered} of its {w}x{h} = {w * h} pixels",
                         path, "the file is truncated or corrupt; re-export or re-download it")


def _check_cmyk_profile(icc: bytes, path) -> None:
    """Refuse, from the header, a CMYK image whose ICC profile cannot convert it to sRGB."""
    fix = "convert it to RGB first, with the right CMYK profile"
    try:
        space = ImageCms.ImageCmsProfile(io.BytesIO(icc)).profile.xcolor_space.strip()
    except (OSError, ValueError, ImageCms.PyCMSError) as err:
        raise InputError(f"CMYK image with an unreadable ICC profile ({err})", path, fix) from None
    if space != "CMYK":
        raise InputError(f"CMYK image whose embedded ICC profile is for {space}, not CMYK", path, fix)


def _orientation(img: Image.Image) -> int:
    """EXIF/XMP orientation from the header only (PNG's own getexif() would decode the pixels)."""
    value = Image.Image.getexif(img).get(_ORIENTATION_TAG)
    if value is None and img.format == "PNG" and "exif" not in img.info and img.fp is not None:
        late = _png_late_exif(img.fp)  # an eXIf chunk after the image data
        if late:
            exif = Image.Exif()
            exif.load(late)
            value = exif.get(_ORIENTATION_TAG)
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _png_late_exif(fp) -> bytes | None:
    """Find an eXIf chunk by walking the PNG chunk headers (seeking over data, no decoding)."""
    saved = fp.tell()
    try:
        fp.seek(8)
        while len(head := fp.read(8)) == 8:
            length, kind = struct.unpack(">I4s", head)
            if kind == b"eXIf":
                return fp.read(length)
            if kind == b"IEND":
                break
            fp.seek(length + 4, os.SEEK_CUR)
        return None
    finally:
        fp.seek(saved)
