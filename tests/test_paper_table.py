"""hlcli table: the results table of a paper (hlcli.analysis.papertable), its renderings (LaTeX compiled
with pdflatex when it is installed) and the command end to end on runs over a benchmark layout."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner

import hlcli
from hlcli.cli import cli
from hlcli.errors import InputError
from hlcli.render.papertable import latex_escape, write_paper_table
from tests import synthetic
from tests.lambda_runs import blur_copy, sample_crops, score, validate

# key -> (l1 of A, l1 of B): Set5 has a tie on l1 means, x4/Urban has B better
A = {"Set5/a": 1.0, "Set5/b": 3.0, "Urban_100/x4/c": 2.0, "Urban_100/x4/d": 4.0, "solo": 5.0}
B = {"Set5/a": 2.0, "Set5/b": 2.0, "Urban_100/x4/c": 1.0, "Urban_100/x4/d": 1.0, "only_b": 9.0}


def table(**kw):
    return hlcli.paper_table([synthetic.document(A), synthetic.document(B)], names=["A", "B"], **kw)


def cell(t, run, group, metric):
    j = next(j for j, c in enumerate(t["columns"]) if (c["group"], c["metric"]) == (group, metric))
    return next(r for r in t["rows"] if r["name"] == run)["values"][j], t["columns"][j]


def test_groups_means_and_best():
    t = validate("table", table(group_by="top", metrics="l1,hybrid"))
    assert [(c["group"], c["metric"]) for c in t["columns"]] == [
        ("Set5", "l1"), ("Set5", "hybrid"), ("Urban_100", "l1"), ("Urban_100", "hybrid"), (None, "l1"), (None, "hybrid")]
    assert t["pairs"] == {"common": 4, "only_in": {"A": ["solo"], "B": ["only_b"]}}
    v, c = cell(t, "A", "Set5", "l1")
    assert v == 2.0 and c["pairs"] == 2 and c["best"] == ["A", "B"]  # equal means: both best
    v, c = cell(t, "B", "Urban_100", "l1")
    assert v == 1.0 and c["best"] == ["B"] and cell(t, "A", "Urban_100", "l1")[0] == 3.0
    v, c = cell(t, "A", None, "hybrid")
    assert v == pytest.approx(2.5 * 1.0375, rel=1e-15) and c["pairs"] == 4 and c["best"] == ["B"]
    dirs = validate("table", table(group_by="dir", metrics=["l1"]))
    assert [c["group"] for c in dirs["columns"]] == ["Set5", "Urban_100/x4", None]
    flat = validate("table", table())
    assert [(c["group"], c["metric"]) for c in flat["columns"]] == [(None, "hybrid"), (None, "l1"), (None, "perceptual")]
    layer = validate("table", table(metrics="conv4_3,l1,conv4_3"))
    assert layer["metrics"] == ["conv4_3", "l1"] and cell(layer, "A", None, "conv4_3")[0] == pytest.approx(2.5 / 4)


def test_groups_match_a_plain_computation():
    rng = np.random.default_rng(9)
    keys = [f"{d}/img{i}" for d in ("Set5", "Set14", "B100") for i in range(int(rng.integers(1, 6)))]
    runs = [synthetic.document({k: float(rng.uniform(0.1, 1)) for k in keys}) for _ in range(3)]
    t = hlcli.paper_table(runs, group_by="top", metrics=["l1", "perceptual"])
    for row, doc in zip(t["rows"], runs):
        for value, c in zip(row["values"], t["columns"]):
            chosen = [p[c["metric"]] for p in doc["pairs"] if c["group"] is None or p["key"].startswith(c["group"] + "/")]
            assert value == pytest.approx(np.mean(chosen), rel=1e-12) and c["pairs"] == len(chosen)
    for j, c in enumerate(t["columns"]):
        assert c["best"] == [t["rows"][int(np.argmin([r["values"][j] for r in t["rows"]]))]["name"]]


def test_refusals():
    with pytest.raises(InputError) as info:
        hlcli.paper_table([synthetic.document(A), synthetic.document(B, lam=0.1)])
    assert "lambda 0.05 (run1) vs 0.1 (run2)" in str(info.value) and info.value.exit_code == 2  # λ counts here
    t = hlcli.paper_table([synthetic.document(A), synthetic.document(B, lam=0.1)], allow_settings_mismatch=True)
    assert len(t["settings_differences"]) == 1
    with pytest.raises(InputError, match="unknown metric: sharpness"):
        table(metrics="l1,sharpness")
    with pytest.raises(InputError, match="not scored by every run: ssim: score every run with --metrics ssim"):
        table(metrics="l1,ssim")
    with pytest.raises(InputError, match="--group-by"):
        table(group_by="dataset")
    with pytest.raises(InputError, match="no pair in common"):
        hlcli.paper_table([synthetic.document({"a": 1.0}), synthetic.document({"b": 1.0})])


def test_latex_escape():
    assert latex_escape(r"a_b & c% $d$ #1 {x} ~ ^ \ ") == (
        r"a\_b \& c\% \$d\$ \#1 \{x\} \textasciitilde{} \textasciicircum{} \textbackslash{} ")


def renders(t, fmt, **kw):
    out = io.StringIO()
    write_paper_table(t, fmt, out, **kw)
    return out.getvalue()


def test_markdown_csv_and_console():
    t = table(group_by="top", metrics="l1")
    md = renders(t, "markdown")
    assert md.splitlines()[0] == "| run | l1↓ (Set5) | l1↓ (Urban_100) | l1↓ (all) |"
    assert "| A | **2** | 3 | 2.5 |" in md and "| B | **2** | **1** | **1.5** |" in md
    rows = list(csv.reader(io.StringIO(renders(t, "csv"))))
    assert rows[0] == ["run", "path", "l1[Set5]", "l1[Urban_100]", "l1"]
    assert rows[1] == ["A", "", "2.0", "3.0", "2.5"]
    console = renders(t, "table")
    marked = [line for line in console.splitlines() if "*" in line and "│" in line]
    assert [line.split()[1] for line in marked] == ["A", "B"]
    assert [line.count("*") for line in marked] == [1, 3]  # the Set5 tie is marked in both rows
    assert re.search(r"│ A +│ +2(\.0+)? \* │ +3(\.0+)? +│ +2\.50* +│", console), console
    assert "best in its column" in console and "\x1b[" not in console
    assert "only in A (not used): solo" in console
    assert "0.3333" in renders(hlcli.paper_table([synthetic.document({"a": 1 / 3})]), "markdown", digits=4)


LATEX_DOC = r"""\documentclass{article}
\usepackage{booktabs}
\begin{document}
\input{table.tex}
\end{document}
"""


def test_latex_structure():
    t = hlcli.paper_table([synthetic.document(A), synthetic.document({k: v / 1e6 for k, v in B.items()})],
                          names=["ours_v2 & co", "50% #1"], group_by="top", metrics="l1,hybrid")
    tex = renders(t, "latex")
    lines = tex.splitlines()
    assert lines[2] == r"\begin{tabular}{lrrrrrr}" and lines[3] == r"\toprule" and lines[-1] == r"\end{tabular}"
    assert r" & \multicolumn{2}{c}{Set5} & \multicolumn{2}{c}{Urban\_100} & \multicolumn{2}{c}{all} \\" in lines
    assert r"\cmidrule(lr){2-3} \cmidrule(lr){4-5} \cmidrule(lr){6-7}" in lines
    assert r"\midrule" in lines and r"\bottomrule" in lines
    body = [line for line in lines if line.startswith(("ours", "50"))]
    assert body[0].startswith(r"ours\_v2 \& co & ") and body[1].startswith(r"50\% \#1 & \textbf{$2\times10^{-6}$}")
    assert all(len(re.findall(r"(?<!\\)&", line)) == 6 and line.endswith(r"\\") for line in body)


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")
def test_latex_compiles(tmp_path):
    t = hlcli.paper_table([synthetic.document(A), synthetic.document({k: v / 1e6 for k, v in B.items()})],
                          names=["ours_v2 & co", "50% #1 {x} ~^\\"], group_by="dir")
    (tmp_path / "table.tex").write_text(renders(t, "latex"))
    (tmp_path / "paper.tex").write_text(LATEX_DOC)
    res = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "paper.tex"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout[-2000:]
    assert (tmp_path / "paper.pdf").stat().st_size > 1000


# -- CLI on real runs over a benchmark layout ----------------------------------------------------------

@pytest.fixture(scope="module")
def runs(tmp_path_factory, weights_file):
    """Crops of the sample photos laid out as two datasets, the samples' restorations and a blur."""
    root = tmp_path_factory.mktemp("table")
    layout = {"astronaut": "SetA", "chelsea": "SetA", "coffee": "Set_B", "rocket": "Set_B"}
    restored, gt = sample_crops(root, layout=layout)
    return (score(restored, gt, root / "samples.json", weights_file),
            score(blur_copy(gt, root / "blur", 2.5), gt, root / "blur.json", weights_file))


