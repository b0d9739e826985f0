"""Pipelines: Markdown for CI summaries, --summary-only, stdin manifests, fixed CSV columns,
JSONL flushed per pair, and the docs' shell and GitHub Actions examples run verbatim."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from hlcli import gate as g
from hlcli.cli import cli
from hlcli.render.score import JsonlStream, write_csv, write_markdown
from hlcli.results import Missing, Skipped
from tests import synthetic
from tests.conftest import ROOT
from tests.schemas import validate_jsonl, validate_score

# The docs' examples, verbatim (tests/test_pipelines.py::test_docs_show_these_examples).
JQ_WORST = "hlcli score restored/ gt/ -f json | jq -r '.pairs | sort_by(-.hybrid) | .[:3][] | .key'"
FIND_MANIFEST = r"find restored -name '*.png' | sed 's|^restored/\(.*\)$|restored/\1,gt/\1|' | hlcli score --pairs - -f csv"
AWK_MEAN = """hlcli score restored/ gt/ --summary-only -f csv | awk -F, '$1 == "hybrid" {print "mean hybrid:", $3}'"""
JSONL_WATCH = """hlcli score restored/ gt/ -f jsonl | jq -c --unbuffered 'select(.type == "pair") | {key, hybrid}'"""
CI_YAML = """\
      - name: Cache the VGG-19 weights
        uses: actions/cache@v4
        with:
          path: |
            ~/.cache/torch/hub/checkpoints
            ~/.cache/hlcli
          key: torch-vgg19-imagenet1k-v1-dcbb9e9d
      - name: Download the weights (no-op when cached)
        run: hlcli weights download --quiet
      - name: Score, gate and write the step summary
        run: |
          hlcli score restored/ gt/ --offline --quiet --format markdown \\
            --fail-if 'mean.hybrid>0.08' --fail-if 'p95.l1>0.05' \\
            --baseline ci/baseline.json --max-regression 2% \\
            >> "$GITHUB_STEP_SUMMARY"
"""
CSV_COLUMNS = "key,status,width,height,l1,conv3_3,conv4_3,perceptual,hybrid,restored,gt,size_policy,reason"


DOCS_EXAMPLES = {
    "docs/formats.md": (JQ_WORST, FIND_MANIFEST, AWK_MEAN, JSONL_WATCH, CSV_COLUMNS),
    "docs/gates.md": (CI_YAML,),
}


def test_docs_show_these_examples():
    for name, snippets in DOCS_EXAMPLES.items():
        text = (ROOT / name).read_text(encoding="utf-8")
        for snippet in snippets:
            assert snippet in text, (name, snippet)


# -- in-process --------------------------------------------------------------------------------

@pytest.fixture
def dir_doc(cli_env, pair_dirs):
    """The JSON document of the pair_dirs run, for comparison with other ways of scoring it."""
    restored, gt = pair_dirs
    res = CliRunner().invoke(cli, ["score", str(restored), str(gt), "-f", "json", "--workers", "0"])
    assert res.exit_code == 0, res.stderr
    return validate_score(res.stdout)


def by_key(rows, field="hybrid"):
    return {r["key"]: float(r[field]) for r in rows}


def test_stdin_manifest_resolves_relative_paths_against_the_cwd(dir_doc, pair_dirs, monkeypatch, tmp_path):
    manifest = "restored,gt\n" + "".join(f"restored/{k}.png,gt/{k}.png\n" for k in ("a", "b", "c", "same"))
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(cli, ["score", "--pairs", "-", "-f", "json", "--workers", "0"], input=manifest)
    assert res.exit_code == 0, res.stderr
    doc = validate_score(res.stdout)
    assert doc["settings"]["inputs"] == {"pairs": "<stdin>"}
    assert by_key(doc["pairs"]) == pytest.approx(by_key(dir_doc["pairs"]), rel=1e-9)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    res = CliRunner().invoke(cli, ["score", "--pairs", "-"], input=manifest)
    assert res.exit_code == 2 and str(elsewhere / "restored" / "a.png") in res.stderr


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


def test_markdown_file_from_the_extension(cli_env, pair_dirs, tmp_path):
    restored, gt = map(str, pair_dirs)
    res = CliRunner().invoke(cli, ["score", restored, gt, "-o", str(tmp_path / "report.md"), "--workers", "0"])
    assert res.exit_code == 0 and res.stdout == ""
    text = (tmp_path / "report.md").read_text()
    assert text.startswith("## hlcli score\n") and "### Worst pairs by hybrid" in text and "| `a` |" in text


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
    assert lines[2].startswith("**3 pairs scored** · λ = 0.05 · layers conv3_3×1, conv4_3×1 · precision fp32 · "
                               "device cpu · weights `abababababab` (**not** the official ImageNet weights)")
    assert "**Incomplete**: 1 skipped, 2 unmatched" in lines
    assert "| metric | mean | median | std | min | max | p95 | p99 |" in lines
    assert [ln.split(" | ")[0] for ln in lines if ln.startswith("| ") and ln.count("|") == 9][1:] == \
        ["| l1", "| conv3_3", "| conv4_3", "| perceptual", "| hybrid"]
    assert "| `mean.hybrid>0.1` | 0.259375 | ❌ fail |" in lines and "| `count.l1<1` | 3 | ✅ pass |" in lines
    assert "### Regression against `base.json`" in lines
    assert "2 pairs compared · limits `2%` · 1 new · 1 missing" in lines
    assert any(ln.startswith("| hybrid | 0.259375 | 0.389063 | +50% | +0.0051875 | ❌ regressed |") for ln in lines)
    assert "| `a\\|b` | hybrid | 0.259375 | 0.51875 | +100% | +0.0051875 |" in lines  # pipes escaped
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
    from hlcli import engine
    from hlcli.cli.score import RunView
    from hlcli.pairing import find_pairs
    from hlcli.scoring import ScoreOptions

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


# -- the docs' shell pipelines and CI step, run verbatim --------------------------------------

@pytest.fixture
def sh(cli_env, pair_dirs, tmp_path):
    """Run a bash pipeline in the directory holding restored/ and gt/, with this Python's hlcli."""
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    if not shutil.which("hlcli", path=env["PATH"]):
        pytest.skip("the hlcli entry point is not installed (pip install -e .)")

    def run(command: str, **extra_env: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=tmp_path, env={**env, **extra_env},
                              capture_output=True, text=True, timeout=300)

    return run


