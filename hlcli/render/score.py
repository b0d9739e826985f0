"""A scoring run as a Rich table, CSV, JSON, JSON Lines or Markdown (see docs/formats.md)."""

from __future__ import annotations

import contextlib
import csv
from typing import Any, TextIO
import heapq

from ..metrics.registry import badness
from ..runs.results import PairResult, Run, Skipped, set_stats
from ..runs.summaries import set_names, set_records
from . import gate as gate_render
from .common import (
    dumps_strict,
    exact,
    md_code,
    md_escape,
    md_row,
    num,
    table_console,
    weights_warnings,
    write_in,
    write_json,
)
from ..text import plural
from .table import Column, fit_table, metric_header, number_column, set_cells, shared_formats, shorten_middle, sig

FORMATS = ("table", "csv", "json", "jsonl", "markdown")
GROUP_STATS = ("mean", "median", "std", "min", "max", "p95")
GROUP_TITLES = {"top": "top-level folder", "dir": "parent folder"}
ALL_PAIRS = "all pairs"  # the label of the run's own set values beside its groups'


def summary_stats(summ: dict[str, Any]) -> list[tuple[str, dict[str, dict[str, Any]]]]:
    """Per part of a summary, the run's (group ``""``) first, then each group's: every metric's
    statistics, the set metrics (FID, KID) as :func:`hlcli.runs.results.set_stats` (count the
    samples, mean the value, std KID's subsets' std) after the pair metrics. The rows of
    ``--summary-only`` CSV and the ``metric`` lines of JSON Lines."""
    parts = [("", summ), *summ.get("groups", {}).items()]
    return [(g, {**part["metrics"], **{m: set_stats(part["sets"], m) for m in set_names(part)}}) for g, part in parts]


def set_table(summ: dict[str, Any]) -> tuple[list[str], list[tuple[str | None, list[str], str | None]]]:
    """The set values of a summary for people (table, Markdown, the report): the headers of
    :func:`hlcli.render.table.set_cells`, then per set (the run's first, group None; then each
    group's) its group, its cells and its note (the small-set warning, or None). Empty without
    set metrics."""
    records = set_records(summ)
    headers, rows = set_cells([r for _, r in records], set_names(summ))
    return headers, [(g, cells, r.get("note")) for (g, r), cells in zip(records, rows)]


def set_title(settings: dict[str, Any]) -> str:
    """What the set values are over: ``restored set vs ground-truth set, 64 Inception features,
    clean resize`` (and the patch size with --fid-patches)."""
    fid = settings.get("fid") or {}
    patches = f", {fid['patches']}-px patches" if fid.get("patches") else ""
    return (f"restored set vs ground-truth set, {fid.get('dims', '?')} Inception features, "
            f"{fid.get('resize', '?')} resize{patches}")


# -- CSV --------------------------------------------------------------------------------------

def csv_header(metrics: list[str]) -> list[str]:
    """Fixed column order (documented in docs/formats.md); ``metrics``: the run's metric
    columns (:attr:`hlcli.runs.results.Run.metric_names`)."""
    return ["key", "status", "width", "height", *metrics, "restored", "gt", "size_policy", "reason"]


def csv_pair_row(p: PairResult, metrics: list[str]) -> list[str]:
    vals = [exact(p.metric(m)) for m in metrics]
    return [p.key, "ok", str(p.width), str(p.height), *vals, p.restored, p.gt, p.size_policy or "", ""]


SUMMARY_CSV_HEADER = ["metric", "count", "mean", "median", "std", "min", "max", "p50", "p90", "p95", "p99"]


def _group_cell(run: Run, key: str | None) -> list[str]:
    """The ``group`` cell appended to a CSV row when the run is grouped (nothing otherwise):
    the key's group, or empty for rows without a key (unmatched files, overall summary)."""
    if run.group_by == "none":
        return []
    return [run.group_of(key) or ""] if key else [""]


