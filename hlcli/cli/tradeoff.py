"""``hlcli tradeoff``: which of several stored runs is best for which λ; the Pareto front."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from .common import announce_written, debug_option, default_output_format, handle_errors, is_terminal, output_stream, parse_lambda, OutputPath, warn_unofficial
from ..render.tradeoff import FORMATS, plot_tradeoff, write_tradeoff
from ..analysis.tradeoff import tradeoff_runs
from ..analysis.plane import plane_runs
from ..render.tradeoff import plot_plane, write_plane
from ..render import helptext


def _optional_lambda(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    return None if value is None else parse_lambda(ctx, param, value)


@click.command("tradeoff", short_help="Which run is best for which λ; the Pareto front of L1 and perceptual.")
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
                metavar="A.json B.json [C.json ...]")
@click.option("--name", "names", multiple=True, metavar="NAME",
              help="A name for each run, in order (repeat it). Default: the file stems.")
@click.option("--per-pair", is_flag=True,
              help="Also the share of pairs on which each run is best, at the runs' λ and at every interval end.")
@click.option("--lambda", "lam", type=float, callback=_optional_lambda,
              help="The λ of the hybrid column and the plot's iso-hybrid line. Default: the runs' own, if they agree.")
@click.option("--plot", type=OutputPath(example="tradeoff.png"), metavar="FILE", help="Draw the runs, the Pareto front and the iso-hybrid line to FILE "
                                             "(.png, .svg or .pdf; needs `pip install 'hlcli[plot]'`).")
@click.option("--x", "x_metric", metavar="METRIC",
              help="With --y: the perception–distortion plane of two metrics the runs share (a pair metric's "
                   "mean, or a set metric: fid, kid) instead of the λ trade-off: the Pareto front by each "
                   "metric's direction and which run dominates which.")
@click.option("--y", "y_metric", metavar="METRIC", help="The plane's other metric (see --x).")
@click.option("--allow-settings-mismatch", is_flag=True,
              help=f"Use runs made with other {helptext.compared_settings(ignore=('lambda',))} "
                   "(λ may always differ).")
@click.option("-f", "--format", "fmt", type=click.Choice(["table", "json", "csv", "markdown"]),
              help="Output format. Default: from -o's extension, else table.")
@click.option("-o", "--output", type=OutputPath(example="tradeoff.json"), metavar="FILE", help="Write the result to FILE (atomically) instead of stdout.")
@debug_option
@handle_errors
def tradeoff_cmd(runs: tuple[Path, ...], names: tuple[str, ...], per_pair: bool, lam: float | None,
                 plot: str | None, x_metric: str | None, y_metric: str | None, allow_settings_mismatch: bool,
                 fmt: str | None, output: str | None, debug: bool) -> None:
    """Compare runs (models, checkpoints) as λ varies: for each, mean L1 and mean perceptual over
    the pairs all runs share, whether it is on the Pareto front, and the interval of λ on which
    its mean hybrid is the lowest.

    Each RUN is a document written by `hlcli score --format json` on the same ground truth with
    the same layers, layer weights, weights and precision; λ may differ. Intervals are [lo, hi):
    at a crossing the run best just above it is credited; runs with equal means are tied and the
    first by name is credited. Exit 3 when --plot is given and matplotlib is not installed.

    \b
    Examples:
      hlcli tradeoff modelA.json modelB.json modelC.json
      hlcli tradeoff a.json b.json --name sharp --name smooth --plot tradeoff.png
      hlcli tradeoff ckpt_*.json -f json | jq '.runs[] | {name, best_lambda}'
      hlcli tradeoff lam*.json --x psnr --y fid --plot plane.png
    """
    if len(runs) < 2:
        raise click.UsageError("give at least two runs")
    fmt = fmt or default_output_format(output, FORMATS)
    if x_metric or y_metric:
        if not (x_metric and y_metric):
            raise click.UsageError("--x and --y go together: the plane needs two metrics")
        if per_pair or lam is not None:
            raise click.UsageError("--per-pair and --lambda belong to the λ trade-off, not to the --x/--y plane")
        plane = plane_runs([str(r) for r in runs], x_metric.strip().lower(), y_metric.strip().lower(),
                           names=list(names), allow_settings_mismatch=allow_settings_mismatch)
        _emit(plane, plot_plane, write_plane, plot=plot, fmt=fmt, output=output)
        return
    result = tradeoff_runs([str(r) for r in runs], names=list(names), lam=lam, per_pair=per_pair,
                           allow_settings_mismatch=allow_settings_mismatch)
    _emit(result, plot_tradeoff, write_tradeoff, plot=plot, fmt=fmt, output=output)


def _emit(result: dict[str, Any], plot_fn: Callable[[dict[str, Any], str], None],
          write_fn: Callable[..., None], *, plot: str | None, fmt: str, output: str | None) -> None:
    """The plot (if asked for), the document in ``fmt``, then the non-official weights' warnings
    (under the output, as the score table's note): the same for the λ trade-off and the plane."""
    if plot:
        plot_fn(result, plot)
        announce_written(plot)
    with output_stream(output) as out:
        write_fn(result, fmt, out, terminal=is_terminal(out))
    warn_unofficial(result)
