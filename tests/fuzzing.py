"""A seeded mutation fuzzer for :mod:`hlcli.inputs.images` (used by ``tests/test_fuzz.py`` and
``benchmarks/fuzz.py``).

Seed files of every format hlcli reads are generated in memory with Pillow and tifffile (small,
so that a mutated file decodes in well under a millisecond). File number ``i`` of a run with seed
``s`` is fully determined by ``(s, i)``: the seed file, the mutations and the alpha policy come
from ``random.Random(f"{s}:{i}")``, so every finding is reproduced with :func:`case` (or
``python benchmarks/fuzz.py --seed s --only i``).

The checks, for each mutated file, written to disk (``probe`` and ``decode`` take paths only):

* ``probe`` and ``decode`` either succeed or raise :class:`hlcli.errors.InputError`; anything
  else (another exception, or a Python warning other than one :class:`InputWarning`) is a finding;
* when both succeed, ``probe``'s width x height is the decoded array's W x H;
* a decoded array is ``H x W x 3``, C-contiguous, ``uint8`` or ``uint16``;
* no file takes longer than ``time_limit`` CPU seconds (probe and decode together; or 6 times
  that in wall time), images being capped at :data:`MAX_PIXELS` (see there).
"""

from __future__ import annotations

import io
import os
import random
import struct
import time
import traceback
import warnings
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, features

from hlcli.errors import InputError, InputWarning
from hlcli.inputs.images import ALPHA_POLICIES, decode, probe

W, H = 16, 12  # seed size: small, so that mutating and decoding stay fast
#: Largest image the fuzzer accepts (probe/decode's ``max_pixels``): 4096 x 4096. A mutated
#: header may claim up to hlcli's default limit, 179 million pixels, in a 200-byte file, and
#: decoding that many (mostly background) pixels legitimately takes seconds; under this cap, a
#: slow file is a real finding. ``benchmarks/fuzz.py --max-pixels 0`` fuzzes with the default.
MAX_PIXELS = 1 << 24
WALL_FACTOR = 6  # a file is slow past time_limit CPU seconds, or WALL_FACTOR x that in wall time
KEEP_PER_KIND = 20  # findings kept in full per kind (all are counted)
HUGE = (0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFF, 0x7FFF, 0x8000, 0xFFFE, 0, 1)


@dataclass(frozen=True)
class Seed:
    name: str
    ext: str
    data: bytes


# --- seed files -----------------------------------------------------------------------------------

def _pixels(seed: int, channels: int = 3, dtype=np.uint8, w: int = W, h: int = H) -> np.ndarray:
    """Smooth gradients plus noise (compresses like a photo, not like noise or a flat colour)."""
    rng = np.random.default_rng(seed)
    top = np.iinfo(dtype).max
    yy, xx = np.mgrid[0:h, 0:w] / max(w, h)
    base = np.stack([(xx * (c + 1) + yy * (3 - c)) % 1.0 for c in range(channels)], axis=2)
    arr = np.clip(base * top + rng.normal(0, top / 12, base.shape), 0, top)
    return arr.astype(dtype)


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png16(arr: np.ndarray) -> bytes:
    """A 16-bit PNG (Pillow cannot write 16-bit colour): ``arr`` is H x W x C uint16, C 1-4."""
    h, w, c = arr.shape
    rows = arr.astype(">u2").reshape(h, w * c).view(np.uint8)
    raw = b"".join(b"\0" + row.tobytes() for row in rows)
    ihdr = struct.pack(">IIBBBBB", w, h, 16, {1: 0, 2: 4, 3: 2, 4: 6}[c], 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(raw))
            + _png_chunk(b"IEND", b""))


def _s15(x: float) -> bytes:
    return struct.pack(">i", round(x * 65536))


