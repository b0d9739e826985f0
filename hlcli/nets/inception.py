"""The FID Inception network (pytorch-fid 0.3.0's ``fid_inception_v3()``), built without torchvision.

pytorch-fid builds torchvision's ``inception_v3(num_classes=1008, aux_logits=False)`` and swaps in
its ``FIDInceptionA/C/E_1/E_2`` blocks: TensorFlow's average pools, which do not count the padded
zeros (``count_include_pad=False``), and a max pool in the last block's pool branch. This module
builds the same modules under the same attribute names, so the state-dict keys are exactly those
of ``fid_inception_v3().state_dict()``: pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` (and
any state dict of that network) loads here, and a state dict of this module loads there.

torchvision is not imported (it costs a second of start-up); the structure is written out below.

Features (pytorch-fid's ``InceptionV3.BLOCK_INDEX_BY_DIM``), computed only up to the block needed:

* 64: after the first max pool, 192: after the second, 768: after ``Mixed_6e`` (spatially
  averaged), 2048: after ``Mixed_7c`` and the global average pool.

Inputs: :func:`prepare` turns ``N x 3 x H x W`` samples in [0, 255] (float) into the network's input
at 299 x 299 by one of two conventions (:data:`RESIZES`):

* ``clean``: clean-fid 0.1.35's ``make_resizer("PIL", False, "bicubic", (299, 299))``: each channel a
  PIL ``'F'`` image, resized with BICUBIC (Pillow's separable resampling, a = -0.5, support scaled
  when shrinking; horizontal pass first, its result stored in float32), clipped to [0, 255], then
  ``(x - 128) / 128``. Pillow's coefficients are computed here exactly as Pillow computes them and
  applied as two matrix products (float64 accumulation, float32 in between), so a batch resizes on
  the network's device.
* ``pytorch-fid``: ``x / 255``, ``F.interpolate(size=(299, 299), mode="bilinear",
  align_corners=False)`` (no antialias), then ``2x - 1``, as pytorch-fid's ``InceptionV3``.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..text import key_mismatch

SIZE = 299
DIMS = (64, 192, 768, 2048)
BLOCK_BY_DIM = {64: 0, 192: 1, 768: 2, 2048: 3}
RESIZES = ("clean", "pytorch-fid")
FILENAME = "pt_inception-2015-12-05-6726825d.pth"
URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{FILENAME}"
SHA256_PREFIX = "6726825d"


# --------------------------------------------------------------------------------------------
# The modules (torchvision's names and shapes; pytorch-fid's forwards).


class BasicConv2d(nn.Module):
    def __init__(self, cin: int, cout: int, **kw: Any) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, bias=False, **kw)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


def _tf_avg_pool(x: torch.Tensor) -> torch.Tensor:
    # TensorFlow's average pool does not count the padded zeros.
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class FIDInceptionA(nn.Module):
    def __init__(self, cin: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(cin, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(_tf_avg_pool(x))
        return torch.cat([b1, b5, b3, bp], 1)


class InceptionB(nn.Module):  # Mixed_6a, unchanged from torchvision
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3(x)
        bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, bd, bp], 1)


class FIDInceptionC(nn.Module):
    def __init__(self, cin: int, c7: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(cin, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = self.branch7x7dbl_1(x)
        for m in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            bd = m(bd)
        bp = self.branch_pool(_tf_avg_pool(x))
        return torch.cat([b1, b7, bd, bp], 1)


class InceptionD(nn.Module):  # Mixed_7a, unchanged from torchvision
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, b7, bp], 1)


class FIDInceptionE(nn.Module):
    """``FIDInceptionE_1`` (``max_pool=False``: TF average pool) or ``FIDInceptionE_2`` (max pool)."""

    def __init__(self, cin: int, max_pool: bool) -> None:
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = BasicConv2d(cin, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(cin, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        pooled = (F.max_pool2d(x, kernel_size=3, stride=1, padding=1) if self.max_pool
                  else _tf_avg_pool(x))
        bp = self.branch_pool(pooled)
        return torch.cat([b1, b3, bd, bp], 1)


# The modules of each feature block, in order (None: a parameter-free max pool 3/2).
_BLOCKS: tuple[tuple[str | None, ...], ...] = (
    ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", None),
    ("Conv2d_3b_1x1", "Conv2d_4a_3x3", None),
    ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"),
    ("Mixed_7a", "Mixed_7b", "Mixed_7c"),
)


def _make(name: str) -> nn.Module:
    return {
        "Conv2d_1a_3x3": lambda: BasicConv2d(3, 32, kernel_size=3, stride=2),
        "Conv2d_2a_3x3": lambda: BasicConv2d(32, 32, kernel_size=3),
        "Conv2d_2b_3x3": lambda: BasicConv2d(32, 64, kernel_size=3, padding=1),
        "Conv2d_3b_1x1": lambda: BasicConv2d(64, 80, kernel_size=1),
        "Conv2d_4a_3x3": lambda: BasicConv2d(80, 192, kernel_size=3),
        "Mixed_5b": lambda: FIDInceptionA(192, 32),
        "Mixed_5c": lambda: FIDInceptionA(256, 64),
        "Mixed_5d": lambda: FIDInceptionA(288, 64),
        "Mixed_6a": lambda: InceptionB(288),
        "Mixed_6b": lambda: FIDInceptionC(768, 128),
        "Mixed_6c": lambda: FIDInceptionC(768, 160),
        "Mixed_6d": lambda: FIDInceptionC(768, 160),
        "Mixed_6e": lambda: FIDInceptionC(768, 192),
        "Mixed_7a": lambda: InceptionD(768),
        "Mixed_7b": lambda: FIDInceptionE(1280, max_pool=False),
        "Mixed_7c": lambda: FIDInceptionE(2048, max_pool=True),
    }[name]()


def _modules_up_to(block: int) -> list[str]:
    return [n for b in _BLOCKS[: block + 1] for n in b if n is not None]


class FIDInception(nn.Module):
    """pytorch-fid's FID Inception, truncated after the block that gives ``dims`` features.

    ``forward(x)`` takes the network's input (``N x 3 x 299 x 299``, see :func:`prepare`) and
    returns ``N x dims`` float32 features (spatially averaged, as pytorch-fid's
    ``get_activations`` does for 64/192/768 and its final average pool for 2048)."""

    def __init__(self, dims: int = 2048) -> None:
        super().__init__()
        if dims not in BLOCK_BY_DIM:
            raise ValueError(f"dims must be one of {DIMS}, not {dims!r}")
        self.dims = dims
        self.block = BLOCK_BY_DIM[dims]
        for name in _modules_up_to(self.block):
            setattr(self, name, _make(name))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for b, names in enumerate(_BLOCKS[: self.block + 1]):
            for name in names:
                x = F.max_pool2d(x, kernel_size=3, stride=2) if name is None else getattr(self, name)(x)
        return F.adaptive_avg_pool2d(x, 1).flatten(1)


# --------------------------------------------------------------------------------------------
# The state dict: keys and shapes, as fid_inception_v3().state_dict().


@lru_cache(maxsize=1)
def expected_shapes() -> dict[str, tuple[int, ...]]:
    """Every floating-point entry of ``fid_inception_v3().state_dict()`` up to ``Mixed_7c`` (the
    features), with its shape; built on the meta device (no memory, no initialisation)."""
    with torch.device("meta"):
        net = FIDInception(2048)
    return {k: tuple(v.shape) for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}


# Entries of the file the features do not use: accepted, ignored.
OPTIONAL_SHAPES = {"fc.weight": (1008, 2048), "fc.bias": (1008,)}


def is_optional(key: str) -> bool:
    return key in OPTIONAL_SHAPES or (key.endswith(".num_batches_tracked") and key[: -20] + ".running_mean"
                                      in expected_shapes())


class StateDictError(ValueError):
    """A state dict that is not the FID Inception's (what is wrong, in words)."""


