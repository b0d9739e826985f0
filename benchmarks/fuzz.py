#!/usr/bin/env python
"""Mutation-fuzz hlcli's image reading (``hlcli.inputs.images.probe`` and ``decode``) and print counts.

File ``i`` of a run with ``--seed S`` is fully determined by ``(S, i)`` (see ``tests/fuzzing.py``
for the seed files, the mutations and the checks), so any finding is reproduced, on any machine,
with ``--seed S --only i`` (add ``--save DIR`` to keep the file).

Usage::

    python benchmarks/fuzz.py --files 100000 --seed 1            # all cores
    python benchmarks/fuzz.py --files 1000000 --seed 1 --jobs 2 --json fuzz.json
    python benchmarks/fuzz.py --seed 1 --only 4242 --save /tmp   # reproduce one file

Printed: files, decoded OK, refused with InputError, other exceptions (each with its type,
message and how to reproduce it), InputWarnings issued, raw Python warnings, lines that native
code (libtiff, libjpeg, ...) wrote on file descriptor 2, the slowest file, files/s. The exit
status is 1 if there was any finding (an exception other than InputError, a raw warning, a
size/shape/dtype disagreement, a file slower than ``--time-limit``, a crashed or hung worker).

Each worker process sends its own file descriptor 2 to a file (safe there: a worker has one
thread) to count native lines; by default libtiff's error handler is off in the workers, as
under ``hlcli score`` (``--libtiff-errors shown`` leaves it on, to see what it would print).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import faulthandler
import json
import multiprocessing as mp
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import fuzzing  # noqa: E402

_W: dict = {}  # per worker process: seeds, work dir, fd-2 capture, slot in the progress array


def _init(workdir: str, slots, counter, libtiff_errors: str, watchdog: float) -> None:
    from hlcli.inputs import diagnostics

    with counter.get_lock():
        slot = counter.value
        counter.value += 1
    capture = tempfile.TemporaryFile(dir=workdir)
    os.dup2(capture.fileno(), 2)  # this process has one thread: nothing else writes to fd 2
    if libtiff_errors == "silenced":
        _W["silenced"] = diagnostics.libtiff_errors_silenced()  # kept: for the worker's life
        _W["silenced"].__enter__()
    _W.update(seeds=fuzzing.make_seeds(), workdir=workdir, capture=capture, slots=slots,
              slot=slot, watchdog=watchdog, hang_log=open(os.path.join(workdir, f"hang-{slot}.txt"), "w"))


def _task(seed: int, start: int, stop: int, time_limit: float,
          max_pixels: int | None) -> tuple[fuzzing.Tally, int, list[str]]:
    slots, slot = _W["slots"], _W["slot"]

    def progress(index: int) -> None:
        slots[slot] = index
        faulthandler.dump_traceback_later(_W["watchdog"], exit=True, file=_W["hang_log"])

    tally = fuzzing.run_range(seed, start, stop, _W["workdir"], seeds=_W["seeds"],
                              time_limit=time_limit, max_pixels=max_pixels, before=progress)
    faulthandler.cancel_dump_traceback_later()
    slots[slot] = -1
    capture = _W["capture"]
    capture.seek(0)
    lines = capture.read().decode("utf-8", "replace").splitlines()
    capture.seek(0)
    capture.truncate()
    return tally, len(lines), lines[:5]


def _cpu() -> str:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
        model = next(l.split(":", 1)[1].strip() for l in info.splitlines() if l.startswith("model name"))
        flags = next(l.split(":", 1)[1].split() for l in info.splitlines() if l.startswith("flags"))
        caps = [c for c in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if c in flags]
        model += f" ({', '.join(caps) or 'no AVX2'})"
    except (OSError, StopIteration):
        pass
    return f"{model}, {os.cpu_count()} logical CPUs"


def _versions() -> str:
    import numpy
    import PIL
    from PIL import features

    return (f"Python {platform.python_version()}, Pillow {PIL.__version__}, numpy {numpy.__version__}, "
            f"libtiff {features.version('libtiff')}, libjpeg {features.version('jpg')}, "
            f"libwebp {features.version('webp')}, zlib {features.version('zlib')}")


def reproduce(seed: int, index: int, save: str | None, max_pixels: int, time_limit: float) -> int:
    """Show one file's case, its outcome and full tracebacks (no capture of anything)."""
    from hlcli.inputs.images import decode, probe

    c = fuzzing.case(fuzzing.make_seeds(), seed, index)
    print(c.describe(), f"{len(c.data)} bytes")
    directory = Path(save) if save else Path(tempfile.mkdtemp())
    path = fuzzing.write_case(c, directory)
    print("file:", path)
    status = 0
    for name, call in (("probe", lambda: probe(path, max_pixels=max_pixels)),
                       ("decode", lambda: decode(path, alpha=c.alpha, max_pixels=max_pixels))):
        try:
            out = call()
            print(f"{name}: {out if name == 'probe' else (out.shape, out.dtype)}")
        except Exception as exc:  # noqa: BLE001 - show everything
            print(f"{name}: {type(exc).__name__}: {exc}")
            if type(exc).__name__ != "InputError":
                status = 1
                traceback.print_exc()
            elif exc.__cause__ is not None:
                print(f"  caused by {type(exc.__cause__).__name__}: {exc.__cause__}")
    tally = fuzzing.Tally()
    fuzzing.check_case(c, str(directory / f"check{c.source.ext}"), tally, time_limit=time_limit,
                       max_pixels=max_pixels)
    for line in tally.findings:
        print("FINDING", line)
    if not save:
        path.unlink()
    return status or int(bool(tally.findings))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=100_000, help="number of mutated files")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--start", type=int, default=0, help="first file index (to resume or split a run)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes")
    ap.add_argument("--chunk", type=int, default=1000, help="files per task")
    ap.add_argument("--time-limit", type=float, default=5.0,
                    help="CPU seconds a file may take (6 times that in wall time)")
    ap.add_argument("--max-pixels", type=int, default=fuzzing.MAX_PIXELS,
                    help="largest image accepted (default 4096x4096; 0: hlcli's default limit)")
    ap.add_argument("--watchdog", type=float, default=120.0,
                    help="seconds after which a file counts as hung (its worker is stopped)")
    ap.add_argument("--libtiff-errors", choices=("silenced", "shown"), default="silenced")
    ap.add_argument("--only", type=int, help="reproduce one file: print its outcome and tracebacks")
    ap.add_argument("--save", help="with --only: keep the mutated file in this directory")
    ap.add_argument("--json", help="also write the counts to this JSON file")
    args = ap.parse_args()
    from hlcli.inputs.images import DEFAULT_MAX_PIXELS

    max_pixels = args.max_pixels or DEFAULT_MAX_PIXELS
    if args.only is not None:
        return reproduce(args.seed, args.only, args.save, max_pixels, args.time_limit)
    total = fuzzing.Tally()
    fd2_lines, fd2_samples, broken = 0, [], []
    started = time.perf_counter()
    last_note = started
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    slots, counter = ctx.Array("q", [-1] * args.jobs), ctx.Value("i", 0)
    ranges = [(a, min(a + args.chunk, args.start + args.files))
              for a in range(args.start, args.start + args.files, args.chunk)]
    print(f"fuzzing {args.files} files (seed {args.seed}, from {args.start}) with {args.jobs} "
          f"processes on {_cpu()}", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="hlcli-fuzz-") as workdir:
        with cf.ProcessPoolExecutor(args.jobs, mp_context=ctx, initializer=_init,
                                    initargs=(workdir, slots, counter, args.libtiff_errors,
                                              args.watchdog)) as pool:
            pending: dict[cf.Future, tuple[int, int]] = {}
            todo = iter(ranges)
            while True:
                while len(pending) < 2 * args.jobs and (r := next(todo, None)) is not None:
                    pending[pool.submit(_task, args.seed, *r, args.time_limit, max_pixels)] = r
                if not pending:
                    break
                done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                for fut in done:
                    r = pending.pop(fut)
                    try:
                        tally, n_lines, samples = fut.result()
                    except cf.process.BrokenProcessPool:
                        suspects = [i for i in slots[:] if i >= 0]
                        hangs = "".join(Path(workdir, f).read_text()
                                        for f in os.listdir(workdir) if f.startswith("hang-"))
                        broken.append(f"a worker crashed or hung in files {r[0]}..{r[1] - 1}; files "
                                      f"in progress: {suspects} (reproduce each with --only)\n{hangs}")
                        pending.clear()
                        break
                    total.merge(tally)
                    fd2_lines += n_lines
                    fd2_samples.extend(s for s in samples if s not in fd2_samples and len(fd2_samples) < 10)
                if broken:
                    break
                now = time.perf_counter()
                if now - last_note > 30:
                    last_note = now
                    print(f"  {total.files} files, {total.files / (now - started):.0f}/s, "
                          f"{sum(total.kinds.values())} findings", file=sys.stderr, flush=True)
    wall = time.perf_counter() - started
    report = {
        "seed": args.seed, "start": args.start, "files": total.files, "jobs": args.jobs,
        "max_pixels": max_pixels, "time_limit_s": args.time_limit,
        "decoded_ok": total.decoded, "probed_ok": total.probed, "input_errors": total.input_errors,
        "other_exceptions": total.other_exceptions, "findings": sum(total.kinds.values()),
        "findings_by_kind": dict(total.kinds), "input_warnings": total.warnings,
        "raw_warnings": sum(n for k, n in total.kinds.items() if k.startswith("raw warning")),
        "fd2_lines": fd2_lines, "fd2_samples": fd2_samples, "libtiff_errors": args.libtiff_errors,
        "slowest_s": round(total.slowest, 4), "slowest_case": total.slowest_case,
        "slowest_cpu_s": round(total.slowest_cpu, 4), "slowest_cpu_case": total.slowest_cpu_case,
        "cpu_s": round(total.cpu, 1),
        "wall_s": round(wall, 1), "files_per_s": round(total.files / wall, 1),
        "cpu": _cpu(), "versions": _versions(), "crashed": broken,
        "examples": total.findings,
        "by_format": {k: v for k, v in sorted(total.by_format.items())},
    }
    print(f"files              {total.files}")
    print(f"decoded OK         {total.decoded}  (probe OK: {total.probed})")
    print(f"InputError         {total.input_errors}  (decode refused the file)")
    print(f"other exceptions   {total.other_exceptions}")
    print(f"all findings       {report['findings']}  {dict(total.kinds) or ''}")
    print(f"InputWarnings      {total.warnings}  (raw Python warnings: {report['raw_warnings']})")
    print(f"lines on fd 2      {fd2_lines}  (libtiff errors {args.libtiff_errors})"
          + "".join(f"\n                     {s}" for s in fd2_samples[:5]))
    print(f"slowest file       {total.slowest:.3f} s wall  ({total.slowest_case})")
    print(f"costliest file     {total.slowest_cpu:.3f} s CPU  ({total.slowest_cpu_case}; limit "
          f"{args.time_limit:g} s CPU, images up to {max_pixels} pixels)")
    print(f"throughput         {report['files_per_s']:.0f} files/s, {wall:.0f} s wall, {args.jobs} processes "
          f"({total.files / max(total.cpu, 1e-9):.0f} files per CPU second: less sensitive to other load)")
    print(f"machine            {report['cpu']}")
    print(f"versions           {report['versions']}")
    for line in total.findings:
        print("FINDING", line)
    for line in broken:
        print("CRASH", line)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 1 if report["findings"] or broken else 0


if __name__ == "__main__":
    sys.exit(main())
