"""``hlcli layers``: the VGG-19 layer table."""

from __future__ import annotations

import click

from ..nets.layers import DEFAULT_LAYERS, LAYERS


@click.command("layers")
def layers_cmd() -> None:
    """List the 37 VGG-19 layer names with their module index.

    convX_Y is the convolution's output before its ReLU; reluX_Y is after it.
    """
    for spec in LAYERS:
        default = "  (default)" if spec.name in DEFAULT_LAYERS else ""
        click.echo(f"{spec.name:<8} index {spec.index:>2}  {spec.activation:<9} "
                   f"{spec.channels:>3} channels  stride {spec.stride:>2}  receptive field {spec.receptive_field:>3} px{default}")
