"""Orchestration of a scoring run, shared by the CLI and the importable API:
pairs -> header probing and planning -> weights -> batched, parallel decode -> engine -> Run.

Never prints; reports progress and each result through callbacks; raises typed errors.
"""

from __future__ import annotations

import math
import os
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from . import __version__, images
from .errors import InputError, NonFiniteError
from .layers import DEFAULT_LAYERS, IMAGENET_MEAN, IMAGENET_STD, min_size, resolve_layers
from .loader import SIZE_POLICIES, Failure, Planned, batches, iterate, plan_pair
from .pairing import Pairing
from .report import Run
from .results import Missing, PairResult, Skipped


class MissingFilesError(InputError):
    """Files on one side only, without ``allow_missing``. Carries the lists for display."""

    def __init__(self, missing: Missing):
        self.missing = missing
        n = len(missing)
        # The error line names a file (the first one); the CLI lists all of them above it.
        first = (missing.restored_only or missing.gt_only or [None])[0]
        if n == 1:
            what = ("restored file has no ground-truth file" if missing.restored_only
                    else "ground-truth file has no restored file")
        else:
            what = (f"{n} files without a partner ({len(missing.restored_only)} restored without "
                    f"ground truth, {len(missing.gt_only)} ground truth without restored), the "
                    "first being")
        super().__init__(
            what,
            first,
            "add the missing files, or pass --allow-missing to score the matched pairs "
            "(the unmatched ones are still listed in every output)",
        )


@dataclass
class ScoreOptions:
    lam: float = 0.05
    layers: tuple[str, ...] = DEFAULT_LAYERS
    layer_weights: tuple[float, ...] | None = None
    device: str = "auto"
    precision: str = "fp32"
    batch_size: int = 16
    pixel_budget: int | None = None  # None: engine default for the device
    workers: int | None = None  # None: auto
    weights: str | None = None
    offline: bool = False
    download_progress: bool = True
    allow_missing: bool = False
    size_mismatch: str = "error"
    alpha: str = "error"
    max_pixels: int | None = images.DEFAULT_MAX_PIXELS
    on_error: str = "fail"  # or "skip"
    worst: int = 5
    deterministic: bool = True


def check_options(opts: ScoreOptions):
    """Validate options that do not need files; returns the layer specs."""
    try:
        specs = resolve_layers(list(opts.layers))
    except ValueError as exc:
        raise InputError(str(exc), None, "pass --layers with names from the list") from exc
    if not (math.isfinite(opts.lam) and opts.lam >= 0):
        raise InputError(f"lambda must be a finite number >= 0, got {opts.lam}", None, "e.g. --lambda 0.05")
    weights = opts.layer_weights if opts.layer_weights is not None else (1.0,) * len(specs)
    if len(weights) != len(specs):
        raise InputError(
            f"{len(weights)} layer weights for {len(specs)} layers", None,
            "give one --layer-weights value per --layers entry, in the same order",
        )
    if not all(math.isfinite(w) and w >= 0 for w in weights):
        raise InputError("layer weights must be finite numbers >= 0", None, "e.g. --layer-weights 1,0.5")
    if opts.size_mismatch not in SIZE_POLICIES:
        raise InputError(f"unknown size policy {opts.size_mismatch!r}", None, f"use one of {', '.join(SIZE_POLICIES)}")
    if opts.alpha not in images.ALPHA_POLICIES:
        raise InputError(f"unknown alpha policy {opts.alpha!r}", None, f"use one of {', '.join(images.ALPHA_POLICIES)}")
    if opts.on_error not in ("fail", "skip"):
        raise InputError(f"unknown --on-error {opts.on_error!r}", None, "use fail or skip")
    if opts.batch_size < 1:
        raise InputError("batch size must be >= 1", None, "e.g. --batch-size 16")
    return specs, tuple(float(w) for w in weights)


