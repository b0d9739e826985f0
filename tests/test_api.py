"""The public Python API: cheap import, every name documented, HybridLoss equal to the CLI and
to the float64 reference, and the runnable examples of the docs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner

import hlcli
from hlcli.cli import cli
from hlcli.nets.layers import BY_NAME

from .conftest import ROOT, SAMPLES, degrade, save, textured
from .reference import load_rgb01, reference_model, reference_scores


def test_import_is_cheap_and_lazy():
    code = "import hlcli, sys; hlcli.score_dirs; hlcli.Run; hlcli.InputError; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"
    out = subprocess.run([sys.executable, "-c", "import hlcli, sys; hlcli.HybridLoss; print('torch' in sys.modules)"],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "True"


@pytest.mark.parametrize("name", [n for n in hlcli.__all__ if n != "__version__"])
def test_every_public_name_resolves_and_has_an_example(name):
    obj = getattr(hlcli, name)
    assert obj.__doc__ and obj.__doc__.strip(), name
    assert ">>>" in obj.__doc__, f"{name}'s docstring has no example"
    assert name in (ROOT / "docs" / "python-api.md").read_text(encoding="utf-8")


def test_docstring_examples_run():
    """The examples that need no files or weights run as doctests (the others are marked SKIP)."""
    import doctest

    import hlcli.errors
    import hlcli.metrics.hybrid
    import hlcli.engine.options
    import hlcli.runs.results
    import hlcli.engine.scoring
    import hlcli.analysis.plane
    import hlcli.render.table

    for module in (hlcli.errors, hlcli.metrics.hybrid, hlcli.engine.options, hlcli.runs.results, hlcli.engine.scoring,
                   hlcli.analysis.plane, hlcli.render.table):
        result = doctest.testmod(module, extraglobs={"hlcli": hlcli}, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0, module.__name__
        assert result.attempted > 0, module.__name__


def test_unknown_attribute_and_option_are_errors():
    with pytest.raises(AttributeError):
        hlcli.no_such_name  # noqa: B018
    with pytest.raises(TypeError, match="unknown option"):
        hlcli.score_dirs(SAMPLES / "restored", SAMPLES / "gt", lamda=0.1)


LAYERS = ["relu2_2", "conv3_3", "relu4_3", "conv4_3"]
WEIGHTS = [0.5, 1.0, 2.0, 0.25]


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory, weights_file):
    """The CLI's JSON document on small photo-like pairs (one of odd size, one identical), with
    conv and relu layers (the samples are checked against the reference in test_metrics.py;
    float64 VGG on them would take a minute here)."""
    root = tmp_path_factory.mktemp("pairs")
    for i, (h, w) in enumerate([(48, 64), (37, 53), (40, 40)]):
        gt = textured(h, w, seed=i)
        save(root / "gt" / f"p{i}.png", gt)
        save(root / "restored" / f"p{i}.png", gt if i == 2 else degrade(gt, seed=i))
    env = {**os.environ, "HLCLI_WEIGHTS": str(weights_file),
           "TORCH_HOME": str(tmp_path_factory.mktemp("torch")), "HLCLI_CACHE": str(tmp_path_factory.mktemp("c"))}
    res = CliRunner(env=env).invoke(cli, ["score", str(root / "restored"), str(root / "gt"), "-f", "json",
                                          "--layers", ",".join(LAYERS), "--layer-weights",
                                          ",".join(map(str, WEIGHTS)), "--lambda", "0.07"])
    assert res.exit_code == 0, res.stderr
    return json.loads(res.stdout)


def _tensor(path):
    return torch.from_numpy(load_rgb01(path)).permute(2, 0, 1)[None].float()


def test_hybrid_loss_equals_the_cli_and_the_float64_reference(cli_run, state_dict):
    loss_fn = hlcli.HybridLoss(state_dict, layers=LAYERS, layer_weights=WEIGHTS, lam=0.07, reduction="none")
    ref = reference_model(state_dict)
    indices = [BY_NAME[n].index for n in LAYERS]
    for pair in cli_run["pairs"]:
        r, g = _tensor(pair["restored"]), _tensor(pair["gt"])
        terms = loss_fn.terms(r, g)
        assert float(loss_fn(r, g)[0]) == pytest.approx(pair["hybrid"], rel=1e-6, abs=1e-12), pair["key"]
        assert float(terms["l1"][0]) == pytest.approx(pair["l1"], rel=1e-6, abs=1e-12)
        for k, name in enumerate(LAYERS):  # float32 convolutions in another memory layout: 1e-5
            assert float(terms["layers"][0, k]) == pytest.approx(pair["layers"][name], rel=1e-5, abs=1e-12)
        ref_l1, ref_p = reference_scores(ref, load_rgb01(pair["restored"]), load_rgb01(pair["gt"]), indices)
        ref_hybrid = ref_l1 + 0.07 * sum(w * ref_p[i] for w, i in zip(WEIGHTS, indices))
        assert float(terms["hybrid"][0]) == pytest.approx(ref_hybrid, rel=1e-4, abs=1e-12), pair["key"]
        for k, i in enumerate(indices):
            assert float(terms["layers"][0, k]) == pytest.approx(ref_p[i], rel=1e-4, abs=1e-12)


def test_functional_perceptual_and_hybrid_match_the_module(state_dict):
    torch.manual_seed(1)
    r, g = torch.rand(2, 3, 24, 24), torch.rand(2, 3, 24, 24)
    module = hlcli.HybridLoss(state_dict, lam=0.3, reduction="none")
    assert torch.equal(hlcli.hybrid(r, g, lam=0.3, weights=state_dict), module(r, g))
    assert torch.equal(hlcli.perceptual(r, g, weights=state_dict), module.terms(r, g)["perceptual"])
    assert hlcli.l1(r, r).tolist() == [0.0, 0.0] and hlcli.feature_mse(r, r).tolist() == [0.0, 0.0]


def test_hybrid_loss_gradient_is_right_in_float64(state_dict):
    loss_fn = hlcli.HybridLoss(state_dict, layers=["conv1_2", "relu2_1"], lam=0.5, reduction="sum").double()
    torch.manual_seed(2)
    gt = torch.rand(1, 3, 6, 6, dtype=torch.float64)
    x = torch.rand(1, 3, 6, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: loss_fn(t, gt), (x,), eps=1e-6, atol=1e-5)


def test_hybrid_loss_crop_border_and_autocast(state_dict):
    torch.manual_seed(3)
    r, g = torch.rand(1, 3, 40, 40), torch.rand(1, 3, 40, 40)
    cropped = hlcli.HybridLoss(state_dict, crop_border=4, reduction="none")(r, g)
    inner = hlcli.HybridLoss(state_dict, reduction="none")(r[:, :, 4:-4, 4:-4], g[:, :, 4:-4, 4:-4])
    assert torch.equal(cropped, inner)
    with pytest.raises(ValueError, match="crop_border"):
        hlcli.HybridLoss(state_dict, crop_border=20)(r, g)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = hlcli.HybridLoss(state_dict, reduction="none")(r, g)
    full = hlcli.HybridLoss(state_dict, reduction="none")(r, g)
    assert torch.isfinite(low).all() and float(low[0]) == pytest.approx(float(full[0]), rel=5e-2)


def test_load_weights_follows_the_resolution_order(weights_file, monkeypatch):
    with pytest.raises(hlcli.HlcliEnvironmentError):
        hlcli.load_weights(offline=True)  # nothing in $HLCLI_WEIGHTS or the (empty) torch cache
    monkeypatch.setenv("HLCLI_WEIGHTS", str(weights_file))
    loaded = hlcli.load_weights(offline=True)
    assert loaded.source == "env" and len(loaded.state_dict) == 32 and not loaded.official
    assert hlcli.load_weights(weights_file).source == "option"


# -- the docs' runnable examples ----------------------------------------------------------------

_RUNNABLE = re.compile(r"<!-- test: run -->\s*```python\n(.*?)```", re.S)


def _runnable_blocks():
    for path in sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")]):
        for i, code in enumerate(_RUNNABLE.findall(path.read_text(encoding="utf-8"))):
            yield pytest.param(code, id=f"{path.name}#{i}")


@pytest.mark.parametrize("code", list(_runnable_blocks()))
def test_runnable_doc_examples(code, cli_env, monkeypatch):
    monkeypatch.chdir(ROOT)
    # -W error: an example that a reader copies runs without a warning (PyTorch's "NumPy array is
    # not writable", from torch.from_numpy(np.asarray(PIL image)), was one).
    res = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "HLCLI_WEIGHTS": str(cli_env)})
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Warning" not in res.stderr, res.stderr[-3000:]


def test_docs_have_runnable_examples():
    assert len(list(_runnable_blocks())) >= 2
