"""Awkward but valid input files are scored correctly: every case of ``tests/cases.py``'s ``SCORED``
(opaque alpha, palettes, grey against RGB, JPEG named .png, EXIF orientation, 16-bit PNG/TIFF/PPM,
mixed depths, WebP, Unicode names) through the CLI against an independent float64 reference; 16-bit
scaling; the ``--alpha composite|ignore`` policies; and, through the library
(``hlcli.engine.scoring.score_pairing``), properties of decode -> score over random sizes, modes and bit
depths: never a crash, every value finite, identical inputs exactly 0, L1 the mean absolute
difference of the pixel values written (8-bit scaled by 255, 16-bit by 65535)."""

from __future__ import annotations

import importlib.util
import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from hlcli.inputs.pairing import Pair, Pairing
from hlcli.engine.scoring import ScoreOptions, score_pairing as score

from .cases import (COMMON, SCORED, SIZE, Scored, assert_matches_reference, assert_same_as_baseline, assert_zero,
                    baseline, case_dirs, colour_key, env, grey16_dark_vs_black, invoke, la_transparent, palette,
                    params, ref_model, reference, rgb16, rgba16_transparent, rgba_transparent, save, seed_of,
                    strict_json)
from .imagefiles import KINDS, make_image, write_png

_FIXTURES = (baseline, env, ref_model)  # module-scoped fixtures shared from tests/cases.py


# --------------------------------------------------------------------------------- through the CLI

@pytest.mark.parametrize("case", params(SCORED))
def test_awkward_input_scored_correctly(case: Scored, env, baseline, ref_model, tmp_path):
    r, g = case_dirs(tmp_path)
    _, _, exp_r, exp_g = case.make(r, g, case.name, seed_of(case.name))
    res = invoke(env, r, g, *COMMON, "-f", "json")
    assert res.exit_code == 0, res.stderr
    assert res.stderr == ""
    doc = strict_json(res.stdout)
    assert doc["complete"] is True and doc["skipped"] == [] and doc["summary"]["count"] == 3
    pair = {p["key"]: p for p in doc["pairs"]}[case.key or case.name]
    assert (pair["width"], pair["height"]) == (exp_g.shape[1], exp_g.shape[0])
    assert pair["size_policy"] is None and "original_sizes" not in pair
    if case.zero:
        assert np.array_equal(exp_r, exp_g)  # the test's own premise
        assert_zero(pair, case.name)
    else:
        assert not np.array_equal(exp_r, exp_g)
        assert_matches_reference(pair, reference(ref_model, exp_r, exp_g), case.name)
    assert_same_as_baseline(doc, baseline)


def test_sixteen_bit_is_scaled_by_65535_not_its_own_maximum(env, tmp_path):
    """A dark 16-bit image (max 1000) against black: L1 is mean/65535 exactly."""
    r, g = tmp_path / "r", tmp_path / "g"
    r.mkdir(), g.mkdir()
    _, _, exp_r, _ = grey16_dark_vs_black(r, g, "dark", 5)
    doc = strict_json(invoke(env, r, g, *COMMON, "-f", "json").stdout)
    (pair,) = doc["pairs"]
    raw = np.rint(exp_r[..., 0] * 65535).astype(np.int64)
    assert raw.max() <= 1000 and raw.max() > 900
    assert pair["l1"] == pytest.approx(raw.sum() / raw.size / 65535, rel=1e-12)
    assert pair["l1"] < 1000 / 65535  # never stretched to the image's own maximum


# --------------------------------------------------------------------------------- alpha policies

def transparent_cases(r: Path, composite: Path, ignore: Path) -> None:
    """Restored images with real transparency; the expected decode under each policy as gt."""
    def comp(colour, alpha, top):
        return np.round(colour.astype(np.float64) * alpha[..., None] / top).astype(colour.dtype)

    rgba = np.asarray(rgba_transparent(1))
    Image.fromarray(rgba, "RGBA").save(r / "rgba.png")
    save(composite / "rgba.png", comp(rgba[..., :3], rgba[..., 3], 255))
    save(ignore / "rgba.png", rgba[..., :3])

    la = np.asarray(la_transparent(2))
    Image.fromarray(la, "LA").save(r / "la.png")
    save(composite / "la.png", comp(la[..., :1], la[..., 1], 255)[..., 0])
    save(ignore / "la.png", la[..., 0])

    for name, ext in (("palette", ".png"), ("gif", ".gif")):
        img = palette(3)
        img.save(r / f"{name}{ext}", transparency=3)
        with Image.open(r / f"{name}{ext}") as im:
            rgba_p = np.asarray(im.convert("RGBA"))
        assert (rgba_p[..., 3] == 0).any()
        save(composite / f"{name}.png", comp(rgba_p[..., :3], rgba_p[..., 3], 255))
        save(ignore / f"{name}.png", rgba_p[..., :3])

    colour_key(r / "key.png", 4)
    with Image.open(r / "key.png") as im:
        arr = np.asarray(im.convert("RGB"))
    keyed = np.all(arr == (1, 2, 3), axis=2)
    save(composite / "key.png", np.where(keyed[..., None], 0, arr).astype(np.uint8))
    save(ignore / "key.png", arr)

    rgba16_transparent(r / "rgba16.png", 5)
    arr16 = np.dstack([rgb16(5), np.full((SIZE, SIZE), 65535, np.uint16)])
    arr16[5:9, 5:9, 3] = 30000
    write_png(composite / "rgba16.png", comp(arr16[..., :3], arr16[..., 3], 65535))
    write_png(ignore / "rgba16.png", arr16[..., :3])


