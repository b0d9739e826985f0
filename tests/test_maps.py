"""Error maps (score --save-maps): every map's mean is its pair's score (real photos, conv and
relu layers, an odd size, a tiled pair), PNG sizes, the run-wide colour scale is monotone, and
nothing is computed or written without the option."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from hlcli.cli import cli

from .conftest import SAMPLES, save

pytest.importorskip("matplotlib")

STRIDES = {"relu2_2": 2, "conv2_2": 2, "conv3_3": 4, "relu3_3": 4, "conv4_3": 8, "relu4_3": 8}


def score(args: list[str]) -> dict:
    result = CliRunner().invoke(cli, ["score", *args, "-f", "json", "-q"])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def check_means(maps: Path, doc: dict, layers: list[str]) -> None:
    """Each .npy map: float32, the right shape, and its mean equals the pair's value to 1e-6."""
    for pair in doc["pairs"]:
        key, w, h = pair["key"], pair["width"], pair["height"]
        l1 = np.load(maps / f"{key}.l1.npy")
        assert l1.dtype == np.float32 and l1.shape == (h, w)
        assert l1.min() >= 0 and l1.max() <= 1
        assert l1.mean(dtype=np.float64) == pytest.approx(pair["l1"], rel=1e-6, abs=1e-12)
        for layer in layers:
            m = np.load(maps / f"{key}.{layer}.npy")
            s = STRIDES[layer]
            assert m.dtype == np.float32 and m.shape == (h // s, w // s)
            assert m.mean(dtype=np.float64) == pytest.approx(pair["layers"][layer], rel=1e-6, abs=1e-12)


def test_maps_mean_equals_score_on_photos(cli_env, tmp_path):
    layers = ["relu2_2", "conv3_3", "relu4_3"]
    maps = tmp_path / "maps"
    doc = score([str(SAMPLES / "restored"), str(SAMPLES / "gt"), "--layers", ",".join(layers),
                 "--save-maps", str(maps)])
    assert len(doc["pairs"]) == 4 and any(p["l1"] > 0 for p in doc["pairs"])
    check_means(maps, doc, layers)
    index = json.loads((maps / "maps.json").read_text())
    assert index["keys"] == sorted(p["key"] for p in doc["pairs"])
    assert index["settings"]["weights"]["sha256"] == doc["settings"]["weights"]["sha256"]
    assert index["scale"] == "run" and index["percentile"] == 99.5
    for pair in doc["pairs"]:  # every PNG at image size, RGB
        for kind in ["l1", *layers, "perceptual"]:
            with Image.open(maps / f"{pair['key']}.{kind}.png") as img:
                assert img.size == (pair["width"], pair["height"]) and img.mode == "RGB"
        # Same top in every pair: the run's range is recorded once and used for every pair.
        assert index["pairs"][pair["key"]]["range"] == index["range"]


def test_scores_identical_with_and_without_maps(cli_env, tmp_path):
    """The maps come from the same forward pass, and the scores from the same reduction: every
    JSON number is equal (==, not approx) with and without --save-maps, tiled or not."""
    _odd_pair(tmp_path / "odd")
    cases = [[str(SAMPLES / "restored"), str(SAMPLES / "gt"), "--layers", "conv3_3,conv4_3"],
             [str(tmp_path / "odd" / "restored"), str(tmp_path / "odd" / "gt"), "--layers", "conv2_2,relu3_3",
              "--pixel-budget", "41472"]]
    for n, args in enumerate(cases):
        plain = score(args)
        mapped = score([*args, "--save-maps", str(tmp_path / f"maps{n}"), "--maps-format", "npy"])
        for a, b in zip(plain["pairs"], mapped["pairs"], strict=True):
            assert a["key"] == b["key"] and a["l1"] == b["l1"] and a["hybrid"] == b["hybrid"]
            assert a["layers"] == b["layers"], a["key"]
        assert plain["summary"] == mapped["summary"]


def _odd_pair(root: Path) -> None:
    """A real photo cropped to an odd size (203 x 157), degraded by JPEG compression."""
    with Image.open(SAMPLES / "gt" / "chelsea.png") as img:
        crop = img.convert("RGB").crop((31, 17, 31 + 203, 17 + 157))
    save(root / "gt" / "cat.png", np.asarray(crop))
    (root / "restored").mkdir(parents=True, exist_ok=True)
    crop.save(root / "restored" / "cat.jpg", quality=40)


def test_maps_of_a_tiled_odd_sized_pair_are_stitched_exactly(cli_env, tmp_path):
    _odd_pair(tmp_path)
    layers = ["conv2_2", "relu3_3"]
    args = [str(tmp_path / "restored"), str(tmp_path / "gt"), "--layers", ",".join(layers), "--maps-format", "npy"]
    whole = score([*args, "--save-maps", str(tmp_path / "whole")])
    tiled = score([*args, "--save-maps", str(tmp_path / "tiled"), "--pixel-budget", "41472"])
    assert not whole["pairs"][0]["tiled"] and tiled["pairs"][0]["tiled"]
    check_means(tmp_path / "tiled", tiled, layers)
    check_means(tmp_path / "whole", whole, layers)
    for kind in ["l1", *layers]:
        a = np.load(tmp_path / "whole" / f"cat.{kind}.npy")
        b = np.load(tmp_path / "tiled" / f"cat.{kind}.npy")
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-7 * float(a.max()))
    assert not list((tmp_path / "tiled").glob("*.png"))  # --maps-format npy


