"""Every exception or warning while reading a file is that file's (issue 9, part 1).

* a seeded mutation fuzzer (``tests/fuzzing.py``) over small files of every format hlcli reads:
  20,000 mutated files, each probed and decoded; only ``InputError`` may escape, at most one
  ``InputWarning`` per call, probe and decode agree, arrays are H x W x 3 uint8/uint16, no file
  is slow, and nothing at all reaches file descriptor 2;
* the classes of escape it found (TypeError, KeyError, IndexError, MemoryError from a length
  field, strips that leave most of the image undecoded), as hand-made files, so that they stay
  tested whatever the seeds;
* the warning capture (per thread), Pillow's log records, ``warning_lines`` and libtiff's fd 2;
* a directory of mutated files through ``hlcli score --on-error skip``.

``python benchmarks/fuzz.py --files N --seed S`` runs any number of files with the same code.
"""

from __future__ import annotations

import io
import json
import logging
import os
import struct
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest
from PIL import Image

from hlcli.inputs import diagnostics
from hlcli.inputs import images
from hlcli.errors import HlcliEnvironmentError, InputError, InputWarning
from hlcli.inputs.images import decode, probe

from . import fuzzing
from .conftest import ROOT

FUZZ_SEED = 20260101
FUZZ_FILES = 20_000
TIME_LIMIT = 5.0  # CPU seconds a file may take to probe and decode (they take ~1 ms)


# --- helpers --------------------------------------------------------------------------------------

def tiff_entries(data: bytes) -> list[list[tuple[int, int, int, int]]]:
    """The IFDs of a little-endian TIFF: per IFD, its entries (offset, tag, type, count)."""
    out, offset = [], struct.unpack_from("<I", data, 4)[0]
    while offset:
        n = struct.unpack_from("<H", data, offset)[0]
        out.append([(e, *struct.unpack_from("<HHI", data, e))
                    for e in range(offset + 2, offset + 2 + 12 * n, 12)])
        offset = struct.unpack_from("<I", data, offset + 2 + 12 * n)[0]
    return out


def tiff_edit(data: bytes, ifd: int, tag: int, *, new_tag: int | None = None, new_type: int | None = None,
              value: int | None = None, count: int | None = None) -> bytes:
    out = bytearray(data)
    for e, t, typ, _ in tiff_entries(data)[ifd]:
        if t == tag:
            if new_tag is not None:
                struct.pack_into("<H", out, e, new_tag)
            if new_type is not None:
                struct.pack_into("<H", out, e + 2, new_type)
            if count is not None:
                struct.pack_into("<I", out, e + 4, count)
            if value is not None:
                struct.pack_into("<I" if typ == 4 else "<H", out, e + 8, value)
            return bytes(out)
    raise KeyError(tag)


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def frames(n: int = 2) -> list[Image.Image]:
    return [Image.fromarray(fuzzing._pixels(30 + i)) for i in range(n)]


def warning_tiff() -> bytes:
    """A valid TIFF on which Pillow warns four times ("Tag data larger than file. Skipping tag
    270", then 282, 283 and 305): two ASCII tags claim far more data than the file holds."""
    data = fuzzing._tifffile(fuzzing._pixels(9), photometric="rgb", description="hello hlcli")
    for tag in (270, 305):
        data = tiff_edit(data, 0, tag, count=1_000_000)
    return data


def write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


# --- the fuzzer -----------------------------------------------------------------------------------

def test_seed_files_are_valid(tmp_path):
    """The seeds decode as intended (so mutations start from real, fully decodable files)."""
    for seed in fuzzing.make_seeds():
        path = write(tmp_path, seed.name + seed.ext, seed.data)
        if "multiframe" in seed.name:
            with pytest.raises(InputError, match="multi-frame"):
                decode(path)
            continue
        arr = decode(path, alpha="composite")
        info = probe(path)
        turned = "exif6" in seed.name
        assert arr.shape == ((fuzzing.W, fuzzing.H, 3) if turned else (fuzzing.H, fuzzing.W, 3)), seed.name
        assert (info.height, info.width) == arr.shape[:2], seed.name
        assert arr.dtype == (np.uint16 if "16" in seed.name else np.uint8), seed.name
    assert len({s.name for s in fuzzing.make_seeds()}) == len(fuzzing.make_seeds())


