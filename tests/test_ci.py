"""JUnit XML and GitHub workflow commands and summaries (hlcli/render/ci.py) from real gate sections
(tests/integration_runs.py), read back as the services read them: JUnit with junitparser, commands
with a replica of the runner's parser."""

from __future__ import annotations

import io
import time

from hypothesis import given, strategies as st

import junitparser
import pytest

from hlcli.render.ci import (JUNIT_MAX_BYTES, JUNIT_MAX_CASES, MAX_ANNOTATIONS, SUMMARY_LIMIT, annotations, command,
                             escape_property, junit_suite, junit_xml, step_summary, xml_safe)
from hlcli.render.gate import side_by_side

from .integration_runs import gate, make_run


def parse(data: bytes) -> junitparser.JUnitXml:
    return junitparser.JUnitXml.fromfile(io.BytesIO(data))


def cases(xml):
    return [(suite.name, case) for suite in xml for case in suite]


def test_failing_and_passing_gates_are_read_as_ci_services_read_them():
    base = make_run(6, seed=1)
    run = gate(make_run(6, seed=1, shift=0.004), fail_if=["mean.hybrid>1", "mean.psnr<30.5", "count.l1<1"],
               limits=["2%", "psnr=0.1"], baseline=base)
    data, notes = junit_xml([junit_suite("modelA", run.document(), time=1.5)], time=0.0)
    xml = parse(data)
    suites = list(xml)
    assert len(suites) == 1 and suites[0].name == "modelA" and suites[0].time == 1.5
    by_name = {c.name: c for c in suites[0]}
    assert set(by_name) >= {"mean.hybrid>1", "mean.psnr<30.5", "count.l1<1", "2% (mean hybrid)",
                            "psnr=0.1 (mean psnr)"}
    assert all(c.classname == "hlcli.modelA.all" for c in by_name.values() if not c.name.startswith("img"))
    assert by_name["mean.hybrid>1"].is_passed
    psnr = by_name["mean.psnr<30.5"]
    assert not psnr.is_passed
    failure = psnr.result[0]
    assert isinstance(failure, junitparser.Failure)
    observed = run.gate["checks"][1]["observed"]
    assert failure.message == f"mean psnr {observed:.6g} < 30.5 (higher is better)"
    assert failure.text.endswith(failure.message)
    assert by_name["2% (mean hybrid)"].result[0].message.startswith("mean hybrid ")
    assert "(lower is better)" in by_name["2% (mean hybrid)"].result[0].message
    # pair limits (from --max-regression, which also limits pairs): one case per pair
    pair_cases = [c for c in suites[0] if c.name.startswith("img")]
    assert len(pair_cases) == 6
    assert suites[0].tests == len(list(suites[0]))
    assert suites[0].failures == sum(1 for c in suites[0] if c.result and isinstance(c.result[0], junitparser.Failure))
    assert suites[0].failures >= 3
    assert not notes


def test_regression_message_names_the_limit_in_the_metrics_direction():
    base = make_run(3, seed=2)
    run = gate(make_run(3, seed=2, shift=0.01), limits=["0.001"], pair_limits=["psnr=0.05"], baseline=base)
    xml = parse(junit_xml([junit_suite("m", run.document())], time=0.0)[0])
    pairs = [c for c in next(iter(xml)) if c.name.startswith("img")]
    assert pairs and all(not c.is_passed for c in pairs)
    msg = pairs[0].result[0].message
    old = base.pairs[0].extra["psnr"]
    new = run.pairs[0].extra["psnr"]
    assert msg == f"psnr {new:.6g} < {old - 0.05:.6g} (higher is better)"


def test_group_gates_and_pairs_have_their_group_in_the_classname():
    base = make_run(4, group_by="top")
    run = gate(make_run(4, group_by="top", shift=0.001), fail_if=["mean.hybrid[Set5]>1"],
               pair_limits=["l1=0"], limits=["all=100%"], baseline=base)
    xml = parse(junit_xml([junit_suite("m.v2", run.document())], time=0.0)[0])
    names = {(c.classname, c.name) for c in next(iter(xml))}
    assert ("hlcli.m_v2.Set5", "mean.hybrid[Set5]>1") in names
    assert ("hlcli.m_v2.Urban", "Urban/img00000") in names
    assert ("hlcli.m_v2.Set5", "Set5/img00001") in names


