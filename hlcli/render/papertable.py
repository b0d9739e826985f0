"""The results table of a paper (``hlcli table``) as a Rich table, Markdown, LaTeX (booktabs),
CSV or JSON. The best value of each column (by the metric's direction: the highest PSNR, the
lowest L1) is bold in Markdown and LaTeX and marked with ``*`` in the terminal table; headers
carry the direction and unit (``PSNR↑ dB``); CSV and JSON carry exact values (JSON names the
best runs). A value that is undefined (every pair +inf: PSNR of identical images) is empty."""

from __future__ import annotations

import csv
import re
from typing import Any, TextIO

from ..runs.documents import OVERRIDE_FLAG
from ..metrics.registry import EXTRA, get
from ..text import plural
from .common import exact, md_escape, md_row, print_sentence, table_console, write_in, write_json
from .table import (
    fixed,
    _chunks,
    _print_stacked,
    _print_table,
    Column,
    fit_table,
    number_column,
    shared_formats,
    table_width,
)

FORMATS = ("table", "markdown", "latex", "csv", "json")
DEFAULT_DIGITS = 4
ALL = "all"  # the label of the columns over all pairs
_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    """Text safe in LaTeX's text mode: the ten special characters escaped.

    >>> latex_escape("x4_&_50% {#1}")
    'x4\\\\_\\\\&\\\\_50\\\\% \\\\{\\\\#1\\\\}'
    """
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _num(x: float | None, digits: int, metric: str | None = None) -> str:
    """A value for markdown and LaTeX: ``digits`` significant digits, or the metric's own fixed
    decimals where it has them (PSNR ``32.451``); None is empty."""
    if x is None:
        return ""
    decimals = get(metric).decimals if metric else None
    return fixed(x, decimals) if decimals is not None else format(x, f".{digits}g")


def _header(metric: str) -> str:
    """``PSNR↑ dB``, ``hybrid↓``: the metric's label, direction and unit."""
    m = get(metric)
    return m.header() if metric in EXTRA else f"{metric}{m.arrow}"


def _latex_header_cell(metric: str) -> str:
    m = get(metric)
    name = latex_escape(m.label if metric in EXTRA else metric)
    arrow = r"$\uparrow$" if m.higher_is_better else r"$\downarrow$"
    return f"{name}{arrow}" + (f" ({latex_escape(m.unit)})" if m.unit else "")


def _latex_num(x: float | None, digits: int, metric: str | None = None) -> str:
    if x is None:
        return ""
    text = _num(x, digits, metric)
    m = re.fullmatch(r"(-?[\d.]+)e([+-])0*(\d+)", text)
    if m:
        return f"${m.group(1)}\\times10^{{{'-' if m.group(2) == '-' else ''}{m.group(3)}}}$"
    return text


def _best(t: dict[str, Any], i: int, j: int) -> bool:
    return t["rows"][i]["name"] in t["columns"][j]["best"]


def _label(c: dict[str, Any], grouped: bool) -> str:
    return _header(c["metric"]) if not grouped else f"{_header(c['metric'])} ({_group(c, True)})"


def _group(c: dict[str, Any], grouped: bool) -> str:
    if c["group"] is not None:
        return c["group"]
    return "mean of groups" if c.get("average") == "groups" else ALL


def notes(t: dict[str, Any]) -> list[str]:
    p = t["pairs"]
    how = ("the overall columns are the mean of the per-group means" if t.get("average") == "groups"
           else f"means over the {plural(p['common'], 'pair')} in every run")
    lines = [f"{how}; ↑ higher is better, ↓ lower is better; λ = {t['settings']['lambda']:g}"]
    lines += [f"settings differ (tabulated anyway with {OVERRIDE_FLAG}): {d}" for d in t["settings_differences"]]
    lines += [f"only in {name} (not used): {', '.join(keys)}" for name, keys in p["only_in"].items()]
    return lines + set_lines(t)


