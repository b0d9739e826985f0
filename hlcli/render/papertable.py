"""The results table of a paper (``hlcli table``) as a Rich table, Markdown, LaTeX (booktabs),
CSV or JSON. The best (lowest) value of each column is bold in Markdown and LaTeX and marked
with ``*`` in the terminal table; CSV and JSON carry exact values (JSON names the best runs)."""

from __future__ import annotations

import csv
import re
from typing import Any, TextIO

from ..documents import OVERRIDE_FLAG
from .common import exact, md_escape, md_row, print_sentence, table_console, write_in, write_json
from ..text import plural

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


def _num(x: float, digits: int) -> str:
    return format(x, f".{digits}g")


def _latex_num(x: float, digits: int) -> str:
    text = _num(x, digits)
    m = re.fullmatch(r"(-?[\d.]+)e([+-])0*(\d+)", text)
    if m:
        return f"${m.group(1)}\\times10^{{{'-' if m.group(2) == '-' else ''}{m.group(3)}}}$"
    return text


def _best(t: dict[str, Any], i: int, j: int) -> bool:
    return t["rows"][i]["name"] in t["columns"][j]["best"]


def _label(c: dict[str, Any], grouped: bool) -> str:
    return c["metric"] if not grouped else f"{c['metric']} ({ALL if c['group'] is None else c['group']})"


def notes(t: dict[str, Any]) -> list[str]:
    p = t["pairs"]
    lines = [f"means over the {plural(p['common'], 'pair')} in every run; lower is better; λ = {t['settings']['lambda']:g}"]
    lines += [f"settings differ (tabulated anyway with {OVERRIDE_FLAG}): {d}" for d in t["settings_differences"]]
    lines += [f"only in {name} (not used): {', '.join(keys)}" for name, keys in p["only_in"].items()]
    return lines


def write_table_console(t: dict[str, Any], out: TextIO, *, terminal: bool = False) -> None:
    """The table for people: every number whole (:mod:`hlcli.render.table` picks the format of
    each column), the best marked ``*``; datasets move to further tables on a narrow terminal."""
    from .table import Column, fit_table, number_column

    console = table_console(out, terminal=terminal)
    rows, metrics = t["rows"], len(t["metrics"])
    columns = []
    for j, c in enumerate(t["columns"]):
        label = c["metric"] if c["group"] is None and t["group_by"] == "none" else \
            f"{c['metric']}\n{ALL if c['group'] is None else c['group']}"
        col = number_column(label, [row["values"][j] for row in rows], group=j // metrics)
        col.cells = [cell + (" *" if _best(t, i, j) else "  ") for i, cell in enumerate(col.cells)]
        columns.append(col)
    fit_table(console, "hlcli table", Column("run", [row["name"] for row in rows], justify="left"), columns,
              moved="later groups", full="-f csv", notes=["* lowest in its column"])
    for line in notes(t):
        print_sentence(console, line)


def write_table_markdown(t: dict[str, Any], out: TextIO, *, digits: int = DEFAULT_DIGITS) -> None:
    grouped = t["group_by"] != "none"
    lines = [md_row(["run", *(md_escape(_label(c, grouped)) for c in t["columns"])]),
             "|---|" + "---:|" * len(t["columns"])]
    for i, row in enumerate(t["rows"]):
        cells = [f"**{_num(v, digits)}**" if _best(t, i, j) else _num(v, digits) for j, v in enumerate(row["values"])]
        lines.append(md_row([md_escape(row["name"]), *cells]))
    lines += ["", *(md_escape(line) for line in notes(t)[:1]), "**Bold**: the lowest (best) value of its column."]
    out.write("\n".join(lines) + "\n")


def _latex_header(t: dict[str, Any]) -> list[str]:
    cols, metrics = t["columns"], t["metrics"]
    if t["group_by"] == "none":
        return ["Run & " + " & ".join(latex_escape(c["metric"]) for c in cols) + r" \\"]
    groups = [cols[k]["group"] for k in range(0, len(cols), len(metrics))]
    spans = " & ".join(rf"\multicolumn{{{len(metrics)}}}{{c}}{{{latex_escape(ALL if g is None else g)}}}"
                       for g in groups)
    rules = " ".join(rf"\cmidrule(lr){{{2 + k * len(metrics)}-{1 + (k + 1) * len(metrics)}}}"
                     for k in range(len(groups)))
    return [f" & {spans} \\\\", rules, "Run & " + " & ".join(latex_escape(c["metric"]) for c in cols) + r" \\"]


def write_table_latex(t: dict[str, Any], out: TextIO, *, digits: int = DEFAULT_DIGITS) -> None:
    """A ``tabular`` with booktabs rules, to ``\\input`` into a document that loads booktabs."""
    lines = [f"% hlcli table: {latex_escape(notes(t)[0])}; bold: the lowest (best) value of its column",
             r"% needs \usepackage{booktabs}",
             r"\begin{tabular}{l" + "r" * len(t["columns"]) + "}", r"\toprule", *_latex_header(t), r"\midrule"]
    for i, row in enumerate(t["rows"]):
        cells = [rf"\textbf{{{_latex_num(v, digits)}}}" if _best(t, i, j) else _latex_num(v, digits)
                 for j, v in enumerate(row["values"])]
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
        w.writerow([row["name"], row["path"] or "", *map(exact, row["values"])])


def write_paper_table(t: dict[str, Any], fmt: str, out: TextIO, *, terminal: bool = False,
                      digits: int = DEFAULT_DIGITS) -> None:
    write_in(fmt, {"json": lambda: write_json(t, out), "markdown": lambda: write_table_markdown(t, out, digits=digits),
                   "latex": lambda: write_table_latex(t, out, digits=digits), "csv": lambda: write_table_csv(t, out),
                   "table": lambda: write_table_console(t, out, terminal=terminal)})
