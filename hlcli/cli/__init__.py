"""The ``hlcli`` command line: one module per command, each a thin Click layer over the library
(parse, validate, call, render, map errors to exit codes; no maths). torch is imported only
inside the commands that need it, so ``hlcli --help`` and ``hlcli --version`` stay instant.

Exit codes: 0 success (gate passed), 1 gate failed, 2 bad usage or input, 3 environment
(weights, device, non-finite result, internal error), 130 interrupted, 141 output pipe closed.
"""

from __future__ import annotations
import os
import shlex

import click

from .._version import __version__
from .calibrate import calibrate_cmd
from .compare import compare_cmd
from .info import info_cmd
from .layers import layers_cmd
from .merge import merge_cmd
from .report import report_cmd
from .score import score_cmd
from .table import table_cmd
from .tradeoff import tradeoff_cmd
from .weights import weights_group
from ..nets.weights import CLI_OPTIONS


class _Commands(click.Group):
    """hlcli's commands; a path where the command belongs (``hlcli out/ gt/``: the command word
    forgotten) is answered with the command that scores it."""

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if name and self.get_command(ctx, name) is None and (os.path.exists(name) or os.sep in name):
            rest = " ".join(shlex.quote(a) for a in args)
            ctx.fail(f"{name!r} is not a command; to score these images: hlcli score {rest}")
        return super().resolve_command(ctx, args)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "-V", "--version", prog_name="hlcli")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Score restored images against their ground truth with the hybrid loss

        hybrid = L1 + λ · Σ_l w_l · perceptual_l

    L1 is the mean absolute error of RGB values in [0, 1]; perceptual_l is the mean squared
    difference of VGG-19 (ImageNet) feature maps at layer l.
    """
    token = CLI_OPTIONS.set(True)  # a weights error's fix names the option, not the Python argument
    ctx.call_on_close(lambda: CLI_OPTIONS.reset(token))


for _command in (score_cmd, merge_cmd, compare_cmd, tradeoff_cmd, calibrate_cmd, table_cmd, report_cmd,
                 layers_cmd, weights_group, info_cmd):
    cli.add_command(_command)


def main() -> None:
    cli(prog_name="hlcli")
