"""The perception–distortion plane (``hlcli tradeoff --x METRIC --y METRIC``) as a table, JSON,
CSV or Markdown, and as a plot whose axes name the metric, its unit and the direction of better."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any, TextIO

from ..atomic import atomic_path
from ..errors import HlcliEnvironmentError, InputError
from ..text import plural
from .common import exact, md_escape, md_row, num, write_in, write_json

PLOT_FORMATS = (".png", ".svg", ".pdf")


def axis_title(a: dict[str, Any]) -> str:
    """``PSNR (dB), higher is better; distortion`` / ``FID, lower is better; perception``."""
    unit = f" ({a['unit']})" if a["unit"] else ""
    where = "set value" if a["scope"] == "set" else "mean over the common pairs"
    return f"{a['label']}{unit}, {'higher' if a['higher_is_better'] else 'lower'} is better ({a['kind']}; {where})"


def _rows(r: dict[str, Any]) -> list[list[str]]:
    return [[run["name"], num(run["x"]), num(run["y"]), "yes" if run["pareto"] else "no",
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
    target = Path(path)
    if target.suffix.lower() not in PLOT_FORMATS:
        raise InputError("the plot's file name must end in " + ", ".join(PLOT_FORMATS), path,
                         "name the file e.g. plane.png")
    if not target.parent.is_dir():
        raise InputError("the plot's directory does not exist", path, "create it first")
    try:
        import matplotlib  # lazy: matplotlib is an optional extra (hlcli[plot])
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise HlcliEnvironmentError("--plot needs matplotlib, which is not installed", None,
                                    "pip install 'hlcli[plot]'") from exc
    runs = r["runs"]
    fig, ax = plt.subplots(figsize=(7, 5))
    try:
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
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format=target.suffix.lower()[1:], dpi=150, bbox_inches="tight")
            umask = os.umask(0)
            os.umask(umask)
            tmp.chmod(0o666 & ~umask)
    finally:
        plt.close(fig)
