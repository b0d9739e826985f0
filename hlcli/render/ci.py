"""What CI services read (docs/integrations.md), from score documents: JUnit XML (``--junit``:
GitLab, Jenkins, GitHub test-report actions) and GitHub Actions' workflow commands and job
summary (``--github``). The failure messages are :mod:`hlcli.render.gate`'s. No torch import.

JUnit: a ``<testsuite>`` per run (per model of a sweep); a ``<testcase>`` ``score`` for the run
itself, one per ``--fail-if`` check, one per limited mean and, where limits apply to single pairs,
one per compared pair; ``classname`` ``hlcli.<model>.<group>`` (``all`` for the whole run), so
that every ``classname`` + ``name`` is unique in the file. Within GitLab's limits
(:data:`JUNIT_MAX_BYTES`, :data:`JUNIT_MAX_CASES`) the passing pair cases of each suite are
folded into one that says how many, then the skipped ones; failures are never folded.

GitHub: at most :data:`MAX_ANNOTATIONS` ``::error`` commands (GitHub shows no more per step),
the run's failures first, then regressed pairs furthest over first (as the report sorts them),
escaped as ``@actions/core`` escapes them; a Markdown summary under GitHub's 1 MiB per step.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..inputs.groups import ROOT_GROUP, group_of
from ..metrics.registry import get, is_set_metric
from ..runs.summaries import summary_values
from ..text import plural
from .common import CONTROL_ESCAPES, change, md_code, md_escape, num
from .gate import allowance, check_message, furthest_over, limit_message, over_by, run_failures

#: GitLab's limits on one JUnit file (docs.gitlab.com/ci/testing/unit_test_reports): 30 MB,
#: and 500,000 test cases (GitLab.com's default).
JUNIT_MAX_BYTES = 30 * 1000 * 1000
JUNIT_MAX_CASES = 500_000
MAX_ANNOTATIONS = 10
SUMMARY_LIMIT = 1024 * 1024  # GitHub refuses a step summary over 1 MiB
SUMMARY_MARGIN = 4096  # bytes kept free below it
MAX_SUMMARY_ROWS = 1000  # regressed pairs listed per model at most, before the byte budget

# XML 1.0 carries tab, LF, CR and U+0020..U+D7FF, U+E000..U+FFFD, U+10000..; anything else
# (control characters, a file name's undecodable byte kept as a lone surrogate) is written \xNN.
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_safe(text: str) -> str:
    def escape(m: re.Match[str]) -> str:
        c = ord(m.group())
        return f"\\x{c - 0xDC00:02x}" if 0xDC80 <= c <= 0xDCFF else (f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}")

    return _NOT_XML.sub(escape, text)


# -- JUnit XML ----------------------------------------------------------------------------------

@dataclass
class Case:
    """One ``<testcase>``; ``outcome`` ``passed``, ``failed`` or ``skipped``; ``pair``: a pair's case."""

    classname: str
    name: str
    outcome: str = "passed"
    message: str = ""
    text: str = ""
    pair: bool = False


@dataclass
class Suite:
    """One ``<testsuite>``: a run, or a model of a sweep."""

    name: str
    cases: list[Case] = field(default_factory=list)
    time: float = 0.0
    timestamp: str | None = None
    properties: dict[str, str] = field(default_factory=dict)
    folded: dict[str, int] = field(default_factory=dict)  # outcome -> pair cases folded away


def classname(model: str, group: str | None) -> str:
    """``hlcli.<model>.<group>``: dots in a name become ``_`` (Jenkins splits class names at
    them), the top-level group ``.`` is ``(root)``, no group is ``all``."""
    part = {None: "all", ROOT_GROUP: "(root)"}.get(group, (group or "").replace(".", "_"))
    return f"hlcli.{model.replace('.', '_')}.{part}"


