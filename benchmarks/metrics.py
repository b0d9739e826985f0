#!/usr/bin/env python
"""What ``--metrics`` costs (issue #16): one run, same generated pairs, the figures
docs/performance.md quotes.

* **end to end**: ``hlcli.score_pairs`` over seeded photo-like PNG pairs at 256 and 512 px, default
  layers, with (a) no extra metric, (b) ``--metrics psnr,ssim,psnr_y,ssim_y``, (c) the same plus
  ``lpips``; measured in interleaved rounds (a, b, c in every round); the ratios b/a (bound 1.10)
  and c/a (bound 1.30) are the medians of each round's own ratios, so that a load that drifts
  between rounds on a shared machine cancels out;
* **per metric**: on one decoded batch, the time of VGG-19's measurement (the hybrid) and of each
  extra metric alone, as a fraction of the former.

The weights' values do not change the speed: seeded random VGG-19 and AlexNet / VGG-16
checkpoints in torchvision's format are generated. The CPU (or GPU) is named in the output.

Usage::

    python benchmarks/metrics.py                 # CPU, 8 pairs per size, 3 rounds (about 4 minutes)
    python benchmarks/metrics.py --quick         # smoke run
    python benchmarks/metrics.py --device cuda --pairs 64 --sizes 512 --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
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

PIXEL = ("psnr", "ssim", "psnr_y", "ssim_y")
CONFIGS = {"hybrid only": (), "+ psnr,ssim,psnr_y,ssim_y": PIXEL, "+ those and lpips": (*PIXEL, "lpips")}
BOUNDS = {"+ psnr,ssim,psnr_y,ssim_y": 1.10, "+ those and lpips": 1.30}


def device_name(device: str) -> str:
    """The GPU's name, or the CPU's model, threads and instruction sets (hlcli info's record)."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(0)
    from hlcli.engine.sysinfo import cpu_info

    cpu = cpu_info()
    return f"{cpu['model']} ({cpu['threads']} threads, {cpu['capability']}, flags: {' '.join(cpu['flags']) or 'none'})"


def make_pairs(root: Path, size: int, count: int) -> list[tuple[Path, Path]]:
    rng = np.random.default_rng(size)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    pairs = []
    for i in range(count):
        base = np.stack([127 + 80 * np.sin(xx / (7 + c + i) + i) * np.cos(yy / (11 + c)) for c in range(3)], axis=2)
        gt = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
        restored = np.clip(gt + rng.normal(0, 8, gt.shape), 0, 255).astype(np.uint8)
        pairs.append(save_pair(root, size, i, restored, gt))
    return pairs


def save_pair(root: Path, size: int, i: int, restored: np.ndarray, gt: np.ndarray) -> tuple[Path, Path]:
    """Pair ``i`` of the ``size`` set as PNG files ``root/<size>/r/<i>.png`` and ``.../g/<i>.png``."""
    r, g = root / f"{size}" / "r" / f"{i}.png", root / f"{size}" / "g" / f"{i}.png"
    for path, arr in ((r, restored), (g, gt)):
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(path)
    return r, g


def random_backbones(root: Path, nets: tuple[str, ...]) -> dict[str, str]:
    """Seeded random torchvision backbones (``features.*`` only), one ``root/<net>.pth`` each, in
    ``nets`` order from ``torch.manual_seed(0)``: the values do not change the speed."""
    import torchvision

    torch.manual_seed(0)
    out = {}
    for name in nets:
        sd = {k: v for k, v in getattr(torchvision.models, name)(weights=None).state_dict().items()
              if k.startswith("features.")}
        out[name] = str(root / f"{name}.pth")
        torch.save(sd, out[name])
    return out


def print_figures(title: str, e2e: dict[str, float], ratios: dict[str, float], bounds: dict[str, float],
                  per_pair: str, costs: dict[str, float]) -> None:
    """The end-to-end medians and ratios (with each bound's verdict), then the per-pair costs as
    shares of VGG-19's (``costs["hybrid (VGG-19)"]``); shared by benchmarks/realism.py."""
    print(f"\n{title} (median time; median of the rounds' ratios):")
    width = max(map(len, e2e))
    for name, secs in e2e.items():
        bound, ratio = bounds.get(name), ratios[name]
        verdict = "" if bound is None else f"  (bound {bound:.2f}: {'ok' if ratio <= bound else 'OVER'})"
        print(f"  {name:{width}s} {secs:8.3f} s  {ratio:5.3f}x{verdict}")
    print(f"  {per_pair}:")
    width = max(map(len, costs))
    for name, secs in costs.items():
        print(f"    {name:{width}s} {secs * 1e3:9.2f} ms  {secs / costs['hybrid (VGG-19)']:6.1%} of VGG-19")


def make_weights(root: Path) -> dict[str, str]:
    return random_backbones(root, ("vgg19", "alexnet"))


def end_to_end(pairs, weights, device: str, rounds: int) -> dict[str, list[float]]:
    import hlcli

    times: dict[str, list[float]] = {name: [] for name in CONFIGS}
    for name, metrics in CONFIGS.items():  # warm-up: networks built, caches filled
        hlcli.score_pairs(pairs[:1], weights=weights["vgg19"], lpips_weights=weights["alexnet"], metrics=metrics,
                          device=device)
    for _ in range(rounds):
        for name, metrics in CONFIGS.items():
            start = time.perf_counter()
            hlcli.score_pairs(pairs, weights=weights["vgg19"], lpips_weights=weights["alexnet"], metrics=metrics,
                              device=device)
            times[name].append(time.perf_counter() - start)
    return times


def per_metric(pairs, weights, device: str, repeats: int = 3) -> dict[str, float]:
    """Seconds per pair of VGG-19's measurement and of each extra metric alone, on one batch."""
    from hlcli.engine import batch as engine
    from hlcli.nets import layers
    from hlcli.nets import weights as w
    from hlcli.metrics.extras import ExtraScorer
    from hlcli.nets.lpips_net import build
    from hlcli.metrics.lpips import LoadedLPIPS

    dev = torch.device(device)
    batch = [np.asarray(Image.open(p)) for pair in pairs for p in pair]
    # the loader's layout: (N, H, W, 3) arrays seen as (N, 3, H, W), i.e. channels-last memory
    r = torch.from_numpy(np.stack(batch[0::2])).permute(0, 3, 1, 2)
    g = torch.from_numpy(np.stack(batch[1::2])).permute(0, 3, 1, 2)
    scorer = engine.BatchScorer(w.load(w.resolve(weights["vgg19"])).state_dict, layers.resolve_layers(list(layers.DEFAULT_LAYERS)),
                                device=dev)
    nets = {"lpips-alex": LoadedLPIPS(build("alex", weights["alexnet"], offline=True)[0].to(dev), {})}
    jobs = {"hybrid (VGG-19)": lambda: scorer.measure(r, g, 255)}
    for m in (*PIXEL, "lpips"):
        extra = ExtraScorer([m], dev, nets)
        jobs[m] = (lambda e: lambda: e.measure(r, g, 255))(extra)
    out = {}
    for name, job in jobs.items():
        job()
        best = min(_timed(job, dev) for _ in range(repeats))
        out[name] = best / r.shape[0]
    return out


def _timed(job, dev) -> float:
    if dev.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    job()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--sizes", default="256,512")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--quick", action="store_true", help="2 pairs of 128 px, 1 round (a smoke run)")
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args()
    if args.quick:
        args.pairs, args.sizes, args.rounds = 2, "128", 1
    report = {"device": device_name(args.device), "pairs": args.pairs, "rounds": args.rounds, "sizes": {}}
    print(f"device: {report['device']}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        weights = make_weights(root)
        for size in (int(s) for s in args.sizes.split(",")):
            pairs = make_pairs(root, size, args.pairs)
            times = end_to_end(pairs, weights, args.device, args.rounds)
            costs = per_metric(pairs, weights, args.device)
            e2e = {k: statistics.median(v) for k, v in times.items()}
            ratios = {k: statistics.median(x / y for x, y in zip(v, times["hybrid only"])) for k, v in times.items()}
            entry = {"seconds": e2e, "ratio": ratios, "round_seconds": times,
                     "per_pair_seconds": costs,
                     "fraction_of_vgg": {k: v / costs["hybrid (VGG-19)"] for k, v in costs.items()}}
            report["sizes"][str(size)] = entry
            print_figures(f"{size}x{size}, {args.pairs} pairs, {args.rounds} interleaved rounds", e2e, ratios, BOUNDS,
                          "per pair, one batch", costs)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    over = [(s, k) for s, e in report["sizes"].items() for k, b in BOUNDS.items() if e["ratio"][k] > b]
    return 1 if over and not args.quick else 0


if __name__ == "__main__":
    sys.exit(main())
