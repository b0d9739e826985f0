"""``hlcli weights show | download | import``: find, fetch and install the ImageNet backbones
(VGG-19 for the hybrid loss; AlexNet and VGG-16 for LPIPS)."""

from __future__ import annotations

from pathlib import Path

import click

from ..nets.netspecs import DEFAULT_NET, NETS
from .common import debug_option, handle_errors, stderr_is_terminal
from ..nets import weights as w

net_option = click.option(
    "--net", type=click.Choice(list(NETS)), default=DEFAULT_NET, show_default=True,
    help="Which network: vgg19 (the hybrid loss), alexnet (LPIPS) or vgg16 (LPIPS-VGG).",
)


@click.group("weights")
def weights_group() -> None:
    """Find, download and import the ImageNet weights: VGG-19 (the hybrid loss), AlexNet
    (LPIPS) and VGG-16 (LPIPS-VGG).

    Looked for in this order: --weights FILE, $HLCLI_WEIGHTS, the torch hub cache
    ($TORCH_HOME/hub/checkpoints/vgg19-dcbb9e9d.pth), then downloaded (unless --offline).
    AlexNet and VGG-16 likewise, with --lpips-weights / $HLCLI_LPIPS_WEIGHTS
    (alexnet-owt-7be5be79.pth) and --lpips-vgg-weights / $HLCLI_LPIPS_VGG_WEIGHTS
    (vgg16-397923af.pth).
    """


def _show_net(net: str, explicit: Path | None) -> None:
    spec = w.get_spec(net)
    cands = w.candidates(explicit, net=net)
    chosen = None
    for i, cand in enumerate(cands, 1):
        mark = "found" if cand.exists else "absent"
        click.echo(f"{i}. {cand.source:<12} {cand.path}  [{mark}]")
        if cand.exists and chosen is None:
            chosen = cand
    click.echo(f"{len(cands) + 1}. {'download':<12} {spec.url}")
    if chosen is None:
        click.echo(f"would use: a download into {w.hub_checkpoint_path(net)} (not possible with --offline)")
    else:
        sha = w.file_sha256(chosen.path)
        official = "torchvision IMAGENET1K_V1" if sha.startswith(spec.sha256_prefix) else "NOT the official checkpoint"
        click.echo(f"would use: {chosen.path} (sha256 {sha}, {official})")


@weights_group.command("show")
@click.option("--weights", "weights_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also consider this file first, as `hlcli score --weights` would.")
@click.option("--lpips-weights", "lpips_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also consider this AlexNet file first, as `hlcli score --lpips-weights` would.")
@click.option("--lpips-vgg-weights", "lpips_vgg_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also consider this VGG-16 file first, as `hlcli score --lpips-vgg-weights` would.")
@click.option("--net", type=click.Choice(list(NETS)), default=None,
              help="Show only this network (default: all three).")
@debug_option
@handle_errors
def weights_show(weights_path: Path | None, lpips_path: Path | None, lpips_vgg_path: Path | None,
                 net: str | None, debug: bool) -> None:
    """Show where weights are looked for and which file would be used, for each network."""
    explicit = {"vgg19": weights_path, "alexnet": lpips_path, "vgg16": lpips_vgg_path}
    for name, spec in NETS.items():
        if net is not None and name != net:
            continue
        click.echo(f"{spec.title} ({name}, for {spec.used_by}):")
        _show_net(name, explicit.get(name))
    click.echo(f"compact cache: {w.cache_dir()}")


@weights_group.command("download")
@net_option
@click.option("--force", is_flag=True, help="Download again even if the file is already cached.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@debug_option
@handle_errors
def weights_download(net: str, force: bool, quiet: bool, debug: bool) -> None:
    """Download torchvision's IMAGENET1K_V1 checkpoint of --net (default VGG-19) into the torch
    cache (hash-checked).

    Example: hlcli weights download --net alexnet
    """
    path = w.download(progress=not quiet and stderr_is_terminal(), force=force, net=net)
    click.echo(str(path))


@weights_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@net_option
@click.option("--force", is_flag=True, help="Replace a cached file even if it is identical.")
@debug_option
@handle_errors
def weights_import(file: Path, net: str, force: bool, debug: bool) -> None:
    """Verify FILE (keys, shapes, sha256) and copy it into the torch cache.

    Use this on a machine without internet, with the vgg19-dcbb9e9d.pth file (or, with --net,
    alexnet-owt-7be5be79.pth or vgg16-397923af.pth) copied from elsewhere. Only torchvision's
    official checkpoint can be imported; use another file directly with --weights FILE or
    $HLCLI_WEIGHTS (--lpips-weights, --lpips-vgg-weights for the LPIPS backbones).
    """
    click.echo(str(w.import_file(file, force=force, net=net)))
