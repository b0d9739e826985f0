"""Checkpoint sweeps: many models scored against one ground truth in one run
(``hlcli score A/ B/ C/ GT/``, :func:`score_models`).

Each model's :class:`~hlcli.Run` is the run :func:`hlcli.engine.scoring.score_pairing` gives for that
model alone: the same plans, batches, skips, missing files and numbers (bit for bit, see
:mod:`hlcli.engine.sweep_batch`). What is shared: the weights and network (loaded once), each
ground-truth image's decode (once per batch, for every model whose plan holds it at the same size)
and its features (once per forward chunk); with set metrics (FID, KID), each ground-truth sample's
Inception features once per sweep, across groups too. Models whose plans differ (a missing or unreadable
file) form their own group, with its own batches, as their single runs would.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import HlcliError, InputError, InputWarning
from ..nets.layers import DEFAULT_LAYERS, LayerSpec
from ..inputs.loader import (
    batches,
    decode_side,
    DecodedBatch,
    Failure,
    iterate_dataset,
    Planned,
    stack_images,
)
from ..inputs.pairing import dir_inputs, find_pairs, Pairing
from ..runs.results import PairResult, Run, Skipped
from .scoring import (
    _options,
    _skip_or_raise,
    build_results,
    extra_metrics,
    load_engine,
    option_settings,
    pair_results,
    plan_pairs,
    ScoreOptions,
    validate_options,
)
from ..runs.maps import MapWriter
from ..runs.documents import load_document
from .sharding import run_from_document

__all__ = ["check_models", "score_models", "score_sweep"]


@dataclass
class Model:
    """One model of a sweep: its pairing, its plans and its run as they are built."""

    name: str
    pairing: Pairing
    inputs: dict[str, Any]
    plans: list[Planned] = field(default_factory=list)
    run: Any = None
    maps: Any = None


class ModelBatch(NamedTuple):
    """One model's side of a decoded sweep batch: the pairs it scores (``plans``), its restored
    images of them, their positions in the batch's ground truth, and the pairs that failed."""

    plans: list[Planned]
    restored: Any
    positions: list[int]
    failures: list[Failure]


class SweepBatch(NamedTuple):
    gt: Any  # the ground truth of the pairs whose ground truth decoded, (N, 3, H, W)
    models: list[ModelBatch]


class SweepDataset:
    """Items: one batch of a group of models with the same plans, its ground truth decoded once
    and each model's restored images (a map-style dataset, so DataLoader workers can decode ahead)."""

    def __init__(self, per_model: list[list[list[Planned]]], *, alpha: str, max_pixels: int | None):
        self.per_model = per_model  # [model][batch] -> plans
        self.alpha = alpha
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.per_model[0])

    def __getitem__(self, i: int) -> SweepBatch:
        kw = {"alpha": self.alpha, "max_pixels": self.max_pixels}
        gts: list[Any] = []
        for plan in self.per_model[0][i]:
            try:
                gts.append(decode_side(plan, "gt", **kw))
            except HlcliError as err:
                gts.append(err)
        ok_at = {j: k for k, j in enumerate(j for j, g in enumerate(gts) if not isinstance(g, HlcliError))}
        models = []
        for model_batches in self.per_model:
            ok, rs, positions, failures = [], [], [], []
            for j, plan in enumerate(model_batches[i]):
                try:  # the restored side first: its error wins, as in a single run's decode_pair
                    r = decode_side(plan, "restored", **kw)
                except HlcliError as err:
                    failures.append(Failure(plan.index, plan.pair, err))
                    continue
                if j not in ok_at:
                    failures.append(Failure(plan.index, plan.pair, gts[j]))
                    continue
                ok.append(plan)
                rs.append(r)
                positions.append(ok_at[j])
            models.append(ModelBatch(ok, stack_images(rs) if rs else None, positions, failures))
        good = [g for g in gts if not isinstance(g, HlcliError)]
        return SweepBatch(stack_images(good) if good else None, models)


def _pin(batch: SweepBatch) -> SweepBatch:
    if batch.gt is None:
        return batch
    return SweepBatch(batch.gt.pin_memory(), [m._replace(restored=m.restored.pin_memory()) if m.restored is not None
                                              else m for m in batch.models])


