"""Gate results as people see them: the lines on stderr (failures even with ``--quiet``), the
lines under a Rich table, the Markdown sections, and the one-line failure messages that CI
services show (:mod:`hlcli.render.ci`). The results themselves are computed by
:mod:`hlcli.analysis.gate`."""

from __future__ import annotations

import math
from typing import Any

from ..analysis.gate import excess, OPS
from .common import change, num, md_code, md_escape
from ..text import plural
from ..metrics.registry import get

MAX_PAIR_LINES = 20  # regressed pairs named one per line on stderr; the rest are counted


def _shown(check: dict[str, Any]) -> str:
    """The observed value with 6 significant digits, or more where 6 would make it look as if it
    were on the other side of the threshold (0.0800001 is not shown as 0.08 for '>0.08')."""
    x = check["observed"]
    if isinstance(x, int):
        return str(x)
    for digits in range(6, 18):
        text = f"{x:.{digits}g}"
        if OPS[check["op"]](float(text), check["threshold"]) == OPS[check["op"]](x, check["threshold"]):
            return text
    return repr(x)


def _g(x: float | None) -> str:
    """A value of a regression record: None there is +inf (PSNR of identical images)."""
    return "∞" if x is None else f"{x:.6g}"


def allowance(entry: dict[str, Any]) -> str:
    """The allowance of a regression record as an amount in the metric's bad direction, the one
    sign convention of every view: ``0.0017 rise`` (L1), ``0.5 dB drop`` (PSNR); empty when
    unlimited."""
    if entry.get("allowed") is None:
        return ""
    m = get(entry["metric"])
    return f"{m.amount(entry['allowed'])} {m.worsening}"


def over_by(entry: dict[str, Any]) -> str:
    """How far a record is beyond its allowance, in the same convention as :func:`allowance`
    (a PSNR drop of 0.99 dB against an allowed 0.5 dB drop: ``0.49 dB``); empty when within it."""
    x = excess(entry)
    return "" if x is None or x <= 0 else get(entry["metric"]).amount(x)


def _verdict(entry: dict[str, Any]) -> str:
    """``allowed 0.5 dB drop, over by 0.49 dB`` (the part after the change on a stderr line)."""
    over = over_by(entry)
    return f"allowed {allowance(entry)}" + (f", over by {over}" if over else "")


def furthest_over(record: dict[str, Any]) -> float:
    """How far a regressed record is beyond its allowance in its metric's bad direction (a PSNR
    drop, an L1 rise), relative to its baseline value (scale free, so pairs of different metrics
    sort together, furthest over first); absolute where the baseline is 0, +inf where it was
    +inf (identical)."""
    over = excess(record)
    if over is None:
        return -math.inf
    return over / abs(record["baseline"]) if record["baseline"] else over


def side_by_side(a: float, b: float, op: str) -> tuple[str, str]:
    """``a`` and ``b`` with the fewest digits (6 at least) that keep ``a op b`` true as printed
    and two different values different (0.0800001 is not shown as 0.08 beside 0.08)."""
    if not (math.isfinite(a) and math.isfinite(b)):
        return _g(None if a == math.inf else a), _g(None if b == math.inf else b)
    for digits in range(6, 18):
        sa, sb = f"{a:.{digits}g}", f"{b:.{digits}g}"
        if OPS[op](float(sa), float(sb)) == OPS[op](a, b) and (a == b) == (sa == sb):
            return sa, sb
    return repr(a), repr(b)


def check_message(check: dict[str, Any]) -> str:
    """A failed ``--fail-if`` check in one line: statistic, metric, value, threshold and the
    metric's direction, ``mean psnr 27.1 < 27.6 (higher is better)``."""
    where = f" in group {check['group']}" if check.get("group") else ""
    what = f"{check['stat']} {check['metric']}{where}"
    if check["observed"] is None:
        return f"{what}: {check['reason']}"
    seen, limit = side_by_side(check["observed"], check["threshold"], check["op"])
    sense = "" if check["stat"] == "count" else f" ({get(check['metric']).direction} is better)"
    return f"{what} {seen} {check['op']} {limit}{sense}"


