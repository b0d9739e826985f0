"""A scoring run, shared by the CLI and the importable API:
pairs -> header probing and planning -> weights -> batched, parallel decode -> engine -> Run.

:func:`score_dirs` and :func:`score_pairs` are the public entry points; :func:`score_pairing`
is what they and the CLI call. Never prints; reports progress and each result through
callbacks; raises typed errors.
"""

from __future__ import annotations

import math
import os
import platform
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from importlib import metadata
from pathlib import Path
from typing import Any
import warnings
from collections import Counter

from ..metrics import registry as metricdefs
from .._version import __version__
from ..errors import InputError, InputWarning, MissingFilesError, NonFiniteError, Unscorable
from ..nets.layers import DEFAULT_LAYERS, IMAGENET_MEAN, IMAGENET_STD, LayerSpec, min_size
from ..inputs.loader import DecodedBatch, Failure, Planned, batches, decoded_batches, plan_pair
from .options import ScoreOptions, extra_metrics, option_settings, set_metric_names, set_settings, validate_options
from ..inputs.pairing import dir_inputs, find_pairs, near_misses, Pairing, pairs_from_paths
from ..runs.results import Missing, PairResult, Run, Skipped
from ..nets import weights
from ..runs.maps import MapWriter
from ..nets.tiling import REFUSE_FACTOR, run_tiling_factor, smallest_budget, TiledNet, vgg19_net, WARN_FACTOR

__all__ = ["ScoreOptions", "option_settings", "run_settings", "score_dirs", "score_pairing", "score_pairs",
           "validate_options"]


def auto_workers(device_type: str) -> int:
    """Decode workers: on CUDA up to 8 (decoding decides the speed there); on the CPU none:
    the forward pass already keeps every core busy, so a worker process only competes with it
    and adds inter-process copies (measured on 2 cores, 256x256: 0 workers 4.71 pairs/s,
    1 worker 4.50, 2 workers 4.33).

    >>> auto_workers("cpu")
    0
    """
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if device_type == "cuda":
        return max(1, min(8, cpus - 1))
    return 0


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def environment_info(device: Any, backends: dict[str, Any]) -> dict[str, Any]:
    """Versions, platform, device and the command line: the run's ``environment`` record."""
    import torch  # lazy: keeps torch off the cheap paths (import hlcli, --help, reading runs)

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
        "command": command_line(),
        **_cwd(),
    }


def _cwd() -> dict[str, str]:
    """``{"cwd": the folder the command runs in}``: the document's relative paths start there
    (``hlcli report`` run from elsewhere resolves them against it). Empty if it is gone."""
    try:
        return {"cwd": os.getcwd()}
    except OSError:
        return {}


def command_line(argv: list[str] | None = None) -> list[str]:
    """The command as a user would retype it: ``hlcli`` and the arguments, not the interpreter's
    path to ``hlcli/__main__.py`` or a virtual environment's ``bin/hlcli`` (the report shows it
    shell-quoted). A library caller outside the CLI gets its own script's name."""
    argv = sys.argv[:] if argv is None else list(argv)
    if not argv:
        return []
    program = os.path.basename(argv[0])
    if program in ("hlcli", "hlcli.exe") or (program == "__main__.py" and Path(argv[0]).parent.name == "hlcli"):
        program = "hlcli"
    return [program, *argv[1:]]


