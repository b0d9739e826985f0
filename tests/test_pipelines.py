"""The docs' shell pipelines (jq, find | --pairs -, awk on --summary-only, JSON Lines watched live)
and the GitHub Actions workflow of docs/gates.md (parsed as YAML, its hlcli steps run in bash on the samples)."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hlcli.cli import cli

from .cases import dir_doc
from .conftest import ROOT, SAMPLES
from .test_formats import CSV_COLUMNS

_FIXTURES = (dir_doc,)  # shared from tests/cases.py

# The docs' examples, verbatim (tests/test_pipelines.py::test_docs_show_these_examples).
JQ_WORST = "hlcli score restored/ gt/ -f json | jq -r '.pairs | sort_by(-.hybrid) | .[:3][] | .key'"
FIND_MANIFEST = r"find restored -name '*.png' | sed 's|^restored/\(.*\)$|restored/\1,gt/\1|' | hlcli score --pairs - -f csv"
AWK_MEAN = """hlcli score restored/ gt/ --summary-only -f csv | awk -F, '$1 == "hybrid" {print "mean hybrid:", $3}'"""
JSONL_WATCH = """hlcli score restored/ gt/ -f jsonl | jq -c --unbuffered 'select(.type == "pair") | {key, hybrid}'"""

DOCS_EXAMPLES = {
    "docs/formats.md": (JQ_WORST, FIND_MANIFEST, AWK_MEAN, JSONL_WATCH, CSV_COLUMNS),
}


def test_docs_show_these_examples():
    for name, snippets in DOCS_EXAMPLES.items():
        text = (ROOT / name).read_text(encoding="utf-8")
        for snippet in snippets:
            assert snippet in text, (name, snippet)


def by_key(rows, field="hybrid"):
    return {r["key"]: float(r[field]) for r in rows}


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


def workflow() -> dict:
    """The complete workflow file of docs/gates.md, parsed as GitHub parses it (YAML)."""
    yaml = pytest.importorskip("yaml")
    text = (ROOT / "docs" / "gates.md").read_text(encoding="utf-8")
    section = text[text.index("## CI: a complete GitHub Actions workflow"):]
    return yaml.safe_load(re.search(r"```yaml\n(.*?)```", section, re.S).group(1))


@pytest.mark.slow
def test_github_actions_workflow(cli_env, tmp_path):
    import junitparser

    wf = workflow()
    job = wf["jobs"]["score"]
    steps = {s.get("uses", "").split("@")[0] or s["name"]: s for s in job["steps"]}
    assert wf["permissions"]["checks"] == "write" and job["env"]["HLCLI_GITHUB"] == "1"
    assert {"actions/checkout", "actions/setup-python", "actions/cache", "actions/upload-artifact",
            "dorny/test-reporter"} <= set(steps)
    # the cached folders are where hlcli looks for torchvision's checkpoint by default
    from hlcli.nets import weights

    with pytest.MonkeyPatch.context() as mp:  # a runner's default environment
        mp.setenv("HOME", str(tmp_path / "home"))
        for name in ("TORCH_HOME", "XDG_CACHE_HOME", "HLCLI_CACHE"):
            mp.delenv(name, raising=False)
        cached = [Path(p).expanduser() for p in steps["actions/cache"]["with"]["path"].split()]
        assert weights.hub_checkpoint_path().parent in cached and weights.cache_dir() in cached
    # the download step's command line is valid (it cannot run without network)
    argv = next(s["run"] for s in job["steps"] if s.get("run", "").startswith("hlcli weights")).split()
    cli.commands["weights"].commands["download"].make_context("download", argv[3:])
    # the reports are kept, and the test report read, also when the gate failed
    kept = set(steps["actions/upload-artifact"]["with"]["path"].split())
    assert kept == {"run.json", "report.html", "junit.xml"}
    assert steps["actions/upload-artifact"]["if"] == steps["dorny/test-reporter"]["if"] == "always()"
    assert steps["dorny/test-reporter"]["with"]["path"] == "junit.xml"

    # its hlcli score step, run as it stands on the samples, against a baseline made as the docs say
    for side in ("restored", "gt"):
        shutil.copytree(SAMPLES / side, tmp_path / side)
    (tmp_path / "ci").mkdir()
    env = {**os.environ, **job["env"], "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
    if not shutil.which("hlcli", path=env["PATH"]):
        pytest.skip("the hlcli entry point is not installed (pip install -e .)")

    def bash(command: str, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=tmp_path, env={**env, **extra},
                              capture_output=True, text=True, timeout=300)

    assert bash("hlcli score restored/ gt/ -f json -o ci/baseline.json").returncode == 0
    score = next(s["run"] for s in job["steps"] if "hlcli score" in s.get("run", ""))
    summary = tmp_path / "step-summary.md"
    summary.write_text("earlier steps\n")
    res = bash(score, GITHUB_STEP_SUMMARY=str(summary))
    assert res.returncode == 0, res.stderr
    assert summary.read_text().startswith("earlier steps\n### hlcli score: ✅ passed\n")
    assert "::error" not in res.stderr
    for kept_file in kept:
        assert (tmp_path / kept_file).is_file(), kept_file
    (suite,) = list(junitparser.JUnitXml.fromfile(str(tmp_path / "junit.xml")))
    assert {c.name for c in suite} >= {"score", "mean.hybrid>0.08", "p95.l1>0.05", "2% (mean hybrid)", "rocket"}
    assert suite.failures == 0

    baseline = json.loads((tmp_path / "ci" / "baseline.json").read_text())
    worse = dict(baseline, pairs=[dict(p, hybrid=p["hybrid"] / 2) for p in baseline["pairs"]])
    (tmp_path / "ci" / "baseline.json").write_text(json.dumps(worse))
    res = bash(score, GITHUB_STEP_SUMMARY=str(summary))
    assert res.returncode == 1 and "Regression: mean hybrid" in res.stderr
    assert "::error title=hlcli%3A mean regressed::mean hybrid " in res.stderr
    assert "### hlcli score: ❌ failed" in summary.read_text()
    (suite,) = list(junitparser.JUnitXml.fromfile(str(tmp_path / "junit.xml")))
    assert suite.failures >= 2  # the mean and the pairs that got worse than their halved baseline