def test_skipped_files_are_skipped_cases_with_the_reason():
    run = gate(make_run(2, skipped=["bad"]), fail_if=["mean.l1>1"])
    xml = parse(junit_xml([junit_suite("m", run.document(), allow_skips=True)], time=0.0)[0])
    suite = next(iter(xml))
    skipped = [c for c in suite if c.is_skipped]
    assert [c.name for c in skipped] == ["bad"]
    assert "truncated" in skipped[0].result[0].message
    assert suite.skipped == 1
    assert next(c for c in suite if c.name == "score").is_passed  # skips accepted (--allow-skips)


def test_an_incomplete_run_fails_its_score_case_and_a_run_without_gates_still_shows():
    doc = make_run(2, skipped=["bad"]).document()
    suite = next(iter(parse(junit_xml([junit_suite("m", doc, allow_skips=False)], time=0.0)[0])))
    score = next(c for c in suite if c.name == "score")
    assert not score.is_passed and "1 pair skipped: the result is incomplete" in score.result[0].message
    suite = next(iter(parse(junit_xml([junit_suite("m", make_run(2).document())], time=0.0)[0])))
    assert [c.name for c in suite] == ["score"] and suite.tests == 1
    assert "2 pairs scored: mean l1 " in next(iter(suite)).system_out


def test_names_are_unique_and_sweeps_have_a_suite_per_model():
    runs = {name: gate(make_run(2), fail_if=["mean.l1>1", "mean.l1 > 1"]) for name in ("a", "b")}
    xml = parse(junit_xml([junit_suite(n, r.document()) for n, r in runs.items()], time=0.0)[0])
    assert [s.name for s in xml] == ["a", "b"]
    keys = [(c.classname, c.name) for _, c in cases(xml)]
    assert len(keys) == len(set(keys)) == 6  # score and 2 gates per model


@pytest.mark.parametrize("evil", ["a&b<c>\"d'", "nul\x00bell\x07esc\x1b[31m", "bad\udcffbyte", "line\nbreak\r"])
def test_any_name_is_well_formed_xml(evil):
    run = gate(make_run(2, keys=[evil, "ok"], extra=()), fail_if=["mean.l1>0"])
    run.skipped = []
    doc = run.document()
    data = junit_xml([junit_suite(evil, doc)], time=0.0)[0]
    xml = parse(data)
    shown = [c.name for c in next(iter(xml))]
    assert shown == ["score", "mean.l1>0"]
    assert next(iter(xml)).name == xml_safe(evil)


def test_passing_pairs_fold_beyond_the_limits_failures_never_do():
    base = make_run(50, seed=3)
    run = make_run(50, seed=3)
    for p in run.pairs[:5]:
        p.l1 += 1
        p.hybrid += 1
    run = gate(run, limits=["l1=0.5"], baseline=base)
    doc = run.document()
    data, notes = junit_xml([junit_suite("m", doc)], max_cases=20, time=0.0)
    suite = next(iter(parse(data)))
    names = [c.name for c in suite]
    assert "45 passed pairs (folded)" in names
    assert sum(not c.is_passed for c in suite) == 5  # the 5 pairs (the mean rose by 0.1 only)
    assert notes and "folds 45 passed pair cases" in notes[0]
    # too many failures to fit: written anyway, and said
    data, notes = junit_xml([junit_suite("m", doc)], max_cases=3, time=0.0)
    assert sum(not c.is_passed for c in next(iter(parse(data)))) == 5
    assert any("failures are never folded" in n for n in notes)
    # bytes: the same rule
    data, notes = junit_xml([junit_suite("m", doc)], max_bytes=4000, time=0.0)
    assert any("passed pairs (folded)" in c.name for c in next(iter(parse(data))))
    assert (JUNIT_MAX_BYTES, JUNIT_MAX_CASES) == (30_000_000, 500_000)


def test_side_by_side_keeps_the_comparison_true_as_printed():
    assert side_by_side(0.0800001, 0.08, ">") == ("0.0800001", "0.08")
    assert side_by_side(27.1, 27.6, "<") == ("27.1", "27.6")
    a, b = side_by_side(1 + 1e-12, 1.0, ">")
    assert float(a) > float(b)


# The runner's own parsing (actions/runner, ActionCommand.TryParseV2), replicated: the command
# ends at the first "::" after the leading one, properties split at "," and at the first "=",
# then each value unescaped in the runner's order (%25 last).
_PROP = [("%0D", "\r"), ("%0A", "\n"), ("%3A", ":"), ("%2C", ","), ("%25", "%")]
_DATA = [("%0D", "\r"), ("%0A", "\n"), ("%25", "%")]


def _unescape(text, table):
    for k, v in table:
        text = text.replace(k, v)
    return text


