"""Quality gates: --fail-if expressions, --baseline regressions, settings checks (hlcli.analysis.gate),
first as fast unit tests on synthetic runs, then end to end through the CLI."""

from __future__ import annotations

import json
import math
import re
import statistics

import pytest
from click.testing import CliRunner

from hlcli.analysis import gate as g
from hlcli.render import gate as gr
from hlcli.cli import cli
from hlcli.errors import InputError
from tests import synthetic
from tests.schemas import validate_jsonl, validate_score

# l1 values with exactly known statistics (all binary-exact): n=5, mean 4, median 3, min 1, max 10
VALUES = {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0, "e": 10.0}


def type7(values: list[float], q: float) -> float:
    """Hyndman & Fan type 7 percentile, written out plainly (independent of numpy)."""
    v = sorted(values)
    h = (len(v) - 1) * q / 100
    lo = math.floor(h)
    return v[lo] + (h - lo) * (v[min(lo + 1, len(v) - 1)] - v[lo])


EXPECTED = {
    "count": 5, "mean": 4.0, "median": 3.0, "std": statistics.pstdev(VALUES.values()), "min": 1.0, "max": 10.0,
    "p50": 3.0, "p90": 7.6, "p95": 8.8, "p99": 9.76, "p0": 1.0, "p100": 10.0, "p25": 2.0, "p99.9": type7(list(VALUES.values()), 99.9),
}


# -- parsing ---------------------------------------------------------------------------------

@pytest.mark.parametrize("stat", list(EXPECTED))
def test_parse_every_stat(stat):
    gate = g.parse_gate(f"{stat}.hybrid>0.5")
    assert (gate.stat, gate.metric, gate.op, gate.threshold) == (stat, "hybrid", ">", 0.5)


@pytest.mark.parametrize("op", [">", ">=", "<", "<=", "==", "!="])
@pytest.mark.parametrize("template", ["mean.l1{op}0.25", " mean . l1 {op} 0.25 ", "MEAN.L1{op}2.5e-1"])
def test_parse_every_operator_with_spaces_and_case(op, template):
    gate = g.parse_gate(template.format(op=op))
    assert (gate.stat, gate.metric, gate.op, gate.threshold) == ("mean", "l1", op, 0.25)
    assert " " not in gate.expression and gate.expression.startswith("mean.l1" + op)


@pytest.mark.parametrize("text", ["", "mean.hybrid", "hybrid>1", "mean hybrid>1", "avg.hybrid>1", "p101.l1>1",
                                  "p-1.l1>1", "mean.l1>nan", "mean.l1>inf", "mean.l1=>1", "mean.l1>1 2",
                                  "mean.l1>abc", "mean.l1>", "mean.>1", "mean.l1=1"])
def test_parse_rejects(text):
    with pytest.raises(ValueError, match="gate|statistic|threshold"):
        g.parse_gate(text)


def test_unknown_metric_or_unscored_layer_is_rejected():
    ok = [g.parse_gate(s) for s in ("mean.l1>1", "max.perceptual>2", "p95.hybrid>1", "mean.conv4_3>0.5")]
    g.check_metrics(ok, ["conv3_3", "conv4_3"])
    for text in ("mean.relu3_3>0", "mean.conv5_4>0", "mean.sharpness>0"):
        with pytest.raises(ValueError, match="unknown metric"):
            g.check_metrics([g.parse_gate(text)], ["conv3_3", "conv4_3"])


# -- evaluation -------------------------------------------------------------------------------

@pytest.mark.parametrize("stat", list(EXPECTED))
def test_every_stat_observed_value(stat):
    [check] = g.evaluate_gates([g.parse_gate(f"{stat}.l1>100")], synthetic.pairs(VALUES))
    assert check["observed"] == pytest.approx(EXPECTED[stat], rel=1e-12, abs=1e-15)
    assert check["passed"] and check["reason"] is None


def test_summary_stats_and_gate_observations_agree_bit_for_bit():
    run = synthetic.run(VALUES)
    summary = run.summary()["metrics"]["hybrid"]
    gates = [g.parse_gate(f"{s}.hybrid>0") for s in g.GATE_STATS]
    for check in g.evaluate_gates(gates, run.pairs):
        assert check["observed"] == summary[check["stat"]]


