#!/usr/bin/env python
"""What a sweep saves on FID and KID (issue #25): K models against one ground truth with
``--metrics fid,kid`` in one ``hlcli.score_models`` call, versus K separate ``hlcli.score_dirs``
runs with the same metrics, on the same generated images (benchmarks/sweep.py's tree); the
figures docs/performance.md quotes.

* **Inception samples**: every sample the FID Inception sees, counted (the network wrapped):
  a sweep forwards N·(K + 1) (each ground-truth sample once, each model's restored ones), K
  separate runs 2·N·K; the ground-truth samples are told apart by their bytes and each must be
  forwarded exactly once in the sweep. Checked, not just printed: the benchmark fails otherwise;
* **time**: CPU time (``time.process_time``, robust to other tenants of a shared machine) of the
  Inception's forwards alone and of the whole call, medians over interleaved rounds, with the
  ratio sweep / separate against the baseline measured in the same rounds. The forwards alone
  predict (K + 1) / 2K for the Inception (0.625 for 4 models); the whole call's ratio also holds
  VGG-19's sharing (benchmarks/sweep.py). Bound: Inception ratio <= (K + 1) / 2K + 0.1.

Each model's FID and KID in the sweep are checked equal (bit for bit) to its single run's.
Random weights (the values do not change the speed). The CPU (or GPU) is named in the output.

Usage::

    python benchmarks/sweep_fid.py                       # 4 models, 8 images of 512 px, 3 rounds
    python benchmarks/sweep_fid.py --images 4 --size 256 --rounds 2
    python benchmarks/sweep_fid.py --quick               # smoke run (2 models, 2 images of 96 px)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for p in (ROOT, ROOT / "benchmarks"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))
import hlcli.engine.batch  # noqa: E402,F401  (before torch: the CLI's allocator settings)
import torch  # noqa: E402

import hlcli  # noqa: E402
from hlcli.errors import InputWarning  # noqa: E402
from hlcli.nets import inception  # noqa: E402
from sweep import device_name, make_tree, make_weights  # noqa: E402  (benchmarks/sweep.py)


class Counter:
    """Wraps the Inception hlcli builds: the samples it sees (sha256 of each) and its CPU time."""

    def __init__(self) -> None:
        self.samples: list[str] = []
        self.cpu_s = 0.0
        self.build = inception.build
        inception.build = self._build

    def _build(self, *args, **kwargs):
        net = self.build(*args, **kwargs)

        def forward(x):
            self.samples += [hashlib.sha256(t.contiguous().cpu().numpy().tobytes()).hexdigest() for t in x]
            c0 = time.process_time()
            out = net(x)
            self.cpu_s += time.process_time() - c0
            return out
        return forward

    def take(self) -> tuple[list[str], float]:
        out = (self.samples, self.cpu_s)
        self.samples, self.cpu_s = [], 0.0
        return out


def measure(folders: dict, gt: Path, opts: dict, rounds: int, counter: Counter) -> dict:
    k, cpu, inc = len(folders), {"sweep": [], "separate": []}, {"sweep": [], "separate": []}
    counts = {}
    for _ in range(rounds):
        c0 = time.process_time()
        runs = hlcli.score_models(folders, gt, **opts)
        cpu["sweep"].append(time.process_time() - c0)
        swept, inc_s = counter.take()
        inc["sweep"].append(inc_s)
        c0 = time.process_time()
        singles, gt_samples, separate = {}, set(), []
        for name, path in folders.items():
            singles[name] = hlcli.score_dirs(path, gt, **opts)
            seen, inc_s = counter.take()
            gt_samples |= set(seen[1::2])  # a single run's batches are [restored, gt]
            separate += seen
            inc.setdefault("_sep", []).append(inc_s)
        cpu["separate"].append(time.process_time() - c0)
        inc["separate"].append(sum(inc.pop("_sep")))
        for name in folders:
            a, b = runs[name].summary()["sets"], singles[name].summary()["sets"]
            if a != b:
                raise SystemExit(f"{name}: the sweep's set values differ from the single run's: {a} != {b}")
        once = all(swept.count(h) == 1 for h in gt_samples)
        n = len(gt_samples)
        pads = sum(a == b for a, b in zip(swept[::2], swept[1::2]))  # an odd one out beside its copy
        counts = {"gt_samples": n, "sweep": len(swept) - pads, "padding": pads, "separate": len(separate),
                  "expected_sweep": n * (k + 1), "expected_separate": 2 * n * k, "gt_once": once}
        if not once or counts["sweep"] != counts["expected_sweep"] or counts["separate"] != counts["expected_separate"]:
            raise SystemExit(f"unexpected Inception sample counts: {counts}")
    med = lambda d: {kind: statistics.median(v) for kind, v in d.items()}  # noqa: E731
    c, i = med(cpu), med(inc)
    return {"models": k, "rounds": rounds, "counts": counts, "sweep_s": c["sweep"], "separate_s": c["separate"],
            "ratio": c["sweep"] / c["separate"], "inception_sweep_s": i["sweep"],
            "inception_separate_s": i["separate"], "inception_ratio": i["sweep"] / i["separate"],
            "predicted_inception_ratio": (k + 1) / (2 * k)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--models", type=int, default=4)
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--dims", type=int, default=2048, help="--fid-dims (default 2048)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 models, 2 images of 96 px, 64 dims, 1 round")
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = ap.parse_args()
    warnings.simplefilter("ignore", InputWarning)  # the small-set note of tiny runs
    if args.quick:
        args.models, args.images, args.size, args.dims, args.rounds = 2, 2, 96, 64, 1
    with tempfile.TemporaryDirectory(prefix="hlcli-sweep-fid-") as tmp:
        root = Path(tmp)
        folders, gt = make_tree(root, args.size, args.images, args.models)
        incep = root / "inception.pth"
        torch.save(inception.random_state_dict(0), incep)
        opts = {"weights": make_weights(root), "inception_weights": str(incep), "device": args.device,
                "metrics": ("fid", "kid"), "fid_dims": args.dims, "workers": 0}
        counter = Counter()
        r = measure(folders, gt, opts, args.rounds, counter)
    r.update(machine=device_name(args.device), torch=torch.__version__, threads=torch.get_num_threads(),
             images=args.images, size=args.size, dims=args.dims)
    print(f"machine: {r['machine']}; torch {r['torch']}, {r['threads']} threads")
    c = r["counts"]
    print(f"{r['models']} models x {r['images']} images of {r['size']}x{r['size']}, fid+kid at {r['dims']} dims, "
          f"{r['rounds']} rounds (medians of CPU time)")
    print(f"  Inception samples: sweep {c['sweep']} (= N(K+1), each of the {c['gt_samples']} ground-truth samples "
          f"once: {c['gt_once']}; {c['padding']} odd ones beside a copy), separate runs {c['separate']} (= 2NK): {c['sweep'] / c['separate']:.3f}x")
    print(f"  Inception forwards, CPU time: sweep {r['inception_sweep_s']:.2f} s, separate {r['inception_separate_s']:.2f} s"
          f": {r['inception_ratio']:.3f}x (predicted {r['predicted_inception_ratio']:.3f})")
    print(f"  whole call, CPU time: sweep {r['sweep_s']:.1f} s, separate {r['separate_s']:.1f} s: {r['ratio']:.3f}x")
    bound = r["predicted_inception_ratio"] + 0.1
    ok = r["inception_ratio"] <= bound
    print(f"  bound: Inception ratio <= {bound:.3f}: {'ok' if ok else 'EXCEEDED'}")
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
