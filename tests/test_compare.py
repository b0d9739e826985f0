"""hlcli compare: two runs over the same ground truth, pair by pair (hlcli.analysis.compare)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from hlcli.cli import cli
from hlcli.analysis.compare import bootstrap_interval, compare_runs
from hlcli.render.compare import write_compare
from hlcli.errors import InputError
from tests import synthetic
from tests.conftest import degrade, save
from tests.schemas import validate_compare, validate_score

A = {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0, "x": 7.0}
B = {"a": 0.5, "b": 2.0, "c": 3.5, "d": 4.5, "y": 1.0}  # a better, b tie, c and d worse; x only in A, y only in B


def result(**kw):
    return compare_runs(synthetic.document(A), synthetic.document(B), a_name="A.json", b_name="B.json", **kw)


def test_known_differences():
    r = validate_compare(result())
    assert r["pairs"] == {"common": 4, "only_a": ["x"], "only_b": ["y"]}
    l1 = r["metrics"]["l1"]
    assert (l1["b_wins"], l1["b_losses"], l1["ties"]) == (1, 2, 1)
    assert (l1["mean_a"], l1["mean_b"], l1["mean_diff"], l1["relative_diff"]) == (2.5, 2.625, 0.125, 0.05)
    assert l1["ci_low"] <= 0.125 <= l1["ci_high"]
    assert -0.5 <= l1["ci_low"] and l1["ci_high"] <= 0.5  # the mean of resampled diffs stays within their range
    assert list(r["metrics"]) == ["l1", "conv3_3", "conv4_3", "perceptual", "hybrid"]
    hybrid = r["metrics"]["hybrid"]  # hybrid = l1 * (1 + 0.05 * 0.75) for these synthetic pairs
    assert hybrid["mean_diff"] == pytest.approx(0.125 * 1.0375, rel=1e-12)
    assert (hybrid["b_wins"], hybrid["b_losses"], hybrid["ties"]) == (1, 2, 1)
    assert r["changed_most"]["by"] == "hybrid"
    assert {p["key"] for p in r["changed_most"]["pairs"][:3]} == {"a", "c", "d"}
    assert r["changed_most"]["pairs"][3] == {"key": "b", "a": 2.075, "b": 2.075, "diff": 0.0, "relative_diff": 0.0}
    by_l1 = result(by="l1")["changed_most"]["pairs"]
    assert [p["key"] for p in by_l1] == ["a", "c", "d", "b"]  # |diff| descending, ties by key
    assert (by_l1[0]["diff"], by_l1[0]["relative_diff"]) == (-0.5, -0.5)
    assert r["a"]["settings"]["layers"] == [{"name": "conv3_3", "weight": 1.0}, {"name": "conv4_3", "weight": 1.0}]


def test_top_and_by():
    r = result(top=2, by="l1")
    assert r["changed_most"]["by"] == "l1" and [p["key"] for p in r["changed_most"]["pairs"]] == ["a", "c"]
    assert result(top=0)["changed_most"]["pairs"] == []
    with pytest.raises(InputError, match="--by ssim"):
        result(by="ssim")


def test_bootstrap_is_seeded_and_reproducible():
    first, again = result(seed=7), result(seed=7)
    assert first["metrics"] == again["metrics"] and first["bootstrap"]["seed"] == 7
    rng = np.random.default_rng(0)
    a = synthetic.document({f"k{i}": float(v) for i, v in enumerate(rng.uniform(1, 2, 60))})
    b = synthetic.document({f"k{i}": float(v) for i, v in enumerate(rng.uniform(1, 2, 60))})
    s7, s7again, s8 = (compare_runs(a, b, seed=s)["metrics"]["l1"] for s in (7, 7, 8))
    assert s7 == s7again and (s7["ci_low"], s7["ci_high"]) != (s8["ci_low"], s8["ci_high"])
    none = validate_compare(result(resamples=0))
    assert none["metrics"]["l1"]["ci_low"] is None and none["metrics"]["l1"]["mean_diff"] == 0.125


def test_bootstrap_interval_matches_the_normal_approximation():
    rng = np.random.default_rng(123)
    diffs = rng.normal(0.01, 0.05, size=(400, 1))
    low, high = bootstrap_interval(diffs, seed=0, resamples=4000)
    mean, half = diffs.mean(), 1.96 * diffs.std() / np.sqrt(len(diffs))
    assert low[0] == pytest.approx(mean - half, abs=0.15 * half)
    assert high[0] == pytest.approx(mean + half, abs=0.15 * half)


def test_bootstrap_of_a_constant_shift_is_that_shift():
    low, high = bootstrap_interval(np.full((50, 2), 0.25), seed=0, resamples=500)
    assert list(low) == [0.25, 0.25] and list(high) == [0.25, 0.25]


def test_bootstrap_chunking_does_not_change_the_interval(monkeypatch):
    import hlcli.analysis.compare as c

    diffs = np.random.default_rng(1).normal(size=(37, 3))
    monkeypatch.setattr(c, "_CHUNK_VALUES", 37 * 7)  # resample in chunks of 7 rows
    expected = bootstrap_interval(diffs, seed=5, resamples=300)
    rng = np.random.default_rng(5)  # the definition, written out: all indices in one draw
    means = diffs[rng.integers(0, 37, size=(300, 37))].mean(axis=1)
    assert np.allclose(expected[0], np.percentile(means, 2.5, axis=0), rtol=0, atol=1e-15)
    assert np.allclose(expected[1], np.percentile(means, 97.5, axis=0), rtol=0, atol=1e-15)


def test_settings_mismatch_refused_unless_overridden():
    other = synthetic.document(B, lam=0.1, precision="fp16")
    with pytest.raises(InputError) as info:
        compare_runs(synthetic.document(A), other, a_name="A.json", b_name="B.json")
    msg = str(info.value)
    assert info.value.exit_code == 2 and "--allow-settings-mismatch" in msg
    assert "lambda 0.05 (A.json) vs 0.1 (B.json)" in msg and "precision fp32 (A.json) vs fp16 (B.json)" in msg
    r = validate_compare(compare_runs(synthetic.document(A), other, a_name="A.json", b_name="B.json",
                                      allow_settings_mismatch=True))
    assert len(r["settings_differences"]) == 2


def test_only_shared_layers_are_compared_with_an_override():
    pairs = [synthetic.pair("a", 1.0, {"conv4_3": 0.1, "conv5_4": 0.2})]
    other = synthetic.document(pairs, layers=(("conv4_3", 1.0), ("conv5_4", 1.0)))
    r = compare_runs(synthetic.document(A), other, allow_settings_mismatch=True)
    assert list(r["metrics"]) == ["l1", "conv4_3", "perceptual", "hybrid"]


def test_no_common_pairs():
    with pytest.raises(InputError, match="no pair in common"):
        compare_runs(synthetic.document({"a": 1.0}), synthetic.document({"b": 1.0}))


def test_markdown_and_table_rendering():
    import io

    r = result()
    md = io.StringIO()
    write_compare(r, "markdown", md)
    text = md.getvalue()
    assert text.startswith("## hlcli compare\n")
    assert "| metric | mean A | mean B | B − A | relative | 95% interval | B better | B worse | ties |" in text
    assert "| l1 | 2.5 | 2.625 | +0.125 | +5% | [" in text and "| 1 | 2 | 1 |" in text
    assert "### Pairs that changed most (hybrid)" in text and "| `a` |" in text
    assert "Only in A (not compared): `x`" in text and "Only in B (not compared): `y`" in text
    table = io.StringIO()
    write_compare(r, "table", table)
    out = table.getvalue()
    assert "4 pairs in both, 1 only in A, 1 only in B" in out and "B better" in out and "+0.125" in out
    assert "\x1b[" not in out  # not a terminal: no colour codes
    with pytest.raises(ValueError):
        write_compare(r, "csv", io.StringIO())


@pytest.mark.parametrize("columns", [60, 80])
def test_headline_wraps_between_words_only(columns, monkeypatch):
    """compare's first line on a narrow terminal: wrapped at spaces, a long path never cut."""
    import io
    import re

    monkeypatch.setenv("COLUMNS", str(columns))
    long_a = "runs/" + "a_long_experiment_name_" * 4 + "A.json"
    r = compare_runs(synthetic.document(A), synthetic.document(B), a_name=long_a, b_name="B.json")
    out = io.StringIO()
    write_compare(r, "table", out, terminal=True)
    lines = re.sub(r"\x1b\[[0-9;]*m", "", out.getvalue()).splitlines()
    assert any(line.split() == [long_a] or long_a in line.split() for line in lines)  # whole, on one line
    headline = "A = " + long_a + " (5 pairs), B = B.json (5 pairs): 4 pairs in both, 1 only in A, 1 only in B"
    text = " ".join(" ".join(lines).split())
    assert headline in text  # rejoined at the line breaks, the sentence is unchanged: no word was cut


