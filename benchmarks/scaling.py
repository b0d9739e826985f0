#!/usr/bin/env python
"""hlcli scale-out benchmark (docs/scaling.md):

* **ranks**: the same generated pairs scored by ``torchrun --standalone --nproc-per-node 2 -m hlcli
  score`` (2 ranks x 1 thread, gloo, CPU) and by one ``hlcli score`` process with 2 threads; wall
  time of each command, start-up included, median of ``--rounds``, with the CPU named;
* **planning and gathering**: the cost, on rank 0, of the sharding plan (pixel-balanced ranges
  and the plan hash over the keys) and of gathering 1,000,000 synthetic pair results from 2 real
  gloo ranks (``gather_object``, as hlcli.engine.distributed does) and assembling the one Run with its
  summary: time and rank-0 peak memory, no images.

Usage::

    python benchmarks/scaling.py --weights W.pth             # both parts (a few minutes on 2 cores)
    python benchmarks/scaling.py --weights W.pth --quick     # smoke run: 16 pairs, 10,000 records
    python benchmarks/scaling.py --json out.json ...         # also save every figure
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def make_pairs(root: Path, count: int, size: int) -> tuple[Path, Path]:
    from tests.conftest import degrade, save, textured

    for i in range(count):
        gt = textured(size, size, seed=i)
        save(root / "gt" / f"{i:05}.png", gt)
        save(root / "out" / f"{i:05}.png", degrade(gt, seed=i))
    return root / "out", root / "gt"


def bench_ranks(weights: str, pairs: int, size: int, rounds: int) -> dict:
    """2 ranks x 1 thread (torchrun) vs 1 process x 2 threads, wall time per command."""
    with tempfile.TemporaryDirectory() as tmp:
        out, gt = make_pairs(Path(tmp), pairs, size)
        common = ["score", str(out), str(gt), "--workers", "0", "-f", "json", "-q"]
        env = {**os.environ, "HLCLI_WEIGHTS": weights}
        commands = {
            "1 process x 2 threads": ([sys.executable, "-m", "hlcli", *common], {**env, "OMP_NUM_THREADS": "2"}),
            "2 ranks x 1 thread": ([sys.executable, "-m", "torch.distributed.run", "--standalone",
                                    "--nproc-per-node", "2", "-m", "hlcli", *common], env),
        }
        times: dict[str, list[float]] = {k: [] for k in commands}
        for _ in range(rounds):  # interleaved, so that load from other processes hits both
            for name, (cmd, e) in commands.items():
                t = time.perf_counter()
                subprocess.run(cmd, env=e, check=True, capture_output=True)
                times[name].append(time.perf_counter() - t)
    res = {name: {"median_s": statistics.median(v), "runs_s": v, "pairs_per_s": pairs / statistics.median(v)}
           for name, v in times.items()}
    one, two = res["1 process x 2 threads"]["median_s"], res["2 ranks x 1 thread"]["median_s"]
    return {"pairs": pairs, "size": size, "cpu": cpu_name(), "cores": os.cpu_count(), "results": res,
            "distributed_over_single": two / one}


def _records(rank: int, world: int, total: int) -> list:
    """This rank's share of ``total`` synthetic results, packed as hlcli.engine.distributed sends them."""
    from hlcli.engine.distributed import _pack
    from hlcli.runs.results import PairResult

    lo, hi = rank * total // world, (rank + 1) * total // world
    return [_pack(PairResult(f"video{i // 1000:04}/frame{i:07}", f"out/{i}.png", f"gt/{i}.png", 1920, 1080,
                             l1=0.01 + i * 1e-9, layers={"conv3_3": 0.002, "conv4_3": 0.001},
                             perceptual=0.003, hybrid=0.01015)) for i in range(lo, hi)]


def _gather_worker(rank: int, world: int, total: int, port: int, queue) -> None:  # noqa: ANN001
    import torch.distributed as dist

    from hlcli.engine.distributed import Outcome, assemble
    from hlcli.runs.results import Run

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    outcome = Outcome(rank, pairs=_records(rank, world, total))
    dist.barrier()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    gathered = [None] * world if rank == 0 else None
    dist.gather_object(outcome, gathered, dst=0)
    if rank == 0:
        t_gather = time.perf_counter() - t
        run = assemble(Run(settings={}, environment={}, layer_names=["conv3_3", "conv4_3"]), gathered)
        t_assemble = time.perf_counter() - t - t_gather
        summary = run.summary()
        t_summary = time.perf_counter() - t - t_gather - t_assemble
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        queue.put({"gather_s": t_gather, "assemble_s": t_assemble, "summary_s": t_summary,
                   "rank0_peak_rss_mib": peak / 1024, "rank0_rss_growth_mib": (peak - base) / 1024,
                   "count": summary["count"]})
    dist.destroy_process_group()


def bench_gather(total: int) -> dict:
    """Planning (ranges + hash) in this process; gathering with 2 real gloo ranks."""
    import socket

    import torch.multiprocessing as mp

    from hlcli.engine.sharding import plan_sha256, shard_ranges

    keys = [f"video{i // 1000:04}/frame{i:07}" for i in range(total)]
    costs = [1920 * 1080] * total
    t = time.perf_counter()
    ranges = shard_ranges(costs, 2)
    digest = plan_sha256(keys, {"lambda": 0.05})
    plan_s = time.perf_counter() - t
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_gather_worker, args=(r, 2, total, port, queue)) for r in range(2)]
    for p in procs:
        p.start()
    result = queue.get(timeout=1800)
    for p in procs:
        p.join()
    return {"records": total, "plan_s": plan_s, "ranges": ranges, "plan_sha256": digest[:12], **result}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=os.environ.get("HLCLI_WEIGHTS"), help="VGG-19 checkpoint (or $HLCLI_WEIGHTS)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--pairs", type=int, default=48)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--json", help="also save every figure here")
    args = ap.parse_args()
    if args.quick:
        args.pairs, args.rounds, args.records = 16, 1, 10_000
    out: dict = {}
    if args.weights:
        out["ranks"] = r = bench_ranks(args.weights, args.pairs, args.size, args.rounds)
        print(f"CPU: {r['cpu']} ({r['cores']} logical cores); {r['pairs']} pairs of {r['size']}x{r['size']}")
        for name, v in r["results"].items():
            print(f"  {name:24} {v['median_s']:7.2f} s  ({v['pairs_per_s']:.2f} pairs/s, start-up included)")
        print(f"  distributed / single: {r['distributed_over_single']:.2f}")
    else:
        print("no --weights and no $HLCLI_WEIGHTS: skipping the ranks comparison")
    out["gather"] = g = bench_gather(args.records)
    print(f"{g['records']:,} records: plan {g['plan_s']:.2f} s; gather {g['gather_s']:.2f} s, assemble "
          f"{g['assemble_s']:.2f} s, summary {g['summary_s']:.2f} s; rank-0 peak RSS {g['rank0_peak_rss_mib']:.0f} MiB "
          f"(+{g['rank0_rss_growth_mib']:.0f} MiB for the gather)")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