def run_settings(opts: ScoreOptions, scorer: Any, loaded: Any, workers: int,
                 inputs: dict[str, Any] | None, extra_nets: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``settings`` record of a run: everything needed to reproduce its numbers."""
    from .batch import PRECISIONS  # lazy: keeps torch off the cheap paths (import hlcli, --help, reading runs)

    chosen = option_settings(opts)
    return {
        "inputs": inputs or {},
        "lambda": chosen["lambda"],
        "layers": chosen["layers"],
        "network": {"name": "vgg19", "module": "torchvision.models.vgg19().features",
                    "truncated_after_index": scorer.depth - 1, "relu_inplace": False},
        "normalization": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "input_range": [0, 1]},
        "weights": {"path": str(loaded.path), "source": loaded.source, "sha256": loaded.sha256,
                    "official_imagenet1k_v1": loaded.official},
        "precision": chosen["precision"],
        "dtype": str(PRECISIONS[opts.precision]).removeprefix("torch."),
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
        # Only when used, so that documents of plain runs stay as they were: absent means 0 / none.
        **({"crop_border": opts.crop_border} if opts.crop_border else {}),
        **({"group_by": opts.group_by} if opts.group_by != "none" else {}),
        **extra_settings(opts, extra_nets),
        **set_settings(opts),
    }


def extra_settings(opts: ScoreOptions, nets: dict[str, Any] | None) -> dict[str, Any]:
    """``metrics`` (the extra metrics' names), ``metric_definitions`` (each one's convention,
    direction, unit and scope) and the files used with their sha256 (``lpips_networks`` for
    LPIPS, ``metric_models`` for DISTS and NIQE): only when extra metrics were asked for, so that
    plain documents stay as they were."""
    names = extra_metrics(opts)
    if not names:
        return {}
    defs = {n: {"definition": metricdefs.get(n).definition, "higher_is_better": metricdefs.get(n).higher_is_better,
                "unit": metricdefs.get(n).unit, "scope": metricdefs.get(n).scope} for n in names}
    out: dict[str, Any] = {"metrics": list(names), "metric_definitions": defs}
    records = {need: net.record for need, net in (nets or {}).items() if hasattr(net, "record")}
    lpips = {need: r for need, r in records.items() if need.startswith("lpips")}
    if lpips:
        out["lpips_networks"] = lpips
    others = {need: r for need, r in records.items() if need not in lpips}
    if others:  # DISTS' checkpoint and alpha/beta, NIQE's pristine model
        out["metric_models"] = others
    return out


def _skip_or_raise(failure: Failure, opts: ScoreOptions) -> Skipped:
    if opts.on_error == "fail":
        raise failure.error
    err = failure.error
    return Skipped(failure.pair.key, err.path or str(failure.pair.restored), err.render(), err.exit_code,
                   str(failure.pair.restored), str(failure.pair.gt))


def plan_pairs(pairing: Pairing, opts: ScoreOptions,
               specs: tuple[LayerSpec, ...]) -> tuple[list[Planned], list[Skipped], Missing]:
    """Read every header before any compute, so that missing partners, size mismatches and
    unreadable files surface first. Returns the plans, the pairs skipped (``on_error="skip"``)
    and the files without a partner (``allow_missing``)."""
    missing = Missing(restored_only=[str(p) for p in pairing.restored_only],
                      gt_only=[str(p) for p in pairing.gt_only])
    if len(missing) and not opts.allow_missing:
        raise MissingFilesError(missing)
    if not pairing.pairs:
        hints = near_misses(missing.restored_only, missing.gt_only)
        raise InputError("no pairs to score", None, "check that both sides hold files with the same names"
                         + "".join(f"; {h}" for h in hints[:1]))
    min_side, min_side_for = min_size(specs), "the deepest requested layer"
    for n in extra_metrics(opts):
        if metricdefs.get(n).min_side > min_side:
            min_side, min_side_for = metricdefs.get(n).min_side, metricdefs.get(n).label
    plans: list[Planned] = []
    skipped: list[Skipped] = []
    for i, pair in enumerate(pairing.pairs):
        planned = plan_pair(i, pair, size_policy=opts.size_mismatch, max_pixels=opts.max_pixels, min_side=min_side,
                            min_side_for=min_side_for,
                            crop_border=opts.crop_border)
        if isinstance(planned, Failure):
            skipped.append(_skip_or_raise(planned, opts))
        else:
            plans.append(planned)
    return plans, skipped, missing


def make_extra_scorer(opts: ScoreOptions, device: Any, pixel_budget: int | None = None) -> Any:
    """The :class:`hlcli.metrics.extras.ExtraScorer` of the run's extra pair metrics (None without
    any), with the LPIPS networks they need loaded and verified."""
    names = [n for n in extra_metrics(opts) if not metricdefs.get(n).is_set]
    if not names:
        return None
    from ..metrics.extras import ExtraScorer, load_nets  # lazy: keeps torch off the cheap paths (import hlcli, --help, reading runs)

    return ExtraScorer(names, device, load_nets(names, opts, device), pixel_budget)


def pair_results(batch: DecodedBatch, scorer: Any, specs: tuple[LayerSpec, ...],
                 layer_weights: tuple[float, ...], lam: float, maps: Any = None,
                 extra: Any = None) -> list[PairResult]:
    """Score one decoded batch: one :class:`PairResult` per pair, all values finite (an extra
    metric may be +inf where its definition allows it: PSNR of identical images)."""
    if maps is None:
        l1, per_layer = scorer.measure(batch.restored, batch.gt, batch.scale)
    else:  # --save-maps: the same numbers and each pair's maps, from the same features
        l1, per_layer, pair_maps = scorer.measure_maps(batch.restored, batch.gt, batch.scale)
        extra_maps = extra.maps(batch.restored, batch.gt, batch.scale) if extra else [{}] * len(batch.plans)
        for plan, m, em in zip(batch.plans, pair_maps, extra_maps):
            maps.add(plan.pair.key, m, em)
    extras = extra.measure(batch.restored, batch.gt, batch.scale) if extra else {}
    return build_results(batch.plans, scorer, specs, layer_weights, lam, l1, per_layer, extras)


def build_results(plans: list[Planned], scorer: Any, specs: tuple[LayerSpec, ...],
                  layer_weights: tuple[float, ...], lam: float, l1: Any, per_layer: Any,
                  extras: dict[str, list[Any]]) -> list[PairResult | Failure]:
    """The :class:`PairResult` of each of ``plans`` from its measured L1, per-layer values and
    extra metrics, checked finite (:class:`NonFiniteError` otherwise); or, for a pair an extra
    metric has no value for (an :class:`~hlcli.errors.Unscorable`: NIQE of a flat image), a
    :class:`Failure` with the :class:`InputError` naming the file, which the caller skips or
    raises (``--on-error``) like a pair that did not decode."""
    from ..metrics import hybrid as metrics  # lazy: keeps torch off the cheap paths (import hlcli, --help, reading runs)

    perceptual, hybrid = metrics.combine(l1, per_layer, layer_weights, lam)
    results: list[PairResult | Failure] = []
    for j, plan in enumerate(plans):
        refused = unscorable(plan, {name: values[j] for name, values in extras.items()})
        if refused is not None:
            results.append(refused)
            continue
        result = PairResult(
            key=plan.pair.key, restored=str(plan.pair.restored), gt=str(plan.pair.gt),
            width=plan.width, height=plan.height,
            l1=float(l1[j]),
            layers={s.name: float(per_layer[j, k]) for k, s in enumerate(specs)},
            perceptual=float(perceptual[j]),
            hybrid=float(hybrid[j]),
            size_policy=plan.policy,
            original_sizes=({"restored": list(plan.restored_size), "gt": list(plan.gt_size)}
                            if plan.policy else None),
            tiled=scorer.is_tiled(plan.height, plan.width),
            extra={name: values[j] for name, values in extras.items()},
        )
        if not all(math.isfinite(v) for v in (result.l1, result.perceptual, result.hybrid, *result.layers.values())):
            raise NonFiniteError(
                "a score is not finite (NaN or infinity)", plan.pair.restored,
                "try --precision fp32; if it persists, the weights file may be damaged "
                "(check it with `hlcli weights show`)",
            )
        if result.extra:
            from ..metrics.extras import check_values  # lazy: keeps torch off the cheap paths (import hlcli, --help, reading runs)

            check_values(result.extra, plan.pair.restored)
        results.append(result)
    return results


def unscorable(plan: Planned, values: dict[str, Any]) -> Failure | None:
    """The :class:`Failure` of a pair some extra metric has no value for (None: it has all)."""
    for name, v in values.items():
        if isinstance(v, Unscorable):
            return Failure(plan.index, plan.pair, InputError(
                f"{metricdefs.get(name).label} has no value for this image: {v}", plan.pair.restored, v.fix))
    return None


@dataclass
class Engine:
    """What a run loads once: the device, the verified weights, the VGG scorer, the decode
    workers and the extra metrics' scorer (None without ``--metrics``)."""

    device: Any
    backends: dict[str, Any]
    loaded: Any
    scorer: Any
    workers: int
    extra: Any
    sets: Any = None  # hlcli.metrics.setfeatures.InceptionFeatures with set metrics (FID, KID)

    def new_run(self, opts: ScoreOptions, specs: tuple[LayerSpec, ...], inputs: dict[str, Any] | None,
                missing: Missing, pairing: Pairing, skipped: list[Skipped]) -> Run:
        """An empty :class:`Run` of ``pairing`` with this engine's settings and environment."""
        settings = run_settings(opts, self.scorer, self.loaded, self.workers, inputs,
                                self.extra.nets if self.extra else None)
        if self.sets is not None:
            settings["fid"]["weights"] = self.sets.record
        return Run(
            settings=settings,
            set_features={} if self.sets is not None else None,
            environment=environment_info(self.device, self.backends),
            layer_names=[s.name for s in specs],
            missing=missing,
            ignored=[str(p) for p in pairing.ignored],
            worst=opts.worst,
            skipped=list(skipped),
        )


