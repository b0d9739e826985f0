"""The torchvision ImageNet backbones hlcli uses, as data: one :class:`NetSpec` per network (file,
URL, hash prefix, environment variable, option, every expected conv shape) and the layout of its
``features`` Sequential. Pure Python (no torch import); :mod:`hlcli.nets.weights` resolves and verifies
files from these specs, :mod:`hlcli.nets.lpips_net` builds the LPIPS backbones from the layouts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .layers import LAYERS

DEFAULT_NET = "vgg19"

# The modules of a torchvision ``features`` Sequential, in order (the position is the index):
# ("conv", in_channels, out_channels, kernel, stride, padding), ("relu",), ("pool", kernel, stride).
Module = tuple


def _vgg_layout(cfg: tuple[int | str, ...]) -> tuple[Module, ...]:
    """torchvision's ``vgg.make_layers`` (no batch norm) as a layout."""
    out: list[Module] = []
    in_ch = 3
    for item in cfg:
        if item == "M":
            out.append(("pool", 2, 2))
        else:
            out += [("conv", in_ch, int(item), 3, 1, 1), ("relu",)]
            in_ch = int(item)
    return tuple(out)


# torchvision's alexnet().features.
ALEXNET_LAYOUT: tuple[Module, ...] = (
    ("conv", 3, 64, 11, 4, 2), ("relu",), ("pool", 3, 2),
    ("conv", 64, 192, 5, 1, 2), ("relu",), ("pool", 3, 2),
    ("conv", 192, 384, 3, 1, 1), ("relu",),
    ("conv", 384, 256, 3, 1, 1), ("relu",),
    ("conv", 256, 256, 3, 1, 1), ("relu",), ("pool", 3, 2),
)  # fmt: skip
# torchvision's VGG-16 ("D") configuration.
VGG16_LAYOUT: tuple[Module, ...] = _vgg_layout(
    (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
)

Shapes = dict[str, tuple[tuple[int, ...], tuple[int, ...]]]


def conv_shapes(layout: tuple[Module, ...]) -> Shapes:
    """``features.<index>`` -> (weight shape, bias shape) for every conv of ``layout``."""
    return {
        f"features.{i}": ((m[2], m[1], m[3], m[3]), (m[2],))
        for i, m in enumerate(layout)
        if m[0] == "conv"
    }


@dataclass(frozen=True)
class NetSpec:
    """One torchvision ImageNet checkpoint hlcli uses, and how users point hlcli at it."""

    name: str  # the ``--net`` value of ``hlcli weights``: vgg19, alexnet, vgg16
    title: str  # for messages: "VGG-19"
    filename: str  # torchvision's file name in the torch hub cache
    url: str
    sha256_prefix: str  # torchvision names its checkpoints after these 8 hex digits of the sha256
    env: str  # environment variable naming a file
    option: str  # the command-line option naming a file
    expected_shapes: Shapes = field(repr=False)  # every conv of ``features``
    used_by: str = ""  # for ``hlcli weights show``
    old_env: tuple[str, ...] = ()  # earlier names of ``env``, still read after it

    @property
    def download_command(self) -> str:
        return "hlcli weights download" + ("" if self.name == DEFAULT_NET else f" --net {self.name}")

    @property
    def import_command(self) -> str:
        return "hlcli weights import" + ("" if self.name == DEFAULT_NET else f" --net {self.name}")

    @property
    def fix_offline(self) -> str:
        return (f"run `{self.download_command}` on a machine with internet access, or copy "
                f"{self.filename} there and run `{self.import_command} FILE`, or pass {self.option} FILE")


def _spec(name: str, title: str, filename: str, env: str, option: str, shapes: Shapes, used_by: str,
          old_env: tuple[str, ...] = ()) -> NetSpec:
    return NetSpec(name, title, filename, f"https://download.pytorch.org/models/{filename}",
                   filename.rsplit("-", 1)[1].split(".")[0], env, option, shapes, used_by, old_env)


# Every conv of vgg19().features: key prefix -> (weight shape, bias shape).
EXPECTED_SHAPES: Shapes = {
    f"features.{spec.index}": ((spec.channels, spec.in_channels, 3, 3), (spec.channels,))
    for spec in LAYERS
    if spec.kind == "conv"
}

NETS: dict[str, NetSpec] = {
    s.name: s
    for s in (
        _spec("vgg19", "VGG-19", "vgg19-dcbb9e9d.pth", "HLCLI_WEIGHTS", "--weights", EXPECTED_SHAPES,
              "the hybrid loss (hlcli score)"),
        _spec("alexnet", "AlexNet", "alexnet-owt-7be5be79.pth", "HLCLI_LPIPS_WEIGHTS", "--lpips-weights",
              conv_shapes(ALEXNET_LAYOUT), "LPIPS (--metrics lpips)"),
        _spec("vgg16", "VGG-16", "vgg16-397923af.pth", "HLCLI_VGG16_WEIGHTS", "--vgg16-weights",
              conv_shapes(VGG16_LAYOUT), "LPIPS-VGG and DISTS (--metrics lpips_vgg, dists)",
              old_env=("HLCLI_LPIPS_VGG_WEIGHTS",)),
        # pytorch-fid's FID Inception: not a torchvision checkpoint; its keys and shapes are checked by
        # hlcli.nets.inception.check_state_dict (expected_shapes stays empty here).
        NetSpec("inception", "FID Inception", "pt_inception-2015-12-05-6726825d.pth",
                "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                "pt_inception-2015-12-05-6726825d.pth", "6726825d", "HLCLI_INCEPTION_WEIGHTS",
                "--inception-weights", {}, "FID and KID (--metrics fid,kid)"),
    )
}
LAYOUTS: dict[str, tuple[Module, ...]] = {"alexnet": ALEXNET_LAYOUT, "vgg16": VGG16_LAYOUT}


def get_spec(net: str = DEFAULT_NET) -> NetSpec:
    """The :class:`NetSpec` of ``net`` (``vgg19``, ``alexnet`` or ``vgg16``)."""
    try:
        return NETS[net]
    except KeyError:
        raise ValueError(f"unknown network {net!r}; known: {', '.join(NETS)}") from None
