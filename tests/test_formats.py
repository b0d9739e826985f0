"""Output formats of ``hlcli score``: table (the samples), CSV (fixed columns, matching JSON
exactly), the default when piped, the JSON document (settings, versions, summary), JSON Lines
(streamed, flushed pair by pair), Markdown (complete CI summary), --summary-only in every format,
-o FILE with the format from its extension, written atomically."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner

from hlcli import __version__
from hlcli.analysis import gate as g
from hlcli.cli import cli
from hlcli.render.score import JsonlStream, write_csv, write_markdown
from hlcli.runs.results import Missing, Skipped

from . import synthetic
from .cases import dir_doc, ok_json, score
from .conftest import SAMPLES
from .schemas import validate_jsonl, validate_score

CSV_COLUMNS = "key,status,width,height,l1,conv3_3,conv4_3,perceptual,hybrid,restored,gt,size_policy,reason"

_FIXTURES = (dir_doc,)  # shared from tests/cases.py


# -- table, CSV, JSON, JSON Lines, Markdown ---------------------------------------------------

@pytest.mark.slow
def test_samples_table(cli_env):
    """The README's quick start: a table on the bundled samples."""
    r = score(SAMPLES / "restored", SAMPLES / "gt", "--lambda", "0.05", "-f", "table")
    assert r.exit_code == 0, r.stderr
    for key in ("astronaut", "chelsea", "coffee", "rocket", "conv3_3", "conv4_3", "hybrid", "summary of 4 pairs"):
        assert key in r.stdout
    assert "\x1b[" not in r.stdout  # not a terminal: no colour codes


def test_csv_parses_and_matches_json(cli_env, pair_dirs):
    r = score(*pair_dirs, "-f", "csv")
    assert r.exit_code == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert list(rows[0]) == ["key", "status", "width", "height", "l1", "conv3_3", "conv4_3", "perceptual",
                             "hybrid", "restored", "gt", "size_policy", "reason"]
    doc = ok_json(*pair_dirs)
    assert [row["key"] for row in rows] == [p["key"] for p in doc["pairs"]] == ["a", "b", "c", "same"]
    for row, p in zip(rows, doc["pairs"]):
        assert float(row["hybrid"]) == p["hybrid"]  # repr round-trips exactly
        assert float(row["conv4_3"]) == p["layers"]["conv4_3"]
        assert (int(row["width"]), int(row["height"])) == (p["width"], p["height"])


def test_default_format_when_piped_is_csv(cli_env, pair_dirs):
    r = score(*pair_dirs)
    assert r.exit_code == 0 and r.stdout.startswith("key,status,")


def test_json_document_says_how_it_was_made(cli_env, pair_dirs):
    doc = ok_json(*pair_dirs, "--lambda", "0.1", "--layers", "relu2_2,conv4_3", "--layer-weights", "0.5,2")
    assert doc["schema_version"] == 1 and doc["hlcli_version"] == __version__
    assert set(doc["versions"]) >= {"python", "torch", "torchvision", "pillow", "numpy"}
    assert doc["device"]["type"] == "cpu"
    s = doc["settings"]
    assert s["lambda"] == 0.1 and s["precision"] == "fp32" and s["dtype"] == "float32"
    assert s["layers"][0] == {"name": "relu2_2", "index": 8, "activation": "post-relu", "weight": 0.5,
                              "stride": 2, "receptive_field": 14}
    assert s["layers"][1]["name"] == "conv4_3" and s["layers"][1]["activation"] == "pre-relu"
    assert s["network"]["truncated_after_index"] == 23
    assert len(s["weights"]["sha256"]) == 64
    assert doc["complete"] is True and doc["missing"] == {"restored_only": [], "gt_only": []}
    summ = doc["summary"]
    assert summ["count"] == 4 and set(summ["metrics"]) == {"l1", "relu2_2", "conv4_3", "perceptual", "hybrid"}
    assert set(summ["metrics"]["hybrid"]) >= {"count", "mean", "median", "std", "min", "max"}
    assert summ["worst"][0]["hybrid"] == max(p["hybrid"] for p in doc["pairs"])
    for p in doc["pairs"]:
        assert p["perceptual"] == pytest.approx(0.5 * p["layers"]["relu2_2"] + 2 * p["layers"]["conv4_3"], rel=1e-12)
        assert p["hybrid"] == pytest.approx(p["l1"] + 0.1 * p["perceptual"], rel=1e-12)
    same = next(p for p in doc["pairs"] if p["key"] == "same")
    assert same["l1"] == same["perceptual"] == same["hybrid"] == 0.0


