"""hlcli calibrate: the make-up of the mean hybrid and the λ for a share (hlcli.analysis.calibrate), checked
against brute force (bisection on the share), and the command end to end on the sample photos."""

from __future__ import annotations

import doctest
import io
import json

import numpy as np
import pytest
from click.testing import CliRunner

import hlcli
import hlcli.analysis.calibrate
from hlcli.cli import cli
from hlcli.errors import InputError
from hlcli.render.calibrate import write_calibrate
from tests import synthetic
from tests.conftest import SAMPLES
from tests.lambda_runs import score, validate

LAYERS = (("conv3_3", 1.0), ("conv4_3", 0.5))


def random_doc(rng, n=12, lam=0.05, zero_pairs=0):
    weights = dict(LAYERS)
    pairs = []
    for i in range(n):
        if i < zero_pairs:  # an identical pair: every metric 0
            layers = {"conv3_3": 0.0, "conv4_3": 0.0}
            l1 = 0.0
        else:
            layers = {"conv3_3": float(rng.uniform(0.001, 0.05)), "conv4_3": float(rng.uniform(0.0001, 0.01))}
            l1 = float(rng.uniform(0.005, 0.1))
        pairs.append(synthetic.pair(f"p{i:02d}", l1, layers, lam=lam, weights=weights))
    return synthetic.document(pairs, lam=lam, layers=LAYERS)


def share_at(doc, lam, weights=None):
    """Perceptual share of the mean hybrid at ``lam``, written out plainly."""
    weights = weights or {layer["name"]: layer["weight"] for layer in doc["settings"]["layers"]}
    a = np.mean([p["l1"] for p in doc["pairs"]])
    p = np.mean([sum(w * q["layers"][n] for n, w in weights.items()) for q in doc["pairs"]])
    return lam * p / (a + lam * p)


def bisect_lambda(doc, share):
    """The λ at which the perceptual share of the mean hybrid is ``share``, by bisection."""
    unit = share_at(doc, 1.0)  # the share is λp/(a + λp) = λr/(1 + λr) with r = p/a = unit/(1 - unit)
    r = unit / (1 - unit)

    def f(lam):
        return lam * r / (1 + lam * r)

    lo, hi = 0.0, 1.0
    while f(hi) < share:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if f(mid) < share else (lo, mid)
    return (lo + hi) / 2


def test_lambda_matches_bisection_on_random_runs():
    rng = np.random.default_rng(5)
    for trial in range(25):
        doc = random_doc(rng, n=int(rng.integers(1, 30)), lam=float(rng.uniform(0, 1)), zero_pairs=trial % 3)
        share = float(rng.uniform(0.01, 0.99))
        c = validate("calibrate", hlcli.calibrate_lambda(doc, share=share))
        assert c["lambda"] == pytest.approx(bisect_lambda(doc, share), rel=1e-9)
        assert c["calibrated_terms"]["perceptual"]["share"] == pytest.approx(share, rel=1e-12)
        assert c["terms"]["perceptual"]["share"] == pytest.approx(share_at(doc, c["current_lambda"]), rel=1e-12)
        for terms in (c["terms"], c["calibrated_terms"]):
            assert terms["l1"]["share"] + terms["perceptual"]["share"] == pytest.approx(1.0, rel=1e-12)
            assert sum(t["value"] for t in terms["layers"].values()) == pytest.approx(terms["perceptual"]["value"],
                                                                                     rel=1e-12)
            assert terms["l1"]["value"] + terms["perceptual"]["value"] == pytest.approx(terms["hybrid"]["value"],
                                                                                       rel=1e-12)
        assert c["options"] == f"--lambda {c['lambda']:.6g}" and c["layer_weights"] is None