def test_alpha_policies_composite_and_ignore(env, tmp_path):
    r, comp, ign = tmp_path / "r", tmp_path / "composite", tmp_path / "ignore"
    for d in (r, comp, ign):
        d.mkdir()
    transparent_cases(r, comp, ign)
    res = invoke(env, r, comp, *COMMON, "-f", "json")
    assert res.exit_code == 2 and "transparent pixels" in res.stderr and "--alpha" in res.stderr
    for policy, gt in (("composite", comp), ("ignore", ign)):
        res = invoke(env, r, gt, *COMMON, "-f", "json", "--alpha", policy)
        assert res.exit_code == 0, (policy, res.stderr)
        doc = strict_json(res.stdout)
        assert doc["settings"]["alpha"] == policy
        assert len(doc["pairs"]) == 6
        for p in doc["pairs"]:
            assert_zero(p, f"{policy}:{p['key']}")


# --------------------------------------------------------------------------------- decode -> score properties (library)

PROPERTY_LAYERS = ("conv2_2", "conv4_3")  # conv4_3 needs 8x8: the smallest size drawn
TIFF_KINDS = ("I;16", "RGB16", "RGBA16") if importlib.util.find_spec("tifffile") else ("I;16",)


def _options(weights_file: Path) -> ScoreOptions:
    return ScoreOptions(layers=PROPERTY_LAYERS, weights=str(weights_file), device="cpu", workers=0,
                        offline=True, download_progress=False)


def _values(p) -> list[float]:
    return [p.l1, p.perceptual, p.hybrid, *p.layers.values()]


def _as01(arr: np.ndarray) -> np.ndarray:
    return arr.astype(np.float64) / (65535 if arr.dtype == np.uint16 else 255)


image = st.tuples(st.sampled_from(KINDS), st.booleans(), st.integers(0, 2**32 - 1))  # kind, tiff, seed


@pytest.mark.slow
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(w=st.integers(8, 48), h=st.integers(8, 48), restored=image, gt=image)
def test_decode_then_score_never_crashes_and_identical_is_zero(weights_file, w, h, restored, gt):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        written = {}
        for side, (kind, tiff, seed) in (("r", restored), ("g", gt)):
            fmt = "TIFF" if tiff and kind in TIFF_KINDS else "PNG"
            path = tmp / f"{side}.{fmt.lower()}"
            expected = make_image(kind, w, h, np.random.default_rng(seed), fmt, str(path))
            twin = tmp / f"{side}-copy{path.suffix}"
            shutil.copyfile(path, twin)
            written[side] = (path, twin, expected)
        (rp, rc, r_exp), (gp, gc, g_exp) = written["r"], written["g"]
        pairing = Pairing(pairs=[Pair("a_same_restored", rp, rc), Pair("b_same_gt", gp, gc),
                                 Pair("c_same_path", rp, rp), Pair("d_restored_vs_gt", rp, gp)])
        run = score(pairing, _options(weights_file))

    assert run.skipped == [] and run.complete
    pairs = {p.key: p for p in run.pairs}
    assert sorted(pairs) == ["a_same_restored", "b_same_gt", "c_same_path", "d_restored_vs_gt"]
    for key in ("a_same_restored", "b_same_gt", "c_same_path"):
        assert _values(pairs[key]) == [0.0] * (3 + len(PROPERTY_LAYERS)), key
    diff = pairs["d_restored_vs_gt"]
    assert (diff.width, diff.height) == (w, h)
    assert all(math.isfinite(v) and v >= 0 for v in _values(diff))
    assert diff.l1 == pytest.approx(np.mean(np.abs(_as01(r_exp) - _as01(g_exp))), rel=1e-12, abs=1e-15)
    assert diff.hybrid == pytest.approx(diff.l1 + 0.05 * diff.perceptual, rel=1e-12)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(w=st.integers(1, 12), h=st.integers(1, 12), kind=st.sampled_from(KINDS), seed=st.integers(0, 2**32 - 1))
def test_any_small_image_is_scored_or_refused_with_the_minimum_size(weights_file, w, h, kind, seed):
    """Sides below 8 (conv4_3's total stride) are refused naming 8x8, never crashed on."""
    from hlcli.errors import InputError

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "x.png")
        make_image(kind, w, h, np.random.default_rng(seed), "PNG", path)
        pairing = Pairing(pairs=[Pair("x", Path(path), Path(path))])
        if min(w, h) < 8:
            with pytest.raises(InputError, match="at least 8x8"):
                score(pairing, _options(weights_file))
        else:
            (p,) = score(pairing, _options(weights_file)).pairs
            assert _values(p) == [0.0] * (3 + len(PROPERTY_LAYERS))