def _values(doc: dict[str, Any]) -> dict[str, float | None]:
    """The run's number per metric (:func:`hlcli.runs.summaries.summary_values`): pair means, set values."""
    return summary_values(doc.get("summary") or {})


def _prefix(metric: str) -> str:
    """``mean `` before a pair metric's number; nothing before a set metric's one value."""
    return "" if is_set_metric(metric) else "mean "


def _run_case(model: str, doc: dict[str, Any], allow_skips: bool) -> Case:
    summary = doc.get("summary") or {}
    means = ", ".join(f"{_prefix(m)}{m} {num(v)}" for m, v in _values(doc).items() if v is not None)
    case = Case(classname(model, None), "score", text=f"{plural(summary.get('count', 0), 'pair')} scored: {means}")
    incomplete = [msg for what, msg in run_failures(doc, allow_skips=allow_skips) if what == "incomplete run"]
    if incomplete:
        case.outcome, case.message, case.text = "failed", incomplete[0], incomplete[0] + "\n" + case.text
    return case


def _check_case(model: str, check: dict[str, Any]) -> Case:
    case = Case(classname(model, check.get("group")), check["expression"])
    if not check["passed"]:
        case.outcome, case.message = "failed", check_message(check)
        case.text = f"--fail-if {check['expression']}: {case.message}"
    return case


def _regression_cases(model: str, doc: dict[str, Any]) -> list[Case]:
    reg = (doc.get("gate") or {}).get("regressions")
    if not reg:
        return []
    mean_limits = [lim for lim in reg["limits"] if lim["scope"] != "pairs"]
    cases = []
    for e in reg["summary"]:
        if e["allowed"] is None and e["passed"]:
            continue  # no limit on this metric: reported, not gated
        named = [lim["expression"] for lim in mean_limits if lim["metric"] == e["metric"]]
        named = named or [lim["expression"] for lim in mean_limits if lim["metric"] == "all"]
        case = Case(classname(model, None), f"{' '.join(named)} (mean {e['metric']})")
        if not e["passed"] and e["allowed"] is None:
            case.outcome = "failed"
            case.message = case.text = f"mean {e['metric']}: no pair is in both this run and the baseline"
        elif not e["passed"]:
            message, detail = limit_message(e)
            case.outcome, case.message = "failed", f"mean {message}"
            case.text = f"--max-regression: mean {message}; {plural(reg['pairs_compared'], 'common pair')}, {detail}"
        cases.append(case)
    if not any(lim["scope"] != "mean" for lim in reg["limits"]):
        return cases
    regressed: dict[str, list[dict[str, Any]]] = {}
    for r in reg["regressed"]:
        regressed.setdefault(r["key"], []).append(r)
    new, group_by = set(reg["new"]), (doc.get("settings") or {}).get("group_by", "none")
    for p in doc.get("pairs") or []:
        if p["key"] in new:
            continue
        case = Case(classname(model, group_of(p["key"], group_by)), p["key"], pair=True)
        lines = [limit_message(r) for r in regressed.get(p["key"], [])]
        if lines:
            case.outcome, case.message = "failed", "; ".join(msg for msg, _ in lines)
            case.text = "\n".join(f"pair {p['key']}: {msg}; {detail}" for msg, detail in lines)
        cases.append(case)
    return cases


def _skipped_cases(model: str, doc: dict[str, Any]) -> list[Case]:
    group_by = (doc.get("settings") or {}).get("group_by", "none")
    cases = [Case(classname(model, group_of(s["key"], group_by)), s["key"], "skipped", s["reason"], pair=True)
             for s in doc.get("skipped") or []]
    missing = doc.get("missing") or {}
    for side, why in (("restored_only", "no ground truth for this file"),
                      ("gt_only", "no restored file for this ground truth")):
        cases += [Case(classname(model, None), path, "skipped", why, pair=True) for path in missing.get(side, [])]
    return cases


