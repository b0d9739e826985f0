"""``hlcli score --shard I/N``, ``--resume`` and ``hlcli merge``: parts merged are the run one
``hlcli score`` writes; merge refuses missing, duplicated and foreign parts (exit 2)."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from click.testing import CliRunner

from hlcli.cli import cli

from .conftest import degrade, save, textured
from .schemas import validate_score

FAST = ["--layers", "conv2_2", "--workers", "0", "--device", "cpu"]


def _run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result


@pytest.fixture(scope="module")
def scored(tmp_path_factory, weights_file):
    """Five pairs of mixed sizes, scored once whole and once in three shards."""
    root = tmp_path_factory.mktemp("merge")
    for i, (h, w) in enumerate([(40, 40), (64, 48), (32, 56), (48, 40), (64, 64)]):
        gt = textured(h, w, seed=i)
        save(root / "gt" / f"p{i}.png", gt)
        save(root / "out" / f"p{i}.png", degrade(gt, seed=i))
    common = [root / "out", root / "gt", "--weights", weights_file, *FAST]
    for fmt in ("json", "csv", "markdown"):
        assert _run("score", *common, "-f", fmt, "-o", root / f"single.{fmt}").exit_code == 0
    for i in range(3):
        r = _run("score", *common, "--shard", f"{i}/3", "-f", "json", "-o", root / f"part-{i}.json")
        assert r.exit_code == 0, r.stderr
    return root, common


def _without_command(doc):
    return {k: v for k, v in doc.items() if k != "command"}


def test_merged_parts_are_the_single_run(scored):
    root, _ = scored
    parts = [root / f"part-{i}.json" for i in range(3)]
    for p in parts:
        doc = validate_score(p.read_text())
        assert doc["shard"]["count"] == 3 and "shard" not in json.loads((root / "single.json").read_text())
    sizes = [len(validate_score(p.read_text())["pairs"]) for p in parts]
    assert sum(sizes) == 5 and len(set(sizes)) > 1  # uneven, balanced by pixels

    r = _run("merge", *reversed(parts), "-o", root / "merged.json")
    assert r.exit_code == 0, r.stderr
    merged = validate_score((root / "merged.json").read_text())
    single = json.loads((root / "single.json").read_text())
    assert _without_command(merged) == _without_command(single)
    for fmt in ("csv", "markdown"):  # the same code renders every format
        r = _run("merge", *parts, "-f", fmt)
        assert r.exit_code == 0 and r.stdout == (root / f"single.{fmt}").read_text()


def test_merge_says_what_it_merged_and_wrote(scored, monkeypatch):
    """On a terminal: "merged 3 parts, 5 pairs" (not "scored ... in 0.1 s"), then the file
    written; -q says neither."""
    import hlcli.cli.runview as score_module

    monkeypatch.setattr(score_module, "stderr_is_terminal", lambda: True)
    root, _ = scored
    parts = [root / f"part-{i}.json" for i in range(3)]
    r = _run("merge", *parts, "-o", root / "said.json")
    assert r.exit_code == 0, r.stderr
    lines = r.stderr.splitlines()
    assert "merged 3 parts, 5 pairs" in lines and not any(line.startswith("scored") for line in lines)
    size = (root / "said.json").stat().st_size
    assert f"wrote {root / 'said.json'} ({size / 1000:.1f} kB)" in lines
    r = _run("merge", parts[0], parts[1], parts[2], "-o", root / "said.json", "-q")
    assert r.exit_code == 0 and r.stderr == ""


def test_merge_applies_gates_and_baseline_like_score(scored):
    root, _ = scored
    parts = [root / f"part-{i}.json" for i in range(3)]
    r = _run("merge", *parts, "-f", "json", "--fail-if", "mean.hybrid>0")
    assert r.exit_code == 1 and "mean.hybrid" in r.stderr
    assert json.loads(r.stdout)["gate"]["passed"] is False
    r = _run("merge", *parts, "-f", "json", "--baseline", root / "single.json", "--max-regression", "0%")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["gate"]["regressions"]["passed"] is True


def test_merge_refuses_missing_duplicate_and_foreign_parts(scored, tmp_path):
    root, common = scored
    p0, p1, p2 = (root / f"part-{i}.json" for i in range(3))
    r = _run("merge", p0, p2, "-o", tmp_path / "m.json")
    assert r.exit_code == 2 and "missing shard 1 of 3" in r.stderr
    copy = shutil.copy(p0, tmp_path / "again.json")
    r = _run("merge", p0, p1, p2, copy, "-o", tmp_path / "m.json")
    assert r.exit_code == 2 and "shard 0/3 given 2 times" in r.stderr
    other = tmp_path / "other-1.json"
    assert _run("score", *common, "--lambda", "0.1", "--shard", "1/3", "-f", "json", "-o", other).exit_code == 0
    r = _run("merge", p0, other, p2, "-o", tmp_path / "m.json")
    assert r.exit_code == 2 and f"foreign part {other}" in r.stderr and "missing shard 1" in r.stderr
    r = _run("merge", root / "single.json", "-o", tmp_path / "m.json")
    assert r.exit_code == 2 and "single.json: shard: is missing" in r.stderr
    assert not (tmp_path / "m.json").exists()
    assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("Error: ")


def test_resume_skips_a_complete_part_and_rescores_otherwise(scored, tmp_path):
    root, common = scored
    part = tmp_path / "part-1.json"
    shutil.copy(root / "part-1.json", part)
    os.utime(part, (1, 1))
    r = _run("score", *common, "--shard", "1/3", "-f", "json", "-o", part, "--resume")
    assert r.exit_code == 0 and "not rescored" in r.stderr and part.stat().st_mtime == 1
    r = _run("score", *common, "--lambda", "0.2", "--shard", "1/3", "-f", "json", "-o", part, "--resume")
    assert r.exit_code == 0 and "rescoring shard 1/3" in r.stderr and part.stat().st_mtime != 1
    assert validate_score(part.read_text())["settings"]["lambda"] == 0.2
    part.write_text(part.read_text()[:100])  # damaged: rescored
    r = _run("score", *common, "--lambda", "0.2", "--shard", "1/3", "-f", "json", "-o", part, "--resume")
    assert r.exit_code == 0 and "rescoring" in r.stderr
    validate_score(part.read_text())
    r = _run("score", *common, "--resume", "-o", part)
    assert r.exit_code == 2 and "--resume needs --shard" in r.stderr


def test_bad_shard_is_a_usage_error(scored):
    _, common = scored
    r = _run("score", *common, "--shard", "3/3")
    assert r.exit_code == 2 and "bad shard" in r.stderr