def write_summary_csv(run: Run, out: TextIO) -> None:
    """``--summary-only``: one row per metric (fixed columns, empty cells when undefined).
    Grouped runs append a ``group`` column: the overall rows (empty group) come first, then one
    row per group and metric, groups sorted by name."""
    w = csv.writer(out, lineterminator="\n")
    summ = run.summary()
    w.writerow(SUMMARY_CSV_HEADER + (["group"] if "groups" in summ else []))
    for group, metrics in summary_stats(summ):
        tail = [group] if "groups" in summ else []
        for name, st in metrics.items():
            w.writerow([name, str(st["count"]),
                        *("" if st[k] is None else exact(st[k]) for k in SUMMARY_CSV_HEADER[2:]), *tail])


def write_csv(run: Run, out: TextIO) -> None:
    """One row per pair; a grouped run appends a ``group`` column (every other column keeps its
    place, so ``hybrid`` stays column 9 with the default layers)."""
    w = csv.writer(out, lineterminator="\n")
    names = run.metric_names
    blanks = [""] * len(names)
    w.writerow(csv_header(names) + (["group"] if run.group_by != "none" else []))
    # Every row sorted by key, whatever its status (docs/formats.md); one row per key and status.
    rows: list[tuple[str, int, list[Any]]] = [(p.key, 0, csv_pair_row(p, names) + _group_cell(run, p.key))
                                              for p in run.pairs]
    for s in run.skipped:  # the pair's files in their columns; the reason without the path
        rows.append((s.key, 1, [s.key, "skipped", "", "", *blanks, s.restored or (s.path if s.gt is None else ""),
                                s.gt or "", "", s.short_reason(), *_group_cell(run, s.key)]))
    from ..inputs.pairing import key_for  # not at the top: it imports the decoders (numpy, Pillow)

    inputs = run.settings.get("inputs") or {}
    for status, side, paths, why in (("restored-only", "restored", run.missing.restored_only, "no ground truth file"),
                                     ("gt-only", "gt", run.missing.gt_only, "no restored file")):
        for path in paths:
            key = key_for(path, inputs[side]) if inputs.get(side) else ""
            cells = [path, ""] if side == "restored" else ["", path]
            rows.append((key, 2, [key, status, "", "", *blanks, *cells, "", why, *_group_cell(run, None)]))
    for _, _, row in sorted(rows, key=lambda r: (r[0], r[1])):
        w.writerow(row)


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
        self.run: Run | None = None  # set by header(): pair and skipped lines carry its groups

    def emit(self, record: dict[str, Any]) -> None:
        self.out.write(dumps_strict(record) + "\n")
        self.out.flush()

    def header(self, run: Run) -> None:
        self.run = run
        self.emit({"type": "header", **run.header(), **({"summary_only": True} if self.summary_only else {})})

    def missing(self, run: Run) -> None:
        for path in run.missing.restored_only:
            self.emit({"type": "missing", "side": "gt", "restored": path})
        for path in run.missing.gt_only:
            self.emit({"type": "missing", "side": "restored", "gt": path})

    def pair(self, p: PairResult) -> None:
        if not self.summary_only:
            self.emit({"type": "pair", **self._grouped(p.as_dict(), p.key)})

    def skipped(self, s: Skipped) -> None:
        self.emit({"type": "skipped", **self._grouped(s.as_dict(), s.key)})

    def _grouped(self, record: dict[str, Any], key: str) -> dict[str, Any]:
        return record if self.run is None else self.run.with_group(record, key)

    def summary(self, run: Run) -> None:
        summary = run.summary()
        if self.summary_only:
            for group, metrics in summary_stats(summary):
                for name, st in metrics.items():
                    self.emit({"type": "metric", **({"group": group} if group else {}), "metric": name, **st})
        self.emit({"type": "summary", **summary, "gate": run.gate})

    def aborted(self, message: str, exit_code: int) -> None:
        """The last line of a stream cut by an error or Ctrl-C (never raises: the reader may be gone)."""
        with contextlib.suppress(OSError, ValueError):
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
    official_vgg = weights.get("official_imagenet1k_v1")
    official = "official ImageNet" if official_vgg else "**not** the official ImageNet weights"
    lines.append(f"**{plural(summ['count'], 'pair')} scored** · λ = {s.get('lambda')} · layers {layers} · crop border "
                 f"{s.get('crop_border', 0)} · precision {s.get('precision')} · device {run.environment.get('device', {}).get('type', '?')} · weights "
                 f"`{str(weights.get('sha256', '?'))[:12]}` ({official}) · hlcli {run.environment.get('hlcli_version', '?')}")
    others = weights_warnings(s)[1 if official_vgg is False else 0:]  # VGG-19's is said in the line above
    if others:
        lines += ["", *(f"> **Warning**: {md_escape(note)}" for note in others)]
    if not run.complete:
        lines += ["", f"**Incomplete**: {len(run.skipped)} skipped, {len(run.missing)} unmatched"]
    stats = ("mean", "median", "std", "min", "max", "p95", "p99")
    lines += ["", "| metric | " + " | ".join(stats) + " |", "|---|" + "---:|" * len(stats)]
    for name, st in summ["metrics"].items():
        lines.append(f"| {name} | " + " | ".join(num(st[k]) for k in stats) + " |")
    lines += set_markdown_lines(run.settings, summ, groups=False)
    lines += group_markdown_lines(run, summ)
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


