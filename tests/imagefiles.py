"""Image files written byte by byte for the tests: hand-made PNGs (16-bit colour, interlacing,
tRNS, eXIf chunks Pillow cannot write), EXIF orientation blocks, and random images of every mode
with their expected decode."""

from __future__ import annotations

import struct
import zlib

import numpy as np
from PIL import Image

ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
         (0, 1, 1, 2)]  # (x0, y0, dx, dy) of the seven interlace passes
KINDS = ["L", "LA", "RGB", "RGBA", "P", "I;16", "RGB16", "RGBA16"]


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _scanlines(arr: np.ndarray, bits: int) -> bytes:
    """Rows of ``arr`` (H x W x C) as PNG scanlines, cycling filters None, Sub, Up, Average."""
    h, w, c = arr.shape
    if bits < 8:  # pack grey samples, most significant first
        per = 8 // bits
        padded = np.zeros((h, -(-w // per) * per), np.uint8)
        padded[:, :w] = arr[..., 0]
        groups = padded.reshape(h, -1, per).astype(np.uint16)
        rows = sum(groups[..., i] << (bits * (per - 1 - i)) for i in range(per)).astype(np.uint8)
        bpp = 1
    else:
        rows = np.frombuffer(arr.astype(">u2" if bits == 16 else np.uint8).tobytes(), np.uint8)
        rows, bpp = rows.reshape(h, -1), c * bits // 8
    out, prev = [], np.zeros(rows.shape[1], np.int32)
    for y, row in enumerate(rows.astype(np.int32)):
        left = np.concatenate([np.zeros(bpp, np.int32), row[:-bpp]])
        kind = y % 4
        pred = [0, left, prev, (left + prev) // 2][kind]
        out.append(bytes([kind]) + ((row - pred) % 256).astype(np.uint8).tobytes())
        prev = row
    return b"".join(out)


def write_png(path, arr, *, bits=None, interlace=False, trns=None, exif=None, exif_late=False):
    """A hand-made PNG (Pillow can't write 16-bit colour): arr is H x W or H x W x C."""
    arr = np.asarray(arr)
    arr = arr[..., None] if arr.ndim == 2 else arr
    h, w, c = arr.shape
    bits = bits or (16 if arr.dtype == np.uint16 else 8)
    ctype = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    if interlace:
        data = b"".join(_scanlines(arr[y0::dy, x0::dx], bits)
                        for x0, y0, dx, dy in ADAM7 if arr[y0::dy, x0::dx].size)
    else:
        data = _scanlines(arr, bits)
    body = chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bits, ctype, 0, 0, int(interlace)))
    exif_chunk = chunk(b"eXIf", exif) if exif else b""
    body += b"" if exif_late else exif_chunk
    if trns is not None:
        body += chunk(b"tRNS", struct.pack(f">{len(trns)}H", *trns))
    body += chunk(b"IDAT", zlib.compress(data)) + (exif_chunk if exif_late else b"")
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + body + chunk(b"IEND", b""))
    return path


def exif_bytes(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def make_image(kind: str, w: int, h: int, rng, fmt: str, path: str) -> np.ndarray:
    """Write an image of ``kind`` to ``path``; return the expected decode."""
    if kind in ("RGB16", "RGBA16"):
        arr = rng.integers(0, 65536, (h, w, 3 if kind == "RGB16" else 4), dtype=np.uint16)
        arr[..., 3:] = 65535
        if fmt == "TIFF":
            import tifffile
            tifffile.imwrite(path, arr, photometric="rgb",
                             extrasamples=["unassalpha"] if arr.shape[2] == 4 else None)
        else:
            write_png(path, arr)
        return arr[..., :3]
    if kind == "I;16":
        arr = rng.integers(0, 65536, (h, w), dtype=np.uint16)
        Image.fromarray(arr).save(path, format=fmt)
        return np.repeat(arr[..., None], 3, axis=2)
    channels = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4, "P": 3}[kind]
    arr = rng.integers(0, 256, (h, w, channels), dtype=np.uint8)
    if kind in ("LA", "RGBA"):
        arr[..., -1] = 255
    img = Image.fromarray(arr[..., 0] if channels == 1 else arr, None if kind == "P" else kind)
    if kind == "P":
        img = img.quantize(int(rng.integers(2, 257)))
    img.save(path, format=fmt)
    expected = np.asarray(img.convert("RGB"))
    return expected
