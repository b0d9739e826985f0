"""``hlcli tradeoff``: the λ trade-off between runs, and the perception–distortion plane of two
metrics (``--x``, ``--y``), as a Rich table, JSON, CSV or Markdown,
and as a plot (matplotlib, an optional extra)."""

from __future__ import annotations

import csv
from typing import Any, TextIO
import os
from pathlib import Path

from ..runs.documents import OVERRIDE_FLAG
from .common import exact, md_escape, md_row, num, print_sentence, table_console, write_in, write_json
from ..text import plural
from ..metrics.registry import get
from .table import Column, fit_table, fixed, number_column
from ..atomic import atomic_path
from ..errors import HlcliEnvironmentError, InputError

FORMATS = ("table", "json", "csv", "markdown")
_COLS = ("run", "mean L1", "mean perceptual", "hybrid at λ", "Pareto", "best for λ in")
CSV_HEADER = ("name", "path", "lambda", "pairs", "l1", "perceptual", "hybrid", "pareto", "best_lambda_lo",
              "best_lambda_hi")


def interval_text(iv: list[Any] | None) -> str:
    """``[lo, hi)`` for people: ``[0, 0.0123)``, ``[0.0123, ∞)``, or ``never``."""
    if iv is None:
        return "never"
    return f"[{num(iv[0])}, {'∞' if iv[1] is None else num(iv[1])})"


def _row(r: dict[str, Any], run: dict[str, Any]) -> list[str]:
    best = " (best)" if run["name"] == r["best"] else ""
    return [run["name"], num(run["l1"]), num(run["perceptual"]), num(run["hybrid"]) + best,
            "yes" if run["pareto"] else "no", interval_text(run["best_lambda"])]


def headline(r: dict[str, Any]) -> list[str]:
    p = r["pairs"]
    lines = [f"{plural(len(r['runs']), 'run')}, {plural(p['common'], 'pair')} in all of them; means over those pairs",
             "best for λ in [lo, hi): lowest mean hybrid = mean L1 + λ · mean perceptual on that interval"]
    if r["lambda"] is None:
        lines.append("the runs have different λ: give --lambda for the hybrid column")
    else:
        lines.append(f"hybrid at λ = {num(r['lambda'])}; best: {r['best']}")
    lines += [f"tie (equal means, broken by name): {', '.join(t)}" for t in r["ties"]]
    lines += [f"settings differ (compared anyway with {OVERRIDE_FLAG}): {d}" for d in r["settings_differences"]]
    lines += [f"only in {name} (not used): {', '.join(keys)}" for name, keys in p["only_in"].items()]
    return lines


