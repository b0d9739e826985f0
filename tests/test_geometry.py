"""Image geometry through the CLI: pairs of different sizes are refused naming both sizes unless a
``--size-mismatch`` policy is chosen (recorded per pair in every format), and images too small for
the deepest requested layer are refused naming the minimum size."""

from __future__ import annotations

import csv
import io

import pytest

from .cases import (COMMON, GOODS, SIZE, assert_matches_reference, assert_one_line_error, env, f8, invoke,
                    ref_model, reference, rgb, save, strict_json, write_goods)

_FIXTURES = (env, ref_model)  # module-scoped fixtures shared from tests/cases.py


@pytest.mark.slow
def test_size_mismatch_policies_recorded_per_pair(env, ref_model, tmp_path):
    r, g = tmp_path / "r", tmp_path / "g"
    write_goods(r, g)
    big, small = rgb(1, SIZE, SIZE + 8), rgb(2, SIZE + 4, SIZE)  # 40x32 restored, 32x36 gt
    save(r / "mis.png", big)
    save(g / "mis.png", small)

    res = invoke(env, r, g, *COMMON, "-f", "json")
    assert res.exit_code == 2
    assert_one_line_error(res.stderr, str(r / "mis.png"), str(g / "mis.png"), "40x32", "32x36")

    doc = strict_json(invoke(env, r, g, *COMMON, "-f", "json", "--size-mismatch", "crop").stdout)
    pairs = {p["key"]: p for p in doc["pairs"]}
    mis = pairs["mis"]
    assert mis["size_policy"] == "crop" and (mis["width"], mis["height"]) == (32, 32)
    assert mis["original_sizes"] == {"restored": [40, 32], "gt": [32, 36]}
    assert_matches_reference(mis, reference(ref_model, f8(big[:32, :32]), f8(small[:32, :32])), "crop")
    for name in GOODS:
        assert pairs[name]["size_policy"] is None and "original_sizes" not in pairs[name]
    assert doc["settings"]["size_mismatch"] == "crop" and doc["complete"] is True

    doc = strict_json(invoke(env, r, g, *COMMON, "-f", "json", "--size-mismatch", "resize-restored").stdout)
    mis = {p["key"]: p for p in doc["pairs"]}["mis"]
    assert mis["size_policy"] == "resize-restored" and (mis["width"], mis["height"]) == (32, 36)
    assert mis["original_sizes"] == {"restored": [40, 32], "gt": [32, 36]}
    assert 0 < mis["l1"] < 1 and mis["hybrid"] > mis["l1"]

    for policy in ("crop", "resize-restored"):
        res = invoke(env, r, g, *COMMON, "-f", "csv", "--size-mismatch", policy)
        assert res.exit_code == 0
        rows = {row["key"]: row for row in csv.DictReader(io.StringIO(res.stdout))}
        assert rows["mis"]["size_policy"] == policy
        assert rows["good_a"]["size_policy"] == ""


@pytest.mark.parametrize("layer,side", [("conv1_2", 1), ("conv2_2", 2), ("conv3_3", 4), ("conv4_3", 8),
                                        ("conv5_4", 16)])
def test_too_small_names_the_minimum_size(env, tmp_path, layer, side):
    r, g = tmp_path / "r", tmp_path / "g"
    common = ["--layers", layer, "--workers", "0", "-f", "json"]
    if side > 1:
        save(r / "x.png", rgb(1, side - 1, side + 3))
        save(g / "x.png", rgb(2, side - 1, side + 3))
        res = invoke(env, r, g, *common)
        assert res.exit_code == 2
        assert_one_line_error(res.stderr, f"at least {side}x{side}", f"{side + 3}x{side - 1}", str(g / "x.png"),
                              "--layers")
    save(r / "x.png", rgb(1, side, side))
    save(g / "x.png", rgb(2, side, side))
    res = invoke(env, r, g, *common)
    assert res.exit_code == 0, res.stderr
    assert strict_json(res.stdout)["pairs"][0]["hybrid"] > 0