def test_cli_table_on_real_runs(runs, tmp_path):
    runner = CliRunner()
    a, b = map(str, runs)
    res = runner.invoke(cli, ["table", a, b, "--group-by", "top", "-f", "json"])
    assert res.exit_code == 0, res.stderr
    t = validate("table", res.stdout)
    assert [c["group"] for c in t["columns"][::3]] == ["SetA", "Set_B", None] and t["pairs"]["common"] == 4
    doc = json.loads(runs[0].read_text())
    assert t["rows"][0]["values"][-3] == pytest.approx(doc["summary"]["metrics"]["hybrid"]["mean"], rel=1e-12)
    res = runner.invoke(cli, ["table", a, b, "--group-by", "top", "--name", "ours", "--name", "blur 2.5",
                              "--metrics", "l1,perceptual", "-o", str(tmp_path / "t.tex")])
    assert res.exit_code == 0 and res.stdout == ""
    tex = (tmp_path / "t.tex").read_text()
    assert r"\multicolumn{2}{c}{Set\_B}" in tex and "\nours & " in tex and r"\textbf{" in tex
    if shutil.which("pdflatex"):
        (tmp_path / "table.tex").write_text(tex)
        (tmp_path / "paper.tex").write_text(LATEX_DOC)
        assert subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "paper.tex"], cwd=tmp_path,
                              capture_output=True, timeout=120).returncode == 0
    res = runner.invoke(cli, ["table", a, b, "-f", "markdown", "--digits", "3"])
    assert res.exit_code == 0 and res.stdout.startswith("| run | hybrid↓ | l1↓ | perceptual↓ |")
    res = runner.invoke(cli, ["table", a, b, "-f", "csv"])
    assert res.stdout.splitlines()[0] == "run,path,hybrid,l1,perceptual"
    res = runner.invoke(cli, ["table", a, b])
    assert res.exit_code == 0 and " *" in res.stdout


