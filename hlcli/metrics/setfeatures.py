"""The Inception features of each pair, from which the set metrics (FID, KID: :mod:`.fid`) are
computed over a run, a group or a model.

Per pair: the samples (the whole image, or its patches with ``--fid-patches S``, cut as
NeuralCompression's ``update_patch_fid``, the same patches from both images), each resized to
299 x 299 by ``--fid-resize`` (:func:`hlcli.nets.inception.prepare`), through the FID Inception.
The network always sees batches of exactly two samples, a restored one and its ground truth, so a
pair's features do not depend on its batch companions, the batch size, the shard or the rank (a
convolution may round differently for another batch size). Features are float64 numpy arrays,
one row per sample.
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
                f = self.net(torch.stack([rs[k], gs[k]])).to(torch.float64).cpu().numpy()
                fr[k], fg[k] = f[0], f[1]
            out.append((fr, fg))
        return out


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
