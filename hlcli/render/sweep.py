"""What a sweep (``hlcli score A/ B/ ... GT/`` without ``-o``) prints: on a terminal one table,
a row per model with the mean of each metric, the best of each column marked ``*`` (by the
metric's direction, :mod:`hlcli.metricdefs`); piped, CSV with a ``model`` column before the
columns of ``hlcli score -f csv``."""

from __future__ import annotations

import csv
import io
from typing import Any, TextIO

from ..metricdefs import better, get
from .common import num, table_console
from .score import write_csv, write_summary_csv


def _means(runs: dict[str, Any]) -> tuple[list[str], dict[str, dict[str, float | None]]]:
    first = next(iter(runs.values()))
    metrics = first.metric_names
    means = {name: {m: run.summary()["metrics"][m]["mean"] for m in metrics} for name, run in runs.items()}
    return metrics, means


def write_sweep_table(runs: dict[str, Any], out: TextIO, *, terminal: bool, failed: dict[str, str]) -> None:
    """One row per model: pairs scored, skipped, the mean of each metric (best marked ``*``),
    and the model's status (``ok`` or what failed: a gate, skips)."""
    from rich.table import Table

    metrics, means = _means(runs)
    best = {}
    for m in metrics:
        values = [v[m] for v in means.values() if v[m] is not None]
        best[m] = better(m, values) if values else None
    table = Table(title=f"sweep: {len(runs)} models (* best of the column)", title_justify="left")
    table.add_column("model")
    table.add_column("pairs", justify="right")
    for m in metrics:
        table.add_column(f"{m}{get(m).arrow}", justify="right")
    table.add_column("status")
    for name, run in runs.items():
        cells = []
        for m in metrics:
            v = means[name][m]
            cells.append("" if v is None else num(v) + ("*" if v == best[m] else ""))
        skipped = f" ({len(run.skipped)} skipped)" if run.skipped else ""
        table.add_row(name, f"{len(run.pairs)}{skipped}", *cells, failed.get(name, "ok"))
    table_console(out, terminal=terminal).print(table)


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
