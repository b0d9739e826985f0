"""``hlcli.Evaluator``: hlcli's numbers inside a training loop, torchmetrics-style
(``update`` / ``compute`` / ``reset``), through the same batch engine as ``hlcli score``.

>>> ev = hlcli.Evaluator(lam=0.05, metrics=["psnr"])        # doctest: +SKIP
>>> for lr, hr in val_loader:                               # doctest: +SKIP
...     ev.update(model(lr).clamp(0, 1), hr)
>>> run = ev.compute(); run.to_tensorboard(writer, step=it)  # doctest: +SKIP

* images are float tensors in [0, 1] (or uint8), (N, 3, H, W); by default they are quantised to
  8 bits as writing them to PNG does (``round(x * 255)``, half to even, as numpy and BasicSR's
  ``tensor2img``), so :meth:`compute` equals ``hlcli score`` on the same images saved as PNG;
  ``quantize=16`` as 16-bit PNG; ``quantize=None`` scores the floats as they are (recorded in
  the document's ``settings.quantize``);
* each ``update`` is cut into batches of at most ``batch_size`` pairs and the pixel budget, and
  scored without gradients; a pair over the budget is tiled exactly, as in a run;
* keys name the pairs (default: a running number, ``000000``…, per process); a key seen twice
  with the same scores counts once (``DistributedSampler`` pads ranks with repeated samples),
  with other scores it is a ``ValueError``;
* under ``torch.distributed`` (an initialised process group with more than one process),
  :meth:`compute` gathers every rank's pairs (``all_gather_object``) so that every rank returns
  the run one process would have made; give keys (dataset indices, file names) so that repeats
  are recognised across ranks.
"""

from __future__ import annotations

import heapq
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from ..inputs.loader import Planned
from ..inputs.pairing import Pair, Pairing
from ..metrics import registry
from ..nets.layers import DEFAULT_LAYERS, min_size
from ..runs.results import Missing, Run
from .distributed import _pack, _unpack
from .options import extra_metrics
from .scoring import ScoreOptions, build_results, load_engine, validate_options

QUANTIZE = (8, 16, None)
SOURCE = "<evaluator>"