def test_pair_share_distribution():
    rng = np.random.default_rng(2)
    doc = random_doc(rng, n=20, lam=0.3, zero_pairs=2)
    c = hlcli.calibrate_lambda(doc, share=0.25)
    for which, lam in (("current", 0.3), ("calibrated", c["lambda"])):
        shares = [lam * p["perceptual"] / (p["l1"] + lam * p["perceptual"]) for p in doc["pairs"] if p["l1"] > 0]
        d = c["pair_share"][which]
        assert (d["count"], d["undefined"], d["lambda"]) == (18, 2, lam)
        for key, q in (("median", 50), ("p5", 5), ("p95", 95)):
            assert d[key] == pytest.approx(float(np.percentile(shares, q)), rel=1e-12)


def test_balanced_layer_weights():
    doc = random_doc(np.random.default_rng(3), n=10)
    c = validate("calibrate", hlcli.calibrate_lambda(doc, share=0.4, balance_layers=True))
    w = c["layer_weights"]["weights"]
    means = {n: np.mean([p["layers"][n] for p in doc["pairs"]]) for n in w}
    p = np.mean([p["perceptual"] for p in doc["pairs"]])
    assert sum(w[n] * means[n] for n in w) == pytest.approx(p, rel=1e-12)  # the mean perceptual is kept
    contributions = [t["value"] for t in c["calibrated_terms"]["layers"].values()]
    assert contributions == pytest.approx([contributions[0]] * 2, rel=1e-12)
    assert c["calibrated_terms"]["perceptual"]["share"] == pytest.approx(0.4, rel=1e-12)
    assert c["pair_share"]["calibrated"]["median"] != c["pair_share"]["current"]["median"]
    assert share_at(doc, c["lambda"], w) == pytest.approx(0.4, rel=1e-12)  # λ still gives the share
    assert c["options"] == f"--lambda {c['lambda']:.6g} --layer-weights {w['conv3_3']:.6g},{w['conv4_3']:.6g}"


def test_known_values_and_docstring():
    doc = synthetic.document([synthetic.pair("a", 0.02, {"conv3_3": 0.4, "conv4_3": 0.1})], lam=0.05)
    c = hlcli.calibrate_lambda(doc, share=0.5)
    assert c["lambda"] == pytest.approx(0.04, rel=1e-15)  # 0.5/0.5 · 0.02/0.5
    assert c["terms"]["layers"]["conv3_3"] == {"weight": 1.0, "mean": 0.4, "value": pytest.approx(0.02),
                                               "share": pytest.approx(0.02 / 0.045)}
    result = doctest.testmod(hlcli.analysis.calibrate, extraglobs={"hlcli": hlcli})
    assert result.failed == 0 and result.attempted > 0


def test_cannot_calibrate():
    zero = synthetic.document([synthetic.pair("a", 0.0, {"conv3_3": 0.0, "conv4_3": 0.0})])
    with pytest.raises(InputError, match="mean perceptual is 0") as info:
        hlcli.calibrate_lambda(zero)
    assert info.value.exit_code == 2
    dead_layer = synthetic.document([synthetic.pair("a", 0.1, {"conv3_3": 0.2, "conv4_3": 0.0})])
    hlcli.calibrate_lambda(dead_layer)  # fine without balancing
    with pytest.raises(InputError, match="layer conv4_3 has mean perceptual 0"):
        hlcli.calibrate_lambda(dead_layer, balance_layers=True)
    for share in (0, 1, -0.5, 1.5):
        with pytest.raises(InputError, match="between 0 and 1"):
            hlcli.calibrate_lambda(dead_layer, share=share)
    with pytest.raises(InputError, match="no scored pairs"):
        hlcli.calibrate_lambda(synthetic.document([]))


def test_renderings():
    c = hlcli.calibrate_lambda(random_doc(np.random.default_rng(4), zero_pairs=1), share=0.3, balance_layers=True)
    out = io.StringIO()
    write_calibrate(c, "markdown", out)
    md = out.getvalue()
    assert md.startswith("## hlcli calibrate\n") and "| λ·w·conv4_3 |" in md and "| hybrid |" in md
    assert "| 30% |" in md and "(1 pair scores 0 and has no share)" in md
    assert f"`hlcli score RESTORED GT {c['options']}`" in md
    out = io.StringIO()
    write_calibrate(c, "table", out)
    text = out.getvalue()
    assert "λ·w·conv3_3" in text and "0.5 → " in text and "30%" in text and "\x1b[" not in text


