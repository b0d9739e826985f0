"""A comparison of two runs (``hlcli compare``) as a Rich table, JSON or Markdown."""

from __future__ import annotations

from typing import Any, TextIO

from ..documents import OVERRIDE_FLAG
from .common import md_code, md_row, num, percent, signed, table_console, write_json

FORMATS = ("table", "json", "markdown")


def _ci(e: dict[str, Any]) -> str:
    return "" if e["ci_low"] is None else f"[{signed(e['ci_low'])}, {signed(e['ci_high'])}]"


def _headline(r: dict[str, Any]) -> list[str]:
    p = r["pairs"]
    lines = [f"A = {r['a']['path']} ({r['a']['pairs']} pairs), B = {r['b']['path']} ({r['b']['pairs']} pairs): "
             f"{p['common']} pairs in both, {len(p['only_a'])} only in A, {len(p['only_b'])} only in B",
             "difference = B − A; lower is better, so a negative difference means B is better"]
    if r["bootstrap"]["resamples"]:
        lines.append(f"{r['bootstrap']['confidence']:.0%} bootstrap interval of the mean difference "
                     f"({r['bootstrap']['resamples']} resamples, seed {r['bootstrap']['seed']})")
    lines += [f"settings differ (compared anyway with {OVERRIDE_FLAG}): {d}" for d in r["settings_differences"]]
    return lines


_METRIC_COLS = ("metric", "mean A", "mean B", "B − A", "relative", "95% interval", "B better", "B worse", "ties")


def _metric_row(name: str, e: dict[str, Any]) -> list[str]:
    return [name, num(e["mean_a"]), num(e["mean_b"]), signed(e["mean_diff"]), percent(e["relative_diff"]), _ci(e),
            str(e["b_wins"]), str(e["b_losses"]), str(e["ties"])]


def _changed_row(c: dict[str, Any]) -> list[str]:
    return [c["key"], num(c["a"]), num(c["b"]), signed(c["diff"]), percent(c["relative_diff"])]


def write_compare_table(r: dict[str, Any], out: TextIO, *, terminal: bool = False) -> None:
    from rich.table import Table
    from rich.text import Text

    console = table_console(out, terminal=terminal)
    for line in _headline(r):
        console.print(line, markup=False)
    t = Table(title="hlcli compare", title_justify="left")
    for i, col in enumerate(_METRIC_COLS):
        t.add_column(col, justify="left" if i == 0 else "right")
    for name, e in r["metrics"].items():
        t.add_row(*_metric_row(name, e))
    console.print(t)
    if r["changed_most"]["pairs"]:
        c = Table(title=f"pairs that changed most ({r['changed_most']['by']})", title_justify="left")
        for i, col in enumerate(("pair", "A", "B", "B − A", "relative")):
            c.add_column(col, justify="left" if i == 0 else "right", overflow="fold" if i == 0 else "ellipsis")
        for ch in r["changed_most"]["pairs"]:
            key, *rest = _changed_row(ch)
            c.add_row(Text(key), *rest)
        console.print(c)
    for label, keys in (("only in A", r["pairs"]["only_a"]), ("only in B", r["pairs"]["only_b"])):
        if keys:
            console.print(f"{label} (not compared): " + ", ".join(keys), markup=False)


def write_compare_markdown(r: dict[str, Any], out: TextIO) -> None:
    lines = ["## hlcli compare", "", *(f"{line}  " for line in _headline(r)), "",
             md_row(list(_METRIC_COLS)), "|---|" + "---:|" * (len(_METRIC_COLS) - 1)]
    lines += [md_row(_metric_row(name, e)) for name, e in r["metrics"].items()]
    if r["changed_most"]["pairs"]:
        lines += ["", f"### Pairs that changed most ({r['changed_most']['by']})", "",
                  md_row(["pair", "A", "B", "B − A", "relative"]), "|---|---:|---:|---:|---:|"]
        lines += [md_row([md_code(row[0]), *row[1:]]) for row in map(_changed_row, r["changed_most"]["pairs"])]
    for label, keys in (("Only in A", r["pairs"]["only_a"]), ("Only in B", r["pairs"]["only_b"])):
        if keys:
            lines += ["", f"{label} (not compared): " + ", ".join(f"`{k}`" for k in keys)]
    out.write("\n".join(lines) + "\n")


def write_compare(r: dict[str, Any], fmt: str, out: TextIO, *, terminal: bool = False) -> None:
    if fmt == "json":
        write_json(r, out)
    elif fmt == "markdown":
        write_compare_markdown(r, out)
    elif fmt == "table":
        write_compare_table(r, out, terminal=terminal)
    else:
        raise ValueError(f"unknown format {fmt!r}")
