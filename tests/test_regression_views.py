"""Baseline regressions of a higher-is-better metric, as every view shows them (issue 22 §2).

One sign convention everywhere: the allowance and the excess are amounts in the metric's bad
direction, named by its word (``0.5 dB drop`` for PSNR, ``0.001 rise`` for L1), the excess is
how far beyond the allowance a value went (a drop of 0.99 dB against 0.5 dB is over by 0.49 dB),
and lists of regressions are sorted furthest over first."""

from __future__ import annotations

import io
import json
import re

import pytest

from hlcli.analysis import gate as g
from hlcli.render import gate as gr
from hlcli.render import html
from tests import synthetic

BASE_PSNR = {"a": 30.0, "b": 31.0, "c": 32.0, "d": 40.0}
# drops of 0.99, 0.75, 2.0 dB and a rise of 1 dB (never a regression)
NEW_PSNR = {"a": 29.01, "b": 30.25, "c": 30.0, "d": 41.0}


def with_psnr(psnr: dict[str, float]) -> list:
    pairs = synthetic.pairs({k: 0.01 for k in psnr})
    for p in pairs:
        p.extra["psnr"] = psnr[p.key]
    return pairs


def psnr_gate(*limits: str) -> dict:
    base = synthetic.run(with_psnr(BASE_PSNR))
    base.settings["metrics"] = ["psnr"]
    lims = g.scoped([g.parse_limit(s) for s in limits], [])
    reg = g.compare_to_baseline(with_psnr(NEW_PSNR), ["conv3_3", "conv4_3"], base.document(), lims,
                                baseline_path="base.json", extra=("psnr",))
    return {"passed": reg["passed"], "checks": [], "regressions": reg}


@pytest.fixture(scope="module")
def gate():
    return psnr_gate("psnr=0.5")


def test_json_keeps_its_meaning_and_excess_is_in_the_bad_direction(gate):
    reg = gate["regressions"]
    by_key = {r["key"]: r for r in reg["regressed"]}
    assert sorted(by_key) == ["a", "b", "c"]  # d rose: never a regression
    a = by_key["a"]
    assert a["delta"] == pytest.approx(-0.99) and a["allowed"] == 0.5  # delta new - old; allowed >= 0
    assert g.excess(a) == pytest.approx(0.49)
    assert g.excess(by_key["c"]) == pytest.approx(1.5)
    [mean] = [e for e in reg["summary"] if e["metric"] == "psnr"]
    assert not mean["passed"] and g.excess(mean) == pytest.approx((0.99 + 0.75 + 2.0 - 1.0) / 4 - 0.5)


def test_stderr_lines(gate):
    lines = [x for x in gr.failure_lines(gate) if " pair a " in x]
    assert lines == ["Regression: pair a psnr 29.01 vs baseline 30 (-3.3%; allowed 0.5 dB drop, over by 0.49 dB)"]
    assert not any("-0.5" in x or "+0.5" in x or "+-" in x for x in gr.failure_lines(gate))


def test_markdown(gate):
    md = "\n".join(gr.markdown_lines(gate))
    row = next(x for x in md.splitlines() if x.startswith("| `a` |"))
    assert row == "| `a` | psnr | 30 | 29.01 | -3.3% | 0.5 dB drop | 0.49 dB |"
    mean = next(x for x in md.splitlines() if x.startswith("| psnr |"))
    assert "| 0.5 dB drop | 0.185 dB | ❌ regressed |" in mean
    assert "-0.5" not in md and "+0.5" not in md


def test_terminal_table(gate):
    from rich.console import Console

    out = io.StringIO()
    gr.print_table(Console(file=out, width=200, no_color=True), gate)
    line = next(x for x in out.getvalue().splitlines() if "mean psnr" in x)
    assert "allowed 0.5 dB drop, over by 0.185 dB" in line and "+0.5" not in line


def test_lower_is_better_uses_the_same_convention():
    lims = g.scoped([g.parse_limit("l1=0.25")], [])
    reg = g.compare_to_baseline(synthetic.pairs({"a": 1.0, "b": 2.0}), ["conv3_3", "conv4_3"],
                                synthetic.document({"a": 1.0, "b": 1.5}), lims, baseline_path="base.json")
    gate = {"passed": False, "checks": [], "regressions": reg}
    assert gr.failure_lines(gate)[-1] == ("Regression: pair b l1 2 vs baseline 1.5 (+33.3%; allowed 0.25 rise, "
                                          "over by 0.25)")


