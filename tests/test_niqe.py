"""NIQE (hlcli.metrics.niqe) against BasicSR 1.4.2's own ``calculate_niqe``, executed from its
release sdist (tests/niqe_oracle.py; .ci/run downloads it), to 1e-6 absolute; its refusals; the
pristine model's lookup, hash checks, --offline, import and show; NIQE in a run."""

from __future__ import annotations

import hashlib
import io
import json
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from hlcli.cli import cli
from hlcli.errors import HlcliEnvironmentError
from hlcli.metrics import niqe as N
from hlcli.metrics.psnr_ssim import y_channel
from hlcli.nets import datafiles
from hlcli.nets.weights import cache_dir

from . import niqe_oracle
from .conftest import SAMPLES, degrade, save, textured

ORACLE_MISSING = niqe_oracle.missing_reason()
needs_oracle = pytest.mark.skipif(ORACLE_MISSING is not None, reason=f"NIQE ORACLE NOT RUN: {ORACLE_MISSING}")


@pytest.fixture(scope="module")
def oracle_dir(tmp_path_factory):
    if ORACLE_MISSING is not None:
        pytest.skip(f"NIQE ORACLE NOT RUN: {ORACLE_MISSING}")
    return niqe_oracle.extract(tmp_path_factory.mktemp("basicsr"))


@pytest.fixture(scope="module")
def oracle(oracle_dir):
    return niqe_oracle.load(oracle_dir)


@pytest.fixture(scope="module")
def params_file(oracle_dir):
    return oracle_dir / "metrics" / "niqe_pris_params.npz"


@pytest.fixture(scope="module")
def params(params_file):
    return datafiles.read_niqe_params(params_file)


def ours(rgb: np.ndarray, crop: int, params, bits16: bool = False) -> float:
    """hlcli's path: integers -> crop (the loader's) -> BasicSR's Y (psnr_ssim.y_channel) -> NIQE."""
    t = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None]
    if bits16:
        t = t.to(torch.int32) * 257
    if crop:
        t = t[..., crop:-crop, crop:-crop]
    y = y_channel(t, 65535 if bits16 else 255)[0, 0].numpy().astype(np.float32)
    return N.niqe_y(y, params)


def _photos() -> dict[str, np.ndarray]:
    from skimage import data

    out = {n: getattr(data, n)() for n in ("astronaut", "coffee", "chelsea", "rocket")}
    for p in sorted(SAMPLES.glob("*/*.*")):
        if p.suffix in (".png", ".jpg"):
            out[f"samples/{p.parent.name}/{p.name}"] = np.asarray(Image.open(p).convert("RGB"))
    return out


PHOTOS = _photos()


@pytest.mark.parametrize("crop", [0, 4])
@pytest.mark.parametrize("name", sorted(PHOTOS))
def test_agrees_with_basicsr_on_real_photos(oracle, params, name, crop):
    rgb = PHOTOS[name]
    want = oracle.calculate_niqe(rgb[:, :, ::-1], crop, input_order="HWC", convert_to="y")  # BasicSR reads BGR
    assert abs(ours(rgb, crop, params) - want) <= 1e-6


@pytest.mark.parametrize("crop", [0, 4])
def test_agrees_with_basicsr_on_odd_sizes(oracle, params, crop):
    rgb = PHOTOS["astronaut"][3:3 + 391, 7:7 + 205]  # 391x205: no side a multiple of 96
    assert abs(ours(rgb, crop, params) - oracle.calculate_niqe(rgb[:, :, ::-1], crop)) <= 1e-6


def test_agrees_with_basicsr_on_a_jpeg_of_retina(oracle, params):
    from skimage import data

    buf = io.BytesIO()
    Image.fromarray(data.retina()).resize((384, 384), Image.BICUBIC).save(buf, "JPEG", quality=75)
    rgb = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    assert abs(ours(rgb, 0, params) - oracle.calculate_niqe(rgb[:, :, ::-1], 0)) <= 1e-6


