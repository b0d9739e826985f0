"""LPIPS as an extra metric of a run (``--metrics lpips,lpips_vgg``): the networks of
:mod:`hlcli.nets.lpips_net` loaded once per run, fed the same decoded integers as the hybrid
(as float32 in [0, 1]), and their spatial maps for ``--save-maps``.

Pairs above the run's pixel budget (those hlcli tiles for VGG-19) are tiled for LPIPS-VGG too,
exactly as the engine tiles VGG-19 (:mod:`hlcli.nets.tiling`): VGG-16's layers are 3x3 convolutions
and 2x2 pools, and every LPIPS value is local to its position once the features are computed
(unit-normalisation over channels, squared difference, 1x1 head), so each tile's core, with a
halo of the deepest layer's reach (relu5_3: (196 - 16) / 2 = 90 px, rounded up to 96), equals
the untiled values. AlexNet (stride-4 11x11 first convolution, overlapping 3x3 pools) runs
untiled: its activations are small (a 4096x4096 pair needs about 1 GB).

The map of a pair is LPIPS' ``spatial=True`` map (each layer's map after its linear head,
upsampled bilinearly to the image size, summed over layers), with each upsampled layer map
rescaled so that its mean is that layer's exact spatial mean: the map's mean is then the pair's
LPIPS value (bilinear upsampling alone moves the mean slightly at the borders).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..nets import lpips_net
from ..nets.tiling import spans, tile_plan

#: ``Metric.needs`` -> LPIPS network name (hlcli.metrics.registry).
NETS = {"lpips-alex": "alex", "lpips-vgg": "vgg"}


@dataclass
class LoadedLPIPS:
    """One LPIPS network on the scoring device and the provenance recorded in the settings."""

    net: Any
    record: dict[str, Any]


def load_lpips(need: str, opts: Any, device: torch.device) -> LoadedLPIPS:
    """Build the network ``need`` names from ``opts`` (``lpips_weights`` for AlexNet,
    ``vgg16_weights`` (or its old name ``lpips_vgg_weights``) for VGG-16; else the environment,
    the cache, a download)."""
    name = NETS[need]
    path = opts.lpips_weights if name == "alex" else opts.vgg16_file
    net, backbone, heads = lpips_net.build(name, path, offline=opts.offline, progress=opts.download_progress)
    record = {
        "version": "0.1", "net": name, "input_range": [-1, 1],
        "backbone": {"name": lpips_net.BACKBONES[name], "path": str(backbone.path), "source": backbone.source,
                     "sha256": backbone.sha256, "official_imagenet1k_v1": backbone.official},
        "heads": {"path": str(heads.path), "sha256": heads.sha256, "package": heads.package,
                  "package_version": heads.package_version},
    }
    return LoadedLPIPS(net.to(device).eval(), record)


@dataclass(frozen=True)
class _Layer:
    """A VGG-16 LPIPS layer's geometry for :func:`hlcli.nets.tiling.tile_plan` and ``spans``."""

    stride: int
    receptive_field: int


#: relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 of VGG-16 (3x3 convolutions, 2x2 pools).
VGG16_LAYERS = (_Layer(1, 5), _Layer(2, 14), _Layer(4, 40), _Layer(8, 92), _Layer(16, 196))
#: Tile core for LPIPS-VGG (None: from the pixel budget); tests set a small one.
TILE_CORE: int | None = None
#: VGG-16's 3x3 convolutions up to relu5_3 as (in channels, out channels, input stride): the
#: FLOPs of :func:`hlcli.nets.tiling.run_tiling_factor`.
VGG16_CONVS = ((3, 64, 1), (64, 64, 1), (64, 128, 2), (128, 128, 2), (128, 256, 4), (256, 256, 4), (256, 256, 4),
               (256, 512, 8), (512, 512, 8), (512, 512, 8), (512, 512, 16), (512, 512, 16), (512, 512, 16))
