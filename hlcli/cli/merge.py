"""``hlcli merge``: the parts written by ``hlcli score --shard I/N -f json`` -> one run, written
exactly as a single ``hlcli score`` would write it (the same Run, rendered by the same code)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from ..render.score import FORMATS
from ..text import plural
from ..render import helptext
from .common import (
    EXTENSION_FORMATS,
    OutputPath,
    debug_option,
    default_format,
    handle_errors,
    parse_gates,
    parse_limits,
)
from ..runs.documents import load_document
from ..engine.sharding import merge_documents
from .runview import Integrations, RunView, emit_run, integration_options
from .scoreopts import _table_options, parse_rows
from ..analysis.gate import GateSpec, check_metrics, scoped


@click.command("merge")
@click.argument("parts", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-f", "--format", "fmt", type=click.Choice(FORMATS),
              help="Output format. Default: from -o's extension, else table on a terminal, csv when piped.")
@click.option("-o", "--output", type=OutputPath(example="run.json"), metavar="FILE", help="Write the run to FILE (atomically) instead of stdout.")
@click.option("--worst", type=click.IntRange(min=0), default=5, show_default=True, help="How many worst pairs the summary lists.")
@click.option("--summary-only", is_flag=True, help="Only the summary, as `hlcli score --summary-only`.")
@click.option("--rows", default="40", show_default=True, metavar="N|all", callback=lambda c, p, v: _rows(v),
              help="Table: show at most N pairs, the worst by --sort ('all': every pair), as `hlcli score --rows`.")
@click.option("--sort", default="hybrid", show_default=True, metavar="METRIC",
              help="Table: order of the pairs, worst first by the metric's direction, as `hlcli score --sort`: "
                   f"{helptext.metric_names()}, or 'key'.")
@click.option("--allow-skips", is_flag=True, help="Exit 0 even if some parts skipped files.")
@click.option("--fail-if", "gates", multiple=True, callback=parse_gates, metavar="'STAT.METRIC OP VALUE'",
              help="Exit 1 if this is true of the merged run, as `hlcli score --fail-if`. Repeatable.")
@click.option("--baseline", type=click.Path(exists=True, dir_okay=False, path_type=Path), metavar="RUN.json",
              help="Compare with a run saved by `hlcli score -f json`, as `hlcli score --baseline`.")
@click.option("--max-regression", "limits", multiple=True, callback=parse_limits, metavar="[METRIC=]VALUE[%]",
              help="With --baseline: as `hlcli score --max-regression`. Repeatable.")
@click.option("--max-pair-regression", "pair_limits", multiple=True, callback=parse_limits,
              metavar="[METRIC=]VALUE[%]", help="With --baseline: as `hlcli score --max-pair-regression`.")
@click.option("--allow-settings-mismatch", is_flag=True,
              help=f"Compare with a baseline made with other {helptext.compared_settings()}.")
@integration_options
@click.option("-q", "--quiet", is_flag=True, help="No notes on stderr (errors still shown).")
@debug_option
@handle_errors
def merge_cmd(parts: tuple[Path, ...], fmt: str | None, output: str | None, worst: int, summary_only: bool,
              allow_skips: bool, quiet: bool, **options: Any) -> None:
    """Merge the parts of a sharded run into the run one `hlcli score` would have written.

    PARTS are the JSON documents of `hlcli score --shard I/N -f json`, every shard 0..N-1 of one
    plan exactly once (exit 2 naming the missing, duplicated or foreign parts). See docs/scaling.md.

    \b
    Examples:
      hlcli merge part-*.json -o run.json
      hlcli merge part-*.json --fail-if 'mean.hybrid>0.08' --baseline old.json
    """
    integrations = Integrations.from_options(options, quiet=quiet, allow_skips=allow_skips,
                                             where=output if output not in (None, "-") else options["junit"])
    started = time.perf_counter()
    docs = [(str(p), load_document(p, role="part")) for p in parts]
    run = merge_documents(docs, worst=worst)
    view = RunView(fmt or default_format(output, EXTENSION_FORMATS, "csv"), quiet=quiet, allow_skips=allow_skips,
                   summary_only=summary_only, gates=_gate_spec(options, run.layer_names, run.extra_metrics),
                   table=_table_options(options, run.layer_names, tuple(run.extra_metrics)), integrations=integrations)
    done = f"merged {plural(len(parts), 'part')}, {plural(len(run.pairs), 'pair')}"
    sys.exit(emit_run(view, run, output, started, done))


def _rows(value: str) -> int | None:
    return parse_rows(value)


def _gate_spec(options: dict[str, Any], layer_names: list[str], extra: list[str]) -> Any:
    """--fail-if/--baseline/--max-regression, checked against the merged run's layers."""
    gates, limits, pair_limits = options["gates"], options["limits"], options["pair_limits"]
    for items, flag in ((gates, "--fail-if"), (limits, "--max-regression"), (pair_limits, "--max-pair-regression")):
        try:
            check_metrics(items, layer_names, extra)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint=f"'{flag}'") from None
    if (limits or pair_limits) and options["baseline"] is None:
        raise click.UsageError("--max-regression and --max-pair-regression need --baseline RUN.json")
    spec = GateSpec(list(gates), scoped(list(limits), list(pair_limits)),
                    allow_settings_mismatch=options["allow_settings_mismatch"])
    if options["baseline"] is not None:
        spec.baseline, spec.baseline_path = load_document(options["baseline"]), str(options["baseline"])
    return spec