def test_sixteen_bit_is_on_the_8_bit_scale(params):
    rgb = PHOTOS["chelsea"]
    assert ours(rgb, 0, params, bits16=True) == ours(rgb, 0, params)


@pytest.mark.parametrize("size", [(95, 300), (150, 191), (191, 150)])
def test_fewer_than_two_blocks_are_refused_where_basicsr_has_no_value(oracle, params, size):
    rgb = PHOTOS["coffee"][: size[0], : size[1]]
    with pytest.raises(Exception):  # no block: an empty reduction; one block: "SVD did not converge"
        oracle.calculate_niqe(rgb[:, :, ::-1], 0)
    with pytest.raises(N.NIQERefused, match="two 96x96 blocks"):
        ours(rgb, 0, params)
    assert ours(PHOTOS["coffee"][:96, :192], 0, params) > 0  # two blocks: a value


def one_textured_block() -> np.ndarray:
    """Flat grey but for texture well inside one 96x96 block: one usable feature vector."""
    img = np.full((192, 288, 3), 120, np.uint8)
    img[10:86, 106:182] = np.random.default_rng(1).integers(0, 256, (76, 76, 3))
    return img


def test_flat_regions_are_refused_where_basicsr_fails(oracle, params):
    for img in (np.full((192, 192, 3), 120, np.uint8), one_textured_block()):
        with pytest.raises(np.linalg.LinAlgError, match="SVD did not converge"):
            oracle.calculate_niqe(img[:, :, ::-1], 0)
        with pytest.raises(N.NIQERefused, match="at least 2 of its"):
            ours(img, 0, params)


def test_binary_search_is_basicsrs_argmin():
    r_gam = N._tables()[0]
    rng = np.random.default_rng(0)
    xs = np.concatenate([rng.uniform(-0.1, 0.9, 2000), r_gam[rng.integers(0, len(r_gam), 200)],
                         (r_gam[1:201] + r_gam[:200]) / 2, [np.nan, np.inf, -np.inf]])
    for x in xs:
        want = int(np.argmin((r_gam - np.float32(x)) ** 2))
        assert N._argmin_table(float(np.float32(x))) == want


# --------------------------------------------------------------------------------------------
# The pristine model: lookup, checks, --offline, import, show.


def test_params_file_is_checked(tmp_path, params):
    cases = {
        "keys": dict(mu_pris_param=params.mu[None], cov_pris_param=params.cov),
        "shape": dict(mu_pris_param=params.mu[None, :35], cov_pris_param=params.cov, gaussian_window=params.window),
        "pickle": dict(mu_pris_param=np.array([object()]), cov_pris_param=params.cov, gaussian_window=params.window),
    }
    for name, arrays in cases.items():
        np.savez(tmp_path / f"{name}.npz", **arrays)
        with pytest.raises(ValueError):
            datafiles.read_niqe_params(tmp_path / f"{name}.npz")
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(ValueError):
        datafiles.read_niqe_params(tmp_path / "text.npz")


def test_offline_without_the_file_is_exit_3_with_the_fix(tmp_path):
    with pytest.raises(HlcliEnvironmentError) as e:
        datafiles.load("niqe", offline=True)
    assert e.value.exit_code == 3
    assert "hlcli weights import --net niqe" in e.value.render() and "--niqe-params" in e.value.render()


