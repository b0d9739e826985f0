#!/usr/bin/env python
"""Accuracy of ``--precision bf16|fp16`` against fp32: relative error of each layer's perceptual
value, of the perceptual sum and of the hybrid score, on the sample pairs (samples/) and on
generated photo-like pairs; plus the time of each precision on this machine.

Usage::

    python benchmarks/precision.py [--weights FILE] [--device cpu|cuda] [--json FILE]

Without ``--weights`` a seeded random VGG-19 is used (the real ImageNet weights produce
different activation statistics; rerun with them for the definitive table).
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
for p in (str(ROOT), str(ROOT / "benchmarks")):
    if p not in sys.path:
        sys.path.insert(0, p)
import hlcli.engine.batch  # noqa: E402,F401  (before torch)

import torch  # noqa: E402

from bench import degrade, make_weights, photo_like  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", type=Path)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--layers", default="conv3_3,conv4_3")
    ap.add_argument("--generated", type=int, default=4, help="generated pairs (256x256 and 512x384)")
    args = ap.parse_args(argv)

    from hlcli.inputs import images
    from hlcli.nets import weights
    from hlcli.engine.batch import BatchScorer
    from hlcli.metrics.hybrid import combine
    from hlcli.nets.layers import resolve_layers

    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        wpath = args.weights or make_weights(Path(tmp) / "vgg19-random-features.pth", full=False)
        state = weights.load(weights.resolve(str(wpath), offline=True), use_cache=False).state_dict
    specs = resolve_layers(args.layers.split(","))
    names = [s.name for s in specs]
    scorers = {p: BatchScorer(state, specs, device=device, precision=p)
               for p in ("fp32", "bf16", "fp16")}

    pairs = []
    samples = ROOT / "samples"
    for gt in sorted((samples / "gt").glob("*.png")):
        rest = next((samples / "restored").glob(gt.stem + ".*"), None)
        if rest is not None:
            pairs.append((f"samples/{gt.stem}", images.decode(rest), images.decode(gt)))
    for i in range(args.generated):
        h, w = (256, 256) if i % 2 == 0 else (384, 512)
        gt = photo_like(h, w, 500 + i)
        pairs.append((f"generated/{w}x{h}-{i}", degrade(gt, 500 + i), gt))

    rows = []
    times: dict[str, list[float]] = {p: [] for p in scorers}
    for name, r_arr, g_arr in pairs:
        r = torch.from_numpy(r_arr).permute(2, 0, 1)[None]
        g = torch.from_numpy(g_arr).permute(2, 0, 1)[None]
        out = {}
        for prec, sc in scorers.items():
            sc.measure(r, g, 255)  # warm-up (primitive creation)
            t0 = time.perf_counter()
            l1, per_layer = sc.measure(r, g, 255)
            times[prec].append(time.perf_counter() - t0)
            perceptual, hybrid = combine(l1, per_layer, [1.0] * len(specs), 0.05)
            out[prec] = (per_layer[0].tolist(), perceptual.item(), hybrid.item())
        ref_layers, ref_p, ref_h = out["fp32"]
        if ref_p == 0:
            continue  # identical images: every precision gives exactly 0
        row = {"pair": name, "size": f"{r_arr.shape[1]}x{r_arr.shape[0]}", "fp32": dict(zip(names, ref_layers))}
        for prec in ("bf16", "fp16"):
            layers, p, h = out[prec]
            row[prec] = {
                **{n: abs(v - rv) / rv for n, v, rv in zip(names, layers, ref_layers)},
                "perceptual": abs(p - ref_p) / ref_p,
                "hybrid": abs(h - ref_h) / ref_h,
            }
        rows.append(row)

    print(f"relative error vs fp32 ({device}, {'given' if args.weights else 'seeded random'} weights)")
    header = f"{'pair':<26} {'size':>9}  " + "  ".join(f"{p}:{n:<10}" for p in ("bf16", "fp16") for n in [*names, "hybrid"])
    print(header)
    for row in rows:
        print(f"{row['pair']:<26} {row['size']:>9}  " + "  ".join(
            f"{row[p][n]:<{len(p) + 11}.2e}" for p in ("bf16", "fp16") for n in [*names, "hybrid"]))
    summary = {}
    for prec in ("bf16", "fp16"):
        summary[prec] = {n: {"median": statistics.median(r[prec][n] for r in rows),
                             "max": max(r[prec][n] for r in rows)} for n in [*names, "perceptual", "hybrid"]}
    for prec, s in summary.items():
        print(f"{prec}: " + ", ".join(f"{n} median {v['median']:.1e} max {v['max']:.1e}" for n, v in s.items()))
    med_t = {p: statistics.median(t) for p, t in times.items()}
    print("time per pair (median): " + ", ".join(f"{p} {t * 1000:.0f} ms ({med_t['fp32'] / t:.2f}x fp32)"
                                                   for p, t in med_t.items()))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "summary": summary, "seconds": med_t,
                                         "device": str(device), "random_weights": args.weights is None},
                                        indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