# mean.l1 is exactly 4.0: the gate fails when the expression is TRUE; equality is the boundary.
@pytest.mark.parametrize("op,threshold,passed", [
    (">", 4.0, True), (">", 3.999, False), (">", 4.001, True),
    (">=", 4.0, False), (">=", 4.001, True),
    ("<", 4.0, True), ("<", 4.001, False),
    ("<=", 4.0, False), ("<=", 3.999, True),
    ("==", 4.0, False), ("==", 4.001, True),
    ("!=", 4.0, True), ("!=", 4.001, False),
])
def test_every_operator_at_and_around_the_boundary(op, threshold, passed):
    [check] = g.evaluate_gates([g.parse_gate(f"mean.l1{op}{threshold}")], synthetic.pairs(VALUES))
    assert check["observed"] == 4.0
    assert check["passed"] is passed


def test_gate_on_a_layer_metric():
    pairs = synthetic.pairs(VALUES)  # conv4_3 = l1 / 4 -> mean 1.0
    [fail, ok] = g.evaluate_gates([g.parse_gate("mean.conv4_3>0.5"), g.parse_gate("max.conv4_3>2.5")], pairs)
    assert (fail["observed"], fail["passed"]) == (1.0, False)
    assert (ok["observed"], ok["passed"]) == (2.5, True)


def test_undefined_statistic_fails_with_a_reason():
    checks = g.evaluate_gates([g.parse_gate("mean.hybrid>1"), g.parse_gate("count.hybrid<1"),
                               g.parse_gate("count.hybrid>5")], [])
    assert [c["passed"] for c in checks] == [False, False, True]
    assert checks[0]["observed"] is None and "no pairs" in checks[0]["reason"]
    lines = gr.failure_lines({"passed": False, "checks": checks, "regressions": None})
    assert lines == ["Gate failed: mean.hybrid>1 (undefined: no pairs were scored)",
                     "Gate failed: count.hybrid<1 (observed 0)"]


def test_failure_lines_one_per_failed_gate():
    plan = g.GateSpec([g.parse_gate("mean.l1>3"), g.parse_gate("max.l1>20"), g.parse_gate("p95.l1 > 8")])
    section = plan.evaluate(synthetic.run(VALUES))
    assert section["passed"] is False and section["regressions"] is None
    assert gr.failure_lines(section) == ["Gate failed: mean.l1>3 (observed 4)", "Gate failed: p95.l1>8 (observed 8.8)"]
    close = {"observed": 0.08000001, "op": ">", "threshold": 0.08}
    assert gr._shown(close) == "0.08000001" and gr._shown(dict(close, observed=0.0913)) == "0.0913"
    assert g.GateSpec().evaluate(synthetic.run({})) is None  # nothing to check: no gate section


# -- regression limits ------------------------------------------------------------------------

@pytest.mark.parametrize("text,metric,value,relative", [
    ("2%", "hybrid", 0.02, True), ("0.001", "hybrid", 0.001, False), ("l1=1%", "l1", 0.01, True),
    ("all=5%", "all", 0.05, True), (" conv4_3 = 0.5 % ", "conv4_3", 0.005, True), ("hybrid=0", "hybrid", 0.0, False),
])
def test_parse_limit(text, metric, value, relative):
    lim = g.parse_limit(text)
    assert (lim.metric, lim.relative) == (metric, relative)
    assert lim.value == pytest.approx(value, rel=1e-15)


@pytest.mark.parametrize("text", ["-1%", "x", "hybrid=", "nan", "inf%", "2%%", "=2", "l1=2=3", ""])
def test_parse_limit_rejects(text):
    with pytest.raises(ValueError, match="regression limit"):
        g.parse_limit(text)


def test_specific_limit_replaces_all():
    lims = [g.parse_limit("all=5%"), g.parse_limit("hybrid=1%"), g.parse_limit("hybrid=0.5")]
    applied = g.limits_by_metric(lims, ["l1", "hybrid"])
    assert [x.expression for x in applied["l1"]] == ["all=5%"]
    assert [x.expression for x in applied["hybrid"]] == ["hybrid=1%", "hybrid=0.5"]


