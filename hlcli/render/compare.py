"""A comparison of two runs (``hlcli compare``) as a Rich table, JSON or Markdown."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, TextIO

from ..runs.documents import OVERRIDE_FLAG
from .common import md_code, md_row, num, percent, print_sentence, signed, table_console, write_in, write_json
from ..text import plural
from .table import Column, fit_table, metric_format, metric_header, percent_sig

FORMATS = ("table", "json", "markdown")


def _ci(e: dict[str, Any]) -> str:
    return "" if e["ci_low"] is None else f"[{signed(e['ci_low'])}, {signed(e['ci_high'])}]"


def _headline(r: dict[str, Any]) -> list[str]:
    p = r["pairs"]
    lines = [f"A = {r['a']['path']} ({plural(r['a']['pairs'], 'pair')}), B = {r['b']['path']} ({plural(r['b']['pairs'], 'pair')}): "
             f"{plural(p['common'], 'pair')} in both, {len(p['only_a'])} only in A, {len(p['only_b'])} only in B",
             "difference = " + r["difference"].replace("B - A", "B − A")]
    if r["bootstrap"]["resamples"]:
        lines.append(f"{r['bootstrap']['confidence']:.0%} bootstrap interval of the mean difference "
                     f"({r['bootstrap']['resamples']} resamples, seed {r['bootstrap']['seed']})")
    lines += [f"settings differ (compared anyway with {OVERRIDE_FLAG}): {d}" for d in r["settings_differences"]]
    for m, e in (r.get("sets") or {}).items():  # set metrics: one value per run, over its own pairs
        lines.append(f"{m} (set, {'higher' if e['higher_is_better'] else 'lower'} is better): A {num(e['a'])}, "
                     f"B {num(e['b'])}, B − A {signed(e['diff'])} ({percent(e['relative_diff'])}): "
                     f"B {'better' if e['b_better'] else 'not better'}")
    return lines


_METRIC_COLS = ("metric", "mean A", "mean B", "B − A", "relative", "95% interval", "B better", "B worse", "ties")


def _metric_row(name: str, e: dict[str, Any]) -> list[str]:
    return [name, num(e["mean_a"]), num(e["mean_b"]), signed(e["mean_diff"]), percent(e["relative_diff"]), _ci(e),
            str(e["b_wins"]), str(e["b_losses"]), str(e["ties"])]


def _changed_row(c: dict[str, Any]) -> list[str]:
    return [c["key"], num(c["a"]), num(c["b"]), signed(c["diff"]), percent(c["relative_diff"])]


def _metric_columns(r: dict[str, Any]) -> tuple[Any, list[Any]]:
    """The metrics table: one row per metric, its numbers in one format per row (the power of
    ten after the metric's name); counts and the interval may move to a second table."""
    keys, rows = [], []
    for name, e in r["metrics"].items():
        fmt = metric_format(name, [e["mean_a"], e["mean_b"], e["mean_diff"], e["ci_low"], e["ci_high"]])
        sfmt = replace(fmt, signed=True)  # the differences: same scale and decimals, with a sign
        ci = "" if e["ci_low"] is None else f"[{sfmt(e['ci_low'])}, {sfmt(e['ci_high'])}]"
        keys.append(f"{metric_header(name)} {fmt.label}".strip())
        rows.append([fmt(e["mean_a"]), fmt(e["mean_b"]), sfmt(e["mean_diff"]), percent_sig(e["relative_diff"]), ci,
                     str(e["b_wins"]), str(e["b_losses"]), str(e["ties"])])
    columns = [Column(h, [row[i] for row in rows], group=int(i >= 4)) for i, h in enumerate(_METRIC_COLS[1:])]
    return Column("metric", keys, justify="left"), columns


def write_compare_table(r: dict[str, Any], out: TextIO, *, terminal: bool = False) -> None:
    """The comparison for people: the headline, the metrics table, the pairs that changed most
    (every number whole, the tables reshaped to fit the terminal: :mod:`hlcli.render.table`)."""
    console = table_console(out, terminal=terminal)
    for line in _headline(r):
        print_sentence(console, line)  # wrapped between words on a narrow terminal, never inside a path
    key, columns = _metric_columns(r)
    fit_table(console, "hlcli compare", key, columns, moved="intervals and counts", full="-f json")
    changed = r["changed_most"]["pairs"]
    if changed:
        # A, B and B − A in one format (one scale): the columns are compared with each other.
        by = r["changed_most"]["by"]
        fmt = metric_format(by, [c[k] for c in changed for k in ("a", "b", "diff")])
        sfmt = replace(fmt, signed=True)
        unit = f"\n{fmt.label}" if fmt.label else ""
        columns = [Column("A" + unit, [fmt(c["a"]) for c in changed]), Column("B" + unit, [fmt(c["b"]) for c in changed]),
                   Column("B − A" + unit, [sfmt(c["diff"]) for c in changed]),
                   Column("relative", [percent_sig(c["relative_diff"]) for c in changed])]
        fit_table(console, f"pairs that changed most ({r['changed_most']['by']})",
                  Column("pair", [c["key"] for c in changed], justify="left"), columns, moved="some columns",
                  full="-f json")
    for label, keys in (("only in A", r["pairs"]["only_a"]), ("only in B", r["pairs"]["only_b"])):
        if keys:
            print_sentence(console, f"{label} (not compared): " + ", ".join(keys))


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
    write_in(fmt, {"json": lambda: write_json(r, out), "markdown": lambda: write_compare_markdown(r, out),
                   "table": lambda: write_compare_table(r, out, terminal=terminal)})
