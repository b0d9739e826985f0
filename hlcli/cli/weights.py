"""``hlcli weights show | download | import``: find, fetch and install the ImageNet backbones
(VGG-19 for the hybrid loss; AlexNet and VGG-16 for LPIPS and DISTS) and the data files of DISTS
(alpha/beta) and NIQE (the pristine model)."""

from __future__ import annotations

from pathlib import Path

import click

from ..nets import datafiles
from ..nets.netspecs import DEFAULT_NET, NETS
from .common import debug_option, handle_errors, stderr_is_terminal
from ..nets import weights as w

ALL = [*NETS, *datafiles.SPECS]
net_option = click.option(
    "--net", type=click.Choice(ALL), default=DEFAULT_NET, show_default=True,
    help="Which file: vgg19 (the hybrid loss), alexnet (LPIPS), vgg16 (LPIPS-VGG, DISTS), dists (DISTS' "
         "alpha/beta) or niqe (NIQE's pristine model).",
)


@click.group("weights")
def weights_group() -> None:
    """Find, download and import the ImageNet weights: VGG-19 (the hybrid loss), AlexNet
    (LPIPS) and VGG-16 (LPIPS-VGG, DISTS); and the data files of DISTS and NIQE.

    Looked for in this order: --weights FILE, $HLCLI_WEIGHTS, the torch hub cache
    ($TORCH_HOME/hub/checkpoints/vgg19-dcbb9e9d.pth), then downloaded (unless --offline).
    AlexNet and VGG-16 likewise, with --lpips-weights / $HLCLI_LPIPS_WEIGHTS
    (alexnet-owt-7be5be79.pth) and --vgg16-weights / $HLCLI_VGG16_WEIGHTS
    (vgg16-397923af.pth). DISTS' alpha/beta: --dists-weights / $HLCLI_DISTS_WEIGHTS, hlcli's
    cache, the installed dists-pytorch (hlcli[dists]). NIQE's pristine model: --niqe-params /
    $HLCLI_NIQE_PARAMS, hlcli's cache, then downloaded from BasicSR (unless --offline).
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


def _show_data(name: str, explicit: Path | None) -> None:
    spec = datafiles.SPECS[name]
    cands = datafiles.candidates(name, explicit)
    chosen = None
    for i, cand in enumerate(cands, 1):
        click.echo(f"{i}. {cand.source:<12} {cand.path}  [{'found' if cand.exists else 'absent'}]")
        if cand.exists and chosen is None:
            chosen = cand
    if spec.url:
        click.echo(f"{len(cands) + 1}. {'download':<12} {spec.url}")
    if chosen is None:
        where = f"a download into {w.cache_dir() / spec.filename} (not possible with --offline)" if spec.url else (
            f"none: {datafiles.DISTS_EXTRA_FIX}, or `{spec.import_command} FILE`")
        click.echo(f"would use: {where}")
    else:
        sha = w.file_sha256(chosen.path)
        official = "the official file" if sha == spec.sha256 else "NOT the official file"
        click.echo(f"would use: {chosen.path} (sha256 {sha}, {official})")


@weights_group.command("show")
@click.option("--weights", "weights_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also consider this file first, as `hlcli score --weights` would.")
@click.option("--lpips-weights", "lpips_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also consider this AlexNet file first, as `hlcli score --lpips-weights` would.")
@click.option("--vgg16-weights", "--lpips-vgg-weights", "vgg16_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also consider this VGG-16 file first, as `hlcli score --vgg16-weights` would.")
@click.option("--dists-weights", "dists_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also consider this DISTS alpha/beta file first, as `hlcli score --dists-weights` would.")
@click.option("--niqe-params", "niqe_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also consider this NIQE model first, as `hlcli score --niqe-params` would.")
@click.option("--net", type=click.Choice(ALL), default=None, help="Show only this file (default: all five).")
@debug_option
@handle_errors
def weights_show(weights_path: Path | None, lpips_path: Path | None, vgg16_path: Path | None,
                 dists_path: Path | None, niqe_path: Path | None, net: str | None, debug: bool) -> None:
    """Show where weights are looked for and which file would be used, for each network and data
    file."""
    explicit = {"vgg19": weights_path, "alexnet": lpips_path, "vgg16": vgg16_path, "dists": dists_path,
                "niqe": niqe_path}
    for name, spec in NETS.items():
        if net is not None and name != net:
            continue
        click.echo(f"{spec.title} ({name}, for {spec.used_by}):")
        _show_net(name, explicit.get(name))
    for name, data in datafiles.SPECS.items():
        if net is not None and name != net:
            continue
        click.echo(f"{data.title} ({name}, for {data.used_by}):")
        _show_data(name, explicit.get(name))
    click.echo(f"compact cache: {w.cache_dir()}")


@weights_group.command("download")
@net_option
@click.option("--force", is_flag=True, help="Download again even if the file is already cached.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@debug_option
@handle_errors
def weights_download(net: str, force: bool, quiet: bool, debug: bool) -> None:
    """Download torchvision's IMAGENET1K_V1 checkpoint of --net (default VGG-19) into the torch
    cache, or NIQE's pristine model (--net niqe) into hlcli's cache (hash-checked). DISTS'
    alpha/beta has no download: pip install 'hlcli[dists]', or import the file.

    Example: hlcli weights download --net alexnet
    """
    progress = not quiet and stderr_is_terminal()
    if net in datafiles.SPECS:
        path = datafiles.download(net, progress=progress, force=force)
    else:
        path = w.download(progress=progress, force=force, net=net)
    click.echo(str(path))


@weights_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@net_option
@click.option("--force", is_flag=True, help="Replace a cached file even if it is identical.")
@debug_option
@handle_errors
def weights_import(file: Path, net: str, force: bool, debug: bool) -> None:
    """Verify FILE (keys, shapes, sha256) and copy it into the torch cache (DISTS' and NIQE's
    files: into hlcli's cache).

    Use this on a machine without internet, with the vgg19-dcbb9e9d.pth file (or, with --net,
    alexnet-owt-7be5be79.pth, vgg16-397923af.pth, dists-pytorch's weights.pt or BasicSR's
    niqe_pris_params.npz) copied from elsewhere. Only the official files can be imported; use
    another file directly with --weights FILE or $HLCLI_WEIGHTS (--lpips-weights,
    --vgg16-weights, --dists-weights, --niqe-params for the others).
    """
    if net in datafiles.SPECS:
        click.echo(str(datafiles.import_file(net, file, force=force)))
    else:
        click.echo(str(w.import_file(file, force=force, net=net)))