def tiled_nets(opts: ScoreOptions, specs: tuple[LayerSpec, ...]) -> list[Any]:
    """The networks a run tiles (:class:`hlcli.nets.tiling.TiledNet`): VGG-19 up to the deepest
    layer, VGG-16 with ``lpips_vgg`` and with ``dists`` (each its own, wider halo). AlexNet runs
    untiled."""
    nets = [vgg19_net(specs)]
    if any(metricdefs.get(n).needs == "lpips-vgg" for n in extra_metrics(opts)):
        from ..metrics.lpips import TILED_NAME, VGG16_CONVS, VGG16_LAYERS  # lazy: keeps torch off the cheap paths (import hlcli, --help, reading runs)

        nets.append(TiledNet(TILED_NAME, VGG16_LAYERS, VGG16_CONVS))
    if any(metricdefs.get(n).needs == "dists" for n in extra_metrics(opts)):
        from ..metrics import dists  # lazy: keeps torch off the cheap paths (import hlcli, --help, reading runs)

        nets.append(TiledNet(dists.TILED_NAME, dists.LAYERS, dists.CONVS))
    return nets


def check_tiling(opts: ScoreOptions, specs: tuple[LayerSpec, ...], plans: Iterable[Planned], pixel_budget: int) -> float:
    """What tiling multiplies the run's forward FLOPs by (:func:`hlcli.nets.tiling.run_tiling_factor`),
    known from the headers before the first forward. Above :data:`~hlcli.nets.tiling.REFUSE_FACTOR`
    an :class:`InputError` (exit 2); above :data:`~hlcli.nets.tiling.WARN_FACTOR` an
    :class:`~hlcli.errors.InputWarning`. Both name the smallest budget that keeps it under 2x."""
    sizes = Counter((p.height, p.width) for p in plans)
    nets = tiled_nets(opts, specs)
    factor = run_tiling_factor(nets, sizes, pixel_budget)
    if factor <= WARN_FACTOR:
        return factor
    better = smallest_budget(nets, sizes)
    what = (f"a pixel budget of {pixel_budget} tiles these pairs so finely that the halos multiply the "
            f"work by {factor:.1f}x ({', '.join(n.name for n in nets)})")
    fix = f"use --pixel-budget {better} or more (tiling then costs at most {WARN_FACTOR:g}x), or leave it out"
    if factor > REFUSE_FACTOR:
        raise InputError(what, None, fix)
    warnings.warn(InputWarning(f"{what}: {fix}"), stacklevel=2)
    return factor


