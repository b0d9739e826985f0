"""hlcli tradeoff: Pareto front and best-λ intervals (hlcli.analysis.tradeoff), checked against brute force,
and the command end to end on real runs."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from click.testing import CliRunner

import hlcli
from hlcli.cli import cli
from hlcli.errors import InputError
from hlcli.render.tradeoff import CSV_HEADER, write_tradeoff
from hlcli.analysis.tradeoff import best_intervals, pareto_flags
from tests import synthetic
from tests.lambda_runs import blur_copy, noise_copy, sample_crops, score, validate, with_lambda


# -- brute force ----------------------------------------------------------------------------------

def brute_winners(points, names, grid):
    """At each λ of ``grid``, the run with the lowest a + λ·p (float64), ties by name."""
    order = sorted(range(len(points)), key=lambda i: names[i])  # argmin takes the first of equal values
    a = np.array([points[i][0] for i in order])
    p = np.array([points[i][1] for i in order])
    return [order[k] for k in np.argmin(a[None, :] + grid[:, None] * p[None, :], axis=1)]


def brute_pareto(points):
    arr = np.array(points)
    le = (arr[None, :, 0] <= arr[:, None, 0]) & (arr[None, :, 1] <= arr[:, None, 1])
    lt = (arr[None, :, 0] < arr[:, None, 0]) | (arr[None, :, 1] < arr[:, None, 1])
    return list(~np.any(le & lt, axis=1))  # [i, j]: j dominates i


def check_against_brute_force(points, names):
    intervals, ties = best_intervals(points, names)
    ends = sorted({e for iv in intervals if iv for e in iv if e is not None})
    top = 2 * (ends[-1] if ends else 1.0) + 1.0
    grid = np.concatenate([np.linspace(0, top, 4001), np.geomspace(1e-6, 1e6, 400)])
    near = np.zeros(len(grid), dtype=bool)
    for e in ends:  # too close to a crossing for float64 to tell
        near |= np.abs(grid - e) <= 1e-9 * max(1.0, e)
    grid = grid[~near]
    seen = set()
    for lam, w in zip(grid, brute_winners(points, names, grid)):
        seen.add(w)
        holders = [i for i, iv in enumerate(intervals) if iv and iv[0] <= lam and (iv[1] is None or lam < iv[1])]
        assert holders == [w], (points, names, lam, intervals)
    for i, iv in enumerate(intervals):
        if iv is None:
            assert i not in seen
        else:
            assert iv[1] is None or iv[0] < iv[1]
            assert pareto_flags(points)[i], "a run best on an interval cannot be dominated"
    # consecutive intervals meet where the two lines cross (exactly, up to float64 rounding)
    by_start = sorted((iv[0], i) for i, iv in enumerate(intervals) if iv)
    assert by_start[0][0] == 0.0
    for (lo1, i), (lo2, j) in zip(by_start, by_start[1:]):
        assert intervals[i][1] == lo2
        fi, fj = points[i][0] + lo2 * points[i][1], points[j][0] + lo2 * points[j][1]
        assert fi == pytest.approx(fj, rel=1e-12, abs=1e-15)
    assert intervals[by_start[-1][1]][1] is None
    assert pareto_flags(points) == brute_pareto(points)
    return intervals, ties


def test_intervals_and_pareto_match_brute_force_on_random_runs():
    rng = np.random.default_rng(11)
    for trial in range(150):
        k = int(rng.integers(2, 7))
        if trial % 3 == 0:  # small integer grid: many exact ties, parallel lines, shared crossings
            points = [(float(rng.integers(0, 4)), float(rng.integers(0, 4))) for _ in range(k)]
        else:
            points = [(float(rng.uniform(0.01, 0.1)), float(rng.uniform(0.001, 0.05))) for _ in range(k)]
        names = [f"m{int(i)}" for i in rng.permutation(k)]
        check_against_brute_force(points, names)


def test_known_envelope_dominated_and_never_best():
    # sharp: low perceptual, high L1; smooth: low L1, high perceptual; mid: on the front but never best;
    # worse: dominated by smooth
    points = [(3.0, 0.0), (0.0, 2.0), (1.6, 1.6), (0.5, 2.5)]
    names = ["sharp", "smooth", "mid", "worse"]
    intervals, ties = check_against_brute_force(points, names)
    assert intervals == [[1.5, None], [0.0, 1.5], None, None] and ties == []
    assert pareto_flags(points) == [True, True, True, False]


def test_ties_are_broken_by_name_and_reported():
    points = [(1.0, 1.0), (1.0, 1.0), (2.0, 0.0)]
    intervals, ties = check_against_brute_force(points, ["b", "a", "c"])
    assert intervals == [None, [0.0, 1.0], [1.0, None]] and ties == [["a", "b"]]
    # equal L1, different perceptual: the flatter line is best from λ = 0 on, no tie
    assert best_intervals([(1.0, 2.0), (1.0, 1.0)], ["a", "b"]) == ([None, [0.0, None]], [])
    # three lines through one point: the middle slope is never best
    intervals, _ = check_against_brute_force([(0.0, 2.0), (1.0, 1.0), (2.0, 0.0)], ["x", "y", "z"])
    assert intervals == [[0.0, 1.0], None, [1.0, None]]


def test_tradeoff_document_on_synthetic_runs():
    # perceptual = 0.75·l1 in synthetic pairs: build runs with chosen layer values instead
    def doc(values, lam=0.05):
        return synthetic.document([synthetic.pair(k, l1, {"conv3_3": p, "conv4_3": 0.0}, lam=lam)
                                   for k, (l1, p) in values.items()], lam=lam)

    a = doc({"x": (1.0, 0.0), "y": (3.0, 0.0), "only_a": (9.0, 9.0)})          # means (2, 0)
    b = doc({"x": (0.0, 1.0), "y": (0.0, 3.0)}, lam=0.5)                        # means (0, 2)
    t = validate("tradeoff", hlcli.tradeoff_runs([a, b], names=["A", "B"]))
    assert t["pairs"] == {"common": 2, "only_in": {"A": ["only_a"]}}
    assert [(r["name"], r["l1"], r["perceptual"], r["pareto"], r["best_lambda"]) for r in t["runs"]] == [
        ("A", 2.0, 0.0, True, [1.0, None]), ("B", 0.0, 2.0, True, [0.0, 1.0])]
    assert t["lambda"] is None and t["best"] is None and t["runs"][0]["hybrid"] is None  # λ differ
    t = validate("tradeoff", hlcli.tradeoff_runs([a, b], names=["A", "B"], lam=2.0, per_pair=True))
    assert t["best"] == "A" and [r["hybrid"] for r in t["runs"]] == [2.0, 4.0]
    pp = {e["lambda"]: e for e in t["per_pair"]}
    assert sorted(pp) == [0.0, 0.05, 0.5, 1.0]
    assert pp[0.05]["best"] == {"A": 0.0, "B": 1.0} and pp[0.5]["best"] == {"A": 0.0, "B": 1.0}
    assert pp[1.0]["best"] == {"A": 1.0, "B": 0.0} and pp[1.0]["ties"] == 2  # both pairs tie at λ = 1: A by name
    assert pp[0.05]["why"] == ["a run's λ"] and pp[0.0]["why"] == ["B: interval starts"]
    assert pp[1.0]["why"] == ["A: interval starts", "B: interval ends"]


def test_refusals():
    a = synthetic.document({"x": 1.0})
    with pytest.raises(InputError, match="no pair in common"):
        hlcli.tradeoff_runs([a, synthetic.document({"y": 1.0})])
    with pytest.raises(InputError, match="two runs are named 'm'"):
        hlcli.tradeoff_runs([a, a], names=["m", "m"])
    other = synthetic.document({"x": 1.0}, layers=(("conv3_3", 1.0), ("conv4_3", 2.0)), lam=0.3)
    with pytest.raises(InputError) as info:
        hlcli.tradeoff_runs([a, other])
    assert "conv4_3×2" in str(info.value) and "lambda" not in str(info.value)  # λ may differ, layers may not
    t = hlcli.tradeoff_runs([a, other], allow_settings_mismatch=True)
    assert len(t["settings_differences"]) == 1
    with pytest.raises(InputError, match="summary-only"):
        hlcli.tradeoff_runs([a, synthetic.run({"x": 1.0}).document(summary_only=True)])
    with pytest.raises(InputError):
        hlcli.tradeoff_runs([a, a], lam=-1.0)


def test_renderings():
    a = synthetic.document([synthetic.pair("x", 2.0, {"conv3_3": 0.0, "conv4_3": 0.0})])
    b = synthetic.document([synthetic.pair("x", 0.0, {"conv3_3": 1.0, "conv4_3": 1.0})])
    c = synthetic.document([synthetic.pair("x", 0.0, {"conv3_3": 1.0, "conv4_3": 1.0})])
    t = hlcli.tradeoff_runs([a, b, c], names=["a|1", "b", "c"], per_pair=True)
    out = io.StringIO()
    write_tradeoff(t, "markdown", out)
    md = out.getvalue()
    assert md.startswith("## hlcli tradeoff\n") and "| a\\|1 | 2 | 0 | 2 | yes | [1, ∞) |" in md
    assert "| b | 0 | 2 | 0.1 (best) | yes | [0, 1) |" in md and "| c | 0 | 2 | 0.1 | yes | never |" in md
    assert "tie (equal means, broken by name): b, c" in md and "### Share of pairs" in md
    out = io.StringIO()
    write_tradeoff(t, "csv", out)
    lines = out.getvalue().splitlines()
    assert lines[0] == ",".join(CSV_HEADER) and lines[1] == "a|1,,0.05,1,2.0,0.0,2.0,true,1.0,"
    out = io.StringIO()
    write_tradeoff(t, "table", out)
    assert "[1, ∞)" in out.getvalue() and "never" in out.getvalue() and "\x1b[" not in out.getvalue()


# -- CLI on real runs ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def runs(tmp_path_factory, weights_file):
    """Three models on crops of the sample photos: the samples' restorations, a stronger blur,
    and the ground truth with noise; and the first again at another λ."""
    root = tmp_path_factory.mktemp("tradeoff")
    restored, gt = sample_crops(root)
    a = score(restored, gt, root / "samples.json", weights_file)
    b = score(blur_copy(gt, root / "blur", 2.5), gt, root / "blur.json", weights_file)
    c = score(noise_copy(gt, root / "noise", 10.0), gt, root / "noise.json", weights_file)
    return {"samples": a, "blur": b, "noise": c, "samples_l2": with_lambda(a, 2.0, root / "samples_l2.json")}


def test_cli_tradeoff_on_real_runs(runs, tmp_path):
    paths = [str(runs[k]) for k in ("samples", "blur", "noise", "samples_l2")]
    res = CliRunner().invoke(cli, ["tradeoff", *paths, "-f", "json", "--per-pair"])
    assert res.exit_code == 0, res.stderr
    t = validate("tradeoff", res.stdout)
    assert [r["name"] for r in t["runs"]] == ["samples", "blur", "noise", "samples_l2"]
    assert t["pairs"]["common"] == 4 and t["lambda"] is None  # 0.05 and 2.0
    points = [(r["l1"], r["perceptual"]) for r in t["runs"]]
    intervals, ties = check_against_brute_force(points, [r["name"] for r in t["runs"]])
    assert [r["best_lambda"] for r in t["runs"]] == intervals and t["ties"] == ties == [["samples", "samples_l2"]]
    assert t["runs"][3]["best_lambda"] is None  # tied with "samples", which is first by name
    docs = [json.loads(runs[k].read_text()) for k in ("samples", "blur", "noise")]
    for r, doc in zip(t["runs"], docs):  # means over the pairs, from the score documents
        assert r["l1"] == pytest.approx(np.mean([p["l1"] for p in doc["pairs"]]), rel=1e-12)
        assert r["perceptual"] == pytest.approx(np.mean([p["perceptual"] for p in doc["pairs"]]), rel=1e-12)
    assert all(abs(sum(e["best"].values()) - 1) < 1e-12 for e in t["per_pair"])
    res = CliRunner().invoke(cli, ["tradeoff", *paths[:3], "--name", "A", "--name", "B", "-f", "csv"])
    assert res.exit_code == 0 and [line.split(",")[0] for line in res.stdout.splitlines()] == ["name", "A", "B", "noise"]
    res = CliRunner().invoke(cli, ["tradeoff", *paths[:3], "-o", str(tmp_path / "t.md")])
    assert res.exit_code == 0 and (tmp_path / "t.md").read_text().startswith("## hlcli tradeoff")


def test_cli_tradeoff_plot(runs, tmp_path):
    pytest.importorskip("matplotlib")
    paths = [str(runs[k]) for k in ("samples", "blur", "noise")]
    for ext, magic in ((".png", b"\x89PNG"), (".svg", b"<?xml")):
        res = CliRunner().invoke(cli, ["tradeoff", *paths, "--plot", str(tmp_path / f"t{ext}"), "-f", "json"])
        assert res.exit_code == 0, res.stderr
        assert (tmp_path / f"t{ext}").read_bytes().startswith(magic)
    svg = (tmp_path / "t.svg").read_text()
    assert all(name in svg for name in ("samples", "blur", "noise", "Pareto front", "iso-hybrid", "mean L1"))
    mixed = [*paths, str(runs["samples_l2"])]
    res = CliRunner().invoke(cli, ["tradeoff", *mixed, "--plot", str(tmp_path / "m.png")])
    assert res.exit_code == 2 and "--lambda" in res.stderr and not (tmp_path / "m.png").exists()
    res = CliRunner().invoke(cli, ["tradeoff", *mixed, "--plot", str(tmp_path / "m.png"), "--lambda", "0.1"])
    assert res.exit_code == 0 and (tmp_path / "m.png").exists()
    res = CliRunner().invoke(cli, ["tradeoff", *paths, "--plot", str(tmp_path / "t.gif")])
    assert res.exit_code == 2 and "t.gif" in res.stderr


def test_cli_plot_without_matplotlib_is_exit_3(runs, tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    res = CliRunner().invoke(cli, ["tradeoff", str(runs["samples"]), str(runs["blur"]), "--plot", str(tmp_path / "p.png")])
    assert res.exit_code == 3 and "pip install 'hlcli[plot]'" in res.stderr and res.stderr.count("\n") == 1


def test_cli_tradeoff_refusals(runs, tmp_path):
    runner = CliRunner()
    other = tmp_path / "weighted.json"
    doc = json.loads(runs["blur"].read_text())
    doc["settings"]["layers"][1]["weight"] = 2.0
    other.write_text(json.dumps(doc))
    res = runner.invoke(cli, ["tradeoff", str(runs["samples"]), str(other)])
    assert res.exit_code == 2 and "conv4_3×2" in res.stderr and "--allow-settings-mismatch" in res.stderr
    assert str(other) in res.stderr
    assert runner.invoke(cli, ["tradeoff", str(runs["samples"]), str(other), "--allow-settings-mismatch"]).exit_code == 0
    summary_only = tmp_path / "summary.json"
    doc = json.loads(runs["blur"].read_text())
    del doc["pairs"]
    doc["summary_only"] = True
    summary_only.write_text(json.dumps(doc))
    res = runner.invoke(cli, ["tradeoff", str(runs["samples"]), str(summary_only)])
    assert res.exit_code == 2 and "summary.json" in res.stderr and "--summary-only" in res.stderr
    broken = tmp_path / "broken.json"
    broken.write_text('{"tool": "hlcli"}')
    res = runner.invoke(cli, ["tradeoff", str(runs["samples"]), str(broken)])
    assert res.exit_code == 2 and "broken.json" in res.stderr and res.stderr.count("\n") == 1
    res = runner.invoke(cli, ["tradeoff", str(runs["samples"])])
    assert res.exit_code == 2 and "at least two runs" in res.stderr
    res = runner.invoke(cli, ["tradeoff", str(runs["samples"]), str(runs["blur"]), "--lambda", "-1"])
    assert res.exit_code == 2