class Evaluator:
    """hlcli's scores of tensors, torchmetrics-style: :meth:`update` per batch, :meth:`compute`
    for the :class:`~hlcli.Run`, :meth:`reset` between evaluations (see the module doc).

    ``lam``, ``layers``, ``layer_weights``, ``metrics``, ``crop_border``, ``device``,
    ``precision``, ``batch_size``, ``pixel_budget``, ``worst``, ``group_by``, the LPIPS weights and
    FID/KID's ``inception_weights``, ``fid_dims``, ``fid_resize`` and ``fid_patches`` are ``hlcli
    score``'s options (with ``metrics=["fid", "kid"]`` each pair's Inception features are kept, 32
    kB per pair at 2048 dimensions, and gathered with the pairs: :meth:`compute`'s FID and KID are over every
    pair of every rank); ``weights``: a VGG-19 checkpoint, else
    ``$HLCLI_WEIGHTS``, the torch cache, a download (never with ``offline``), as ``hlcli score``;
    ``quantize``: 8 (as 8-bit PNG, the default), 16 or None (the floats as they are);
    ``process_group``: the ``torch.distributed`` group to gather over (default: the world).
    The weights are loaded here, so a wrong option or a missing checkpoint fails at once
    (:class:`~hlcli.InputError`, :class:`~hlcli.HlcliEnvironmentError`).

    >>> ev = hlcli.Evaluator(lam=0.05, metrics=["psnr"])          # doctest: +SKIP
    >>> ev.update(model(lr).clamp(0, 1), hr, keys=names)           # doctest: +SKIP
    >>> ev.compute().summary()["metrics"]["psnr"]["mean"]          # doctest: +SKIP
    27.41...
    """

    def __init__(self, *, lam: float = 0.05, layers: Any = None, layer_weights: Any = None, metrics: Any = (),
                 crop_border: int = 0, device: str = "auto", precision: str = "fp32", weights: Any = None,
                 offline: bool = False, quantize: int | None = 8, batch_size: int = 16,
                 pixel_budget: int | None = None, worst: int = 5, group_by: str = "none",
                 lpips_weights: str | None = None, lpips_vgg_weights: str | None = None,
                 inception_weights: str | None = None, fid_dims: int = 2048, fid_resize: str = "clean",
                 fid_patches: int | None = None, process_group: Any = None):
        if quantize not in QUANTIZE:
            raise ValueError(f"quantize must be 8, 16 or None, got {quantize!r}")
        self.opts = ScoreOptions(
            lam=lam, layers=tuple(layers or DEFAULT_LAYERS),
            layer_weights=None if layer_weights is None else tuple(layer_weights), metrics=tuple(metrics),
            crop_border=crop_border, device=device, precision=precision,
            weights=None if weights is None else str(weights), offline=offline, download_progress=False,
            batch_size=batch_size, pixel_budget=pixel_budget, workers=0, worst=worst, group_by=group_by,
            lpips_weights=lpips_weights, lpips_vgg_weights=lpips_vgg_weights,
            inception_weights=None if inception_weights is None else str(inception_weights), fid_dims=fid_dims,
            fid_resize=fid_resize, fid_patches=fid_patches)
        self.specs, self.layer_weights = validate_options(self.opts)
        self.opts.metrics = extra_metrics(self.opts)  # deduplicated, in the registry's order
        self.quantize = quantize
        self.process_group = process_group
        self.engine = load_engine(self.opts, self.specs)
        self.min_side = max([min_size(self.specs), *(registry.get(n).min_side for n in extra_metrics(self.opts))])
        self.reset()

    # -- torchmetrics' three methods ------------------------------------------------------------

    def reset(self) -> None:
        """Forget every pair scored so far."""
        self._pairs: dict[str, Any] = {}
        self._features: dict[str, Any] = {}  # set metrics (FID, KID): each pair's Inception features
        self._images: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._worst: list[tuple[float, str]] = []  # min-heap of (hybrid, key): the worst pairs so far
        self._count = 0

    def update(self, restored: torch.Tensor, gt: torch.Tensor, keys: Any = None) -> None:
        """Score a batch of pairs (N, 3, H, W) and keep their results (not the images, except
        the ``worst`` few for :meth:`Run.to_tensorboard`)."""
        r, g = self._checked(restored, "restored"), self._checked(gt, "gt")
        if r.shape != g.shape:
            raise ValueError(f"restored and gt must have the same shape, got {tuple(r.shape)} and {tuple(g.shape)}")
        n = r.shape[0]
        keys = self._keys(keys, n)
        c = self.opts.crop_border
        if c:
            r, g = r[:, :, c:r.shape[2] - c, c:r.shape[3] - c], g[:, :, c:g.shape[2] - c, c:g.shape[3] - c]
        h, w = r.shape[2], r.shape[3]
        if min(h, w) < self.min_side:
            raise ValueError(f"images of {r.shape[3] + 2 * c}x{r.shape[2] + 2 * c}" + (f" ({w}x{h} after crop_border {c})" if c else "")
                             + f" are too small for the layers and metrics asked for (need {self.min_side}x{self.min_side})")
        scale = self._scale()
        per = max(1, min(self.opts.batch_size, self.engine.scorer.pixel_budget // (2 * h * w)))
        for i in range(0, n, per):  # quantised batch by batch: never a float64 copy of the whole input
            self._score(keys[i:i + per], self._quantized(r[i:i + per]), self._quantized(g[i:i + per]), scale, h, w)

    def compute(self) -> Run:
        """The :class:`~hlcli.Run` of every pair scored since the last :meth:`reset` (gathered
        over the ranks under ``torch.distributed``): the run, summary and document of
        ``hlcli score``."""
        pairs, images, features, world = self._gathered()
        run = self.engine.new_run(self.opts, self.specs, {"pairs": SOURCE}, Missing(), Pairing([]), [])
        run.settings["quantize"] = self.quantize
        run.pairs = sorted(pairs.values(), key=lambda p: p.key)
        if run.set_features is not None:  # FID, KID over every pair's features, in key order
            run.set_features = {p.key: features[p.key] for p in run.pairs}
        if world > 1:
            run.environment["distributed"] = {"world_size": world, "backend": str(dist.get_backend(self.process_group))}
        run.images = images.get  # the worst pairs' pixels, for Run.to_tensorboard's panels
        return run

    # -- the parts --------------------------------------------------------------------------

    def _checked(self, x: Any, name: str) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"{name} must have shape (N, 3, H, W), got {tuple(x.shape)}")
        x = x.detach()
        if x.dtype == torch.uint8:
            if self.quantize not in (8, None):
                raise ValueError(f"{name} is uint8 but quantize={self.quantize}: pass floats in [0, 1]")
            return x
        if not x.is_floating_point():
            raise ValueError(f"{name} must be a float tensor in [0, 1] or uint8, got {x.dtype}")
        if x.numel():
            lo, hi = float(x.min()), float(x.max())
            if not (0.0 <= lo and hi <= 1.0):  # NaN fails too
                raise ValueError(f"{name} must be in [0, 1], got values in [{lo:g}, {hi:g}]: clamp(0, 1) it first")
        return x

    def _keys(self, keys: Any, n: int) -> list[str]:
        if keys is None:
            out = [f"{self._count + i:06d}" for i in range(n)]
        else:
            out = [str(k) for k in keys]
            if len(out) != n:
                raise ValueError(f"{len(out)} keys for {n} pairs")
        self._count += n
        return out

    def _scale(self) -> int:
        return {8: 255, 16: 65535, None: 1}[self.quantize]

    def _quantized(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            return x if self.quantize is not None else x.float() / 255
        if self.quantize is None:
            return x.float()
        top = 255 if self.quantize == 8 else 65535
        q = (x.double() * top).round_()  # half to even, as numpy's round on the float image
        return q.to(torch.uint8) if self.quantize == 8 else q.to(torch.int32)

    def _score(self, keys: list[str], r: torch.Tensor, g: torch.Tensor, scale: int, h: int, w: int) -> None:
        if scale == 255 and r.dtype != torch.uint8:
            r, g = r.to(torch.uint8), g.to(torch.uint8)
        depth = 16 if scale == 65535 else 8
        plans = [Planned(i, Pair(k, Path(SOURCE), Path(SOURCE)), w, h, None, (w, h), (w, h), depth,
                         self.opts.crop_border) for i, k in enumerate(keys)]
        eng = self.engine
        r, g = r.contiguous(memory_format=torch.channels_last), g.contiguous(memory_format=torch.channels_last)
        l1, per_layer = eng.scorer.measure(r, g, scale)
        extras = eng.extra.measure(r, g, scale) if eng.extra else {}
        results = build_results(plans, eng.scorer, self.specs, self.layer_weights, self.opts.lam, l1, per_layer, extras)
        features = eng.sets.measure(r, g, scale) if eng.sets is not None else [None] * len(results)
        for result, feats in zip(results, features):
            result.restored = result.gt = SOURCE
            self._keep(result)
            if feats is not None:
                self._features.setdefault(result.key, feats)  # a repeated key: its first features
        self._keep_images(results, r, g, scale)

    def _keep(self, result: Any) -> None:
        old = self._pairs.get(result.key)
        if old is not None and not same_scores(old, result):
            raise ValueError(f"the key {result.key!r} was scored twice with different scores: give each pair its own key")
        self._pairs[result.key] = result

    def _keep_images(self, results: list[Any], r: torch.Tensor, g: torch.Tensor, scale: int) -> None:
        """Keep the pixels of the ``worst`` pairs so far (by hybrid) for image panels: a heap of
        ``worst`` entries, so an epoch of many batches costs O(n log k)."""
        k = self.opts.worst
        for i, p in enumerate(results):
            if k <= 0 or p.key in self._images:
                continue
            if len(self._worst) < k:
                heapq.heappush(self._worst, (p.hybrid, p.key))
            elif p.hybrid > self._worst[0][0]:
                _, gone = heapq.heapreplace(self._worst, (p.hybrid, p.key))
                self._images.pop(gone, None)
            else:
                continue
            self._images[p.key] = (_hwc8(r[i], scale), _hwc8(g[i], scale))

    def _gathered(self) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], int]:
        """Every rank's pairs, kept images and (set metrics) pairs' Inception features (one
        process: this one's)."""
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size(self.process_group) == 1:
            return dict(self._pairs), dict(self._images), dict(self._features), 1
        world = dist.get_world_size(self.process_group)
        out: list[Any] = [None] * world
        names = [s.name for s in self.specs]
        dist.all_gather_object(out, ([_pack(p) for p in self._pairs.values()], self._images, self._features),
                               group=self.process_group)
        pairs: dict[str, Any] = {}
        images: dict[str, Any] = {}
        features: dict[str, Any] = {}
        for packed, imgs, feats in out:
            for t in packed:
                p = _unpack(t, names)
                old = pairs.get(p.key)
                if old is not None and not same_scores(old, p):
                    raise ValueError(f"the key {p.key!r} was scored on two ranks with different scores: "
                                     "give each pair its own key")
                pairs[p.key] = p
            images.update(imgs)
            for key, f in feats.items():
                features.setdefault(key, f)
        return pairs, images, features, world


def _hwc8(x: torch.Tensor, scale: int) -> np.ndarray:
    """One image as HxWx3 uint8 for display."""
    a = x.detach().cpu()
    if scale == 1:
        a = (a.double() * 255).round()
    elif scale == 65535:
        a = torch.div(a, 257, rounding_mode="floor")
    return a.to(torch.uint8).permute(1, 2, 0).contiguous().numpy()


def same_scores(a: Any, b: Any) -> bool:
    """Whether two results of one key agree to float tolerance (a repeated sample scored in
    another batch may differ in the last digits)."""
    if (a.width, a.height) != (b.width, b.height) or set(a.layers) != set(b.layers) or set(a.extra) != set(b.extra):
        return False
    return all(x == y or math.isclose(x, y, rel_tol=1e-5, abs_tol=1e-12)
               for x, y in [(a.l1, b.l1), (a.hybrid, b.hybrid), (a.perceptual, b.perceptual),
                            *((a.layers[k], b.layers[k]) for k in a.layers), *((a.extra[k], b.extra[k]) for k in a.extra)])