def check_state_dict(obj: Any) -> dict[str, torch.Tensor]:
    """Check ``obj`` is a state dict of pytorch-fid's FID Inception (every expected key, floating
    point, with its shape; ``fc.*`` and ``num_batches_tracked`` allowed and dropped; nothing else)
    and return the feature tensors as float32. Raises :class:`StateDictError`."""
    if not isinstance(obj, dict):
        raise StateDictError(f"holds a {type(obj).__name__}, not a state dict")
    expected = expected_shapes()
    keys = {k for k in obj if isinstance(k, str)}
    missing = [k for k in expected if k not in keys]
    unexpected = sorted(k for k in keys if k not in expected and not is_optional(k))
    if len(keys) != len(obj):
        unexpected.append("(non-string keys)")
    if missing or unexpected:
        raise StateDictError(f"not the FID Inception's state dict ({key_mismatch(missing, unexpected)})")
    out = {}
    for key, shape in expected.items():
        t = obj[key]
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise StateDictError(f"entry {key} is not a floating-point tensor")
        if tuple(t.shape) != shape:
            raise StateDictError(f"entry {key} has shape {tuple(t.shape)}, expected {shape}")
        if not bool(torch.isfinite(t).all()):
            raise StateDictError(f"entry {key} holds non-finite values")
        out[key] = t.detach().to(torch.float32)
    for key in OPTIONAL_SHAPES:
        t = obj.get(key)
        if t is not None and (not isinstance(t, torch.Tensor) or tuple(t.shape) != OPTIONAL_SHAPES[key]):
            raise StateDictError(f"entry {key} is not a tensor of shape {OPTIONAL_SHAPES[key]}")
    return out


