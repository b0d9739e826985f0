"""``hlcli calibrate``: the make-up of a stored run's mean hybrid and the λ for a chosen share."""

from __future__ import annotations

from pathlib import Path

import click

from .common import debug_option, default_output_format, handle_errors, is_terminal, output_stream, OutputPath, warn_unofficial
from ..analysis.calibrate import calibrate_lambda
from ..render.calibrate import FORMATS, write_calibrate


@click.command("calibrate", short_help="Choose λ from a stored run: the share of the perceptual term.")
@click.argument("run", type=click.Path(exists=True, dir_okay=False, path_type=Path), metavar="RUN.json")
@click.option("--share", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.5, show_default=True,
              help="The fraction S of the mean hybrid the perceptual term should be: "
                   "λ = S/(1−S) · mean L1 / mean perceptual.")
@click.option("--balance-layers", is_flag=True,
              help="Also give the layer weights with which every layer contributes equally "
                   "(keeping the mean perceptual, so the λ above still holds).")
@click.option("-f", "--format", "fmt", type=click.Choice(["table", "json", "markdown"]),
              help="Output format. Default: from -o's extension, else table.")
@click.option("-o", "--output", type=OutputPath(example="calibrate.json"), metavar="FILE", help="Write the result to FILE (atomically) instead of stdout.")
@debug_option
@handle_errors
def calibrate_cmd(run: Path, share: float, balance_layers: bool, fmt: str | None, output: str | None,
                  debug: bool) -> None:
    """Show how the mean hybrid of a run is made up, and the λ at which the perceptual term is
    the share S of it.

    RUN.json is a document written by `hlcli score --format json`. The table shows mean L1,
    λ·perceptual and each layer's λ·w·perceptual as values and shares of the mean hybrid, now
    and at the calibrated λ, and the per-pair perceptual share (median, p5, p95). Exit 2 when
    the run's mean perceptual is 0 (identical images cannot be calibrated).

    \b
    Examples:
      hlcli calibrate run.json
      hlcli calibrate run.json --share 0.3 --balance-layers
      hlcli calibrate run.json -f json | jq .lambda
    """
    fmt = fmt or default_output_format(output, FORMATS)
    result = calibrate_lambda(str(run), share=share, balance_layers=balance_layers)
    with output_stream(output) as out:
        write_calibrate(result, fmt, out, terminal=is_terminal(out))
    warn_unofficial(result)  # under the output, as the score table's note