def junit_suite(name: str, doc: dict[str, Any], *, time: float = 0.0, timestamp: str | None = None,
                allow_skips: bool = False) -> Suite:
    """The suite of one score document (a run, or one model of a sweep)."""
    cases = [_run_case(name, doc, allow_skips)]
    cases += [_check_case(name, c) for c in (doc.get("gate") or {}).get("checks", [])]
    cases += _regression_cases(name, doc) + _skipped_cases(name, doc)
    props = {"lambda": repr((doc.get("settings") or {}).get("lambda")),
             **{_prefix(m).replace(" ", ".") + m: repr(v)
                for m, v in _values(doc).items() if v is not None}}
    return Suite(name, _unique(cases), time=time, timestamp=timestamp, properties=props)


def _unique(cases: list[Case]) -> list[Case]:
    """A ``classname`` + ``name`` already taken gets `` (2)``, `` (3)``… (GitLab keeps only the
    first of two cases with one name)."""
    seen: set[tuple[str, str]] = set()
    for c in cases:
        base, n = c.name, 1
        while (c.classname, c.name) in seen:
            n += 1
            c.name = f"{base} ({n})"
        seen.add((c.classname, c.name))
    return cases


def _fold(suite: Suite, outcome: str) -> None:
    keep = [c for c in suite.cases if not (c.pair and c.outcome == outcome)]
    if len(keep) == len(suite.cases):
        return
    suite.folded[outcome] = suite.folded.get(outcome, 0) + len(suite.cases) - len(keep)
    n = plural(suite.folded[outcome], f"{outcome} pair")
    note = f"{n}, folded into this case to keep the file within GitLab's limits; every pair is in the JSON report"
    keep.append(Case(classname(suite.name, None), f"{n} (folded)", "skipped" if outcome == "skipped" else "passed",
                     note if outcome == "skipped" else "", note))
    suite.cases = _unique(keep)


def junit_xml(suites: Sequence[Suite], *, time: float, max_bytes: int = JUNIT_MAX_BYTES,
              max_cases: int = JUNIT_MAX_CASES) -> tuple[bytes, list[str]]:
    """The JUnit file (UTF-8 bytes) and the warnings to tell the user (cases folded; still over
    the limits, since failures are never folded)."""
    data = _xml(suites, time)
    for outcome in ("passed", "skipped"):
        if sum(len(s.cases) for s in suites) <= max_cases and len(data) <= max_bytes:
            break
        for s in suites:
            _fold(s, outcome)
        data = _xml(suites, time)
    notes = []
    folded = {o: sum(s.folded.get(o, 0) for s in suites) for o in ("passed", "skipped")}
    if any(folded.values()):
        notes.append("the JUnit file folds " + " and ".join(plural(n, f"{o} pair case") for o, n in folded.items() if n)
                     + f" into one case per model (GitLab reads {max_cases:,} cases and {max_bytes:,} bytes at most)")
    cases = sum(len(s.cases) for s in suites)
    if cases > max_cases or len(data) > max_bytes:
        notes.append(f"the JUnit file has {cases:,} cases and {len(data):,} bytes, over GitLab's limits "
                     f"({max_cases:,} cases, {max_bytes:,} bytes): failures are never folded")
    return data, notes


