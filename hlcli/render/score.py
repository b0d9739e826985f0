"""A scoring run as a Rich table, CSV, JSON, JSON Lines or Markdown (see docs/formats.md)."""

from __future__ import annotations

import csv
from typing import Any, TextIO

from ..results import PairResult, Run, Skipped, metric_names
from . import gate as gate_render
from .common import dumps_strict, exact, md_code, num, md_escape, table_console, write_json

FORMATS = ("table", "csv", "json", "jsonl", "markdown")


# -- CSV --------------------------------------------------------------------------------------

def csv_header(layer_names: list[str]) -> list[str]:
    """Fixed column order (documented in the README)."""
    return ["key", "status", "width", "height", *metric_names(layer_names), "restored", "gt",
            "size_policy", "reason"]


def csv_pair_row(p: PairResult, layer_names: list[str]) -> list[str]:
    vals = [exact(p.metric(m)) for m in metric_names(layer_names)]
    return [p.key, "ok", str(p.width), str(p.height), *vals, p.restored, p.gt, p.size_policy or "", ""]


SUMMARY_CSV_HEADER = ["metric", "count", "mean", "median", "std", "min", "max", "p50", "p90", "p95", "p99"]


def write_summary_csv(run: Run, out: TextIO) -> None:
    """``--summary-only``: one row per metric (fixed columns, empty cells when undefined)."""
    w = csv.writer(out, lineterminator="\n")
    w.writerow(SUMMARY_CSV_HEADER)
    for name, st in run.summary()["metrics"].items():
        w.writerow([name, str(st["count"]), *("" if st[k] is None else exact(st[k]) for k in SUMMARY_CSV_HEADER[2:])])


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

def write_score_json(run: Run, out: TextIO, *, summary_only: bool = False) -> None:
    write_json(run.document(summary_only=summary_only), out)


class JsonlStream:
    """JSON Lines, one object per line, flushed as written so downstream tools see each pair as
    soon as it is scored. Lines carry ``"type"``: ``header`` (settings and versions), ``pair``,
    ``skipped``, ``missing``, then ``summary`` last, or ``aborted`` if the run failed. With
    ``summary_only`` no ``pair`` lines are written; one ``metric`` line per metric precedes the
    summary. Each line validates against ``#/$defs/jsonl_line`` of score.schema.json."""

    def __init__(self, out: TextIO, *, summary_only: bool = False):
        self.out = out
        self.summary_only = summary_only

    def emit(self, record: dict[str, Any]) -> None:
        self.out.write(dumps_strict(record) + "\n")
        self.out.flush()

    def header(self, run: Run) -> None:
        self.emit({"type": "header", **run.header(), **({"summary_only": True} if self.summary_only else {})})

    def missing(self, run: Run) -> None:
        for path in run.missing.restored_only:
            self.emit({"type": "missing", "side": "gt", "restored": path})
        for path in run.missing.gt_only:
            self.emit({"type": "missing", "side": "restored", "gt": path})

    def pair(self, p: PairResult) -> None:
        if not self.summary_only:
            self.emit({"type": "pair", **p.as_dict()})

    def skipped(self, s: Skipped) -> None:
        self.emit({"type": "skipped", **s.as_dict()})

    def summary(self, run: Run) -> None:
        summary = run.summary()
        if self.summary_only:
            for name, st in summary["metrics"].items():
                self.emit({"type": "metric", "metric": name, **st})
        self.emit({"type": "summary", **summary, "gate": run.gate})

    def aborted(self, message: str, exit_code: int) -> None:
        self.emit({"type": "aborted", "error": message, "exit_code": exit_code})


# -- Markdown ---------------------------------------------------------------------------------