def set_lines(t: dict[str, Any]) -> list[str]:
    """What a set metric's column holds (FID, KID: each run's stored value over its own set of
    pairs, not a mean) and each small set's note; nothing without set columns."""
    labels = list(dict.fromkeys(get(c["metric"]).label for c in t["columns"] if c.get("scope") == "set"))
    if not labels:
        return []
    own = "; the pairs not in every run included" if any(t["pairs"]["only_in"].values()) else ""
    return [f"{', '.join(labels)}: each run's stored value over its own set of pairs, not a mean{own}",
            *(f"note: {n}" for n in t.get("set_notes", []))]


def write_table_console(t: dict[str, Any], out: TextIO, *, terminal: bool = False) -> None:
    """The table for people, read down a column: every number whole, one format per metric for
    the whole table (every group and run alike), the best marked ``*``. Layouts, in order, the
    first that fits: runs as rows; runs as columns ((group, metric) as rows); runs as rows split
    into one table per group (each with every run); last, each (group, metric) with every run's
    value under it (stacked, still comparable)."""
    from rich.text import Text  # lazy: keeps rich off the cheap paths (import hlcli, --help, reading runs)

    console = table_console(out, terminal=terminal)
    width = console.width
    formats = _formats(t)
    key, columns = _runs_as_rows(t, formats)
    note = "* best in its column"
    if table_width([key, *columns]) <= width:
        fit_table(console, "hlcli table", key, columns, notes=[note])
    else:
        tkey, tcolumns = _runs_as_columns(t, formats)
        groups = len(t["columns"]) // max(1, len(t["metrics"]))
        split = _chunks(key, columns, width, max_tables=max(groups, 1))
        console.print(Text("hlcli table", style="italic"))
        if table_width([tkey, *tcolumns]) <= width:
            _print_table(console, tkey, tcolumns)
            said = [f"runs as columns to fit {width} columns; * best in its row"]
        elif split is not None:
            for cols in split:
                _print_table(console, key, cols)
            said = [note, "one table per group to fit; -f csv has one table"]
        else:
            _print_stacked(console, tkey, tcolumns)
            said = [f"each column with every run, stacked to fit {width} columns; * best; -f csv has a table"]
        for line in said:
            console.print(Text(line, style="dim"))
    for line in notes(t):
        print_sentence(console, line)


def _formats(t: dict[str, Any]) -> dict[str, Any]:
    """One number format per metric, from its values in every group and run."""
    pools: dict[str, list[Any]] = {m: [] for m in t["metrics"]}
    for j, c in enumerate(t["columns"]):
        pools[c["metric"]] += [row["values"][j] for row in t["rows"]]
    return shared_formats(pools)