def cells(page: str, table_id: str) -> list[list[str]]:
    body = re.search(rf'<table id="{table_id}">.*?<tbody>(.*?)</tbody>', page, re.S).group(1)
    return [[re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)]


def test_html_report_sorted_furthest_over_first_with_positive_excess(gate):
    doc = synthetic.run(with_psnr(NEW_PSNR)).document()
    doc["settings"]["metrics"] = ["psnr"]
    doc["gate"] = gate
    page = html._explain(doc, html.Anchors(doc["pairs"], 12)) + html._gate(gate)
    assert "furthest over its allowance first" in page
    rows = cells(page, "regressed")
    assert [r[0] for r in rows] == ["c", "a", "b"]  # over by 1.5, 0.49, 0.25 dB (relative to 32, 30, 31)
    assert [r[4] for r in rows] == ["0.5 dB drop"] * 3
    assert [r[5] for r in rows] == ["1.5 dB", "0.49 dB", "0.25 dB"]
    [mean] = cells(page, "failed-means")
    assert mean[3:5] == ["0.5 dB drop", "0.185 dB"]
    psnr_row = next(r for r in cells(page, "regression-summary") if r[0] == "psnr")
    assert psnr_row[3] == "0.5 dB drop"
    assert "+-" not in page and "+0.5" not in page


def test_end_to_end_psnr_drop_in_every_view(cli_env, tmp_path):
    """A real run whose PSNR drops: stderr, Markdown, the table and the HTML report agree."""
    from click.testing import CliRunner
    from PIL import Image, ImageFilter

    from hlcli.cli import cli
    from tests.conftest import textured

    gt, good, blurred = (tmp_path / d for d in ("gt", "good", "blurred"))
    for d in (gt, good, blurred):
        d.mkdir()
    for i, sigma in enumerate((0.6, 1.2)):
        img = Image.fromarray(textured(40, 48, i))
        img.save(gt / f"p{i}.png")
        img.filter(ImageFilter.GaussianBlur(0.3)).save(good / f"p{i}.png")
        img.filter(ImageFilter.GaussianBlur(sigma)).save(blurred / f"p{i}.png")
    runner = CliRunner()
    base = tmp_path / "base.json"
    r = runner.invoke(cli, ["score", str(good), str(gt), "--metrics", "psnr", "-f", "json", "-o", str(base), "-q"])
    assert r.exit_code == 0, r.stderr
    args = ["score", str(blurred), str(gt), "--metrics", "psnr", "--baseline", str(base),
            "--max-regression", "psnr=0.5", "-q"]
    md = runner.invoke(cli, [*args, "-f", "markdown", "--report", str(tmp_path / "r.html")])
    assert md.exit_code == 1, md.stderr
    table = runner.invoke(cli, [*args, "-f", "table"])
    doc = json.loads(runner.invoke(cli, [*args, "-f", "json"]).stdout)
    regressed = doc["gate"]["regressions"]["regressed"]
    assert regressed and all(r["metric"] == "psnr" and r["delta"] < -0.5 for r in regressed)
    page = (tmp_path / "r.html").read_text()
    rows = cells(page, "regressed")
    for r in regressed:
        over = g.excess(r)
        assert over > 0
        shown = f"{over:.6g} dB"
        assert f"allowed 0.5 dB drop, over by {shown}" in md.stderr
        assert f"| 0.5 dB drop | {shown} |" in md.stdout
        assert [r["key"], "psnr"] in [x[:2] for x in rows] and shown in [x[5] for x in rows]
    overs = [float(x[5].split()[0]) / float(x[2]) for x in rows]
    assert overs == sorted(overs, reverse=True)
    assert "allowed 0.5 dB drop, over by" in table.stdout
    for text in (md.stderr, md.stdout, table.stdout, page):
        assert "-0.5 dB" not in text and "+0.5" not in text and "+-" not in text


def test_terminal_table_without_common_pairs_says_so():
    from rich.console import Console

    lims = g.scoped([g.parse_limit("psnr=0.5")], [])
    base = synthetic.run(with_psnr({"x": 30.0}))
    base.settings["metrics"] = ["psnr"]
    reg = g.compare_to_baseline(with_psnr({"y": 30.0}), ["conv3_3", "conv4_3"], base.document(), lims,
                                baseline_path="base.json", extra=("psnr",))
    out = io.StringIO()
    gr.print_table(Console(file=out, width=200, no_color=True), {"passed": False, "checks": [], "regressions": reg})
    line = next(x for x in out.getvalue().splitlines() if "mean psnr" in x)
    assert "no pair is in both this run and the baseline FAIL" in line and "allowed" not in line