def test_cases_are_reproducible():
    seeds = fuzzing.make_seeds()
    a, b = fuzzing.case(seeds, 5, 123), fuzzing.case(seeds, 5, 123)
    assert (a.data, a.ops, a.alpha, a.source.name) == (b.data, b.ops, b.alpha, b.source.name)
    assert fuzzing.case(seeds, 5, 124).data != a.data or fuzzing.case(seeds, 5, 124).ops != a.ops


def test_fuzz_20000_mutated_files(tmp_path, capfd):
    """The in-suite fuzz run: 20,000 mutated files (about 20 s on one core of a 2-core EPYC)."""
    seeds = fuzzing.make_seeds()
    started = time.perf_counter()
    with diagnostics.libtiff_errors_silenced():  # as under `hlcli score` (see warning_lines)
        tally = fuzzing.run_range(FUZZ_SEED, 0, FUZZ_FILES, tmp_path, seeds=seeds,
                                  time_limit=TIME_LIMIT)
    elapsed = time.perf_counter() - started
    summary = (f"{tally.files} files in {elapsed:.1f} s ({tally.cpu:.1f} s CPU): {tally.decoded} "
               f"decoded, {tally.input_errors} InputError, {tally.warnings} InputWarnings, slowest "
               f"{tally.slowest:.3f} s ({tally.slowest_case}), costliest {tally.slowest_cpu:.3f} s "
               f"CPU ({tally.slowest_cpu_case})")
    fd2 = capfd.readouterr().err
    with capfd.disabled():
        print("\n" + summary)  # shown with -s
    assert tally.files == FUZZ_FILES
    assert not tally.findings, summary + "\n" + "\n".join(tally.findings)
    # Nothing reached file descriptor 2 (no raw warning, no Pillow log line, no libtiff line).
    assert fd2 == ""
    # Not vacuous: every seed was mutated often, both outcomes are common, warnings happen.
    for seed in seeds:
        n = tally.by_format[f"{seed.name} ok"] + tally.by_format[f"{seed.name} error"]
        assert n > FUZZ_FILES / len(seeds) / 2, seed.name
    assert tally.decoded > FUZZ_FILES // 10 and tally.input_errors > FUZZ_FILES // 10
    assert tally.warnings > 0


# --- the classes of escape the fuzzer found, as hand-made files ------------------------------------

def _missing_dimensions() -> bytes:  # TypeError "Missing dimensions" (on counting the frames)
    two = encode(frames()[0], "TIFF", save_all=True, append_images=frames()[1:])
    return tiff_edit(two, 1, 256, new_tag=0xFDE8)


def _unknown_compression() -> bytes:  # KeyError: 6166
    two = encode(frames()[0], "TIFF", save_all=True, append_images=frames()[1:])
    return tiff_edit(two, 1, 259, value=6166)


def _gif_cut_in_second_frame() -> bytes:  # IndexError: index out of range
    gif = encode(frames()[0], "GIF", save_all=True, append_images=frames()[1:])
    im = Image.open(io.BytesIO(gif))
    im.seek(1)
    return gif[: im.tile[0][2] - 1]  # right before the second frame's LZW code size


def _rational_rows_per_strip() -> bytes:  # tile extents that are fractions (IFDRational)
    return tiff_edit(encode(frames()[0], "TIFF"), 0, 278, new_type=5)


@pytest.mark.parametrize("make, ext, original", [
    (_missing_dimensions, ".tif", "TypeError: Missing dimensions"),
    (_unknown_compression, ".tif", "KeyError: 6166"),
    (_gif_cut_in_second_frame, ".gif", "IndexError"),
    (_rational_rows_per_strip, ".tif", None),
])
def test_escape_classes_are_input_errors(tmp_path, make, ext, original):
    path = write(tmp_path, "bad" + ext, make())
    for fn in (probe, decode):
        with pytest.raises(InputError) as info:
            fn(path)
        err = info.value
        assert err.path == str(path) and "\n" not in str(err) and err.fix
        if original:
            assert original in str(err)
            assert err.__cause__ is not None and type(err.__cause__).__name__ in original


