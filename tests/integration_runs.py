"""Synthetic runs for the integration writers: real hlcli Run, PairResult and GateSpec objects
(no torch), so gate sections are the ones hlcli computes."""

from __future__ import annotations

import random

from hlcli.analysis.gate import GateSpec, parse_gate, parse_limit, scoped
from hlcli.runs.results import PairResult, Run, Skipped


def make_run(n: int = 6, *, seed: int = 0, shift: float = 0.0, extra=("psnr",), group_by: str = "none",
             keys=None, skipped=()) -> Run:
    rng = random.Random(seed)
    keys = keys or [f"{'Set5/' if group_by != 'none' and i % 2 else 'Urban/' if group_by != 'none' else ''}img{i:05d}"
                    for i in range(n)]
    pairs = []
    for k in keys:
        l1 = 0.02 + 0.01 * rng.random() + shift
        c33 = 0.5 + rng.random() + 10 * shift
        hyb = l1 + 0.05 * c33
        ex = {"psnr": 30.0 - 100 * shift + rng.random()} if "psnr" in extra else {}
        pairs.append(PairResult(k, f"out/{k}.png", f"gt/{k}.png", 32, 32, l1, {"conv3_3": c33}, c33, hyb, extra=ex))
    settings = {"lambda": 0.05, "layers": [{"name": "conv3_3", "weight": 1.0}], **({"metrics": list(extra)} if extra else {}),
                **({"group_by": group_by} if group_by != "none" else {})}
    run = Run(settings=settings, environment={}, layer_names=["conv3_3"], pairs=pairs)
    run.skipped = [Skipped(k, f"out/{k}.png", f"cannot decode the image (out/{k}.png): truncated", 2) for k in skipped]
    return run


def gate(run: Run, fail_if=(), limits=(), pair_limits=(), baseline: Run | None = None) -> Run:
    spec = GateSpec([parse_gate(g) for g in fail_if],
                    scoped([parse_limit(x) for x in limits], [parse_limit(x) for x in pair_limits]))
    if baseline is not None:
        spec.baseline, spec.baseline_path = baseline.document(), "old.json"
    run.gate = spec.evaluate(run)
    return run