def cmyk_profile() -> bytes:
    """A minimal ICC v2 CMYK output profile (an A2B0 lut16 over a 2^4 grid, naive CMYK -> Lab),
    so that a CMYK JPEG seed exercises the ICC conversion path (no CMYK profile ships with
    LittleCMS). 496 bytes."""
    from PIL import ImageCms

    corners = np.array([[(b >> 3) & 1, (b >> 2) & 1, (b >> 1) & 1, b & 1] for b in range(16)], float)
    c, m, y, k = corners.T  # the first channel varies slowest in an ICC CLUT
    rgb = np.stack([(1 - c) * (1 - k), (1 - m) * (1 - k), (1 - y) * (1 - k)], 1)
    img = Image.fromarray(np.round(rgb * 255).astype(np.uint8)[None])
    lab = np.asarray(ImageCms.profileToProfile(img, ImageCms.createProfile("sRGB"),
                                               ImageCms.createProfile("LAB"), outputMode="LAB"))[0]
    lab = lab.astype(np.int64)
    lab[:, 1:] = lab[:, 1:].astype(np.uint8).view(np.int8).astype(np.int64) + 128  # Pillow: signed a*b*
    d50 = _s15(0.9642) + _s15(1.0) + _s15(0.8249)
    identity = b"".join(_s15(v) for v in (1, 0, 0, 0, 1, 0, 0, 0, 1))
    ramp = struct.pack(">HH", 0, 65535)
    a2b0 = (b"mft2" + bytes(4) + bytes([4, 3, 2, 0]) + identity + struct.pack(">HH", 2, 2) + ramp * 4
            + (lab * 256).astype(">u2").tobytes() + ramp * 3)
    text = b"hlcli fuzz CMYK\0"
    desc = b"desc" + bytes(4) + struct.pack(">I", len(text)) + text + bytes(4 + 4 + 2 + 1 + 67)
    tags = [(b"desc", desc), (b"wtpt", b"XYZ " + bytes(4) + d50), (b"cprt", b"text" + bytes(4) + b"PD\0"),
            (b"A2B0", a2b0)]
    offset = 128 + 4 + 12 * len(tags)
    table, body = struct.pack(">I", len(tags)), b""
    for sig, data in tags:
        data += bytes(-len(data) % 4)
        table += sig + struct.pack(">II", offset + len(body), len(data))
        body += data
    header = (struct.pack(">I", offset + len(body)) + b"lcms" + struct.pack(">I", 0x02100000)
              + b"prtrCMYKLab " + struct.pack(">6H", 2024, 1, 1, 0, 0, 0) + b"acsp" + bytes(28)
              + d50 + bytes(48))
    return header + table + body


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def _tifffile(arr: np.ndarray, **kw) -> bytes:
    import tifffile

    buf = io.BytesIO()
    tifffile.imwrite(buf, arr, **kw)
    return buf.getvalue()