def test_tiff_strips_short_of_the_image_are_refused_from_the_header(tmp_path):
    """A 16x12 strip in a 16x8388620 TIFF: Pillow would decode it and leave 134 million pixels
    black (and take seconds to); it is refused from the header, by probe too."""
    data = fuzzing._tifffile(fuzzing._pixels(3, 3, np.uint16), photometric="rgb")
    path = write(tmp_path, "short.tif", tiff_edit(data, 0, 257, value=8388620))
    started = time.perf_counter()
    for fn in (probe, decode):
        with pytest.raises(InputError, match="covers 192 of its 16x8388620"):
            fn(path)
    assert time.perf_counter() - started < 1.0


def test_a_huge_length_field_is_not_a_memory_error(tmp_path):
    """A JPEG 2000 box claiming 2**40 bytes: Pillow asks read() for all of them, which Python
    allocates before reading (MemoryError, where the system does not overcommit 1 TB). hlcli's
    reads stop at the end of the file."""
    data = (bytes.fromhex("0000000C6A5020200D0A870A")  # JP2 signature box
            + struct.pack(">I4s4sI4s", 20, b"ftyp", b"jp2 ", 0, b"jp2 ")
            + struct.pack(">I4sQ", 1, b"jp2h", 1 << 40) + bytes(64))  # extended length 2**40
    path = write(tmp_path, "huge.jp2", data)
    for fn in (probe, decode):
        with pytest.raises(InputError, match="Expected to read 1099511627760 bytes but only got 64"):
            fn(path)


def test_any_exception_becomes_the_files_input_error(tmp_path, monkeypatch):
    path = write(tmp_path, "a.png", encode(frames()[0], "PNG"))

    def boom(*args, **kw):
        raise RuntimeError("boom\nwith a second line")

    monkeypatch.setattr(images, "_read_header", boom)
    with pytest.raises(InputError) as info:
        decode(path)
    err = info.value
    assert str(err).startswith("cannot decode image (RuntimeError: boom with a second line) (")
    assert err.path == str(path) and "--on-error skip" in err.fix
    assert isinstance(err.__cause__, RuntimeError)  # chained: --debug shows the original


@pytest.mark.parametrize("exc", [MemoryError(), KeyboardInterrupt(),
                                 HlcliEnvironmentError("plugin broke", "x", "reinstall")])
def test_memory_interrupt_and_hlcli_errors_pass_through(tmp_path, monkeypatch, exc):
    path = write(tmp_path, "a.png", encode(frames()[0], "PNG"))

    def raise_it(*args, **kw):
        raise exc

    monkeypatch.setattr(images, "_read_header", raise_it)
    with pytest.raises(type(exc)) as info:
        probe(path)
    assert info.value is exc