def test_jsonl_stream(cli_env, pair_dirs):
    r = score(*pair_dirs, "-f", "jsonl")
    assert r.exit_code == 0, r.stderr
    recs = [json.loads(line) for line in r.stdout.splitlines()]
    assert recs[0]["type"] == "header" and recs[-1]["type"] == "summary"
    assert sorted(x["key"] for x in recs if x["type"] == "pair") == ["a", "b", "c", "same"]
    assert recs[-1]["count"] == 4 and recs[-1]["complete"] is True


def test_markdown(cli_env, pair_dirs):
    r = score(*pair_dirs, "-f", "markdown")
    assert r.exit_code == 0
    assert r.stdout.startswith("## hlcli score") and "| hybrid |" in r.stdout


def test_markdown_rendering_complete():
    run = synthetic.run([synthetic.pair("a|b", 0.5), synthetic.pair("c", 0.25), synthetic.pair("z", 0.0)])
    run.skipped.append(Skipped("bad", "restored/bad.png", "not an image", 2))
    run.missing = Missing(restored_only=["restored/lonely.png"], gt_only=["gt/orphan.png"])
    plan = g.GateSpec([g.parse_gate("mean.hybrid>0.1"), g.parse_gate("count.l1<1")],
                      g.scoped([g.parse_limit("2%")], []), synthetic.document({"a|b": 0.25, "c": 0.25, "gone": 1.0}),
                      "base.json", allow_settings_mismatch=True)
    plan.check_settings(synthetic.settings(lam=0.05, precision="fp32"))
    run.gate = plan.evaluate(run)
    out = io.StringIO()
    write_markdown(run, out)
    text = out.getvalue()
    lines = text.splitlines()
    assert lines[0] == "## hlcli score · ❌ gates failed"
    assert lines[2].startswith("**3 pairs scored** · λ = 0.05 · layers conv3_3×1, conv4_3×1 · crop border 0 · "
                               "precision fp32 · device cpu · weights `abababababab` (**not** the official ImageNet weights)")
    assert "**Incomplete**: 1 skipped, 2 unmatched" in lines
    assert "| metric | mean | median | std | min | max | p95 | p99 |" in lines
    assert [ln.split(" | ")[0] for ln in lines if ln.startswith("| ") and not ln.startswith("| `")
                                             and ln.count("|") == 9][1:] == \
        ["| l1", "| conv3_3", "| conv4_3", "| perceptual", "| hybrid"]
    assert "| `mean.hybrid>0.1` | 0.259375 | ❌ fail |" in lines and "| `count.l1<1` | 3 | ✅ pass |" in lines
    assert "### Regression against `base.json`" in lines
    assert "2 pairs compared · limits `2%` · 1 new · 1 missing" in lines
    # allowance and over-by: amounts in the metric's bad direction (a rise of hybrid)
    assert any(ln.startswith("| hybrid | 0.259375 | 0.389063 | +50% | 0.0051875 rise | 0.1245 | ❌ regressed |")
               for ln in lines)
    assert "| `a\\|b` | hybrid | 0.259375 | 0.51875 | +100% | 0.0051875 rise | 0.254188 |" in lines  # pipes escaped
    assert "New pairs (not in the baseline): `z`" in lines
    assert "Missing pairs (in the baseline, not scored now): `gone`" in lines
    assert "| `a\\|b` | 0.51875 | 0.5 | 0.375 |" in lines  # worst pairs
    assert "- skipped `bad`: not an image" in lines and "- no ground truth for `restored/lonely.png`" in lines
    assert "- no restored file for `gt/orphan.png`" in lines
    order = [text.index(h) for h in ("| metric |", "### Gates", "### Regression", "### Worst pairs", "### Not scored")]
    assert order == sorted(order)
    summary_only = io.StringIO()
    write_markdown(run, summary_only, summary_only=True)
    assert "### Worst pairs" not in summary_only.getvalue() and "### Gates" in summary_only.getvalue()
    validate_score(run.document())