def _per_pair_rows(r: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    names = [run["name"] for run in r["runs"]]
    rows = [[num(e["lambda"]), *(f"{e['best'][n] * 100:.3g}%" for n in names), str(e["ties"]), "; ".join(e["why"])]
            for e in r["per_pair"]]
    return ["λ", *names, "tied pairs", "why this λ"], rows


def write_tradeoff_table(r: dict[str, Any], out: TextIO, *, terminal: bool = False) -> None:
    """The runs (every number whole, reshaped to fit: :mod:`hlcli.render.table`), and with
    ``--per-pair`` the share of pairs each run is best on."""
    console = table_console(out, terminal=terminal)
    for line in headline(r):
        print_sentence(console, line)
    runs = r["runs"]
    hybrid = number_column("hybrid at λ", [run["hybrid"] for run in runs])
    hybrid.cells = [c + (" *" if run["name"] == r["best"] else "  ") for c, run in zip(hybrid.cells, runs)]
    columns = [number_column("mean L1", [run["l1"] for run in runs]),
               number_column("mean perceptual", [run["perceptual"] for run in runs]), hybrid,
               Column("Pareto", ["yes" if run["pareto"] else "no" for run in runs], justify="left"),
               Column("best for λ in", [interval_text(run["best_lambda"]) for run in runs])]
    fit_table(console, "hlcli tradeoff", Column("run", [run["name"] for run in runs], justify="left"), columns,
              moved="some columns", full="-f json",
              notes=[f"* lowest mean hybrid at λ = {num(r['lambda'])}"] if r["best"] else [])
    if r["per_pair"]:
        cols, rows = _per_pair_rows(r)
        columns = [Column(c, [row[i] for row in rows], justify="left" if i == len(cols) - 1 else "right")
                   for i, c in enumerate(cols) if i]
        fit_table(console, "share of pairs on which each run is best", Column("λ", [row[0] for row in rows]),
                  columns, moved="some columns", full="-f json")


def write_tradeoff_markdown(r: dict[str, Any], out: TextIO) -> None:
    lines = ["## hlcli tradeoff", "", *(f"{md_escape(line)}  " for line in headline(r)), "",
             md_row(list(_COLS)), "|---|---:|---:|---:|---|---:|"]
    lines += [md_row([md_escape(c) for c in _row(r, run)]) for run in r["runs"]]
    if r["per_pair"]:
        cols, rows = _per_pair_rows(r)
        lines += ["", "### Share of pairs on which each run is best", "", md_row([md_escape(c) for c in cols]),
                  "|" + "---:|" * (len(cols) - 1) + "---|"]
        lines += [md_row([md_escape(c) for c in row]) for row in rows]
    out.write("\n".join(lines) + "\n")


def write_tradeoff_csv(r: dict[str, Any], out: TextIO) -> None:
    w = csv.writer(out, lineterminator="\n")
    w.writerow(CSV_HEADER)
    for run in r["runs"]:
        lo, hi = run["best_lambda"] or (None, None)
        w.writerow([run["name"], run["path"] or "", exact(run["lambda"]), run["pairs"], exact(run["l1"]),
                    exact(run["perceptual"]), "" if run["hybrid"] is None else exact(run["hybrid"]),
                    "true" if run["pareto"] else "false", "" if lo is None else exact(lo),
                    "" if hi is None else exact(hi)])


def write_tradeoff(r: dict[str, Any], fmt: str, out: TextIO, *, terminal: bool = False) -> None:
    write_in(fmt, {"json": lambda: write_json(r, out), "markdown": lambda: write_tradeoff_markdown(r, out),
                   "csv": lambda: write_tradeoff_csv(r, out),
                   "table": lambda: write_tradeoff_table(r, out, terminal=terminal)})


PLOT_FORMATS = (".png", ".svg", ".pdf")


def _plot_target(path: str, example: str) -> Path:
    """``path`` as a plot file: a known suffix, an existing folder (else ``InputError``)."""
    target = Path(path)
    if target.suffix.lower() not in PLOT_FORMATS:
        raise InputError("the plot's file name must end in " + ", ".join(PLOT_FORMATS), path,
                         f"name the file e.g. {example}")
    if not target.parent.is_dir():
        raise InputError("the plot's directory does not exist", path, "create it first")
    return target


def _pyplot() -> Any:
    try:
        import matplotlib  # lazy: matplotlib is an optional extra (hlcli[plot])
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise HlcliEnvironmentError("--plot needs matplotlib, which is not installed", None,
                                    "pip install 'hlcli[plot]'") from exc
    return plt


def _save(plt: Any, fig: Any, target: Path) -> None:
    """Write ``fig`` atomically to ``target`` (format from its suffix), then close it."""
    try:
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format=target.suffix.lower()[1:], dpi=150, bbox_inches="tight")
            umask = os.umask(0)
            os.umask(umask)
            tmp.chmod(0o666 & ~umask)  # an ordinary file, not mkstemp's private 0600
    finally:
        plt.close(fig)


def plot_tradeoff(r: dict[str, Any], path: str) -> None:
    """The runs as points (mean perceptual on x, mean L1 on y), labelled; the Pareto front
    through them; the iso-hybrid line through the best run at ``r["lambda"]``. Written
    atomically to ``path`` (``.png``, ``.svg`` or ``.pdf``) with matplotlib's Agg backend."""
    if r["lambda"] is None:
        raise InputError("the runs have different λ, so the plot has no iso-hybrid line to draw", path,
                         "choose one with --lambda")
    target = _plot_target(path, "tradeoff.png")
    plt = _pyplot()
    _save(plt, _figure(plt, r), target)


def _figure(plt: Any, r: dict[str, Any]) -> Any:
    runs, lam = r["runs"], r["lambda"]
    fig, ax = plt.subplots(figsize=(7, 5))
    xs, ys = [run["perceptual"] for run in runs], [run["l1"] for run in runs]
    front = sorted((run for run in runs if run["pareto"]), key=lambda run: (run["perceptual"], run["l1"]))
    ax.plot([f["perceptual"] for f in front], [f["l1"] for f in front], "-", color="tab:blue", lw=1.5,
            zorder=1, label="Pareto front")
    others = [run for run in runs if not run["pareto"]]
    ax.scatter([f["perceptual"] for f in front], [f["l1"] for f in front], color="tab:blue", zorder=3,
               label="on the front")
    if others:
        ax.scatter([o["perceptual"] for o in others], [o["l1"] for o in others], color="tab:gray", marker="s",
                   zorder=3, label="dominated")
    for run in runs:
        ax.annotate(run["name"], (run["perceptual"], run["l1"]), textcoords="offset points", xytext=(6, 6),
                    fontsize=9)
    best = next(run for run in runs if run["name"] == r["best"])
    span_x = (max(xs) - min(xs)) or max(xs) or 1.0
    x0, x1 = max(0.0, min(xs) - 0.15 * span_x), max(xs) + 0.15 * span_x
    level = best["l1"] + lam * best["perceptual"]
    ax.plot([x0, x1], [level - lam * x0, level - lam * x1], "--", color="tab:red", lw=1, zorder=2,
            label=f"iso-hybrid through {best['name']} at λ = {num(lam)}")
    span_y = (max(ys) - min(ys)) or max(ys) or 1.0
    ax.set_xlim(x0, x1)
    ax.set_ylim(min(ys) - 0.15 * span_y, max(ys) + 0.15 * span_y)
    ax.set_xlabel("mean perceptual (Σ w_l · perceptual_l)")
    ax.set_ylabel("mean L1")
    ax.set_title(f"hlcli tradeoff: {plural(r['pairs']['common'], 'common pair')}; lower-left is better")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return fig


