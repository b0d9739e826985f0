"""``--on-error skip`` over a whole directory of bad and awkward inputs (every case of
``tests/cases.py`` at once): every bad file is skipped with its reason, in the JSON document, on
stderr and in every output format; the awkward ones are scored correctly; the good pairs score as
in a clean run; ``--quiet`` still says why the run failed; ``--allow-skips`` accepts the result."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from .cases import (BAD, COMMON, GOODS, SCORED, assert_matches_reference, assert_same_as_baseline, assert_zero,
                    baseline, env, invoke, ref_model, reference, seed_of, strict_json, write_goods)

_FIXTURES = (baseline, env, ref_model)  # module-scoped fixtures shared from tests/cases.py


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, Path, dict]:
    """One directory pair holding every bad and every awkward case plus the good pairs."""
    root = tmp_path_factory.mktemp("corpus")
    r, g = root / "restored", root / "gt"
    write_goods(r, g)
    bad, scored = {}, {}
    for case in BAD:
        if case.skip_if:
            continue
        rp, gp = case.make(r, g, case.name, seed_of(case.name))
        bad[case.name] = (case, str(rp if case.culprit == "restored" else gp))
    for case in SCORED:
        if not case.skip_if:
            scored[case.key or case.name] = (case, *case.make(r, g, case.name, seed_of(case.name)))
    return r, g, {"bad": bad, "scored": scored}


@pytest.mark.slow
def test_whole_corpus_skip_mode_json(corpus, env, baseline, ref_model):
    r, g, info = corpus
    # --workers 1: decode errors cross the worker-process boundary intact
    res = invoke(env, r, g, *COMMON, "--workers", "1", "-f", "json", "--on-error", "skip")
    assert res.exit_code == 2, res.stderr
    assert "Traceback" not in res.stderr
    doc = strict_json(res.stdout)
    skipped = {s["key"]: s for s in doc["skipped"]}
    assert set(skipped) == set(info["bad"])
    for name, (case, culprit) in info["bad"].items():
        assert skipped[name]["path"] == culprit, name
        assert all(n in skipped[name]["reason"] for n in case.needles), (name, skipped[name]["reason"])
    pairs = {p["key"]: p for p in doc["pairs"]}
    assert set(pairs) == set(info["scored"]) | set(GOODS)
    for key, (case, _, _, exp_r, exp_g) in info["scored"].items():
        if case.zero:
            assert_zero(pairs[key], key)
        else:
            assert_matches_reference(pairs[key], reference(ref_model, exp_r, exp_g), key)
    assert_same_as_baseline(doc, baseline)
    summ = doc["summary"]
    assert summ["skipped"] == len(info["bad"]) and summ["count"] == len(pairs)
    assert doc["complete"] is False
    # stderr: one warning line per skip, then the error
    lines = res.stderr.splitlines()
    warnings = [line for line in lines if line.startswith("Warning: skipped ")]
    assert len(warnings) == len(info["bad"]) == len(lines) - 1
    for name, s in skipped.items():
        assert f"Warning: skipped {name}: {s['reason']}" in warnings
    assert lines[-1].startswith(f"Error: {len(info['bad'])} pairs skipped")


def test_whole_corpus_quiet_still_says_why_it_failed(corpus, env):
    r, g, info = corpus
    res = invoke(env, r, g, *COMMON, "-f", "csv", "--on-error", "skip", "--quiet")
    assert res.exit_code == 2
    assert res.stderr.splitlines() == [
        f"Error: {len(info['bad'])} pairs skipped: the result is incomplete (pass --allow-skips to accept that)"]


@pytest.mark.slow
def test_whole_corpus_every_format_lists_every_skip(corpus, env):
    r, g, info = corpus
    args = [r, g, *COMMON, "--on-error", "skip", "--allow-skips"]
    bad = info["bad"]

    res = invoke(env, *args, "-f", "csv")
    assert res.exit_code == 0, res.stderr
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    skipped = {row["key"]: row for row in rows if row["status"] == "skipped"}
    assert set(skipped) == set(bad)
    assert [row["key"] for row in rows] == sorted(row["key"] for row in rows)  # key order, skips included
    for name, (case, culprit) in bad.items():
        # the pair's files in their columns, the reason without repeating the path
        assert culprit in (skipped[name]["restored"], skipped[name]["gt"]) and skipped[name]["restored"] and skipped[name]["gt"]
        assert f"({culprit})" not in skipped[name]["reason"]
        assert all(n in skipped[name]["reason"] for n in case.needles)
        assert skipped[name]["l1"] == skipped[name]["hybrid"] == ""
    assert sum(row["status"] == "ok" for row in rows) == len(info["scored"]) + len(GOODS)

    res = invoke(env, *args, "-f", "jsonl")
    assert res.exit_code == 0
    records = [strict_json(line) for line in res.stdout.splitlines()]
    assert {x["key"] for x in records if x["type"] == "skipped"} == set(bad)
    summary = records[-1]
    assert summary["type"] == "summary" and summary["skipped"] == len(bad) and summary["complete"] is False

    for fmt in ("table", "markdown"):
        res = invoke(env, *args, "-f", fmt)
        assert res.exit_code == 0, (fmt, res.stderr)
        for name in bad:
            assert f"skipped {name}:" in res.stdout or f"skipped `{name}`:" in res.stdout, (fmt, name)
        assert "incomplete" in res.stdout.lower()
