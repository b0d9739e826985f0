"""The VGG-19 layer table: names from the VGG paper for all 37 modules of ``vgg19().features``.

Pure Python (no torch import) so that option validation and ``--help`` stay instant. Indices,
strides and receptive fields are derived from the architecture below, never typed by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
import difflib

# torchvision's VGG-19 ("E") configuration: numbers are conv output channels, "M" is a 2x2
# max-pool with stride 2. Every conv is 3x3, stride 1, padding 1, followed by a ReLU.
VGG19_CFG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
    512, 512, 512, 512, "M", 512, 512, 512, 512, "M",
)  # fmt: skip


@dataclass(frozen=True)
class LayerSpec:
    name: str  # e.g. "conv3_3"
    index: int  # module index in vgg19().features
    kind: str  # "conv", "relu" or "pool"
    channels: int  # channels of this module's output
    stride: int  # total stride of this module's output relative to the input (1, 2, 4, ...)
    receptive_field: int  # receptive field size in input pixels of one output value
    in_channels: int = 0  # conv only: input channels

    @property
    def activation(self) -> str:
        """``pre-relu`` for a conv output, ``post-relu`` for a ReLU output, ``pool`` for a pool."""
        return {"conv": "pre-relu", "relu": "post-relu", "pool": "pool"}[self.kind]


def _build_table() -> tuple[LayerSpec, ...]:
    table: list[LayerSpec] = []
    block, sub = 1, 0
    in_ch = 3
    stride, rf = 1, 1
    for item in VGG19_CFG:
        if item == "M":
            rf += (2 - 1) * stride
            stride *= 2
            table.append(LayerSpec(f"pool{block}", len(table), "pool", in_ch, stride, rf))
            block, sub = block + 1, 0
            continue
        sub += 1
        rf += (3 - 1) * stride
        table.append(LayerSpec(f"conv{block}_{sub}", len(table), "conv", int(item), stride, rf, in_ch))
        table.append(LayerSpec(f"relu{block}_{sub}", len(table), "relu", int(item), stride, rf))
        in_ch = int(item)
    return tuple(table)


LAYERS: tuple[LayerSpec, ...] = _build_table()
BY_NAME: dict[str, LayerSpec] = {spec.name: spec for spec in LAYERS}
LAYER_NAMES: tuple[str, ...] = tuple(spec.name for spec in LAYERS)
DEFAULT_LAYERS: tuple[str, ...] = ("conv3_3", "conv4_3")

# ImageNet normalisation expected by torchvision's VGG weights.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


def resolve_layers(names: list[str] | tuple[str, ...]) -> tuple[LayerSpec, ...]:
    """Return the specs for ``names`` in the given order; raise ``ValueError`` on an unknown name
    (suggesting the nearest valid names) or a duplicate."""
    specs = []
    seen = set()
    for raw in names:
        name = raw.strip().lower()
        if name not in BY_NAME:
            raise ValueError(unknown_layer_message(raw))
        if name in seen:
            raise ValueError(f"layer {name!r} is listed twice")
        seen.add(name)
        specs.append(BY_NAME[name])
    if not specs:
        raise ValueError("no layers given; e.g. --layers conv3_3,conv4_3")
    return tuple(specs)


def unknown_layer_message(raw: str) -> str:
    """"unknown VGG-19 layer 'conv4_33'; did you mean conv4_3?": the nearest names (difflib),
    not all 37, and where to see them all."""
    name = raw.strip().lower()
    ratios = {n: difflib.SequenceMatcher(None, name, n).ratio() for n in LAYER_NAMES}
    best = max(ratios.values())
    near = [n for n in sorted(LAYER_NAMES, key=lambda n: -ratios[n]) if ratios[n] >= max(0.75, best - 0.05)][:3]
    hint = f"did you mean {' or '.join(near)}?" if near else (
        f"layers are named {LAYER_NAMES[0]} … {LAYER_NAMES[-1]}, e.g. conv3_3, relu3_3, pool3")
    return f"unknown VGG-19 layer {raw!r}; {hint} (`hlcli layers` lists all {len(LAYER_NAMES)})"


def min_size(specs: tuple[LayerSpec, ...] | list[LayerSpec]) -> int:
    """Smallest image side (pixels) for which every layer in ``specs`` has at least one output
    value: each 2x2 pool halves the side (floor), so the side must be >= the total stride."""
    return max(spec.stride for spec in specs)