def runner_parse(line: str):
    assert line.startswith("::") and "\n" not in line and "\r" not in line
    end = line.index("::", 2)
    info, data = line[2:end], line[end + 2:]
    name, _, props = info.partition(" ")
    properties = {}
    for item in filter(None, props.strip().split(",")):
        k, sep, v = item.partition("=")
        if sep and k and v:
            properties[k] = _unescape(v, _PROP)
    return name, properties, _unescape(data, _DATA)


@given(st.text(), st.text().map(str.strip).filter(bool))  # the runner trims the properties
def test_commands_round_trip_through_the_runners_parser(message, title):
    name, props, data = runner_parse(command("error", message, title=title))
    assert (name, props, data) == ("error", {"title": title}, message)


def test_escapes_are_the_ones_actions_core_makes():
    assert escape_property("a:b,c%d\r\ne") == "a%3Ab%2Cc%25d%0D%0Ae"
    assert command("error", "50% of\nit: a,b", title="hlcli: x") == "::error title=hlcli%3A x::50%25 of%0Ait: a,b"


def test_at_most_ten_worst_first():
    base = make_run(40, seed=5)
    run = make_run(40, seed=5)
    for i, p in enumerate(run.pairs):  # pair i regresses by i * 0.01 in l1
        p.l1 += i * 0.01
    run = gate(run, fail_if=["mean.l1>0"], limits=["l1=0.001"], baseline=base)
    lines = annotations({"m": run.document()}, allow_skips=False, sweep=False, where="run.json")
    assert len(lines) == MAX_ANNOTATIONS
    parsed = [runner_parse(line) for line in lines]
    assert parsed[0][1]["title"] == "hlcli: gate failed" and parsed[0][2].startswith("mean l1 ")
    assert parsed[1][1]["title"] == "hlcli: mean regressed"
    keys = [p[1]["title"].split()[2] for p in parsed[2:-1]]
    # furthest over first: the rise beyond the allowance relative to the baseline, as the report sorts
    old = {p.key: p.l1 for p in base.pairs}
    new = {p.key: p.l1 for p in run.pairs}
    expected = sorted(old, key=lambda k: -((new[k] - old[k] - 0.001) / old[k]))
    assert keys == expected[:7]
    assert parsed[-1][2].startswith("… and 32 more failures")


def test_no_failure_no_annotation():
    assert annotations({"m": gate(make_run(3), fail_if=["mean.l1>1"]).document()}, allow_skips=False, sweep=False, where="x") == []


def test_summary_of_20000_pairs_stays_under_one_mib_and_says_what_it_left_out():
    n = 20_000
    keys = [f"a-rather-long-folder-name/with/sub/folders/and-a-long-file-name-{i:06d}" for i in range(n)]
    base = make_run(n, keys=keys, seed=7)
    run = make_run(n, keys=keys, seed=7, shift=0.01)
    run = gate(run, fail_if=["mean.hybrid>0.01"], limits=["all=0"], baseline=base)
    doc = run.document()
    assert len(doc["gate"]["regressions"]["regressed"]) >= 40_000
    started = time.perf_counter()
    text = step_summary({"model": doc}, allow_skips=False, sweep=False, where="run.json", max_rows=100_000)
    assert time.perf_counter() - started < 30
    assert len(text.encode()) < SUMMARY_LIMIT
    assert "❌ **failed**" in text and "#### Means" in text and "#### Failing gates" in text
    assert "regressed pair rows left out to keep this summary under GitHub's 1 MiB; every pair is in run.json." in text
    shown = text.count("| `a-rather")
    left = int(text.split(" regressed pair rows left out")[0].rsplit("\n", 1)[-1].replace(",", ""))
    assert shown + left == len(doc["gate"]["regressions"]["regressed"])


def test_summary_budget_counts_what_the_step_already_wrote():
    run = gate(make_run(200, seed=1, shift=0.01), limits=["all=0"], baseline=make_run(200, seed=1))
    text = step_summary({"m": run.document()}, allow_skips=False, sweep=False, where="run.json", budget=5000)
    assert len(text.encode()) <= 5000 and "left out" in text


def test_a_set_metric_with_one_value_shows_beside_the_means():
    """A set metric (one value per run, no per-pair statistics, in the summary's ``sets`` as a
    run with --metrics fid writes it) flows through like the others."""
    doc = make_run(2).document()
    doc["summary"]["sets"] = {"samples": 2, "dims": 64, "small": True, "note": "small", "fid": 12.5}
    suite = next(iter(parse(junit_xml([junit_suite("m", doc)], time=0.0)[0])))
    assert "fid 12.5" in next(iter(suite)).system_out and "mean fid" not in next(iter(suite)).system_out
    assert "| FID↓ | 12.5 |" in step_summary({"m": doc}, allow_skips=False, sweep=False, where="x")
