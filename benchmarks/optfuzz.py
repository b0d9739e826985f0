#!/usr/bin/env python
"""A long seeded random walk over every command's options (``tests/optfuzz.py``), in-process,
and the counts: command lines per command, exit codes, findings (an exit code outside 0-3,
"internal error" or a traceback in the output, an exception out of Click).

Line ``i`` of ``--seed S`` is fully determined by ``(S, i)``; replay one with ``--only i``.

Usage::

    python benchmarks/optfuzz.py 2000 --seed 1
    python benchmarks/optfuzz.py --seed 1 --only 417

Exit status 1 if there was any finding.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("count", type=int, nargs="?", default=1000, help="command lines to run (default 1000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", type=int, default=None, help="run line ONLY of the seed alone")
    args = parser.parse_args()

    from tests import optfuzz
    import torch

    from tests.conftest import make_vgg19_state_dict

    root = Path(tempfile.mkdtemp(prefix="optfuzz-"))
    weights = root / "vgg19-random.pth"
    torch.save(make_vgg19_state_dict(), weights)
    world = optfuzz.make_world(root / "world", weights)
    start, stop = (args.only, args.only + 1) if args.only is not None else (0, args.count)
    started = time.perf_counter()
    tally = optfuzz.walk(world, args.seed, start, stop, root / "work")
    elapsed = time.perf_counter() - started
    print(f"seed {args.seed}: {tally.lines} command lines in {elapsed:.1f} s ({tally.lines / elapsed:.1f}/s)")
    print("per command: " + ", ".join(f"{k} {v}" for k, v in sorted(tally.per_command.items())))
    print("exit codes:  " + ", ".join(f"{k}: {v}" for k, v in sorted(tally.codes.items())))
    print(f"findings:    {len(tally.findings)}")
    for f in tally.findings:
        print(f.describe())
    return 1 if tally.findings else 0


if __name__ == "__main__":
    sys.exit(main())