def group_markdown_lines(run: Run, summ: dict[str, Any] | None = None) -> list[str]:
    """The per-group summary of a grouped run as a Markdown section (nothing otherwise): one row
    per group and metric, with the group's pair count."""
    summ = summ if summ is not None else run.summary()
    if "groups" not in summ:
        return []
    lines = ["", f"### By group ({GROUP_TITLES[run.group_by]})", "",
             "| group | metric | count | " + " | ".join(GROUP_STATS) + " |", "|---|---|---:|" + "---:|" * len(GROUP_STATS)]
    for group, gs in summ["groups"].items():
        skipped = f" ({gs['skipped']} skipped)" if gs["skipped"] else ""
        for name, st in gs["metrics"].items():
            lines.append(f"| {md_code(group)}{skipped} | {name} | {st['count']} | "
                         + " | ".join(num(st[k]) for k in GROUP_STATS) + " |")
    return lines + set_markdown_lines(run.settings, summ, groups=True)


def set_markdown_lines(settings: dict[str, Any], summ: dict[str, Any], *, groups: bool) -> list[str]:
    """The set values (FID, KID) as a Markdown table: the run's (``groups=False``: under the
    summary) or each group's (``groups=True``: in the per-group section), the small-set notes
    under it; nothing without set metrics."""
    headers, sets = set_table(summ)
    chosen = [(g, cells, note) for g, cells, note in sets if (g is not None) == groups]
    if not chosen:
        return []
    lines = ["", "#### Set metrics by group" if groups else "### Set metrics", "", md_escape(set_title(settings)), "",
             md_row(["group" if groups else "set", *(md_escape(h) for h in headers)]), "|---|" + "---:|" * len(headers)]
    lines += [md_row([ALL_PAIRS if g is None else md_code(g), *cells]) for g, cells, _ in chosen]
    notes = [f"> **Note** ({ALL_PAIRS if g is None else md_code(g)}): {md_escape(note)}" for g, _, note in chosen if note]
    return lines + (["", *"\n>\n".join(notes).split("\n")] if notes else [])


# -- Rich table -------------------------------------------------------------------------------

DEFAULT_ROWS = 40  # per-pair rows a table shows by default (``--rows``)
TABLE_STATS = ("mean", "median", "std", "min", "max", "p95")


def table_pairs(run: Run, rows: int | None, sort: str) -> list[PairResult]:
    """The pairs a table shows: all, or the ``rows`` worst (highest) by metric ``sort``, worst
    first; ``sort="key"`` orders by key (and keeps the first ``rows``)."""
    def order(p: PairResult) -> Any:
        return p.key if sort == "key" else (-badness(sort, p.metric(sort)), p.key)

    if rows is None or rows >= len(run.pairs):
        return sorted(run.pairs, key=order)
    return heapq.nsmallest(rows, run.pairs, key=order)


