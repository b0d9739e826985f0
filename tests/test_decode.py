"""The decoder (hlcli.inputs.images): probing and decoding every supported format, mode and bit depth,
broken and oversized files, transparency, EXIF orientation, optional codecs and plugins, and a
property test over random lossless files. Every image is generated in tmp_path (PNG by hand where
Pillow can't)."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
import types
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile, ImageOps, features

from hlcli.inputs import images
from hlcli.errors import InputError
from hlcli.inputs.images import decode, probe, scale_of, to_float

from .imagefiles import KINDS, exif_bytes, make_image, write_png

RNG = np.random.default_rng(12345)


# --- helpers --------------------------------------------------------------------------------------

def rand(shape, dtype=np.uint8):
    return RNG.integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)


def save(tmp_path, name, img: Image.Image, **kw):
    path = tmp_path / name
    img.save(path, **kw)
    return path


def assert_input_error(path, fn=decode, match=None, **kw) -> InputError:
    with pytest.raises(InputError, match=match) as info:
        fn(path, **kw)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg and ":" in msg  # one line, names file and fix
    return info.value


# --- API --------------------------------------------------------------------------------------

def test_public_constants():
    assert images.ALPHA_POLICIES == ("error", "composite", "ignore")
    assert all(e.startswith(".") and e == e.lower() for e in images.IMAGE_EXTENSIONS)
    assert {".png", ".jpg", ".tif", ".tiff", ".webp", ".avif", ".jp2"} <= images.IMAGE_EXTENSIONS
    assert images.DEFAULT_MAX_PIXELS == 178_956_970 == 2 * 89_478_485


def test_module_is_torch_free_and_functions_pickle():
    code = "import sys, hlcli.inputs.images; sys.exit('torch' in sys.modules)"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    assert subprocess.run([sys.executable, "-c", code], cwd=root).returncode == 0
    for fn in (decode, probe, to_float, scale_of):
        assert pickle.loads(pickle.dumps(fn)) is fn
    info = images.ImageInfo("a.png", 1, 2, "RGB", "PNG", 8)
    assert pickle.loads(pickle.dumps(info)) == info


def test_rgb_png_round_trip_and_probe(tmp_path):
    arr = rand((5, 7, 3))
    path = save(tmp_path, "a.png", Image.fromarray(arr))
    out = decode(path)
    assert out.dtype == np.uint8 and out.flags.c_contiguous and np.array_equal(out, arr)
    assert out.flags.writeable  # torch.from_numpy warns about read-only arrays
    assert probe(path) == images.ImageInfo(str(path), 7, 5, "RGB", "PNG", 8)


def test_to_float_and_scale_of():
    assert scale_of(np.zeros(1, np.uint8)) == 255 and scale_of(np.zeros(1, np.uint16)) == 65535
    eight = to_float(np.array([0, 128, 255], np.uint8))
    assert eight.dtype == np.float32 and eight.tolist() == [0.0, np.float32(128 / 255), 1.0]
    sixteen = to_float(np.array([0, 1000, 65535], np.uint16), np.float64)
    assert sixteen.tolist() == [0.0, 1000 / 65535, 1.0]  # by the dtype's max, not the image's
    for bad in (np.zeros(1, np.float32), np.zeros(1, np.int32)):
        with pytest.raises(TypeError):
            to_float(bad)
    with pytest.raises(TypeError):
        to_float(np.zeros(1, np.uint8), np.int64)


def test_bad_arguments(tmp_path):
    path = save(tmp_path, "a.png", Image.new("RGB", (2, 2)))
    with pytest.raises(InputError, match="alpha"):
        decode(path, alpha="blend")
    for bad in (0, -5, 1.5, True, "10"):
        with pytest.raises(InputError, match="max_pixels"):
            decode(path, max_pixels=bad)
    assert decode(path, max_pixels=np.int64(4)).shape == (2, 2, 3)


# --- broken files -----------------------------------------------------------------------------

def test_missing_file_and_directory(tmp_path):
    assert_input_error(tmp_path / "nope.png", match="no such file")
    assert_input_error(tmp_path / "nope.png", fn=probe)
    assert_input_error(tmp_path, match="is a directory")


def test_empty_and_non_image_files(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    assert_input_error(empty, match="empty")
    assert_input_error(empty, fn=probe, match="empty")
    text = tmp_path / "x.png"
    text.write_text("hello, I am not a picture\n")
    assert_input_error(text, match="not a readable image")
    garbage = tmp_path / "g.jpg"
    garbage.write_bytes(RNG.integers(0, 256, 500, dtype=np.uint8).tobytes())
    assert_input_error(garbage)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "TIFF", "BMP"])
def test_truncated_files_raise(tmp_path, fmt):
    path = save(tmp_path, f"a.{fmt.lower()}", Image.fromarray(rand((64, 64, 3))), format=fmt)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert_input_error(path, match="truncated|corrupt|cannot decode")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_probe_reads_header_only(tmp_path):
    path = save(tmp_path, "a.png", Image.fromarray(rand((64, 64, 3))))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert probe(path).width == 64  # the header is intact; the pixels are never touched
    assert_input_error(path)


def test_corrupt_png_data_raises(tmp_path):
    path = save(tmp_path, "a.png", Image.fromarray(rand((32, 32, 3))))
    data = bytearray(path.read_bytes())
    data[60:120] = bytes(60)  # inside IDAT: zlib stream and CRC broken
    path.write_bytes(bytes(data))
    assert_input_error(path)


# --- size limit -------------------------------------------------------------------------------

def test_max_pixels_refused_from_header(tmp_path):
    path = save(tmp_path, "a.png", Image.new("RGB", (30, 20)))
    err = assert_input_error(path, max_pixels=599, match="--max-pixels 600")
    assert "600" in err.what
    assert_input_error(path, fn=probe, max_pixels=599)
    assert decode(path, max_pixels=600).shape == (20, 30, 3)


def test_max_pixels_none_lifts_pillow_limit_temporarily(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow errors above 200 pixels
    path = save(tmp_path, "a.png", Image.new("RGB", (30, 20)))
    assert decode(path, max_pixels=None).shape == (20, 30, 3)
    assert decode(path).shape == (20, 30, 3)  # default limit is ours, not Pillow's
    assert probe(path, max_pixels=10_000).width == 30
    assert Image.MAX_IMAGE_PIXELS == 100  # restored
    assert_input_error(path, max_pixels=500, match="--max-pixels 600")
    assert Image.MAX_IMAGE_PIXELS == 100
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 400)  # Pillow only warns: 400 < 600 <= 800
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # even a warning turned into an error is handled
        assert decode(path).shape == (20, 30, 3)
    assert Image.MAX_IMAGE_PIXELS == 400


# --- modes ------------------------------------------------------------------------------------

def test_grey_and_bilevel_expand_to_three_channels(tmp_path):
    grey = rand((4, 5))
    out = decode(save(tmp_path, "l.png", Image.fromarray(grey)))
    assert out.shape == (4, 5, 3) and all(np.array_equal(out[..., i], grey) for i in range(3))
    bits = RNG.integers(0, 2, (4, 9)).astype(bool)
    out = decode(save(tmp_path, "b.png", Image.fromarray(bits)))
    assert np.array_equal(out[..., 1], bits * 255) and out.dtype == np.uint8
    out = decode(write_png(tmp_path / "two.png", np.array([[0, 1, 2, 3, 3]], np.uint8), bits=2))
    assert out[0, :, 0].tolist() == [0, 85, 170, 255, 255]


def test_palette_without_and_with_transparency(tmp_path):
    rgb = rand((6, 6, 3))
    pal = Image.fromarray(rgb).quantize(16)
    expected = np.asarray(pal.convert("RGB"))
    assert np.array_equal(decode(save(tmp_path, "p.png", pal)), expected)
    # a transparent index that no pixel uses: fully opaque, alpha dropped silently
    unused = pal.copy()
    unused.putpalette(pal.getpalette() + [0, 0, 0] * (256 - len(pal.getpalette()) // 3))
    assert np.array_equal(decode(save(tmp_path, "pu.png", unused, transparency=255)), expected)
    path = save(tmp_path, "pt.png", pal, transparency=int(np.asarray(pal)[0, 0]))
    assert_input_error(path, match="--alpha composite")
    assert np.array_equal(decode(path, alpha="ignore"), expected)
    composited = decode(path, alpha="composite")
    assert composited[0, 0].tolist() == [0, 0, 0]
    mask = np.asarray(pal) != np.asarray(pal)[0, 0]
    assert np.array_equal(composited[mask], expected[mask])
    assert probe(path).mode == "P"


def test_gif_with_transparency(tmp_path):
    img = Image.fromarray(rand((5, 5, 3))).quantize(8)
    path = save(tmp_path, "a.gif", img, transparency=int(np.asarray(img)[2, 2]))
    assert decode(path, alpha="composite")[2, 2].tolist() == [0, 0, 0]
    assert_input_error(path)


def test_alpha_policies_8bit(tmp_path):
    arr = rand((3, 4, 4))
    arr[..., 3] = 255
    opaque = save(tmp_path, "o.png", Image.fromarray(arr))
    assert np.array_equal(decode(opaque), arr[..., :3])  # fully opaque: dropped silently
    arr[0, 0] = [200, 100, 51, 128]
    arr[0, 1] = [255, 255, 255, 0]
    path = save(tmp_path, "t.png", Image.fromarray(arr))
    err = assert_input_error(path, match="transparent")
    assert "--alpha composite" in err.fix and "--alpha ignore" in err.fix
    assert np.array_equal(decode(path, alpha="ignore"), arr[..., :3])
    out = decode(path, alpha="composite")
    assert out.dtype == np.uint8
    assert out[0, 0].tolist() == [100, 50, 26]  # round(c * 128 / 255), over black
    assert out[0, 1].tolist() == [0, 0, 0]
    assert np.array_equal(out[1:], arr[1:, :, :3])


def test_la_alpha(tmp_path):
    la = np.stack([rand((3, 3)), np.full((3, 3), 255, np.uint8)], axis=2)
    out = decode(save(tmp_path, "la.png", Image.fromarray(la, "LA")))
    assert np.array_equal(out[..., 2], la[..., 0])
    la[1, 1, 1] = 0
    path = save(tmp_path, "la2.png", Image.fromarray(la, "LA"))
    assert_input_error(path)
    assert decode(path, alpha="composite")[1, 1].tolist() == [0, 0, 0]


def test_colour_key_transparency(tmp_path):
    arr = rand((4, 4, 3))
    arr[1, 2] = [1, 2, 3]
    path = save(tmp_path, "k.png", Image.fromarray(arr), transparency=(1, 2, 3))
    assert_input_error(path)
    assert decode(path, alpha="composite")[1, 2].tolist() == [0, 0, 0]
    assert np.array_equal(decode(path, alpha="ignore"), arr)
    two = write_png(tmp_path / "k2.png", np.array([[0, 1, 2, 3]], np.uint8), bits=2, trns=[2])
    assert decode(two, alpha="composite")[0, :, 0].tolist() == [0, 85, 0, 255]
    bilevel = save(tmp_path, "k1.png", Image.fromarray(np.array([[True, False]])), transparency=1)
    assert decode(bilevel, alpha="composite")[0, :, 0].tolist() == [0, 0]
    assert decode(bilevel, alpha="ignore")[0, :, 0].tolist() == [255, 0]


def test_16bit_grey_png_and_tiff(tmp_path):
    arr = RNG.integers(0, 1001, (5, 6)).astype(np.uint16)
    arr[0, 0] = 1000
    for name, mode in (("g.png", "I;16"), ("g.tif", "I;16"), ("gb.tif", "I;16B")):
        raw = arr.astype(">u2" if mode == "I;16B" else "<u2").tobytes()
        img = Image.frombytes(mode, (6, 5), raw)
        path = save(tmp_path, name, img)
        out = decode(path)
        assert out.dtype == np.uint16 and np.array_equal(out[..., 0], arr), name
        assert probe(path).bit_depth == 16
        assert to_float(out)[0, 0, 0] == np.float32(1000) / np.float32(65535)  # not 1.0


@pytest.mark.parametrize("channels", [3, 4, 2])
@pytest.mark.parametrize("interlace", [False, True])
def test_16bit_colour_png_is_exact(tmp_path, channels, interlace):
    arr = rand((11, 13, channels), np.uint16)
    arr[..., -1] = 65535 if channels != 3 else arr[..., -1]
    path = write_png(tmp_path / "c.png", arr, interlace=interlace)
    out = decode(path)
    expected = arr[..., :3] if channels != 2 else np.repeat(arr[..., :1], 3, axis=2)
    assert out.dtype == np.uint16 and np.array_equal(out, expected)
    assert probe(path).bit_depth == 16


def test_16bit_alpha_and_key(tmp_path):
    arr = rand((3, 3, 4), np.uint16)
    arr[..., 3] = 65535
    arr[0, 0] = [40000, 1000, 65535, 32768]
    path = write_png(tmp_path / "a.png", arr)
    assert_input_error(path)
    out = decode(path, alpha="composite")
    assert out.dtype == np.uint16 and out[0, 0].tolist() == [20000, 500, 32768]
    rgb = rand((3, 3, 3), np.uint16)
    rgb[2, 1] = [300, 60000, 7]
    keyed = write_png(tmp_path / "k.png", rgb, trns=[300, 60000, 7])
    assert decode(keyed, alpha="composite")[2, 1].tolist() == [0, 0, 0]
    assert np.array_equal(decode(keyed, alpha="ignore"), rgb)


def test_16bit_colour_tiff_is_exact(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    arr = rand((19, 17, 3), np.uint16)
    for order in "<>":
        for kw in ({}, {"compression": "zlib", "predictor": True}, {"tile": (16, 16)}):
            path = tmp_path / f"c{order}{len(kw)}.tif"
            tifffile.imwrite(path, arr, byteorder=order, photometric="rgb", **kw)
            assert np.array_equal(decode(path), arr), (order, kw)
    rgba = rand((4, 5, 4), np.uint16)
    rgba[..., 3] = 65535
    tifffile.imwrite(tmp_path / "a.tif", rgba, photometric="rgb", extrasamples=["unassalpha"])
    assert np.array_equal(decode(tmp_path / "a.tif"), rgba[..., :3])
    tifffile.imwrite(tmp_path / "o.tif", arr, photometric="rgb",
                     extratags=[(0x0112, "H", 1, 6, True)])
    assert np.array_equal(decode(tmp_path / "o.tif"), np.rot90(arr, -1))  # turned once
    tifffile.imwrite(tmp_path / "cmyk.tif", rand((4, 4, 4), np.uint16), photometric="separated")
    assert_input_error(tmp_path / "cmyk.tif", match="16-bit|CMYK")


def test_16bit_ppm(tmp_path):
    arr = rand((3, 4, 3), np.uint16)
    path = tmp_path / "a.ppm"
    path.write_bytes(b"P6\n4 3\n65535\n" + arr.astype(">u2").tobytes())
    assert np.array_equal(decode(path), arr) and probe(path).bit_depth == 16
    ten = arr >> 6
    path.write_bytes(b"P6\n4 3\n1023\n" + ten.astype(">u2").tobytes())
    assert np.array_equal(decode(path), np.round(ten * (65535 / 1023)).astype(np.uint16))
    path.write_bytes(b"P6\n4 3\n65535\n" + arr.astype(">u2").tobytes()[:-10])
    assert_input_error(path, match="truncated")
    plain = tmp_path / "p.ppm"
    plain.write_bytes(b"P3\n1 1\n65535\n1 2 3\n")
    assert_input_error(plain, match="16-bit")


def test_int32_and_float_images(tmp_path):
    ok = save(tmp_path, "i.tif", Image.fromarray(np.array([[0, 65535]], np.int32)))
    assert decode(ok)[0, :, 0].tolist() == [0, 65535]
    assert_input_error(save(tmp_path, "big.tif", Image.new("I", (2, 2), 70000)), match="0..65535")
    assert_input_error(save(tmp_path, "neg.tif", Image.new("I", (2, 2), -1)), match="0..65535")
    assert_input_error(save(tmp_path, "f.tif", Image.new("F", (2, 2), 0.5)), match="floating")
    assert_input_error(save(tmp_path, "f.tif", Image.new("F", (2, 2), 0.5)), fn=probe)


def test_other_colour_spaces(tmp_path):
    ycc = Image.new("YCbCr", (3, 2), (120, 100, 160))
    out = decode(save(tmp_path, "y.tif", ycc))
    assert np.array_equal(out, np.asarray(ycc.convert("RGB")))
    assert_input_error(save(tmp_path, "lab.tif", Image.new("LAB", (2, 2))), match="LAB")


def test_cmyk_jpeg(tmp_path):
    plain = save(tmp_path, "c.jpg", Image.new("CMYK", (4, 4), (10, 20, 30, 40)))
    assert_input_error(plain, match="CMYK image without an ICC profile")
    assert_input_error(plain, fn=probe, match="convert it to RGB")
    if images.ImageCms is None:
        return
    srgb = images.ImageCms.ImageCmsProfile(images.ImageCms.createProfile("sRGB")).tobytes()
    wrong = save(tmp_path, "w.jpg", Image.new("CMYK", (4, 4)), icc_profile=srgb)
    assert_input_error(wrong)  # an RGB profile on CMYK data: a clean error, not a crash


def test_multi_frame_refused(tmp_path):
    frames = [Image.new("RGB", (4, 4), c) for c in ((255, 0, 0), (0, 0, 255))]
    for name in ("a.gif", "a.tif", "a.png"):
        path = save(tmp_path, name, frames[0], save_all=True, append_images=frames[1:])
        assert_input_error(path, match="multi-frame")
        assert_input_error(path, fn=probe, match="multi-frame")


def test_mpo_uses_primary_image(tmp_path):
    frames = [Image.new("RGB", (8, 6), c) for c in ((200, 0, 0), (0, 0, 200))]
    path = save(tmp_path, "a.mpo", frames[0], format="MPO", save_all=True, append_images=frames[1:])
    out = decode(path)
    assert out.shape == (6, 8, 3) and out[..., 0].mean() > 150 and out[..., 2].mean() < 50


def test_optional_codecs(tmp_path):
    arr = rand((8, 8, 3))
    if features.check("webp"):
        webp = save(tmp_path, "a.webp", Image.fromarray(arr), lossless=True)
        assert np.array_equal(decode(webp), arr)
    if features.check("jpg_2000"):
        assert np.array_equal(decode(save(tmp_path, "a.jp2", Image.fromarray(arr))), arr)
    if features.check("avif"):
        assert decode(save(tmp_path, "a.avif", Image.fromarray(arr))).shape == (8, 8, 3)


def test_missing_codec_names_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(images.features, "check", lambda name: False)
    for ext, needle in ((".avif", "libavif"), (".jp2", "OpenJPEG"), (".webp", "libwebp")):
        path = tmp_path / f"x{ext}"
        path.write_bytes(b"\x00" * 64)
        err = assert_input_error(path)
        assert needle in err.fix and ext in err.what


# --- orientation ------------------------------------------------------------------------------

@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_matches_exif_transpose(tmp_path, orientation):
    arr = rand((3, 5, 3))
    path = save(tmp_path, "o.png", Image.fromarray(arr), exif=exif_bytes(orientation))
    with Image.open(path) as img:
        expected = np.asarray(ImageOps.exif_transpose(img))
    out = decode(path)
    assert np.array_equal(out, expected)
    assert (probe(path).height, probe(path).width) == out.shape[:2]


@pytest.mark.parametrize("compression", [None, "tiff_deflate"])
def test_tiff_orientation_applied_once(tmp_path, compression):
    arr = rand((3, 5, 3))
    for orientation in range(1, 9):
        path = save(tmp_path, f"o{orientation}.tif", Image.fromarray(arr),
                    tiffinfo={0x0112: orientation}, compression=compression)
        with Image.open(path) as img:  # Pillow turns TIFFs on load; exif_transpose won't redo it
            expected = np.asarray(ImageOps.exif_transpose(img))
        assert np.array_equal(decode(path), expected), orientation
        assert (probe(path).height, probe(path).width) == expected.shape[:2]
    assert np.array_equal(decode(tmp_path / "o6.tif"), np.rot90(arr, -1))


def test_orientation_6_rotates_clockwise(tmp_path):
    arr = np.zeros((2, 4, 3), np.uint8)
    arr[0, 0] = [255, 0, 0]  # red top-left
    path = save(tmp_path, "o.jpg", Image.fromarray(arr).resize((20, 10), Image.NEAREST),
                exif=exif_bytes(6), quality=100)
    info = probe(path)
    assert (info.width, info.height) == (10, 20)
    out = decode(path)
    assert out.shape == (20, 10, 3)
    assert out[1, 8, 0] > 200 and out[1, 1, 0] < 50  # now top-right


def test_orientation_in_late_png_exif_chunk(tmp_path):
    arr = rand((2, 3, 3))
    path = write_png(tmp_path / "late.png", arr, exif=exif_bytes(8), exif_late=True)
    assert (probe(path).width, probe(path).height) == (2, 3)
    assert np.array_equal(decode(path), np.rot90(arr, 1))


# --- plugin formats -------------------------------------------------------------------------

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


# --- property test ------------------------------------------------------------------------------

@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(KINDS), w=st.integers(1, 64), h=st.integers(1, 64),
       tiff=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_property_decode_lossless_files(kind, w, h, tiff, seed):
    fmt = "TIFF" if tiff and kind in ("I;16", "RGB16", "RGBA16") else "PNG"
    if fmt == "TIFF" and kind != "I;16":
        pytest.importorskip("tifffile")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "img." + fmt.lower())
        expected = make_image(kind, w, h, np.random.default_rng(seed), fmt, path)
        out = decode(path)
        assert out.shape == (h, w, 3) and out.flags.c_contiguous and out.flags.writeable
        assert out.dtype == (np.uint16 if kind in ("I;16", "RGB16", "RGBA16") else np.uint8)
        assert np.array_equal(out, expected)
        assert np.array_equal(decode(path), out)
        floats = to_float(out)
        assert floats.min() >= 0.0 and floats.max() <= 1.0
        info = probe(path)
        assert (info.width, info.height) == (w, h)
        assert info.bit_depth == (16 if out.dtype == np.uint16 else 8)