def test_cli_table_refusals(runs, tmp_path):
    runner = CliRunner()
    a, b = runs
    doc = json.loads(b.read_text())
    doc["settings"]["lambda"] = 0.5
    other = tmp_path / "other_lambda.json"
    other.write_text(json.dumps(doc))
    res = runner.invoke(cli, ["table", str(a), str(other)])
    assert res.exit_code == 2 and "lambda 0.05" in res.stderr and "other_lambda.json" in res.stderr
    assert runner.invoke(cli, ["table", str(a), str(other), "--allow-settings-mismatch"]).exit_code == 0
    res = runner.invoke(cli, ["table", str(a), str(b), "--metrics", "psnr"])
    assert res.exit_code == 2 and "not scored by every run: psnr: score every run with --metrics psnr" in res.stderr
    assert runner.invoke(cli, ["table", str(a), "--group-by", "dataset"]).exit_code == 2
    doc = json.loads(b.read_text())
    doc["pairs"][0]["l1"] = "high"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    res = runner.invoke(cli, ["table", str(a), str(bad)])
    assert res.exit_code == 2 and "bad.json" in res.stderr and res.stderr.count("\n") == 1


def with_extras(values: dict[str, float], extras: tuple[str, ...]) -> dict:
    """A score document whose pairs also carry the extra metrics (PSNR falls as l1 rises)."""
    pairs = synthetic.pairs(values)
    for p in pairs:
        for m in extras:
            p.extra[m] = {"psnr": 40.0 - p.l1, "ssim": 1.0 / (1.0 + p.l1), "lpips": p.l1 / 10}[m]
    run = synthetic.run(pairs)
    run.settings["metrics"] = list(extras)
    return run.document()


