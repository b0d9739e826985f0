"""A calibration of λ (``hlcli calibrate``) as a Rich table, JSON or Markdown."""

from __future__ import annotations

from typing import Any, TextIO

from .common import (
    md_code,
    md_escape,
    md_row,
    num,
    print_command,
    print_sentence,
    table_console,
    write_in,
    write_json,
)
from ..text import plural
from .table import Column, fit_table, number_column

FORMATS = ("table", "json", "markdown")
_COLS = ("term", "mean", "weight", "now", "share", "calibrated", "share ")


def share_text(x: float | None) -> str:
    """A share in percent, 3 significant digits (``41.7%``); None is empty."""
    return "" if x is None else f"{x * 100:.3g}%"


def _rows(r: dict[str, Any]) -> list[list[str]]:
    now, cal = r["terms"], r["calibrated_terms"]
    rows = [["L1", num(now["l1"]["mean"]), "", num(now["l1"]["value"]), share_text(now["l1"]["share"]),
             num(cal["l1"]["value"]), share_text(cal["l1"]["share"])],
            ["λ·perceptual", num(now["perceptual"]["mean"]), "", num(now["perceptual"]["value"]),
             share_text(now["perceptual"]["share"]), num(cal["perceptual"]["value"]),
             share_text(cal["perceptual"]["share"])]]
    for name, t in now["layers"].items():
        c = cal["layers"][name]
        weight = num(t["weight"]) if t["weight"] == c["weight"] else f"{num(t['weight'])} → {num(c['weight'])}"
        rows.append([f"  λ·w·{name}", num(t["mean"]), weight, num(t["value"]), share_text(t["share"]),
                     num(c["value"]), share_text(c["share"])])
    rows.append(["hybrid", "", "", num(now["hybrid"]["value"]), share_text(1.0) if now["hybrid"]["value"] else "",
                 num(cal["hybrid"]["value"]), share_text(1.0)])
    return rows


def _distribution(d: dict[str, Any]) -> str:
    if not d["count"]:
        return "no pair has a non-zero hybrid"
    text = f"median {share_text(d['median'])}, p5 {share_text(d['p5'])}, p95 {share_text(d['p95'])} over {plural(d['count'], 'pair')}"
    n = d["undefined"]
    return text + ("" if not n else " (1 pair scores 0 and has no share)" if n == 1
                   else f" ({n} pairs score 0 and have no share)")


def summary_lines(r: dict[str, Any]) -> list[str]:
    run = r["run"]
    lines = [f"run: {run['path'] or '(in memory)'}, {plural(run['pairs'], 'pair')}, λ = {num(r['current_lambda'])}",
             f"λ for a perceptual share of {share_text(r['share'])} of the mean hybrid: {num(r['lambda'])} "
             f"(= {num(r['share'])} / (1 − {num(r['share'])}) · mean L1 / mean perceptual)",
             f"per-pair perceptual share at λ = {num(r['current_lambda'])}: {_distribution(r['pair_share']['current'])}",
             f"per-pair perceptual share at λ = {num(r['lambda'])}: {_distribution(r['pair_share']['calibrated'])}"]
    if r["layer_weights"] is not None:
        lines.append("balanced layer weights (every layer contributes equally; the mean perceptual is unchanged): "
                     + ", ".join(f"{n} {num(w)}" for n, w in r["layer_weights"]["weights"].items()))
    lines.append(f"score with: hlcli score RESTORED GT {r['options']}")
    return lines


def write_calibrate_table(r: dict[str, Any], out: TextIO, *, terminal: bool = False) -> None:
    """The composition table (every number whole, reshaped to fit: :mod:`hlcli.render.table`),
    then the calibration in lines."""
    console = table_console(out, terminal=terminal)
    now, cal = r["terms"], r["calibrated_terms"]
    terms = [("L1", now["l1"], cal["l1"]), ("λ·perceptual", now["perceptual"], cal["perceptual"]),
             *((f"λ·w·{n}", t, cal["layers"][n]) for n, t in now["layers"].items()),
             ("hybrid", {**now["hybrid"], "share": 1.0 if now["hybrid"]["value"] else None},
              {**cal["hybrid"], "share": 1.0})]
    weights = [row[2] for row in _rows(r)]
    columns = [number_column("mean", [t.get("mean") for _, t, _ in terms]), Column("weight", weights),
               number_column(f"λ = {num(r['current_lambda'])}", [t["value"] for _, t, _ in terms]),
               Column("share", [share_text(t["share"]) for _, t, _ in terms]),
               number_column(f"λ = {num(r['lambda'])}", [c["value"] for _, _, c in terms], group=1),
               Column("share ", [share_text(c["share"]) for _, _, c in terms], group=1)]
    fit_table(console, "hlcli calibrate: the mean hybrid now and at the calibrated λ",
              Column("term", [name for name, _, _ in terms], justify="left"), columns,
              moved="the calibrated columns", full="-f json")
    *sentences, command = summary_lines(r)
    for line in sentences:
        print_sentence(console, line)
    print_command(console, command)  # pasted as it is: one line at any width


def write_calibrate_markdown(r: dict[str, Any], out: TextIO) -> None:
    lines = ["## hlcli calibrate", "", md_row([c.strip() for c in _COLS]), "|---|" + "---:|" * (len(_COLS) - 1)]
    lines += [md_row([md_escape(row[0].strip()), *row[1:]]) for row in _rows(r)]
    lines += ["", *(f"- {md_escape(line)}" for line in summary_lines(r)[:-1]),
              f"- score with: {md_code('hlcli score RESTORED GT ' + r['options'])}"]
    out.write("\n".join(lines) + "\n")


def write_calibrate(r: dict[str, Any], fmt: str, out: TextIO, *, terminal: bool = False) -> None:
    write_in(fmt, {"json": lambda: write_json(r, out), "markdown": lambda: write_calibrate_markdown(r, out),
                   "table": lambda: write_calibrate_table(r, out, terminal=terminal)})