def auto_workers(device_type: str) -> int:
    """Decode workers: on CUDA up to 8 (decoding decides the speed there); on the CPU none:
    the forward pass already keeps every core busy, so a worker process only competes with it
    and adds inter-process copies (measured on 2 cores, 256x256: 0 workers 4.71 pairs/s,
    1 worker 4.50, 2 workers 4.33)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if device_type == "cuda":
        return max(1, min(8, cpus - 1))
    return 0


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def environment_info(device, backends: dict[str, Any]) -> dict[str, Any]:
    import torch

    return {
        "hlcli_version": __version__,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torchvision": _version("torchvision"),
            "pillow": _version("pillow"),
            "numpy": _version("numpy"),
        },
        "platform": platform.platform(),
        "device": {"type": device.type, "index": device.index, **backends},
        "threads": torch.get_num_threads(),
        "command": sys.argv[:],
    }


def _skip_or_raise(failure: Failure, opts: ScoreOptions) -> Skipped:
    if opts.on_error == "fail":
        raise failure.error
    err = failure.error
    return Skipped(failure.pair.key, err.path or str(failure.pair.restored), err.render(), err.exit_code)


def score(
    pairing: Pairing,
    opts: ScoreOptions,
    *,
    inputs: dict[str, Any] | None = None,
    on_start: Callable[[Run, int], None] | None = None,
    on_pair: Callable[[PairResult], None] | None = None,
    on_skip: Callable[[Skipped], None] | None = None,
) -> Run:
    """Score every pair of ``pairing``. ``inputs`` (paths/manifest given) is recorded in the
    settings. ``on_start(run, total)`` is called once the model is loaded, ``on_pair`` and
    ``on_skip`` as each pair is scored or skipped (in scoring order)."""
    from . import engine, weights

    specs, layer_weights = check_options(opts)
    missing = Missing(
        restored_only=[str(p) for p in pairing.restored_only],
        gt_only=[str(p) for p in pairing.gt_only],
    )
    if len(missing) and not opts.allow_missing:
        raise MissingFilesError(missing)
    if not pairing.pairs:
        raise InputError("no pairs to score", None, "check that both sides hold files with the same names")

    # Read every header first: size mismatches and unreadable files surface before any compute.
    min_side = min_size(specs)
    plans: list[Planned] = []
    skipped: list[Skipped] = []
    for i, pair in enumerate(pairing.pairs):
        planned = plan_pair(i, pair, size_policy=opts.size_mismatch, max_pixels=opts.max_pixels, min_side=min_side)
        if isinstance(planned, Failure):
            skipped.append(_skip_or_raise(planned, opts))
        else:
            plans.append(planned)

    device = engine.select_device(opts.device)
    backends = engine.configure_backends(device, deterministic=opts.deterministic)
    resolved = weights.resolve(opts.weights, offline=opts.offline, progress=opts.download_progress)
    loaded = weights.load(resolved)
    scorer = engine.Scorer(
        loaded.state_dict, specs, layer_weights, opts.lam,
        device=device, precision=opts.precision, pixel_budget=opts.pixel_budget,
    )
    workers = auto_workers(device.type) if opts.workers is None else opts.workers
    settings = {
        "inputs": inputs or {},
        "lambda": opts.lam,
        "layers": [
            {"name": s.name, "index": s.index, "activation": s.activation, "weight": w,
             "stride": s.stride, "receptive_field": s.receptive_field}
            for s, w in zip(specs, layer_weights)
        ],
        "network": {"name": "vgg19", "module": "torchvision.models.vgg19().features",
                    "truncated_after_index": scorer.depth - 1, "relu_inplace": False},
        "normalization": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "input_range": [0, 1]},
        "weights": {"path": str(loaded.path), "source": loaded.source, "sha256": loaded.sha256,
                    "official_imagenet1k_v1": loaded.official},
        "precision": opts.precision,
        "dtype": str(engine.PRECISIONS[opts.precision]).removeprefix("torch."),
        "l1_precision": "exact integer sum, float64 division",
        "reduction_dtype": "float64",
        "batch_size": opts.batch_size,
        "pixel_budget": scorer.pixel_budget,
        "tile": {"core": scorer.tiles.core, "halo": scorer.tiles.halo},
        "workers": workers,
        "size_mismatch": opts.size_mismatch,
        "alpha": opts.alpha,
        "max_pixels": opts.max_pixels,
        "on_error": opts.on_error,
        "allow_missing": opts.allow_missing,
    }
    run = Run(
        settings=settings,
        environment=environment_info(device, backends),
        layer_names=[s.name for s in specs],
        missing=missing,
        ignored=[str(p) for p in pairing.ignored],
        worst=opts.worst,
    )
    for s in skipped:
        run.skipped.append(s)
    if on_start:
        on_start(run, len(pairing.pairs))
    if on_skip:
        for s in skipped:
            on_skip(s)

    groups = batches(plans, batch_size=opts.batch_size, pixel_budget=scorer.pixel_budget)
    stream = iterate(groups, alpha=opts.alpha, max_pixels=opts.max_pixels, workers=workers,
                     pin_memory=device.type == "cuda")
    for ok, r, g, failures in stream:
        for failure in failures:
            s = _skip_or_raise(failure, opts)
            run.skipped.append(s)
            if on_skip:
                on_skip(s)
        if not ok:
            continue
        scale = 65535 if ok[0].depth == 16 else 255
        l1, per_layer = scorer.score(r, g, scale)
        perceptual, hybrid = scorer.combine(l1, per_layer)
        for j, plan in enumerate(ok):
            result = PairResult(
                key=plan.pair.key,
                restored=str(plan.pair.restored),
                gt=str(plan.pair.gt),
                width=plan.width,
                height=plan.height,
                l1=float(l1[j]),
                layers={s.name: float(per_layer[j, k]) for k, s in enumerate(specs)},
                perceptual=float(perceptual[j]),
                hybrid=float(hybrid[j]),
                size_policy=plan.policy,
                original_sizes=(
                    {"restored": list(plan.restored_size), "gt": list(plan.gt_size)} if plan.policy else None
                ),
                tiled=scorer.is_tiled(plan.height, plan.width),
            )
            values = [result.l1, result.perceptual, result.hybrid, *result.layers.values()]
            if not all(math.isfinite(v) for v in values):
                raise NonFiniteError(
                    "a score is not finite (NaN or infinity)", plan.pair.restored,
                    "try --precision fp32; if it persists, the weights file may be damaged "
                    "(check it with `hlcli weights show`)",
                )
            run.pairs.append(result)
            if on_pair:
                on_pair(result)
    return run
