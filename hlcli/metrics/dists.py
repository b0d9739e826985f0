"""DISTS as an extra metric of a run (``--metrics dists``): the network of
:mod:`hlcli.nets.dists_net` (VGG-16 with L2 pooling, torchvision's ImageNet checkpoint, the
learned alpha/beta of dists-pytorch) loaded once per run and fed the same decoded integers as the
hybrid (as float32 in [0, 1]); no resize.

Pairs above the run's pixel budget (those hlcli tiles for VGG-19) are scored in exact tiles: each
tile adds its core's per-channel sums (x, y, x², y², xy of every stage) and the statistics are made
from the totals, so tiled == untiled to float32 rounding (halo 112 px: relu5_3's reach of 105 px
rounded up to the deepest stride, see :mod:`hlcli.nets.dists_net`).

No map: DISTS is a weighted sum of per-channel similarities of *global* statistics, and no
per-position decomposition has the pair's value as its mean, so ``--save-maps`` adds none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..nets import datafiles, weights
from ..nets.dists_net import DISTS, LAYERS
from ..nets.tiling import tile_plan
from .lpips import VGG16_CONVS


@dataclass
class LoadedDISTS:
    """The DISTS network on the scoring device and the provenance recorded in the settings."""

    net: Any
    record: dict[str, Any]


def load_dists(opts: Any, device: torch.device) -> LoadedDISTS:
    """The VGG-16 backbone (``--vgg16-weights``, as LPIPS-VGG's) and the alpha/beta file
    (``--dists-weights``; :mod:`hlcli.nets.datafiles`), verified, as one network."""
    ab = datafiles.load("dists", opts.dists_weights, offline=opts.offline, progress=opts.download_progress)
    backbone = weights.load_weights(opts.vgg16_file, offline=opts.offline, progress=opts.download_progress,
                                    net="vgg16")
    net = DISTS(backbone.state_dict, *ab.value).to(device)
    record = {
        "reference": "DISTS_pytorch.DISTS (dists-pytorch 0.1), no resize",
        "backbone": {"name": "vgg16", "path": str(backbone.path), "source": backbone.source,
                     "sha256": backbone.sha256, "official_imagenet1k_v1": backbone.official},
        "weights": ab.record(),
    }
    return LoadedDISTS(net, record)


#: Tile core for DISTS (None: from the pixel budget); tests set a small one.
TILE_CORE: int | None = None
#: DISTS' network in tiling plans and messages (:func:`hlcli.engine.scoring.tiled_nets`): VGG-16's
#: 13 convolutions (L2 pools keep the max pools' strides), DISTS' own, wider halo.
TILED_NAME = "VGG-16 (dists)"
CONVS = VGG16_CONVS


def tile_core(h: int, w: int, budget: int | None) -> int | None:
    """The core side of the tiles of an h x w pair above the pixel budget (None: scored whole),
    from :func:`hlcli.nets.tiling.tile_plan` as for VGG-19 and LPIPS-VGG (halo 112 px)."""
    if budget is None or 2 * h * w <= budget:
        return None
    return tile_plan(LAYERS, budget, TILE_CORE).core


def dists(px: Any) -> torch.Tensor:
    net = px.nets["dists"].net
    restored = px.restored.to(torch.float32) / px.scale
    gt = px.gt.to(torch.float32) / px.scale
    h, w = restored.shape[-2:]
    return net(restored, gt, tile_core=tile_core(h, w, getattr(px, "pixel_budget", None)))
