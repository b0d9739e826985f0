"""Render a run: Rich table, CSV, JSON, JSON Lines and Markdown. Writers take a text stream;
nothing here prints on its own. Numbers are written with Python's shortest round-trip ``repr``
in CSV/JSON/JSONL (so they parse back bit for bit) and rounded only in table and Markdown."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from typing import Any, TextIO

from .results import Missing, PairResult, Skipped, metric_names, summarize

SCHEMA_VERSION = 1
FORMATS = ("table", "csv", "json", "jsonl", "markdown")


@dataclass
class Run:
    """Everything a report needs: how the run was made and what it found."""

    settings: dict[str, Any]
    environment: dict[str, Any]
    layer_names: list[str]
    pairs: list[PairResult] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    missing: Missing = field(default_factory=Missing)
    ignored: list[str] = field(default_factory=list)
    gate: dict[str, Any] | None = None
    worst: int = 5

    @property
    def complete(self) -> bool:
        """True only when every file found was scored: nothing skipped, nothing unmatched."""
        return not self.skipped and not len(self.missing)

    def sorted_pairs(self) -> list[PairResult]:
        return sorted(self.pairs, key=lambda p: p.key)

    def summary(self) -> dict[str, Any]:
        s = summarize(self.pairs, self.layer_names, worst=self.worst)
        s["skipped"] = len(self.skipped)
        s["missing"] = len(self.missing)
        s["ignored"] = len(self.ignored)
        s["complete"] = self.complete
        return s

    def document(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "tool": "hlcli",
            **self.environment,
            "settings": self.settings,
            "complete": self.complete,
            "pairs": [p.as_dict() for p in self.sorted_pairs()],
            "skipped": [s.as_dict() for s in sorted(self.skipped, key=lambda s: s.key)],
            "missing": self.missing.as_dict(),
            "ignored": list(self.ignored),
            "summary": self.summary(),
            "gate": self.gate,
        }


def dumps_strict(obj: Any, **kwargs: Any) -> str:
    """JSON with strict number rules: a NaN or infinity is a ``ValueError``, never written."""
    return json.dumps(obj, allow_nan=False, ensure_ascii=False, **kwargs)


# -- CSV --------------------------------------------------------------------------------------

def csv_header(layer_names: list[str]) -> list[str]:
    """Fixed column order (documented in the README)."""
    return ["key", "status", "width", "height", *metric_names(layer_names), "restored", "gt",
            "size_policy", "reason"]


def _num(x: float) -> str:
    if not math.isfinite(x):
        raise ValueError(f"non-finite value {x!r} cannot be written")
    return repr(float(x))


def csv_pair_row(p: PairResult, layer_names: list[str]) -> list[str]:
    vals = [_num(p.metric(m)) for m in metric_names(layer_names)]
    return [p.key, "ok", str(p.width), str(p.height), *vals, p.restored, p.gt, p.size_policy or "", ""]


def write_csv(run: Run, out: TextIO) -> None:
    w = csv.writer(out, lineterminator="\n")
    names = run.layer_names
    blanks = [""] * len(metric_names(names))
    w.writerow(csv_header(names))
    for p in run.sorted_pairs():
        w.writerow(csv_pair_row(p, names))
    for s in sorted(run.skipped, key=lambda s: s.key):
        w.writerow([s.key, "skipped", "", "", *blanks, "", "", "", f"{s.path}: {s.reason}"])
    for path in run.missing.restored_only:
        w.writerow(["", "restored-only", "", "", *blanks, path, "", "", "no ground truth file"])
    for path in run.missing.gt_only:
        w.writerow(["", "gt-only", "", "", *blanks, "", path, "", "no restored file"])


# -- JSON / JSONL -----------------------------------------------------------------------------

def write_json(run: Run, out: TextIO) -> None:
    out.write(dumps_strict(run.document(), indent=2))
    out.write("\n")


class JsonlStream:
    """JSON Lines, one object per line, flushed as written so downstream tools see each pair as
    soon as it is scored. Lines carry ``"type"``: ``header`` (settings and versions), ``pair``,
    ``skipped``, ``missing``, then ``summary`` last, or ``aborted`` if the run failed."""

    def __init__(self, out: TextIO):
        self.out = out

    def emit(self, record: dict[str, Any]) -> None:
        self.out.write(dumps_strict(record) + "\n")
        self.out.flush()

    def header(self, run: Run) -> None:
        self.emit({"type": "header", "schema_version": SCHEMA_VERSION, "tool": "hlcli",
                   **run.environment, "settings": run.settings})

    def missing(self, run: Run) -> None:
        for path in run.missing.restored_only:
            self.emit({"type": "missing", "side": "gt", "restored": path})
        for path in run.missing.gt_only:
            self.emit({"type": "missing", "side": "restored", "gt": path})

    def pair(self, p: PairResult) -> None:
        self.emit({"type": "pair", **p.as_dict()})

    def skipped(self, s: Skipped) -> None:
        self.emit({"type": "skipped", **s.as_dict()})

    def summary(self, run: Run) -> None:
        self.emit({"type": "summary", "complete": run.complete, "ignored": list(run.ignored),
                   **run.summary(), "gate": run.gate})

    def aborted(self, message: str, exit_code: int) -> None:
        self.emit({"type": "aborted", "error": message, "exit_code": exit_code})


# -- Markdown ---------------------------------------------------------------------------------

def _fmt(x: float | None, digits: int = 6) -> str:
    return "" if x is None else f"{x:.{digits}g}"


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def write_markdown(run: Run, out: TextIO) -> None:
    """A CI-summary style report: settings, summary table, gates, worst pairs, problems."""
    s = run.settings
    summ = run.summary()
    lines = ["## hlcli score", ""]
    layers = ", ".join(f"{l['name']}×{l['weight']:g}" for l in s.get("layers", []))
    lines.append(f"λ = {s.get('lambda')} · layers {layers} · precision {s.get('precision')} · "
                 f"device {run.environment.get('device', {}).get('type', '?')} · "
                 f"{summ['count']} pairs scored" + ("" if run.complete else " · **incomplete**"))
    lines += ["", "| metric | mean | median | std | min | max | p95 |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, st in summ["metrics"].items():
        lines.append(f"| {name} | " + " | ".join(_fmt(st[k]) for k in ("mean", "median", "std", "min", "max", "p95")) + " |")
    if run.gate:
        lines += ["", "### Gates", "", "| gate | observed | result |", "|---|---:|---|"]
        for g in run.gate.get("checks", []):
            lines.append(f"| `{_md_escape(g['expression'])}` | {_fmt(g.get('observed'))} | "
                         f"{'✅ pass' if g['passed'] else '❌ fail'} |")
    if summ["worst"]:
        lines += ["", "### Worst pairs by hybrid", "", "| pair | hybrid | L1 | perceptual |", "|---|---:|---:|---:|"]
        for w in summ["worst"]:
            lines.append(f"| {_md_escape(w['key'])} | {_fmt(w['hybrid'])} | {_fmt(w['l1'])} | {_fmt(w['perceptual'])} |")
    if run.skipped or len(run.missing):
        lines += ["", "### Not scored", ""]
        lines += [f"- skipped `{_md_escape(x.key)}`: {_md_escape(x.reason)}" for x in run.skipped]
        lines += [f"- no ground truth for `{_md_escape(p)}`" for p in run.missing.restored_only]
        lines += [f"- no restored file for `{_md_escape(p)}`" for p in run.missing.gt_only]
    out.write("\n".join(lines) + "\n")


# -- Rich table -------------------------------------------------------------------------------

def write_table(run: Run, out: TextIO, *, terminal: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(file=out, force_terminal=terminal, width=None if terminal else 160,
                      highlight=False, soft_wrap=False)
    names = metric_names(run.layer_names)
    pairs = Table(title="hlcli score", title_justify="left")
    pairs.add_column("pair", overflow="fold")
    pairs.add_column("size", justify="right")
    for m in names:
        pairs.add_column(m, justify="right")
    for p in run.sorted_pairs():
        pairs.add_row(p.key, f"{p.width}x{p.height}", *(_fmt(p.metric(m)) for m in names))
    console.print(pairs)
    summ = run.summary()
    st = Table(title=f"summary of {summ['count']} pairs (λ = {run.settings.get('lambda')})",
               title_justify="left")
    st.add_column("metric")
    for k in ("mean", "median", "std", "min", "max", "p95"):
        st.add_column(k, justify="right")
    for name, vals in summ["metrics"].items():
        st.add_row(name, *(_fmt(vals[k]) for k in ("mean", "median", "std", "min", "max", "p95")))
    console.print(st)
    if summ["worst"]:
        console.print("worst by hybrid: " + ", ".join(f"{w['key']} ({_fmt(w['hybrid'], 4)})" for w in summ["worst"]))
    if run.gate:
        for g in run.gate.get("checks", []):
            mark = "[green]pass[/]" if g["passed"] else "[red]FAIL[/]"
            console.print(f"gate {g['expression']}: observed {_fmt(g.get('observed'))} {mark}")
    for x in run.skipped:
        console.print(f"[yellow]skipped[/] {x.key}: {x.reason}")
    for p in run.missing.restored_only:
        console.print(f"[yellow]no ground truth[/] for {p}")
    for p in run.missing.gt_only:
        console.print(f"[yellow]no restored file[/] for {p}")
    if not run.complete:
        console.print(f"[bold yellow]incomplete:[/] {len(run.skipped)} skipped, {len(run.missing)} unmatched")


def write_report(run: Run, fmt: str, out: TextIO, *, terminal: bool = False) -> None:
    """Write the whole report in ``fmt`` (jsonl is streamed by the CLI, see JsonlStream)."""
    if fmt == "csv":
        write_csv(run, out)
    elif fmt == "json":
        write_json(run, out)
    elif fmt == "markdown":
        write_markdown(run, out)
    elif fmt == "table":
        write_table(run, out, terminal=terminal)
    else:
        raise ValueError(f"unknown format {fmt!r}")