#: The name of LPIPS-VGG's network in tiling plans and messages.
TILED_NAME = "VGG-16 (lpips_vgg)"


def _inputs(px: Any) -> tuple[torch.Tensor, torch.Tensor]:
    return px.restored.to(torch.float32) / px.scale, px.gt.to(torch.float32) / px.scale


def _tiled(px: Any) -> bool:
    budget = getattr(px, "pixel_budget", None)
    h, w = px.restored.shape[-2:]
    return budget is not None and 2 * h * w > budget


def _layer_maps(net: Any, px: Any) -> list[list[torch.Tensor]]:
    """Per pair, its per-layer maps after the heads (whole, (h_l, w_l) each): from one forward,
    or, for a pair above the pixel budget with VGG-16, stitched from exact tiles."""
    restored, gt = _inputs(px)
    if net.net != "vgg" or not _tiled(px):
        maps = net.layer_maps(restored, gt)
        return [[m[j] for m in maps] for j in range(restored.shape[0])]
    return [_stitched(net, restored[j : j + 1], gt[j : j + 1], px.pixel_budget) for j in range(restored.shape[0])]


def _stitched(net: Any, r: torch.Tensor, g: torch.Tensor, budget: int) -> list[torch.Tensor]:
    """The per-layer maps of one pair, tile by tile: each core's values are the untiled ones
    (see the module doc), written to their place in the whole map."""
    plan = tile_plan(VGG16_LAYERS, budget, TILE_CORE)
    h, w = r.shape[-2:]
    whole = [torch.zeros(h // s.stride, w // s.stride, dtype=torch.float32, device=r.device) for s in VGG16_LAYERS]
    for y0, y1, cy0, cy1 in spans(h, plan):
        for x0, x1, cx0, cx1 in spans(w, plan):
            maps = net.layer_maps(r[..., cy0:cy1, cx0:cx1], g[..., cy0:cy1, cx0:cx1])
            for spec, m, out in zip(VGG16_LAYERS, maps, whole):
                s = spec.stride
                fy0, fx0 = (y0 - cy0) // s, (x0 - cx0) // s
                fy1 = (h // s if y1 == h else y1 // s) - cy0 // s
                fx1 = (w // s if x1 == w else x1 // s) - cx0 // s
                part = m[0, fy0:fy1, fx0:fx1]
                out[y0 // s : y0 // s + part.shape[0], x0 // s : x0 // s + part.shape[1]] = part
    return whole


def _values(net: Any, px: Any) -> torch.Tensor:
    if net.net != "vgg" or not _tiled(px):
        return net(*_inputs(px))
    values = [sum(m.double().mean() for m in maps) for maps in _layer_maps(net, px)]
    return torch.stack(values).to(torch.float64)


def lpips_alex(px: Any) -> torch.Tensor:
    return _values(px.nets["lpips-alex"].net, px)


def lpips_vgg(px: Any) -> torch.Tensor:
    return _values(px.nets["lpips-vgg"].net, px)


def _spatial(net: Any, px: Any) -> torch.Tensor:
    restored, _ = _inputs(px)
    h, w = restored.shape[-2:]
    per_pair = _layer_maps(net, px)
    total = torch.zeros(restored.shape[0], h, w, dtype=torch.float64, device=restored.device)
    for m in (torch.stack(layer) for layer in zip(*per_pair)):
        up = F.interpolate(m[:, None].double(), size=(h, w), mode="bilinear", align_corners=False)[:, 0]
        target = m.double().mean(dim=(1, 2))
        have = up.mean(dim=(1, 2))
        scale = torch.where(have > 0, target / have.clamp_min(1e-300), torch.ones_like(have))
        total += up * scale[:, None, None]
    return total


def lpips_alex_map(px: Any) -> torch.Tensor:
    return _spatial(px.nets["lpips-alex"].net, px)


def lpips_vgg_map(px: Any) -> torch.Tensor:
    return _spatial(px.nets["lpips-vgg"].net, px)