def test_default_columns_are_the_metrics_every_run_has(tmp_path):
    """Without --metrics: hybrid, l1, perceptual and every extra metric that every run scored
    (issue 22 §2), in the registry's order, best by each metric's direction."""
    a, b = with_extras(A, ("psnr", "ssim", "lpips")), with_extras(B, ("psnr", "ssim"))
    t = hlcli.paper_table([a, b], names=["A", "B"])
    assert [c["metric"] for c in t["columns"]] == ["hybrid", "l1", "perceptual", "psnr", "ssim"]
    psnr = next(c for c in t["columns"] if c["metric"] == "psnr")
    l1 = next(c for c in t["columns"] if c["metric"] == "l1")
    assert psnr["higher_is_better"] and psnr["best"] == l1["best"] == ["B"]  # lower l1 <=> higher PSNR here
    assert [c["metric"] for c in table()["columns"]] == ["hybrid", "l1", "perceptual"]  # no extras: as before
    paths = []
    for name, doc in (("a", a), ("b", b)):
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(doc))
    res = CliRunner().invoke(cli, ["table", *map(str, paths), "-f", "markdown"])
    assert res.exit_code == 0, res.stderr
    assert res.stdout.startswith("| run | hybrid↓ | l1↓ | perceptual↓ | PSNR↑ dB | SSIM↑ |")
    res = CliRunner().invoke(cli, ["table", *map(str, paths), "-f", "csv", "--metrics", "l1"])
    assert res.stdout.splitlines()[0] == "run,path,l1"


def _fid_pair(fid_run, tmp_path):
    """The stored FID/KID run and a copy whose set values are changed in the document (B better
    in group A and overall, worse in group B): the table must show the stored values."""
    _, path = fid_run
    doc = json.loads(path.read_text())
    other = json.loads(path.read_text())
    summ = other["summary"]
    summ["sets"]["fid"] *= 0.5
    summ["groups"]["A"]["sets"]["fid"] *= 0.5
    summ["groups"]["B"]["sets"]["fid"] += 1.0
    summ["groups"]["B"]["sets"]["kid"] += 1.0
    (tmp_path / "b.json").write_text(json.dumps(other))
    return doc, other, path, tmp_path / "b.json"


