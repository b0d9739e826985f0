"""Render a run: Rich table, CSV, JSON, JSON Lines and Markdown. Writers take a text stream;
nothing here prints on its own. Numbers are written with Python's shortest round-trip ``repr``
in CSV/JSON/JSONL (so they parse back bit for bit) and rounded only in table and Markdown."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from typing import Any, TextIO

from .results import Missing, PairResult, Skipped, format_change, metric_names, summarize

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

    def document(self, *, summary_only: bool = False) -> dict[str, Any]:
        """The JSON document (hlcli/schema/score.schema.json). ``summary_only`` leaves out the
        ``pairs`` array and says so with ``"summary_only": true``."""
        pairs = {"summary_only": True} if summary_only else {"pairs": [p.as_dict() for p in self.sorted_pairs()]}
        return {
            "schema_version": SCHEMA_VERSION,
            "tool": "hlcli",
            **self.environment,
            "settings": self.settings,
            "complete": self.complete,
            **pairs,
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


SUMMARY_CSV_HEADER = ["metric", "count", "mean", "median", "std", "min", "max", "p50", "p90", "p95", "p99"]


def write_summary_csv(run: Run, out: TextIO) -> None:
    """``--summary-only``: one row per metric (fixed columns, empty cells when undefined)."""
    w = csv.writer(out, lineterminator="\n")
    w.writerow(SUMMARY_CSV_HEADER)
    for name, st in run.summary()["metrics"].items():
        w.writerow([name, str(st["count"]), *("" if st[k] is None else _num(st[k]) for k in SUMMARY_CSV_HEADER[2:])])


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

def write_json(run: Run, out: TextIO, *, summary_only: bool = False) -> None:
    out.write(dumps_strict(run.document(summary_only=summary_only), indent=2))
    out.write("\n")


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
        self.emit({"type": "header", "schema_version": SCHEMA_VERSION, "tool": "hlcli",
                   **run.environment, "settings": run.settings,
                   **({"summary_only": True} if self.summary_only else {})})

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

def _fmt(x: float | None, digits: int = 6) -> str:
    return "" if x is None else f"{x:.{digits}g}"


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_code(text: str) -> str:
    return "`" + _md_escape(text).replace("`", "'") + "`"


def _change(delta: float | None, rel: float | None) -> str:
    return "" if delta is None else format_change(delta, rel)


def _md_gate(gate: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    if gate["checks"]:
        lines += ["", "### Gates", "", "| gate | observed | result |", "|---|---:|---|"]
        for g in gate["checks"]:
            observed = "undefined" if g["observed"] is None else _fmt(g["observed"])
            lines.append(f"| {_md_code(g['expression'])} | {observed} | {'✅ pass' if g['passed'] else '❌ fail'} |")
    reg = gate.get("regressions")
    if reg:
        limits = ", ".join(_md_code(lim["expression"]) + ("" if lim["scope"] == "both" else f" ({lim['scope']})")
                           for lim in reg["limits"]) or "none (report only)"
        lines += ["", f"### Regression against {_md_code(reg['baseline'])}", "",
                  f"{reg['pairs_compared']} pairs compared · limits {limits} · {len(reg['new'])} new · "
                  f"{len(reg['missing'])} missing"]
        lines += [f"- ⚠️ settings differ (override given): {_md_escape(d)}" for d in reg["settings_differences"]]
        lines += ["", "| metric | baseline mean | this run | change | allowed | result |", "|---|---:|---:|---:|---:|---|"]
        for e in reg["summary"]:
            result = "—" if e["allowed"] is None and e["passed"] else ("✅ pass" if e["passed"] else "❌ regressed")
            allowed = "" if e["allowed"] is None else "+" + _fmt(e["allowed"])
            lines.append(f"| {e['metric']} | {_fmt(e['baseline'])} | {_fmt(e['observed'])} | "
                         f"{_change(e['delta'], e['relative_change'])} | {allowed} | {result} |")
        if reg["regressed"]:
            shown = reg["regressed"][:20]
            lines += ["", f"Regressed pairs ({len(shown)} of {len(reg['regressed'])} shown):", "",
                      "| pair | metric | baseline | this run | change | allowed |", "|---|---|---:|---:|---:|---:|"]
            lines += [f"| {_md_code(r['key'])} | {r['metric']} | {_fmt(r['baseline'])} | {_fmt(r['observed'])} | "
                      f"{_change(r['delta'], r['relative_change'])} | +{_fmt(r['allowed'])} |" for r in shown]
        for label, keys in (("New pairs (not in the baseline)", reg["new"]),
                            ("Missing pairs (in the baseline, not scored now)", reg["missing"])):
            if keys:
                more = f" … and {len(keys) - 50} more" if len(keys) > 50 else ""
                lines += ["", f"{label}: " + ", ".join(_md_code(k) for k in keys[:50]) + more]
    return lines


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
        lines.append(f"| {name} | " + " | ".join(_fmt(st[k]) for k in stats) + " |")
    if run.gate:
        lines += _md_gate(run.gate)
    if summ["worst"] and not summary_only:
        lines += ["", "### Worst pairs by hybrid", "", "| pair | hybrid | L1 | perceptual |", "|---|---:|---:|---:|"]
        for w in summ["worst"]:
            lines.append(f"| {_md_code(w['key'])} | {_fmt(w['hybrid'])} | {_fmt(w['l1'])} | {_fmt(w['perceptual'])} |")
    if run.skipped or len(run.missing):
        lines += ["", "### Not scored", ""]
        lines += [f"- skipped {_md_code(x.key)}: {_md_escape(x.reason)}" for x in run.skipped]
        lines += [f"- no ground truth for {_md_code(p)}" for p in run.missing.restored_only]
        lines += [f"- no restored file for {_md_code(p)}" for p in run.missing.gt_only]
    out.write("\n".join(lines) + "\n")


# -- Rich table -------------------------------------------------------------------------------

def table_console(out: TextIO, *, terminal: bool) -> Any:
    """A Rich console on ``out``. A closed pipe raises ``BrokenPipeError`` (the CLI's exit 141)
    instead of Rich's default ``SystemExit(1)``, which would read as "a gate failed"."""
    from rich.console import Console

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            raise BrokenPipeError

    return _Console(file=out, force_terminal=terminal, width=None if terminal else 160,
                    highlight=False, soft_wrap=False)


def _table_gate(console: Any, gate: dict[str, Any]) -> None:
    from rich.markup import escape

    for g in gate["checks"]:
        mark = "[green]pass[/]" if g["passed"] else "[red]FAIL[/]"
        observed = "undefined" if g["observed"] is None else _fmt(g["observed"])
        console.print(f"gate {escape(g['expression'])}: observed {observed} {mark}")
    reg = gate.get("regressions")
    if reg:
        mark = "[green]pass[/]" if reg["passed"] else "[red]FAIL[/]"
        console.print(f"baseline {escape(reg['baseline'])}: {reg['pairs_compared']} pairs compared, "
                      f"{len(reg['new'])} new, {len(reg['missing'])} missing, "
                      f"{len(reg['regressed'])} pair regressions {mark}")
        for e in reg["summary"]:
            if e["allowed"] is not None or not e["passed"]:
                mark = "[green]pass[/]" if e["passed"] else "[red]FAIL[/]"
                console.print(f"  mean {e['metric']}: {_fmt(e['baseline'])} -> {_fmt(e['observed'])} "
                              f"({_change(e['delta'], e['relative_change'])}, allowed +{_fmt(e['allowed'])}) {mark}")


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
    if summ["worst"] and not summary_only:
        console.print("worst by hybrid: " + ", ".join(f"{w['key']} ({_fmt(w['hybrid'], 4)})" for w in summ["worst"]),
                      markup=False)
    if run.gate:
        _table_gate(console, run.gate)
    for x in run.skipped:
        console.print(f"[yellow]skipped[/] {x.key}: {x.reason}")
    for p in run.missing.restored_only:
        console.print(f"[yellow]no ground truth[/] for {p}")
    for p in run.missing.gt_only:
        console.print(f"[yellow]no restored file[/] for {p}")
    if not run.complete:
        console.print(f"[bold yellow]incomplete:[/] {len(run.skipped)} skipped, {len(run.missing)} unmatched")


def write_report(run: Run, fmt: str, out: TextIO, *, terminal: bool = False, summary_only: bool = False) -> None:
    """Write the whole report in ``fmt`` (jsonl is streamed by the CLI, see JsonlStream).
    ``summary_only``: no per-pair rows (csv: one row per metric, see SUMMARY_CSV_HEADER)."""
    if fmt == "csv":
        (write_summary_csv if summary_only else write_csv)(run, out)
    elif fmt == "json":
        write_json(run, out, summary_only=summary_only)
    elif fmt == "markdown":
        write_markdown(run, out, summary_only=summary_only)
    elif fmt == "table":
        write_table(run, out, terminal=terminal, summary_only=summary_only)
    else:
        raise ValueError(f"unknown format {fmt!r}")
