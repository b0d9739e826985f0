"""A bad output path or pixel budget costs nothing (issue 22 §3): every output path of every
command is checked before any work (exit 2 naming the path and the fix), a device is written in
place, and a pixel budget whose tiling would multiply the work is warned about or refused."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from hlcli.cli import cli

from .conftest import degrade, save, textured


def run(*args, env=None):
    return CliRunner(env=env).invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def tree(tmp_path_factory, weights_file):
    """Two tiny pairs, two stored runs and two shard parts, scored once."""
    root = tmp_path_factory.mktemp("outputs")
    for i, key in enumerate(["a", "b"]):
        gt = textured(24, 32, seed=i)
        save(root / "gt" / f"{key}.png", gt)
        save(root / "r" / f"{key}.png", degrade(gt, seed=i))
        save(root / "r2" / f"{key}.png", degrade(gt, seed=i + 5))
    common = ["score", root / "r", root / "gt", "--weights", weights_file, "--layers", "conv1_2", "--workers", "0",
              "-f", "json"]
    for name, extra in [("a", []), ("b", ["--lambda", "0.1"]), ("part0", ["--shard", "0/2"]),
                        ("part1", ["--shard", "1/2"])]:
        r = run(*common, *extra, "-o", root / f"{name}.json")
        assert r.exit_code == 0, r.output
    return root


@pytest.fixture
def no_scoring(monkeypatch):
    """Fail the test if a run starts: the output check must come first."""
    import hlcli.engine.scoring

    def boom(*a, **k):
        raise AssertionError("scoring started before the output path was checked")

    monkeypatch.setattr(hlcli.engine.scoring, "load_engine", boom)
    monkeypatch.setattr(hlcli.engine.scoring, "plan_pairs", boom)


def _commands(root: Path, weights: Path, out: str) -> list[list]:
    """Every command with an output path, the path given as ``out``."""
    score = ["score", root / "r", root / "gt", "--weights", weights, "--layers", "conv1_2"]
    return [
        [*score, "-o", out], [*score, "--report", out], [*score, "-f", "json", "--report", out],
        ["table", root / "a.json", root / "b.json", "--allow-settings-mismatch", "-o", out],
        ["compare", root / "a.json", root / "b.json", "--allow-settings-mismatch", "-o", out],
        ["report", root / "a.json", "-o", out], ["calibrate", root / "a.json", "-o", out],
        ["merge", root / "part0.json", root / "part1.json", "-o", out],
        [*score, "--junit", out], ["merge", root / "part0.json", root / "part1.json", "--junit", out],
        ["tradeoff", root / "a.json", root / "b.json", "-o", out],
        ["tradeoff", root / "a.json", root / "b.json", "--plot", out],
        ["info", "-o", out],
    ]


@pytest.mark.parametrize("case", range(13))
@pytest.mark.parametrize("kind", ["folder", "folder/", "missing parent", "under a file"])
def test_an_output_that_cannot_be_written_is_exit_2_before_any_work(tree, weights_file, tmp_path, no_scoring,
                                                                    case, kind):
    (tmp_path / "outdir").mkdir()
    (tmp_path / "file.txt").write_text("x")
    out = {"folder": str(tmp_path / "outdir"), "folder/": str(tmp_path / "outdir") + "/",
           "missing parent": str(tmp_path / "no" / "such" / "x.json"),
           "under a file": str(tmp_path / "file.txt" / "x.json")}[kind]
    argv = _commands(tree, weights_file, out)[case]
    r = run(*argv)
    assert r.exit_code == 2, r.output
    assert "internal error" not in r.output and "Traceback" not in r.output
    assert out.rstrip("/") in r.output, r.output
    fix = {"folder": "give a file name, e.g.", "folder/": "give a file name, e.g.",
           "missing parent": "create it first (mkdir -p", "under a file": "is a file, not a folder"}[kind]
    assert fix in r.output, r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt", "outdir"]  # nothing written
    assert not any((tmp_path / "outdir").iterdir())


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write in any folder")
def test_an_unwritable_folder_is_exit_2_before_any_work(tree, weights_file, tmp_path, no_scoring):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        r = run("score", tree / "r", tree / "gt", "--weights", weights_file, "-o", locked / "x.json")
        assert r.exit_code == 2 and "no permission to write in" in r.output, r.output
        r = run("score", tree / "r", tree / "gt", "--weights", weights_file, "--save-maps", locked / "m" / "n")
        assert r.exit_code == 2 and "no permission to write in" in r.output, r.output
    finally:
        locked.chmod(0o700)


def test_an_unwritable_folder_is_found_as_any_user_would_find_it(tree, weights_file, tmp_path, no_scoring,
                                                                monkeypatch):
    """The same, where root would be allowed: os.access says no for one folder."""
    import hlcli.cli.common as common

    locked = tmp_path / "locked"
    locked.mkdir()
    real = os.access
    monkeypatch.setattr(common.os, "access", lambda p, mode: False if Path(p) == locked else real(p, mode))
    for argv in (["-o", locked / "x.json"], ["--report", locked / "r.html"], ["--save-maps", locked / "m" / "n"]):
        r = run("score", tree / "r", tree / "gt", "--weights", weights_file, *argv)
        assert r.exit_code == 2 and f"no permission to write in {locked}" in r.output, r.output
    r = run("calibrate", tree / "a.json", "-o", locked / "c.json")
    assert r.exit_code == 2 and f"no permission to write in {locked}" in r.output, r.output


@pytest.mark.parametrize("kind", ["a file", "under a file", "stdout"])
def test_a_folder_output_that_cannot_be_made_is_exit_2_before_any_work(tree, weights_file, tmp_path, no_scoring,
                                                                       kind):
    """--save-maps, --tensorboard and a sweep's -o are folders (created with their parents when missing)."""
    (tmp_path / "file.txt").write_text("x")
    out = {"a file": str(tmp_path / "file.txt"), "under a file": str(tmp_path / "file.txt" / "maps"),
           "stdout": "-"}[kind]
    base = ["score", tree / "r", tree / "gt", "--weights", weights_file]
    sweep = ["score", tree / "r", tree / "r2", tree / "gt", "--weights", weights_file]
    cases = [[*sweep, "-o", out], [*base, "--tensorboard", out]] + ([[*base, "--save-maps", out]] if kind != "stdout" else [])
    for argv in cases:
        r = run(*argv)
        assert r.exit_code == 2, r.output
        assert "internal error" not in r.output and out in r.output, r.output