def check_models(models: dict[str, Any], gt: str | os.PathLike[str]) -> None:
    """A sweep needs at least one model and no model folder that is the ground-truth folder
    (:class:`InputError` otherwise)."""
    if not models:
        raise InputError("no models to score", None, "give one or more model folders before the ground truth")
    gt_real = Path(gt).resolve()
    for name, path in models.items():
        if Path(path).resolve() == gt_real:
            raise InputError(f"model {name!r} is the ground-truth folder", path,
                             "the last folder is the ground truth; list only the models' folders before it")


def _signature(plans: list[Planned]) -> tuple[Any, ...]:
    """What decides a model's batches and the ground truth they decode: equal signatures share both."""
    return tuple((p.pair.key, str(p.pair.gt), p.width, p.height, p.depth, p.policy_size, p.policy == "crop",
                  p.gt_size) for p in plans)


def score_sweep(models: list[Model], opts: ScoreOptions, *,
                on_start: Callable[[dict[str, Run], int], None] | None = None,
                on_pair: Callable[[str, PairResult], None] | None = None,
                on_skip: Callable[[str, Skipped], None] | None = None) -> dict[str, Run]:
    """Score every model of a sweep; return ``{name: Run}`` in the models' order, each run the
    one :func:`hlcli.engine.scoring.score_pairing` gives for that model alone. Raises on the first
    error the options make fatal (``on_error="fail"``, missing files without ``allow_missing``),
    before any run is returned."""
    specs, layer_weights = validate_options(opts)
    skipped_of: dict[str, list[Skipped]] = {}
    missing_of: dict[str, Any] = {}
    for m in models:
        m.plans, skipped_of[m.name], missing_of[m.name] = plan_pairs(m.pairing, opts, specs)
    eng = load_engine(opts, specs, [p for m in models for p in m.plans])
    for m in models:
        m.run = eng.new_run(opts, specs, m.inputs, missing_of[m.name], m.pairing, skipped_of[m.name])
        m.maps = _map_writer(opts, specs, layer_weights, m.name)
    if on_start:
        on_start({m.name: m.run for m in models}, sum(len(m.plans) + len(skipped_of[m.name]) for m in models))
    for m in models:
        for s in skipped_of[m.name]:
            if on_skip:
                on_skip(m.name, s)
    groups: dict[tuple[Any, ...], list[Model]] = {}
    for m in models:
        groups.setdefault(_signature(m.plans), []).append(m)
    gt_features: dict[tuple[Any, ...], Any] = {}  # set metrics: each ground truth's features, once per sweep
    for members in groups.values():
        _score_group(members, eng, opts, specs, layer_weights, on_pair=on_pair, on_skip=on_skip,
                     gt_features=gt_features)
    for m in models:
        m.run.pairs.sort(key=lambda p: p.key)
        m.run.skipped.sort(key=lambda s: s.key)
        if eng.sets is not None:
            _warn_small_sets(m.run, m.name)
        if m.maps is not None:
            m.maps.finish(m.run)
    return {m.name: m.run for m in models}


def _map_writer(opts: ScoreOptions, specs: tuple[LayerSpec, ...], layer_weights: tuple[float, ...], name: str) -> Any:
    """``--save-maps DIR``: one folder per model, DIR/<name>/."""
    if opts.save_maps is None:
        return None

    return MapWriter(os.path.join(opts.save_maps, name), specs, layer_weights, fmt=opts.maps_format,
                     scale=opts.maps_scale, extra=extra_metrics(opts))


def _gt_key(plan: Planned) -> tuple[Any, ...]:
    """What decides a ground truth's decoded pixels (its file, size policy, crop border, depth):
    equal keys share their Inception features across the sweep's groups."""
    return (str(plan.pair.gt), plan.gt_size, plan.policy_size, plan.policy == "crop", plan.crop_border, plan.depth)


def _warn_small_sets(run: Run, name: str) -> None:
    """A model's small-set note on stderr (as its single run gives it), named by the model."""
    record = run.set_values(run.pairs)
    if record and record.get("note"):
        warnings.warn(InputWarning(f"{name}: {record['note']}"), stacklevel=2)


