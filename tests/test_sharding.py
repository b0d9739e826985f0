"""The sharding plan (hlcli.engine.sharding): contiguous, pixel-balanced, no padding, no pair twice; and
shards scored through the real scoring path add up to the single-process run."""

from __future__ import annotations

import random

import pytest

from hlcli.errors import InputError
from hlcli.engine.sharding import Shard, ShardSelection, assign_shards, parse_shard, plan_sha256, shard_ranges

from .conftest import degrade, save, textured


@pytest.mark.parametrize("text, expected", [("0/1", Shard(0, 1)), ("3/16", Shard(3, 16)), (" 15 / 16 ", Shard(15, 16))])
def test_parse_shard(text, expected):
    assert parse_shard(text) == expected


@pytest.mark.parametrize("text", ["16/16", "1/0", "-1/4", "a/b", "3", "3/16/2", ""])
def test_parse_shard_refuses(text):
    with pytest.raises(InputError, match="bad shard"):
        parse_shard(text)


@pytest.mark.parametrize("seed", range(20))
def test_ranges_are_contiguous_balanced_and_cover_every_item_once(seed):
    rng = random.Random(seed)
    n, count = rng.randint(1, 300), rng.randint(1, 40)
    costs = [rng.choice([1, 64 * 64, 256 * 256, 1920 * 1080]) for _ in range(n)]
    owners = assign_shards(costs, count)
    assert owners == sorted(owners) and 0 <= owners[0] and owners[-1] < count  # contiguous, in range
    ranges = shard_ranges(costs, count)
    assert [i for a, b in ranges for i in range(a, b)] == list(range(n))  # every item exactly once
    total, biggest = sum(costs), max(costs)
    for a, b in ranges:  # balanced: no shard over its share by more than one item
        assert sum(costs[a:b]) <= total / count + biggest


def test_fewer_items_than_shards_leaves_empty_shards_and_no_padding():
    assert shard_ranges([100], 2) in ([(0, 1), (1, 1)], [(0, 0), (0, 1)])
    ranges = shard_ranges([5, 5, 5], 8)
    assert sum(b - a for a, b in ranges) == 3
    assert sum(1 for a, b in ranges if a == b) == 5


def test_uneven_sizes_are_balanced_by_pixels_not_by_count():
    # one big pair and nine small ones: the big one gets a shard to itself
    costs = [1000] + [10] * 9
    assert shard_ranges(costs, 2) == [(0, 1), (1, 10)]


def test_plan_hash_covers_keys_order_and_settings():
    s = {"lambda": 0.05}
    h = plan_sha256(["a", "b"], s)
    assert h == plan_sha256(["a", "b"], {"lambda": 0.05}) and len(h) == 64
    assert h != plan_sha256(["b", "a"], s)
    assert h != plan_sha256(["a", "b", "c"], s)
    assert h != plan_sha256(["a", "b"], {"lambda": 0.1})


@pytest.fixture
def mixed_pairs(tmp_path):
    """Seven pairs of mixed sizes (so batching reorders them) and one unreadable file."""
    sizes = [(40, 40), (64, 48), (40, 40), (48, 64), (64, 48), (40, 40), (56, 56)]
    for i, (h, w) in enumerate(sizes):
        gt = textured(h, w, seed=i)
        save(tmp_path / "gt" / f"k{i}.png", gt)
        save(tmp_path / "out" / f"k{i}.png", degrade(gt, seed=i))
    save(tmp_path / "gt" / "k7.png", textured(40, 40, seed=7))
    (tmp_path / "out" / "k7.png").write_bytes(b"not an image")
    return tmp_path / "out", tmp_path / "gt"


def test_shards_of_the_real_scoring_path_add_up_to_the_single_run(mixed_pairs, weights_file):
    from hlcli.inputs.pairing import find_pairs
    from hlcli.engine.scoring import ScoreOptions, score_pairing

    pairing = find_pairs(*mixed_pairs)
    opts = ScoreOptions(layers=("conv2_2",), weights=str(weights_file), device="cpu", workers=0,
                        on_error="skip", download_progress=False)
    single = score_pairing(pairing, opts)
    assert [p.key for p in single.pairs] == sorted(p.key for p in single.pairs)  # canonical order
    assert [s.key for s in single.skipped] == ["k7"]

    parts = []
    for i in range(3):
        selection = ShardSelection(Shard(i, 3))
        run = score_pairing(pairing, opts, shard=selection)
        assert run.environment["shard"]["plan_sha256"] == selection.info["plan_sha256"]
        parts.append(run)
    hashes = {r.environment["shard"]["plan_sha256"] for r in parts}
    assert len(hashes) == 1
    keys = [p.key for r in parts for p in r.pairs] + [s.key for r in parts for s in r.skipped]
    assert sorted(keys) == [f"k{i}" for i in range(8)]  # every pair in exactly one shard
    merged = sorted((p for r in parts for p in r.pairs), key=lambda p: p.key)
    assert [p.as_dict() for p in merged] == [p.as_dict() for p in single.pairs]  # bit for bit
    for r in parts:
        lo, hi = r.environment["shard"]["range"]
        assert len(r.pairs) + len(r.skipped) == hi - lo


def test_save_maps_with_shard_is_refused_with_the_way_to_do_it(cli_env, pair_dirs, tmp_path):
    from click.testing import CliRunner

    from hlcli.cli import cli

    r = CliRunner().invoke(cli, ["score", *map(str, pair_dirs), "--shard", "0/2", "-f", "json",
                                 "--save-maps", str(tmp_path / "maps")])
    assert r.exit_code == 2
    assert "--save-maps cannot be combined with --shard" in r.stderr and "without --shard" in r.stderr
    assert not (tmp_path / "maps").exists()


@pytest.mark.parametrize("argv, expected", [
    (["/venv/bin/hlcli", "score", "out dir", "gt"], ["hlcli", "score", "out dir", "gt"]),
    (["/usr/lib/python3/site-packages/hlcli/__main__.py", "score", "a"], ["hlcli", "score", "a"]),
    (["hlcli", "merge", "p.json"], ["hlcli", "merge", "p.json"]),
])
def test_stored_command_is_what_a_user_would_retype(argv, expected):
    import shlex

    from hlcli.engine.scoring import command_line

    assert command_line(argv) == expected
    assert shlex.split(shlex.join(command_line(argv))) == expected
