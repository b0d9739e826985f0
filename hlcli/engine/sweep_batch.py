"""The shared forward of a sweep (:mod:`hlcli.engine.sweep`): a batch of ground-truth images through
VGG-19 once, then each model's restored images of the same pairs against those features.

The numbers are those of :meth:`hlcli.engine.batch.BatchScorer.measure` for each model alone, bit for
bit, because every forward here has the shape a single run's forward has:

* a single run forwards a chunk of n pairs as one batch of 2n images (restored then ground
  truth), or, for one pair larger than half the forward size, as two batches of one. Convolution
  kernels compute each image of a batch alike whatever the others hold, but on this CPU a batch
  of one image gets other roundings than a batch of two (oneDNN picks another kernel), while n
  and 2n images agree for n >= 2 (tests/test_sweep.py pins both down);
* so chunks of n >= 2 pairs, and large single pairs, run the ground truth once (n images) and each
  model's restored images (n images); a chunk of one small pair runs batches of two images:
  the first model's pair as a single run does, then the other models' restored images two by two.

Only one chunk of ground-truth features is held at a time, whatever the number of models.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..metrics import hybrid as metrics
from .batch import BatchScorer, _abs_diff_sums


def _sq(fr: Sequence[torch.Tensor], fg: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    return [metrics.squared_diff_sum(a, b) for a, b in zip(fr, fg)]


def _chunk_sums(scorer: BatchScorer, g: torch.Tensor, rs: list[torch.Tensor], scale: int) -> list[list[torch.Tensor]]:
    """Per model, per layer, per image float64 sums of squared feature differences of one chunk
    (``g``: the chunk's ground truth, ``rs``: each model's restored images of it)."""
    n, _, h, w = g.shape
    feats = scorer._features
    if n > 1 or 2 * h * w > scorer.forward_pixels:
        fg = feats(scorer._input([g], scale))
        return [_sq(feats(scorer._input([r], scale)), fg) for r in rs]
    # One small pair: batches of two images, as the single run's [restored, gt].
    out: list[list[torch.Tensor]] = [[] for _ in rs]
    first = feats(scorer._input([rs[0], g], scale))
    out[0] = _sq([f[:1] for f in first], [f[1:] for f in first])
    fg = [f[1:] for f in first]
    rest = list(range(1, len(rs)))
    while len(rest) >= 2:
        i, j = rest.pop(0), rest.pop(0)
        both = feats(scorer._input([rs[i], rs[j]], scale))
        out[i] = _sq([f[:1] for f in both], fg)
        out[j] = _sq([f[1:] for f in both], fg)
    if rest:  # an odd one out: its own single-run forward
        i = rest[0]
        last = feats(scorer._input([rs[i], g], scale))
        out[i] = _sq([f[:1] for f in last], [f[1:] for f in last])
    return out


@torch.inference_mode()
def measure_shared(scorer: BatchScorer, gt: torch.Tensor, restored: list[torch.Tensor],
                   scale: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """:meth:`BatchScorer.measure` of each ``restored`` batch (one per model, the same pairs)
    against the one ``gt`` batch, the ground truth forwarded once per chunk. Returns per model
    (l1 (N,), per-layer perceptual (N, L)), float64 on the CPU. Not for tiled pairs."""
    n, _, h, w = gt.shape
    g_dev = gt.to(scorer.device, non_blocking=True)
    r_devs = [r.to(scorer.device, non_blocking=True) for r in restored]
    l1s = [metrics.l1_from_sum(_abs_diff_sums(r, g_dev), 3 * h * w, scale=scale).cpu() for r in r_devs]
    per = max(1, scorer.forward_pixels // (2 * h * w))
    parts: list[list[list[torch.Tensor]]] = [[] for _ in restored]
    for i in range(0, n, per):
        chunk = _chunk_sums(scorer, g_dev[i : i + per], [r[i : i + per] for r in r_devs], scale)
        for model_parts, sums in zip(parts, chunk):
            model_parts.append(sums)
    counts = torch.tensor([scorer.feature_count(s, h, w) for s in scorer.layers], dtype=torch.float64)
    out = []
    for l1, model_parts in zip(l1s, parts):
        sums = torch.stack([torch.cat(layer_parts).cpu() for layer_parts in zip(*model_parts)], dim=1)
        out.append((l1, metrics.feature_mse_from_sum(sums, counts)))
    return out