def _runs_as_rows(t: dict[str, Any], formats: dict[str, Any]) -> tuple[Any, list[Any]]:
    rows, metrics = t["rows"], len(t["metrics"])
    columns = []
    for j, c in enumerate(t["columns"]):
        label = _header(c["metric"]) if c["group"] is None and t["group_by"] == "none" else \
            f"{_header(c['metric'])}\n{_group(c, True)}"
        col = number_column(label, [row["values"][j] for row in rows], group=j // metrics, fmt=formats[c["metric"]])
        col.cells = [cell + (" *" if _best(t, i, j) else "  ") for i, cell in enumerate(col.cells)]
        columns.append(col)
    return Column("run", [row["name"] for row in rows], justify="left"), columns


def _runs_as_columns(t: dict[str, Any], formats: dict[str, Any]) -> tuple[Any, list[Any]]:
    """Transposed: one row per (group, metric), its format's power of ten after its label; one
    column per run."""
    grouped = t["group_by"] != "none"
    labels = []
    for c in t["columns"]:
        unit = formats[c["metric"]].label
        labels.append(" ".join(x for x in ((_group(c, True) if grouped else ""), _header(c["metric"]), unit) if x))
    columns = []
    for i, row in enumerate(t["rows"]):
        cells = [formats[c["metric"]](v) + (" *" if _best(t, i, j) else "  ")
                 for j, (v, c) in enumerate(zip(row["values"], t["columns"]))]
        columns.append(Column(row["name"], cells))
    return Column("column", labels, justify="left"), columns


def write_table_markdown(t: dict[str, Any], out: TextIO, *, digits: int = DEFAULT_DIGITS) -> None:
    grouped = t["group_by"] != "none"
    lines = [md_row(["run", *(md_escape(_label(c, grouped)) for c in t["columns"])]),
             "|---|" + "---:|" * len(t["columns"])]
    for i, row in enumerate(t["rows"]):
        cells = [f"**{_num(v, digits, c['metric'])}**" if _best(t, i, j) else _num(v, digits, c["metric"])
                 for j, (v, c) in enumerate(zip(row["values"], t["columns"]))]
        lines.append(md_row([md_escape(row["name"]), *cells]))
    lines += ["", *(md_escape(line) for line in [*notes(t)[:1], *set_lines(t)]),
              "**Bold**: the best value of its column."]
    out.write("\n".join(lines) + "\n")


def _latex_header(t: dict[str, Any]) -> list[str]:
    cols, metrics = t["columns"], t["metrics"]
    if t["group_by"] == "none":
        return ["Run & " + " & ".join(_latex_header_cell(c["metric"]) for c in cols) + r" \\"]
    groups = [cols[k]["group"] for k in range(0, len(cols), len(metrics))]
    spans = " & ".join(rf"\multicolumn{{{len(metrics)}}}{{c}}{{{latex_escape(_group(cols[k * len(metrics)], True))}}}"
                       for k, g in enumerate(groups))
    rules = " ".join(rf"\cmidrule(lr){{{2 + k * len(metrics)}-{1 + (k + 1) * len(metrics)}}}"
                     for k in range(len(groups)))
    return [f" & {spans} \\\\", rules, "Run & " + " & ".join(_latex_header_cell(c["metric"]) for c in cols) + r" \\"]


def write_table_latex(t: dict[str, Any], out: TextIO, *, digits: int = DEFAULT_DIGITS) -> None:
    """A ``tabular`` with booktabs rules, to ``\\input`` into a document that loads booktabs."""
    lines = [f"% hlcli table: {latex_escape(notes(t)[0])}; bold: the best value of its column",
             *(f"% {line}" for line in set_lines(t)),
             r"% needs \usepackage{booktabs}",
             r"\begin{tabular}{l" + "r" * len(t["columns"]) + "}", r"\toprule", *_latex_header(t), r"\midrule"]
    for i, row in enumerate(t["rows"]):
        cells = [rf"\textbf{{{_latex_num(v, digits, c['metric'])}}}" if _best(t, i, j)
                 else _latex_num(v, digits, c["metric"]) for j, (v, c) in enumerate(zip(row["values"], t["columns"]))]
        lines.append(" & ".join([latex_escape(row["name"]), *cells]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    out.write("\n".join(lines) + "\n")


def csv_header(t: dict[str, Any]) -> list[str]:
    """``run``, ``path``, then ``metric`` (over all pairs) or ``metric[group]`` per column."""
    return ["run", "path", *(c["metric"] if c["group"] is None else f"{c['metric']}[{c['group']}]"
                             for c in t["columns"])]


def write_table_csv(t: dict[str, Any], out: TextIO) -> None:
    w = csv.writer(out, lineterminator="\n")
    w.writerow(csv_header(t))
    for row in t["rows"]:
        w.writerow([row["name"], row["path"] or "", *("" if v is None else exact(v) for v in row["values"])])


def write_paper_table(t: dict[str, Any], fmt: str, out: TextIO, *, terminal: bool = False,
                      digits: int = DEFAULT_DIGITS) -> None:
    write_in(fmt, {"json": lambda: write_json(t, out), "markdown": lambda: write_table_markdown(t, out, digits=digits),
                   "latex": lambda: write_table_latex(t, out, digits=digits), "csv": lambda: write_table_csv(t, out),
                   "table": lambda: write_table_console(t, out, terminal=terminal)})
