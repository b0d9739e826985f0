"""What a sweep (``hlcli score A/ B/ ... GT/`` without ``-o``) prints: on a terminal one table,
a row per model with the mean of each metric (FID and KID: the model's set value), the best of each column marked ``*`` (by the
metric's direction, :mod:`hlcli.metrics.registry`); piped, CSV with a ``model`` column before the
columns of ``hlcli score -f csv``."""

from __future__ import annotations

import csv
import io
from typing import Any, TextIO

from ..metrics.registry import EXTRA, better, get
from ..runs.summaries import summary_values
from .common import table_console, weights_warnings
from .score import write_csv, write_summary_csv
from .table import Column, fit_table, metric_header, number_column


def _means(runs: dict[str, Any]) -> tuple[list[str], dict[str, dict[str, float | None]]]:
    """Every metric's one number per model: a pair metric's mean, a set metric's (FID, KID) value
    over the model's pairs (:func:`hlcli.runs.summaries.summary_values`)."""
    first = next(iter(runs.values()))
    summaries = {name: run.summary() for name, run in runs.items()}  # once per run
    metrics = first.metric_names + first.set_metric_names
    means = {name: {m: summary_values(summaries[name]).get(m) for m in metrics} for name in runs}
    return metrics, means


def write_sweep_table(runs: dict[str, Any], out: TextIO, *, terminal: bool, failed: dict[str, str]) -> None:
    """One row per model: pairs scored (and skipped), the mean of each metric in one format per
    column (:mod:`hlcli.render.table`; per-layer columns move first when it is too wide), the
    best of each column marked ``*`` by the metric's direction, and the model's status (``ok``
    or what failed: a gate, skips)."""
    metrics, means = _means(runs)
    names = list(runs)
    layers = set(next(iter(runs.values())).layer_names)
    columns = [Column("pairs", [f"{len(r.pairs)}" + (f" ({len(r.skipped)} skipped)" if r.skipped else "")
                                for r in runs.values()])]
    for m in metrics:
        values = [means[n][m] for n in names]
        finite = [v for v in values if v is not None]
        best = better(m, finite) if finite else None
        header = metric_header(m) if m in EXTRA else f"{m}{get(m).arrow}"
        col = number_column(header, values, metric=m, group=1 if m in layers else 0)
        col.cells = [c + (" *" if v is not None and v == best else "  ") for c, v in zip(col.cells, values)]
        columns.append(col)
    columns.append(Column("status", [failed.get(n, "ok") for n in names], justify="left"))
    sets = " (FID, KID: each model's set)" if next(iter(runs.values())).set_metric_names else ""
    fit_table(table_console(out, terminal=terminal), f"sweep: {len(runs)} models, means over each model's pairs{sets}",
              Column("model", names, justify="left"), columns, moved="per-layer columns", full="-o DIR/",
              notes=["* best of its column (lowest, or highest where higher is better)",
                     *(f"warning: {w}" for w in weights_warnings(next(iter(runs.values())).settings))])


def write_sweep_csv(runs: dict[str, Any], out: TextIO, *, summary_only: bool = False) -> None:
    """Each model's ``hlcli score -f csv`` (or ``--summary-only``) rows, a ``model`` column first;
    one header."""
    w = csv.writer(out, lineterminator="\n")
    header_written = False
    for name, run in runs.items():
        buf = io.StringIO()
        (write_summary_csv if summary_only else write_csv)(run, buf)
        rows = list(csv.reader(io.StringIO(buf.getvalue())))
        if not header_written:
            w.writerow(["model", *rows[0]])
            header_written = True
        for row in rows[1:]:
            w.writerow([name, *row])
