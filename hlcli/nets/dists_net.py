"""DISTS (Ding, Ma, Wang & Simoncelli 2020, "Image Quality Assessment: Unifying Structure and
Texture Similarity"), computed per pair exactly as ``DISTS_pytorch.DISTS`` of the dists-pytorch
package (0.1, MIT; ``DISTS_pytorch/DISTS_pt.py``), with no resize inside the metric:

* the input (N, 3, H, W) in [0, 1] is stage 0; ImageNet-normalised, it goes through VGG-16's
  ``features[0:30]`` (torchvision's ImageNet checkpoint) whose max pools (indices 4, 9, 16, 23)
  are replaced by L2 pooling: x -> sqrt(depthwise_conv(x², [[1,2,1],[2,4,2],[1,2,1]] / 16,
  stride 2, padding 1) + 1e-12); stages 1–5 are relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
  (3 + 64 + 128 + 256 + 512 + 512 = 1,475 channels);
* per channel, the spatial means and population (co)variances of both images' maps;
  S1 = (2 mu_x mu_y + c1) / (mu_x² + mu_y² + c1), S2 = (2 sigma_xy + c2) / (sigma_x² + sigma_y² + c2),
  c1 = c2 = 1e-6;
* alpha and beta (the learned weights, (1, 1475, 1, 1) each) divided by sum(alpha) + sum(beta);
  DISTS = 1 - sum over the 1,475 channels of (alpha S1 + beta S2), computed here as
  sum(alpha (1 - S1) + beta (1 - S2)) with the weights normalised in float64 (the original
  normalises in float32, whose sum misses 1 by about 1e-7: identical images score exactly 0 here,
  about ±1e-7 there).

The features are float32 (as the original's); the per-channel sums (x, y, x², y², xy) are
accumulated in float64, so the statistics are the same whether a pair is scored whole or in
tiles: large pairs are split into tiles whose cores partition each stage's map, with a halo of
relu5_3's reach (105 px left/up, 90 px right/down, rounded up to 112, a multiple of the deepest
stride 16, so every L2 pool sees the windows it sees untiled); each tile adds its core's sums.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .datafiles import check_alpha_beta

#: The (exclusive) ends of the five stages in VGG-16's ``features`` (each ends on a ReLU); the
#: module at each earlier stage's end (4, 9, 16, 23) is the max pool replaced by L2 pooling.
STAGE_ENDS = (4, 9, 16, 23, 30)
CHANNELS = (3, 64, 128, 256, 512, 512)
TOTAL_CHANNELS = sum(CHANNELS)  # 1475
STRIDES = (1, 1, 2, 4, 8, 16)
C1 = C2 = 1e-6
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def _reaches() -> tuple[tuple[int, int], ...]:
    """(before, after) reach of each stage: stage k's value at position p covers input pixels
    [p*s - before, (p+1)*s - 1 + after]. relu5_3: (105, 90)."""
    out = [(0, 0)]
    before = after = 0
    s = 1
    convs = (2, 2, 3, 3, 3)
    for k, n in enumerate(convs):
        if k > 0:  # L2 pool: output q reads positions 2q-1 .. 2q+1 of the previous map
            before, after = before + s, after  # 2q-1 starts s before 2q*s; 2q+1 ends where q's block ends
            s *= 2
        before, after = before + n * s, after + n * s
        out.append((before, after))
    return tuple(out)


REACHES = _reaches()
#: Tile halo: relu5_3's reach rounded up to the deepest stride (16): 112 px.
HALO = -(-max(max(r) for r in REACHES) // STRIDES[-1]) * STRIDES[-1]


@dataclass(frozen=True)
class Geometry:
    """A stage's geometry for :func:`hlcli.nets.tiling.tile_plan` (whose reach is
    (receptive_field - stride) / 2): the larger of its two reaches on both sides."""

    stride: int
    receptive_field: int


#: The six stages as :func:`hlcli.nets.tiling.tile_plan` sees them (halo 112 px).
LAYERS = tuple(Geometry(s, s + 2 * max(r)) for s, r in zip(STRIDES, REACHES))


class L2Pool(nn.Module):
    """DISTS' L2pooling(filter_size=5, stride=2, padding=1): hanning(5)[1:-1] outer itself,
    normalised: [[1,2,1],[2,4,2],[1,2,1]] / 16, depthwise, on x², then sqrt(. + 1e-12)."""

    def __init__(self, channels: int):
        super().__init__()
        a = torch.tensor([0.5, 1.0, 0.5], dtype=torch.float64)
        g = (a[:, None] * a[None, :]).to(torch.float32)
        g = g / torch.sum(g)
        self.register_buffer("filter", g[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.conv2d(x**2, self.filter, stride=2, padding=1, groups=x.shape[1])
        return (out + 1e-12).sqrt()


def _vgg16_stages(features: Mapping[str, torch.Tensor]) -> nn.ModuleList:
    """The five stages from a verified ``features.<i>.weight/bias`` state dict of VGG-16."""
    stages = nn.ModuleList()
    start = 0
    in_ch = 3
    for k, end in enumerate(STAGE_ENDS):
        mods: list[nn.Module] = []
        for i in range(start, end):
            key = f"features.{i}.weight"
            if i == start and k > 0:
                mods.append(L2Pool(in_ch))
            elif key in features:
                w = features[key]
                conv = nn.Conv2d(w.shape[1], w.shape[0], 3, padding=1)
                with torch.no_grad():
                    conv.weight.copy_(w)
                    conv.bias.copy_(features[f"features.{i}.bias"])
                mods.append(conv)
                in_ch = w.shape[0]
            else:
                mods.append(nn.ReLU(inplace=False))
        stages.append(nn.Sequential(*mods))
        start = end
    return stages


class DISTS(nn.Module):
    """DISTS per pair. ``features``: VGG-16's ``features.*`` conv tensors (verified by the
    caller, e.g. :func:`hlcli.weights.extract_features` with net ``vgg16``); ``alpha``/``beta``:
    (1, 1475, 1, 1). Float32 features, float64 statistics; eval mode, no grad."""

    halo = HALO  # tests shrink it to show that less breaks tiled == untiled

    def __init__(self, features: Mapping[str, torch.Tensor], alpha: torch.Tensor, beta: torch.Tensor):
        super().__init__()
        self.stages = _vgg16_stages(features)
        self.register_buffer("mean", torch.tensor(MEAN).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(STD).view(1, -1, 1, 1))
        a, b = check_alpha_beta({"alpha": alpha, "beta": beta})  # raises ValueError
        total = a.double().sum() + b.double().sum()
        self.register_buffer("alpha", (a.double() / total).flatten())
        self.register_buffer("beta", (b.double() / total).flatten())
        self.float().eval().requires_grad_(False)

    def sums(self, x: torch.Tensor, y: torch.Tensor, boxes=None) -> torch.Tensor:
        """(N, 5, 1475) float64: per pair and channel, sums of x, y, x², y², xy over each stage's
        map, or over ``boxes`` (per stage (row0, row1, col0, col1) of the map) only. Both images
        of every pair go through the network in one forward, stage by stage: only one stage's
        maps are alive at a time."""
        n = x.shape[0]
        h = torch.cat([x, y])
        out = [self._stage_sums(h, n, boxes[0] if boxes else None)]
        h = (h - self.mean) / self.std
        for k, stage in enumerate(self.stages, 1):
            h = stage(h)
            out.append(self._stage_sums(h, n, boxes[k] if boxes else None))
        return torch.cat(out, 2)

    @staticmethod
    def _stage_sums(h: torch.Tensor, n: int, box) -> torch.Tensor:
        """(N, 5, C): the float64 sums of one stage's maps ``h`` (restored first, then ground truth),
        one pair at a time (a float64 copy of one pair's maps, not of the batch's)."""
        if box is not None:
            r0, r1, c0, c1 = box
            h = h[..., r0:r1, c0:c1]
        rows = []
        for j in range(n):
            f, g = h[j].double(), h[n + j].double()
            rows.append(torch.stack([f.sum((1, 2)), g.sum((1, 2)), (f * f).sum((1, 2)), (g * g).sum((1, 2)),
                                     (f * g).sum((1, 2))]))
        return torch.stack(rows)

    def score(self, sums: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """DISTS from :meth:`sums` and each channel's number of positions (1475,)."""
        n = counts.to(sums)
        mx, my = sums[:, 0] / n, sums[:, 1] / n
        vx = sums[:, 2] / n - mx * mx
        vy = sums[:, 3] / n - my * my
        cxy = sums[:, 4] / n - mx * my
        s1 = (2 * mx * my + C1) / (mx * mx + my * my + C1)
        s2 = (2 * cxy + C2) / (vx + vy + C2)
        # 1 - sum(alpha S1 + beta S2) with sum(alpha) + sum(beta) = 1, written so that identical
        # images give exactly 0 (S1 = S2 = 1) and each term is >= 0
        return ((1 - s1) * self.alpha + (1 - s2) * self.beta).sum(1)

    @staticmethod
    def counts(h: int, w: int, device=None) -> torch.Tensor:
        """Positions per channel of each stage's map (sides ceil(H/s), ceil(W/s))."""
        per = [(-(-h // s)) * (-(-w // s)) for s in STRIDES]
        return torch.cat([torch.full((c,), float(p), dtype=torch.float64, device=device) for c, p in zip(CHANNELS, per)])

    def forward(self, x: torch.Tensor, y: torch.Tensor, tile_core: int | None = None) -> torch.Tensor:
        """DISTS of each pair (N,), float64. ``x``, ``y``: (N, 3, H, W) float in [0, 1].
        ``tile_core``: score in tiles of this core side (a multiple of 16) with the exact halo."""
        x = x.to(self.mean)
        y = y.to(self.mean)
        h, w = x.shape[-2:]
        counts = self.counts(h, w, x.device)
        if tile_core is None or (h <= tile_core and w <= tile_core):
            return self.score(self.sums(x, y), counts)
        total = torch.zeros(x.shape[0], 5, TOTAL_CHANNELS, dtype=torch.float64, device=x.device)
        for y0, y1, cy0, cy1 in spans(h, tile_core, self.halo):
            for x0, x1, cx0, cx1 in spans(w, tile_core, self.halo):
                boxes = []
                for s in STRIDES:
                    r0 = (y0 - cy0) // s
                    r1 = -(-y1 // s) - cy0 // s
                    c0 = (x0 - cx0) // s
                    c1 = -(-x1 // s) - cx0 // s
                    boxes.append((r0, r1, c0, c1))
                total += self.sums(x[..., cy0:cy1, cx0:cx1], y[..., cy0:cy1, cx0:cx1], boxes)
        return self.score(total, counts)


def spans(size: int, core: int, halo: int = HALO) -> list[tuple[int, int, int, int]]:
    """Along one axis: (core start, core end, crop start, crop end) of each tile; ``core`` a
    multiple of 16 (crop starts then stay on multiples of 16)."""
    if core % STRIDES[-1]:
        raise ValueError(f"tile core must be a multiple of {STRIDES[-1]}")
    out = []
    for c0 in range(0, size, core):
        c1 = min(size, c0 + core)
        out.append((c0, c1, max(0, c0 - halo), min(size, c1 + halo)))
    return out