def test_folder_outputs_are_created_with_their_parents(tree, weights_file, tmp_path):
    r = run("score", tree / "r", tree / "gt", "--weights", weights_file, "--layers", "conv1_2", "--workers", "0",
            "--save-maps", tmp_path / "deep" / "maps", "--maps-format", "npy", "-o", tmp_path / "run.json")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "deep" / "maps" / "maps.json").is_file()
    r = run("score", tree / "r", tree / "r2", tree / "gt", "--weights", weights_file, "--layers", "conv1_2",
            "--workers", "0", "-o", tmp_path / "sweep" / "docs")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "sweep" / "docs").iterdir()) == ["r.json", "r2.json"]


def test_a_fifo_output_is_written_in_place(tree, tmp_path):
    """-o naming a device or FIFO (/dev/null, /dev/stdout) writes into it: the atomic rename
    would put a regular file in its place (as root, /dev/null itself)."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    r = run("calibrate", tree / "a.json", "-f", "json", "-o", fifo)
    reader.join(timeout=30)
    assert r.exit_code == 0, r.output
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert b'"lambda"' in got[0]
    assert [p.name for p in tmp_path.iterdir()] == ["pipe"]  # no temporary file left beside it


# -- the pixel budget ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def six(tmp_path_factory):
    """Six 96x128 pairs (the issue's case)."""
    root = tmp_path_factory.mktemp("six")
    for i in range(6):
        gt = textured(96, 128, seed=i)
        save(root / "gt" / f"{i}.png", gt)
        save(root / "r" / f"{i}.png", degrade(gt, seed=i))
    return root


def _factor(layers: str, budget: int, lpips_vgg: bool = False, sizes=None) -> float:
    from hlcli.nets.layers import resolve_layers
    from hlcli.engine.scoring import ScoreOptions, tiled_nets
    from hlcli.nets.tiling import run_tiling_factor

    opts = ScoreOptions(layers=tuple(layers.split(",")), metrics=("lpips_vgg",) if lpips_vgg else ())
    return run_tiling_factor(tiled_nets(opts, resolve_layers(layers.split(","))), sizes or {(96, 128): 6}, budget)


def test_a_budget_that_multiplies_the_work_tenfold_is_refused_before_the_weights(six, tmp_path):
    """Six 96x128 pairs with --pixel-budget 4096: every tile is almost all halo (98.6x the
    FLOPs). Refused before the weights are even read (a missing weights file is not reached)."""
    assert _factor("conv3_3,conv4_3", 4096) > 10
    r = run("score", six / "r", six / "gt", "--pixel-budget", "4096", "--weights", tmp_path / "absent.pth")
    assert r.exit_code == 2, r.output
    assert "multiply the work by 98.6x" in r.output and "--pixel-budget 24576 or more" in r.output, r.output
    assert _factor("conv3_3,conv4_3", 24576) == 1 and _factor("conv3_3,conv4_3", 24576 - 1) > 10  # 2 * 96 * 128


def test_a_budget_that_doubles_the_work_is_a_warning_and_the_scores_stay_exact(tmp_path, weights_file):
    gt = textured(48, 64, seed=3)
    save(tmp_path / "gt" / "x.png", gt)
    save(tmp_path / "r" / "x.png", degrade(gt, seed=3))
    layers, budget = "conv3_1", 4096
    factor = _factor(layers, budget, sizes={(48, 64): 1})
    assert 2 < factor <= 10  # 3.8x
    common = ["score", tmp_path / "r", tmp_path / "gt", "--weights", weights_file, "--layers", layers,
              "--workers", "0", "-f", "json"]
    warned = run(*common, "--pixel-budget", budget)
    assert warned.exit_code == 0, warned.output
    line = next(x for x in warned.stderr.splitlines() if "pixel budget" in x)
    assert line.startswith("Warning: a pixel budget of 4096") and f"{factor:.1f}x" in line
    suggested = int(line.split("--pixel-budget ")[1].split()[0])
    assert _factor(layers, suggested, sizes={(48, 64): 1}) <= 2
    quiet = run(*common, "--pixel-budget", suggested)
    plain = run(*common)
    assert quiet.exit_code == plain.exit_code == 0 and "pixel budget" not in quiet.stderr + plain.stderr
    import json

    a, b = (json.loads(x.stdout)["pairs"] for x in (warned, plain))
    assert all(p["tiled"] for p in a) and not any(p["tiled"] for p in b)
    for p, q in zip(a, b):
        assert p["l1"] == q["l1"]
        assert p["layers"][layers] == pytest.approx(q["layers"][layers], rel=1e-5)


def test_lpips_vgg_has_its_own_halo_in_the_factor_and_the_suggestion():
    """LPIPS-VGG is tiled with VGG-16's halo (96 px): a budget fine for conv2_2 alone is not
    fine with it, and the suggested budget keeps both under 2x."""
    from hlcli.nets.layers import resolve_layers
    from hlcli.engine.scoring import ScoreOptions, tiled_nets
    from hlcli.nets.tiling import smallest_budget

    sizes = {(512, 768): 3, (300, 200): 2}
    assert _factor("conv2_2", 1 << 17, sizes=sizes) <= 2 < _factor("conv2_2", 1 << 17, True, sizes)
    nets = tiled_nets(ScoreOptions(layers=("conv2_2",), metrics=("lpips_vgg",)), resolve_layers(["conv2_2"]))
    assert [n.name for n in nets][1].startswith("VGG-16")
    best = smallest_budget(nets, sizes)
    assert _factor("conv2_2", best, True, sizes) <= 2 < _factor("conv2_2", best * 9 // 10, True, sizes)


def test_the_factor_is_the_ratio_of_tiled_to_untiled_flops():
    """One pair, one net: the factor is tiling_cost (FLOPs of the crops / of the whole image);
    untiled pairs count 1."""
    from hlcli.nets.layers import resolve_layers
    from hlcli.nets.tiling import run_tiling_factor, tile_plan, tiling_cost, vgg19_net

    specs = resolve_layers(["conv3_3", "conv4_3"])
    net = vgg19_net(specs)
    budget = 2 * 300 * 300
    one = run_tiling_factor([net], {(1000, 700): 1}, budget)
    assert one == pytest.approx(tiling_cost(specs, 1000, 700, tile_plan(specs, budget)), rel=1e-12)
    from hlcli.nets.tiling import net_flops

    small = net_flops(net, 200, 200)
    big = net_flops(net, 1000, 700)
    mixed = run_tiling_factor([net], {(1000, 700): 1, (200, 200): 4}, budget)
    assert mixed == pytest.approx((one * big + 4 * small) / (big + 4 * small), rel=1e-12)
