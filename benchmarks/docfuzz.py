#!/usr/bin/env python
"""Mutation-fuzz the documents hlcli reads back (score runs, shard parts, maps indexes) through
every command that reads them, and print counts. The image fuzzer's sibling (benchmarks/fuzz.py).

Mutant ``i`` of ``--seed S`` is fully determined by ``(S, i)`` (``tests/docfuzz.py`` has the
mutations and the checks); mutants ``i`` with ``i % 2 == 1`` are read as without jsonschema (its
import blocked, so the fallback checker applies the schemas). Reproduce one with
``--seed S --only i`` (``--save DIR`` keeps the file).

Usage::

    python benchmarks/docfuzz.py --mutants 200000 --seed 1 --jobs 2 --json docfuzz.json
    python benchmarks/docfuzz.py --seed 1 --only 4242 --save /tmp

Printed: mutants per reader, accepted by the reader, exit codes per command, findings (exit 3,
a traceback, a refusal that is not one clean line, a raw control character on the terminal,
injected markup in a report), mutants/s. Exit status 1 if there was any finding. The report's
two matplotlib plots run for one mutant in ``--plots-every`` (default 50); an empty SVG stands
in for the others (the plots are numbers only, and cost 0.15 s a report).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

_W: dict = {}


def _init(docs_root: str) -> None:
    from tests import docfuzz  # noqa: F401 - imported once per worker

    root = Path(docs_root)
    docs = {n: (root / f"{n}.json").read_text("utf-8") for n in ("run", "baseline", "part0", "part1")}
    docs["maps"] = (root / "maps" / "maps.json").read_text("utf-8")
    docs["root"] = root
    _W.update(docs=docs, work=Path(tempfile.mkdtemp(prefix="docfuzz-w-")))


def _task(seed: int, start: int, stop: int, plots_every: int):
    from tests import docfuzz

    tally = docfuzz.Tally()
    saved = sys.modules.get("jsonschema")
    for i in range(start, stop):
        if i % 2:
            sys.modules["jsonschema"] = None  # type: ignore[assignment]  # the fallback checker
        try:
            with docfuzz.plots_stubbed(i % plots_every != 0):
                tally.add(docfuzz.run_one(seed, i, _W["docs"], _W["work"]))
        finally:
            if saved is not None:
                sys.modules["jsonschema"] = saved
            else:
                sys.modules.pop("jsonschema", None)
    return tally


def _cpu() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mutants", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--chunk", type=int, default=500)
    ap.add_argument("--plots-every", type=int, default=50)
    ap.add_argument("--only", type=int, help="run mutant ONLY alone and print what happened")
    ap.add_argument("--save", type=Path, help="with --only: keep the mutant's file in this folder")
    ap.add_argument("--json", type=Path, help="also write the counts here")
    args = ap.parse_args()

    from tests import docfuzz
    from tests.docfixtures import make_documents

    base = Path(tempfile.mkdtemp(prefix="docfuzz-"))
    try:
        make_documents(base / "docs")
        if args.only is not None:
            _init(str(base / "docs"))
            tally = _task(args.seed, args.only, args.only + 1, 1)
            if args.save:
                args.save.mkdir(parents=True, exist_ok=True)
                for found in _W["work"].rglob("*.json"):
                    shutil.copy(found, args.save / f"mutant-{args.seed}-{args.only}-{found.name}")
            print(json.dumps({"exits": {f"{c} {x}": n for (c, x), n in tally.exits.items()},
                              "findings": tally.findings}, indent=2))
            return 1 if tally.findings else 0
        started = time.perf_counter()
        total = docfuzz.Tally()
        ranges = [(s, min(s + args.chunk, args.mutants)) for s in range(0, args.mutants, args.chunk)]
        with cf.ProcessPoolExecutor(args.jobs, initializer=_init, initargs=(str(base / "docs"),)) as pool:
            for done, tally in enumerate(pool.map(_task, *zip(*[(args.seed, a, b, args.plots_every)
                                                                 for a, b in ranges])), 1):
                total.add(tally)
                print(f"\r{done}/{len(ranges)} chunks", end="", file=sys.stderr, flush=True)
                if args.json:  # so far (chunks come back in order): a long run can be read while it runs
                    args.json.write_text(json.dumps(_result(args, total, time.perf_counter() - started), indent=2))
        elapsed = time.perf_counter() - started
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(file=sys.stderr)
    result = _result(args, total, elapsed)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 1 if total.findings else 0


def _result(args: argparse.Namespace, total, elapsed: float) -> dict:
    done = sum(total.mutants.values())
    return {
        "mutants": done, "of": args.mutants, "seed": args.seed, "jobs": args.jobs, "cpu": _cpu(),
        "seconds": round(elapsed, 1), "mutants_per_s": round(done / elapsed, 1),
        "per_reader": dict(total.mutants), "accepted_by_reader": dict(total.accepted),
        "exits": {f"{c} exit {x}": n for (c, x), n in sorted(total.exits.items())},
        "findings": len(total.findings), "first_findings": total.findings[:20],
    }


if __name__ == "__main__":
    sys.exit(main())
