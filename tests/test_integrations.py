"""--junit, --github and --tensorboard on `hlcli score` (a run and a sweep) and `hlcli merge`, read
back the way the services read them: JUnit with junitparser, workflow commands with a replica of
the runner's parser, TensorBoard with its own EventAccumulator."""

from __future__ import annotations

import json
import sys

import junitparser
import numpy as np
import pytest
from click.testing import CliRunner

from hlcli.cli import cli

from .test_ci import runner_parse

FAST = ["--layers", "conv1_2,conv2_1", "--workers", "0"]


def score(*args, env=None):
    return CliRunner().invoke(cli, ["score", *map(str, args)], env=env)


def junit(path):
    return junitparser.JUnitXml.fromfile(str(path))


def test_junit_on_a_failing_gate_is_written_and_read_as_gitlab_reads_it(cli_env, pair_dirs, tmp_path):
    restored, gt = pair_dirs
    out = tmp_path / "junit.xml"
    res = score(restored, gt, *FAST, "--metrics", "psnr", "--fail-if", "mean.hybrid>100", "--fail-if", "mean.psnr>1",
                "-f", "json", "-o", tmp_path / "run.json", "--junit", out)
    assert res.exit_code == 1, res.stderr
    doc = json.loads((tmp_path / "run.json").read_text())
    xml = junit(out)
    (suite,) = list(xml)
    assert suite.name == "restored" and suite.tests == 3 and suite.failures == 1
    cases = {c.name: c for c in suite}
    assert set(cases) == {"score", "mean.hybrid>100", "mean.psnr>1"}
    assert all(c.classname == "hlcli.restored.all" for c in cases.values())
    assert cases["mean.hybrid>100"].is_passed and cases["score"].is_passed
    failure = cases["mean.psnr>1"].result[0]
    observed = doc["gate"]["checks"][1]["observed"]
    assert failure.message == f"mean psnr {observed:.6g} > 1 (higher is better)"
    assert f"wrote {out}" in res.stderr


def test_junit_pairs_on_a_sweep_and_on_merge(cli_env, pair_dirs, tmp_path):
    restored, gt = pair_dirs
    base = tmp_path / "base.json"
    assert score(restored, gt, *FAST, "-f", "json", "-o", base).exit_code == 0
    res = score(restored, restored, gt, *FAST, "--name", "m1", "--name", "m2", "-o", tmp_path / "sweep",
                "--baseline", base, "--max-pair-regression", "l1=0", "--max-regression", "1", "--junit",
                tmp_path / "sweep.xml")
    assert res.exit_code == 0, res.stderr
    suites = list(junit(tmp_path / "sweep.xml"))
    assert [s.name for s in suites] == ["m1", "m2"]
    keys = {(c.classname, c.name) for s in suites for c in s}
    assert ("hlcli.m1.all", "a") in keys and ("hlcli.m2.all", "same") in keys
    parts = []
    for i in range(2):
        part = tmp_path / f"part{i}.json"
        assert score(restored, gt, *FAST, "--shard", f"{i}/2", "-f", "json", "-o", part).exit_code == 0
        parts.append(part)
    res = CliRunner().invoke(cli, ["merge", *map(str, parts), "-f", "json", "--fail-if", "mean.l1<0",
                                   "--junit", str(tmp_path / "merged.xml")])
    assert res.exit_code == 0, res.stderr
    (suite,) = list(junit(tmp_path / "merged.xml"))
    assert [c.name for c in suite] == ["score", "mean.l1<0"]


def test_output_paths_are_checked_before_scoring(cli_env, pair_dirs, tmp_path):
    restored, gt = pair_dirs
    for target in (tmp_path, tmp_path / "no-such-folder" / "j.xml"):
        res = score(restored, gt, "--junit", target)
        assert res.exit_code == 2 and "--junit" in res.stderr and "scored" not in res.stderr
    (tmp_path / "file").write_text("")
    res = score(restored, gt, "--tensorboard", tmp_path / "file")
    assert res.exit_code == 2 and "--tensorboard" in res.stderr
    assert score(restored, gt, "--step", "3").exit_code == 2


