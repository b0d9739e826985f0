"""``--crop-border N`` (BasicSR's crop_border): N pixels off every side of both images before every
metric, after any size policy. End to end through the CLI on real photos (samples/)."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from hlcli.cli import cli
from hlcli.runs.documents import comparable_settings, settings_differences
from hlcli.errors import InputError
from tests.conftest import SAMPLES, save
from tests.schemas import validate_score

PHOTOS = {"astronaut": (72, 64), "coffee": (60, 52)}  # name -> (width, height) of the crop used


def photo(side: str, name: str, size: tuple[int, int], offset: int = 24) -> np.ndarray:
    path = next((SAMPLES / side).glob(f"{name}.*"))
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB").crop((offset, offset, offset + size[0], offset + size[1])))


@pytest.fixture(scope="module")
def env(weights_file):
    return {"HLCLI_WEIGHTS": str(weights_file), "HLCLI_OFFLINE": "1"}


@pytest.fixture(scope="module")
def arrays():
    return {name: (photo("restored", name, size), photo("gt", name, size)) for name, size in PHOTOS.items()}


@pytest.fixture(scope="module")
def dirs(tmp_path_factory, arrays):
    root = tmp_path_factory.mktemp("crop")
    for name, (r, g) in arrays.items():
        save(root / "restored" / f"{name}.png", r)
        save(root / "gt" / f"{name}.png", g)
    return root / "restored", root / "gt"


def score(env, *args):
    return CliRunner().invoke(cli, ["score", *map(str, args)], env=env)


def score_json(env, *args) -> dict:
    r = score(env, *args, "-f", "json")
    assert r.exit_code == 0, r.stderr
    return validate_score(r.stdout)


@pytest.fixture(scope="module")
def cropped4(env, dirs):
    return score_json(env, *dirs, "--crop-border", "4")


def _metrics(pair: dict) -> dict:
    return {"l1": pair["l1"], **pair["layers"], "perceptual": pair["perceptual"], "hybrid": pair["hybrid"]}


def test_cli_equals_hybrid_loss_with_the_same_crop_border(cropped4, arrays, state_dict):
    import torch

    from hlcli import HybridLoss

    loss = HybridLoss(state_dict, lam=0.05, crop_border=4, reduction="none")
    for pair in cropped4["pairs"]:
        r, g = (torch.from_numpy(a.copy()).permute(2, 0, 1)[None].float() / 255 for a in arrays[pair["key"]])
        with torch.no_grad():
            terms = loss.terms(r, g)
        # hybrid and L1 to 1e-6; a single layer's float32 feature MSE to 1e-5, as in test_api.py
        assert pair["l1"] == pytest.approx(float(terms["l1"][0]), rel=1e-6)
        assert pair["hybrid"] == pytest.approx(float(terms["hybrid"][0]), rel=1e-6)
        for k, name in enumerate(["conv3_3", "conv4_3"]):
            assert pair["layers"][name] == pytest.approx(float(terms["layers"][0, k]), rel=1e-5)
        assert pair["l1"] > 0 and pair["perceptual"] > 0  # the photos differ: a real check


def test_crop_border_equals_scoring_pre_cropped_images_exactly(env, cropped4, arrays, tmp_path):
    for name, (r, g) in arrays.items():
        save(tmp_path / "restored" / f"{name}.png", r[4:-4, 4:-4])
        save(tmp_path / "gt" / f"{name}.png", g[4:-4, 4:-4])
    pre = score_json(env, tmp_path / "restored", tmp_path / "gt")
    assert [p["key"] for p in pre["pairs"]] == [p["key"] for p in cropped4["pairs"]]
    for a, b in zip(cropped4["pairs"], pre["pairs"]):
        assert (a["width"], a["height"]) == (b["width"], b["height"]) == (PHOTOS[a["key"]][0] - 8, PHOTOS[a["key"]][1] - 8)
        assert _metrics(a) == _metrics(b)  # bit for bit
    assert cropped4["settings"]["crop_border"] == 4 and "crop_border" not in pre["settings"]


def test_crop_border_changes_the_scores(env, dirs, cropped4):
    plain = score_json(env, *dirs)
    assert all(_metrics(a) != _metrics(b) for a, b in zip(plain["pairs"], cropped4["pairs"]))


def test_crop_border_comes_after_the_size_policy(env, arrays, tmp_path):
    r, g = arrays["astronaut"]
    bigger = photo("restored", "astronaut", (80, 70))  # the same photo, 8 and 6 pixels more
    assert (bigger[:64, :72] == r).all()
    save(tmp_path / "a" / "restored" / "x.png", bigger)
    save(tmp_path / "a" / "gt" / "x.png", g)
    save(tmp_path / "b" / "restored" / "x.png", r[3:-3, 3:-3])
    save(tmp_path / "b" / "gt" / "x.png", g[3:-3, 3:-3])
    [policy] = score_json(env, tmp_path / "a" / "restored", tmp_path / "a" / "gt", "--size-mismatch", "crop",
                          "--crop-border", "3")["pairs"]
    [pre] = score_json(env, tmp_path / "b" / "restored", tmp_path / "b" / "gt")["pairs"]
    assert (policy["width"], policy["height"], policy["size_policy"]) == (66, 58, "crop")
    assert policy["original_sizes"] == {"restored": [80, 70], "gt": [72, 64]}
    assert _metrics(policy) == _metrics(pre)


def test_an_image_left_too_small_is_exit_2_naming_it(env, tmp_path):
    g = photo("gt", "coffee", (20, 22))
    save(tmp_path / "restored" / "x.png", photo("restored", "coffee", (20, 22)))
    gt = save(tmp_path / "gt" / "x.png", g)
    r = score(env, tmp_path / "restored", tmp_path / "gt", "--crop-border", "7", "-f", "json")
    assert r.exit_code == 2 and r.stdout == ""
    [line] = r.stderr.strip().splitlines()
    assert line.startswith("Error: image is 20x22, 6x8 after --crop-border 7, too small for the deepest "
                           "requested layer (needs at least 8x8 after the crop border: 22x22 here)")
    assert f"({gt})" in line and "smaller --crop-border" in line
    r = score(env, tmp_path / "restored", tmp_path / "gt", "--crop-border", "30", "-f", "json")
    assert r.exit_code == 2 and "image is 20x22, 0x0 after --crop-border 30" in r.stderr
    [ok] = score_json(env, tmp_path / "restored", tmp_path / "gt", "--crop-border", "6")["pairs"]
    assert (ok["width"], ok["height"]) == (8, 10)


def test_negative_crop_border_is_a_usage_error(env, dirs):
    r = score(env, *dirs, "--crop-border", "-1")
    assert r.exit_code == 2 and "--crop-border" in r.stderr


def test_api_validates_crop_border(dirs, weights_file):
    import hlcli

    with pytest.raises(InputError, match="crop border"):
        hlcli.score_dirs(*dirs, crop_border=-2, weights=str(weights_file))


# -- settings: recorded, and part of the comparability check -----------------------------------

def test_comparable_settings_treat_absent_crop_border_as_0():
    assert comparable_settings({})["crop_border"] == 0
    assert settings_differences({"lambda": 0.05}, {"lambda": 0.05, "crop_border": 0}, ("a", "b")) == []
    assert settings_differences({"lambda": 0.05}, {"lambda": 0.05, "crop_border": 4}, ("a", "b")) == [
        "crop_border 0 (a) vs 4 (b)"]


def test_baseline_with_another_crop_border_is_refused_before_scoring(env, dirs, tmp_path, cropped4):
    base = tmp_path / "plain.json"
    r = score(env, *dirs, "-f", "json", "-o", base)
    assert r.exit_code == 0, r.stderr
    no_weights = {**env, "HLCLI_WEIGHTS": str(tmp_path / "absent.pth")}  # scoring would be exit 3
    r = score(no_weights, *dirs, "--crop-border", "4", "--baseline", base, "--max-regression", "1%")
    assert r.exit_code == 2 and r.stdout == ""
    assert "crop_border 0 (baseline) vs 4 (this run)" in r.stderr and "--allow-settings-mismatch" in r.stderr

    r = score(env, *dirs, "--crop-border", "4", "--baseline", base, "--allow-settings-mismatch", "-f", "json")
    assert r.exit_code == 0, r.stderr
    assert validate_score(r.stdout)["gate"]["regressions"]["settings_differences"] == [
        "crop_border 0 (baseline) vs 4 (this run)"]

    cropped = tmp_path / "cropped.json"
    cropped.write_text(__import__("json").dumps(cropped4))
    r = CliRunner().invoke(cli, ["compare", str(base), str(cropped)], env=env)
    assert r.exit_code == 2 and "crop_border 0" in r.stderr and "vs 4" in r.stderr
    r = score(env, *dirs, "--crop-border", "4", "--baseline", cropped, "--max-regression", "0")
    assert r.exit_code == 0, r.stderr  # same crop border: comparable, and identical scores