def load_engine(opts: ScoreOptions, specs: tuple[LayerSpec, ...], plans: Iterable[Planned] = ()) -> Engine:
    """Select the device, check what tiling ``plans`` costs (:func:`check_tiling`), load and
    verify the weights, build the scorers (once per run)."""
    from . import batch as engine  # lazy: keeps torch off the cheap paths (import hlcli, --help, reading runs)

    device = engine.select_device(opts.device)
    backends = engine.configure_backends(device, deterministic=opts.deterministic, precision=opts.precision)
    check_tiling(opts, specs, plans, opts.pixel_budget or engine.default_pixel_budget(device))
    loaded = weights.load(weights.resolve(opts.weights, offline=opts.offline, progress=opts.download_progress))
    scorer = engine.BatchScorer(loaded.state_dict, specs, device=device, precision=opts.precision,
                                pixel_budget=opts.pixel_budget)
    workers = auto_workers(device.type) if opts.workers is None else opts.workers
    sets = None
    if set_metric_names(opts):
        from ..metrics.setfeatures import load_features  # lazy: keeps torch off the cheap paths (import hlcli, --help, reading runs)

        sets = load_features(opts, device)
    return Engine(device, backends, loaded, scorer, workers, make_extra_scorer(opts, device, scorer.pixel_budget),
                  sets)