def _xml(suites: Sequence[Suite], time: float) -> bytes:
    root = ET.Element("testsuites", name="hlcli")
    totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    for s in suites:
        counts = {"tests": len(s.cases), "failures": sum(c.outcome == "failed" for c in s.cases), "errors": 0,
                  "skipped": sum(c.outcome == "skipped" for c in s.cases)}
        totals = {k: totals[k] + v for k, v in counts.items()}
        el = ET.SubElement(root, "testsuite", name=xml_safe(s.name), **{k: str(v) for k, v in counts.items()},
                           time=f"{s.time:.3f}", **({"timestamp": s.timestamp} if s.timestamp else {}))
        props = ET.SubElement(el, "properties")
        for k, v in s.properties.items():
            ET.SubElement(props, "property", name=xml_safe(k), value=xml_safe(v))
        for c in s.cases:  # a gate takes no time of its own: the suite's time is the scoring's
            tc = ET.SubElement(el, "testcase", classname=xml_safe(c.classname), name=xml_safe(c.name), time="0.000")
            if c.outcome == "failed":  # GitLab shows the element's text, others the message
                ET.SubElement(tc, "failure", message=xml_safe(c.message), type="hlcli.gate").text = xml_safe(c.text)
            elif c.outcome == "skipped":
                ET.SubElement(tc, "skipped", message=xml_safe(c.message)).text = xml_safe(c.message)
            elif c.text:
                ET.SubElement(tc, "system-out").text = xml_safe(c.text)
    for k, v in totals.items():
        root.set(k, str(v))
    root.set("time", f"{time:.3f}")
    ET.indent(root, space=" ")
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


# -- GitHub Actions -----------------------------------------------------------------------------

def escape_data(text: str) -> str:
    """A workflow command's message, as ``@actions/core``'s ``escapeData``."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's property value, as ``@actions/core``'s ``escapeProperty``."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def command(name: str, message: str, **properties: str) -> str:
    """``::name key=value,key=value::message``; empty properties left out, as ``@actions/core``."""
    props = ",".join(f"{k}={escape_property(v)}" for k, v in properties.items() if v)
    return f"::{name}{' ' + props if props else ''}::{escape_data(message)}"


def _regressed(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """A document's regressed pairs, furthest over first."""
    regressed = ((doc.get("gate") or {}).get("regressions") or {}).get("regressed", [])
    return sorted(regressed, key=lambda r: (-furthest_over(r), r["key"], r["metric"]))


def annotations(docs: dict[str, dict[str, Any]], *, allow_skips: bool, sweep: bool, where: str) -> list[str]:
    """The ``::error`` lines of ``docs`` (model name -> score document): each run's failures,
    then the regressed pairs of all, furthest over first; at most :data:`MAX_ANNOTATIONS`, the
    last saying how many more there are and ``where`` they are listed."""
    def title(model: str, what: str) -> str:
        return f"hlcli: {model}: {what}" if sweep else f"hlcli: {what}"

    items = [(title(m, what), msg) for m, doc in docs.items() for what, msg in run_failures(doc, allow_skips=allow_skips)]
    pairs = sorted(((furthest_over(r), m, r) for m, doc in docs.items() for r in _regressed(doc)),
                   key=lambda t: (-t[0], t[1], t[2]["key"], t[2]["metric"]))
    for _, m, r in pairs:
        message, detail = limit_message(r)
        items.append((title(m, f"pair {r['key']} regressed"), f"pair {r['key']}: {message}; {detail}"))
    if len(items) > MAX_ANNOTATIONS:
        more = len(items) - MAX_ANNOTATIONS + 1
        items = [*items[: MAX_ANNOTATIONS - 1], ("hlcli: more failures", f"… and {more} more failures: see {where}")]
    return [command("error", message, title=t) for t, message in items]


def _md(text: str) -> str:
    return md_escape(text.translate(CONTROL_ESCAPES))


def verdict(doc: dict[str, Any], *, allow_skips: bool) -> tuple[bool, str]:
    skipped = len(doc.get("skipped") or [])
    if skipped and not allow_skips:
        return False, f"⚠️ **incomplete**: {plural(skipped, 'pair')} skipped"
    if doc.get("gate") is None:
        return True, "✅ **scored** (no gate)"
    return (True, "✅ **passed**") if doc["gate"]["passed"] else (False, "❌ **failed**")


