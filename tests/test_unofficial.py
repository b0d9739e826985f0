"""One rule for every network's weights (issue 22): VGG-19 of the hybrid and the LPIPS backbones
are flagged alike when they are not torchvision's official ImageNet checkpoints — in the score
table, Markdown, the HTML report, the sweep table and the analyses (`table`, `compare`,
`tradeoff`, `calibrate`: JSON field and a stderr line) — a file named by a network's environment
variable is recorded as ``"env"`` for every network, and ``hlcli info`` lists every network."""

from __future__ import annotations

import io
import json

import pytest
from click.testing import CliRunner

from hlcli.cli import cli
from hlcli.runs.documents import unofficial_networks

from . import synthetic
from .conftest import degrade, save, textured

pytest.importorskip("torchmetrics")  # the LPIPS heads


def run(*args):
    return CliRunner().invoke(cli, [*map(str, args)])


@pytest.fixture(scope="module")
def scored(tmp_path_factory, weights_file, backbone_files):
    """A run with --metrics lpips, every network named through its environment variable."""
    root = tmp_path_factory.mktemp("unofficial")
    for i in range(2):
        gt = textured(32, 32, seed=i)
        save(root / "g" / f"p{i}.png", gt)
        save(root / "r" / f"p{i}.png", degrade(gt, seed=i))
    env = {"HLCLI_WEIGHTS": str(weights_file), "HLCLI_LPIPS_WEIGHTS": str(backbone_files["alexnet"])}
    runner = CliRunner(env=env)
    base = ["score", str(root / "r"), str(root / "g"), "--metrics", "lpips", "--layers", "conv1_2", "--workers", "0"]
    r = runner.invoke(cli, [*base, "-f", "json", "-o", str(root / "run.json")])
    assert r.exit_code == 0, r.stderr
    outputs = {fmt: runner.invoke(cli, [*base, "-f", fmt]) for fmt in ("table", "markdown")}
    return root, json.loads((root / "run.json").read_text()), outputs


def test_an_environment_variable_is_recorded_as_env_for_every_network(scored):
    _, doc, _ = scored
    assert doc["settings"]["weights"]["source"] == "env"
    [lpips] = doc["settings"]["lpips_networks"].values()
    assert lpips["backbone"]["source"] == "env"  # was "option": Click read the variable as the option


def test_one_function_lists_every_unofficial_network(scored):
    _, doc, _ = scored
    nets = unofficial_networks(doc["settings"])
    assert [(n["net"], n["source"]) for n in nets] == [("vgg19", "$HLCLI_WEIGHTS"), ("alexnet", "$HLCLI_LPIPS_WEIGHTS")]
    official = json.loads(json.dumps(doc["settings"]))
    for rec in (official["weights"], *(r["backbone"] for r in official["lpips_networks"].values())):
        rec["official_imagenet1k_v1"] = True
    assert unofficial_networks(official) == []


def test_score_views_flag_the_lpips_backbone(scored, tmp_path):
    root, _, outputs = scored
    table = " ".join(outputs["table"].stdout.split())
    assert "not the official ImageNet VGG-19" in table and "not the official ImageNet AlexNet" in table
    assert "> **Warning**: the weights are not the official ImageNet AlexNet" in outputs["markdown"].stdout
    out = tmp_path / "r.html"
    r = run("report", root / "run.json", "-o", out, "--thumb-size", "16")
    assert r.exit_code == 0, r.stderr
    page = out.read_text()
    assert 'id="weights-warning"' in page and 'id="weights-warning-2"' in page
    assert "not the official ImageNet AlexNet" in page


@pytest.mark.parametrize("command", ["table", "compare", "tradeoff", "calibrate"])
def test_analyses_flag_every_unofficial_network(scored, tmp_path, command):
    root, doc, _ = scored
    second = tmp_path / "b.json"
    second.write_text(json.dumps({**doc, "settings": {**doc["settings"], "lambda": 0.1}}))
    runs = [root / "run.json"] if command == "calibrate" else [root / "run.json", second]
    extra = ["--allow-settings-mismatch"] if command in ("table", "compare") else []
    r = run(command, *runs, *extra, "-f", "json")
    assert r.exit_code == 0, r.stderr
    flagged = [(n["run"], n["net"]) for n in json.loads(r.stdout)["unofficial_weights"]]
    assert {net for _, net in flagged} == {"vgg19", "alexnet"} and len(flagged) == 2 * len(runs)
    warnings = [ln for ln in r.stderr.splitlines() if ln.startswith("Warning:")]
    assert len(warnings) == 2 * len(runs) and any("official ImageNet AlexNet" in w for w in warnings), r.stderr


def test_sweep_table_flags_the_weights():
    from hlcli.render.sweep import write_sweep_table

    run_ = synthetic.run([synthetic.pair("a", 0.5)])  # synthetic weights are not the official ones
    out = io.StringIO()
    write_sweep_table({"m1": run_, "m2": run_}, out, terminal=False, failed={})
    assert "not the official ImageNet VGG-19" in " ".join(out.getvalue().split())


def test_info_lists_every_network(backbone_files, monkeypatch):
    monkeypatch.setenv("HLCLI_LPIPS_WEIGHTS", str(backbone_files["alexnet"]))
    r = run("info", "-f", "json")
    assert r.exit_code == 0, r.stderr
    lpips = json.loads(r.stdout)["lpips_weights"]
    assert set(lpips) == {"alexnet", "vgg16"}
    assert lpips["alexnet"]["would_use"]["source"] == "env"
    assert lpips["alexnet"]["would_use"]["official_imagenet1k_v1"] is False
    text = run("info").stdout
    assert "alexnet weights" in text and "vgg16 weights" in text and "NOT the official ImageNet AlexNet" in text


def test_every_network_names_the_numbers_it_changes():
    """A new network (or data file) cannot fall back to the vague 'its numbers': the warning names
    the metrics, and a run with FID's random Inception says FID and KID (found by the plane's
    schema test: the Inception was missing from the rule)."""
    from hlcli.nets.datafiles import SPECS
    from hlcli.nets.netspecs import NETS
    from hlcli.render.common import AFFECTED

    assert set(NETS) | set(SPECS) <= set(AFFECTED)
    settings = {"fid": {"dims": 64, "weights": {"path": "i.pth", "source": "env", "sha256": "ab" * 32,
                                                "official": False}}}
    (net,) = unofficial_networks(settings)
    assert net["net"] == "inception" and net["source"] == "$HLCLI_INCEPTION_WEIGHTS"
    settings["fid"]["weights"]["official"] = True
    assert unofficial_networks(settings) == []