def _set_features(batch: SweepBatch, members: list[Model], eng: Any, gt_features: dict[Any, Any]) -> None:
    """Each model's pairs' Inception features of one batch into its run (set metrics), every
    ground-truth sample through the network once per sweep
    (:meth:`hlcli.metrics.setfeatures.InceptionFeatures.measure_models`)."""
    scored = [(m, mb) for m, mb in zip(members, batch.models) if mb.plans]
    if batch.gt is None or not scored:
        return
    keys: list[Any] = [None] * batch.gt.shape[0]
    for _, mb in scored:
        for plan, i in zip(mb.plans, mb.positions):
            keys[i] = _gt_key(plan)
    scale = 65535 if scored[0][1].plans[0].depth == 16 else 255  # one depth per group
    measured = eng.sets.measure_models(batch.gt, [(mb.restored, mb.positions) for _, mb in scored], scale,
                                       keys, gt_features)
    for (m, mb), feats in zip(scored, measured):
        for plan, f in zip(mb.plans, feats):
            m.run.set_features[plan.pair.key] = f


def _score_group(members: list[Model], eng: Any, opts: ScoreOptions, specs: tuple[LayerSpec, ...],
                 layer_weights: tuple[float, ...], *, on_pair: Any, on_skip: Any,
                 gt_features: dict[Any, Any]) -> None:
    """Score the models of one group (equal plans) batch by batch, each ground truth decoded once
    (and, with set metrics, through the Inception once per sweep: ``gt_features``)."""
    if not members[0].plans:
        return
    per_model = [batches(m.plans, batch_size=opts.batch_size, pixel_budget=eng.scorer.pixel_budget) for m in members]
    dataset = SweepDataset(per_model, alpha=opts.alpha, max_pixels=opts.max_pixels)
    for batch in iterate_dataset(dataset, workers=eng.workers, pin_memory=eng.scorer.device.type == "cuda", pin=_pin):
        for m, mb in zip(members, batch.models):
            for failure in mb.failures:
                s = _skip_or_raise(failure, opts)
                m.run.skipped.append(s)
                if on_skip:
                    on_skip(m.name, s)
        if eng.sets is not None:  # before the pair metrics, as a single run (hlcli.engine.scoring)
            _set_features(batch, members, eng, gt_features)
        for m, results in zip(members, _batch_results(batch, members, eng, opts, specs, layer_weights)):
            for result in results:
                if isinstance(result, Failure):  # an extra metric has no value for it (NIQE of a flat image)
                    s = _skip_or_raise(result, opts)
                    m.run.skipped.append(s)
                    if on_skip:
                        on_skip(m.name, s)
                    continue
                m.run.pairs.append(result)
                if on_pair:
                    on_pair(m.name, result)


def _batch_results(batch: SweepBatch, members: list[Model], eng: Any, opts: ScoreOptions,
                   specs: tuple[LayerSpec, ...], layer_weights: tuple[float, ...]) -> list[list[PairResult]]:
    """Each model's results of one batch: shared ground-truth features where the model scores
    every pair whose ground truth decoded (and the pairs are not tiled, no maps are written);
    else that model's batch alone, as its single run scores it."""
    out: list[list[PairResult]] = [[] for _ in members]
    scored = [mb for mb in batch.models if mb.plans]
    if batch.gt is None or not scored:
        return out
    n, _, h, w = batch.gt.shape
    scale = 65535 if scored[0].plans[0].depth == 16 else 255  # one depth per group
    shared = [k for k, (m, mb) in enumerate(zip(members, batch.models))
              if len(mb.plans) == n and m.maps is None and not eng.scorer.is_tiled(h, w)]
    if shared:
        measured = _measure_shared(eng, batch, shared, scale)
        if measured is None:  # CUDA out of memory: each model alone, with the engine's retries
            shared = []
        else:
            for k, (l1, per_layer) in zip(shared, measured):
                mb = batch.models[k]
                extras = eng.extra.measure(mb.restored, batch.gt, scale) if eng.extra else {}
                out[k] = build_results(mb.plans, eng.scorer, specs, layer_weights, opts.lam, l1, per_layer, extras)
    for k, (m, mb) in enumerate(zip(members, batch.models)):
        if k in shared or not mb.plans:
            continue
        gt = batch.gt if len(mb.positions) == n else batch.gt[mb.positions]
        alone = DecodedBatch(mb.plans, mb.restored, gt, [])
        out[k] = pair_results(alone, eng.scorer, specs, layer_weights, opts.lam, m.maps, eng.extra)
    return out