needs_jq = pytest.mark.skipif(shutil.which("jq") is None, reason="jq is not installed")


@pytest.mark.slow
@needs_jq
def test_shell_jq_worst_pairs(sh, dir_doc):
    res = sh(JQ_WORST)
    assert res.returncode == 0, res.stderr
    expected = [p["key"] for p in sorted(dir_doc["pairs"], key=lambda p: -p["hybrid"])[:3]]
    assert res.stdout.splitlines() == expected and "same" not in expected


@pytest.mark.slow
def test_shell_find_manifest_on_stdin(sh, dir_doc):
    res = sh(FIND_MANIFEST)
    assert res.returncode == 0, res.stderr
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert ",".join(rows[0]) == CSV_COLUMNS and {r["status"] for r in rows} == {"ok"}
    assert by_key(rows) == pytest.approx(by_key(dir_doc["pairs"]), rel=1e-9)


@pytest.mark.slow
def test_shell_summary_only_awk(sh, dir_doc):
    res = sh(AWK_MEAN)
    assert res.returncode == 0, res.stderr
    label, value = res.stdout.strip().rsplit(" ", 1)
    assert label == "mean hybrid:" and float(value) == pytest.approx(dir_doc["summary"]["metrics"]["hybrid"]["mean"], rel=1e-9)


@pytest.mark.slow
@needs_jq
def test_shell_jsonl_watch(sh, dir_doc):
    res = sh(JSONL_WATCH)
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert all(set(r) == {"key", "hybrid"} for r in rows)
    assert by_key(rows) == pytest.approx(by_key(dir_doc["pairs"]), rel=1e-9)


@pytest.mark.slow
def test_github_actions_step(sh, dir_doc, tmp_path):
    yaml = pytest.importorskip("yaml")
    steps = yaml.safe_load(CI_YAML)
    cache, download, score = steps
    # the cached folder is where hlcli looks for torchvision's checkpoint by default
    from hlcli import weights

    with pytest.MonkeyPatch.context() as mp:  # a runner's default environment
        mp.setenv("HOME", str(tmp_path / "home"))
        for name in ("TORCH_HOME", "XDG_CACHE_HOME", "HLCLI_CACHE"):
            mp.delenv(name, raising=False)
        cached = [Path(p).expanduser() for p in cache["with"]["path"].split()]
        assert weights.hub_checkpoint_path().parent in cached and weights.cache_dir() in cached
    # the download step's command line is valid (it cannot run without network)
    argv = download["run"].split()
    assert argv[:3] == ["hlcli", "weights", "download"]
    weights_cmd = cli.commands["weights"]
    weights_cmd.commands["download"].make_context("download", argv[3:])

    (tmp_path / "ci").mkdir()
    (tmp_path / "ci" / "baseline.json").write_text(json.dumps(dir_doc))
    summary = tmp_path / "step-summary.md"
    summary.write_text("earlier steps\n")
    res = sh(score["run"], GITHUB_STEP_SUMMARY=str(summary))
    assert res.returncode == 0, res.stderr
    text = summary.read_text()
    assert text.startswith("earlier steps\n## hlcli score · ✅ gates passed\n")
    assert "| `mean.hybrid>0.08` |" in text and "| `p95.l1>0.05` |" in text
    assert "### Regression against `ci/baseline.json`" in text and "4 pairs compared" in text

    worse = dict(dir_doc, pairs=[dict(p, hybrid=p["hybrid"] / 2) for p in dir_doc["pairs"]])
    (tmp_path / "ci" / "baseline.json").write_text(json.dumps(worse))
    res = sh(score["run"], GITHUB_STEP_SUMMARY=str(summary))
    assert res.returncode == 1 and "Regression: mean hybrid" in res.stderr
    assert "❌ gates failed" in summary.read_text()