def test_github_annotations_and_summary(cli_env, pair_dirs, tmp_path):
    restored, gt = pair_dirs
    summary = tmp_path / "summary.md"
    summary.write_text("earlier\n")
    res = score(restored, gt, *FAST, "--fail-if", "mean.l1>0", "-f", "csv",
                env={"HLCLI_GITHUB": "1", "GITHUB_STEP_SUMMARY": str(summary)})
    assert res.exit_code == 1
    commands = [runner_parse(line) for line in res.stderr.splitlines() if line.startswith("::")]
    assert [(c[0], c[1]["title"]) for c in commands] == [("error", "hlcli: gate failed")]
    assert commands[0][2].startswith("mean l1 ") and commands[0][2].endswith("(--fail-if mean.l1>0)")
    assert "::" not in res.stdout  # the report stays clean
    text = summary.read_text()
    assert text.startswith("earlier\n### hlcli score: ❌ failed") and "#### Means" in text


def test_tensorboard_reads_back_as_the_document(cli_env, pair_dirs, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    restored, gt = pair_dirs
    for step in (10, 20):
        res = score(restored, gt, *FAST, "--metrics", "psnr", "-f", "json", "-o", tmp_path / f"run{step}.json",
                    "--tensorboard", tmp_path / "tb", "--step", step, "--worst", "2", "--sort", "psnr")
        assert res.exit_code == 0, res.stderr
    acc = EventAccumulator(str(tmp_path / "tb"), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    doc = json.loads((tmp_path / "run10.json").read_text())
    for metric, stats in doc["summary"]["metrics"].items():
        events = acc.Scalars(f"hlcli/{metric}")
        assert [e.step for e in events] == [10, 20]
        assert events[0].value == float(np.float32(stats["mean"]))
    assert acc.Tags()["images"] == ["hlcli/worst/1", "hlcli/worst/2"]


def test_tensorboard_sweep_writes_a_folder_per_model(cli_env, pair_dirs, tmp_path):
    restored, gt = pair_dirs
    res = score(restored, restored, gt, *FAST, "--name", "x", "--name", "y", "-o", tmp_path / "sweep",
                "--tensorboard", tmp_path / "tb", "--worst", "0")
    assert res.exit_code == 0, res.stderr
    assert sorted(p.name for p in (tmp_path / "tb").iterdir()) == ["x", "y"]


def test_tensorboard_missing_is_exit_3_with_the_install_line(cli_env, pair_dirs, monkeypatch):
    restored, gt = pair_dirs
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    res = score(restored, gt, "--tensorboard", "tb")
    assert res.exit_code == 3 and "pip install 'hlcli[tensorboard]'" in res.stderr


def test_score_help_lists_the_flags():
    text = CliRunner().invoke(cli, ["score", "--help"]).stdout
    for flag in ("--junit", "--github", "--tensorboard", "--step"):
        assert flag in text
    assert "--junit" in CliRunner().invoke(cli, ["merge", "--help"]).stdout


def test_an_incomplete_run_still_writes_its_junit_with_the_reason(cli_env, pair_dirs, tmp_path):
    restored, gt = pair_dirs
    (restored / "broken.png").write_bytes(b"not a png")
    (gt / "broken.png").write_bytes((gt / "a.png").read_bytes())
    res = score(restored, gt, *FAST, "--on-error", "skip", "--junit", tmp_path / "j.xml", "-q")
    assert res.exit_code == 2
    (suite,) = list(junit(tmp_path / "j.xml"))
    cases = {c.name: c for c in suite}
    assert cases["broken"].is_skipped and "broken.png" in cases["broken"].result[0].message
    assert not cases["score"].is_passed and "1 pair skipped" in cases["score"].result[0].message
    assert "wrote" not in res.stderr  # -q


def test_github_in_a_sweep_names_the_model(cli_env, pair_dirs, tmp_path):
    restored, gt = pair_dirs
    summary = tmp_path / "summary.md"
    res = score(restored, restored, gt, *FAST, "--name", "m1", "--name", "m2", "--fail-if", "mean.l1>0",
                env={"HLCLI_GITHUB": "1", "GITHUB_STEP_SUMMARY": str(summary)})
    assert res.exit_code == 1
    titles = [runner_parse(line)[1]["title"] for line in res.stderr.splitlines() if line.startswith("::")]
    assert titles == ["hlcli: m1: gate failed", "hlcli: m2: gate failed"]
    text = summary.read_text()
    assert "| model | pairs | result |" in text and "#### m1: ❌ **failed**" in text
