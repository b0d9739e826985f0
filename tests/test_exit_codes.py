"""Exit codes and error lines (README: 0 ok, 1 gate failed, 2 bad usage or input, 3 environment,
130 interrupted; gates are in test_gates.py): bad options and layers (2), absent devices, internal
errors and non-finite scores (3, never written), typed input errors that survive ``python -O``, and,
in real processes, Ctrl-C (130, no traceback, no half-written file), a reader closing the pipe
early (no traceback) and Pillow's warnings kept off stderr."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from hlcli.cli import cli

from .cases import COMMON, assert_one_line_error, case_dirs, encode, env, invoke, rgb, save, strict_json
from .conftest import ROOT, degrade

_FIXTURES = (env,)  # module-scoped fixture shared from tests/cases.py


def score(*args, **kw):
    return CliRunner().invoke(cli, ["score", *map(str, args)], **kw)


# --------------------------------------------------------------------------------- exit 2: usage

def test_exit_2_unknown_layer_suggests_the_nearest_names(pair_dirs):
    r = score(*pair_dirs, "--layers", "conv3_3,conv4_33")
    assert r.exit_code == 2
    assert "unknown VGG-19 layer 'conv4_33'; did you mean conv4_3?" in r.stderr
    assert "relu5_4" not in r.stderr and "hlcli layers" in r.stderr  # not all 37: where to see them
    r = score(*pair_dirs, "--layers", "conv9_9")  # nothing near: how names look
    assert r.exit_code == 2 and "conv9_9" in r.stderr and "conv1_1 … pool5" in r.stderr


def test_forgotten_command_word_hints_at_score(pair_dirs):
    """`hlcli out/ gt/`: the paths where the command belongs; the answer is the command to run."""
    restored, gt = map(str, pair_dirs)
    r = CliRunner().invoke(cli, [restored, gt, "--lambda", "0.1"])
    assert r.exit_code == 2
    assert f"is not a command; to score these images: hlcli score {restored} {gt} --lambda 0.1" in r.stderr
    r = CliRunner().invoke(cli, ["scroe"])  # a typo of a command is still Click's own answer
    assert r.exit_code == 2 and "Did you mean 'score'?" in r.stderr


@pytest.mark.parametrize("args", [
    ["--layer-weights", "1"], ["--layer-weights", "a,b"], ["--lambda", "-1"], ["--lambda", "nan"],
    ["--batch-size", "0"], ["--device", "tpu"], ["--workers", "-1"], ["--format", "xml"],
])
def test_exit_2_bad_options(cli_env, pair_dirs, args):
    r = score(*pair_dirs, *args)
    assert r.exit_code == 2, (args, r.stderr)
    assert "Traceback" not in r.stderr


# --------------------------------------------------------------------------------- exit 3: environment

def test_exit_3_cuda_requested_but_absent(cli_env, pair_dirs):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    r = score(*pair_dirs, "--device", "cuda")
    assert r.exit_code == 3 and "CUDA is not available" in r.stderr


def test_absent_mps_is_exit_3(env, tmp_path):
    import torch

    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        pytest.skip("this machine has MPS")
    r, g = case_dirs(tmp_path)
    res = invoke(env, r, g, *COMMON, "--device", "mps", "-f", "json")
    assert res.exit_code == 3 and res.stdout == ""
    assert_one_line_error(res.stderr, "MPS is not available", "--device cpu")


def test_exit_3_internal_error_is_one_line(cli_env, pair_dirs, monkeypatch):
    import hlcli.engine.scoring

    monkeypatch.setattr(hlcli.engine.scoring, "score_pairing", lambda *a, **k: 1 / 0)
    r = score(*pair_dirs)
    assert r.exit_code == 3 and r.stderr.count("\n") == 1 and "--debug" in r.stderr
    r = score(*pair_dirs, "--debug")
    assert isinstance(r.exception, ZeroDivisionError)


@pytest.fixture(scope="module")
def nan_weights(state_dict, tmp_path_factory) -> Path:
    import torch

    sd = {k: v.clone() for k, v in state_dict.items()}
    sd["features.5.bias"][3] = float("nan")  # conv2_1: every later feature is NaN
    path = tmp_path_factory.mktemp("nan") / "vgg19-nan.pth"
    torch.save(sd, path)
    return path


def test_non_finite_scores_are_exit_3_and_never_written(env, nan_weights, tmp_path):
    r, g = case_dirs(tmp_path)
    args = [r, g, *COMMON, "--weights", nan_weights]
    for mode in ("fail", "skip"):
        res = invoke(env, *args, "-f", "json", "--on-error", mode)
        assert res.exit_code == 3, res.stderr
        assert res.stdout == ""
        assert_one_line_error(res.stderr, "not finite", str(r / "good_a.png"))
    out = tmp_path / "scores.json"
    res = invoke(env, *args, "-o", out)
    assert res.exit_code == 3 and not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    res = invoke(env, *args, "-f", "jsonl")
    assert res.exit_code == 3
    records = [strict_json(line) for line in res.stdout.splitlines()]  # every line strict JSON
    assert records[0]["type"] == "header" and records[-1]["type"] == "aborted"
    assert records[-1]["exit_code"] == 3 and "not finite" in records[-1]["error"]
    assert all(x["type"] != "pair" for x in records)
    res = invoke(env, *args, "-f", "csv")
    assert res.exit_code == 3 and "nan" not in res.stdout.lower()


def test_json_writer_refuses_non_finite_numbers():
    from hlcli.render.common import dumps_strict

    for bad in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(ValueError):
            dumps_strict({"x": bad})


# --------------------------------------------------------------------------------- typed errors, even under python -O

def test_library_has_no_assert_statements():
    """Input validation must survive ``python -O``: no ``assert`` anywhere in hlcli/."""
    import ast

    offenders = []
    for path in sorted((ROOT / "hlcli").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Assert):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


@pytest.mark.slow
def test_library_input_errors_are_typed_under_python_dash_O(tmp_path):
    """The importable API raises InputError (exit code 2), never AssertionError, even with -O."""
    bad = tmp_path / "x.png"
    bad.write_bytes(b"junk")
    code = (
        "import sys\n"
        "from hlcli.errors import InputError\n"
        "from hlcli.inputs import images, pairing\nfrom hlcli.engine import scoring as runner\n"
        "calls = [lambda: images.decode(sys.argv[1]), lambda: images.probe(sys.argv[1]),\n"
        "         lambda: images.decode(sys.argv[1], alpha='maybe'),\n"
        "         lambda: pairing.find_pairs(sys.argv[1] + '-nope', sys.argv[1]),\n"
        "         lambda: runner.validate_options(runner.ScoreOptions(batch_size=0)),\n"
        "         lambda: runner.validate_options(runner.ScoreOptions(size_mismatch='stretch')),\n"
        "         lambda: runner.validate_options(runner.ScoreOptions(layers=('conv9_9',))),\n"
        "         lambda: runner.score_pairing(pairing.Pairing(pairs=[]), runner.ScoreOptions())]\n"
        "for call in calls:\n"
        "    try:\n"
        "        call()\n"
        "    except InputError as err:\n"
        "        print(type(err).__name__, err.exit_code, err.render().count(chr(10)))\n"
    )
    r = subprocess.run([sys.executable, "-O", "-c", code, str(bad)], capture_output=True, text=True,
                       cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["InputError 2 0"] * 8


# --------------------------------------------------------------------------------- real processes: warnings, Ctrl-C, pipes

@pytest.fixture(scope="module")
def proc_env(env) -> dict[str, str]:
    """Environment of a real ``hlcli`` process (sharing the module's warm weights cache)."""
    return {**os.environ, **env}


@pytest.fixture(scope="module")
def many_pairs(tmp_path_factory) -> tuple[Path, Path]:
    """300 small pairs with long names: a run long enough to interrupt, and every format's
    output larger than a pipe's buffer (64 KiB), so that `| head -1` really closes it early."""
    root = tmp_path_factory.mktemp("many")
    a = rgb(1, 48, 48)
    rb, gb = encode(degrade(a, 1), "PNG"), encode(a, "PNG")
    for d, blob in ((root / "r", rb), (root / "g", gb)):
        d.mkdir()
        for i in range(300):
            (d / f"p{i:04d}_{'x' * 120}.png").write_bytes(blob)
    return root / "r", root / "g"


@pytest.mark.slow
def test_pillow_bomb_warning_does_not_leak_to_stderr(proc_env, tmp_path):
    """Images over Pillow's warning threshold but under --max-pixels: no Python warning."""
    r, g = case_dirs(tmp_path)
    save(r / "big.png", rgb(3, 40, 40))  # 1600 pixels: Pillow warns above 1000 (set below)
    save(g / "big.png", rgb(4, 40, 40))
    code = ("import sys\n"
            "from PIL import Image\n"
            "Image.MAX_IMAGE_PIXELS = 1000\n"
            "from hlcli.cli import main\n"
            "main()\n")
    for workers in ("0", "1"):
        res = subprocess.run(
            [sys.executable, "-c", code, "score", str(r), str(g), "--layers", "conv2_2", "--workers", workers,
             "-f", "csv"], capture_output=True, text=True, cwd=ROOT, timeout=120, env=proc_env)
        assert res.returncode == 0, res.stderr
        assert res.stderr == "", res.stderr
        assert "big," in res.stdout


def _interruptible(many_pairs) -> list[str]:
    """A run slow enough to interrupt: one pair per batch, decoded in a worker process."""
    r, g = many_pairs
    return [sys.executable, "-m", "hlcli", "score", str(r), str(g), "--layers", "conv4_3", "--batch-size", "1",
            "--workers", "1"]


def test_ctrl_c_exits_130_without_traceback(proc_env, many_pairs):
    base = _interruptible(many_pairs)
    env = proc_env

    # to stdout: interrupt once the first pair has been streamed
    proc = subprocess.Popen([*base, "-f", "jsonl"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT, env=env, start_new_session=True)
    try:
        for line in proc.stdout:
            if '"type": "pair"' in line:
                break
        os.killpg(proc.pid, signal.SIGINT)  # like Ctrl-C: the whole process group
        rest, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert err.splitlines()[-1] == "Interrupted."
    # the stream ends on the `aborted` record docs/formats.md promises, not on a pair line
    last = json.loads(rest.splitlines()[-1])
    assert last == {"type": "aborted", "error": "interrupted", "exit_code": 130}, rest


@pytest.mark.slow
def test_ctrl_c_leaves_no_half_written_output_file(proc_env, many_pairs, tmp_path):
    base = _interruptible(many_pairs)
    env = proc_env

    # to a file: nothing is left behind, not even the temporary file
    out = tmp_path / "out" / "scores.jsonl"
    out.parent.mkdir()
    proc = subprocess.Popen([*base, "-o", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not any(p.stat().st_size > 0 for p in out.parent.iterdir()):
            assert proc.poll() is None and time.monotonic() < deadline, "finished before it could be interrupted"
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "Traceback" not in err, err
    assert list(out.parent.iterdir()) == []


@pytest.mark.parametrize("fmt", [pytest.param("csv", marks=pytest.mark.slow), "jsonl",
                                 pytest.param("table", marks=pytest.mark.slow)])
def test_head_dash_1_gives_no_traceback(proc_env, many_pairs, fmt):
    r, g = many_pairs
    cmd = (f"{sys.executable} -m hlcli score '{r}' '{g}' --layers conv1_1 -f {fmt} --workers 0 | head -1; "
           "echo rc=${PIPESTATUS[0]}")
    res = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=120, env=proc_env)
    assert "Traceback" not in res.stderr and "Exception ignored" not in res.stderr, res.stderr
    assert "Error" not in res.stderr, res.stderr
    lines = res.stdout.splitlines()
    assert len(lines) == 2 and lines[1] == "rc=141", res.stdout  # the pipe really was closed early