def test_set_metrics_are_columns_per_dataset_from_the_stored_values(fid_run, tmp_path):
    a, b, pa, pb = _fid_pair(fid_run, tmp_path)
    res = CliRunner().invoke(cli, ["table", str(pa), str(pb), "--name", "A", "--name", "B", "--group-by", "top",
                                   "-f", "json"])
    assert res.exit_code == 0, res.output
    t = validate("table", json.loads(res.stdout))
    assert t["metrics"] == ["hybrid", "l1", "perceptual", "psnr", "fid", "kid"]  # default: every metric both runs have
    for group, sa, sb in ((None, a["summary"], b["summary"]), *((g, a["summary"]["groups"][g], b["summary"]["groups"][g])
                                                              for g in ("A", "B"))):
        for m in ("fid", "kid"):
            va, c = cell(t, "A", group, m)
            assert va == sa["sets"][m] and cell(t, "B", group, m)[0] == sb["sets"][m]
            assert c["scope"] == "set" and c["higher_is_better"] is False
            low = min(sa["sets"][m], sb["sets"][m])  # lower is better; equal values are both best
            assert c["best"] == [n for n, s in (("A", sa), ("B", sb)) if s["sets"][m] == low]
    assert cell(t, "B", "A", "fid")[1]["best"] == ["B"] and cell(t, "A", "B", "fid")[1]["best"] == ["A"]
    assert "scope" not in cell(t, "A", None, "l1")[1]
    assert len(t["set_notes"]) == 6 and any(n.startswith("B: A: FID over 2 images") for n in t["set_notes"])
    md = io.StringIO()
    write_paper_table(t, "markdown", md)
    head, _, row_a, row_b = md.getvalue().splitlines()[:4]
    j = head.split(" | ").index("FID↓ (A)")
    assert row_b.split(" | ")[j] == f"**{b['summary']['groups']['A']['sets']['fid']:.4f}**"  # 4 decimals, bold best
    assert row_a.split(" | ")[j] == f"{a['summary']['groups']['A']['sets']['fid']:.4f}"
    assert "FID, KID: each run's stored value over its own set of pairs, not a mean" in md.getvalue()
    rows = list(csv.reader(io.StringIO(CliRunner().invoke(cli, ["table", str(pa), str(pb), "--group-by", "top",
                                                                "-f", "csv"]).stdout)))
    assert "fid[A]" in rows[0] and float(rows[2][rows[0].index("kid[B]")]) == b["summary"]["groups"]["B"]["sets"]["kid"]
    latex = CliRunner().invoke(cli, ["table", str(pa), str(pb), "--group-by", "top", "-f", "latex"]).stdout
    assert r"FID$\downarrow$" in latex and r"\textbf{" + f"{b['summary']['sets']['fid']:.4f}" + "}" in latex
    term = CliRunner().invoke(cli, ["table", str(pa), str(pb), "--group-by", "top", "--metrics", "fid,kid"]).stdout
    assert "FID↓" in term and f"{a['summary']['groups']['B']['sets']['fid']:.4f} *" in term
    avg = validate("table", hlcli.paper_table([pa, pb], names=["A", "B"], metrics="fid", group_by="top", average="groups"))
    assert cell(avg, "B", None, "fid")[0] == pytest.approx(
        (b["summary"]["groups"]["A"]["sets"]["fid"] + b["summary"]["groups"]["B"]["sets"]["fid"]) / 2, rel=1e-15)


def test_set_metric_columns_need_the_runs_grouping_and_same_features(fid_run, tmp_path):
    a, b, pa, pb = _fid_pair(fid_run, tmp_path)
    res = CliRunner().invoke(cli, ["table", str(pa), str(pb), "--group-by", "dir", "--metrics", "l1,fid"])
    assert res.exit_code == 2
    assert "fid per group: the run was scored with --group-by top" in res.stderr and "never recomputed" in res.stderr
    t = hlcli.paper_table([pa, pb], group_by="dir")  # by default the set metrics are left out
    assert "fid" not in t["metrics"] and "psnr" in t["metrics"]
    flat = hlcli.paper_table([pa, pb], metrics="fid")  # no groups: the runs' own values
    assert cell(flat, "run", None, "fid")[0] == a["summary"]["sets"]["fid"]
    b["settings"]["fid"]["dims"] = 192
    (tmp_path / "c.json").write_text(json.dumps(b))
    res = CliRunner().invoke(cli, ["table", str(pa), str(tmp_path / "c.json"), "--metrics", "fid"])
    assert res.exit_code == 2 and "FID/KID dims 64 (run) vs 192 (c)" in res.stderr
    forced = hlcli.paper_table([pa, tmp_path / "c.json"], metrics="fid", allow_settings_mismatch=True)
    assert forced["settings_differences"] == ["FID/KID dims 64 (run) vs 192 (c)"]
    assert CliRunner().invoke(cli, ["table", str(pa), str(tmp_path / "c.json"), "--metrics", "l1"]).exit_code == 0