def test_decode_errors_keep_their_cause(tmp_path):
    data = encode(frames()[0], "PNG")
    path = write(tmp_path, "t.png", data[: len(data) // 2])
    with pytest.raises(InputError, match="cannot decode image") as info:
        decode(path)
    assert isinstance(info.value.__cause__, OSError)


# --- warnings -------------------------------------------------------------------------------------

def test_warnings_become_one_input_warning_per_call(tmp_path):
    a = write(tmp_path, "a.tif", warning_tiff())
    b = write(tmp_path, "b.tif", warning_tiff())
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("default")  # Python's own: each text once per code location...
        arr = decode(a)
        decode(b)  # ...yet the same Pillow warning for the next file is caught again
        probe(a)
    assert arr.shape == (fuzzing.H, fuzzing.W, 3)
    assert [w.category for w in seen] == [InputWarning] * 3, [str(w.message) for w in seen]
    assert str(seen[0].message) == f"{a}: Tag data larger than file. Skipping tag 270 (and 3 more warnings)"
    assert str(seen[1].message).startswith(f"{b}: Tag data larger than file.")
    assert seen[0].message.path == str(a)
    assert seen[0].filename == __file__  # points at the caller of decode


def test_no_warning_for_a_refused_file(tmp_path):
    data = warning_tiff()
    path = write(tmp_path, "t.tif", data[:-200])  # warns, then fails: the error says it all
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(InputError):
            decode(path)
    assert seen == []


def test_warnings_as_errors_make_the_file_an_input_error(tmp_path):
    path = write(tmp_path, "t.tif", warning_tiff())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(InputError, match="UserWarning: Tag data larger than file") as info:
            decode(path)
    assert isinstance(info.value.__cause__, UserWarning)


def test_capture_is_per_thread(tmp_path):
    """Eight threads read warning files while the main thread warns on its own: each file gets
    exactly its own InputWarning, and the main thread's warnings are never captured."""
    paths = [write(tmp_path, f"t{i}.tif", warning_tiff()) for i in range(8)]
    rounds = 20
    barrier = threading.Barrier(len(paths) + 1)
    errors = []

    def reader(path):
        barrier.wait()
        try:
            for _ in range(rounds):
                decode(path)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        threads = [threading.Thread(target=reader, args=(p,)) for p in paths]
        for t in threads:
            t.start()
        barrier.wait()
        for i in range(200):
            warnings.warn(f"main thread {i}", RuntimeWarning)
        for t in threads:
            t.join()
        assert warnings.showwarning is not diagnostics._hook  # removed when the last reader left
    assert not errors
    mine = [str(w.message) for w in seen if w.category is RuntimeWarning]
    assert mine == [f"main thread {i}" for i in range(200)]
    got = sorted(str(w.message).split(":")[0] for w in seen if w.category is InputWarning)
    assert got == sorted(str(p) for p in paths for _ in range(rounds))
    assert len(seen) == 200 + len(paths) * rounds


def test_pillow_log_records_are_caught(tmp_path, caplog):
    """Pillow *logs* some problems (logging's last resort prints them on stderr)."""
    data = tiff_edit(encode(frames()[0], "TIFF"), 0, 277, value=11)  # SamplesPerPixel 11
    path = write(tmp_path, "spp.tif", data)
    with caplog.at_level(logging.WARNING):
        with pytest.raises(InputError):
            decode(path)
        assert not [r for r in caplog.records if r.name.startswith("PIL")]
        with pytest.raises(Exception):
            Image.open(path)  # outside hlcli's reading, Pillow's logging is untouched
        assert any("More samples per pixel" in r.getMessage() for r in caplog.records)


def test_pillow_log_records_are_caught_on_the_first_read(tmp_path):
    """In a fresh process (Pillow imports its TIFF plugin, and creates its logger, only when it
    first meets a TIFF): still nothing on stderr."""
    path = write(tmp_path, "spp.tif", tiff_edit(encode(frames()[0], "TIFF"), 0, 277, value=11))
    code = ("import sys\nfrom hlcli.inputs import images\ntry:\n    images.decode(sys.argv[1])\n"
            "except images.InputError as err:\n    print(err)")
    res = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                         cwd=ROOT, timeout=60)
    assert res.returncode == 0 and str(path) in res.stdout
    assert res.stderr == ""


def test_warning_lines(tmp_path):
    lines: list[str] = []
    before = warnings.showwarning
    path = write(tmp_path, "w.tif", warning_tiff())
    with diagnostics.warning_lines(lines.append):
        decode(path)
        decode(path)  # the same file again: no second line
        probe(path)
        warnings.warn(InputWarning("x.png: something"))
        warnings.warn("two\n  lines", UserWarning)
        warnings.warn("two\n  lines", UserWarning)
        warnings.warn("soon", FutureWarning)
    assert lines == [f"Warning: {path}: Tag data larger than file. Skipping tag 270 (and 3 more warnings)",
                     "Warning: x.png: something", "Warning: two lines (UserWarning)",
                     "Warning: soon (FutureWarning)"]
    assert warnings.showwarning is before
    quiet: list[str] = []
    with diagnostics.warning_lines(quiet.append, quiet=True):
        decode(path)
        warnings.warn("dropped")
    assert quiet == []


LIBTIFF_SCRIPT = """
import sys
from PIL import features
from hlcli.inputs import diagnostics
from hlcli.inputs import images
from hlcli.errors import InputError
assert features.check_codec("libtiff")
def read():
    try:
        images.decode(sys.argv[1])
    except InputError as err:
        print("InputError", err)
if sys.argv[2] == "silenced":
    with diagnostics.libtiff_errors_silenced() as ok:
        assert ok, "libtiff's error handler not found"
        read()
else:
    read()
"""


def test_libtiff_messages_on_fd2_are_silenced(tmp_path):
    """libtiff prints its errors on fd 2 itself ("ZIPDecode: Decoding error ..."): checked in a
    child process, where fd 2 is really captured."""
    from PIL import features

    if not features.check_codec("libtiff") or diagnostics._libtiff() is None:
        pytest.skip("this Pillow's libtiff cannot be reached")
    data = bytearray(encode(frames()[0], "TIFF", compression="tiff_adobe_deflate"))
    offset = tiff_entries(bytes(data))[0]
    strip = next(e for e in offset if e[1] == 273)[0]
    start = struct.unpack_from("<I", data, strip + 8)[0]
    data[start + 10: start + 30] = bytes(20)  # zeros in the middle of the deflate stream
    path = write(tmp_path, "z.tif", bytes(data))
    runs = {}
    for mode in ("shown", "silenced"):
        runs[mode] = subprocess.run([sys.executable, "-c", LIBTIFF_SCRIPT, str(path), mode],
                                    capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert runs[mode].returncode == 0, runs[mode].stderr
        assert runs[mode].stdout.startswith("InputError cannot decode image")
    assert "ZIPDecode" in runs["shown"].stderr  # what hlcli score would show without it
    assert runs["silenced"].stderr == ""


# --- through the command line ---------------------------------------------------------------------

CLI_FILES = 300


def test_cli_scores_or_skips_every_mutated_file(tmp_path, cli_env):
    """A directory of mutated 32x32 files (each paired with a good ground truth of the same
    name) through `hlcli score --on-error skip`, in a child process so that file descriptor 2
    is really what a user would see."""
    seeds = fuzzing.make_seeds(32, 32)
    restored, gt = tmp_path / "restored", tmp_path / "gt"
    restored.mkdir()
    gt.mkdir()
    truth = {}
    for seed in seeds:
        probe_dir = tmp_path / "seed"
        probe_dir.mkdir(exist_ok=True)
        if "multiframe" in seed.name:
            truth[seed.name] = fuzzing._pixels(20, w=32, h=32)
        else:
            arr = decode(write(probe_dir, seed.name + seed.ext, seed.data), alpha="composite")
            truth[seed.name] = (arr >> 8).astype(np.uint8) if arr.dtype == np.uint16 else arr
    stems = []
    for i in range(CLI_FILES):
        c = fuzzing.case(seeds, FUZZ_SEED, i)
        stem = f"f{i:04d}"
        fuzzing.write_case(c, restored, stem)
        Image.fromarray(truth[c.source.name]).save(gt / f"{stem}.png")
        stems.append(stem)

    def run(*extra):
        cmd = [sys.executable, "-m", "hlcli", "score", str(restored), str(gt), "-f", "json",
               "--on-error", "skip", "--workers", "0", *extra]
        return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300,
                              env={**os.environ, "HLCLI_OFFLINE": "1"})

    for extra, code in (((), 2), (("--allow-skips",), 0)):
        res = run(*extra)
        assert res.returncode == code, res.stderr[-3000:]
        doc = json.loads(res.stdout)
        scored = [p["key"] for p in doc["pairs"]]
        skipped = [s["key"] for s in doc["skipped"]]
        assert sorted(scored + skipped) == stems  # each file exactly once, scored or skipped
        assert scored and skipped and doc["complete"] is False
        assert all(s["exit_code"] == 2 for s in doc["skipped"])
        assert all(s["path"].startswith(str(restored)) for s in doc["skipped"])
        assert "Traceback" not in res.stderr
        # Needs the CLI to run the command inside hlcli.inputs.diagnostics.warning_lines (which turns
        # InputWarnings into `Warning: <file>: <what>` lines and silences libtiff's own lines
        # on fd 2): without it, raw "...: InputWarning: ..." / "  warnings.warn(" lines and
        # "ZIPDecode: ..." lines appear here.
        foreign = [line for line in res.stderr.splitlines()
                   if not line.startswith(("Error: ", "Warning: "))]
        assert foreign == [], foreign[:20]


def test_a_broken_plugin_is_an_environment_error(tmp_path, monkeypatch):
    real = images.importlib.import_module

    def fake(name, *args):
        if name == "pillow_heif":
            raise RuntimeError("libheif.so: undefined symbol")
        return real(name, *args)

    monkeypatch.setattr(images.importlib, "import_module", fake)
    monkeypatch.setattr(images, "_PLUGINS_LOADED", set())
    path = write(tmp_path, "a.heic", b"\0\0\0\x18ftypheic")
    with pytest.raises(HlcliEnvironmentError, match="pillow-heif plugin .* fails to load "
                                                    r"\(RuntimeError: libheif.so"):
        decode(path)