def write_markdown(run: Run, out: TextIO, *, summary_only: bool = False) -> None:
    """A CI-summary style report (e.g. for ``$GITHUB_STEP_SUMMARY``): status, settings, summary
    table, gates and regressions, worst pairs (not with ``summary_only``), what was not scored."""
    s = run.settings
    summ = run.summary()
    status = "" if not run.gate else (" · ✅ gates passed" if run.gate["passed"] else " · ❌ gates failed")
    lines = [f"## hlcli score{status}", ""]
    layers = ", ".join(f"{l['name']}×{l['weight']:g}" for l in s.get("layers", []))
    weights = s.get("weights", {})
    official = "official ImageNet" if weights.get("official_imagenet1k_v1") else "**not** the official ImageNet weights"
    lines.append(f"**{summ['count']} pairs scored** · λ = {s.get('lambda')} · layers {layers} · precision "
                 f"{s.get('precision')} · device {run.environment.get('device', {}).get('type', '?')} · weights "
                 f"`{str(weights.get('sha256', '?'))[:12]}` ({official}) · hlcli {run.environment.get('hlcli_version', '?')}")
    if not run.complete:
        lines += ["", f"**Incomplete**: {len(run.skipped)} skipped, {len(run.missing)} unmatched"]
    stats = ("mean", "median", "std", "min", "max", "p95", "p99")
    lines += ["", "| metric | " + " | ".join(stats) + " |", "|---|" + "---:|" * len(stats)]
    for name, st in summ["metrics"].items():
        lines.append(f"| {name} | " + " | ".join(num(st[k]) for k in stats) + " |")
    if run.gate:
        lines += gate_render.markdown_lines(run.gate)
    if summ["worst"] and not summary_only:
        lines += ["", "### Worst pairs by hybrid", "", "| pair | hybrid | L1 | perceptual |", "|---|---:|---:|---:|"]
        for w in summ["worst"]:
            lines.append(f"| {md_code(w['key'])} | {num(w['hybrid'])} | {num(w['l1'])} | {num(w['perceptual'])} |")
    if run.skipped or len(run.missing):
        lines += ["", "### Not scored", ""]
        lines += [f"- skipped {md_code(x.key)}: {md_escape(x.reason)}" for x in run.skipped]
        lines += [f"- no ground truth for {md_code(p)}" for p in run.missing.restored_only]
        lines += [f"- no restored file for {md_code(p)}" for p in run.missing.gt_only]
    out.write("\n".join(lines) + "\n")


# -- Rich table -------------------------------------------------------------------------------

def write_table(run: Run, out: TextIO, *, terminal: bool, summary_only: bool = False) -> None:
    from rich.table import Table

    console = table_console(out, terminal=terminal)
    names = metric_names(run.layer_names)
    if not summary_only:
        pairs = Table(title="hlcli score", title_justify="left")
        pairs.add_column("pair", overflow="fold")
        pairs.add_column("size", justify="right")
        for m in names:
            pairs.add_column(m, justify="right")
        for p in run.sorted_pairs():
            pairs.add_row(p.key, f"{p.width}x{p.height}", *(num(p.metric(m)) for m in names))
        console.print(pairs)
    summ = run.summary()
    st = Table(title=f"summary of {summ['count']} pairs (λ = {run.settings.get('lambda')})",
               title_justify="left")
    st.add_column("metric")
    for k in ("mean", "median", "std", "min", "max", "p95"):
        st.add_column(k, justify="right")
    for name, vals in summ["metrics"].items():
        st.add_row(name, *(num(vals[k]) for k in ("mean", "median", "std", "min", "max", "p95")))
    console.print(st)
    if summ["worst"] and not summary_only:
        console.print("worst by hybrid: " + ", ".join(f"{w['key']} ({num(w['hybrid'], '.4g')})" for w in summ["worst"]),
                      markup=False)
    if run.gate:
        gate_render.print_table(console, run.gate)
    for x in run.skipped:
        console.print(f"[yellow]skipped[/] {x.key}: {x.reason}")
    for p in run.missing.restored_only:
        console.print(f"[yellow]no ground truth[/] for {p}")
    for p in run.missing.gt_only:
        console.print(f"[yellow]no restored file[/] for {p}")
    if not run.complete:
        console.print(f"[bold yellow]incomplete:[/] {len(run.skipped)} skipped, {len(run.missing)} unmatched")


def write_score(run: Run, fmt: str, out: TextIO, *, terminal: bool = False, summary_only: bool = False) -> None:
    """Write the whole report in ``fmt`` (jsonl is streamed by the CLI, see JsonlStream).
    ``summary_only``: no per-pair rows (csv: one row per metric, see SUMMARY_CSV_HEADER)."""
    if fmt == "csv":
        (write_summary_csv if summary_only else write_csv)(run, out)
    elif fmt == "json":
        write_score_json(run, out, summary_only=summary_only)
    elif fmt == "markdown":
        write_markdown(run, out, summary_only=summary_only)
    elif fmt == "table":
        write_table(run, out, terminal=terminal, summary_only=summary_only)
    else:
        raise ValueError(f"unknown format {fmt!r}")