def make_seeds(w: int = W, h: int = H) -> list[Seed]:
    """One small valid ``w x h`` file per format and variant hlcli reads (all decode cleanly
    unmutated, except the multi-frame ones, which hlcli refuses by design); JPEG 2000 and AVIF
    when this Pillow has their codecs."""
    rgb = Image.fromarray(_pixels(1, w=w, h=h))
    rgba_arr = np.concatenate([_pixels(2, w=w, h=h), _pixels(3, 1, w=w, h=h)], axis=2)
    rgba_arr[: h // 2, :, 3] = 255  # half opaque, half partly transparent
    rgba = Image.fromarray(rgba_arr)
    grey = Image.fromarray(_pixels(4, 1, w=w, h=h)[..., 0])
    pal = rgb.quantize(16)
    pal_t = pal.copy()
    pal_t.info["transparency"] = 3
    grey16 = Image.frombytes("I;16", (w, h), _pixels(5, 1, np.uint16, w, h).astype("<u2").tobytes())
    rgb16 = _pixels(6, 3, np.uint16, w, h)
    frames = [Image.fromarray(_pixels(20 + i, w=w, h=h)) for i in range(2)]
    seeds = [
        Seed("png_rgb", ".png", _encode(rgb, "PNG")),
        Seed("png_rgba", ".png", _encode(rgba, "PNG")),
        Seed("png_palette", ".png", _encode(pal, "PNG")),
        Seed("png_palette_trns", ".png", _encode(pal_t, "PNG", transparency=3)),
        Seed("png_grey", ".png", _encode(grey, "PNG")),
        Seed("png_grey16", ".png", _encode(grey16, "PNG")),
        Seed("png_rgb16", ".png", png16(rgb16)),
        Seed("png_rgba16", ".png", png16(np.concatenate([rgb16, _pixels(7, 1, np.uint16, w, h)], axis=2))),
        Seed("png_exif6", ".png", _encode(rgb, "PNG", exif=_exif(6))),
        Seed("jpeg", ".jpg", _encode(rgb, "JPEG", quality=90)),
        Seed("jpeg_grey", ".jpg", _encode(grey, "JPEG", quality=90)),
        Seed("jpeg_progressive", ".jpg", _encode(rgb, "JPEG", quality=80, progressive=True)),
        Seed("jpeg_exif6", ".jpg", _encode(rgb, "JPEG", quality=90, exif=_exif(6))),
        Seed("jpeg_cmyk", ".jpg", _encode(rgb.convert("CMYK"), "JPEG", quality=90,
                                          icc_profile=cmyk_profile())),
        Seed("bmp", ".bmp", _encode(rgb, "BMP")),
        Seed("bmp_palette", ".bmp", _encode(pal, "BMP")),
        Seed("tiff_raw", ".tif", _encode(rgb, "TIFF")),
        Seed("tiff_deflate", ".tif", _encode(rgb, "TIFF", compression="tiff_adobe_deflate")),
        Seed("tiff_grey16", ".tif", _encode(grey16, "TIFF")),
        Seed("tiff_rgb16", ".tif", _tifffile(rgb16, photometric="rgb")),
        Seed("tiff_rgb16_deflate", ".tif", _tifffile(rgb16, photometric="rgb", compression="zlib",
                                                     predictor=True)),
        Seed("tiff_exif6", ".tif", _tifffile(_pixels(8, w=w, h=h), photometric="rgb",
                                             extratags=[(0x0112, "H", 1, 6, True)])),
        Seed("tiff_multiframe", ".tif", _encode(frames[0], "TIFF", save_all=True,
                                                append_images=frames[1:])),
        Seed("gif", ".gif", _encode(pal, "GIF")),
        Seed("gif_multiframe", ".gif", _encode(frames[0], "GIF", save_all=True,
                                               append_images=frames[1:])),
        Seed("webp_lossy", ".webp", _encode(rgb, "WEBP", quality=80)),
        Seed("webp_lossless", ".webp", _encode(rgba, "WEBP", lossless=True)),
        Seed("ppm", ".ppm", _encode(rgb, "PPM")),
        Seed("pgm", ".pgm", _encode(grey, "PPM")),
        Seed("ppm16", ".ppm", b"P6\n%d %d\n65535\n" % (w, h) + rgb16.astype(">u2").tobytes()),
        Seed("tga", ".tga", _encode(rgb, "TGA")),
        Seed("tga_rle", ".tga", _encode(rgba, "TGA", compression="tga_rle")),
    ]
    if features.check("jpg_2000"):  # optional codecs hlcli reads when Pillow has them
        seeds.append(Seed("jpeg2000", ".jp2", _encode(rgb, "JPEG2000")))
    if features.check("avif"):
        seeds.append(Seed("avif", ".avif", _encode(rgb, "AVIF", quality=80)))
    return seeds


# --- mutations ------------------------------------------------------------------------------------

def _flip(data: bytearray, r: random.Random) -> str:
    spots = sorted(r.randrange(len(data) * 8) for _ in range(min(8, int(r.expovariate(0.5)) + 1)))
    for bit in spots:
        data[bit // 8] ^= 1 << (bit % 8)
    return "flip@" + ",".join(map(str, spots))


def _truncate(data: bytearray, r: random.Random) -> str:
    at = r.randrange(len(data))
    del data[at:]
    return f"truncate@{at}"


def _duplicate(data: bytearray, r: random.Random) -> str:
    start = r.randrange(len(data))
    run = data[start:start + r.randint(1, 64)]
    at = r.randrange(len(data) + 1)
    data[at:at] = run
    return f"dup[{start}:+{len(run)}]@{at}"


def _delete(data: bytearray, r: random.Random) -> str:
    start = r.randrange(len(data))
    n = r.randint(1, 64)
    del data[start:start + n]
    return f"del[{start}:+{n}]"


def _huge(data: bytearray, r: random.Random) -> str:
    value, width, order = r.choice(HUGE), r.choice((2, 4)), r.choice("<>")
    if len(data) < width:
        return "huge:skip"
    top = min(64, len(data)) if r.random() < 0.85 else len(data)  # mostly in the header
    at = r.randrange(max(1, top - width + 1))
    data[at:at + width] = struct.pack(order + ("H" if width == 2 else "I"), value & (2 ** (8 * width) - 1))
    return f"huge{width}{order}{value:#x}@{at}"


def _random_run(data: bytearray, r: random.Random) -> str:
    at = r.randrange(len(data))
    n = r.randint(1, 32)
    data[at:at + n] = r.randbytes(n)
    return f"rand[{at}:+{n}]"


MUTATIONS = {"flip": _flip, "truncate": _truncate, "duplicate": _duplicate, "delete": _delete,
             "huge": _huge, "random": _random_run}


def mutate(data: bytes, r: random.Random) -> tuple[bytes, list[str]]:
    """1 to 4 stacked mutations (mostly 1)."""
    out = bytearray(data)
    ops = []
    for _ in range(1 + min(3, int(r.expovariate(1.2)))):
        if not out:
            break
        ops.append(MUTATIONS[r.choice(tuple(MUTATIONS))](out, r))
    return bytes(out), ops


@dataclass(frozen=True)
class Case:
    seed: int
    index: int
    source: Seed
    data: bytes
    ops: list[str]
    alpha: str

    def describe(self) -> str:
        return (f"--seed {self.seed} --only {self.index} (format {self.source.name}, "
                f"mutations {' '.join(self.ops)}, alpha {self.alpha})")


def case(seeds: list[Seed], seed: int, index: int) -> Case:
    """Mutated file number ``index`` of the run with ``seed``: the same on every machine."""
    r = random.Random(f"{seed}:{index}")
    source = seeds[r.randrange(len(seeds))]
    data, ops = mutate(source.data, r)
    return Case(seed, index, source, data, ops, r.choice(ALPHA_POLICIES))


# --- checking -------------------------------------------------------------------------------------

@dataclass
class Tally:
    files: int = 0
    decoded: int = 0  # decode returned an array
    probed: int = 0  # probe returned an ImageInfo
    input_errors: int = 0  # decode raised InputError
    warnings: int = 0  # InputWarnings re-emitted (at most one per probe or decode call)
    seconds: float = 0.0  # wall-clock seconds, all files
    cpu: float = 0.0  # CPU seconds, all files
    slowest: float = 0.0  # wall-clock seconds of the slowest file (probe and decode)
    slowest_case: str = ""
    slowest_cpu: float = 0.0  # CPU seconds of the most expensive file
    slowest_cpu_case: str = ""
    findings: list[str] = field(default_factory=list)  # one line each, with how to reproduce
    kinds: Counter = field(default_factory=Counter)  # finding class -> count
    by_format: Counter = field(default_factory=Counter)  # "format ok|error" -> count

    def merge(self, other: Tally) -> None:
        for name in ("files", "decoded", "probed", "input_errors", "warnings", "seconds", "cpu"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        if other.slowest > self.slowest:
            self.slowest, self.slowest_case = other.slowest, other.slowest_case
        if other.slowest_cpu > self.slowest_cpu:
            self.slowest_cpu, self.slowest_cpu_case = other.slowest_cpu, other.slowest_cpu_case
        for line in other.findings:
            if sum(f.startswith(line.split(":", 1)[0] + ":") for f in self.findings) < KEEP_PER_KIND:
                self.findings.append(line)
        self.kinds.update(other.kinds)
        self.by_format.update(other.by_format)

    @property
    def other_exceptions(self) -> int:
        return sum(n for k, n in self.kinds.items() if k.startswith("exception"))


def _call(fn, path: str, **kw):
    """(result, exception) of one probe/decode call; hlcli's InputError is an expected outcome."""
    try:
        return fn(path, **kw), None
    except InputError as err:
        if "\n" in str(err) or err.path != path:
            return None, AssertionError(f"InputError not naming the file on one line: {err!r}")
        return None, err
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - everything else is a finding
        return None, exc


def check_case(c: Case, path: str, tally: Tally, *, time_limit: float,
               max_pixels: int | None = MAX_PIXELS) -> None:
    """Write ``c`` to ``path``, probe and decode it, and record the outcome in ``tally``."""
    _write(path, c.data)
    problems: list[tuple[str, str]] = []
    start, start_cpu = time.perf_counter(), time.process_time()
    with warnings.catch_warnings(record=True) as seen:  # one thread: catch_warnings is fine here
        warnings.simplefilter("always")
        info, probe_err = _call(probe, path, max_pixels=max_pixels)
        probe_warnings = len(seen)
        arr, decode_err = _call(decode, path, alpha=c.alpha, max_pixels=max_pixels)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    for err in (probe_err, decode_err):
        if err is not None and not isinstance(err, InputError):
            problems.append((f"exception {type(err).__name__}",
                             f"{type(err).__name__}: {err}".replace("\n", " ")[:300]
                             + " at " + _where(err)))
    inputs = [w for w in seen if issubclass(w.category, InputWarning)]
    for w in seen:
        if not issubclass(w.category, InputWarning):
            problems.append((f"raw warning {w.category.__name__}", f"{w.category.__name__}: {w.message}"))
    if probe_warnings > 1 or len(seen) - probe_warnings > 1:
        problems.append(("several warnings per call", "; ".join(str(w.message) for w in seen)))
    for w in inputs:
        if not str(w.message).startswith(path + ": "):
            problems.append(("warning not naming the file", str(w.message)))
    if arr is not None:
        ok_array = (isinstance(arr, np.ndarray) and arr.ndim == 3 and arr.shape[2] == 3
                    and arr.dtype in (np.uint8, np.uint16) and arr.flags.c_contiguous)
        if not ok_array:
            problems.append(("bad array", f"{type(arr).__name__} {getattr(arr, 'shape', '')} "
                                          f"{getattr(arr, 'dtype', '')}"))
        elif info is not None and (info.height, info.width) != arr.shape[:2]:
            problems.append(("probe/decode size", f"probe {info.width}x{info.height}, decoded "
                                                  f"{arr.shape[1]}x{arr.shape[0]}"))
        elif info is not None and info.bit_depth != arr.dtype.itemsize * 8:
            problems.append(("probe/decode depth", f"probe {info.bit_depth} bits, decoded {arr.dtype}"))
    # CPU time, so that a busy machine does not make files "slow"; wall time as a backstop for
    # a file that would block without computing.
    if cpu > time_limit or elapsed > WALL_FACTOR * time_limit:
        problems.append(("slow", f"{elapsed:.2f} s wall, {cpu:.2f} s CPU"))
    tally.files += 1
    tally.probed += info is not None
    tally.decoded += arr is not None
    tally.input_errors += isinstance(decode_err, InputError)
    tally.warnings += len(inputs)
    tally.seconds += elapsed
    tally.cpu += cpu
    tally.by_format[f"{c.source.name} {'ok' if arr is not None else 'error'}"] += 1
    if elapsed > tally.slowest:
        tally.slowest, tally.slowest_case = elapsed, c.describe()
    if cpu > tally.slowest_cpu:
        tally.slowest_cpu, tally.slowest_cpu_case = cpu, c.describe()
    for kind, detail in problems:
        tally.kinds[kind] += 1
        if tally.kinds[kind] <= KEEP_PER_KIND:
            tally.findings.append(f"{kind}: {detail} -- reproduce: {c.describe()}")


def _write(path: str, data: bytes) -> None:
    """Replace the file's contents. Not ``open(path, "wb")``: on ext4, truncating a file to zero
    and rewriting it forces a flush to disk on close (auto_da_alloc), ~3 ms a file."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    return f"{os.path.basename(frames[-1].filename)}:{frames[-1].lineno}" if frames else "?"


def run_range(seed: int, start: int, stop: int, workdir: str | os.PathLike[str], *,
              seeds: list[Seed] | None = None, time_limit: float = 5.0,
              max_pixels: int | None = MAX_PIXELS, before: Callable[[int], None] | None = None) -> Tally:
    """Fuzz files ``start`` .. ``stop - 1`` of the run with ``seed``, in ``workdir``
    (``before(i)`` is called before file ``i``)."""
    seeds = make_seeds() if seeds is None else seeds
    tally = Tally()
    paths = {}
    for i in range(start, stop):
        if before is not None:
            before(i)
        c = case(seeds, seed, i)
        path = paths.get(c.source.ext) or paths.setdefault(
            c.source.ext, os.path.join(os.fspath(workdir), f"fuzz-{os.getpid()}{c.source.ext}"))
        check_case(c, path, tally, time_limit=time_limit, max_pixels=max_pixels)
    for path in paths.values():
        Path(path).unlink(missing_ok=True)
    return tally


def write_case(c: Case, directory: Path, name: str | None = None) -> Path:
    """Write a mutated file to ``directory`` (named for its case unless ``name`` is given)."""
    path = directory / (name or f"{c.source.name}-{c.seed}-{c.index}")
    path = path.with_suffix(c.source.ext)
    path.write_bytes(c.data)
    return path