def regress(base: dict[str, float], cur: dict[str, float], *limits: str, pair_limits: tuple[str, ...] = ()):
    lims = g.scoped([g.parse_limit(s) for s in limits], [g.parse_limit(s) for s in pair_limits])
    return g.compare_to_baseline(synthetic.pairs(cur), ["conv3_3", "conv4_3"], synthetic.document(base),
                                 lims, baseline_path="base.json")


def by_metric(reg: dict) -> dict:
    return {e["metric"]: e for e in reg["summary"]}


def test_identical_runs_pass_with_zero_tolerance():
    reg = regress(VALUES, VALUES, "all=0")
    assert reg["passed"] and reg["regressed"] == [] and reg["pairs_compared"] == 5
    assert all(e["delta"] == 0 and e["passed"] for e in reg["summary"])


def test_pair_regression_fails_while_the_mean_passes():
    reg = regress({"a": 1.0, "b": 2.0}, {"a": 1.0, "b": 2.5}, "l1=20%")
    assert not reg["passed"]
    [r] = reg["regressed"]
    assert (r["key"], r["metric"], r["baseline"], r["observed"], r["delta"]) == ("b", "l1", 2.0, 2.5, 0.5)
    assert r["allowed"] == pytest.approx(0.4) and r["relative_change"] == 0.25
    l1 = by_metric(reg)["l1"]
    assert l1["passed"] and (l1["baseline"], l1["observed"], l1["delta"]) == (1.5, 1.75, 0.25)
    assert by_metric(reg)["hybrid"]["allowed"] is None  # no limit on hybrid: reported only
    line = [x for x in gr.failure_lines({"passed": False, "checks": [], "regressions": reg})]
    assert line == ["Regression: pair b l1 2.5 vs baseline 2 (+25%; allowed 0.4 rise, over by 0.1)"]


def test_summary_regression_fails_while_every_pair_passes():
    base = {k: 1.0 for k in "abcd"}
    reg = regress(base, {k: 1.25 for k in "abcd"}, "l1=1%", pair_limits=("l1=50%",))
    assert not reg["passed"] and reg["regressed"] == []
    l1 = by_metric(reg)["l1"]
    assert not l1["passed"] and l1["relative_change"] == 0.25
    assert [lim["scope"] for lim in reg["limits"]] == ["mean", "pairs"]
    assert gr.failure_lines({"passed": False, "checks": [], "regressions": reg}) == [
        "Regression: mean l1 over 4 common pairs 1.25 vs baseline 1 (+25%; allowed 0.01 rise, over by 0.24)"]


def test_regression_equal_to_the_limit_passes_and_just_above_fails():
    assert regress({"a": 1.0}, {"a": 1.25}, "l1=25%")["passed"]  # delta 0.25 == allowed 0.25
    assert regress({"a": 1.0}, {"a": 1.25}, "l1=0.25")["passed"]
    assert not regress({"a": 1.0}, {"a": 1.2500001}, "l1=25%")["passed"]
    assert regress({"a": 1.0}, {"a": 0.5}, "l1=0")["passed"]  # improvements never fail


def test_relative_limit_on_a_zero_baseline_needs_an_absolute_one():
    assert not regress({"a": 0.0}, {"a": 1e-9}, "l1=10%")["passed"]
    assert regress({"a": 0.0}, {"a": 1e-9}, "l1=10%", "l1=1e-6")["passed"]  # the most lenient limit applies
    assert regress({"a": 0.0}, {"a": 0.0}, "l1=10%")["passed"]
    assert by_metric(regress({"a": 0.0}, {"a": 1e-9}, "l1=10%"))["l1"]["relative_change"] is None