def limit_message(record: dict[str, Any]) -> tuple[str, str]:
    """A regressed mean or pair in one line and its detail: the value beyond its limit (the
    baseline moved by the allowance in the metric's bad direction), ``psnr 27.1 < 27.6 (higher
    is better)``, and ``baseline 27.65, allowed 0.05 dB drop, over by 0.5 dB``."""
    m = get(record["metric"])
    old = math.inf if record["baseline"] is None else record["baseline"]
    new = math.inf if record["observed"] is None else record["observed"]
    op = "<" if m.higher_is_better else ">"
    limit = old - record["allowed"] if m.higher_is_better else old + record["allowed"]
    seen, lim = side_by_side(new, limit, op)
    return (f"{record['metric']} {seen} {op} {lim} ({m.direction} is better)",
            f"baseline {_g(record['baseline'])}, {_verdict(record)}")


def run_failures(doc: dict[str, Any], *, allow_skips: bool) -> list[tuple[str, str]]:
    """``(what, message)`` of each failure about a whole run (a score document), in the order
    given: failed ``--fail-if`` gates, failed mean limits, and an incomplete run (pairs skipped
    without ``allow_skips``: the run's exit 2)."""
    gate = doc.get("gate") or {}
    out = [("gate failed", f"{check_message(c)} (--fail-if {c['expression']})")
           for c in gate.get("checks", []) if not c["passed"]]
    reg = gate.get("regressions") or {}
    for e in reg.get("summary", []):
        if e["passed"]:
            continue
        if e["allowed"] is None:  # limited, but no pair in common
            out.append(("regression check failed", f"mean {e['metric']}: no pair is in both this run and the baseline"))
        else:
            message, detail = limit_message(e)
            out.append(("mean regressed", f"mean {message}; {plural(reg['pairs_compared'], 'common pair')}, {detail}"))
    skipped = len(doc.get("skipped") or [])
    if skipped and not allow_skips:
        out.append(("incomplete run", f"{plural(skipped, 'pair')} skipped: the result is incomplete "
                                      "(pass --allow-skips to accept that)"))
    return out


def failure_lines(gate: dict[str, Any] | None) -> list[str]:
    """One line per failed gate, regressed mean and (up to MAX_PAIR_LINES) regressed pair."""
    if not gate:
        return []
    lines = [f"Gate failed: {c['expression']} (" + (c["reason"] or f"observed {_shown(c)}") + ")"
             for c in gate["checks"] if not c["passed"]]
    reg = gate.get("regressions")
    if reg:
        for e in reg["summary"]:
            if e["passed"]:
                continue
            if e["observed"] is None:
                lines.append(f"Regression check failed: {e['metric']}: no pair is in both this run and the baseline")
            else:
                lines.append(f"Regression: mean {e['metric']} over {plural(reg['pairs_compared'], 'common pair')} "
                             f"{_g(e['observed'])} vs baseline {_g(e['baseline'])} "
                             f"({change(e['delta'], e['relative_change'])}; {_verdict(e)})")
        for r in reg["regressed"][:MAX_PAIR_LINES]:
            lines.append(f"Regression: pair {r['key']} {r['metric']} {_g(r['observed'])} vs baseline "
                         f"{_g(r['baseline'])} ({change(r['delta'], r['relative_change'])}; {_verdict(r)})")
        if len(reg["regressed"]) > MAX_PAIR_LINES:
            lines.append(f"Regression: … and {len(reg['regressed']) - MAX_PAIR_LINES} more pair regressions "
                         "(all are listed in the gate section of the JSON report)")
    return lines


def note_lines(gate: dict[str, Any] | None) -> list[str]:
    """Warnings that do not fail the run: settings overridden, pairs new or missing."""
    reg = (gate or {}).get("regressions")
    if not reg:
        return []
    lines = [f"Warning: comparing with a baseline made with different settings ({d})"
             for d in reg["settings_differences"]]
    for label, keys in (("not in the baseline", reg["new"]), ("in the baseline but not scored now", reg["missing"])):
        if keys:
            shown = ", ".join(keys[:10]) + (f", … ({len(keys) - 10} more)" if len(keys) > 10 else "")
            lines.append(f"Note: {plural(len(keys), 'pair')} {label}: {shown}")
    return lines


