#!/usr/bin/env python
"""The cost of ``--save-maps``: the same run of 256x256 pairs with and without maps.

Runs :func:`hlcli.score_dirs` (the library path the CLI uses) over seeded photo-like PNG pairs,
alternating "no maps" and "maps" (npy + PNG, run-wide scale) in interleaved rounds, and reports
the median wall time of each and their ratio (the issue's bound: at most 1.3x), and the same for
this process's CPU time. The machine is assumed shared and noisy: the medians of interleaved
rounds are the figures; the CPU-time ratio is the one other processes disturb least.

Usage::

    python benchmarks/maps.py                 # 32 pairs, 5 rounds
    python benchmarks/maps.py --pairs 8 --rounds 2 --json out.json
    python benchmarks/maps.py --memory        # peak RSS of one 4096x4096 pair, without and with maps
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def _cpu_name() -> str:
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines():
            if line.startswith("Model name"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown CPU"


def _pairs(root: Path, n: int, size: int) -> None:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    for i in range(n):
        base = np.stack([127 + 80 * np.sin(xx / (7 + c * 3) + i) * np.cos(yy / (11 + c)) for c in range(3)], axis=2)
        gt = np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8)
        rest = np.clip(gt + rng.normal(0, 12, gt.shape), 0, 255).astype(np.uint8)
        for side, arr in (("gt", gt), ("restored", rest)):
            (root / side).mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr).save(root / side / f"{i:03d}.png")


_PEAK = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
         "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def memory(root: Path, weights: str, side: int, layers: str) -> dict:
    """Peak RSS (MB) of a fresh ``hlcli score`` on one side x side pair, without and with maps
    (a small launcher process per run, so ru_maxrss is that run's own)."""
    _pairs(root / "big", 1, side)
    out = {}
    for label, extra in (("no_maps_mb", []), ("maps_mb", ["--save-maps", str(root / "bigmaps")])):
        cmd = [sys.executable, "-c", _PEAK, sys.executable, "-m", "hlcli", "score", str(root / "big" / "restored"),
               str(root / "big" / "gt"), "--weights", weights, "--layers", layers, "--device", "cpu", "-q",
               "-f", "csv", "-o", str(root / "big.csv"), *extra]
        res = subprocess.run(cmd, capture_output=True, text=True, check=True)
        out[label] = int(res.stdout.split()[-1]) / 1024
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=32)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--weights", help="VGG-19 checkpoint (default: seeded random features, same speed)")
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--memory", action="store_true", help="measure peak RSS on one large pair instead")
    ap.add_argument("--memory-side", type=int, default=4096)
    ap.add_argument("--memory-layers", default="conv3_3,conv4_3")
    args = ap.parse_args()

    import torch

    import hlcli

    root = Path(tempfile.mkdtemp(prefix="hlcli-maps-bench-"))
    try:
        weights = args.weights
        if weights is None:
            sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
            from conftest import make_vgg19_state_dict

            weights = str(root / "w.pth")
            torch.save(make_vgg19_state_dict(), weights)
        if args.memory:
            result = {"cpu": _cpu_name(), "side": args.memory_side, "layers": args.memory_layers,
                      **memory(root, weights, args.memory_side, args.memory_layers)}
            print(f"{result['cpu']}: one {args.memory_side}x{args.memory_side} pair, layers {args.memory_layers}: "
                  f"peak RSS {result['no_maps_mb']:.0f} MB without --save-maps, {result['maps_mb']:.0f} MB with")
            if args.json:
                Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
            return
        _pairs(root, args.pairs, args.size)
        common = dict(weights=weights, device="cpu")
        hlcli.score_dirs(root / "restored", root / "gt", **common)  # warm-up
        plain, maps, plain_cpu, maps_cpu = [], [], [], []
        for r in range(args.rounds):
            t, c = time.perf_counter(), time.process_time()
            hlcli.score_dirs(root / "restored", root / "gt", **common)
            plain.append(time.perf_counter() - t)
            plain_cpu.append(time.process_time() - c)
            out = root / f"maps{r}"
            t, c = time.perf_counter(), time.process_time()
            hlcli.score_dirs(root / "restored", root / "gt", save_maps=str(out), **common)
            maps.append(time.perf_counter() - t)
            maps_cpu.append(time.process_time() - c)
            shutil.rmtree(out)
        result = {
            "cpu": _cpu_name(), "threads": torch.get_num_threads(), "pairs": args.pairs,
            "size": args.size, "rounds": args.rounds, "torch": torch.__version__,
            "no_maps_s": statistics.median(plain), "maps_s": statistics.median(maps),
            "ratio": statistics.median(maps) / statistics.median(plain),
            "no_maps_cpu_s": statistics.median(plain_cpu), "maps_cpu_s": statistics.median(maps_cpu),
            "cpu_ratio": statistics.median(maps_cpu) / statistics.median(plain_cpu),
            "all_no_maps_s": plain, "all_maps_s": maps, "all_no_maps_cpu_s": plain_cpu, "all_maps_cpu_s": maps_cpu,
        }
        print(f"{result['cpu']}, {result['threads']} threads, {args.pairs} pairs of {args.size}x{args.size}, "
              f"median of {args.rounds} interleaved rounds:")
        print(f"  without --save-maps {result['no_maps_s']:.2f} s, with {result['maps_s']:.2f} s: "
              f"{result['ratio']:.2f}x wall time")
        print(f"  CPU time of this process: {result['no_maps_cpu_s']:.2f} s and {result['maps_cpu_s']:.2f} s: "
              f"{result['cpu_ratio']:.2f}x (less sensitive to other load on a shared machine)")
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