def score_pairing(
    pairing: Pairing,
    opts: ScoreOptions,
    *,
    inputs: dict[str, Any] | None = None,
    on_start: Callable[[Run, int], None] | None = None,
    on_pair: Callable[[PairResult], None] | None = None,
    on_skip: Callable[[Skipped], None] | None = None,
    shard: Any = None,
) -> Run:
    """Score every pair of ``pairing``. ``inputs`` (paths/manifest given) is recorded in the
    settings. ``on_start(run, total)`` is called once the model is loaded, ``on_pair`` and
    ``on_skip`` as each pair is scored or skipped (in scoring order).
    ``shard`` (a :class:`hlcli.engine.sharding.ShardSelection`) keeps one shard of the plan only."""
    specs, layer_weights = validate_options(opts)
    plans, skipped, missing = plan_pairs(pairing, opts, specs)
    if shard is not None:  # one shard of the plan (hlcli.engine.sharding.ShardSelection): its pairs only
        plans, skipped = shard.select(pairing, plans, skipped, opts)
    maps = None
    if opts.save_maps is not None:
        maps = MapWriter(opts.save_maps, specs, layer_weights, fmt=opts.maps_format, scale=opts.maps_scale,
                         extra=extra_metrics(opts))

    eng = load_engine(opts, specs, plans)
    scorer, workers, extra = eng.scorer, eng.workers, eng.extra
    run = eng.new_run(opts, specs, inputs, missing, pairing, skipped)
    if shard is not None and shard.info is not None:  # --shard: the document's top-level `shard`
        run.environment["shard"] = shard.info
    if on_start:
        on_start(run, len(plans) + len(skipped))
    for s in skipped:
        if on_skip:
            on_skip(s)

    _score_batches(run, plans, scorer, opts, workers, specs, layer_weights, maps,
                   on_pair=on_pair, on_skip=on_skip, extra=extra, sets=eng.sets)
    # Canonical (key) order, whatever the batching: the summary is then the same bit for bit
    # for one process, any --shard split merged, or torchrun ranks gathered (hlcli.engine.sharding).
    run.pairs.sort(key=lambda p: p.key)
    run.skipped.sort(key=lambda s: s.key)
    if eng.sets is not None and (shard is None or shard.record):  # a torchrun rank: rank 0 warns once, for the whole run
        _warn_small_sets(run)
    if maps is not None:
        maps.finish(run)
    return run


def _warn_small_sets(run: Run) -> None:
    """An :class:`~hlcli.errors.InputWarning` (stderr) when the run's set is too small for an
    unbiased FID (the same note is in the document's ``summary.sets``)."""
    record = run.set_values(run.pairs)
    if record and record.get("note"):
        warnings.warn(InputWarning(record["note"]), stacklevel=2)


