"""Checkpoint sweeps (``hlcli score A/ B/ ... GT/``, ``hlcli.score_models``): each model's
document equals its single run, pair by pair and key by key; failures stay per model; nothing is
written when the run stops; ``--resume`` scores only the models whose documents are not complete."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from hlcli.cli import cli

from .conftest import degrade, save, textured

COMMON = ["--layers", "conv2_2,conv4_3", "--workers", "0", "-q"]
SIZES = {"a": (40, 48), "b": (40, 48), "c": (36, 44), "d/e": (40, 48), "f": (40, 48)}


def _tree(root: Path, models: int = 4) -> tuple[list[Path], Path]:
    """GT and ``models`` models (each degraded differently), two image sizes, one subfolder."""
    for i, (key, (h, w)) in enumerate(SIZES.items()):
        gt = textured(h, w, seed=i)
        save(root / "gt" / f"{key}.png", gt)
        for m in range(models):
            save(root / "ckpts" / f"step{m}" / f"{key}.png", degrade(gt, seed=10 * m + i, amount=4 + 3 * m))
    return [root / "ckpts" / f"step{m}" for m in range(models)], root / "gt"


def _score(env_weights: Path, *args, input=None):
    return CliRunner().invoke(cli, ["score", *map(str, args), "--weights", str(env_weights), *COMMON], input=input)


def _same_document(sweep: dict, single: dict) -> None:
    """Every key equal (floats to 1e-12 relative), but the command line."""
    def walk(a, b, where):
        if isinstance(a, dict):
            assert isinstance(b, dict) and set(a) == set(b), where
            for k in a:
                if (where, k) != ("", "command"):
                    walk(a[k], b[k], f"{where}/{k}")
        elif isinstance(a, list):
            assert isinstance(b, list) and len(a) == len(b), where
            for i, (x, y) in enumerate(zip(a, b)):
                walk(x, y, f"{where}[{i}]")
        elif isinstance(a, float) and isinstance(b, float) and math.isfinite(a):
            assert math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0), (where, a, b)
        else:
            assert a == b, (where, a, b)
    assert sweep["pairs"], "nothing scored"
    walk(sweep, single, "")


@pytest.mark.parametrize("extra", [
    ["--metrics", "psnr,ssim_y", "--crop-border", "2", "-r", "--group-by", "top"],
    ["--batch-size", "1", "-r"],  # one pair per forward: batches of two images (sweepengine)
])
def test_each_model_document_equals_its_single_run(weights_file, tmp_path, extra):
    models, gt = _tree(tmp_path)
    res = _score(weights_file, *models, gt, "-o", tmp_path / "out", *extra)
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"step{m}.json" for m in range(4)]
    for m, folder in enumerate(models):
        single = _score(weights_file, folder, gt, "-f", "json", "-o", tmp_path / f"single{m}.json", *extra)
        assert single.exit_code == 0, single.output
        _same_document(json.loads((tmp_path / "out" / f"step{m}.json").read_text()),
                       json.loads((tmp_path / f"single{m}.json").read_text()))


def test_model_with_missing_file_is_handled_per_model(weights_file, tmp_path):
    models, gt = _tree(tmp_path, models=3)
    (models[1] / "c.png").unlink()
    res = _score(weights_file, *models, gt, "-o", tmp_path / "out")
    assert res.exit_code == 2 and "no restored file" in res.output
    assert not (tmp_path / "out").exists()  # the policy says fail: nothing written

    res = _score(weights_file, *models, gt, "-o", tmp_path / "out", "--allow-missing")
    assert res.exit_code == 0, res.output
    for m in (0, 1, 2):
        single = _score(weights_file, models[m], gt, "-f", "json", "-o", tmp_path / f"s{m}.json", "--allow-missing")
        doc = json.loads((tmp_path / "out" / f"step{m}.json").read_text())
        _same_document(doc, json.loads((tmp_path / f"s{m}.json").read_text()))
        assert len(doc["pairs"]) == (3 if m == 1 else 4)  # a.png, b.png, c.png, f.png (no -r)


def test_bad_file_in_one_model_is_skipped_for_that_model_only(weights_file, tmp_path):
    models, gt = _tree(tmp_path, models=3)
    bad = models[2] / "b.png"
    blob = bytearray(bad.read_bytes())
    blob[60:200] = bytes(140)  # header intact, data broken: fails at decode, not at planning
    bad.write_bytes(bytes(blob))
    res = _score(weights_file, *models, gt, "-o", tmp_path / "out")
    assert res.exit_code == 2 and "b.png" in res.output
    assert not (tmp_path / "out").exists()

    res = _score(weights_file, *models, gt, "-o", tmp_path / "out", "--on-error", "skip")
    assert res.exit_code == 2 and "step2: 1 pair skipped" in res.output, res.output
    docs = {m: json.loads((tmp_path / "out" / f"step{m}.json").read_text()) for m in range(3)}
    assert [len(d["skipped"]) for d in docs.values()] == [0, 0, 1]
    single = _score(weights_file, models[2], gt, "-f", "json", "-o", tmp_path / "s2.json", "--on-error", "skip")
    _same_document(docs[2], json.loads((tmp_path / "s2.json").read_text()))
    single = _score(weights_file, models[0], gt, "-f", "json", "-o", tmp_path / "s0.json", "--on-error", "skip")
    assert single.exit_code == 0
    _same_document(docs[0], json.loads((tmp_path / "s0.json").read_text()))


def test_names_duplicates_and_the_ground_truth_as_a_model_are_refused(weights_file, tmp_path):
    models, gt = _tree(tmp_path, models=2)
    other = tmp_path / "elsewhere" / "step0"
    other.mkdir(parents=True)
    for p in models[1].glob("*.png"):
        (other / p.name).write_bytes(p.read_bytes())
    res = _score(weights_file, models[0], other, gt)
    assert res.exit_code == 2 and "two models are named step0" in res.output
    res = _score(weights_file, models[0], other, gt, "--name", "x", "--name", "y", "-o", tmp_path / "o")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["x.json", "y.json"]
    res = _score(weights_file, models[0], other, gt, "--name", "x")
    assert res.exit_code == 2 and "1 --name for 2 model folders" in res.output
    res = _score(weights_file, models[0], gt, gt)
    assert res.exit_code == 2 and "is the ground-truth folder" in res.output
    res = _score(weights_file, models[0], models[1], gt, "--shard", "0/2")
    assert res.exit_code == 2 and "--shard cannot be used with a sweep" in res.output


def test_ctrl_c_writes_no_document(weights_file, tmp_path, monkeypatch):
    from hlcli.engine import sweep

    models, gt = _tree(tmp_path, models=3)
    real = sweep._batch_results
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # after the first batch of every model was scored
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(sweep, "_batch_results", interrupted)
    res = _score(weights_file, *models, gt, "-o", tmp_path / "out", "--batch-size", "2")
    assert res.exit_code == 130
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_resume_scores_only_new_or_incomplete_models(weights_file, tmp_path, monkeypatch):
    models, gt = _tree(tmp_path, models=3)
    out = tmp_path / "out"
    assert _score(weights_file, *models[:2], gt, "-o", out).exit_code == 0
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    from hlcli.engine import sweep

    scored = []
    real = sweep.score_sweep

    def counted(ms, *a, **k):
        scored.extend(m.name for m in ms)
        return real(ms, *a, **k)

    monkeypatch.setattr(sweep, "score_sweep", counted)
    (out / "step1.json").write_text((out / "step1.json").read_text()[:500])  # an interrupted copy
    res = CliRunner().invoke(cli, ["score", *map(str, models), str(gt), "--weights", str(weights_file), *COMMON[:-1],
                                   "-o", str(out), "--resume", "--fail-if", "mean.hybrid>1"])
    assert res.exit_code == 0, res.output
    assert scored == ["step1", "step2"]
    assert "step0: " in res.output and "is complete: not rescored" in res.output
    assert (out / "step0.json").stat().st_mtime_ns == before["step0.json"]
    single = _score(weights_file, models[1], gt, "-f", "json", "-o", tmp_path / "s1.json", "--fail-if", "mean.hybrid>1")
    assert single.exit_code == 0
    _same_document(json.loads((out / "step1.json").read_text()), json.loads((tmp_path / "s1.json").read_text()))
    res = _score(weights_file, *models, gt, "--resume")
    assert res.exit_code == 2 and "--resume with a sweep needs -o DIR/" in res.output


def test_gates_per_model_worst_exit_and_outputs(weights_file, tmp_path):
    models, gt = _tree(tmp_path, models=3)
    res = _score(weights_file, *models, gt, "-o", tmp_path / "out", "--fail-if", "mean.l1>0.03")
    assert res.exit_code == 1
    assert "step2: Gate failed: mean.l1>0.03" in res.output and "step0: Gate" not in res.output
    res = _score(weights_file, *models, gt)  # piped: CSV with a model column
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0].startswith("model,key,status,")
    assert {ln.split(",")[0] for ln in lines[1:]} == {"step0", "step1", "step2"} and len(lines) == 1 + 3 * 4
    res = _score(weights_file, *models, gt, "-f", "table", "--metrics", "psnr")
    assert res.exit_code == 0, res.output
    row0 = next(ln for ln in res.stdout.splitlines() if "step0" in ln)
    assert row0.count("*") >= 5  # the least degraded model is best on every column, PSNR included
    res = _score(weights_file, *models, gt, "-f", "json")
    assert res.exit_code == 2 and "add -o DIR/" in res.output
    for command in (["tradeoff"], ["table", "-f", "latex"]):
        out = CliRunner().invoke(cli, [*command, *map(str, sorted((tmp_path / "out").glob("*.json")))])
        assert out.exit_code == 0, out.output
        assert "step1" in out.stdout


def test_score_models_api_equals_score_dirs(weights_file, tmp_path):
    import hlcli

    models, gt = _tree(tmp_path, models=2)
    opts = {"layers": ("conv2_2",), "weights": str(weights_file), "workers": 0}
    runs = hlcli.score_models({"a": models[0], "b": models[1]}, gt, **opts)
    assert list(runs) == ["a", "b"]
    for name, folder in zip("ab", models):
        single = hlcli.score_dirs(folder, gt, **opts)
        assert [p.__dict__ for p in runs[name].pairs] == [p.__dict__ for p in single.pairs]
    with pytest.raises(hlcli.InputError, match="ground-truth folder"):
        hlcli.score_models({"a": gt}, gt, **opts)