def _viridis_index(rgb: np.ndarray) -> np.ndarray:
    from matplotlib import colormaps

    lut = colormaps["viridis"](np.linspace(0, 1, 256), bytes=True)[:, :3].astype(np.int32)
    d = ((rgb.reshape(-1, 1, 3).astype(np.int32) - lut[None]) ** 2).sum(axis=2)
    return d.argmin(axis=1)


def test_run_scale_is_monotone_across_pairs(cli_env, tmp_path):
    """With the run's scale, the colour is a non-decreasing function of the value over every
    pixel of every pair: a pair with a larger error never gets a darker colour."""
    rng = np.random.default_rng(3)
    gt = np.full((48, 64, 3), 100, np.uint8)
    for i, amount in enumerate((2, 10, 40, 90)):
        save(tmp_path / "gt" / f"p{i}.png", gt)
        noise = np.abs(rng.normal(0, amount, gt.shape)).astype(np.int64)
        save(tmp_path / "restored" / f"p{i}.png", np.clip(gt + noise, 0, 255).astype(np.uint8))
    maps = tmp_path / "maps"
    score([str(tmp_path / "restored"), str(tmp_path / "gt"), "--save-maps", str(maps), "--maps-format", "both"])
    values, colours = [], []
    for i in range(4):
        values.append(np.load(maps / f"p{i}.l1.npy").ravel())
        colours.append(_viridis_index(np.asarray(Image.open(maps / f"p{i}.l1.png"))))
    v, c = np.concatenate(values), np.concatenate(colours)
    order = np.argsort(v, kind="stable")
    assert np.all(np.diff(c[order]) >= 0)
    assert c.max() == 255 and c.min() < 40  # the scale spans the run (clipped at its 99.5th percentile)
    assert np.mean(colours[0]) < np.mean(colours[3])
    # Per-pair scale: each pair's own 99.5th percentile reaches the top colour.
    pair_maps = tmp_path / "pair"
    score([str(tmp_path / "restored"), str(tmp_path / "gt"), "--save-maps", str(pair_maps), "--maps-scale", "pair"])
    assert all(_viridis_index(np.asarray(Image.open(pair_maps / f"p{i}.l1.png"))).max() == 255 for i in range(4))


def test_png_only_keys_with_subdirectories(cli_env, tmp_path):
    _odd_pair(tmp_path / "data")
    root, maps = tmp_path / "tree", tmp_path / "maps"
    for side in ("restored", "gt"):  # keys "cat" and "sub/cat"
        src = next((tmp_path / "data" / side).glob("cat.*"))
        for sub in ("", "sub"):
            (root / side / sub).mkdir(parents=True, exist_ok=True)
            (root / side / sub / src.name).write_bytes(src.read_bytes())
    doc = score([str(root / "restored"), str(root / "gt"), "-r", "--save-maps", str(maps), "--maps-format", "png"])
    assert sorted(p["key"] for p in doc["pairs"]) == ["cat", "sub/cat"]
    assert (maps / "sub" / "cat.perceptual.png").is_file() and (maps / "cat.l1.png").is_file()
    assert not list(maps.rglob("*.npy"))


def test_nothing_computed_or_written_without_save_maps(cli_env, tmp_path, monkeypatch):
    import hlcli
    from hlcli.engine import batch as engine

    def forbidden(*args, **kwargs):
        raise AssertionError("maps computed without save_maps")

    monkeypatch.setattr(engine.BatchScorer, "measure_maps", forbidden)
    monkeypatch.chdir(tmp_path)
    _odd_pair(tmp_path)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    run = hlcli.score_dirs(tmp_path / "restored", tmp_path / "gt")
    assert len(run.pairs) == 1
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    with pytest.raises(AssertionError, match="maps computed"):
        hlcli.score_dirs(tmp_path / "restored", tmp_path / "gt", save_maps=str(tmp_path / "m"))


def test_bad_maps_options(cli_env, tmp_path):
    _odd_pair(tmp_path)
    result = CliRunner().invoke(cli, ["score", str(tmp_path / "restored"), str(tmp_path / "gt"),
                                      "--maps-format", "gif", "--save-maps", str(tmp_path / "m")])
    assert result.exit_code == 2 and "--maps-format" in result.stderr
    import hlcli

    with pytest.raises(hlcli.InputError, match="maps-scale"):
        hlcli.score_dirs(tmp_path / "restored", tmp_path / "gt", save_maps=str(tmp_path / "m"), maps_scale="x")
