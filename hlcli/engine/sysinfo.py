"""What this machine offers hlcli (for ``hlcli info`` and bug reports): devices, the CPU's model
and vector capability, which precisions each device computes natively, threads, versions, the
weights ``score`` would use and the cache paths; and a few-second throughput measurement of
each precision with the real engine.

Gathering never downloads and never prints. torch is imported inside the functions that need it.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from importlib import metadata

from .._version import __version__
from ..nets import datafiles
from ..nets import weights as w
from ..errors import HlcliEnvironmentError
from ..nets.layers import DEFAULT_LAYERS, LAYERS, resolve_layers
from ..nets.netspecs import get_spec

PRECISIONS = ("fp32", "bf16", "fp16")
#: /proc/cpuinfo flags that decide the speed of VGG on the CPU (oneDNN's kernels).
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "avx512_fp16",
             "amx_tile", "amx_bf16", "amx_fp16")
BENCH_SIZE = 256
BENCH_SECONDS = 2.0


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.split("\n\n")[0].splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_info() -> dict[str, Any]:
    """Model, torch's dispatch capability (DEFAULT, AVX2, AVX512...), the speed-relevant flags,
    cores usable by this process and torch's thread count."""
    import torch  # lazy: keeps torch off the cheap paths (import hlcli, --help, reading runs)

    fields = _cpuinfo()
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "model": fields.get("model name") or platform.processor() or platform.machine(),
        "capability": torch.backends.cpu.get_cpu_capability(),
        "flags": [f for f in CPU_FLAGS if f in flags],
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
        "threads": torch.get_num_threads(),
    }


def _native(device: Any) -> dict[str, bool]:
    from .batch import native_precision  # lazy: keeps torch off the cheap paths (import hlcli, --help, reading runs)

    return {p: native_precision(device, p) for p in PRECISIONS}


def devices() -> list[dict[str, Any]]:
    """Every device hlcli can use, the CPU first, with the precisions it computes natively."""
    import torch  # lazy: keeps torch off the cheap paths (import hlcli, --help, reading runs)

    out: list[dict[str, Any]] = [{"name": "cpu", "description": cpu_info()["model"],
                                  "native": _native(torch.device("cpu"))}]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            out.append({"name": f"cuda:{i}", "description": props.name,
                        "compute_capability": f"{props.major}.{props.minor}",
                        "memory_gib": round(props.total_memory / (1 << 30), 1),
                        "native": _native(torch.device("cuda", i))})
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        out.append({"name": "mps", "description": "Apple GPU (Metal)", "native": _native(torch.device("mps"))})
    return out


def weights_info(explicit: str | os.PathLike[str] | None = None, net: str = "vgg19") -> dict[str, Any]:
    """Where ``net``'s weights are looked for, which file ``score`` would use (no download) and
    whether it is the official checkpoint (a file named by its option or environment variable is
    hashed once, then remembered in hlcli's cache), and the cache paths."""
    spec = get_spec(net)
    cands = w.candidates(explicit, net=net)
    chosen = next((c for c in cands if c.exists), None)
    named_missing = next((c for c in cands if c.source in ("option", "env") and not c.exists), None)
    if named_missing is not None and (chosen is None or cands.index(named_missing) < cands.index(chosen)):
        would_use = {"source": named_missing.source, "path": str(named_missing.path),
                     "note": "this file does not exist: `score` would stop with exit 3"}
    elif chosen is not None:
        would_use = {"source": chosen.source, "path": str(chosen.path)}
        if chosen.source in ("option", "env"):  # the torch cache holds only the official file
            sha = w.file_sha256(chosen.path)  # remembered in hlcli's cache after the first time
            would_use["official_imagenet1k_v1"] = sha.startswith(spec.sha256_prefix)
            if not would_use["official_imagenet1k_v1"]:
                would_use["note"] = (f"NOT the official ImageNet {spec.title} (sha256 {sha[:12]}): its numbers "
                                     "are not comparable with runs on the official weights")
    else:
        would_use = {"source": "download", "path": str(w.hub_checkpoint_path(net)),
                     "note": f"a download from {spec.url} (not possible with --offline)"}
    return {
        "candidates": [{"source": c.source, "path": str(c.path), "exists": c.exists} for c in cands],
        "would_use": would_use,
        "torch_hub_checkpoints": str(w.hub_checkpoint_path().parent),
        "hlcli_cache": str(w.cache_dir()),
    }


def data_file_info(name: str) -> dict[str, Any]:
    """Where DISTS' alpha/beta (``dists``) or NIQE's model (``niqe``) is looked for and which file
    ``score`` would use (no download), by :mod:`hlcli.nets.datafiles`' rule."""
    spec = datafiles.SPECS[name]
    cands = datafiles.candidates(name)
    chosen = next((c for c in cands if c.exists), None)
    if chosen is not None:
        would_use: dict[str, Any] = {"source": chosen.source, "path": str(chosen.path),
                                     "official": w.file_sha256(chosen.path) == spec.sha256}
        if not would_use["official"]:
            would_use["note"] = "NOT the official file: its numbers are not comparable with the official file's"
    elif spec.url:
        would_use = {"source": "download", "path": str(w.cache_dir() / spec.filename),
                     "note": f"a download from {spec.url} (not possible with --offline)"}
    else:
        would_use = {"source": None, "path": None, "note": f"none: {spec.fix_missing}"}
    return {"used_by": spec.used_by, "candidates": [{"source": c.source, "path": str(c.path), "exists": c.exists}
                                                    for c in cands], "would_use": would_use}


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def versions() -> dict[str, Any]:
    import torch  # lazy: keeps torch off the cheap paths (import hlcli, --help, reading runs)

    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {"hlcli": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "torchvision": _version("torchvision"), "cuda": torch.version.cuda, "cudnn": cudnn,
            "pillow": _version("pillow"), "numpy": _version("numpy")}


