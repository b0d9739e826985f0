"""``hlcli weights show | download | import``: find, fetch and install the VGG-19 weights."""

from __future__ import annotations

from pathlib import Path

import click

from .common import debug_option, handle_errors, stderr_is_terminal


@click.group("weights")
def weights_group() -> None:
    """Find, download and import the VGG-19 ImageNet weights.

    Looked for in this order: --weights FILE, $HLCLI_WEIGHTS, the torch hub cache
    ($TORCH_HOME/hub/checkpoints/vgg19-dcbb9e9d.pth), then downloaded (unless --offline).
    """


@weights_group.command("show")
@click.option("--weights", "weights_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also consider this file first, as `hlcli score --weights` would.")
@debug_option
@handle_errors
def weights_show(weights_path: Path | None, debug: bool) -> None:
    """Show where weights are looked for and which file would be used."""
    from .. import weights as w

    chosen = None
    for i, cand in enumerate(w.candidates(weights_path), 1):
        mark = "found" if cand.exists else "absent"
        click.echo(f"{i}. {cand.source:<12} {cand.path}  [{mark}]")
        if cand.exists and chosen is None:
            chosen = cand
    click.echo(f"{len(w.candidates(weights_path)) + 1}. {'download':<12} {w.WEIGHTS_URL}")
    click.echo(f"compact cache: {w.cache_dir()}")
    if chosen is None:
        click.echo(f"would use: a download into {w.hub_checkpoint_path()} (not possible with --offline)")
    else:
        sha = w.file_sha256(chosen.path)
        official = "torchvision IMAGENET1K_V1" if sha.startswith(w.OFFICIAL_SHA256_PREFIX) else "NOT the official checkpoint"
        click.echo(f"would use: {chosen.path} (sha256 {sha}, {official})")


@weights_group.command("download")
@click.option("--force", is_flag=True, help="Download again even if the file is already cached.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@debug_option
@handle_errors
def weights_download(force: bool, quiet: bool, debug: bool) -> None:
    """Download torchvision's VGG-19 IMAGENET1K_V1 checkpoint into the torch cache (hash-checked)."""
    from .. import weights as w

    path = w.download(progress=not quiet and stderr_is_terminal(), force=force)
    click.echo(str(path))


@weights_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace a cached file even if it is identical.")
@debug_option
@handle_errors
def weights_import(file: Path, force: bool, debug: bool) -> None:
    """Verify FILE (keys, shapes, sha256) and copy it into the torch cache.

    Use this on a machine without internet, with the vgg19-dcbb9e9d.pth file copied from
    elsewhere. Only torchvision's official checkpoint can be imported; use another file
    directly with --weights FILE or $HLCLI_WEIGHTS.
    """
    from .. import weights as w

    click.echo(str(w.import_file(file, force=force)))