def run_formats(run: Run, summ: dict[str, Any]) -> dict[str, Any]:
    """One number format per metric for everything the table view of ``run`` shows (the pairs,
    the summary, every group's summary), chosen from all of those values at once."""
    pools: dict[str, list[float | None]] = {m: [p.metric(m) for p in run.pairs] for m in run.metric_names}
    for metrics in [summ["metrics"], *(g["metrics"] for g in summ.get("groups", {}).values())]:
        for m, st in metrics.items():
            pools[m].extend(st[k] for k in (*TABLE_STATS, *GROUP_STATS))
    return shared_formats(pools)


def _pairs_table(console: Any, run: Run, rows: int | None, sort: str, formats: dict[str, Any]) -> None:
    shown = table_pairs(run, rows, sort)
    columns = [Column("size", [f"{p.width}x{p.height}" for p in shown])]
    columns += [number_column(metric_header(m), [p.metric(m) for p in shown], group=int(m in run.layer_names),
                              fmt=formats[m])
                for m in run.metric_names]
    notes = []
    if len(shown) < len(run.pairs):
        order = "first by key" if sort == "key" else f"worst by {sort}"
        notes.append(f"showing {len(shown):,} of {len(run.pairs):,} pairs, {order}; -f csv for all")
    fit_table(console, "hlcli score", Column("pair", [p.key for p in shown], justify="left"), columns,
              moved="per-layer columns", notes=notes)


def _summary_table(console: Any, run: Run, summ: dict[str, Any], formats: dict[str, Any]) -> None:
    """One row per metric, each row in its metric's number format for the run (its power of ten
    after the metric's name: ``conv3_3 ×10⁻³``); a note says how many +inf values (PSNR of
    identical pairs) were left out."""
    keys, cells, notes = [], [], []
    for name, vals in summ["metrics"].items():
        fmt = formats[name]
        if vals.get("infinite"):
            n = vals["infinite"]
            notes.append(f"{metric_header(name)}: {plural(n, 'identical pair')} (+∞) left out of the statistics")
        keys.append(f"{metric_header(name)} {fmt.label}".strip())
        cells.append([fmt(vals[k]) for k in TABLE_STATS])
    columns = [Column(stat, [row[i] for row in cells]) for i, stat in enumerate(TABLE_STATS)]
    fit_table(console, f"summary of {plural(summ['count'], 'pair')} (λ = {run.settings.get('lambda')})",
              Column("metric", keys, justify="left"), columns, moved="some statistics", notes=notes)


def print_set_table(console: Any, settings: dict[str, Any], summ: dict[str, Any]) -> None:
    """The set values (FID, KID) under the summary table: one row for all pairs, then one per
    group; each small set's note as a ``note:`` line under it. Nothing without set metrics."""
    from rich.markup import escape  # lazy: keeps rich off the cheap paths (import hlcli, --help, reading runs)

    headers, sets = set_table(summ)
    if not sets:
        return
    labels = [ALL_PAIRS if g is None else g for g, _, _ in sets]
    columns = [Column(h, [cells[i] for _, cells, _ in sets]) for i, h in enumerate(headers)]
    fit_table(console, f"set metrics: {set_title(settings)}", Column("set", labels, justify="left"), columns,
              moved="some set metrics")
    for label, (_, _, note) in zip(labels, sets):
        if note:
            console.print(f"[bold yellow]note:[/] {escape(label)}: {escape(note)}")


def _print_worst(console: Any, worst: list[dict[str, Any]]) -> None:
    """``worst by hybrid: a (0.03838), b (0.02920), ...`` wrapped between pairs, never inside
    one; where one pair alone is wider than the terminal, one per line, number first, its key
    shortened in the middle."""
    from rich.text import Text  # lazy: keeps rich off the cheap paths (import hlcli, --help, reading runs)

    width = console.width
    items = [f"{w['key']} ({sig(w['hybrid'])})" + ("," if i < len(worst) - 1 else "") for i, w in enumerate(worst)]
    if max(len(x) for x in items) + 2 > width:
        console.print(Text("worst by hybrid:"))
        for w in worst:
            number = sig(w["hybrid"])
            console.print(Text(f"  {number} {shorten_middle(w['key'], max(8, width - len(number) - 3))}"),
                          no_wrap=True, overflow="ignore")
        return
    line = "worst by hybrid:"
    for item in items:
        if len(line) + 1 + len(item) > width:
            console.print(Text(line), soft_wrap=True)
            line = " "
        line += " " + item
    console.print(Text(line), soft_wrap=True)


