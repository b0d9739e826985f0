"""Issue #4, properties of decode -> score through the library (``hlcli.scoring.score_pairing``).

For random sizes, modes and bit depths written as PNG or TIFF: scoring never crashes, every value
is finite, identical inputs score exactly 0 on every metric, and L1 equals the mean absolute
difference of the pixel values the test wrote (8-bit scaled by 255, 16-bit by 65535).
"""

from __future__ import annotations

import importlib.util
import math
import os
import shutil
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from hlcli import images
from hlcli.pairing import Pair, Pairing
from hlcli.scoring import ScoreOptions, score_pairing as score

from .test_images import KINDS, _make

LAYERS = ("conv2_2", "conv4_3")  # conv4_3 needs 8x8: the smallest size drawn
TIFF_KINDS = ("I;16", "RGB16", "RGBA16") if importlib.util.find_spec("tifffile") else ("I;16",)


def _options(weights_file: Path) -> ScoreOptions:
    return ScoreOptions(layers=LAYERS, weights=str(weights_file), device="cpu", workers=0,
                        offline=True, download_progress=False)


def _values(p) -> list[float]:
    return [p.l1, p.perceptual, p.hybrid, *p.layers.values()]


def _as01(arr: np.ndarray) -> np.ndarray:
    return arr.astype(np.float64) / (65535 if arr.dtype == np.uint16 else 255)


image = st.tuples(st.sampled_from(KINDS), st.booleans(), st.integers(0, 2**32 - 1))  # kind, tiff, seed


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(w=st.integers(8, 48), h=st.integers(8, 48), restored=image, gt=image)
def test_decode_then_score_never_crashes_and_identical_is_zero(weights_file, w, h, restored, gt):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        written = {}
        for side, (kind, tiff, seed) in (("r", restored), ("g", gt)):
            fmt = "TIFF" if tiff and kind in TIFF_KINDS else "PNG"
            path = tmp / f"{side}.{fmt.lower()}"
            expected = _make(kind, w, h, np.random.default_rng(seed), fmt, str(path))
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
        assert _values(pairs[key]) == [0.0] * (3 + len(LAYERS)), key
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
        _make(kind, w, h, np.random.default_rng(seed), "PNG", path)
        pairing = Pairing(pairs=[Pair("x", Path(path), Path(path))])
        if min(w, h) < 8:
            with pytest.raises(InputError, match="at least 8x8"):
                score(pairing, _options(weights_file))
        else:
            (p,) = score(pairing, _options(weights_file)).pairs
            assert _values(p) == [0.0] * (3 + len(LAYERS))


def test_plugin_formats_are_loaded_on_first_use(tmp_path, monkeypatch):
    """A .heic file is read through pillow-heif's opener once that plugin is installed."""
    calls = []
    fake = types.ModuleType("pillow_heif")
    fake.register_heif_opener = lambda: calls.append("registered")
    monkeypatch.setitem(sys.modules, "pillow_heif", fake)
    monkeypatch.setattr(images, "_PLUGINS_LOADED", set())
    arr = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    path = tmp_path / "photo.heic"
    Image.fromarray(arr).save(path, format="PNG")  # what the registered opener would yield
    assert np.array_equal(images.decode(path), arr)
    images.probe(path)
    assert calls == ["registered"]  # once, not per file


def test_plugin_formats_without_plugin_name_the_package(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pillow_heif", None)  # import fails
    monkeypatch.setitem(sys.modules, "pillow_jxl", None)
    monkeypatch.setattr(images, "_PLUGINS_LOADED", set())
    for ext, package in ((".heic", "pillow-heif"), (".HEIF", "pillow-heif"), (".jxl", "pillow-jxl-plugin")):
        path = tmp_path / f"x{ext}"
        path.write_bytes(b"\x00\x00\x00\x18ftypheic" + b"\x00" * 64)
        with pytest.raises(images.InputError) as err:
            images.decode(path)
        assert f"pip install {package}" in str(err.value) and str(path) in str(err.value)
        assert ext.lower() in images.IMAGE_EXTENSIONS
