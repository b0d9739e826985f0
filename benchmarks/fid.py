#!/usr/bin/env python
"""What ``--metrics fid`` costs (issue #25): a default run (L1 + VGG-19 conv3_3, conv4_3) on
512-pixel photos, with and without FID (2048 features, the ``clean`` resize), in interleaved rounds;
the ratio is the median of each round's own ratio (a load that drifts on a shared machine cancels
out). The bound is 1.30.

Photos: 512 x 512 crops of scikit-image's bundled colour photos (astronaut, coffee, chelsea, rocket,
immunohistochemistry, hubble_deep_field), each "restored" by a Gaussian blur. The weights' values do
not change the speed: seeded random VGG-19 and FID Inception checkpoints are generated.

Usage::

    python benchmarks/fid.py              # CPU, 6 pairs, 3 rounds
    python benchmarks/fid.py --rounds 1   # smoke run
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def photos(folder: Path) -> None:
    import skimage.data as data
    from PIL import Image, ImageFilter

    for name in ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field"):
        img = Image.fromarray(getattr(data, name)()).convert("RGB")
        w, h = img.size
        s = min(w, h)
        img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)).resize((512, 512), Image.LANCZOS)
        (folder / "gt").mkdir(parents=True, exist_ok=True)
        (folder / "restored").mkdir(parents=True, exist_ok=True)
        img.save(folder / "gt" / f"{name}.png")
        img.filter(ImageFilter.GaussianBlur(1.5)).save(folder / "restored" / f"{name}.png")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    import torch

    import hlcli
    from hlcli.nets.inception import random_state_dict
    from tests.conftest import make_vgg19_state_dict

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        photos(tmp)
        torch.save(make_vgg19_state_dict(0), tmp / "vgg.pth")
        torch.save(random_state_dict(0), tmp / "inception.pth")
        common = dict(weights=str(tmp / "vgg.pth"), offline=True)
        variants = {"default": {}, "fid": {"metrics": ("fid",), "inception_weights": str(tmp / "inception.pth")}}
        for v in variants.values():  # warm: caches, first-call costs
            hlcli.score_dirs(tmp / "restored", tmp / "gt", **common, **v)
        times: dict[str, list[float]] = {k: [] for k in variants}
        for _ in range(args.rounds):
            for k, v in variants.items():
                t = time.perf_counter()
                run = hlcli.score_dirs(tmp / "restored", tmp / "gt", **common, **v)
                times[k].append(time.perf_counter() - t)
            assert len(run.pairs) == 6 and run.summary()["sets"]["samples"] == 6
        ratios = [f / d for f, d in zip(times["fid"], times["default"])]
        out = {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
               "pairs": 6, "size": 512, "seconds": times, "ratio_median": statistics.median(ratios),
               "ratios": ratios, "bound": 1.30}
        print(json.dumps(out, indent=1))
        if args.json:
            args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
