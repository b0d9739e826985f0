"""The docs' shell pipelines (jq, find | --pairs -, awk on --summary-only, JSON Lines watched live)
and the GitHub Actions step of docs/gates.md, run verbatim in bash against the pair_dirs run."""

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
from hlcli.cli import cli

from .cases import dir_doc
from .conftest import ROOT
from .test_formats import CSV_COLUMNS

_FIXTURES = (dir_doc,)  # shared from tests/cases.py

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


DOCS_EXAMPLES = {
    "docs/formats.md": (JQ_WORST, FIND_MANIFEST, AWK_MEAN, JSONL_WATCH, CSV_COLUMNS),
    "docs/gates.md": (CI_YAML,),
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


@pytest.mark.slow
def test_github_actions_step(sh, dir_doc, tmp_path):
    yaml = pytest.importorskip("yaml")
    steps = yaml.safe_load(CI_YAML)
    cache, download, score = steps
    # the cached folder is where hlcli looks for torchvision's checkpoint by default
    from hlcli.nets import weights

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