def test_download_is_hash_checked(monkeypatch, params_file):
    import torch.hub

    calls = []

    def fake(url, dst, hash_prefix=None, progress=True):
        calls.append((url, hash_prefix))
        data = params_file.read_bytes()
        if hash_prefix and not hashlib.sha256(data).hexdigest().startswith(hash_prefix):
            raise RuntimeError("invalid hash value")
        with open(dst, "wb") as fh:
            fh.write(data)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake)
    loaded = datafiles.load("niqe")
    assert loaded.source == "download" and loaded.official
    assert calls == [(datafiles.SPECS["niqe"].url, datafiles.SPECS["niqe"].sha256)]
    assert datafiles.load("niqe", offline=True).source == "cache"  # then found offline

    def corrupt(url, dst, hash_prefix=None, progress=True):
        raise RuntimeError(f'invalid hash value (expected "{hash_prefix}")')

    (cache_dir() / "niqe_pris_params.npz").unlink()
    monkeypatch.setattr(torch.hub, "download_url_to_file", corrupt)
    with pytest.raises(HlcliEnvironmentError, match="could not download"):
        datafiles.load("niqe")


def test_import_show_and_non_official_files(tmp_path, params_file, params):
    from hlcli.engine.sysinfo import data_file_info

    assert data_file_info("niqe")["would_use"]["source"] == "download"
    runner = CliRunner()
    r = runner.invoke(cli, ["weights", "import", "--net", "niqe", str(params_file)])
    assert r.exit_code == 0, r.output
    assert datafiles.load("niqe", offline=True).source == "cache"
    assert data_file_info("niqe")["would_use"] == {"source": "cache", "path": str(cache_dir() / "niqe_pris_params.npz"),
                                                   "official": True}  # hlcli info
    r = runner.invoke(cli, ["weights", "show", "--net", "niqe"])
    assert r.exit_code == 0 and "niqe_pris_params.npz" in r.output and "official" in r.output
    other = tmp_path / "other.npz"
    np.savez(other, mu_pris_param=params.mu[None] + 0.1, cov_pris_param=params.cov, gaussian_window=params.window)
    r = runner.invoke(cli, ["weights", "import", "--net", "niqe", str(other)])
    assert r.exit_code == 3 and "--niqe-params" in r.output
    loaded = datafiles.load("niqe", other)
    assert loaded.source == "option" and not loaded.official


# --------------------------------------------------------------------------------------------
# NIQE in a run: the restored image only, per-pair refusals. A model of the right form (the
# numbers are the oracle tests' business; these need no BasicSR sdist).


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(36, 36))
    g = np.exp(-((np.arange(7) - 3) ** 2) / (2 * (7 / 6) ** 2))
    path = tmp_path_factory.mktemp("niqe") / "model.npz"
    np.savez(path, mu_pris_param=rng.normal(size=(1, 36)), cov_pris_param=a @ a.T + np.eye(36),
             gaussian_window=np.outer(g, g) / np.outer(g, g).sum())
    return path


def _dirs(tmp_path, images: dict[str, np.ndarray]):
    for name, img in images.items():
        save(tmp_path / "gt" / f"{name}.png", img)
        save(tmp_path / "restored" / f"{name}.png", img if name.startswith("flat") else degrade(img, 1))
    return tmp_path / "restored", tmp_path / "gt"