# -- CLI ---------------------------------------------------------------------------------------

@pytest.fixture
def docs(tmp_path):
    a, b = tmp_path / "A.json", tmp_path / "B.json"
    a.write_text(json.dumps(synthetic.document(A)))
    b.write_text(json.dumps(synthetic.document(B)))
    return a, b


def test_cli_compare_formats(docs, tmp_path):
    runner = CliRunner()
    a, b = map(str, docs)
    res = runner.invoke(cli, ["compare", a, b, "-f", "json", "--seed", "3", "--bootstrap", "200", "--top", "1"])
    assert res.exit_code == 0, res.stderr
    r = validate_compare(res.stdout)
    assert r["bootstrap"] == {"resamples": 200, "seed": 3, "confidence": 0.95, "method": "percentile"}
    assert len(r["changed_most"]["pairs"]) == 1 and r["a"]["path"] == a
    assert runner.invoke(cli, ["compare", a, b]).stdout.startswith("A = ")  # table when not -o/-f
    res = runner.invoke(cli, ["compare", a, b, "-o", str(tmp_path / "cmp.md")])
    assert res.exit_code == 0 and res.stdout == ""
    assert (tmp_path / "cmp.md").read_text().startswith("## hlcli compare")
    res = runner.invoke(cli, ["compare", a, b, "-o", str(tmp_path / "cmp.json")])
    validate_compare((tmp_path / "cmp.json").read_text())


