#!/usr/bin/env python
"""What ``--metrics niqe`` and ``--metrics dists`` cost (issue #24): the figures docs/performance.md
quotes.

* **end to end**: ``hlcli.score_pairs`` over 512x512 photo pairs (scikit-image's bundled photos,
  resized; the restored side with noise and a JPEG round trip), default layers, with (a) no extra
  metric (a default run: L1 + VGG-19 conv3_3,conv4_3), (b) ``--metrics niqe``, (c) ``--metrics
  dists``; interleaved rounds (a, b, c in every round), each ratio the median of the rounds' own
  ratios, so that a load that drifts between rounds on a shared machine cancels out. Bound:
  NIQE adds at most 15 % (b/a <= 1.15); DISTS has no bound, its cost is stated;
* **per metric**: on one decoded batch, the CPU seconds per pair of VGG-19's measurement (the
  hybrid), of NIQE and of DISTS, each alone (process CPU time: the same on a loaded machine).

The weights' values do not change the speed: seeded random VGG-19 / VGG-16 checkpoints, random
DISTS alpha/beta and a NIQE model of the right shapes are generated. The CPU is named.

Usage::

    python benchmarks/realism.py               # CPU, 8 pairs of 512x512, 5 rounds (about 10 minutes on 2 cores)
    python benchmarks/realism.py --quick       # smoke run
    python benchmarks/realism.py --rounds 3 --json out.json
"""

from __future__ import annotations

import argparse
import io
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

from benchmarks.metrics import print_figures, random_backbones, save_pair  # noqa: E402

CONFIGS = {"default run": (), "+ niqe": ("niqe",), "+ dists": ("dists",)}
BOUNDS = {"+ niqe": 1.15}
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field", "retina", "cat")


def device_name() -> str:
    from hlcli.engine.sysinfo import cpu_info

    cpu = cpu_info()
    return f"{cpu['model']} ({cpu['threads']} threads, {cpu['capability']})"


def make_pairs(root: Path, size: int, count: int) -> list[tuple[Path, Path]]:
    from skimage import data

    rng = np.random.default_rng(size)
    pairs = []
    for i in range(count):
        photo = Image.fromarray(getattr(data, PHOTOS[i % len(PHOTOS)])()[..., :3]).resize((size, size), Image.BICUBIC)
        gt = np.asarray(photo)
        noisy = np.clip(gt + rng.normal(0, 6, gt.shape), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(noisy).save(buf, "JPEG", quality=60)
        restored = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
        pairs.append(save_pair(root, size, i, restored, gt))
    return pairs


def make_files(root: Path) -> dict[str, str]:
    out = random_backbones(root, ("vgg19", "vgg16"))
    out["dists"] = str(root / "dists.pt")
    torch.save({"alpha": torch.rand(1, 1475, 1, 1), "beta": torch.rand(1, 1475, 1, 1)}, out["dists"])
    rng = np.random.default_rng(0)
    a = rng.normal(size=(36, 36))
    g = np.exp(-((np.arange(7) - 3) ** 2) / (2 * (7 / 6) ** 2))
    out["niqe"] = str(root / "niqe.npz")
    np.savez(out["niqe"], mu_pris_param=rng.normal(size=(1, 36)), cov_pris_param=a @ a.T + np.eye(36),
             gaussian_window=np.outer(g, g) / np.outer(g, g).sum())
    return out


def options(files: dict[str, str], metrics: tuple[str, ...]) -> dict:
    return {"weights": files["vgg19"], "vgg16_weights": files["vgg16"], "dists_weights": files["dists"],
            "niqe_params": files["niqe"], "metrics": metrics, "device": "cpu"}


def end_to_end(pairs, files, rounds: int) -> dict[str, list[float]]:
    import hlcli

    times: dict[str, list[float]] = {name: [] for name in CONFIGS}
    for metrics in CONFIGS.values():  # warm-up: networks built, caches filled
        hlcli.score_pairs(pairs[:1], **options(files, metrics))
    for _ in range(rounds):
        for name, metrics in CONFIGS.items():
            start = time.perf_counter()
            hlcli.score_pairs(pairs, **options(files, metrics))
            times[name].append(time.perf_counter() - start)
    return times


def per_metric(pairs, files, repeats: int = 3) -> dict[str, float]:
    """CPU seconds per pair of VGG-19's measurement and of NIQE and DISTS alone, on one batch."""
    from hlcli.engine import batch as engine
    from hlcli.engine.options import ScoreOptions
    from hlcli.metrics.extras import ExtraScorer, load_nets
    from hlcli.nets import layers
    from hlcli.nets import weights as w

    dev = torch.device("cpu")
    batch = [np.asarray(Image.open(p)) for pair in pairs for p in pair]
    r = torch.from_numpy(np.stack(batch[0::2])).permute(0, 3, 1, 2)  # the loader's channels-last layout
    g = torch.from_numpy(np.stack(batch[1::2])).permute(0, 3, 1, 2)
    scorer = engine.BatchScorer(w.load(w.resolve(files["vgg19"])).state_dict,
                                layers.resolve_layers(list(layers.DEFAULT_LAYERS)), device=dev)
    opts = ScoreOptions(**options(files, ("niqe", "dists")))
    nets = load_nets(["niqe", "dists"], opts, dev)
    jobs = {"hybrid (VGG-19)": lambda: scorer.measure(r, g, 255)}
    for m in ("niqe", "dists"):
        extra = ExtraScorer([m], dev, nets)
        jobs[m] = (lambda e: lambda: e.measure(r, g, 255))(extra)
    out = {}
    for name, job in jobs.items():
        job()
        best = min(_cpu_timed(job) for _ in range(repeats))
        out[name] = best / r.shape[0]
    return out


def _cpu_timed(job) -> float:
    start = time.process_time()
    job()
    return time.process_time() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="2 pairs of 192 px, 1 round (a smoke run)")
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args()
    if args.quick:
        args.pairs, args.size, args.rounds = 2, 192, 1
    report = {"device": device_name(), "torch_threads": torch.get_num_threads(), "pairs": args.pairs,
              "size": args.size, "rounds": args.rounds}
    print(f"device: {report['device']}, torch threads: {report['torch_threads']}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = make_files(root)
        pairs = make_pairs(root, args.size, args.pairs)
        times = end_to_end(pairs, files, args.rounds)
        costs = per_metric(pairs, files)
    e2e = {k: statistics.median(v) for k, v in times.items()}
    ratios = {k: statistics.median(x / y for x, y in zip(v, times["default run"])) for k, v in times.items()}
    report.update(seconds=e2e, ratio=ratios, round_seconds=times, cpu_seconds_per_pair=costs,
                  fraction_of_vgg={k: v / costs["hybrid (VGG-19)"] for k, v in costs.items()})
    print_figures(f"{args.size}x{args.size}, {args.pairs} pairs, {args.rounds} interleaved rounds", e2e, ratios,
                  BOUNDS, "CPU time per pair, one batch", costs)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    over = [k for k, b in BOUNDS.items() if ratios[k] > b]
    return 1 if over and not args.quick else 0


if __name__ == "__main__":
    sys.exit(main())