def test_niqe_in_a_run(tmp_path, cli_env, model_file):
    params = datafiles.read_niqe_params(model_file)
    restored, gt = _dirs(tmp_path, {"a": textured(200, 230, 1), "flat": np.full((192, 192, 3), 90, np.uint8)})
    args = ["score", str(restored), str(gt), "--metrics", "niqe", "--niqe-params", str(model_file), "-f", "json"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 2 and "flat.png" in r.output and "NIQE" in r.output, r.output
    r = CliRunner().invoke(cli, [*args, "--on-error", "skip", "--allow-skips"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    (pair,) = doc["pairs"]
    want = N.niqe_y(y_channel(torch.from_numpy(np.asarray(Image.open(restored / "a.png")).transpose(2, 0, 1).copy())[None],
                              255)[0, 0].numpy().astype(np.float32), params)
    assert pair["niqe"] == pytest.approx(want, abs=1e-12)
    assert [s["key"] for s in doc["skipped"]] == ["flat"]
    assert doc["summary"]["metrics"]["niqe"]["mean"] == pytest.approx(want, abs=1e-12)
    assert doc["settings"]["metric_definitions"]["niqe"]["scope"] == "image"
    assert doc["settings"]["metric_models"]["niqe"]["params"]["official"] is False
    r = CliRunner().invoke(cli, [*args, "--on-error", "skip", "--allow-skips", "--fail-if", "mean.niqe>1"])
    assert r.exit_code == 1


def test_too_small_for_niqe_is_refused_naming_the_file_and_size(tmp_path, cli_env, model_file):
    restored, gt = _dirs(tmp_path, {"small": textured(100, 150, 2)})
    r = CliRunner().invoke(cli, ["score", str(restored), str(gt), "--metrics", "niqe", "--niqe-params",
                                 str(model_file), "--crop-border", "4"])
    assert r.exit_code == 2 and "small.png" in r.output and "96x96" in r.output and "104" in r.output, r.output


def test_dists_and_niqe_through_shards_merge_sweep_and_table(tmp_path, weights_file, backbone_files, model_file):
    """The two metrics travel like the others: shards merged are the single run, a sweep's model
    documents are their single runs, `hlcli table` and gates read them, the schema accepts them."""
    from .schemas import validate_score

    for i in range(3):
        gt = textured(100, 196 + 8 * i, i)  # two 96x96 blocks at least
        save(tmp_path / "gt" / f"p{i}.png", gt)
        save(tmp_path / "A" / f"p{i}.png", degrade(gt, i))
        save(tmp_path / "B" / f"p{i}.png", degrade(gt, i + 7, amount=25))
    common = ["--weights", str(weights_file), "--layers", "conv2_2", "--workers", "0", "--metrics", "dists,niqe",
              "--vgg16-weights", str(backbone_files["vgg16"]), "--niqe-params", str(model_file)]
    run = CliRunner().invoke

    def doc(path):
        d = validate_score(path.read_text())
        return {k: v for k, v in d.items() if k != "command"}

    r = run(cli, ["score", str(tmp_path / "A"), str(tmp_path / "gt"), *common, "-o", str(tmp_path / "A.json")])
    assert r.exit_code == 0, r.output
    single = doc(tmp_path / "A.json")
    assert all(p["niqe"] > 0 and 0 < p["dists"] < 1 for p in single["pairs"])
    for i in range(2):
        r = run(cli, ["score", str(tmp_path / "A"), str(tmp_path / "gt"), *common, "--shard", f"{i}/2",
                      "-o", str(tmp_path / f"part{i}.json")])
        assert r.exit_code == 0, r.output
    r = run(cli, ["merge", str(tmp_path / "part0.json"), str(tmp_path / "part1.json"), "-o", str(tmp_path / "merged.json")])
    assert r.exit_code == 0, r.output
    assert doc(tmp_path / "merged.json") == single
    r = run(cli, ["score", str(tmp_path / "A"), str(tmp_path / "B"), str(tmp_path / "gt"), *common,
                  "-o", str(tmp_path / "sweep") + "/"])
    assert r.exit_code == 0, r.output
    swept = doc(tmp_path / "sweep" / "A.json")
    assert [p["niqe"] for p in swept["pairs"]] == [p["niqe"] for p in single["pairs"]]
    assert [p["dists"] for p in swept["pairs"]] == pytest.approx([p["dists"] for p in single["pairs"]], abs=1e-9)
    r = run(cli, ["table", str(tmp_path / "sweep" / "A.json"), str(tmp_path / "sweep" / "B.json"),
                  "--metrics", "dists,niqe", "-f", "markdown"])
    assert r.exit_code == 0 and "DISTS↓" in r.stdout and "NIQE↓" in r.stdout, r.output
    r = run(cli, ["compare", str(tmp_path / "sweep" / "A.json"), str(tmp_path / "sweep" / "B.json"), "-f", "json"])
    assert r.exit_code == 0, r.output
    compared = json.loads(r.stdout)
    assert "dists" in json.dumps(compared) and "niqe" in json.dumps(compared)
