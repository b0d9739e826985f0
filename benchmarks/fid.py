#!/usr/bin/env python
"""What ``--metrics fid`` costs (issue #25): a default run (L1 + VGG-19 conv3_3, conv4_3) on
512-pixel photos, with and without FID (2048 features, the ``clean`` resize), in interleaved rounds;
the ratio is the median of each round's own ratio (a load that drifts on a shared machine cancels
out). The bound is 1.30. Each run is a whole ``hlcli.score_dirs`` call, so the FID run's figure
includes its fixed costs (reading and checking the 95 MB Inception checkpoint, the Fréchet
distance); ``inception_load_s`` says how much of it that is.

Photos: 512 x 512 crops of scikit-image's bundled colour photos (astronaut, coffee, chelsea, rocket,
immunohistochemistry, hubble_deep_field), each "restored" by Gaussian blurs of 1, 1.5, 2 and 2.5 px
(``--pairs`` of them, at most 24). The weights' values do not change the speed: seeded random
VGG-19 and FID Inception checkpoints are generated.

Usage::

    python benchmarks/fid.py              # CPU, 24 pairs, 3 rounds
    python benchmarks/fid.py --pairs 6 --rounds 1   # smoke run
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def photos(folder: Path, pairs: int = 24) -> None:
    import skimage.data as data
    from PIL import Image, ImageFilter

    for name in ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field"):
        img = Image.fromarray(getattr(data, name)()).convert("RGB")
        w, h = img.size
        s = min(w, h)
        img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)).resize((512, 512), Image.LANCZOS)
        (folder / "gt").mkdir(parents=True, exist_ok=True)
        (folder / "restored").mkdir(parents=True, exist_ok=True)
        for radius in (1.0, 1.5, 2.0, 2.5):
            if len(list((folder / "gt").iterdir())) >= pairs:
                return
            img.save(folder / "gt" / f"{name}-{radius}.png")
            img.filter(ImageFilter.GaussianBlur(radius)).save(folder / "restored" / f"{name}-{radius}.png")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pairs", type=int, default=24, choices=range(2, 25), metavar="2..24")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    import torch

    import hlcli
    from hlcli.engine.sysinfo import cpu_info
    from hlcli.metrics.setfeatures import load_features
    from hlcli.nets.inception import random_state_dict
    from tests.conftest import make_vgg19_state_dict

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        photos(tmp, args.pairs)
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
            assert len(run.pairs) == args.pairs and run.summary()["sets"]["samples"] == args.pairs
        t = time.perf_counter()
        load_features(hlcli.ScoreOptions(metrics=("fid",), inception_weights=str(tmp / "inception.pth"), offline=True), "cpu")
        load_s = time.perf_counter() - t
        ratios = [f / d for f, d in zip(times["fid"], times["default"])]
        cpu = cpu_info()
        out = {"cpu": f"{cpu['model']} ({cpu['capability']})", "threads": torch.get_num_threads(),
               "pairs": args.pairs, "size": 512, "seconds": times, "ratio_median": statistics.median(ratios),
               "ratios": ratios, "bound": 1.30, "inception_load_s": load_s}
        print(json.dumps(out, indent=1))
        if args.json:
            args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