def build(state_dict: dict[str, torch.Tensor], dims: int = 2048, device: Any = "cpu") -> FIDInception:
    """The network for ``dims`` features, in eval mode, with the verified ``state_dict``
    (from :func:`check_state_dict`); only the blocks ``dims`` needs are built and loaded."""
    with torch.device("meta"):
        net = FIDInception(dims)
    own = net.state_dict()
    sd = {k: state_dict[k] for k in own if not k.endswith("num_batches_tracked")}
    net.load_state_dict(sd, strict=False, assign=True)
    for name, buf in list(net.named_buffers()):
        if name.endswith("num_batches_tracked"):
            mod = net.get_submodule(name.rsplit(".", 1)[0])
            mod.num_batches_tracked = torch.zeros((), dtype=torch.long)
    net = net.to(device).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def random_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """A seeded random state dict with the keys and shapes of ``fid_inception_v3().state_dict()``
    (plus ``fc``), scaled so that activations stay of order one through the network (for tests)."""
    g = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for key, shape in expected_shapes().items():
        if key.endswith("conv.weight"):
            fan_in = shape[1] * shape[2] * shape[3]
            out[key] = torch.randn(shape, generator=g) * math.sqrt(2.0 / fan_in)
        elif key.endswith("bn.weight"):
            out[key] = 0.5 + torch.rand(shape, generator=g)
        elif key.endswith("bn.bias"):
            out[key] = 0.2 * torch.randn(shape, generator=g)
        elif key.endswith("running_mean"):
            out[key] = 0.2 * torch.randn(shape, generator=g)
        elif key.endswith("running_var"):
            out[key] = 0.5 + torch.rand(shape, generator=g)
        else:  # pragma: no cover - every entry is one of the above
            raise AssertionError(key)
        if key.endswith("running_mean"):
            out[key[: -len("running_mean")] + "num_batches_tracked"] = torch.tensor(0)
    out["fc.weight"] = torch.randn(OPTIONAL_SHAPES["fc.weight"], generator=g) * 0.02
    out["fc.bias"] = torch.zeros(OPTIONAL_SHAPES["fc.bias"])
    return out


# --------------------------------------------------------------------------------------------
# Inputs: the two resize conventions.


def _pil_bicubic(x: float) -> float:
    # Pillow's bicubic_filter (libImaging/Resample.c), a = -0.5.
    a = -0.5
    x = abs(x)
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    if x < 2.0:
        return (((x - 5) * x + 8) * x - 4) * a
    return 0.0


@lru_cache(maxsize=64)
def pil_bicubic_taps(in_size: int, out_size: int) -> tuple[Any, Any]:
    """Pillow's BICUBIC resampling along one axis (``precompute_coeffs`` of
    ``libImaging/Resample.c`` for a float image): for each output sample, the first input index and
    the float64 weights of its taps (support scaled by the reduction, weights normalised to sum 1,
    bounds rounded as Pillow rounds them). Returns numpy arrays ``index`` (``out x K``, int64,
    clamped; padded taps have weight 0) and ``weight`` (``out x K``, float64)."""
    import numpy as np

    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 2.0 * filterscale
    ksize = int(math.ceil(support)) * 2 + 1
    index = np.zeros((out_size, ksize), dtype=np.int64)
    weight = np.zeros((out_size, ksize), dtype=np.float64)
    ss = 1.0 / filterscale
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)  # C's (int) truncates toward zero
        xmax = min(int(center + support + 0.5), in_size) - xmin
        w = [_pil_bicubic((x + xmin - center + 0.5) * ss) for x in range(xmax)]
        ww = 0.0
        for v in w:  # summed in order, as Pillow does
            ww += v
        for x in range(xmax):
            weight[xx, x] = w[x] / ww if ww != 0.0 else w[x]
        index[xx, :] = np.minimum(xmin + np.arange(ksize), in_size - 1)
    return index, weight


