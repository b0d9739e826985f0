"""End to end through the command line: formats, exit codes, pairing rules, invariants."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from hlcli import __version__
from hlcli.cli import cli

from .conftest import ROOT, SAMPLES, save, textured


def score(*args, **kw):
    return CliRunner().invoke(cli, ["score", *map(str, args)], **kw)


def ok_json(*args):
    r = score(*args, "-f", "json")
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)


def run_py(code: str, env=None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})}, timeout=120, **kw)


# -- start-up -------------------------------------------------------------------------------

def test_help_and_version_do_not_import_torch():
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from hlcli.cli import cli\n"
        "for args in (['--help'], ['--version'], ['score', '--help'], ['weights', '--help'], ['layers']):\n"
        "    r = CliRunner().invoke(cli, args)\n"
        "    assert r.exit_code == 0, (args, r.output)\n"
        "print('torch' in sys.modules, 'torchvision' in sys.modules)\n"
    )
    assert run_py(code).stdout.strip() == "False False"


def test_python_dash_m_and_version():
    r = subprocess.run([sys.executable, "-m", "hlcli", "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == f"hlcli, version {__version__}"


def test_score_help_has_every_option():
    r = CliRunner().invoke(cli, ["score", "--help"])
    for opt in ("--lambda", "--layers", "--layer-weights", "--format", "--output", "--device", "--batch-size",
                "--workers", "--weights", "--offline", "--recursive", "--quiet", "--allow-missing", "--pairs",
                "--precision", "--on-error", "--size-mismatch", "--alpha", "--max-pixels"):
        assert opt in r.stdout, opt


def test_layers_command_lists_all_37():
    r = CliRunner().invoke(cli, ["layers"])
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 37
    assert lines[14].startswith("conv3_3  index 14  pre-relu") and "(default)" in lines[14]
    assert lines[36].startswith("pool5    index 36")


# -- formats ----------------------------------------------------------------------------------

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


def test_output_file_and_format_from_extension(cli_env, pair_dirs, tmp_path):
    out = tmp_path / "scores.json"
    r = score(*pair_dirs, "-o", out)
    assert r.exit_code == 0 and r.stdout == ""
    assert json.loads(out.read_text())["summary"]["count"] == 4
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp left


def test_failed_run_leaves_no_output_file(cli_env, pair_dirs, tmp_path):
    out = tmp_path / "scores.csv"
    (pair_dirs[0] / "b.png").write_bytes(b"broken")
    r = score(*pair_dirs, "-o", out)
    assert r.exit_code == 2
    assert not out.exists() and list(tmp_path.glob(".scores.csv*")) == []


# -- invariants -------------------------------------------------------------------------------

def test_scores_do_not_depend_on_batch_size_or_workers(cli_env, pair_dirs):
    base = {p["key"]: p for p in ok_json(*pair_dirs, "--batch-size", "16", "--workers", "0")["pairs"]}
    for args in (("--batch-size", "1", "--workers", "0"), ("--batch-size", "2", "--workers", "2")):
        for p in ok_json(*pair_dirs, *args)["pairs"]:
            b = base[p["key"]]
            assert p["l1"] == b["l1"]
            for k in ("perceptual", "hybrid"):
                assert p[k] == pytest.approx(b[k], rel=1e-5, abs=0)


# -- pairing ----------------------------------------------------------------------------------

def test_pairs_by_relative_path_not_position(cli_env, tmp_path):
    a, b = textured(48, 48, 1), textured(48, 48, 2)
    save(tmp_path / "r" / "sub" / "x.png", a)
    save(tmp_path / "r" / "sub" / "y.png", b)
    save(tmp_path / "g" / "sub" / "x.jpg", a, quality=100)  # different extension, same key
    save(tmp_path / "g" / "sub" / "y.png", b)
    doc = ok_json(tmp_path / "r", tmp_path / "g", "-r")
    keys = {p["key"]: p for p in doc["pairs"]}
    assert set(keys) == {"sub/x", "sub/y"}
    assert keys["sub/y"]["hybrid"] == 0.0 and keys["sub/x"]["gt"].endswith("x.jpg")


def test_missing_files_fail_with_exit_2_and_are_listed(cli_env, pair_dirs):
    (pair_dirs[1] / "a.png").unlink()
    save(pair_dirs[0] / "extra.png", textured(40, 40, 9))
    r = score(*pair_dirs)
    assert r.exit_code == 2 and r.stdout == ""
    assert f"no ground truth for {pair_dirs[0] / 'a.png'}" in r.stderr
    assert f"no ground truth for {pair_dirs[0] / 'extra.png'}" in r.stderr
    assert "--allow-missing" in r.stderr.splitlines()[-1]


def test_allow_missing_still_lists_them_everywhere(cli_env, pair_dirs):
    (pair_dirs[1] / "a.png").unlink()
    save(pair_dirs[1] / "gtonly.png", textured(40, 40, 9))
    doc = ok_json(*pair_dirs, "--allow-missing")
    assert doc["complete"] is False and doc["summary"]["count"] == 3
    assert doc["missing"]["restored_only"] == [str(pair_dirs[0] / "a.png")]
    assert doc["missing"]["gt_only"] == [str(pair_dirs[1] / "gtonly.png")]
    rows = list(csv.DictReader(io.StringIO(score(*pair_dirs, "--allow-missing", "-f", "csv").stdout)))
    assert {(r["status"], r["restored"] or r["gt"]) for r in rows if r["status"] != "ok"} == {
        ("restored-only", str(pair_dirs[0] / "a.png")), ("gt-only", str(pair_dirs[1] / "gtonly.png"))}
    lines = [json.loads(x) for x in score(*pair_dirs, "--allow-missing", "-f", "jsonl").stdout.splitlines()]
    assert sum(x["type"] == "missing" for x in lines) == 2
    for fmt in ("table", "markdown"):
        r = score(*pair_dirs, "--allow-missing", "-f", fmt)
        assert "a.png" in r.stdout and "gtonly.png" in r.stdout, fmt
        assert "incomplete" in r.stdout.lower()


# -- exit codes -------------------------------------------------------------------------------

def test_exit_2_unknown_layer_lists_valid_names(pair_dirs):
    r = score(*pair_dirs, "--layers", "conv3_3,conv9_9")
    assert r.exit_code == 2
    assert "conv9_9" in r.stderr and "relu5_4" in r.stderr and "pool5" in r.stderr


@pytest.mark.parametrize("args", [
    ["--layer-weights", "1"], ["--layer-weights", "a,b"], ["--lambda", "-1"], ["--lambda", "nan"],
    ["--batch-size", "0"], ["--device", "tpu"], ["--workers", "-1"], ["--format", "xml"],
])
def test_exit_2_bad_options(cli_env, pair_dirs, args):
    r = score(*pair_dirs, *args)
    assert r.exit_code == 2, (args, r.stderr)
    assert "Traceback" not in r.stderr


def test_exit_2_nonexistent_path(tmp_path):
    r = score(tmp_path / "nope", tmp_path)
    assert r.exit_code == 2 and "does not exist" in r.stderr


def test_exit_2_size_mismatch_names_both_sizes(cli_env, tmp_path):
    save(tmp_path / "r" / "x.png", textured(64, 64, 1))
    save(tmp_path / "g" / "x.png", textured(64, 72, 1))
    r = score(tmp_path / "r", tmp_path / "g")
    assert r.exit_code == 2
    assert "64x64" in r.stderr and "72x64" in r.stderr and str(tmp_path / "r" / "x.png") in r.stderr
    assert r.stderr.count("\n") == 1


def test_exit_3_cuda_requested_but_absent(cli_env, pair_dirs):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    r = score(*pair_dirs, "--device", "cuda")
    assert r.exit_code == 3 and "CUDA is not available" in r.stderr


def test_exit_130_on_ctrl_c_without_traceback(cli_env, pair_dirs, monkeypatch, tmp_path):
    import hlcli.scoring

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(hlcli.scoring, "score_pairing", interrupted)
    out = tmp_path / "x.json"
    r = score(*pair_dirs, "-o", out)
    assert r.exit_code == 130 and "Traceback" not in r.stderr
    assert not out.exists() and list(tmp_path.glob(".x.json*")) == []


def test_exit_3_internal_error_is_one_line(cli_env, pair_dirs, monkeypatch):
    import hlcli.scoring

    monkeypatch.setattr(hlcli.scoring, "score_pairing", lambda *a, **k: 1 / 0)
    r = score(*pair_dirs)
    assert r.exit_code == 3 and r.stderr.count("\n") == 1 and "--debug" in r.stderr
    r = score(*pair_dirs, "--debug")
    assert isinstance(r.exception, ZeroDivisionError)


def test_broken_pipe_gives_no_traceback(cli_env, pair_dirs):
    """`hlcli score ... | head -1`: the reader closes the pipe early."""
    cmd = (f"{sys.executable} -m hlcli score {pair_dirs[0]} {pair_dirs[1]} -f jsonl --workers 0 | head -c 10; "
           "echo; echo rc=${PIPESTATUS[0]}")
    r = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "HLCLI_WEIGHTS": str(cli_env)})
    assert "Traceback" not in r.stderr and "Error" not in r.stderr, r.stderr
    assert r.stdout.splitlines()[-1] in ("rc=0", "rc=141")