def gather(device: str = "auto", weights: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Everything ``hlcli info`` shows. ``device``: what ``score --device`` would select
    (an absent device raises :class:`~hlcli.HlcliEnvironmentError`, exit 3)."""
    from .batch import select_device  # lazy: keeps torch off the cheap paths (import hlcli, --help, reading runs)
    from ..nets.netspecs import get_spec

    selected = select_device(device)
    return {
        "hlcli_version": __version__,
        "platform": platform.platform(),
        "versions": versions(),
        "cpu": cpu_info(),
        "devices": devices(),
        "selected_device": str(selected),
        "weights": weights_info(weights),
        "lpips_weights": {net: {"used_by": get_spec(net).used_by, **weights_info(None, net)} for net in ("alexnet", "vgg16")},
        "metric_files": {name: data_file_info(name) for name in datafiles.SPECS},
    }


def _bench_weights(weights: str | os.PathLike[str] | None) -> tuple[dict[str, Any], str]:
    """The weights ``score`` would use, or seeded random ones where none are on this machine
    (the speed is the same; never downloads)."""
    import torch  # lazy: keeps torch off the cheap paths (import hlcli, --help, reading runs)

    from ..nets.features import build_vgg19_features  # lazy: keeps torch off the cheap paths (import hlcli, --help, reading runs)

    try:
        loaded = w.load(w.resolve(weights, offline=True, progress=False))
        return loaded.state_dict, f"{loaded.path} ({loaded.source})"
    except HlcliEnvironmentError:
        torch.manual_seed(0)
        net = build_vgg19_features(len(LAYERS))
        return {f"features.{k}": v for k, v in net.state_dict().items()}, \
            "random weights (no VGG-19 weights on this machine; the speed is the same)"


def bench(device: str = "auto", weights: str | os.PathLike[str] | None = None, *, seconds: float | None = None,
          size: int | None = None, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Pairs/s of ``size`` x ``size`` pairs (default 256), default layers, for each precision
    on the selected device, through the real engine (:class:`hlcli.engine.batch.BatchScorer`, no
    decoding): one warm-up pair, then pairs for about ``seconds`` (default 2). A precision
    whose warm-up pair alone takes longer (an emulated one) is rated from that pair, marked
    in ``estimated``: the whole measurement stays within a few seconds per precision."""
    import torch  # lazy: keeps torch off the cheap paths (import hlcli, --help, reading runs)

    from .batch import BatchScorer, select_device  # lazy: keeps torch off the cheap paths (import hlcli, --help, reading runs)

    size, seconds = size or BENCH_SIZE, BENCH_SECONDS if seconds is None else seconds
    dev = select_device(device)
    state, source = _bench_weights(weights)
    specs = resolve_layers(list(DEFAULT_LAYERS))
    gen = torch.Generator().manual_seed(0)
    gt = torch.randint(0, 256, (1, 3, size, size), dtype=torch.uint8, generator=gen)
    restored = (gt.int() + torch.randint(-12, 13, gt.shape, generator=gen)).clamp(0, 255).to(torch.uint8)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    results: dict[str, float] = {}
    estimated: list[str] = []
    for precision in PRECISIONS:
        if progress:
            progress(f"measuring {precision} on {dev} ...")
        scorer = BatchScorer(state, specs, device=dev, precision=precision)
        start = time.perf_counter()
        scorer.measure(restored, gt, 255)  # warm-up: first-call kernel selection and allocations
        sync()
        first = time.perf_counter() - start
        done, start = 0, time.perf_counter()
        while first < seconds and (done < 1 or time.perf_counter() - start < seconds):
            scorer.measure(restored, gt, 255)
            sync()
            done += 1
        if done:
            results[precision] = done / (time.perf_counter() - start)
        else:
            results[precision] = 1 / first
            estimated.append(precision)
        del scorer
    return {"device": str(dev), "size": size, "layers": list(DEFAULT_LAYERS), "weights": source,
            "pairs_per_s": results, "estimated": estimated, "fastest": max(results, key=results.__getitem__)}


def precision_warning(device: dict[str, Any], precision: str) -> str | None:
    """The warning for a run whose device record (the JSON ``device`` section) says the
    precision is emulated, or ``None``. Pure text: the CLI prints it."""
    if precision == "fp32" or device.get("native_precision", True):
        return None
    if device.get("type") == "cpu":
        need = "AVX-512 or AMX" if precision == "bf16" else "AVX512-FP16 or AMX-FP16"
        where = f"this CPU (capability {device.get('cpu_capability', 'unknown')}, no {need})"
    else:
        where = f"this device ({device.get('device_name') or device.get('type')})"
    return (f"--precision {precision} is emulated on {where}: likely several times slower than fp32; "
            "use --precision fp32 (see `hlcli info --bench`)")
