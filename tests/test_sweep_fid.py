"""FID and KID in a checkpoint sweep (``hlcli score A/ B/ C/ GT/ --metrics fid,kid``, issue #25):
each model's set values are its single run's, bit for bit; each ground-truth sample goes through
the Inception once per sweep, whatever the number of models and groups; ``--resume`` keeps a
complete model's stored set values."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
from click.testing import CliRunner

from hlcli.cli import cli
from hlcli.metrics.setfeatures import InceptionFeatures
from hlcli.nets import inception

from .test_sweep import _tree

FID = ["--metrics", "fid,kid", "--fid-dims", "64", "--layers", "conv2_2", "--workers", "0", "-r", "--group-by", "top"]


def test_a_batch_of_two_computes_each_sample_alone(inception_file):
    """What the sweep's sharing rests on, checked rather than trusted: in a batch of two (the only
    batch the set features use), a sample's features depend neither on its companion nor on its
    place, and a copy of itself as companion (the sweep's odd one out) changes nothing."""
    feats = InceptionFeatures(torch.load(inception_file, weights_only=True), dims=2048)
    g, r = (torch.rand(3, 299, 299, generator=torch.Generator().manual_seed(s)) * 2 - 1 for s in (1, 2))
    a, b = feats._forward([r, g]), feats._forward([g, g])
    assert (a[1] == b[0]).all() and (b[0] == b[1]).all()
    assert not (a[0] == a[1]).all()  # the features do tell the images apart


def test_measure_models_is_measure_of_each_model(inception_file):
    """Several samples per pair (patches), models in another order than the ground truth's,
    an odd count of restored samples, the ground truth's features from the cache: each model's
    features are :meth:`measure`'s of that model alone, bit for bit."""
    feats = InceptionFeatures(torch.load(inception_file, weights_only=True), dims=64, patches=24)
    gen = torch.Generator().manual_seed(5)
    gt = torch.randint(0, 256, (2, 3, 40, 48), generator=gen, dtype=torch.uint8)
    rs = [torch.randint(0, 256, (2, 3, 40, 48), generator=gen, dtype=torch.uint8) for _ in range(2)]
    models = [(rs[0][1:], [1]), (rs[1], [0, 1])]  # model 0 scores the second pair only
    cache: dict = {}
    got = feats.measure_models(gt, models, 255, ["g0", "g1"], cache)
    assert set(cache) == {"g0", "g1"} and cache["g0"].shape == (3, 64)
    for (r, pos), out in zip(models, got):
        alone = feats.measure(r, gt[pos], 255)
        assert all((a == b).all() and (fa == fb).all() for (a, fa), (b, fb) in zip(alone, out))
    again = feats.measure_models(gt[1:], [(rs[0][1:], [0])], 255, ["g1"], cache)  # the cache's features
    assert (again[0][0][0] == got[0][0][0]).all() and again[0][0][1] is cache["g1"]


@pytest.fixture
def counted(monkeypatch):
    """Every batch the Inception sees, as the sha256 of each of its samples."""
    batches: list[list[str]] = []
    build = inception.build

    def counting(*args, **kwargs):
        net = build(*args, **kwargs)

        def forward(x):
            batches.append([hashlib.sha256(t.contiguous().numpy().tobytes()).hexdigest() for t in x.cpu()])
            return net(x)
        return forward

    monkeypatch.setattr(inception, "build", counting)
    return batches


def _run(*args) -> tuple[int, str]:
    res = CliRunner().invoke(cli, ["score", *map(str, args), *FID, "-q"])
    return res.exit_code, res.output


def test_sweep_set_values_equal_single_runs_and_gt_once(fid_env, tmp_path, counted):
    """Two models, one with a file missing (its own group in the sweep, an odd number of restored
    images in a batch): each model's summary (FID, KID of the run and of every group) equals its
    single run's exactly; each ground-truth image goes through the Inception once in the whole
    sweep, every batch holding two samples."""
    models, gt = _tree(tmp_path, models=2)
    (models[1] / "a.png").unlink()
    singles, gt_samples = [], set()
    for m, folder in enumerate(models):
        counted.clear()
        code, out = _run(folder, gt, "--allow-missing", "-f", "json", "-o", tmp_path / f"single{m}.json")
        assert code == 0, out
        assert all(len(b) == 2 for b in counted)
        gt_samples |= {b[1] for b in counted}  # a single run's batches are [restored, gt]
        singles.append(json.loads((tmp_path / f"single{m}.json").read_text()))
    counted.clear()
    code, out = _run(*models, gt, "--allow-missing", "-o", tmp_path / "out")
    assert code == 0, out
    for m, single in enumerate(singles):
        sweep = json.loads((tmp_path / "out" / f"step{m}.json").read_text())["summary"]
        assert sweep["sets"] == single["summary"]["sets"] and sweep["sets"]["samples"] == 5 - m
        assert set(sweep["groups"]) == {".", "d"}  # the top folder and d/
        assert {g: s["sets"] for g, s in sweep["groups"].items()} == \
            {g: s["sets"] for g, s in single["summary"]["groups"].items()}
    assert all(len(b) == 2 for b in counted)
    seen = [h for b in counted for h in b]
    assert len(gt_samples) == 5 and {h: seen.count(h) for h in gt_samples} == dict.fromkeys(gt_samples, 1)
    # model 0's 5 batches [restored, gt]; model 1's 4 restored images alone: 3 of 40x48 (two
    # batches, the odd one beside a copy of itself), 1 of 36x44 (one batch)
    assert len(counted) == 5 + 2 + 1


def test_resume_keeps_stored_set_values(fid_env, tmp_path):
    """A complete model's document is not rescored: its stored FID/KID (run and groups) stand
    for it, in the gates too; other Inception settings rescore it."""
    models, gt = _tree(tmp_path, models=2)
    out = tmp_path / "out"
    code, text = _run(*models, gt, "-o", out)
    assert code == 0, text
    docs = {m: json.loads((out / f"step{m}.json").read_text()) for m in range(2)}
    fids = [docs[m]["summary"]["sets"]["fid"] for m in range(2)]
    (out / "step1.json").unlink()
    threshold = (fids[0] + fids[1]) / 2
    res = CliRunner().invoke(cli, ["score", *map(str, [*models, gt]), *FID, "-o", str(out), "--resume",
                                   "--fail-if", f"fid>{threshold!r}", "--fail-if", "fid[.]>1e9"])
    worse = 0 if fids[0] > fids[1] else 1
    assert res.exit_code == 1 and f"step{worse}: Gate failed: fid>" in res.stderr, res.output
    assert f"step{1 - worse}: Gate failed" not in res.stderr
    assert "note: step0: " in res.stderr and "not rescored" in res.stderr
    assert json.loads((out / "step0.json").read_text()) == docs[0]  # left as it was
    assert json.loads((out / "step1.json").read_text())["summary"]["sets"] == docs[1]["summary"]["sets"]
    res = CliRunner().invoke(cli, ["score", *map(str, [*models, gt]), *FID, "--fid-dims", "192", "-o",
                                   str(out), "--resume"])
    assert res.exit_code == 0 and "rescoring: " in res.stderr and "other fid" in res.stderr, res.output
    assert json.loads((out / "step0.json").read_text())["summary"]["sets"]["dims"] == 192


def test_sweep_table_shows_each_models_set_values(fid_env, tmp_path):
    """The sweep's terminal table has FID and KID columns: each model's set value (as in its
    document), the best of the column marked by the registry's direction (lowest)."""
    models, gt = _tree(tmp_path, models=2)
    code, text = _run(*models, gt, "-o", tmp_path / "out")
    assert code == 0, text
    fids = [json.loads((tmp_path / "out" / f"step{m}.json").read_text())["summary"]["sets"]["fid"] for m in range(2)]
    res = CliRunner().invoke(cli, ["score", *map(str, [*models, gt]), *FID, "-f", "table", "-q"],
                             env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    rows = {line.split("│")[1].strip(): line for line in res.stdout.splitlines() if line.count("│") > 3}
    assert "FID↓" in res.stdout and "KID↓" in res.stdout and "each model's set" in res.stdout
    best = min(range(2), key=lambda m: fids[m])
    for m in range(2):
        assert f"{fids[m]:.4f}" in rows[f"step{m}"]
    assert f"{fids[best]:.4f} *" in rows[f"step{best}"] and f"{fids[1 - best]:.4f} *" not in rows[f"step{1 - best}"]
