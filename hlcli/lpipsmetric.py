"""LPIPS as an extra metric of a run (``--metrics lpips,lpips_vgg``): the networks of
:mod:`hlcli.lpips_net` loaded once per run, fed the same decoded integers as the hybrid
(as float32 in [0, 1]), and their spatial maps for ``--save-maps``.

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

from . import lpips_net

#: ``Metric.needs`` -> LPIPS network name (hlcli.metricdefs).
NETS = {"lpips-alex": "alex", "lpips-vgg": "vgg"}


@dataclass
class LoadedLPIPS:
    """One LPIPS network on the scoring device and the provenance recorded in the settings."""

    net: Any
    record: dict[str, Any]


def load_lpips(need: str, opts: Any, device: torch.device) -> LoadedLPIPS:
    """Build the network ``need`` names from ``opts`` (``lpips_weights`` for AlexNet,
    ``lpips_vgg_weights`` for VGG-16; else the environment, the cache, a download)."""
    name = NETS[need]
    path = opts.lpips_weights if name == "alex" else opts.lpips_vgg_weights
    net, backbone, heads = lpips_net.build(name, path, offline=opts.offline, progress=opts.download_progress)
    record = {
        "version": "0.1", "net": name, "input_range": [-1, 1],
        "backbone": {"name": lpips_net.BACKBONES[name], "path": str(backbone.path), "source": backbone.source,
                     "sha256": backbone.sha256, "official_imagenet1k_v1": backbone.official},
        "heads": {"path": str(heads.path), "sha256": heads.sha256, "package": heads.package,
                  "package_version": heads.package_version},
    }
    return LoadedLPIPS(net.to(device).eval(), record)


def _inputs(px: Any) -> tuple[torch.Tensor, torch.Tensor]:
    return px.restored.to(torch.float32) / px.scale, px.gt.to(torch.float32) / px.scale


def lpips_alex(px: Any) -> torch.Tensor:
    return px.nets["lpips-alex"].net(*_inputs(px))


def lpips_vgg(px: Any) -> torch.Tensor:
    return px.nets["lpips-vgg"].net(*_inputs(px))


def _spatial(net: Any, px: Any) -> torch.Tensor:
    restored, gt = _inputs(px)
    h, w = restored.shape[-2:]
    total = torch.zeros(restored.shape[0], h, w, dtype=torch.float64, device=restored.device)
    for m in net.layer_maps(restored, gt):
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