def _score_batches(run: Run, plans: list[Planned], scorer: Any, opts: ScoreOptions, workers: int,
                   specs: tuple[LayerSpec, ...], layer_weights: tuple[float, ...], maps: Any, *,
                   on_pair: Callable[[PairResult], None] | None,
                   on_skip: Callable[[Skipped], None] | None, extra: Any = None, sets: Any = None) -> None:
    """Decode and score ``plans`` batch by batch into ``run`` (in scoring order); with set metrics,
    each pair's Inception features into ``run.set_features``."""
    groups = batches(plans, batch_size=opts.batch_size, pixel_budget=scorer.pixel_budget)
    for batch in decoded_batches(groups, alpha=opts.alpha, max_pixels=opts.max_pixels, workers=workers,
                                 pin_memory=scorer.device.type == "cuda"):
        for failure in batch.failures:
            s = _skip_or_raise(failure, opts)
            run.skipped.append(s)
            if on_skip:
                on_skip(s)
        if not batch.plans:
            continue
        if sets is not None:
            for plan, feats in zip(batch.plans, sets.measure(batch.restored, batch.gt, batch.scale)):
                run.set_features[plan.pair.key] = feats
        for result in pair_results(batch, scorer, specs, layer_weights, opts.lam, maps, extra):
            if isinstance(result, Failure):  # an extra metric has no value for it (NIQE of a flat image)
                s = _skip_or_raise(result, opts)
                run.skipped.append(s)
                if on_skip:
                    on_skip(s)
                continue
            run.pairs.append(result)
            if on_pair:
                on_pair(result)


def _options(lam: float, layers: Iterable[str], options: dict[str, Any]) -> ScoreOptions:
    known = {f.name for f in fields(ScoreOptions)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"unknown {'option' if len(unknown) == 1 else 'options'} {', '.join(unknown)}; ScoreOptions has {', '.join(sorted(known))}")
    options.setdefault("download_progress", False)
    return ScoreOptions(lam=lam, layers=tuple(layers), **options)


def score_dirs(restored: str | os.PathLike[str], gt: str | os.PathLike[str], *, lam: float = 0.05,
               layers: Iterable[str] = DEFAULT_LAYERS, recursive: bool = False, restored_suffix: str = "",
               **options: Any) -> Run:
    """Score every restored image in ``restored`` against its ground truth in ``gt`` (paired by
    relative path without extension, as ``hlcli score RESTORED GT`` does) and return the
    :class:`~hlcli.Run`. ``options`` are the other fields of :class:`~hlcli.ScoreOptions`
    (``layer_weights``, ``device``, ``precision``, ``weights``, ``on_error``...).
    ``restored_suffix`` (e.g. ``"_x4"``) is removed from restored file names before pairing.
    Raises :class:`~hlcli.InputError` or :class:`~hlcli.HlcliEnvironmentError`.

    >>> run = hlcli.score_dirs("samples/restored", "samples/gt", lam=0.05)  # doctest: +SKIP
    >>> run.summary()["metrics"]["hybrid"]["mean"]                          # doctest: +SKIP
    0.0412...
    """
    opts = _options(lam, layers, options)
    pairing = find_pairs(restored, gt, recursive=recursive, restored_suffix=restored_suffix)
    return score_pairing(pairing, opts, inputs=dir_inputs(restored, gt, recursive, restored_suffix))


def score_pairs(pairs: Iterable[tuple[str | os.PathLike[str], str | os.PathLike[str]]], *, lam: float = 0.05,
                layers: Iterable[str] = DEFAULT_LAYERS, **options: Any) -> Run:
    """Score explicit ``(restored_path, gt_path)`` pairs (keys as for ``hlcli score --pairs``:
    the restored file's stem, made longer only where two would clash) and return the
    :class:`~hlcli.Run`. ``options`` as in :func:`score_dirs`.

    >>> run = hlcli.score_pairs([("out/a.png", "gt/a.png")], lam=0.1)  # doctest: +SKIP
    >>> run.pairs[0].hybrid                                             # doctest: +SKIP
    0.0387...
    """
    opts = _options(lam, layers, options)
    pairing = pairs_from_paths([(Path(r), Path(g)) for r, g in pairs])
    return score_pairing(pairing, opts, inputs={"pairs": "<python>"})