def _means(doc: dict[str, Any]) -> list[str]:
    base = {e["metric"]: e for e in ((doc.get("gate") or {}).get("regressions") or {}).get("summary", [])}
    lines = ["", "#### Means", "", "| metric | mean |" + (" baseline | change |" if base else ""),
             "|---|---:|" + ("---:|---:|" if base else "")]
    for m, v in _values(doc).items():
        row = f"| {_md(get(m).header())} | {num(v) or '—'} |"
        if base:
            e = base.get(m)
            row += f" {num(e['baseline'])} | {change(e['delta'], e['relative_change'])} |" if e else " | |"
        lines.append(row)
    return lines


def _pair_rows(doc: dict[str, Any]) -> list[str]:
    return [f"| {md_code(r['key'].translate(CONTROL_ESCAPES))} | {_md(r['metric'])} | {num(r['baseline']) or '∞'} | "
            f"{num(r['observed']) or '∞'} | {change(r['delta'], r['relative_change'])} | {allowance(r)} | {over_by(r)} |"
            for r in _regressed(doc)]


def step_summary(docs: dict[str, dict[str, Any]], *, allow_skips: bool, sweep: bool, where: str,
                 budget: int = SUMMARY_LIMIT - SUMMARY_MARGIN, max_rows: int = MAX_SUMMARY_ROWS) -> str:
    """The Markdown job summary of ``docs`` in at most ``budget`` bytes (UTF-8): pair rows are
    left out from the mildest up until it fits, and a line says how many and ``where`` they are."""
    rows = {m: _pair_rows(doc) for m, doc in docs.items()}
    limit = max_rows
    while True:
        text = _summary(docs, rows, limit, allow_skips, sweep, where)
        if len(text.encode("utf-8")) <= budget or limit == 0:
            break
        limit //= 2
    if len(text.encode("utf-8")) > budget:  # a huge sweep: the verdicts alone, cut to fit
        failed = [m for m, d in docs.items() if not verdict(d, allow_skips=allow_skips)[0]]
        text = "\n".join([f"### hlcli score: {'❌ failed' if failed else '✅ passed'}", "",
                          f"{plural(len(docs), 'model')}, {len(failed)} failed; the details are left out to keep "
                          f"this summary under GitHub's 1 MiB: see {_md(where)}.", "",
                          *(f"- {_md(m)}" for m in failed)]) + "\n"
        text = text.encode("utf-8")[:budget].decode("utf-8", "ignore")
    return text


def _summary(docs: dict[str, dict[str, Any]], rows: dict[str, list[str]], limit: int, allow_skips: bool, sweep: bool,
             where: str) -> str:
    verdicts = {m: verdict(d, allow_skips=allow_skips) for m, d in docs.items()}
    lines = [f"### hlcli score: {'✅ passed' if all(ok for ok, _ in verdicts.values()) else '❌ failed'}"]
    if sweep:
        lines += ["", "| model | pairs | result |", "|---|---:|---|"]
        lines += [f"| {_md(m)} | {(d.get('summary') or {}).get('count', 0)} | {verdicts[m][1]} |" for m, d in docs.items()]
    left_out = 0
    for m, doc in docs.items():
        lines += ["", f"#### {_md(m)}: {verdicts[m][1]}" if sweep else verdicts[m][1]]
        failures = run_failures(doc, allow_skips=allow_skips)
        if failures:
            lines += ["", "#### Failing gates", "", *(f"- {_md(what)}: {_md(msg)}" for what, msg in failures)]
        shown = rows[m][:limit]
        left_out += len(rows[m]) - len(shown)
        if rows[m]:
            lines += ["", f"#### Regressed pairs ({len(shown)} of {len(rows[m])} shown, furthest over first)", "",
                      "| pair | metric | baseline | this run | change | allowed | over by |",
                      "|---|---|---:|---:|---:|---:|---:|", *shown]
        lines += _means(doc)
    if left_out:
        lines += ["", f"{plural(left_out, 'regressed pair row')} left out to keep this summary under GitHub's "
                      f"1 MiB; every pair is in {_md(where)}."]
    return "\n".join(lines) + "\n"