def write_table(run: Run, out: TextIO, *, terminal: bool, summary_only: bool = False,
                rows: int | None = DEFAULT_ROWS, sort: str = "hybrid", console: Any = None) -> None:
    """The report for people (docs/formats.md): the per-pair table (at most ``rows`` pairs, None
    for all, worst by metric ``sort`` first, or by key with ``sort="key"``), the summary table,
    the worst pairs, gates, what was not scored. Every number is whole at any width from 60
    columns: the tables change shape to fit (see :mod:`hlcli.render.table`). ``console``: a Rich
    console to print on instead of one on ``out`` (tests give one of a chosen width)."""
    from rich.markup import escape  # lazy: keeps rich off the cheap paths (import hlcli, --help, reading runs)

    console = console or table_console(out, terminal=terminal)
    summ = run.summary()
    formats = run_formats(run, summ)
    if not summary_only:
        _pairs_table(console, run, rows, sort, formats)
    _summary_table(console, run, summ, formats)
    print_set_table(console, run.settings, summ)
    for note in weights_warnings(run.settings):
        console.print(f"[bold yellow]warning:[/] {escape(note)}")
    print_group_summary(console, run, formats, summ)
    if summ["worst"] and not summary_only:
        _print_worst(console, summ["worst"])
    if run.gate:
        gate_render.print_table(console, run.gate)
    for x in run.skipped:
        console.print(f"[yellow]skipped[/] {escape(x.key)}: {escape(x.reason)}")
    for p in run.missing.restored_only:
        console.print(f"[yellow]no ground truth[/] for {escape(p)}")
    for p in run.missing.gt_only:
        console.print(f"[yellow]no restored file[/] for {escape(p)}")
    if not run.complete:
        console.print(f"[bold yellow]incomplete:[/] {len(run.skipped)} skipped, {len(run.missing)} unmatched")


def print_group_summary(console: Any, run: Run, formats: dict[str, Any] | None = None,
                        summ: dict[str, Any] | None = None) -> None:
    """The per-group summary of a grouped run under the summary table (nothing otherwise): one
    row per group and metric, each metric in one number format for every group (``formats``,
    from :func:`run_formats`), so that groups compare by eye."""
    summ = summ if summ is not None else run.summary()
    groups = summ.get("groups")
    if groups is None:
        return
    formats = formats or run_formats(run, summ)
    keys, counts, cells = [], [], []
    for group, gs in groups.items():
        label = group + (f" ({gs['skipped']} skipped)" if gs["skipped"] else "")
        for name, vals in gs["metrics"].items():
            fmt = formats[name]
            keys.append(f"{label} {metric_header(name)} {fmt.label}".strip())
            counts.append(str(vals["count"]))
            cells.append([fmt(vals[k]) for k in GROUP_STATS])
    columns = [Column("count", counts)] + [Column(stat, [row[i] for row in cells]) for i, stat in enumerate(GROUP_STATS)]
    fit_table(console, f"summary by group ({GROUP_TITLES[run.group_by]})", Column("group metric", keys, justify="left"),
              columns, moved="some statistics")


def write_score(run: Run, fmt: str, out: TextIO, *, terminal: bool = False, summary_only: bool = False,
                **table: Any) -> None:
    """Write the whole report in ``fmt`` (jsonl is streamed by the CLI, see JsonlStream).
    ``summary_only``: no per-pair rows (csv: one row per metric, see SUMMARY_CSV_HEADER).
    ``table``: ``rows`` and ``sort`` for :func:`write_table` (other formats ignore them)."""
    write_in(fmt, {"csv": lambda: (write_summary_csv if summary_only else write_csv)(run, out),
                   "json": lambda: write_score_json(run, out, summary_only=summary_only),
                   "markdown": lambda: write_markdown(run, out, summary_only=summary_only),
                   "table": lambda: write_table(run, out, terminal=terminal, summary_only=summary_only, **table)})