def _resample_last(x: torch.Tensor, in_size: int) -> torch.Tensor:
    """Pillow's 1-D BICUBIC pass to 299 along the last axis of float64 ``x``: per output sample,
    the sum of its taps times their weights, accumulated in float64 in tap order."""
    index, weight = pil_bicubic_taps(in_size, SIZE)
    idx = torch.from_numpy(index).to(x.device)
    w = torch.from_numpy(weight).to(x.device)
    out = torch.zeros(x.shape[:-1] + (SIZE,), dtype=torch.float64, device=x.device)
    for k in range(idx.shape[1]):
        out += x[..., idx[:, k]] * w[:, k]
    return out


def resize_clean_pil(arr: Any, scale: float = 255.0) -> Any:
    """clean-fid's ``clean`` resize of one ``H x W x 3`` numpy image (uint8 or uint16 samples,
    ``scale`` their maximum) by Pillow itself: ``3 x 299 x 299`` float32 in [0, 255]. The CPU path
    (Pillow's C loop is faster there than :func:`resize_clean`); the same numbers."""
    import numpy as np
    from PIL import Image

    x = arr.astype(np.float32) if scale == 255.0 else (arr.astype(np.float64) * (255.0 / scale)).astype(np.float32)
    out = np.empty((3, SIZE, SIZE), dtype=np.float32)
    for c in range(3):
        img = Image.fromarray(np.ascontiguousarray(x[:, :, c]))  # float32 -> mode "F"
        out[c] = np.asarray(img.resize((SIZE, SIZE), resample=Image.BICUBIC))
    return np.clip(out, 0.0, 255.0, out=out)


def resize_clean(x: torch.Tensor) -> torch.Tensor:
    """clean-fid's ``clean`` resize of ``N x 3 x H x W`` samples in [0, 255] to 299 x 299, clipped
    to [0, 255], float32 (before the ``(x - 128) / 128`` of :func:`prepare`). Pillow resizes a
    float image horizontally first, storing that pass in float32, then vertically."""
    h, w = x.shape[-2:]
    y = x.to(torch.float32)  # PIL 'F' holds float32 samples
    if w != SIZE:
        y = _resample_last(y.to(torch.float64), w).to(torch.float32)
    if h != SIZE:
        y = _resample_last(y.to(torch.float64).transpose(-1, -2), h).transpose(-1, -2).to(torch.float32)
    return y.clamp(0.0, 255.0)


def prepare(x: torch.Tensor, resize: str = "clean", scale: float = 255.0) -> torch.Tensor:
    """The Inception's float32 input (``N x 3 x 299 x 299``) from ``N x 3 x H x W`` samples
    ``x`` (the decoded integers as floats; ``scale`` is the dtype's maximum, 255 or 65535), by
    ``resize``: ``clean`` works on ``x * 255 / scale`` (exactly ``x`` for 8-bit sources),
    ``pytorch-fid`` on ``x / scale`` in float32 (torchvision's ``ToTensor`` for 8-bit)."""
    if resize == "clean":
        y = x.to(torch.float32) if scale == 255.0 else (x.to(torch.float64) * (255.0 / scale)).to(torch.float32)
        return (resize_clean(y) - 128.0) / 128.0
    if resize == "pytorch-fid":
        y = x.to(torch.float32) / scale
        y = F.interpolate(y, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
        return 2 * y - 1
    raise ValueError(f"resize must be one of {RESIZES}, not {resize!r}")


def features(net: FIDInception, x: torch.Tensor, resize: str = "clean", scale: float = 255.0) -> torch.Tensor:
    """``N x dims`` float64 features of samples ``x`` (see :func:`prepare`)."""
    with torch.inference_mode():
        return net(prepare(x, resize, scale)).to(torch.float64)