def test_new_and_missing_pairs_are_reported_not_failed():
    reg = regress({"a": 1.0, "b": 1.0, "gone": 1.0}, {"a": 1.0, "b": 1.0, "fresh": 9.0}, "all=0")
    assert reg["passed"] and reg["new"] == ["fresh"] and reg["missing"] == ["gone"] and reg["pairs_compared"] == 2
    notes = gr.note_lines({"regressions": reg})
    assert notes == ["Note: 1 pair not in the baseline: fresh",
                     "Note: 1 pair in the baseline but not scored now: gone"]


def test_no_common_pair_fails_a_limited_check_but_not_a_report():
    assert not regress({"a": 1.0}, {"b": 1.0}, "2%")["passed"]
    assert regress({"a": 1.0}, {"b": 1.0})["passed"]  # --baseline alone only reports


def test_baseline_section_of_a_plan_is_schema_valid():
    run = synthetic.run({"a": 1.0, "b": 3.0})
    plan = g.GateSpec([g.parse_gate("mean.hybrid>10")], g.scoped([g.parse_limit("1%")], []),
                      synthetic.document({"a": 1.0, "b": 2.0}), "base.json")
    run.gate = plan.evaluate(run)
    assert run.gate["passed"] is False and run.gate["checks"][0]["passed"] is True
    validate_score(run.document())
    validate_score(run.document(summary_only=True))


# -- settings ---------------------------------------------------------------------------------

@pytest.mark.parametrize("change,needle", [
    ({"lam": 0.1}, "lambda 0.05 (baseline) vs 0.1 (this run)"),
    ({"layers": (("conv4_3", 1.0),)}, "layers conv3_3×1, conv4_3×1 (baseline) vs conv4_3×1 (this run)"),
    ({"layers": (("conv4_3", 1.0), ("conv3_3", 1.0))}, "layers"),  # order
    ({"layers": (("conv3_3", 1.0), ("conv4_3", 0.5))}, "conv4_3×0.5"),  # weights
    ({"sha256": "cd" * 32}, "weights sha256 abababababab… (baseline) vs cdcdcdcdcdcd… (this run)"),
    ({"precision": "bf16"}, "precision fp32 (baseline) vs bf16 (this run)"),
])
def test_settings_mismatch_is_refused_and_named(change, needle):
    plan = g.GateSpec(baseline=synthetic.document(VALUES), baseline_path="base.json")
    assert plan.check_settings(synthetic.settings()) == []
    with pytest.raises(InputError) as info:
        plan.check_settings(synthetic.settings(**change))
    assert info.value.exit_code == 2
    assert needle in str(info.value) and "--allow-settings-mismatch" in str(info.value) and "base.json" in str(info.value)
    plan.allow_settings_mismatch = True
    [diff] = plan.check_settings(synthetic.settings(**change))
    section = plan.evaluate(synthetic.run(VALUES))
    assert section["regressions"]["settings_differences"] == [diff]
    assert gr.note_lines(section)[0].startswith("Warning: comparing with a baseline made with different settings")


def test_partial_settings_skip_the_weights_check():
    plan = g.GateSpec(baseline=synthetic.document(VALUES), baseline_path="base.json")
    partial = {"lambda": 0.05, "precision": "fp32", "layers": [{"name": "conv3_3", "weight": 1.0},
                                                              {"name": "conv4_3", "weight": 1.0}]}
    assert plan.check_settings(partial) == []


def test_limit_on_a_layer_the_baseline_lacks_is_refused():
    plan = g.GateSpec(limits=[g.parse_limit("relu2_2=1%")], baseline=synthetic.document(VALUES),
                      baseline_path="base.json", allow_settings_mismatch=True)
    with pytest.raises(InputError, match="baseline has no relu2_2"):
        plan.check_settings(synthetic.settings(layers=(("relu2_2", 1.0),)))


# -- loading a stored run ---------------------------------------------------------------------

def test_load_document(tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(synthetic.document(VALUES)))
    assert len(g.load_document(good)["pairs"]) == 5
    cases = {
        "missing.json": None,
        "text.json": "not json",
        "nan.json": json.dumps(synthetic.document(VALUES)).replace('"l1": 1.0', '"l1": NaN', 1),
        "shape.json": json.dumps({"tool": "hlcli"}),
        "summary.json": json.dumps(synthetic.run(VALUES).document(summary_only=True)),
    }
    for name, text in cases.items():
        if text is not None:
            (tmp_path / name).write_text(text)
        with pytest.raises(InputError) as info:
            g.load_document(tmp_path / name)
        assert info.value.exit_code == 2 and name in str(info.value), name