def _measure_shared(eng: Any, batch: SweepBatch, shared: list[int], scale: int) -> list[Any] | None:
    import torch  # lazy: keeps torch off the cheap paths (import hlcli, --help, reading runs)

    from .sweep_batch import measure_shared  # lazy: keeps torch off the cheap paths (import hlcli, --help, reading runs)

    try:
        return measure_shared(eng.scorer, batch.gt, [batch.models[k].restored for k in shared], scale)
    except torch.cuda.OutOfMemoryError:
        if eng.scorer.device.type != "cuda":
            raise
    torch.cuda.empty_cache()
    return None


def score_models(models: dict[str, str | os.PathLike[str]], gt: str | os.PathLike[str], *, lam: float = 0.05,
                 layers: Any = DEFAULT_LAYERS, recursive: bool = False, restored_suffix: str = "",
                 **options: Any) -> dict[str, Run]:
    """Score several models' folders against one ground-truth folder in one sweep (each
    ground-truth image decoded and passed through VGG-19 once per batch) and return
    ``{name: Run}``, each run equal to :func:`hlcli.score_dirs` of that model alone.
    ``options`` as in :func:`hlcli.score_dirs`.

    >>> runs = hlcli.score_models({"a": "out_a/", "b": "out_b/"}, "gt/")  # doctest: +SKIP
    >>> {name: run.summary()["metrics"]["hybrid"]["mean"] for name, run in runs.items()}  # doctest: +SKIP
    {'a': 0.0412..., 'b': 0.0398...}
    """
    opts = _options(lam, layers, options)
    check_models(models, gt)
    entries = [Model(name, find_pairs(path, gt, recursive=recursive, restored_suffix=restored_suffix),
                     dir_inputs(path, gt, recursive, restored_suffix)) for name, path in models.items()]
    return score_sweep(entries, opts)


def stored_run(path: Path, model: Model, opts: ScoreOptions, weights_sha256: Any,
               inception_sha256: Any = None) -> tuple[Run | None, str | None]:
    """``--resume``: the run stored in ``path`` when it is this model's complete document for
    ``opts`` (same inputs, settings that change the numbers, weights, pairs, skips and missing
    files; ``weights_sha256()`` gives the weights' hash, asked only when all else matches), else
    ``(None, why)``. With set metrics (FID, KID) the document's set values are kept as the run's
    (:meth:`~hlcli.runs.results.Run.keep_set_values`: a document holds no features, but its values
    are this model's own), when its Inception weights are ``inception_sha256()``'s."""
    if not path.is_file():
        return None, "absent"
    try:
        doc = load_document(path, role="existing document")
    except InputError as exc:
        return None, exc.what
    settings = doc["settings"]
    wanted = {**option_settings(opts), "inputs": model.inputs, "metrics": list(extra_metrics(opts)),
              "group_by": opts.group_by, "crop_border": opts.crop_border}
    found = {**settings, "metrics": settings.get("metrics", []), "group_by": settings.get("group_by", "none"),
             "crop_border": settings.get("crop_border", 0)}
    if isinstance(settings.get("fid"), dict):  # the Inception weights are checked by hash, below
        found["fid"] = {k: v for k, v in settings["fid"].items() if k != "weights"}
    if doc.get("summary_only"):
        return None, "written with --summary-only"
    differ = sorted(k for k, v in wanted.items() if found.get(k) != v)
    if differ:
        return None, f"other {', '.join(differ)}"
    run = run_from_document(doc, worst=opts.worst)
    keys = sorted([p.key for p in run.pairs] + [s.key for s in run.skipped])
    if keys != [p.key for p in model.pairing.pairs] or \
            (run.missing.restored_only, run.missing.gt_only) != ([str(p) for p in model.pairing.restored_only],
                                                                 [str(p) for p in model.pairing.gt_only]):
        return None, "other pairs"
    if weights_sha256() != settings["weights"]["sha256"]:
        return None, "other weights"
    if "fid" in wanted:
        if "sets" not in doc["summary"]:
            return None, "no set values"
        if inception_sha256 is None or inception_sha256() != settings["fid"].get("weights", {}).get("sha256"):
            return None, "other Inception weights"
        run.keep_set_values(doc["summary"])
    return run, None
