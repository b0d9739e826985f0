#!/usr/bin/env bash
# One short run that proves the GPU path on a machine with CUDA (issue #9), in under 8 minutes:
#   1. `hlcli info --bench --device cuda`     the machine, native precisions, pairs/s at 256x256
#   2. `pytest -m cuda tests/test_cuda.py`    CUDA == CPU, bf16/fp16 tolerance, OOM back-off, workers
#   3. `benchmarks/bench.py --gpu`            pairs/s at 512x512 for fp32, bf16, fp16 end to end from
#                                             PNG files, GPU utilisation, decode- or compute-bound,
#                                             the best --workers
#   4. `benchmarks/metrics.py --device cuda`  what --metrics psnr,ssim,psnr_y,ssim_y(,lpips) costs at
#                                             512x512 (GPU targets: <= 1.10x and <= 1.30x, as on CPU)
# and writes OUTDIR/summary.json and OUTDIR/summary.md (plus each step's own output and log).
#
# Usage: benchmarks/gpu.sh OUTDIR [--dry-run] [--weights FILE]   (options before or after OUTDIR)
#   --dry-run   print the commands (with their time limits) and the summary of what would run on
#               stdout; writes nothing (not even OUTDIR) and needs no GPU (tests/test_cuda.py runs it)
#   --weights   VGG-19 checkpoint for the throughput benchmark (default: seeded random weights;
#               the speed is the same)
# Environment: PAIRS (default 1000) pairs in the 512x512 throughput set.
set -euo pipefail

usage() { echo "usage: $0 OUTDIR [--dry-run] [--weights FILE]" >&2; exit 2; }
OUT=""; DRY=0; WEIGHTS=()
while [ $# -gt 0 ]; do
  case $1 in
    --dry-run) DRY=1 ;;
    --weights) [ $# -ge 2 ] || usage; WEIGHTS=(--weights "$2"); shift ;;
    -*) usage ;;
    *) [ -z "$OUT" ] || usage; OUT=$1 ;;
  esac
  shift
done
[ -n "$OUT" ] || usage
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-python}
PAIRS=${PAIRS:-1000}
if [ "$DRY" = 1 ]; then
  OUT=$(realpath -m -- "$OUT")  # absolute, and nothing created
else
  mkdir -p "$OUT"
  OUT=$(cd "$OUT" && pwd)
fi
cd "$ROOT"
Q=$(printf %q "$OUT")  # OUTDIR as one shell word inside the commands below

# name | time limit (s) | command; the limits add up to 450 s (7.5 min) at most.
STEPS=(
  "info|50|$PY -m hlcli info --bench --device cuda -f json -o $Q/info.json"
  "tests|140|$PY -m pytest -m cuda tests/test_cuda.py -q -p no:cacheprovider --junitxml=$Q/cuda-tests.xml"
  "bench|200|$PY benchmarks/bench.py --gpu --pairs $PAIRS --rounds 1 --skip baseline,limit,memory,startup,scaling,cli,tiling ${WEIGHTS[*]:-} --json $Q/bench.json"
  "metrics|60|$PY benchmarks/metrics.py --device cuda --pairs 64 --sizes 512 --rounds 2 --json $Q/metrics.json"
)

declare -A RC SECONDS_TAKEN
for step in "${STEPS[@]}"; do
  IFS='|' read -r name limit cmd <<<"$step"
  if [ "$DRY" = 1 ]; then
    echo "[$name] timeout ${limit}s: $cmd"
    RC[$name]=skipped; SECONDS_TAKEN[$name]=0
    continue
  fi
  echo "[$name] $cmd" >&2
  start=$(date +%s)
  set +e
  timeout "$limit" bash -c "$cmd" >"$OUT/$name.log" 2>&1
  RC[$name]=$?
  set -e
  SECONDS_TAKEN[$name]=$(( $(date +%s) - start ))
  echo "[$name] exit ${RC[$name]} in ${SECONDS_TAKEN[$name]} s (log: $OUT/$name.log)" >&2
done

# The summary: one JSON and one Markdown file from whatever the steps left.
"$PY" - "$OUT" "$DRY" "${RC[info]}" "${RC[tests]}" "${RC[bench]}" "${RC[metrics]}" \
  "${SECONDS_TAKEN[info]}" "${SECONDS_TAKEN[tests]}" "${SECONDS_TAKEN[bench]}" "${SECONDS_TAKEN[metrics]}" <<'PYEOF'