# -- end to end -------------------------------------------------------------------------------

@pytest.fixture
def runner():
    return CliRunner()


def score(runner, pair_dirs, *args, input=None):
    restored, gt = pair_dirs
    return runner.invoke(cli, ["score", str(restored), str(gt), "--workers", "0", *args], input=input)


@pytest.fixture
def no_scoring(monkeypatch):
    """Fail the test if anything gets as far as scoring."""
    import hlcli.engine.scoring

    def boom(*a, **k):
        raise AssertionError("scoring started")

    monkeypatch.setattr(hlcli.engine.scoring, "score_pairing", boom)


def test_cli_passing_and_failing_gates(runner, cli_env, pair_dirs):
    ok = score(runner, pair_dirs, "-f", "json", "--fail-if", "mean.hybrid>1", "--fail-if", "count.l1!=4")
    assert ok.exit_code == 0, ok.stderr
    doc = validate_score(ok.stdout)
    assert doc["gate"]["passed"] is True and [c["expression"] for c in doc["gate"]["checks"]] == ["mean.hybrid>1", "count.l1!=4"]
    assert "Gate failed" not in ok.stderr

    mean = doc["summary"]["metrics"]["hybrid"]["mean"]
    bad = score(runner, pair_dirs, "-f", "jsonl", "--fail-if", f"mean.hybrid>={mean!r}", "--fail-if", "max.l1>1",
                "--fail-if", "p90.conv4_3 > 0")
    assert bad.exit_code == 1, bad.stderr
    failed = [re.fullmatch(r"Gate failed: (\S+) \(observed (\S+)\)", line)
              for line in bad.stderr.splitlines() if line.startswith("Gate failed")]
    assert [m[1] for m in failed] == [f"mean.hybrid>={mean!r}", "p90.conv4_3>0"]
    p90 = doc["summary"]["metrics"]["conv4_3"]["p90"]
    assert float(failed[0][2]) == pytest.approx(mean, rel=1e-5) and float(failed[0][2]) >= mean
    assert float(failed[1][2]) == pytest.approx(p90, rel=1e-5) and float(failed[1][2]) > 0
    summary = validate_jsonl(bad.stdout)[-1]
    assert [c["passed"] for c in summary["gate"]["checks"]] == [False, True, False]


def test_cli_gate_failure_in_markdown(runner, cli_env, pair_dirs):
    res = score(runner, pair_dirs, "-f", "markdown", "--fail-if", "max.hybrid>0", "--quiet")
    assert res.exit_code == 1
    assert res.stdout.startswith("## hlcli score · ❌ gates failed")
    assert "| `max.hybrid>0` |" in res.stdout and "❌ fail" in res.stdout
    assert res.stderr.startswith("Gate failed: max.hybrid>0 (observed ")  # shown even with --quiet


@pytest.mark.parametrize("args,needle", [
    (["--fail-if", "mean.relu3_3>0"], "unknown metric 'relu3_3'"),
    (["--fail-if", "mean.conv4_3>0", "--layers", "conv3_3"], "unknown metric 'conv4_3'"),
    (["--fail-if", "average.hybrid>0"], "unknown statistic"),
    (["--fail-if", "mean.hybrid>x"], "not a finite number"),
    (["--max-regression", "2%"], "need --baseline"),
    (["--max-regression", "abc"], "invalid regression limit"),
])
def test_cli_bad_gates_are_exit_2_before_scoring(runner, cli_env, pair_dirs, no_scoring, args, needle):
    res = score(runner, pair_dirs, *args)
    assert res.exit_code == 2, (res.stderr, res.exception)
    assert needle in res.stderr and res.stdout == ""


@pytest.fixture
def baseline(runner, cli_env, pair_dirs, tmp_path):
    res = score(runner, pair_dirs, "-f", "json", "-o", str(tmp_path / "base.json"))
    assert res.exit_code == 0, res.stderr
    return tmp_path / "base.json"