def test_markdown_header_says_the_crop_border():
    """The crop border changes every number, so the Markdown settings line always states it."""
    run = synthetic.run([synthetic.pair("a", 0.5)])
    run.settings["crop_border"] = 4
    out = io.StringIO()
    write_markdown(run, out)
    assert " · crop border 4 · " in out.getvalue().splitlines()[2]


def test_csv_column_order_is_fixed():
    out = io.StringIO()
    write_csv(synthetic.run({"b": 0.5, "a": 0.25}), out)
    rows = out.getvalue().splitlines()
    assert rows[0] == CSV_COLUMNS and [r.split(",")[0] for r in rows[1:]] == ["a", "b"]
    out = io.StringIO()
    run = synthetic.run([synthetic.pair("a", 0.5, {"conv4_3": 0.1, "relu2_2": 0.2})],
                        layers=(("conv4_3", 1.0), ("relu2_2", 1.0)))
    write_csv(run, out)
    assert out.getvalue().splitlines()[0].split(",")[4:8] == ["l1", "conv4_3", "relu2_2", "perceptual"]


# -- JSON Lines is streamed -----------------------------------------------------------------------

class Recorder(io.StringIO):
    """A stream that remembers what had been flushed each time flush() was called."""

    def __init__(self):
        super().__init__()
        self.flushed: list[str] = []

    def flush(self):
        super().flush()
        self.flushed.append(self.getvalue())


def test_jsonl_stream_flushes_every_line():
    out = Recorder()
    stream = JsonlStream(out)
    run = synthetic.run({"a": 0.5, "b": 0.25})
    stream.header(run)
    for p in run.pairs:
        stream.pair(p)
    stream.summary(run)
    assert [len(s.splitlines()) for s in out.flushed] == [1, 2, 3, 4]
    assert all(s.endswith("\n") for s in out.flushed)
    validate_jsonl(out.getvalue())


def test_jsonl_pairs_are_flushed_before_the_next_pair_is_scored(cli_env, pair_dirs, monkeypatch):
    from hlcli.engine import batch as engine
    from hlcli.cli.runview import RunView
    from hlcli.inputs.pairing import find_pairs
    from hlcli.engine.scoring import ScoreOptions

    out = Recorder()
    seen: list[int] = []
    real = engine.BatchScorer.measure

    def spy(self, *args, **kwargs):  # how many pair lines were already flushed when a batch starts
        seen.append(sum(1 for line in (out.flushed[-1] if out.flushed else "").splitlines() if '"type": "pair"' in line))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(engine.BatchScorer, "measure", spy)
    code = RunView("jsonl", quiet=True).score(out, find_pairs(*pair_dirs), ScoreOptions(batch_size=1, workers=0), {})
    assert code == 0
    assert seen == [0, 1, 2, 3]
    assert [line["type"] for line in validate_jsonl(out.getvalue())] == ["header"] + ["pair"] * 4 + ["summary"]


# -- --summary-only ----------------------------------------------------------------------------

@pytest.mark.slow
def test_summary_only_in_every_format(dir_doc, pair_dirs, tmp_path):
    restored, gt = map(str, pair_dirs)
    runner = CliRunner()

    def run(*args):
        res = runner.invoke(cli, ["score", restored, gt, "--summary-only", "--workers", "0", *args])
        assert res.exit_code == 0, res.stderr
        return res.stdout

    expected = dir_doc["summary"]["metrics"]
    rows = list(csv.DictReader(io.StringIO(run("-f", "csv"))))
    assert [r["metric"] for r in rows] == list(expected)  # l1, layers, perceptual, hybrid: one line per metric
    assert list(rows[0]) == ["metric", "count", "mean", "median", "std", "min", "max", "p50", "p90", "p95", "p99"]
    for r in rows:
        assert int(r["count"]) == 4
        assert {k: float(v) for k, v in r.items() if k not in ("metric", "count")} == \
            {k: v for k, v in expected[r["metric"]].items() if k != "count"}

    doc = validate_score(run("-f", "json"))
    assert doc["summary_only"] is True and "pairs" not in doc and doc["summary"]["metrics"] == expected

    lines = validate_jsonl(run("-f", "jsonl"))
    assert [x["type"] for x in lines] == ["header"] + ["metric"] * len(expected) + ["summary"]
    assert lines[0]["summary_only"] is True
    assert {x["metric"]: {k: v for k, v in x.items() if k not in ("type", "metric")} for x in lines[1:-1]} == expected

    table = run("-f", "table")
    assert "summary of 4 pairs" in table and "hybrid" in table and "same" not in table and "worst" not in table

    md = run("-f", "markdown")
    assert "| hybrid |" in md and "Worst pairs" not in md