import json, re, sys
from pathlib import Path

out, dry = Path(sys.argv[1]), sys.argv[2] == "1"
STEPS = ("info", "tests", "bench", "metrics")
rcs = dict(zip(STEPS, sys.argv[3:7]))
secs = dict(zip(STEPS, map(int, sys.argv[7:11])))

def load(name):
    p = out / name
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None

info, bench, metrics = load("info.json"), load("bench.json"), load("metrics.json")
tests = None
junit = out / "cuda-tests.xml"
if junit.is_file():
    head = junit.read_text()[:2000]
    tests = {k: int(v) for k, v in re.findall(r'(tests|failures|errors|skipped)="(\d+)"', head)[:4]}
tp = (bench or {}).get("throughput_pairs_per_s", {})
summary = {
    "dry_run": dry,
    "steps": {k: {"exit": rcs[k], "seconds": secs[k]} for k in rcs},
    "machine": (bench or {}).get("machine") or (info or {}).get("cpu"),
    "devices": (info or {}).get("devices"),
    "info_bench_256": (info or {}).get("bench"),
    "cuda_tests": tests,
    "throughput_512_pairs_per_s": {p: tp.get(f"hlcli_{p}") for p in ("fp32", "bf16", "fp16")},
    "gpu_utilization_percent": (bench or {}).get("gpu_utilization_percent"),
    "bound": (bench or {}).get("bound"),
    "workers_fp32_pairs_per_s": (bench or {}).get("workers_fp32_pairs_per_s"),
    "best_workers": (bench or {}).get("best_workers"),
    "metrics_cost_512": (metrics or {}).get("sizes", {}).get("512", {}).get("ratio"),
    "targets": {"bf16_pairs_per_s": ">= 1000", "fp32_pairs_per_s": ">= 150 (TF32 off)",
                "metrics_psnr_ssim_ratio": "<= 1.10", "metrics_with_lpips_ratio": "<= 1.30"},
}
def write(name, text):
    """The summary files; a dry run prints them instead (it writes nothing)."""
    if dry:
        print(f"--- {out / name} (not written: dry run)\n{text}", end="")
    else:
        (out / name).write_text(text)

write("summary.json", json.dumps(summary, indent=1, default=str) + "\n")

m = summary["machine"] or {}
lines = ["# hlcli GPU run" + (" (dry run: nothing was executed)" if dry else ""), "",
         f"Machine: GPU {m.get('gpu', '?')}, CPU {m.get('cpu') or m.get('model', '?')} "
         f"({m.get('cpu_capability') or m.get('capability', '?')}), {m.get('cores') or m.get('logical_cpus', '?')} cores", "",
         "| step | exit | seconds |", "|---|---|---:|"]
lines += [f"| {k} | {v['exit']} | {v['seconds']} |" for k, v in summary["steps"].items()]
if tests:
    lines += ["", f"CUDA tests: {tests.get('tests')} run, {tests.get('failures')} failed, "
                  f"{tests.get('errors')} errors, {tests.get('skipped')} skipped"]
lines += ["", "| 512x512, conv3_3+conv4_3, from PNG | pairs/s | GPU utilisation % | bound by |", "|---|---:|---:|---|"]
util, bound = summary["gpu_utilization_percent"] or {}, summary["bound"] or {}
for p, v in summary["throughput_512_pairs_per_s"].items():
    lines.append(f"| {p} | {v if v is None else round(v, 1)} | {util.get(p, '-')} | {bound.get(p, '-')} |")
if summary["workers_fp32_pairs_per_s"]:
    lines += ["", "fp32 by --workers: " + ", ".join(f"{w}: {round(v, 1)}" for w, v in summary["workers_fp32_pairs_per_s"].items())
              + f"; best {summary['best_workers']}"]
if summary["metrics_cost_512"]:
    lines += ["", "--metrics at 512x512, time / hybrid only: " + ", ".join(
        f"{k}: {v:.3f}x" for k, v in summary["metrics_cost_512"].items())]
lines += ["", "Targets (issue #9, one H200): bf16 >= 1,000 pairs/s, fp32 (no TF32) >= 150 pairs/s; "
              "--metrics (issue #16): psnr,ssim,psnr_y,ssim_y <= 1.10x, with lpips <= 1.30x."]
write("summary.md", "\n".join(lines) + "\n")
if not dry:
    print(out / "summary.md")
PYEOF