def test_cli_compare_refusals(docs, tmp_path):
    runner = CliRunner()
    a, _ = docs
    other = tmp_path / "other.json"
    other.write_text(json.dumps(synthetic.document(B, layers=(("conv3_3", 1.0), ("conv4_3", 2.0)))))
    res = runner.invoke(cli, ["compare", str(a), str(other)])
    assert res.exit_code == 2 and "conv4_3×2" in res.stderr and "--allow-settings-mismatch" in res.stderr
    assert runner.invoke(cli, ["compare", str(a), str(other), "--allow-settings-mismatch"]).exit_code == 0
    broken = tmp_path / "broken.json"
    broken.write_text("[1, 2")
    res = runner.invoke(cli, ["compare", str(a), str(broken)])
    assert res.exit_code == 2 and "broken.json" in res.stderr and res.stderr.count("\n") == 1
    assert runner.invoke(cli, ["compare", str(a), str(tmp_path / "absent.json")]).exit_code == 2
    assert runner.invoke(cli, ["compare", str(a), str(a), "--by", "nope"]).exit_code == 2


def test_cli_compare_two_real_runs(cli_env, pair_dirs, tmp_path):
    """Model B restores every degraded pair worse than model A; the identical pair ties at 0."""
    runner = CliRunner()
    restored, gt = pair_dirs
    a = runner.invoke(cli, ["score", str(restored), str(gt), "-f", "json", "-o", str(tmp_path / "a.json"), "--workers", "0"])
    assert a.exit_code == 0, a.stderr
    from PIL import Image

    for name in ("a", "b", "c"):
        img = np.asarray(Image.open(restored / f"{name}.png"))
        save(restored / f"{name}.png", degrade(img, seed=7, amount=30.0))
    b = runner.invoke(cli, ["score", str(restored), str(gt), "-f", "json", "-o", str(tmp_path / "b.json"), "--workers", "0"])
    assert b.exit_code == 0, b.stderr
    res = runner.invoke(cli, ["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "-f", "json"])
    assert res.exit_code == 0, res.stderr
    r = validate_compare(res.stdout)
    for name, m in r["metrics"].items():
        assert (m["b_wins"], m["b_losses"], m["ties"]) == (0, 3, 1), name
        assert m["mean_diff"] > 0 and 0 < m["ci_low"] <= m["mean_diff"] <= m["ci_high"], name
    assert r["changed_most"]["pairs"][-1] == {"key": "same", "a": 0.0, "b": 0.0, "diff": 0.0, "relative_diff": None}
    validate_score((tmp_path / "a.json").read_text())
