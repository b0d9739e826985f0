"""The Inception features of each pair, from which the set metrics (FID, KID: :mod:`.fid`) are
computed over a run, a group or a model.

Per pair: the samples (the whole image, or its patches with ``--fid-patches S``, cut as
NeuralCompression's ``update_patch_fid``, the same patches from both images), each resized to
299 x 299 by ``--fid-resize`` (:func:`hlcli.nets.inception.prepare`), through the FID Inception.
The network always sees batches of exactly two samples, a restored one and its ground truth, so a
pair's features do not depend on its batch companions, the batch size, the shard or the rank (a
convolution may round differently for another batch size). Features are float64 numpy arrays,
one row per sample.

A sweep (:meth:`InceptionFeatures.measure_models`) forwards each ground-truth sample once for
every model: in the batch of two its first model's single run makes ([restored, ground truth]),
the other models' restored samples two by two (one left over beside a copy of itself). On the CPU
a convolution computes each image of a batch alike whatever its companion holds, so every model's
features are its single run's, bit for bit (tests/test_sweep_fid.py pins this down).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..nets import inception
from . import fid as setstats


class InceptionFeatures:
    """Per-pair Inception features for ``dims`` / ``resize`` / ``patches`` on ``device``."""

    def __init__(self, state_dict: dict[str, torch.Tensor], *, dims: int = 2048, resize: str = "clean",
                 patches: int | None = None, device: Any = "cpu", record: dict[str, Any] | None = None):
        self.dims, self.resize, self.patches = dims, resize, patches
        self.device = torch.device(device)
        self.net = inception.build(state_dict, dims, self.device)
        self.record = record or {}

    def _samples(self, img: torch.Tensor) -> np.ndarray:
        """``K x H' x W' x 3`` samples of one ``3 x H x W`` integer image (K = 1 without patches)."""
        arr = img.permute(1, 2, 0).cpu().numpy()
        if self.patches:
            return setstats.cut_patches(arr, self.patches)
        return arr[None]

    def _inputs(self, samples: np.ndarray, scale: int) -> torch.Tensor:
        """The network's input (``K x 3 x 299 x 299`` float32 on the device) of ``samples``."""
        if self.resize == "clean" and self.device.type == "cpu":
            x = torch.from_numpy(np.stack([inception.resize_clean_pil(s, float(scale)) for s in samples]))
            return (x - 128.0) / 128.0
        x = torch.from_numpy(np.ascontiguousarray(samples.transpose(0, 3, 1, 2))).to(self.device)
        return inception.prepare(x.to(torch.float32), self.resize, float(scale))

    @torch.inference_mode()
    def measure(self, restored: torch.Tensor, gt: torch.Tensor, scale: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per pair of the batch (``N x 3 x H x W`` integer tensors), (restored features,
        ground-truth features), each ``K x dims`` float64 (K: 1, or the pair's patch count)."""
        out = []
        for r_img, g_img in zip(restored, gt):
            rs, gs = self._inputs(self._samples(r_img), scale), self._inputs(self._samples(g_img), scale)
            fr = np.empty((rs.shape[0], self.dims))
            fg = np.empty((gs.shape[0], self.dims))
            for k in range(rs.shape[0]):
                f = self._forward([rs[k], gs[k]])
                fr[k], fg[k] = f[0], f[1]
            out.append((fr, fg))
        return out

    @torch.inference_mode()
    def measure_models(self, gt: torch.Tensor, restored: list[tuple[Any, list[int]]], scale: int,
                       gt_keys: list[Any], cache: dict[Any, np.ndarray]) -> list[list[tuple[np.ndarray, np.ndarray]]]:
        """:meth:`measure` of several models' restored images against one batch of ground truth
        (a sweep), each ground-truth sample through the network once: ``restored`` holds per model
        (``M x 3 x H x W`` tensor or None, the positions in ``gt`` of its M pairs); ``gt_keys[i]``
        names ``gt[i]`` (its file and how it was decoded) in ``cache``, which keeps each ground
        truth's features for the sweep's other batches and groups. Returns per model, per pair,
        (restored features, ground-truth features) as :meth:`measure` does."""
        out: list[list[Any]] = [[None] * len(pos) for _, pos in restored]
        users: dict[int, list[tuple[int, int]]] = {}  # gt index -> [(model, pair)]
        for m, (_, positions) in enumerate(restored):
            for j, i in enumerate(positions):
                users.setdefault(i, []).append((m, j))
        pending: list[tuple[torch.Tensor, np.ndarray, int]] = []  # at most one input awaiting a companion
        for i in sorted(users):
            fg = cache.get(gt_keys[i])
            frs = []
            for t, (m, j) in enumerate(users[i]):
                rs = self._inputs(self._samples(restored[m][0][j]), scale)  # as measure() makes them
                frs.append(np.empty((rs.shape[0], self.dims)))
                if t == 0 and fg is None:  # the first model's [restored, gt], as its single run
                    gs = self._inputs(self._samples(gt[i]), scale)
                    fg = np.empty((gs.shape[0], self.dims))
                    for k in range(rs.shape[0]):
                        f = self._forward([rs[k], gs[k]])
                        frs[0][k], fg[k] = f[0], f[1]
                    cache[gt_keys[i]] = fg
                    continue
                for k in range(rs.shape[0]):
                    pending.append((rs[k], frs[t], k))
                    if len(pending) == 2:
                        self._flush(pending)
            for (m, j), fr in zip(users[i], frs):
                out[m][j] = (fr, fg)
        if pending:  # the odd one out, beside a copy of itself: still a batch of two
            pending.append(pending[0])
            self._flush(pending)
        return out

    def _forward(self, inputs: list[torch.Tensor]) -> np.ndarray:
        return self.net(torch.stack(inputs)).to(torch.float64).cpu().numpy()

    def _flush(self, pending: list[tuple[torch.Tensor, np.ndarray, int]]) -> None:
        """Forward the two ``pending`` inputs, each feature row into its place; empty the list."""
        f = self._forward([x for x, _, _ in pending])
        for row, (_, dest, k) in zip(f, pending):
            dest[k] = row
        pending.clear()


def load_features(opts: Any, device: Any) -> InceptionFeatures:
    """The :class:`InceptionFeatures` of a run's options, the weights found and verified as the
    other networks' (``--inception-weights``, ``$HLCLI_INCEPTION_WEIGHTS``, the cache, a download)."""
    from ..nets import weights

    loaded = weights.load(weights.resolve(opts.inception_weights, offline=opts.offline,
                                          progress=opts.download_progress, net="inception"))
    record = {"path": str(loaded.path), "source": loaded.source, "sha256": loaded.sha256,
              "official": loaded.official}
    return InceptionFeatures(loaded.state_dict, dims=opts.fid_dims, resize=opts.fid_resize,
                             patches=opts.fid_patches, device=device, record=record)