# -- -o FILE ---------------------------------------------------------------------------------

def test_output_file_and_format_from_extension(cli_env, pair_dirs, tmp_path):
    out = tmp_path / "scores.json"
    r = score(*pair_dirs, "-o", out)
    assert r.exit_code == 0 and r.stdout == ""
    assert r.stderr.splitlines()[-1] == f"wrote {out} ({out.stat().st_size / 1000:.1f} kB)"  # said, on stderr
    assert score(*pair_dirs, "-o", out, "-q").stderr == ""  # not with -q
    assert json.loads(out.read_text())["summary"]["count"] == 4
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp left


def test_markdown_file_from_the_extension(cli_env, pair_dirs, tmp_path):
    restored, gt = map(str, pair_dirs)
    res = CliRunner().invoke(cli, ["score", restored, gt, "-o", str(tmp_path / "report.md"), "--workers", "0"])
    assert res.exit_code == 0 and res.stdout == ""
    text = (tmp_path / "report.md").read_text()
    assert text.startswith("## hlcli score\n") and "### Worst pairs by hybrid" in text and "| `a` |" in text


def test_failed_run_leaves_no_output_file(cli_env, pair_dirs, tmp_path):
    out = tmp_path / "scores.csv"
    (pair_dirs[0] / "b.png").write_bytes(b"broken")
    r = score(*pair_dirs, "-o", out)
    assert r.exit_code == 2
    assert not out.exists() and list(tmp_path.glob(".scores.csv*")) == []


# -- words ------------------------------------------------------------------------------------

def test_counts_and_sizes_read_as_english():
    from hlcli.text import human_size, plural

    assert [plural(n, "pair") for n in (0, 1, 2, 1234)] == ["0 pairs", "1 pair", "2 pairs", "1,234 pairs"]
    assert [human_size(n) for n in (1, 812, 4_100, 1_234_567)] == ["1 byte", "812 bytes", "4.1 kB", "1.2 MB"]


def test_one_pair_is_one_pair_in_every_message(cli_env, pair_dirs, monkeypatch, tmp_path):
    """A run of one pair says "1 pair" on stderr, in the table and in Markdown, never "1 pairs"."""
    import hlcli.cli.runview as score_module

    monkeypatch.setattr(score_module, "stderr_is_terminal", lambda: True)
    restored, gt = pair_dirs
    for f in ("b", "c", "same"):
        (restored / f"{f}.png").unlink()
        (gt / f"{f}.png").unlink()
    baseline = _saved(ok_json(restored, gt), tmp_path)
    for fmt in ("table", "markdown"):
        r = score(restored, gt, "-f", fmt, "--fail-if", "mean.l1>1", "--baseline", baseline, "--max-regression", "1%")
        assert r.exit_code == 0, r.stderr
        text = r.stdout + r.stderr
        assert "1 pair" in text and "1 pairs" not in text and "pair(s)" not in text, text
    assert "scored 1 pair in" in r.stderr


def _saved(doc, tmp_path):
    path = tmp_path / "base.json"
    path.write_text(json.dumps(doc))
    return path


def test_no_message_hedges_its_plural():
    """"pair(s)" and friends: the library says the count in the right number instead."""
    import ast
    import re
    from pathlib import Path

    import hlcli

    root = Path(hlcli.__file__).parent
    hedged = [f"{p.relative_to(root)}:{node.lineno}" for p in sorted(root.rglob("*.py"))
              for node in ast.walk(ast.parse(p.read_text()))
              if isinstance(node, ast.Constant) and isinstance(node.value, str) and re.search(r"[a-z]\(s\)", node.value)]
    assert hedged == []


def test_non_official_weights_are_said_under_the_summary(cli_env, pair_dirs):
    """The tests' random weights are not torchvision's: the table says so under the summary
    (perceptual numbers from them are not comparable); JSON records it, Markdown says it."""
    r = score(*pair_dirs, "-f", "table")
    assert r.exit_code == 0
    flat = " ".join(r.stdout.split())
    assert "warning: the weights are not the official ImageNet VGG-19" in flat and "not comparable" in flat
    assert "**not** the official ImageNet weights" in score(*pair_dirs, "-f", "markdown").stdout
