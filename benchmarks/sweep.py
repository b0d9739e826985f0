#!/usr/bin/env python
"""What a checkpoint sweep saves (issue #19): N models against one ground truth in one
``hlcli.score_models`` call, versus N separate ``hlcli.score_dirs`` runs, on the same generated
images; the figures docs/performance.md quotes.

* **time**: 8 ground-truth PNGs of 512x512 and N models (each a differently degraded copy),
  default layers; the sweep and the N separate runs measured in interleaved rounds (in this
  process, so neither pays Python's or torch's start-up: the ratio is the work saved), medians
  of CPU time (robust to other tenants of a shared machine) and of wall time, with the ratio
  sweep / separate of CPU time. Bounds: 4 models <= 0.65, 16 models <= 0.60
  (the forward passes alone predict (N + 1) / 2N: 0.625 and 0.53);
* **memory**: peak RSS (VmHWM) of one single run and of the 4-model sweep, each in a fresh
  process. Bound: sweep <= 1.3x single.

The weights' values do not change the speed: a seeded random VGG-19 checkpoint is generated.
The CPU (or GPU) is named in the output.

Usage::

    python benchmarks/sweep.py                     # CPU: 4 and 16 models, 8 images (about 20 minutes on 2 cores)
    python benchmarks/sweep.py --quick             # smoke run (2 models, 2 small images)
    python benchmarks/sweep.py --device cuda --models 4,16 --images 64 --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
import hlcli.engine.batch  # noqa: E402,F401  (before torch: the CLI's allocator settings)
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

BOUNDS = {4: 0.65, 16: 0.60}
RSS_BOUND = 1.3


def device_name(device: str) -> str:
    """The GPU's name, or the CPU's model, threads and instruction sets (hlcli info's record)."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(0)
    from hlcli.engine.sysinfo import cpu_info

    cpu = cpu_info()
    return f"{cpu['model']} ({cpu['threads']} threads, {cpu['capability']}, flags: {' '.join(cpu['flags']) or 'none'})"


def make_tree(root: Path, size: int, images: int, models: int) -> tuple[dict[str, Path], Path]:
    """``images`` photo-like ground-truth PNGs and ``models`` folders of degraded copies."""
    rng = np.random.default_rng(size)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    folders = {f"m{m:02d}": root / f"m{m:02d}" for m in range(models)}
    for i in range(images):
        base = np.stack([127 + 80 * np.sin(xx / (7 + c + i) + i) * np.cos(yy / (11 + c)) for c in range(3)], axis=2)
        gt = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
        (root / "gt").mkdir(parents=True, exist_ok=True)
        Image.fromarray(gt).save(root / "gt" / f"{i}.png")
        for m, folder in enumerate(folders.values()):
            folder.mkdir(parents=True, exist_ok=True)
            restored = np.clip(gt + rng.normal(0, 2 + m, gt.shape), 0, 255).astype(np.uint8)
            Image.fromarray(restored).save(folder / f"{i}.png")
    return folders, root / "gt"


def make_weights(root: Path) -> str:
    import torchvision

    torch.manual_seed(0)
    sd = {k: v for k, v in torchvision.models.vgg19(weights=None).state_dict().items() if k.startswith("features.")}
    path = str(root / "vgg19.pth")
    torch.save(sd, path)
    return path


def time_models(folders: dict[str, Path], gt: Path, opts: dict, rounds: int) -> dict[str, float]:
    """Median seconds of the sweep and of the separate runs, in interleaved rounds: CPU time of
    this process (all its threads; ``time.process_time``), which other tenants of a shared
    machine do not inflate, and wall time. The ratio is of CPU time (``wall_ratio`` beside it).
    The documents are checked equal on the way (the benchmark measures the same work)."""
    cpu = {"sweep": [], "separate": []}
    wall = {"sweep": [], "separate": []}

    def timed(kind: str, fn):
        c0, w0 = time.process_time(), time.perf_counter()
        out = fn()
        cpu[kind].append(time.process_time() - c0)
        wall[kind].append(time.perf_counter() - w0)
        return out

    for _ in range(rounds):
        runs = timed("sweep", lambda: hlcli.score_models(folders, gt, **opts))
        singles = timed("separate", lambda: {name: hlcli.score_dirs(path, gt, **opts) for name, path in folders.items()})
        for name in folders:
            assert [p.__dict__ for p in runs[name].pairs] == [p.__dict__ for p in singles[name].pairs], name
    med = {k: {kind: statistics.median(v) for kind, v in d.items()} for k, d in (("cpu", cpu), ("wall", wall))}
    return {"sweep_s": med["cpu"]["sweep"], "separate_s": med["cpu"]["separate"],
            "ratio": med["cpu"]["sweep"] / med["cpu"]["separate"],
            "sweep_wall_s": med["wall"]["sweep"], "separate_wall_s": med["wall"]["separate"],
            "wall_ratio": med["wall"]["sweep"] / med["wall"]["separate"], "rounds": rounds}


PEAK = """
import sys, json
sys.path.insert(0, {root!r})
import hlcli
folders, gt, opts = json.loads(sys.argv[1])
if len(folders) == 1:
    hlcli.score_dirs(next(iter(folders.values())), gt, **opts)
else:
    hlcli.score_models(folders, gt, **opts)
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        print(int(line.split()[1]) * 1024)
"""


def peak_rss(folders: dict[str, Path], gt: Path, opts: dict) -> int:
    """Peak RSS in bytes of one fresh process scoring ``folders`` (one: a single run)."""
    arg = json.dumps([{k: str(v) for k, v in folders.items()}, str(gt), opts])
    out = subprocess.run([sys.executable, "-c", PEAK.format(root=str(ROOT)), arg], capture_output=True, text=True,
                         check=True)
    return int(out.stdout.split()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--models", default="4,16", help="comma-separated model counts (default 4,16)")
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=2, help="rounds for 4 models; larger counts run 1")
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 models, 2 images of 96 px, 1 round")
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = ap.parse_args()
    counts = [2] if args.quick else [int(n) for n in args.models.split(",")]
    images, size, rounds = (2, 96, 1) if args.quick else (args.images, args.size, args.rounds)
    result: dict = {"machine": device_name(args.device), "torch": torch.__version__, "threads": torch.get_num_threads(),
                    "images": images, "size": size, "time": {}}
    print(f"machine: {result['machine']}; torch {torch.__version__}, {result['threads']} threads")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        opts = {"weights": make_weights(root), "device": args.device, "workers": 0 if args.device == "cpu" else None}
        folders, gt = make_tree(root, size, images, max(counts))
        hlcli.score_dirs(next(iter(folders.values())), gt, **opts)  # warm-up: caches, allocator
        for n in counts:
            chosen = dict(list(folders.items())[:n])
            t = time_models(chosen, gt, opts, rounds if n <= 4 else 1)
            result["time"][n] = t
            bound = BOUNDS.get(n)
            print(f"{n:>2} models x {images} images of {size}x{size}: CPU time: sweep {t['sweep_s']:.1f} s, "
                  f"{n} separate runs {t['separate_s']:.1f} s, ratio {t['ratio']:.3f}"
                  + (f" (bound {bound}, predicted {(n + 1) / (2 * n):.3f})" if bound else "")
                  + f"; wall: {t['sweep_wall_s']:.1f} s vs {t['separate_wall_s']:.1f} s, ratio {t['wall_ratio']:.3f}")
        if args.device == "cpu":
            m4 = dict(list(folders.items())[: min(4, len(folders))])
            single = peak_rss(dict(list(m4.items())[:1]), gt, opts)
            swept = peak_rss(m4, gt, opts)
            result["peak_rss"] = {"single": single, "sweep": swept, "ratio": swept / single, "models": len(m4)}
            print(f"peak RSS: single run {single / 2**20:.0f} MiB, {len(m4)}-model sweep {swept / 2**20:.0f} MiB, "
                  f"ratio {swept / single:.3f} (bound {RSS_BOUND})")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    ok = all(result["time"][n]["ratio"] <= b for n, b in BOUNDS.items() if n in result["time"])
    ok = ok and result.get("peak_rss", {}).get("ratio", 0) <= RSS_BOUND
    return 0 if ok or args.quick else 1


if __name__ == "__main__":
    sys.exit(main())
