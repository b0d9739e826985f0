#!/usr/bin/env python
"""hlcli throughput benchmark: one run, same generated pairs, every figure docs/performance.md quotes.

Measures, on seeded photo-like PNG pairs generated in a temporary directory:

* **hlcli**: ``hlcli.engine.scoring.score_pairing`` (the library path the CLI uses: header probing, decoding,
  batching, L1 and perceptual), fp32 and bf16, at 256x256 with the default layers; plus one
  ``hlcli score`` CLI subprocess over the same pairs;
* **baseline**: the straightforward way, per pair: PIL load -> tensor, torchvision's full
  ``vgg19().features`` (37 modules, default memory format, batch 1), restored and ground truth
  in separate forwards, MSE at conv3_3/conv4_3 (forward hooks, cloned: the ReLUs are in-place),
  L1;
* **limit**: the machine's own VGG throughput: hlcli's truncated network alone on random input
  (no decoding, no metrics), channels_last fp32, the best of several batch sizes;
* **memory**: peak RSS of ``hlcli score`` on one 4096x4096 pair (``ru_maxrss`` of a fresh child
  started from a small launcher process, and the peak PSS of its process tree sampled every
  50 ms);
* **tiling**: tiled vs untiled scores of a 1024x1024 pair (both fit in memory there);
* **start-up**: warm ``hlcli score`` on one tiny pair vs ``python -c "import torch"``;
* **scaling**: pairs/s and megapixels/s at 256, 512 and 1024 px.

The machine is assumed shared and noisy: throughput figures are measured in interleaved rounds
(limit, hlcli fp32, hlcli bf16, baseline in every round) and reported as medians; the CPU time
other processes used during each measurement is recorded and contaminated rounds are flagged.

Usage::

    python benchmarks/bench.py                    # full run on the CPU (about 10 minutes)
    python benchmarks/bench.py --quick            # smoke run (about a minute)
    python benchmarks/bench.py --json out.json    # also save every figure
    python benchmarks/bench.py --gpu              # CUDA preset: 512x512, 2000 pairs, GPU util.

The weights' values do not change the speed: by default a seeded random torchvision-format full
checkpoint (548 MB, like the real one) is generated; pass ``--weights FILE`` to use another.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

# hlcli.engine.batch must be imported before torch: it enables PyTorch's transparent-huge-page
# allocator (THP_MEM_ALLOC_ENABLE) as the CLI does. Every in-process measurement below (hlcli,
# baseline and limit alike) therefore runs with the same allocator.
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
import hlcli.engine.batch  # noqa: E402,F401  (before torch)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image, ImageFilter  # noqa: E402

GIB = 1 << 30
DEFAULT_LAYERS = ("conv3_3", "conv4_3")

TARGETS = {
    "fp32_vs_baseline": (">=", 1.45),
    "fp32_vs_limit": (">=", 0.90),
    "bf16_vs_baseline": (">=", 2.7),
    "startup_vs_import_torch": ("<=", 1.25),
    "peak_rss_4096_gib": ("<", 3.0),
    "tiled_vs_untiled_max_rel_diff": ("<=", 1e-4),
    "tiling_flops_4096": ("<=", 1.3),
    "mp_per_s_512_vs_256": (">=", 0.85),
    "mp_per_s_1024_vs_256": (">=", 0.85),
}


# ---------------------------------------------------------------------------------------------
# Noise accounting


def _cpu_busy_seconds() -> float:
    """Busy CPU seconds of the whole machine (all processes), from /proc/stat."""
    try:
        with open("/proc/stat") as fh:
            v = [int(x) for x in fh.readline().split()[1:]]
    except OSError:
        return float("nan")
    return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


@dataclass
class Sample:
    seconds: float
    others: float  # cores used by other processes during the measurement (0 = quiet machine)


def measure(fn: Callable[[], Any]) -> tuple[Sample, Any]:
    b0, s0, t0 = _cpu_busy_seconds(), _own_cpu_seconds(), time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t0
    others = ((_cpu_busy_seconds() - b0) - (_own_cpu_seconds() - s0)) / dt
    return Sample(dt, max(0.0, others)), out


@dataclass
class Series:
    """Repeated measurements of one rate (units per second)."""

    units: float  # work per sample (pairs)
    samples: list[Sample] = field(default_factory=list)
    quiet: float = 0.25  # a sample is "clean" if others used less than this many cores

    def add(self, s: Sample) -> None:
        self.samples.append(s)

    def rates(self, clean_only: bool = True) -> list[float]:
        chosen = [s for s in self.samples if s.others < self.quiet] if clean_only else self.samples
        if not chosen:
            chosen = self.samples
        return [self.units / s.seconds for s in chosen]

    def median(self) -> float:
        return statistics.median(self.rates()) if self.samples else float("nan")

    def clean(self) -> int:
        return sum(s.others < self.quiet for s in self.samples)

    def as_dict(self) -> dict[str, Any]:
        return {"median_per_s": self.median(), "units": self.units,
                "samples": [{"seconds": s.seconds, "others_cores": round(s.others, 3)} for s in self.samples],
                "clean_samples": self.clean()}


# ---------------------------------------------------------------------------------------------
# Data


def photo_like(h: int, w: int, seed: int) -> np.ndarray:
    """A seeded photo-like uint8 RGB image: multi-scale smooth colour fields (1/f-like spectrum),
    a few hard-edged shapes and fine grain."""
    rng = np.random.default_rng(seed)
    acc = np.zeros((h, w, 3), np.float32)
    for level, amp in ((4, 70.0), (16, 35.0), (64, 18.0), (256, 9.0)):
        small = rng.normal(0, 1, (max(2, h * level // 1024 + 2), max(2, w * level // 1024 + 2), 3))
        chans = [np.asarray(Image.fromarray(small[..., c].astype(np.float32), mode="F")
                            .resize((w, h), Image.Resampling.BICUBIC)) for c in range(3)]
        acc += amp * np.stack(chans, axis=2)
    yy, xx = np.mgrid[0:h, 0:w]
    for _ in range(6):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0.05, 0.25) * min(h, w)
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        acc[mask] += rng.uniform(-60, 60, 3).astype(np.float32)
    acc += rng.normal(0, 4, acc.shape).astype(np.float32)
    return np.clip(acc + 128, 0, 255).astype(np.uint8)


def degrade(img: np.ndarray, seed: int) -> np.ndarray:
    """A typical restoration residue: slight blur plus noise."""
    rng = np.random.default_rng(seed + 7919)
    blurred = np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(0.8)), np.float32)
    return np.clip(blurred + rng.normal(0, 5, img.shape), 0, 255).astype(np.uint8)


def _write_pair(job: tuple[Path, Path, int, int, int]) -> None:
    r_path, g_path, size, seed, level = job
    gt = photo_like(size, size, seed)
    Image.fromarray(gt).save(g_path, compress_level=level)
    Image.fromarray(degrade(gt, seed)).save(r_path, compress_level=level)


def make_pairs(root: Path, size: int, count: int, seed: int) -> tuple[Path, Path]:
    """``count`` pairs of ``size`` x ``size`` PNGs (kept if already there); many pairs are
    generated in parallel processes."""
    r_dir, g_dir = root / f"{size}" / "restored", root / f"{size}" / "gt"
    r_dir.mkdir(parents=True, exist_ok=True)
    g_dir.mkdir(parents=True, exist_ok=True)
    level = 1 if size >= 2048 else 6
    jobs = [(r_dir / f"{i:04d}.png", g_dir / f"{i:04d}.png", size, seed + i, level) for i in range(count)
            if not (r_dir / f"{i:04d}.png").is_file() or not (g_dir / f"{i:04d}.png").is_file()]
    if len(jobs) > 16 and (os.cpu_count() or 1) > 2:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(min(16, (os.cpu_count() or 2) - 1)) as pool:
            pool.map(_write_pair, jobs, chunksize=4)
    else:
        for job in jobs:
            _write_pair(job)
    return r_dir, g_dir


def make_weights(path: Path, *, full: bool) -> Path:
    """A seeded random VGG-19 checkpoint in torchvision's format (full = with the classifier,
    548 MB like the real file)."""
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.vgg19(weights=None)
    sd = model.state_dict()
    if not full:
        sd = {k: v for k, v in sd.items() if k.startswith("features.")}
    torch.save(sd, path)
    return path


# ---------------------------------------------------------------------------------------------
# The three contenders


def hlcli_run(r_dir: Path, g_dir: Path, *, precision: str, device: str, workers: int | None = None,
              pixel_budget: int | None = None) -> tuple[float, float, Any]:
    """One ``score_pairing`` over a directory pair. Returns (seconds from model loaded to done,
    total seconds, run)."""
    from hlcli.inputs.pairing import find_pairs
    from hlcli.engine.scoring import ScoreOptions, score_pairing

    started: list[float] = []
    t0 = time.perf_counter()
    opts = ScoreOptions(precision=precision, device=device, workers=workers, pixel_budget=pixel_budget,
                        download_progress=False, offline=True)
    run = score_pairing(find_pairs(r_dir, g_dir), opts, on_start=lambda run, n: started.append(time.perf_counter()))
    t1 = time.perf_counter()
    return t1 - started[0], t1 - t0, run


class Baseline:
    """The straightforward per-pair computation most scripts use."""

    def __init__(self, weights: Path, device: torch.device):
        import torchvision

        model = torchvision.models.vgg19(weights=None)
        sd = torch.load(weights, map_location="cpu", weights_only=True)
        model.load_state_dict({**model.state_dict(), **sd})
        self.net = model.features.eval().to(device)  # all 37 modules, in-place ReLUs
        self.device = device
        self.mean = torch.tensor([0.485, 0.456, 0.406], device=device).view(1, 3, 1, 1)
        self.std = torch.tensor([0.229, 0.224, 0.225], device=device).view(1, 3, 1, 1)
        self.store: dict[int, torch.Tensor] = {}
        for idx in (14, 23):  # conv3_3, conv4_3: clone before the in-place ReLU overwrites them
            self.net[idx].register_forward_hook(lambda m, i, o, idx=idx: self.store.__setitem__(idx, o.clone()))

    def load(self, path: Path) -> torch.Tensor:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
        return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).to(self.device)

    @torch.no_grad()
    def pair(self, r_path: Path, g_path: Path) -> tuple[float, list[float]]:
        r, g = self.load(r_path), self.load(g_path)
        l1 = torch.mean(torch.abs(r - g)).item()
        self.net((r - self.mean) / self.std)
        fr = dict(self.store)
        self.net((g - self.mean) / self.std)
        fg = dict(self.store)
        return l1, [torch.mean((fr[i] - fg[i]) ** 2).item() for i in (14, 23)]


class BaselineProcess:
    """The baseline in its own process with PyTorch's default environment (no
    THP_MEM_ALLOC_ENABLE), i.e. as a user's script runs it; driven over a pipe so that its
    measurements interleave with the others'."""

    def __init__(self, weights: Path, device: torch.device, warm: tuple[Path, Path]):
        env = {**os.environ, "THP_MEM_ALLOC_ENABLE": "0"}
        self.proc = subprocess.Popen([sys.executable, __file__, "--baseline-server", str(weights), str(device)],
                                     env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.run([warm])

    def run(self, pairs: list[tuple[Path, Path]]) -> Sample:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps([[str(r), str(g)] for r, g in pairs]) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("baseline process died")
        d = json.loads(line)
        return Sample(d["seconds"], d["others"])

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


def baseline_server(weights: str, device: str) -> int:
    """``--baseline-server``: read a JSON list of [restored, gt] per line, score them with the
    baseline, answer {"seconds", "others"} per line."""
    base = Baseline(Path(weights), torch.device(device))
    for line in sys.stdin:
        pairs = [(Path(r), Path(g)) for r, g in json.loads(line)]
        s, _ = measure(lambda: [base.pair(r, g) for r, g in pairs])
        sys.stdout.write(json.dumps({"seconds": s.seconds, "others": s.others}) + "\n")
        sys.stdout.flush()
    return 0


class Limit:
    """hlcli's truncated network alone, channels_last, on random input already in memory."""

    def __init__(self, state_dict: dict[str, torch.Tensor], device: torch.device, precision: str = "fp32"):
        from hlcli.nets.features import VGGFeatures
        from hlcli.nets.layers import resolve_layers

        self.model = VGGFeatures(state_dict, resolve_layers(list(DEFAULT_LAYERS)),
                                 memory_format=torch.channels_last).to(device)
        self.device = device
        self.dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
        self.inputs: dict[tuple[int, int], torch.Tensor] = {}

    def forward(self, pairs: int, size: int) -> None:
        self.forward_images(2 * pairs, size)

    def pair_like_hlcli(self, size: int) -> None:
        """One pair as hlcli forwards it on this device: together, or one image per forward
        when the pair is larger than its preferred forward size."""
        from hlcli.engine.batch import default_forward_pixels, default_pixel_budget

        if 2 * size * size <= default_forward_pixels(self.device, default_pixel_budget(self.device)):
            self.forward_images(2, size)
        else:
            self.forward_images(1, size)
            self.forward_images(1, size)

    @torch.inference_mode()
    def forward_images(self, images: int, size: int) -> None:
        key = (images, size)
        if key not in self.inputs:
            self.inputs[key] = torch.rand(images, 3, size, size, device=self.device).contiguous(
                memory_format=torch.channels_last)
        x = self.inputs[key]
        if self.dtype is None:
            self.model(x)
        else:
            with torch.autocast(self.device.type, dtype=self.dtype):
                self.model(x)
        if self.device.type == "cuda":
            torch.cuda.synchronize()


# ---------------------------------------------------------------------------------------------
# Subprocess measurements


def _tree_pss_kib(pid: int) -> int:
    """Proportional set size of ``pid`` and its descendants (KiB); 0 if unreadable."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/smaps_rollup") as fh:
                for line in fh:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo.extend(int(c) for c in fh.read().split())
        except (OSError, ValueError):
            continue
    return total


# A small launcher (no torch: ~10 MB) runs the measured command as its own child and reports
# that child's peak RSS. Linux keeps a process's RSS high-water mark across exec(), so the
# ru_maxrss of a child forked straight from this (torch-sized) process would include the ~1 GB
# image it was forked from; forked from the small launcher, it includes only ~10 MB of that.
_LAUNCHER = """
import json, os, subprocess, sys, time
t0 = time.perf_counter()
proc = subprocess.Popen(sys.argv[2:], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
with open(sys.argv[1], "w") as fh:
    fh.write(str(proc.pid))
out, err = proc.communicate()
wall = time.perf_counter() - t0
import resource
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
sys.stdout.write(json.dumps({"seconds": wall, "rc": proc.returncode, "maxrss_kib": rss,
                             "stdout": out.decode(errors="replace"), "stderr": err.decode(errors="replace")}))
"""


def run_child(cmd: list[str], env: dict[str, str], *, sample_memory: bool = False) -> dict[str, Any]:
    """Run ``cmd`` through the launcher; return wall seconds (measured in the launcher, from
    start to exit of the command), exit code, the command's peak RSS (``ru_maxrss``, KiB) and, if
    asked, the peak PSS of its process tree (KiB) sampled every 50 ms."""
    with tempfile.TemporaryDirectory() as tmp:
        pid_file = Path(tmp) / "pid"
        launcher = subprocess.Popen([sys.executable, "-c", _LAUNCHER, str(pid_file), *cmd], env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        peak = [0]
        stop = threading.Event()

        def sampler() -> None:
            pid = None
            while not stop.wait(0.05):
                if pid is None:
                    try:
                        pid = int(pid_file.read_text())
                    except (OSError, ValueError):
                        continue
                peak[0] = max(peak[0], _tree_pss_kib(pid))

        thread = threading.Thread(target=sampler, daemon=True) if sample_memory else None
        if thread:
            thread.start()
        out, err = launcher.communicate()
        stop.set()
        if thread:
            thread.join()
    if launcher.returncode != 0:
        raise RuntimeError(f"launcher failed: {err.decode(errors='replace')[-500:]}")
    res = json.loads(out)
    res["peak_pss_kib"] = peak[0]
    return res


# ---------------------------------------------------------------------------------------------
# Machine


def machine_info(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "thp_alloc": os.environ.get("THP_MEM_ALLOC_ENABLE"),
        "platform": platform.platform(),
    }
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        info["cpu"] = fields.get("Model name", info["cpu"]).strip()
        flags = fields.get("Flags", "").split()
        info["cpu_flags"] = [f for f in ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_tile")
                             if f in flags]
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        with open("/proc/meminfo") as fh:
            info["memory_gib"] = round(int(fh.readline().split()[1]) / (1 << 20), 1)
    except (OSError, ValueError, IndexError):
        pass
    from hlcli.engine.batch import native_precision

    info["native"] = {p: native_precision(device, p) for p in ("bf16", "fp16")}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["gpu_memory_gib"] = round(torch.cuda.get_device_properties(device).total_memory / GIB, 1)
    return info


class GpuUtilization:
    """Samples GPU utilisation (percent) in the background while a block runs."""

    def __init__(self, device: torch.device):
        self.device = device
        self.values: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _read(self) -> float | None:
        try:
            return float(torch.cuda.utilization(self.device))
        except Exception:  # pynvml missing: fall back to nvidia-smi
            smi = shutil.which("nvidia-smi")
            if not smi:
                return None
            try:
                out = subprocess.run([smi, "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                                      "-i", str(self.device.index or 0)], capture_output=True, text=True, timeout=5)
                return float(out.stdout.strip().splitlines()[0])
            except (OSError, ValueError, IndexError, subprocess.SubprocessError):
                return None

    def __enter__(self) -> GpuUtilization:
        def loop() -> None:
            while not self._stop.wait(0.2):
                v = self._read()
                if v is not None:
                    self.values.append(v)

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()

    def mean(self) -> float | None:
        return statistics.mean(self.values) if self.values else None


# ---------------------------------------------------------------------------------------------
# Main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small smoke run (checks the script works)")
    p.add_argument("--gpu", action="store_true", help="CUDA preset: --device cuda, 512x512, 2000 pairs")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cpu, or cuda with --gpu)")
    p.add_argument("--weights", type=Path, help="VGG-19 checkpoint (default: generate a seeded random one)")
    p.add_argument("--json", type=Path, help="save every figure to this file")
    p.add_argument("--workdir", type=Path, help="keep generated data here (default: a temp dir, removed)")
    p.add_argument("--rounds", type=int, help="interleaved throughput rounds (default 5; quick 1)")
    p.add_argument("--pairs", type=int, help="pairs in the main set (default 24; quick 4; gpu 2000)")
    p.add_argument("--size", type=int, help="side of the main set's images (default 256; gpu 512)")
    p.add_argument("--baseline-pairs", type=int, help="pairs per baseline measurement (default 6)")
    p.add_argument("--startup-reps", type=int, help="start-up repetitions (default 15; quick 2)")
    p.add_argument("--skip", default="", help="comma-separated sections to skip: "
                   "baseline,bf16,limit,memory,tiling,startup,scaling,workers,cli")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--baseline-server"]:
        return baseline_server(argv[1], argv[2])
    args = parse_args(argv)
    gpu = args.gpu or args.device == "cuda"
    device = torch.device(args.device or ("cuda" if gpu else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda requested but CUDA is not available", file=sys.stderr)
        return 3
    quick = args.quick
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if gpu:
        skip.add("memory")  # the 4096x4096 check is about host memory on a CPU-only machine
    size = args.size or (512 if gpu else (128 if quick else 256))
    n_pairs = args.pairs or (2000 if gpu else (4 if quick else 24))
    rounds = args.rounds or (1 if quick else (3 if gpu else 5))
    base_pairs = args.baseline_pairs or (2 if quick else (50 if gpu else 6))
    startup_reps = args.startup_reps or (2 if quick else 15)

    work = args.workdir or Path(tempfile.mkdtemp(prefix="hlcli-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    cache = work / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    os.environ["HLCLI_CACHE"] = str(cache)
    os.environ.pop("HLCLI_WEIGHTS", None)
    figures: dict[str, Any] = {"mode": "quick" if quick else ("gpu" if gpu else "full"), "device": str(device)}
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    started = time.perf_counter()
    try:
        figures["machine"] = machine_info(device)
        figures["load_average_start"] = os.getloadavg()
        log(f"machine: {figures['machine'].get('cpu')}, {figures['machine'].get('cores')} cores, "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads; work dir {work}")

        # -- data and weights ---------------------------------------------------------------
        weights = args.weights
        if weights is None:
            weights = work / ("vgg19-random-features.pth" if quick else "vgg19-random-full.pth")
            if not weights.is_file():
                log(f"generating seeded random weights -> {weights}")
                make_weights(weights, full=not quick)
        os.environ["HLCLI_WEIGHTS"] = str(weights)
        figures["weights"] = {"path": str(weights), "bytes": weights.stat().st_size}
        log(f"generating {n_pairs} pairs of {size}x{size} ...")
        main_r, main_g = make_pairs(work / "data", size, n_pairs, seed=1)
        tiny_r, tiny_g = make_pairs(work / "data", 64 if not quick else 32, 1, seed=9000)

        from hlcli.nets import weights as hw
        from hlcli.nets.layers import resolve_layers

        loaded = hw.load(hw.resolve(str(weights), offline=True))  # also writes the compact cache
        state = loaded.state_dict

        # -- interleaved throughput rounds ----------------------------------------------------
        series: dict[str, Series] = {}
        limit_fp32 = Limit(state, device, "fp32")
        limit_bf16 = Limit(state, device, "bf16") if "bf16" not in skip else None
        baseline = Baseline(weights, device) if "baseline" not in skip else None
        base_files = sorted(main_r.iterdir())[:base_pairs]
        base_pairs_paths = [(f, main_g / f.name) for f in base_files]
        baseline_proc = (BaselineProcess(weights, device, base_pairs_paths[0])
                         if "baseline" not in skip else None)
        # Batch sizes (pairs per forward) for the limit: the best one is the practical limit.
        limit_batches = [1, 2, 4] if not gpu else [16, 32, 64]
        # pairs per limit sample: long enough (~2 s here) that a transient stall is averaged out
        limit_units = {b: max(b, (12 if not quick else 4) // b * b) if not gpu else 256 for b in limit_batches}

        def limit_rep(lim: Limit, b: int) -> None:
            for _ in range(limit_units[b] // b):
                lim.forward(b, size)

        # warm-up: first calls create oneDNN/cuDNN primitives
        for b in limit_batches:
            limit_fp32.forward(b, size)
        if limit_bf16:
            for b in limit_batches:
                limit_bf16.forward(b, size)
        if baseline:
            baseline.pair(base_files[0], main_g / base_files[0].name)
        hlcli_run(tiny_r, tiny_g, precision="fp32", device=str(device))

        gpu_util: dict[str, float | None] = {}
        for rnd in range(rounds):
            log(f"round {rnd + 1}/{rounds}")
            if "limit" not in skip:
                for b in limit_batches:
                    s, _ = measure(lambda b=b: limit_rep(limit_fp32, b))
                    series.setdefault(f"limit_fp32_b{b}", Series(limit_units[b])).add(s)
                if limit_bf16:
                    for b in limit_batches:
                        s, _ = measure(lambda b=b: limit_rep(limit_bf16, b))
                        series.setdefault(f"limit_bf16_b{b}", Series(limit_units[b])).add(s)
            for prec in ("fp32", "bf16", "fp16") if gpu else ("fp32", "bf16"):
                if prec == "bf16" and "bf16" in skip:
                    continue
                util = GpuUtilization(device) if device.type == "cuda" else None
                if util:
                    util.__enter__()
                s, (steady, total, run) = measure(lambda p=prec: hlcli_run(main_r, main_g, precision=p,
                                                                          device=str(device)))
                if util:
                    util.__exit__()
                    gpu_util[prec] = util.mean()
                # the steady-state figure: from model loaded to the last pair scored
                series.setdefault(f"hlcli_{prec}", Series(n_pairs)).add(Sample(steady, s.others))
                series.setdefault(f"hlcli_{prec}_with_load", Series(n_pairs)).add(Sample(total, s.others))
                figures.setdefault("hlcli_settings", {})[prec] = {
                    k: run.settings[k] for k in ("batch_size", "pixel_budget", "workers", "precision")}
            if baseline:
                s, _ = measure(lambda: [baseline.pair(f, main_g / f.name) for f in base_files])
                series.setdefault("baseline_same_allocator", Series(len(base_files))).add(s)
            if baseline_proc:
                series.setdefault("baseline", Series(len(base_files))).add(baseline_proc.run(base_pairs_paths))

        if baseline_proc:
            baseline_proc.close()
        rates = {k: v.median() for k, v in series.items()}
        figures["series"] = {k: v.as_dict() for k, v in series.items()}
        limit_best_b = max(limit_batches, key=lambda b: rates.get(f"limit_fp32_b{b}", 0.0)) if "limit" not in skip else None
        figures["throughput_pairs_per_s"] = {
            "size": size,
            "hlcli_fp32": rates.get("hlcli_fp32"),
            "hlcli_bf16": rates.get("hlcli_bf16"),
            "hlcli_fp16": rates.get("hlcli_fp16"),
            "hlcli_fp32_with_model_load": rates.get("hlcli_fp32_with_load"),
            "baseline": rates.get("baseline"),
            "baseline_same_allocator": rates.get("baseline_same_allocator"),
            "limit_fp32": rates.get(f"limit_fp32_b{limit_best_b}") if limit_best_b else None,
            "limit_fp32_batch_pairs": limit_best_b,
            "limit_fp32_by_batch": {b: rates.get(f"limit_fp32_b{b}") for b in limit_batches},
            "limit_bf16_by_batch": {b: rates.get(f"limit_bf16_b{b}") for b in limit_batches} if limit_bf16 else None,
        }
        if gpu_util:
            figures["gpu_utilization_percent"] = gpu_util
        limit_bf16 = None  # free its memory before the memory-hungry sections

        # -- worker count ---------------------------------------------------------------------
        if not quick and "workers" not in skip:
            ws = {}
            cpus = os.cpu_count() or 2
            for _ in range(max(1, rounds // 2)):
                for w in ((0, 1, 2) if not gpu else sorted({4, 8, max(1, cpus - 1)})):
                    s, (steady, _, _) = measure(lambda w=w: hlcli_run(main_r, main_g, precision="fp32",
                                                                      device=str(device), workers=w))
                    ws.setdefault(w, Series(n_pairs)).add(Sample(steady, s.others))
            figures["workers_fp32_pairs_per_s"] = {w: v.median() for w, v in ws.items()}
            figures["best_workers"] = max(ws, key=lambda w: ws[w].median())
        if gpu_util:
            # Busy GPU: the forward sets the pace; idle stretches: decoding (CPU) does.
            figures["bound"] = {p: ("compute" if u is not None and u >= 80 else "decode" if u is not None else None)
                                for p, u in gpu_util.items()}

        # -- CLI subprocess over the same set -------------------------------------------------
        env = dict(os.environ)
        if "cli" not in skip:
            s, res = measure(lambda: run_child([sys.executable, "-m", "hlcli", "score", str(main_r), str(main_g),
                                                "-f", "csv", "-q", "--device", str(device)], env))
            figures["cli_main_set"] = {"seconds": res["seconds"], "rc": res["rc"], "others_cores": s.others,
                                       "pairs_per_s_including_startup": n_pairs / res["seconds"]}

        # -- scaling with image size ----------------------------------------------------------
        if "scaling" not in skip:
            sizes = [size, 2 * size, 4 * size] if not quick else [size, 2 * size]
            scale_sets = {}
            for sz in sizes:
                count = max(1, n_pairs * size * size // (sz * sz)) if not quick else 2
                scale_sets[sz] = (count, *make_pairs(work / "data", sz, count, seed=100 + sz))
            sc: dict[int, Series] = {}
            sc_lim: dict[int, Series] = {}
            for sz, (count, r_dir, g_dir) in scale_sets.items():  # warm-up: primitives per shape
                hlcli_run(r_dir, g_dir, precision="fp32", device=str(device))
                limit_fp32.pair_like_hlcli(sz)
            for _ in range(max(1, rounds // 2) if not quick else 1):
                for sz, (count, r_dir, g_dir) in scale_sets.items():
                    s, (steady, _, _) = measure(lambda r=r_dir, g=g_dir: hlcli_run(r, g, precision="fp32",
                                                                                    device=str(device)))
                    sc.setdefault(sz, Series(count)).add(Sample(steady, s.others))
                    s, _ = measure(lambda sz=sz, count=count: [limit_fp32.pair_like_hlcli(sz) for _ in range(count)])
                    sc_lim.setdefault(sz, Series(count)).add(s)
            figures["scaling_fp32"] = {
                sz: {"pairs": scale_sets[sz][0], "pairs_per_s": v.median(),
                     "mp_per_s": v.median() * sz * sz / 1e6,
                     "limit_mp_per_s": sc_lim[sz].median() * sz * sz / 1e6,
                     "clean_samples": f"{v.clean()}/{len(v.samples)}",
                     "samples": v.as_dict()["samples"]} for sz, v in sc.items()}

        # -- tiled vs untiled -----------------------------------------------------------------
        if "tiling" not in skip:
            from hlcli.engine.batch import BatchScorer

            # 1024x1024: untiled fits the default budget exactly; tiled with a quarter of it
            # (512 px crops, 416 px cores, 3x3 tiles). Quick: 384 px, 3x3 tiles of 128 px cores.
            tsz = 1024 if not quick else 384
            tiled_budget = 2 * tsz * tsz // 4 if not quick else 2 * (128 + 2 * 48) ** 2
            gt = photo_like(tsz, tsz, 4242)
            rest = degrade(gt, 4242)
            specs = resolve_layers(list(DEFAULT_LAYERS))
            r = torch.from_numpy(rest).permute(2, 0, 1)[None]
            g = torch.from_numpy(gt).permute(2, 0, 1)[None]
            untiled = BatchScorer(state, specs, device=device, pixel_budget=2 * tsz * tsz)
            tiled = BatchScorer(state, specs, device=device, pixel_budget=tiled_budget)
            assert not untiled.is_tiled(tsz, tsz) and tiled.is_tiled(tsz, tsz)
            l1a, pa = untiled.measure(r, g, 255)
            l1b, pb = tiled.measure(r, g, 255)
            rel = ((pb - pa).abs() / pa.abs()).max().item()
            from hlcli.nets.tiling import TilePlan, tile_plan, tiling_cost

            now = tile_plan(specs, 1 << 21)
            old = TilePlan(core=816, halo=104)  # hlcli <= 0.1: receptive field rounded up to the stride
            figures["tiling_cost_4096"] = {
                "pixel_budget": 1 << 21, "flops": "tiled forwards / one untiled forward, conv3_3,conv4_3",
                "before": {"core": old.core, "halo": old.halo, "ratio": tiling_cost(specs, 4096, 4096, old)},
                "after": {"core": now.core, "halo": now.halo, "ratio": tiling_cost(specs, 4096, 4096, now)}}
            figures["tiling"] = {"size": tsz, "tile_core": tiled.tiles.core, "halo": tiled.tiles.halo,
                                 "untiled": pa[0].tolist(), "tiled": pb[0].tolist(),
                                 "l1_equal": l1a.item() == l1b.item(), "max_rel_diff": rel}
            del untiled, tiled

        # -- peak memory of a 4096x4096 pair (fresh child) ------------------------------------
        if "memory" not in skip:
            msz = 4096 if not quick else 400
            log(f"memory: one {msz}x{msz} pair through `hlcli score` in a child process ...")
            mr, mg = make_pairs(work / "data", msz, 1, seed=77)
            cmd = [sys.executable, "-m", "hlcli", "score", str(mr), str(mg), "-f", "json", "-q",
                   "--device", "cpu"]
            if quick:
                cmd += ["--pixel-budget", str(2 * (128 + 2 * 48) ** 2)]  # force tiling: 4x4 tiles
            res = run_child(cmd, env, sample_memory=True)
            doc = json.loads(res["stdout"]) if res["rc"] == 0 else None
            baseline_rss = run_child([sys.executable, "-c", "import torch"], env)["maxrss_kib"]
            figures["memory"] = {
                "size": msz, "rc": res["rc"], "seconds": res["seconds"],
                "peak_rss_gib": res["maxrss_kib"] / (1 << 20),
                "peak_tree_pss_gib": res["peak_pss_kib"] / (1 << 20),
                "import_torch_rss_gib": baseline_rss / (1 << 20),
                "tiled": bool(doc and doc["pairs"][0]["tiled"]),
                "scores": doc["pairs"][0]["layers"] if doc else None,
                "stderr": res["stderr"][-500:] if res["rc"] else "",
            }

        # -- start-up -------------------------------------------------------------------------
        if "startup" not in skip:
            log("start-up: tiny pair, warm compact cache, interleaved with `python -c 'import torch'` ...")
            cli_cmd = [sys.executable, "-m", "hlcli", "score", str(tiny_r), str(tiny_g), "-f", "csv", "-q",
                       "--device", "cpu"]
            # An installed package has its bytecode compiled (pip does it); a checkout run with
            # PYTHONDONTWRITEBYTECODE=1 would recompile hlcli's modules on every start.
            import compileall

            compileall.compile_dir(str(ROOT / "hlcli"), quiet=1)
            shutil.rmtree(cache, ignore_errors=True)
            cold = run_child(cli_cmd, env)  # writes the compact weights cache
            torch_t, cli_t = [], []
            for _ in range(startup_reps):
                torch_t.append(run_child([sys.executable, "-c", "import torch"], env)["seconds"])
                res = run_child(cli_cmd, env)
                if res["rc"] != 0:
                    raise RuntimeError(f"hlcli score failed: {res['stderr'][-500:]}")
                cli_t.append(res["seconds"])
            figures["startup"] = {
                "import_torch_s": statistics.median(torch_t), "hlcli_warm_s": statistics.median(cli_t),
                "hlcli_cold_s": cold["seconds"], "import_torch_all": torch_t, "hlcli_warm_all": cli_t,
                "ratio": statistics.median(cli_t) / statistics.median(torch_t),
                # per-repetition ratios (each hlcli run next to its own import-torch run)
                "ratio_median_of_pairs": statistics.median(c / t for c, t in zip(cli_t, torch_t)),
            }
    finally:
        figures["load_average_end"] = os.getloadavg()
        figures["elapsed_s"] = time.perf_counter() - started
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)

    # -- ratios and report ----------------------------------------------------------------------
    tp = figures.get("throughput_pairs_per_s", {})
    ratios: dict[str, float | None] = {}

    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a and b else None

    ratios["fp32_vs_baseline"] = ratio(tp.get("hlcli_fp32"), tp.get("baseline"))
    ratios["fp32_vs_limit"] = ratio(tp.get("hlcli_fp32"), tp.get("limit_fp32"))
    ratios["bf16_vs_baseline"] = ratio(tp.get("hlcli_bf16"), tp.get("baseline"))
    ratios["bf16_vs_fp32"] = ratio(tp.get("hlcli_bf16"), tp.get("hlcli_fp32"))
    ratios["fp32_vs_baseline_same_allocator"] = ratio(tp.get("hlcli_fp32"), tp.get("baseline_same_allocator"))
    ratios["bf16_vs_baseline_same_allocator"] = ratio(tp.get("hlcli_bf16"), tp.get("baseline_same_allocator"))
    ratios["bf16_vs_limit_bf16"] = ratio(tp.get("hlcli_bf16"), max((v for v in (tp.get("limit_bf16_by_batch") or {}).values() if v), default=None))
    if "startup" in figures:
        ratios["startup_vs_import_torch"] = figures["startup"]["ratio"]
    if "memory" in figures:
        ratios["peak_rss_4096_gib"] = figures["memory"]["peak_rss_gib"] if figures["memory"]["rc"] == 0 else None
    if "tiling" in figures:
        ratios["tiled_vs_untiled_max_rel_diff"] = figures["tiling"]["max_rel_diff"]
        ratios["tiling_flops_4096"] = figures["tiling_cost_4096"]["after"]["ratio"]
    sc = figures.get("scaling_fp32", {})
    if sc:
        base_mp = sc[min(sc)]["mp_per_s"]
        sizes = sorted(sc)
        for sz in sizes[1:]:
            key = f"mp_per_s_{sz}_vs_{sizes[0]}"
            ratios[key] = ratio(sc[sz]["mp_per_s"], base_mp)
    figures["ratios"] = ratios
    verdicts = {}
    for key, value in ratios.items():
        target = TARGETS.get(key) if not quick else None
        if target is None or value is None:
            continue
        op, bound = target
        ok = {">=": value >= bound, "<=": value <= bound, "<": value < bound}[op]
        verdicts[key] = {"value": value, "target": f"{op} {bound}", "pass": ok}
    figures["targets"] = verdicts
    print(render(figures))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1, default=str))
    return 0


def _f(x: Any, digits: int = 2) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def machine_tag(m: dict[str, Any]) -> str:
    """The CPU (model, capability) every figure was measured on, and whether bf16 is native."""
    native = m.get("native", {})
    bf16 = "native bf16" if native.get("bf16") else "bf16 emulated" if "bf16" in native else "bf16 ?"
    gpu = f", GPU {m['gpu']}" if m.get("gpu") else ""
    return f"[{m.get('cpu')}, {m.get('cpu_capability')}, {bf16}{gpu}]"


def render(fig: dict[str, Any]) -> str:
    m = fig.get("machine", {})
    tag = machine_tag(m)
    lines = [
        f"hlcli benchmark ({fig['mode']}, device {fig['device']})",
        f"machine: {m.get('cpu')}, {m.get('cores')} cores, {m.get('memory_gib')} GiB, flags "
        f"{' '.join(m.get('cpu_flags', []))}; torch {m.get('torch')} ({m.get('threads')} threads, "
        f"{m.get('cpu_capability')}); THP allocator {m.get('thp_alloc')}"
        + (f"; GPU {m['gpu']}" if m.get("gpu") else ""),
        f"load average start {tuple(round(v, 2) for v in fig.get('load_average_start', ()))}, "
        f"end {tuple(round(v, 2) for v in fig.get('load_average_end', ()))}; {fig.get('elapsed_s', 0):.0f} s",
        "",
    ]
    tp = fig.get("throughput_pairs_per_s")
    if tp:
        s = tp["size"]
        ser = fig.get("series", {})

        def clean(key: str) -> str:
            v = ser.get(key)
            return f"{v['clean_samples']}/{len(v['samples'])} clean" if v else ""

        lines += [f"throughput at {s}x{s}, layers conv3_3,conv4_3 (pairs/s, median of rounds) {tag}:",
                  f"  hlcli fp32 (decode+metrics)   {_f(tp['hlcli_fp32']):>8}   {clean('hlcli_fp32')}",
                  f"  hlcli bf16 (decode+metrics)   {_f(tp['hlcli_bf16']):>8}   {clean('hlcli_bf16')}",
                  *([f"  hlcli fp16 (decode+metrics)   {_f(tp['hlcli_fp16']):>8}   {clean('hlcli_fp16')}"]
                    if tp.get("hlcli_fp16") else []),
                  f"  hlcli fp32 incl. model load   {_f(tp['hlcli_fp32_with_model_load']):>8}",
                  f"  baseline (per pair, full VGG) {_f(tp['baseline']):>8}   {clean('baseline')}; own process, "
                  "default allocator",
                  f"  baseline, hlcli's allocator   {_f(tp['baseline_same_allocator']):>8}   "
                  f"{clean('baseline_same_allocator')}; in process, THP_MEM_ALLOC_ENABLE=1",
                  f"  limit fp32 (forward alone)    {_f(tp['limit_fp32']):>8}   best batch "
                  f"{tp['limit_fp32_batch_pairs']} pairs; by batch "
                  + ", ".join(f"{b}: {_f(v)}" for b, v in (tp.get('limit_fp32_by_batch') or {}).items())]
        if tp.get("limit_bf16_by_batch"):
            lines.append("  limit bf16 (forward alone)    by batch "
                         + ", ".join(f"{b}: {_f(v)}" for b, v in tp["limit_bf16_by_batch"].items()))
        st = fig.get("hlcli_settings", {}).get("fp32")
        if st:
            lines.append(f"  hlcli settings: batch_size {st['batch_size']}, pixel_budget {st['pixel_budget']}, "
                         f"workers {st['workers']}")
    if fig.get("gpu_utilization_percent"):
        lines.append(f"  GPU utilisation (mean %): {fig['gpu_utilization_percent']}; bound by: {fig.get('bound')}")
    if fig.get("workers_fp32_pairs_per_s"):
        lines.append("  hlcli fp32 by decode workers: "
                     + ", ".join(f"{w}: {_f(v)}" for w, v in fig["workers_fp32_pairs_per_s"].items())
                     + f"; best {fig.get('best_workers')} {tag}")
    if fig.get("cli_main_set"):
        c = fig["cli_main_set"]
        lines.append(f"  `hlcli score` CLI on the same set: {c['seconds']:.2f} s wall "
                     f"({_f(c['pairs_per_s_including_startup'])} pairs/s including start-up), exit {c['rc']}"
                     f"{'' if c.get('others_cores', 0) < 0.25 else ' (machine busy: %.1f other cores)' % c['others_cores']}")
    if fig.get("scaling_fp32"):
        lines += ["", f"scaling (hlcli fp32; MP = W*H of a pair, counted once) {tag}:",
                  "  size        pairs   pairs/s      MP/s   limit MP/s (forward alone)"]
        for sz, v in fig["scaling_fp32"].items():
            lines.append(f"  {sz:>4}x{sz:<4}  {v['pairs']:>6}  {_f(v['pairs_per_s'], 3):>8}  {_f(v['mp_per_s'], 3):>8}"
                         f"  {_f(v.get('limit_mp_per_s'), 3):>8}     {v.get('clean_samples', '')} clean")
    if fig.get("tiling"):
        t = fig["tiling"]
        lines += ["", f"tiling at {t['size']}x{t['size']} (core {t['tile_core']}, halo {t['halo']}): untiled "
                  f"{[f'{v:.6g}' for v in t['untiled']]} tiled {[f'{v:.6g}' for v in t['tiled']]}, "
                  f"max rel diff {t['max_rel_diff']:.2e}, L1 equal {t['l1_equal']} {tag}"]
    if fig.get("tiling_cost_4096"):
        c = fig["tiling_cost_4096"]
        lines.append(f"tiling cost, one 4096x4096 image, budget {c['pixel_budget']} px (FLOPs of the tiled "
                     f"forwards / untiled): before (halo {c['before']['halo']}, core {c['before']['core']}) "
                     f"{c['before']['ratio']:.3f}x, after (halo {c['after']['halo']}, core {c['after']['core']}) "
                     f"{c['after']['ratio']:.3f}x")
    if fig.get("memory"):
        mm = fig["memory"]
        lines += ["", f"memory, one {mm['size']}x{mm['size']} pair, `hlcli score` in a fresh child: peak RSS "
                  f"{mm['peak_rss_gib']:.2f} GiB (process tree peak PSS {mm['peak_tree_pss_gib']:.2f} GiB; "
                  f"`import torch` alone {mm['import_torch_rss_gib']:.2f} GiB), {mm['seconds']:.1f} s, "
                  f"tiled {mm['tiled']}, exit {mm['rc']} {tag}"]
    if fig.get("startup"):
        su = fig["startup"]
        lines += ["", f"start-up, one tiny pair, warm cache: hlcli score {su['hlcli_warm_s']:.3f} s vs "
                  f"python -c 'import torch' {su['import_torch_s']:.3f} s (medians of "
                  f"{len(su['hlcli_warm_all'])}); cold (no compact cache) {su['hlcli_cold_s']:.3f} s {tag}"]
    lines += ["", f"ratios: {tag}"]
    for k, v in fig.get("ratios", {}).items():
        verdict = fig.get("targets", {}).get(k)
        mark = (f"  target {verdict['target']:<8} {'PASS' if verdict['pass'] else 'FAIL'}" if verdict else "")
        lines.append(f"  {k:<32} {_f(v, 3) if not isinstance(v, float) or abs(v) >= 1e-3 else f'{v:.2e}':>8}{mark}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