def markdown_lines(gate: dict[str, Any]) -> list[str]:
    """The gate and regression sections of a Markdown report."""
    lines: list[str] = []
    if gate["checks"]:
        lines += ["", "### Gates", "", "| gate | observed | result |", "|---|---:|---|"]
        for g in gate["checks"]:
            observed = "undefined" if g["observed"] is None else num(g["observed"])
            lines.append(f"| {md_code(g['expression'])} | {observed} | {'✅ pass' if g['passed'] else '❌ fail'} |")
    reg = gate.get("regressions")
    if reg:
        limits = ", ".join(md_code(lim["expression"]) + ("" if lim["scope"] == "both" else f" ({lim['scope']})")
                           for lim in reg["limits"]) or "none (report only)"
        lines += ["", f"### Regression against {md_code(reg['baseline'])}", "",
                  f"{plural(reg['pairs_compared'], 'pair')} compared · limits {limits} · {len(reg['new'])} new · "
                  f"{len(reg['missing'])} missing"]
        lines += [f"- ⚠️ settings differ (override given): {md_escape(d)}" for d in reg["settings_differences"]]
        lines += ["", "| metric | baseline mean | this run | change | allowed | over by | result |",
                  "|---|---:|---:|---:|---:|---:|---|"]
        for e in reg["summary"]:
            result = "—" if e["allowed"] is None and e["passed"] else ("✅ pass" if e["passed"] else "❌ regressed")
            lines.append(f"| {e['metric']} | {_g(e['baseline'])} | {_g(e['observed'])} | "
                         f"{change(e['delta'], e['relative_change'])} | {allowance(e)} | {over_by(e)} | {result} |")
        if reg["regressed"]:
            shown = reg["regressed"][:20]
            lines += ["", f"Regressed pairs ({len(shown)} of {len(reg['regressed'])} shown):", "",
                      "| pair | metric | baseline | this run | change | allowed | over by |",
                      "|---|---|---:|---:|---:|---:|---:|"]
            lines += [f"| {md_code(r['key'])} | {r['metric']} | {_g(r['baseline'])} | {_g(r['observed'])} | "
                      f"{change(r['delta'], r['relative_change'])} | {allowance(r)} | {over_by(r)} |"
                      for r in shown]
        for label, keys in (("New pairs (not in the baseline)", reg["new"]),
                            ("Missing pairs (in the baseline, not scored now)", reg["missing"])):
            if keys:
                more = f" … and {len(keys) - 50} more" if len(keys) > 50 else ""
                lines += ["", f"{label}: " + ", ".join(md_code(k) for k in keys[:50]) + more]
    return lines


PASS_MARK, FAIL_MARK = "[green]pass[/]", "[bold red]FAIL[/]"  # FAIL stays bold where colour is off


def print_table(console: Any, gate: dict[str, Any]) -> None:
    """Gate and regression results under a Rich table: pass in green, FAIL in bold red (bold
    alone with ``NO_COLOR``; plain text when not on a terminal)."""
    from rich.markup import escape  # lazy: keeps rich off the cheap paths (import hlcli, --help, reading runs)

    def mark(passed: bool) -> str:
        return PASS_MARK if passed else FAIL_MARK

    for g in gate["checks"]:
        observed = "undefined" if g["observed"] is None else num(g["observed"])
        console.print(f"gate {escape(g['expression'])}: observed {observed} {mark(g['passed'])}")
    reg = gate.get("regressions")
    if reg:
        console.print(f"baseline {escape(reg['baseline'])}: {plural(reg['pairs_compared'], 'pair')} compared, "
                      f"{len(reg['new'])} new, {len(reg['missing'])} missing, "
                      f"{len(reg['regressed'])} pair regressions {mark(reg['passed'])}")
        for e in reg["summary"]:
            if e["allowed"] is not None or not e["passed"]:
                if e["allowed"] is None:  # limited, but no pair in common
                    console.print(f"  mean {e['metric']}: no pair is in both this run and the baseline "
                                  f"{mark(e['passed'])}")
                    continue
                console.print(f"  mean {e['metric']}: {_g(e['baseline'])} -> {_g(e['observed'])} "
                              f"({change(e['delta'], e['relative_change'])}; {escape(_verdict(e))}) "
                              f"{mark(e['passed'])}")