def edit(path, func):
    doc = json.loads(path.read_text())
    func(doc)
    out = path.with_name("edited.json")
    out.write_text(json.dumps(doc))
    return out


def test_cli_baseline_regressions(runner, pair_dirs, baseline):
    same = score(runner, pair_dirs, "-f", "json", "--baseline", str(baseline), "--max-regression", "all=0")
    assert same.exit_code == 0, same.stderr
    reg = validate_score(same.stdout)["gate"]["regressions"]
    assert reg["passed"] and reg["pairs_compared"] == 4 and reg["new"] == reg["missing"] == []

    def better_past(doc):  # the baseline had a much better 'a' and no 'c'; it had a pair 'old'
        a = next(p for p in doc["pairs"] if p["key"] == "a")
        a["hybrid"] /= 2
        doc["pairs"] = [p for p in doc["pairs"] if p["key"] != "c"] + [dict(a, key="old")]

    res = score(runner, pair_dirs, "-f", "markdown", "--baseline", str(edit(baseline, better_past)),
                "--max-regression", "2%", "--max-pair-regression", "10%")
    assert res.exit_code == 1, res.stderr
    assert "Regression: pair a hybrid" in res.stderr and "(+100%; allowed " in res.stderr
    assert "Regression: mean hybrid over 3 common pairs" in res.stderr
    assert "Note: 1 pair not in the baseline: c" in res.stderr
    assert "Note: 1 pair in the baseline but not scored now: old" in res.stderr
    assert "### Regression against `" in res.stdout and "| hybrid |" in res.stdout and "❌ regressed" in res.stdout


def test_cli_settings_mismatch_is_refused_before_scoring(runner, pair_dirs, baseline, monkeypatch):
    res = score(runner, pair_dirs, "--baseline", str(baseline), "--lambda", "0.1", "--layers", "conv4_3")
    assert res.exit_code == 2
    assert "lambda 0.05 (baseline) vs 0.1 (this run)" in res.stderr and "layers conv3_3×1, conv4_3×1" in res.stderr
    assert "--allow-settings-mismatch" in res.stderr

    other = edit(baseline, lambda d: d["settings"]["weights"].update(sha256="0" * 64))
    res = score(runner, pair_dirs, "-f", "jsonl", "--baseline", str(other))
    assert res.exit_code == 2 and "weights sha256 000000000000…" in res.stderr
    lines = validate_jsonl(res.stdout)
    assert [line["type"] for line in lines] == ["aborted"]  # refused once the weights were known, nothing scored

    res = score(runner, pair_dirs, "-f", "json", "--baseline", str(other), "--allow-settings-mismatch")
    assert res.exit_code == 0, res.stderr
    assert "Warning: comparing with a baseline made with different settings (weights sha256" in res.stderr
    assert validate_score(res.stdout)["gate"]["regressions"]["settings_differences"][0].startswith("weights sha256")


def test_cli_bad_baseline_file_is_exit_2(runner, cli_env, pair_dirs, tmp_path, no_scoring):
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema_version": 1}')
    res = score(runner, pair_dirs, "--baseline", str(bad))
    assert res.exit_code == 2 and "bad.json: " in res.stderr and "is missing (a required key)" in res.stderr
    res = score(runner, pair_dirs, "--baseline", str(tmp_path / "absent.json"))
    assert res.exit_code == 2 and "absent.json" in res.stderr


def test_cli_incomplete_run_exit_2_wins_over_a_failed_gate(runner, cli_env, pair_dirs):
    restored, _ = pair_dirs
    (restored / "a.png").write_bytes(b"not a png")
    args = ["--on-error", "skip", "--fail-if", "count.hybrid<100", "-f", "json"]
    res = score(runner, pair_dirs, *args)
    assert res.exit_code == 2
    assert "Gate failed: count.hybrid<100 (observed 3)" in res.stderr and "skipped" in res.stderr
    assert validate_score(res.stdout)["gate"]["passed"] is False
    assert score(runner, pair_dirs, *args, "--allow-skips").exit_code == 1