# The perception–distortion plane (hlcli tradeoff --x METRIC --y METRIC): pair means or set values.


def axis_title(a: dict[str, Any]) -> str:
    """``PSNR (dB), higher is better; distortion`` / ``FID, lower is better; perception``."""
    unit = f" ({a['unit']})" if a["unit"] else ""
    where = "set value" if a["scope"] == "set" else "mean over the common pairs"
    return f"{a['label']}{unit}, {'higher' if a['higher_is_better'] else 'lower'} is better ({a['kind']}; {where})"


def _coordinate(axis: dict[str, Any], value: float) -> str:
    """A point's coordinate as the metric's other views show it: its fixed decimals where the
    registry has them (PSNR 32.037, FID 0.0536), else :func:`num`."""
    decimals = get(axis["metric"]).decimals
    return num(value) if decimals is None else fixed(value, decimals)


def _rows(r: dict[str, Any]) -> list[list[str]]:
    return [[run["name"], _coordinate(r["x"], run["x"]), _coordinate(r["y"], run["y"]), "yes" if run["pareto"] else "no",
             ", ".join(run["dominates"]) or "-"] for run in r["runs"]]


def _header(r: dict[str, Any]) -> list[str]:
    def h(a: dict[str, Any]) -> str:
        return f"{a['label']}{'↑' if a['higher_is_better'] else '↓'}" + (f" {a['unit']}" if a["unit"] else "")
    return ["run", h(r["x"]), h(r["y"]), "Pareto", "dominates"]


def write_plane_table(r: dict[str, Any], out: TextIO) -> None:
    rows = [_header(r), *_rows(r)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    out.write(f"{plural(len(r['runs']), 'run')} on the plane; x: {axis_title(r['x'])}; y: {axis_title(r['y'])}\n")
    for row in rows:
        out.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() + "\n")
    if r.get("note"):
        out.write(f"note: {r['note']}\n")


def write_plane_markdown(r: dict[str, Any], out: TextIO) -> None:
    out.write(f"x: {md_escape(axis_title(r['x']))}; y: {md_escape(axis_title(r['y']))}\n\n")
    out.write(md_row(_header(r)) + "\n" + md_row(["---"] * 5) + "\n")
    for row in _rows(r):
        out.write(md_row([md_escape(c) for c in row]) + "\n")


def write_plane_csv(r: dict[str, Any], out: TextIO) -> None:
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["name", "path", r["x"]["metric"], r["y"]["metric"], "pareto", "dominates"])
    for run in r["runs"]:
        w.writerow([run["name"], run["path"] or "", exact(run["x"]), exact(run["y"]),
                    "true" if run["pareto"] else "false", " ".join(run["dominates"])])


def write_plane(r: dict[str, Any], fmt: str, out: TextIO, *, terminal: bool = False) -> None:
    write_in(fmt, {"json": lambda: write_json(r, out), "markdown": lambda: write_plane_markdown(r, out),
                   "csv": lambda: write_plane_csv(r, out), "table": lambda: write_plane_table(r, out)})


def plot_plane(r: dict[str, Any], path: str) -> None:
    """The runs as labelled points, the Pareto front through them (in the axes' directions), each
    axis named by metric, unit and the direction of better; written atomically to ``path``."""
    target = _plot_target(path, "plane.png")
    plt = _pyplot()
    _save(plt, _plane_figure(plt, r), target)


def _plane_figure(plt: Any, r: dict[str, Any]) -> Any:
    runs = r["runs"]
    fig, ax = plt.subplots(figsize=(7, 5))
    front = sorted((run for run in runs if run["pareto"]), key=lambda run: (run["x"], run["y"]))
    ax.plot([f["x"] for f in front], [f["y"] for f in front], "-", color="tab:blue", lw=1.5, label="Pareto front")
    ax.scatter([f["x"] for f in front], [f["y"] for f in front], color="tab:blue", zorder=3, label="on the front")
    others = [run for run in runs if not run["pareto"]]
    if others:
        ax.scatter([o["x"] for o in others], [o["y"] for o in others], color="tab:gray", marker="s", zorder=3,
                   label="dominated")
    for run in runs:
        label = run["name"] + (f" (λ={num(run['lambda'])})" if run.get("lambda") is not None else "")
        ax.annotate(label, (run["x"], run["y"]), textcoords="offset points", xytext=(6, 6), fontsize=9)
    ax.set_xlabel(axis_title(r["x"]))
    ax.set_ylabel(axis_title(r["y"]))
    better = ("right" if r["x"]["higher_is_better"] else "left", "top" if r["y"]["higher_is_better"] else "bottom")
    ax.set_title(f"perception–distortion plane: {plural(r['pairs']['common'], 'common pair')}; "
                 f"{better[1]}-{better[0]} is better")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return fig
