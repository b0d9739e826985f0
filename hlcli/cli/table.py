"""``hlcli table``: the results table of a paper from stored runs."""

from __future__ import annotations

from pathlib import Path

import click

from ..analysis.papertable import paper_table
from ..render import helptext
from ..render.papertable import FORMATS, write_paper_table
from .common import OutputPath, debug_option, default_output_format, handle_errors, is_terminal, output_stream, warn_unofficial

_LAYERS = "the runs' layers"


@click.command("table", short_help="The results table of a paper: runs × (dataset, metric), best in bold.")
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
                metavar="A.json [B.json ...]")
@click.option("--name", "names", multiple=True, metavar="NAME",
              help="A name for each run, in order (repeat it). Default: the file stems.")
@click.option("--metrics", metavar="M1,M2,...",
              help=f"Columns, comma-separated: {helptext.metric_names(_LAYERS)}, each "
                   "scored by every run. [default: hybrid,l1,perceptual and every extra metric that every run scored]")
@click.option("--group-by", type=click.Choice(["none", "top", "dir"]), default="none", show_default=True,
              help="Columns per group of pairs: top = the top-level folder of the key (the dataset), "
                   "dir = its whole parent folder; plus the mean over all pairs.")
@click.option("--average", type=click.Choice(["pairs", "groups"]), default="pairs", show_default=True,
              help="The overall columns: the mean over all pairs, or (with --group-by) the mean of the "
                   "per-group means (BasicSR's convention for video clips: REDS4, Vid4).")
@click.option("--digits", type=click.IntRange(1, 17), default=4, show_default=True,
              help="Significant digits in markdown and latex (table: at least 4; csv and json are exact).")
@click.option("--allow-settings-mismatch", is_flag=True,
              help=f"Tabulate runs made with other {helptext.compared_settings()}.")
@click.option("-f", "--format", "fmt", type=click.Choice(["table", "markdown", "latex", "csv", "json"]),
              help="Output format. Default: from -o's extension (.tex: latex), else table.")
@click.option("-o", "--output", type=OutputPath(example="table.md"), metavar="FILE", help="Write the table to FILE (atomically) instead of stdout.")
@debug_option
@handle_errors
def table_cmd(runs: tuple[Path, ...], names: tuple[str, ...], metrics: str, group_by: str, average: str, digits: int,
              allow_settings_mismatch: bool, fmt: str | None, output: str | None, debug: bool) -> None:
    """Build the results table of a paper: one row per run, one column per (group, metric) and
    per metric over all pairs, the best value of each column (by the metric's direction: the
    highest PSNR, the lowest L1) in bold (markdown, latex) or marked with * (table).

    Each RUN is a document written by `hlcli score --format json` with the same settings (λ
    included); means are over the pairs every run has. A set metric's column (fid, kid) holds each
    run's stored value over its own pairs (its summary's, or its group's: per group only for runs
    scored with the same --group-by), never recomputed. LaTeX output is a booktabs tabular:
    \\input it into a document that loads booktabs.

    \b
    Examples:
      hlcli table ours.json baseline.json --group-by top -f markdown
      hlcli table ours.json base.json --group-by top --metrics hybrid,l1 -o t.tex
      hlcli table a.json b.json --metrics psnr_y,ssim_y,lpips,hybrid -f latex
      hlcli table a.json b.json --group-by dir --average groups  # REDS4 clips
    """
    if fmt is None and output and Path(output).suffix.lower() == ".tex":
        fmt = "latex"
    fmt = fmt or default_output_format(output, FORMATS)
    result = paper_table([str(r) for r in runs], names=list(names), metrics=metrics, group_by=group_by,
                         allow_settings_mismatch=allow_settings_mismatch, average=average)
    with output_stream(output) as out:
        write_paper_table(result, fmt, out, terminal=is_terminal(out), digits=digits)
    warn_unofficial(result)  # under the output, as the score table's note