@pytest.mark.parametrize("columns", [40, 80, 120])
def test_the_command_to_paste_is_one_line_at_any_width(columns, monkeypatch):
    """"score with: hlcli score … --lambda 5.85254 --layer-weights 0.803056,1.32493" is pasted as
    it is: one line on a terminal of any width, never wrapped by Rich; the sentences above it
    wrap between words only."""
    monkeypatch.setenv("COLUMNS", str(columns))
    c = hlcli.calibrate_lambda(random_doc(np.random.default_rng(4)), share=0.3, balance_layers=True)
    out = io.StringIO()
    write_calibrate(c, "table", out, terminal=True)
    import re

    lines = [line.rstrip() for line in re.sub(r"\x1b\[[0-9;]*m", "", out.getvalue()).splitlines()]
    command = f"score with: hlcli score RESTORED GT {c['options']}"
    assert len(command) > 40 and "--layer-weights" in command
    assert command in lines, lines[-3:]


# -- CLI on the sample photos ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def run(tmp_path_factory, weights_file):
    root = tmp_path_factory.mktemp("calibrate")
    return score(SAMPLES / "restored", SAMPLES / "gt", root / "samples.json", weights_file)


def test_cli_calibrate_on_the_samples(run, tmp_path):
    runner = CliRunner()
    res = runner.invoke(cli, ["calibrate", str(run), "--share", "0.2", "-f", "json"])
    assert res.exit_code == 0, res.stderr
    c = validate("calibrate", res.stdout)
    doc = json.loads(run.read_text())
    assert c["current_lambda"] == 0.05 and c["share"] == 0.2 and c["run"]["pairs"] == len(doc["pairs"]) == 4
    assert c["lambda"] == pytest.approx(bisect_lambda(doc, 0.2), rel=1e-9)
    assert c["terms"]["hybrid"]["value"] == pytest.approx(doc["summary"]["metrics"]["hybrid"]["mean"], rel=1e-12)
    res = runner.invoke(cli, ["calibrate", str(run), "--balance-layers"])
    assert res.exit_code == 0 and "λ·w·conv4_3" in res.stdout and "--layer-weights" in res.stdout
    res = runner.invoke(cli, ["calibrate", str(run), "-o", str(tmp_path / "c.md")])
    assert res.exit_code == 0 and (tmp_path / "c.md").read_text().startswith("## hlcli calibrate")
    res = runner.invoke(cli, ["calibrate", str(run), "-o", str(tmp_path / "c.json")])
    assert res.exit_code == 0 and res.stdout == ""
    assert validate("calibrate", (tmp_path / "c.json").read_text())["share"] == 0.5


def test_cli_calibrate_refusals(run, tmp_path):
    runner = CliRunner()
    for share in ("0", "1", "abc"):
        assert runner.invoke(cli, ["calibrate", str(run), "--share", share]).exit_code == 2
    doc = json.loads(run.read_text())
    for p in doc["pairs"]:
        p.update(l1=0.0, perceptual=0.0, hybrid=0.0, layers={n: 0.0 for n in p["layers"]})
    zero = tmp_path / "zero.json"
    zero.write_text(json.dumps(doc))
    res = runner.invoke(cli, ["calibrate", str(zero)])
    assert res.exit_code == 2 and "mean perceptual is 0" in res.stderr and "zero.json" in res.stderr
    assert res.stdout == "" and res.stderr.count("\n") == 1
    doc = json.loads(run.read_text())
    del doc["pairs"]
    doc["summary_only"] = True
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps(doc))
    res = runner.invoke(cli, ["calibrate", str(summary)])
    assert res.exit_code == 2 and "summary.json" in res.stderr and "--summary-only" in res.stderr
    not_json = tmp_path / "notes.json"
    not_json.write_text("lambda = 0.1\n")
    res = runner.invoke(cli, ["calibrate", str(not_json)])
    assert res.exit_code == 2 and "notes.json" in res.stderr and "not valid JSON" in res.stderr
