"""Every document hlcli writes, hlcli reads back (issue 22 §1), on any CPU.

* A property test (hypothesis, several seeds): small runs of identical, near-identical, random and
  inverted pairs, every opt-in metric the fixtures allow, crop borders, groups, a skipped file,
  shards, maps. Every document is written (score JSON, shard parts, the maps index, and the
  documents of compare, table, calibrate and tradeoff), checked against its schema, read back by
  its reader and by every command that reads it (``--baseline``, compare, table, report,
  calibrate, tradeoff, merge, ``report --maps``). hlcli must never refuse its own output.
* Identical 24x32 pairs: their SSIM can come out above 1 by rounding (the filters are float64
  matrix products, which MKL rounds per code path); the run must still be read back everywhere.
* The same, in a fresh interpreter per forced MKL code path (``MKL_CBWR=AVX2``, ``COMPATIBLE``:
  MKL reads it when it loads), so a machine with AVX-512 takes the path an AVX2-only CPU takes
  (marked slow, as is the run of every metric with LPIPS on VGG-16: both run in the README's
  ``python -m pytest -q``; the default ``-m "not slow"`` run of this file stays under a minute).
* A score stored as a huge JSON integer reaches every consumer as a float (or is refused).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from tempfile import TemporaryDirectory

import jsonschema
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, Phase, given, settings, strategies as st
from hypothesis import seed as hypothesis_seed

from .conftest import ROOT, save, textured
from .schemas import loads_strict, schema

LAYERS = "conv1_2,conv2_1"
SEEDS = [0, 1, 2]
KINDS = ["identical", "near", "random", "inverted"]
EXAMPLES = 1  # per seed: a round trip costs seconds (four scores, the report's figures)
#: Every metric, LPIPS on VGG-16 too (its backbone is the costly one to load, so the generated runs
#: leave it out and this run is marked slow).
EVERY_METRIC = {"crop": 1, "size": (33, 34), "metrics": ["psnr", "psnr_y", "ssim", "ssim_y", "lpips", "lpips_vgg"],
                "kinds": ["random", *KINDS], "groups": ["g1", "g2", "g1", "g2", "g1"], "skip": True, "seed": 5}


def _validate(kind: str, doc) -> dict:
    from hlcli.runs.jsondoc import schema as merged  # the maps index borrows the score schema's $defs

    doc = loads_strict(doc) if isinstance(doc, str) else doc
    jsonschema.Draft202012Validator(schema(kind) if kind != "maps" else merged(kind)).validate(doc)
    return doc


def _runner(weights_file: Path, backbones: dict[str, Path]) -> CliRunner:
    return CliRunner(env={"HLCLI_WEIGHTS": str(weights_file), "HLCLI_LPIPS_WEIGHTS": str(backbones["alexnet"]),
                          "HLCLI_LPIPS_VGG_WEIGHTS": str(backbones["vgg16"]), "HLCLI_OFFLINE": "1"})


def _invoke(runner: CliRunner, args: list[str], ok=(0,)):
    from hlcli.cli import cli

    result = runner.invoke(cli, [str(a) for a in args])
    assert result.exit_code in ok, (args, result.exit_code, result.stderr, result.exception)
    return result


def _restored(gt: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    if kind == "identical":
        return gt.copy()
    if kind == "near":  # one level off on a few pixels
        out = gt.astype(np.int16)
        idx = rng.integers(0, gt.size, size=max(1, gt.size // 50))
        out.flat[idx] += np.where(out.flat[idx] < 255, 1, -1)
        return out.astype(np.uint8)
    if kind == "inverted":  # SSIM below 0
        return 255 - gt
    return rng.integers(0, 256, size=gt.shape, dtype=np.uint8)


@st.composite
def runs(draw):
    """A small run: pair kinds and sizes, groups, metrics, crop border, a skipped file or not."""
    from hlcli.metrics import registry as metricdefs

    crop = draw(st.integers(0, 3))
    h, w = draw(st.integers(11 + 2 * crop, 40)), draw(st.integers(11 + 2 * crop, 40))
    side = min(h, w) - 2 * crop
    usable = [n for n in ("psnr", "psnr_y", "ssim", "ssim_y", "lpips")
              if metricdefs.get(n).min_side <= side]
    metrics = draw(st.lists(st.sampled_from(usable), unique=True, min_size=1, max_size=len(usable)))
    kinds = ["random", *draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=4))]  # mean L1 > 0
    groups = draw(st.lists(st.sampled_from(["g1", "g2"]), min_size=len(kinds), max_size=len(kinds)))
    return {"crop": crop, "size": (h, w), "metrics": metrics, "kinds": kinds, "groups": groups,
            "skip": draw(st.booleans()), "seed": draw(st.integers(0, 2 ** 16))}


def _make_tree(root: Path, run: dict) -> tuple[Path, Path, Path]:
    """gt/, restored/ (model A) and restored_b/ (model B: the same pairs, degraded otherwise)."""
    rng = np.random.default_rng(run["seed"])
    h, w = run["size"]
    for i, (kind, group) in enumerate(zip(run["kinds"], run["groups"])):
        gt = textured(h, w, seed=run["seed"] + i)
        name = f"{group}/p{i}.png"
        save(root / "gt" / name, gt)
        save(root / "restored" / name, _restored(gt, kind, rng))
        save(root / "restored_b" / name, _restored(gt, "near" if kind == "random" else "random", rng))
    if run["skip"]:
        save(root / "gt" / "g2" / "broken.png", textured(h, w, seed=99))
        for model in ("restored", "restored_b"):
            (root / model / "g2").mkdir(parents=True, exist_ok=True)
            (root / model / "g2" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not a png")
    return root / "restored", root / "restored_b", root / "gt"


def write_and_read_back(root: Path, runner: CliRunner, run: dict) -> dict:
    """Write every document of ``run`` and read each back through every reader and command."""
    from hlcli.runs import readers

    rest_a, rest_b, gt = _make_tree(root, run)
    common = ["-r", "--layers", LAYERS, "--workers", "0", "--group-by", "top", "-f", "json",
              "--on-error", "skip", "--allow-skips"]
    if run["metrics"]:
        common += ["--metrics", ",".join(run["metrics"])]
    if run["crop"]:
        common += ["--crop-border", run["crop"]]
    a, b, maps = root / "a.json", root / "b.json", root / "maps"
    _invoke(runner, ["score", rest_a, gt, *common, "-o", a, "--save-maps", maps, "--maps-format", "npy"])
    _invoke(runner, ["score", rest_b, gt, *common, "-o", b])
    parts = [root / f"part{i}.json" for i in range(2)]
    for i, part in enumerate(parts):
        _invoke(runner, ["score", rest_b, gt, *common, "--shard", f"{i}/2", "-o", part])

    doc = readers.read_score(a)  # every reader, directly
    readers.read_score(b)
    for part in parts:
        _validate("score", part.read_text("utf-8"))
        readers.read_part(part)
    _validate("score", a.read_text("utf-8"))
    _validate("maps", (maps / "maps.json").read_text("utf-8"))
    readers.read_maps_index(maps)

    # every command that reads them; the documents those commands write, against their schemas
    merged = _invoke(runner, ["merge", *parts, "-f", "json", "--allow-skips", "--baseline", b], ok=(0, 1))
    _validate("score", merged.stdout)
    readers.score_from_bytes(merged.stdout.encode("utf-8"))  # a merged run is a run too
    _validate("compare", _invoke(runner, ["compare", a, b, "-f", "json"]).stdout)
    by = run["metrics"][0] if run["metrics"] else "hybrid"
    _validate("compare", _invoke(runner, ["compare", b, a, "-f", "json", "--by", by]).stdout)
    _validate("table", _invoke(runner, ["table", a, b, "-f", "json", "--group-by", "top",
                                        "--metrics", ",".join(["l1", "hybrid", *run["metrics"]])]).stdout)
    _validate("tradeoff", _invoke(runner, ["tradeoff", a, b, "-f", "json"]).stdout)
    _validate("calibrate", _invoke(runner, ["calibrate", a, "-f", "json"]).stdout)
    _invoke(runner, ["report", a, "--maps", maps, "-o", root / "report.html", "--top", "2", "--thumb-size", "16",
                     "--images", "link"])
    return doc


@pytest.mark.parametrize("seed", SEEDS)
def test_hlcli_reads_back_every_document_it_writes(seed, weights_file, backbone_files):
    runner = _runner(weights_file, backbone_files)

    def check(run):
        with TemporaryDirectory() as tmp:
            write_and_read_back(Path(tmp), runner, run)

    check = settings(max_examples=EXAMPLES, deadline=None, database=None,
                     phases=[Phase.generate],  # no shrinking (costly): a failure names its run
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])(check)
    hypothesis_seed(seed)(given(run=runs())(check))()


@pytest.mark.slow
def test_every_metric_round_trip(tmp_path, weights_file, backbone_files):
    write_and_read_back(tmp_path, _runner(weights_file, backbone_files), EVERY_METRIC)


def identical_pairs_read_back(root: Path, runner: CliRunner) -> tuple[int, int]:
    """Score 40 identical 24x32 pairs (and one differing pair, so that calibrate has a mean L1)
    with SSIM, read the run back everywhere (``--baseline`` reads it with :func:`read_score`, as
    here); return (SSIM values above 1, values)."""
    for i in range(40):
        gt = textured(24, 32, seed=i)
        save(root / "gt" / f"p{i:02d}.png", gt)
        save(root / "restored" / f"p{i:02d}.png", gt)
    save(root / "gt" / "z.png", textured(24, 32, seed=50))
    save(root / "restored" / "z.png", 255 - textured(24, 32, seed=50))
    run = root / "run.json"
    _invoke(runner, ["score", root / "restored", root / "gt", "--layers", LAYERS, "--workers", "0",
                     "--metrics", "ssim,ssim_y", "-f", "json", "-o", run])
    doc = _validate("score", run.read_text("utf-8"))
    values = [p[m] for p in doc["pairs"] if p["key"] != "z" for m in ("ssim", "ssim_y")]
    assert all(abs(v - 1) <= 1e-12 for v in values), max(values)
    from hlcli.runs import readers

    readers.read_score(run)
    other = root / "other.json"
    other.write_bytes(run.read_bytes())
    for args in (["table", run, other], ["compare", run, other], ["calibrate", run],
                 ["report", run, "-o", root / "r.html", "--top", "1", "--thumb-size", "16", "--images", "link"]):
        _invoke(runner, args)
    return sum(v > 1 for v in values), len(values)


def test_identical_pairs_whose_ssim_rounds_above_1_are_read_back(tmp_path, weights_file, backbone_files):
    """Where MKL's float64 products put an identical pair's SSIM above 1 (on this CPU or not), the
    run is written and read back everywhere."""
    above, total = identical_pairs_read_back(tmp_path, _runner(weights_file, backbone_files))
    print(f"{above} of {total} SSIM values of identical pairs above 1")


#: The round trip under a forced MKL path: every pair kind, PSNR and SSIM (the float64 matrix
#: products MKL rounds per path), a crop border, groups, a skipped file.
MKL_RUN = {"crop": 1, "size": (22, 25), "metrics": ["psnr", "psnr_y", "ssim", "ssim_y"],
           "kinds": ["random", *KINDS], "groups": ["g1", "g2", "g1", "g2", "g1"], "skip": True, "seed": 5}


def mkl_main(weights: str, alexnet: str, vgg16: str, root: str) -> None:
    """Run in a fresh interpreter with ``MKL_CBWR`` set: the identical pairs, then ``MKL_RUN``."""
    runner = _runner(Path(weights), {"alexnet": Path(alexnet), "vgg16": Path(vgg16)})
    (Path(root) / "identical").mkdir()
    above, total = identical_pairs_read_back(Path(root) / "identical", runner)
    (Path(root) / "run").mkdir()
    write_and_read_back(Path(root) / "run", runner, MKL_RUN)
    print(f"SSIM above 1: {above} of {total}")


@pytest.mark.slow  # a fresh interpreter each (torch's import, the fixtures' files reused)
@pytest.mark.parametrize("cbwr", ["AVX2", "COMPATIBLE"])
def test_round_trip_under_a_forced_mkl_code_path(cbwr, tmp_path, weights_file, backbone_files):
    """MKL reads MKL_CBWR when it loads, so a fresh interpreter runs the round trip with it; there
    some identical pair's SSIM must come out above 1 (the evidence that the forced path is the one
    that rounds past the bound: 11 and 14 of 80 on an AMD Zen 4)."""
    code = "import sys; from tests.test_roundtrip import mkl_main; mkl_main(*sys.argv[1:])"
    env = {**os.environ, "MKL_CBWR": cbwr, "PYTHONPATH": str(ROOT), "HLCLI_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", code, str(weights_file), str(backbone_files["alexnet"]),
                             str(backbone_files["vgg16"]), str(tmp_path)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    above = int(result.stdout.split("SSIM above 1: ")[1].split()[0])
    assert above > 0, result.stdout


def test_a_score_stored_as_a_huge_integer_reaches_every_consumer_as_a_float(scored_documents, tmp_path):
    """``"hybrid": 2**70`` (a JSON integer) passed the reader and crashed ``hlcli report``
    (TypeError from numpy's isfinite on an object array); the reader makes it a float."""
    from hlcli.runs import readers
    from hlcli.runs.jsondoc import DocumentError

    doc = json.loads(scored_documents["run"])
    doc["pairs"][0]["hybrid"] = 2 ** 70
    doc["pairs"][1]["l1"] = 3
    doc["summary"]["metrics"]["hybrid"]["max"] = 2 ** 70
    path = tmp_path / "big.json"
    path.write_text(json.dumps(doc), "utf-8")
    read = readers.read_score(path)
    assert type(read["pairs"][0]["hybrid"]) is float and read["pairs"][0]["hybrid"] == 2.0 ** 70
    assert type(read["pairs"][1]["l1"]) is float
    assert type(read["summary"]["metrics"]["hybrid"]["max"]) is float
    assert type(read["summary"]["count"]) is int  # counts stay integers
    runner = CliRunner(env={"HLCLI_OFFLINE": "1"})
    _invoke(runner, ["report", path, "-o", tmp_path / "r.html", "--top", "2", "--thumb-size", "16",
                     "--images", "link"])
    _invoke(runner, ["compare", path, scored_documents["root"] / "run.json", "-f", "json"])
    _invoke(runner, ["table", path, "-f", "json"])
    _invoke(runner, ["calibrate", path, "-f", "json"])
    doc["pairs"][0]["hybrid"] = 10 ** 400  # beyond any float: refused with its path, exit 2
    path.write_text(json.dumps(doc), "utf-8")
    with pytest.raises(DocumentError):
        readers.read_score(path)
    result = _invoke(runner, ["report", path, "-o", tmp_path / "r2.html"], ok=(2,))
    assert "big.json" in result.stderr and "Traceback" not in result.stderr


def test_relaxed_bounds_are_the_named_tolerance(scored_documents):
    """The schemas' bounds of exact arithmetic that rounding can cross are 1 + ROUNDING_TOLERANCE,
    stated once (docs/formats.md, "Bounds of the numbers"); an SSIM beyond it is refused."""
    from hlcli.runs.jsondoc import ROUNDING_TOLERANCE, schema as shipped

    ssim = shipped("score")["$defs"]["extra_ssim"]
    assert (ssim["minimum"], ssim["maximum"]) == (-1 - ROUNDING_TOLERANCE, 1 + ROUNDING_TOLERANCE)
    assert shipped("calibrate")["$defs"]["share"]["maximum"] == 1 + ROUNDING_TOLERANCE
    assert 1 + 2 ** -51 < 1 + ROUNDING_TOLERANCE < 1.000000002
    from hlcli.runs.jsondoc import DocumentError
    from hlcli.runs.readers import score_from_bytes

    doc = json.loads(scored_documents["run"])
    for value, ok in ((1 + 2 ** -51, True), (-1 - 2 ** -51, True), (1.000000002, False), (-1.000000002, False)):
        doc["pairs"][0]["ssim_y"] = value
        data = json.dumps(doc).encode()
        if ok:
            assert score_from_bytes(data)["pairs"][0]["ssim_y"] == value
        else:
            with pytest.raises(DocumentError, match="ssim_y"):
                score_from_bytes(data)
