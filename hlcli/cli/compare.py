"""``hlcli compare``: two stored runs, pair by pair."""

from __future__ import annotations

from pathlib import Path

import click

from .common import debug_option, default_output_format, handle_errors, is_terminal, output_stream, OutputPath, warn_unofficial
from ..analysis.compare import compare_runs
from ..runs.documents import load_document
from ..render.compare import FORMATS, write_compare
from ..render import helptext

_HELP = f"""Compare two runs over the same ground truth (e.g. two models), pair by pair.

    A.json and B.json are documents written by `hlcli score --format json`. For every metric, by
    its direction ({helptext.directions()}), and every pair in both: B wins, loses or ties
    against A; the mean of B − A with a seeded bootstrap 95% interval; and the pairs that
    changed most.

    \b
    Examples:
      hlcli compare old.json new.json
      hlcli compare old.json new.json -f markdown >> "$GITHUB_STEP_SUMMARY"
      hlcli compare old.json new.json -f json | jq '.metrics.hybrid.mean_diff'
    """


@click.command("compare", short_help="Compare two runs over the same ground truth, pair by pair.", help=_HELP)
@click.argument("run_a", type=click.Path(exists=True, dir_okay=False, path_type=Path), metavar="A.json")
@click.argument("run_b", type=click.Path(exists=True, dir_okay=False, path_type=Path), metavar="B.json")
@click.option("-f", "--format", "fmt", type=click.Choice(["table", "json", "markdown"]),
              help="Output format. Default: from -o's extension, else table.")
@click.option("-o", "--output", type=OutputPath(example="compare.md"), metavar="FILE", help="Write the report to FILE (atomically) instead of stdout.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the bootstrap resampling.")
@click.option("--bootstrap", "resamples", type=click.IntRange(min=0), default=10000, show_default=True,
              help="Bootstrap resamples for the 95% interval of the mean difference (0: no interval).")
@click.option("--top", type=click.IntRange(min=0), default=10, show_default=True,
              help="How many of the pairs that changed most to list.")
@click.option("--by", default="hybrid", show_default=True, metavar="METRIC",
              help=f"Metric that ranks the pairs that changed most: {helptext.metric_names()}.")
@click.option("--allow-settings-mismatch", is_flag=True,
              help=f"Compare runs made with other {helptext.compared_settings()}.")
@debug_option
@handle_errors
def compare_cmd(run_a: Path, run_b: Path, fmt: str | None, output: str | None, seed: int, resamples: int, top: int,
            by: str, allow_settings_mismatch: bool, debug: bool) -> None:
    fmt = fmt or default_output_format(output, FORMATS)
    result = compare_runs(load_document(run_a, "A"), load_document(run_b, "B"), a_name=str(run_a), b_name=str(run_b),
                          seed=seed, resamples=resamples, top=top, by=by,
                          allow_settings_mismatch=allow_settings_mismatch)
    with output_stream(output) as out:
        write_compare(result, fmt, out, terminal=is_terminal(out))
    warn_unofficial(result)  # under the output, as the score table's note
