"""FID and KID in a scoring run (issue #25): the set values in the document, gates by name, the
small-set warning, the weights' checks, and the run end to end against the reference chains."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from hlcli.analysis.gate import parse_gate
from hlcli.cli import cli
from hlcli.metrics import fid as FD
from hlcli.nets import inception
from hlcli.runs.readers import read_score
from tests.lambda_runs import validate
from tests.conftest import grouped_samples

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def _grouped(tmp_path: Path) -> tuple[Path, Path]:
    return grouped_samples(tmp_path)


def _score(args, tmp_path):
    out = tmp_path / "run.json"
    res = CliRunner().invoke(cli, ["score", *map(str, args), "-f", "json", "-o", str(out)])
    return res, (json.loads(out.read_text()) if out.exists() else None)


def test_gate_parsing_by_name():
    g = parse_gate("fid[Set5]>30")
    assert (g.stat, g.metric, g.group, g.op, g.threshold) == ("value", "fid", "Set5", ">", 30.0)
    assert parse_gate("kid <= 0.01").expression == "kid<=0.01"
    with pytest.raises(ValueError, match="set metric.*no mean.*fid>30"):
        parse_gate("mean.fid>30")
    with pytest.raises(ValueError, match="invalid gate"):
        parse_gate("hybrid>3")  # a pair metric still needs its statistic


def test_run_records_set_values_and_gates(fid_env, tmp_path):
    restored, gt = _grouped(tmp_path)
    res, doc = _score([restored, gt, "-r", "--group-by", "top", "--metrics", "fid,kid,psnr", "--fid-dims", "64",
                       "--fail-if", "fid[A]>1e9", "--fail-if", "kid<-1e9"], tmp_path)
    assert res.exit_code == 0, res.output
    sets = doc["summary"]["sets"]
    assert sets["samples"] == 4 and sets["dims"] == 64 and sets["small"] is True
    assert "singular" in sets["note"] and "singular" in res.stderr  # said on stderr and in the document
    assert set(doc["summary"]["groups"]) == {"A", "B"}
    assert doc["summary"]["groups"]["A"]["sets"]["samples"] == 2
    assert "fid" not in doc["summary"]["metrics"] and "fid" not in doc["pairs"][0]  # no per-pair value
    assert doc["settings"]["fid"]["resize"] == "clean" and doc["settings"]["fid"]["kid_seed"] == 2020
    checks = {c["expression"]: c for c in doc["gate"]["checks"]}
    assert checks["fid[A]>1e9"]["observed"] == pytest.approx(doc["summary"]["groups"]["A"]["sets"]["fid"])
    assert checks["kid<-1e9"]["observed"] == pytest.approx(sets["kid"])
    read_score(tmp_path / "run.json")  # hlcli reads back what it wrote (schema and cross-field checks)
    # The values are those of the features: the same set recomputed from a plain per-image pass.
    net = inception.build(inception.check_state_dict(torch.load(fid_env, weights_only=True)), 64)
    feats = {}
    for side, root in (("r", restored), ("g", gt)):
        rows = []
        for key in sorted(p.relative_to(root).with_suffix("").as_posix() for p in root.rglob("*.*")):
            path = next(root.glob(key + ".*"))
            from PIL import Image
            arr = np.asarray(Image.open(path).convert("RGB"))
            x = torch.from_numpy(inception.resize_clean_pil(arr))[None]
            rows.append(net((x - 128) / 128).double().numpy()[0])
        feats[side] = np.stack(rows)
    assert sets["fid"] == pytest.approx(FD.fid(feats["r"], feats["g"]), rel=1e-6)
    assert sets["kid"] == pytest.approx(FD.kid(feats["r"], feats["g"]).mean, rel=1e-6)


def test_gate_on_set_metric_fails_and_mean_fid_refused(fid_env, tmp_path):
    restored, gt = _grouped(tmp_path)
    res, doc = _score([restored, gt, "-r", "--metrics", "fid", "--fid-dims", "64", "--fail-if", "fid<1e9"], tmp_path)
    assert res.exit_code == 1 and doc["gate"]["passed"] is False
    res, _ = _score([restored, gt, "-r", "--metrics", "fid", "--fail-if", "mean.fid>3"], tmp_path)
    assert res.exit_code == 2 and "set metric" in res.stderr
    res, _ = _score([restored, gt, "-r", "--metrics", "psnr", "--fail-if", "fid>3"], tmp_path)
    assert res.exit_code == 2 and "--metrics" in res.stderr  # a gate on a set metric not computed


def test_inception_weights_checked(cli_env, tmp_path, monkeypatch):
    restored, gt = _grouped(tmp_path)
    bad = tmp_path / "bad.pth"
    sd = inception.random_state_dict(0)
    sd.pop("Mixed_7c.branch_pool.conv.weight")
    torch.save(sd, bad)
    res, _ = _score([restored, gt, "-r", "--metrics", "fid", "--inception-weights", bad], tmp_path)
    assert res.exit_code == 3 and "Mixed_7c.branch_pool.conv.weight" in res.stderr
    monkeypatch.delenv("HLCLI_INCEPTION_WEIGHTS", raising=False)
    res, _ = _score([restored, gt, "-r", "--metrics", "kid", "--offline"], tmp_path)
    assert res.exit_code == 3 and "weights download --net inception" in res.stderr


@pytest.mark.slow
def test_patches_end_to_end_against_reference_chains(fid_env, tmp_path):
    """--fid-patches 64 over the bundled photos (109 patches per side), the default `clean` resize:
    the run's FID equals NeuralCompression's patches -> clean-fid's resizer -> pytorch-fid's
    InceptionV3 -> pytorch-fid's calculate_frechet_distance, to 1e-4 relative. The `pytorch-fid`
    resize's features are pytorch-fid's own (test_fid.py, every dimension), and both resizes run
    end to end on 595 patches of real photos in benchmarks/fid_oracle.py (kept out of the suite
    for time: the pytorch-fid chain here cost another 19 s)."""
    pytest.importorskip("pytorch_fid")
    make_resizer = pytest.importorskip("cleanfid.resize").make_resizer
    import warnings

    import pytorch_fid.inception as pfi
    from PIL import Image
    from pytorch_fid.fid_score import calculate_frechet_distance

    sd = torch.load(fid_env, weights_only=True)
    orig = pfi.load_state_dict_from_url
    pfi.load_state_dict_from_url = lambda *a, **k: {n: v.clone() for n, v in sd.items()}
    try:
        nets = {mode: pfi.InceptionV3([0], resize_input=mode == "pytorch-fid",
                                      normalize_input=mode == "pytorch-fid").eval()
                for mode in ("pytorch-fid", "clean")}
    finally:
        pfi.load_state_dict_from_url = orig
    resizer = make_resizer("PIL", False, "bicubic", (299, 299))

    def patches(path):
        t = torch.from_numpy(np.asarray(Image.open(path).convert("RGB"))).permute(2, 0, 1)[None].double() / 255
        cut = [t] + ([t[:, :, 32:, 32:]] if t.shape[2] >= 96 and t.shape[3] >= 96 else [])
        return torch.cat([torch.nn.functional.unfold(c, 64, stride=64).permute(0, 2, 1).reshape(-1, 3, 64, 64)
                          for c in cut])

    for mode in ("clean",):
        res, doc = _score([SAMPLES / "restored", SAMPLES / "gt", "--metrics", "fid", "--fid-dims", "64",
                           "--fid-patches", "64", "--fid-resize", mode], tmp_path)
        assert res.exit_code == 0, res.output
        feats = []
        for root in (SAMPLES / "restored", SAMPLES / "gt"):
            ps = torch.cat([patches(p) for p in sorted(root.iterdir(), key=lambda p: p.stem) if p.suffix != ".md"])
            if mode == "clean":
                x = torch.from_numpy(np.stack([resizer((p.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
                                               for p in ps])).permute(0, 3, 1, 2)
                x = (x - 128) / 128
            else:
                x = ps.float()
            with torch.no_grad():
                f = nets[mode](x)[0]
            feats.append(torch.nn.functional.adaptive_avg_pool2d(f, 1).flatten(1).double().numpy())
        assert doc["summary"]["sets"]["samples"] == len(feats[0]) == 109
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = calculate_frechet_distance(feats[0].mean(0), np.cov(feats[0], rowvar=False),
                                             feats[1].mean(0), np.cov(feats[1], rowvar=False))
        assert doc["summary"]["sets"]["fid"] == pytest.approx(ref, rel=1e-4)


def test_baseline_regression_of_set_values(fid_env, tmp_path):
    restored, gt = _grouped(tmp_path)
    base = tmp_path / "base.json"
    res = CliRunner().invoke(cli, ["score", str(gt), str(gt), "-r", "--metrics", "fid,kid", "--fid-dims", "64",
                                   "-f", "json", "-o", str(base)])
    assert res.exit_code == 0, res.output
    assert abs(json.loads(base.read_text())["summary"]["sets"]["fid"]) < 1e-6  # identical sets
    args = [restored, gt, "-r", "--metrics", "fid,kid", "--fid-dims", "64", "--baseline", base]
    res, doc = _score([*args, "--max-regression", "fid=1e-9"], tmp_path)
    assert res.exit_code == 1, res.output
    entry = next(e for e in doc["gate"]["regressions"]["summary"] if e["metric"] == "fid")
    assert entry["passed"] is False and entry["observed"] == pytest.approx(doc["summary"]["sets"]["fid"])
    res, doc = _score([*args, "--max-regression", "fid=1e9"], tmp_path)
    assert res.exit_code == 0, res.output
    res, _ = _score([restored, gt, "-r", "--metrics", "fid", "--fid-dims", "192", "--baseline", base,
                     "--max-regression", "fid=1"], tmp_path)
    assert res.exit_code == 2 and "dims 64" in res.stderr  # other features: not comparable


def test_shards_merge_to_the_single_run(fid_env, tmp_path):
    """Three --shard parts carry their features in FILE.fid.npy; `hlcli merge` gives the single
    run's FID and KID (bit for bit: the same float64 rows in the same order); a tampered, missing or
    inconsistent feature file is refused (exit 2), never a traceback."""
    restored, gt = _grouped(tmp_path)
    common = [str(restored), str(gt), "-r", "--group-by", "top", "--metrics", "fid,kid", "--fid-dims", "64"]
    runner = CliRunner()
    single = tmp_path / "single.json"
    assert runner.invoke(cli, ["score", *common, "-f", "json", "-o", str(single)]).exit_code == 0
    parts = [tmp_path / f"part{i}.json" for i in range(3)]
    for i, part in enumerate(parts):
        res = runner.invoke(cli, ["score", *common, "--shard", f"{i}/3", "-f", "json", "-o", str(part)])
        assert res.exit_code == 0, res.output
        assert Path(str(part) + ".fid.npy").is_file()
    merged = tmp_path / "merged.json"
    res = runner.invoke(cli, ["merge", *map(str, parts), "-f", "json", "-o", str(merged)])
    assert res.exit_code == 0, res.output
    a, b = json.loads(single.read_text())["summary"], json.loads(merged.read_text())["summary"]
    assert a["sets"] == b["sets"] and a["groups"]["A"]["sets"] == b["groups"]["A"]["sets"]
    assert "set_features" not in json.loads(merged.read_text())
    # without -o FILE a part could not carry its features
    res = runner.invoke(cli, ["score", *common, "--shard", "0/3", "-f", "json"])
    assert res.exit_code == 2 and "fid.npy" in res.stderr
    # the feature file, fuzzed: seeded byte flips, truncation, a missing file, a wrong record
    npy = Path(str(parts[1]) + ".fid.npy")
    good = npy.read_bytes()
    rng = np.random.default_rng(25)
    mutants = [good[: len(good) // 2], b""]
    for _ in range(6):
        data = bytearray(good)
        data[int(rng.integers(len(data)))] ^= 1 << int(rng.integers(8))
        mutants.append(bytes(data))
    for data in mutants:
        npy.write_bytes(data)
        res = runner.invoke(cli, ["merge", *map(str, parts), "-f", "json"])
        assert res.exit_code == 2 and "Traceback" not in res.output and "sha256" in res.stderr, res.output
    npy.unlink()
    res = runner.invoke(cli, ["merge", *map(str, parts), "-f", "json"])
    assert res.exit_code == 2 and "missing" in res.stderr
    npy.write_bytes(good)
    doc = json.loads(parts[1].read_text())
    doc["set_features"]["counts"][0] += 1
    parts[1].write_text(json.dumps(doc))
    res = runner.invoke(cli, ["merge", *map(str, parts), "-f", "json"])
    assert res.exit_code == 2 and ("counts" in res.stderr or "samples" in res.stderr), res.output
    # a file that matches its recorded sha256 but not its shape/dtype: the npy header is checked
    import hashlib
    doc["set_features"]["counts"][0] -= 1
    arr = np.zeros((2, doc["set_features"]["samples"], 64), dtype=np.float32)
    with npy.open("wb") as fh:
        np.save(fh, arr)
    doc["set_features"]["sha256"] = hashlib.sha256(npy.read_bytes()).hexdigest()
    parts[1].write_text(json.dumps(doc))
    res = runner.invoke(cli, ["merge", *map(str, parts), "-f", "json"])
    assert res.exit_code == 2 and "expected float64" in res.stderr, res.output


def test_tradeoff_plane_of_psnr_and_fid(fid_env, tmp_path):
    """Three "models" (a light blur, the bundled restorations, a heavy blur) on the plane of PSNR
    (distortion, higher is better) and FID (perception, lower is better)."""
    from PIL import Image, ImageFilter

    runner = CliRunner()
    docs = []
    for name, radius in (("light", 0.6), ("bundled", None), ("blur", 4)):
        folder = SAMPLES / "restored"
        if radius is not None:
            folder = tmp_path / name
            folder.mkdir()
            for p in (SAMPLES / "gt").glob("*.png"):
                Image.open(p).filter(ImageFilter.GaussianBlur(radius)).save(folder / p.name)
        out = tmp_path / f"{name}.json"
        res = runner.invoke(cli, ["score", str(folder), str(SAMPLES / "gt"), "--metrics", "psnr,fid",
                                  "--fid-dims", "64", "-f", "json", "-o", str(out)])
        assert res.exit_code == 0, res.output
        docs.append(out)
    png = tmp_path / "plane.png"
    res = runner.invoke(cli, ["tradeoff", *map(str, docs), "--x", "psnr", "--y", "fid", "--plot", str(png), "-f", "json"])
    assert res.exit_code == 0, res.output
    r = validate("plane", res.stdout)
    assert "Warning:" in res.stderr and "inception" in res.stderr  # the random weights, named
    assert {w["net"] for w in r["unofficial_weights"]} >= {"vgg19", "inception"}
    assert r["kind"] == "plane" and r["x"]["higher_is_better"] and not r["y"]["higher_is_better"]
    assert (r["x"]["kind"], r["y"]["kind"]) == ("distortion", "perception")
    runs = {run["name"]: run for run in r["runs"]}
    fids = {n: json.loads((tmp_path / f"{n}.json").read_text())["summary"]["sets"]["fid"] for n in runs}
    assert all(runs[n]["y"] == fids[n] for n in runs)
    for n, run in runs.items():  # domination recomputed by hand: x higher is better, y lower
        beaten = [m for m, o in runs.items() if m != n and o["x"] >= run["x"] and o["y"] <= run["y"]
                  and (o["x"], o["y"]) != (run["x"], run["y"])]
        assert run["pareto"] == (not beaten)
        assert sorted(run["dominates"]) == sorted(m for m, o in runs.items() if n in [
            k for k, q in runs.items() if k != m and q["x"] >= o["x"] and q["y"] <= o["y"]
            and (q["x"], q["y"]) != (o["x"], o["y"]) and k == n])
    assert runs["light"]["x"] > runs["blur"]["x"]  # the light blur has the higher PSNR
    assert png.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"
    res = runner.invoke(cli, ["tradeoff", *map(str, docs), "--x", "psnr"])
    assert res.exit_code == 2 and "--x and --y" in res.stderr
    res = runner.invoke(cli, ["tradeoff", *map(str, docs), "--x", "lpips", "--y", "fid"])
    assert res.exit_code == 2 and "--metrics lpips" in res.stderr


def test_compare_shows_both_set_values(fid_env, tmp_path):
    runner = CliRunner()
    docs = []
    for name, folder in (("a", SAMPLES / "gt"), ("b", SAMPLES / "restored")):
        out = tmp_path / f"{name}.json"
        res = runner.invoke(cli, ["score", str(folder), str(SAMPLES / "gt"), "--metrics", "fid,kid", "--fid-dims", "64",
                                  "-f", "json", "-o", str(out)])
        assert res.exit_code == 0, res.output
        docs.append(out)
    res = runner.invoke(cli, ["compare", *map(str, docs), "-f", "json"])
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    sa, sb = (json.loads(d.read_text())["summary"]["sets"] for d in docs)
    e = r["sets"]["fid"]
    assert (e["a"], e["b"], e["diff"]) == (sa["fid"], sb["fid"], sb["fid"] - sa["fid"])
    assert e["b_better"] is (sb["fid"] < sa["fid"]) and "kid" in r["sets"]
    import jsonschema
    jsonschema.validate(r, json.loads((Path(__file__).resolve().parents[1] / "hlcli/schema/compare.schema.json").read_text()))
    res = runner.invoke(cli, ["compare", *map(str, docs)])
    assert res.exit_code == 0 and "fid (set, lower is better)" in res.stdout.replace("\n", " ")


# -- the set values in every view of a run (issue #25: "JSON/CSV/Markdown/table summaries of the
# run and of each group; the report's summary") ------------------------------------------------

def _render(run, fmt, **kw):
    import io

    from hlcli.render.score import write_score

    out = io.StringIO()
    write_score(run, fmt, out, **kw)
    return out.getvalue()


def test_table_and_markdown_show_set_values_per_run_and_group(fid_run):
    run, _ = fid_run
    summ = run.summary()
    fid_all, fid_a = summ["sets"]["fid"], summ["groups"]["A"]["sets"]["fid"]
    kid_b = summ["groups"]["B"]["sets"]
    table = _render(run, "table", summary_only=True)
    block = table[table.index("set metrics: restored set vs ground-truth set, 64 Inception features"):
                  table.index("summary by group")]
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]]
            for line in block.splitlines() if line.startswith("│")}
    assert rows["all pairs"] == ["4 (small)", f"{fid_all:.4f}", rows["all pairs"][2]]  # FID: the registry's 4 decimals
    assert rows["A"][:2] == ["2 (small)", f"{fid_a:.4f}"] and set(rows) == {"all pairs", "A", "B"}
    assert rows["B"][2].endswith(" ± 0") and float(rows["B"][2].split(" ± ")[0]) == pytest.approx(kid_b["kid"], rel=1e-3)
    assert "FID↓" in block and "KID↓" in block  # direction from the registry
    assert block.count("note:") == 3 and "note: A: FID over 2 images" in block  # the small-set note, per set
    md = _render(run, "markdown")
    assert "### Set metrics" in md and f"| all pairs | 4 (small) | {fid_all:.4f} |" in md
    group_part = md[md.index("### By group"):]
    assert "#### Set metrics by group" in group_part and f"| `A` | 2 (small) | {fid_a:.4f} |" in group_part
    assert "> **Note** (`B`): FID over 2 images" in group_part


def test_summary_csv_and_jsonl_have_a_row_per_set_metric(fid_run):
    import csv
    import io

    from hlcli.render.score import JsonlStream
    from tests.schemas import validate_jsonl

    run, _ = fid_run
    summ = run.summary()
    rows = list(csv.DictReader(io.StringIO(_render(run, "csv", summary_only=True))))
    sets = {(r["group"], r["metric"]): r for r in rows if r["metric"] in ("fid", "kid")}
    assert set(sets) == {(g, m) for g in ("", "A", "B") for m in ("fid", "kid")}
    kid_a = summ["groups"]["A"]["sets"]
    assert sets[("A", "kid")]["count"] == "2" and float(sets[("A", "kid")]["mean"]) == kid_a["kid"]
    assert float(sets[("A", "kid")]["std"]) == kid_a["kid_std"] and sets[("A", "kid")]["median"] == ""
    assert float(sets[("", "fid")]["mean"]) == summ["sets"]["fid"] and sets[("", "fid")]["std"] == ""
    assert [r["metric"] for r in rows if r["group"] == ""][-2:] == ["fid", "kid"]  # after the pair metrics
    out = io.StringIO()
    stream = JsonlStream(out, summary_only=True)
    stream.header(run)
    stream.summary(run)
    lines = validate_jsonl(out.getvalue())  # every line against #/$defs/jsonl_line
    metric_lines = {(x.get("group", ""), x["metric"]): x for x in lines if x["type"] == "metric"}
    assert metric_lines[("B", "fid")]["mean"] == summ["groups"]["B"]["sets"]["fid"]
    assert metric_lines[("", "kid")]["count"] == 4 and metric_lines[("", "kid")]["std"] == summ["sets"]["kid_std"]
    assert "fid" not in _render(run, "csv").splitlines()[0].split(",")  # per-pair CSV: no set column


def test_fid_differences_is_the_one_comparison_of_baseline_and_table():
    """One comparison of FID/KID settings for --baseline and hlcli table: dims, resize, patches,
    and the Inception weights' sha256 where both runs record one (a run's settings before its
    weights are loaded have none yet)."""
    from hlcli.runs.documents import fid_differences

    a = {"fid": {"dims": 64, "resize": "clean", "patches": None, "weights": {"sha256": "a" * 64}}}
    b = {"fid": {"dims": 192, "resize": "clean", "patches": None, "weights": {"sha256": "b" * 64}}}
    assert fid_differences(a, b, ("baseline", "this run")) == [
        "FID/KID dims 64 (baseline) vs 192 (this run)",
        f"FID/KID Inception sha256 {'a' * 64} (baseline) vs {'b' * 64} (this run)"]
    before_load = {"fid": {"dims": 64, "resize": "clean", "patches": None}}
    assert fid_differences(a, before_load, ("baseline", "this run")) == []
    assert fid_differences(a, {}, ("baseline", "this run")) == []  # no set metric in one run
