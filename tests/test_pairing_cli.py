"""Pairing through the CLI: files are paired by relative path (never by position), unmatched files
fail the run and are listed (or are listed everywhere with ``--allow-missing``), hidden and
AppleDouble files are ignored and counted, recursion survives symlink loops, ``--pairs`` manifests
(from a file or stdin) pair non-mirrored layouts, and every problem with the set of files is a
whole-run error (exit 2 whatever ``--on-error`` says)."""

from __future__ import annotations

import csv
import io
import json
import unicodedata

import pytest
from click.testing import CliRunner

from hlcli.cli import cli

from .cases import (COMMON, assert_one_line_error, assert_same_as_baseline, baseline, case_dirs, dir_doc, env,
                    invoke, ok_json, ref_model, rgb, score, strict_json, write_goods)
from .conftest import degrade, save, textured
from .schemas import validate_score

_FIXTURES = (baseline, dir_doc, env, ref_model)  # module-scoped fixtures shared from tests/cases.py


def by_key(rows, field="hybrid"):
    return {r["key"]: float(r[field]) for r in rows}


# --------------------------------------------------------------------------------- directories

def test_pairs_by_relative_path_not_position(cli_env, tmp_path):
    a, b = textured(48, 48, 1), textured(48, 48, 2)
    save(tmp_path / "r" / "sub" / "x.png", a)
    save(tmp_path / "r" / "sub" / "y.png", b)
    save(tmp_path / "g" / "sub" / "x.jpg", a, quality=100)  # different extension, same key
    save(tmp_path / "g" / "sub" / "y.png", b)
    doc = ok_json(tmp_path / "r", tmp_path / "g", "-r")
    keys = {p["key"]: p for p in doc["pairs"]}
    assert set(keys) == {"sub/x", "sub/y"}
    assert keys["sub/y"]["hybrid"] == 0.0 and keys["sub/x"]["gt"].endswith("x.jpg")


def test_missing_files_fail_with_exit_2_and_are_listed(cli_env, pair_dirs):
    (pair_dirs[1] / "a.png").unlink()
    save(pair_dirs[0] / "extra.png", textured(40, 40, 9))
    r = score(*pair_dirs)
    assert r.exit_code == 2 and r.stdout == ""
    assert f"no ground truth for {pair_dirs[0] / 'a.png'}" in r.stderr
    assert f"no ground truth for {pair_dirs[0] / 'extra.png'}" in r.stderr
    assert "--allow-missing" in r.stderr.splitlines()[-1]


def test_allow_missing_still_lists_them_everywhere(cli_env, pair_dirs):
    (pair_dirs[1] / "a.png").unlink()
    save(pair_dirs[1] / "gtonly.png", textured(40, 40, 9))
    doc = ok_json(*pair_dirs, "--allow-missing")
    assert doc["complete"] is False and doc["summary"]["count"] == 3
    assert doc["missing"]["restored_only"] == [str(pair_dirs[0] / "a.png")]
    assert doc["missing"]["gt_only"] == [str(pair_dirs[1] / "gtonly.png")]
    rows = list(csv.DictReader(io.StringIO(score(*pair_dirs, "--allow-missing", "-f", "csv").stdout)))
    assert {(r["status"], r["restored"] or r["gt"]) for r in rows if r["status"] != "ok"} == {
        ("restored-only", str(pair_dirs[0] / "a.png")), ("gt-only", str(pair_dirs[1] / "gtonly.png"))}
    # unmatched files carry their key, and every row is in key order (docs/formats.md)
    assert [(r["key"], r["status"]) for r in rows] == [("a", "restored-only"), ("b", "ok"), ("c", "ok"),
                                                        ("gtonly", "gt-only"), ("same", "ok")]
    lines = [json.loads(x) for x in score(*pair_dirs, "--allow-missing", "-f", "jsonl").stdout.splitlines()]
    assert sum(x["type"] == "missing" for x in lines) == 2
    for fmt in ("table", "markdown"):
        r = score(*pair_dirs, "--allow-missing", "-f", fmt)
        assert "a.png" in r.stdout and "gtonly.png" in r.stdout, fmt
        assert "incomplete" in r.stdout.lower()


def test_hidden_and_appledouble_files_are_skipped_and_counted(env, baseline, tmp_path):
    r, g = case_dirs(tmp_path)
    junk = [r / ".hidden.png", r / "._good_a.png", g / "._good_b.png", g / ".DS_Store", g / "notes.txt",
            r / "Thumbs.db"]
    for path in junk:
        path.write_bytes(b"\x00\x05\x16\x07 AppleDouble junk")
    doc = strict_json(invoke(env, r, g, *COMMON, "-f", "json").stdout)
    assert sorted(doc["ignored"]) == sorted(map(str, junk))
    assert doc["summary"]["ignored"] == len(junk) and doc["summary"]["skipped"] == 0
    assert doc["complete"] is True
    assert_same_as_baseline(doc, baseline)


def test_recursive_keys_by_relative_path_and_survives_symlink_loops(env, baseline, tmp_path):
    r, g = tmp_path / "r", tmp_path / "g"
    for root, make in ((r, lambda a, s: degrade(a, s)), (g, lambda a, s: a)):
        for i, key in enumerate(("a/x", "b/x", "b/c/y")):
            save(root / f"{key}.png", make(rgb(200 + i), 200 + i))
    (r / "b" / "c" / "up").symlink_to(r / "b", target_is_directory=True)  # a loop
    (r / "loop").symlink_to(r, target_is_directory=True)  # another loop
    (g / "b" / "c" / "back").symlink_to(g, target_is_directory=True)
    res = invoke(env, r, g, *COMMON, "-f", "json", "-r")
    assert res.exit_code == 0, res.stderr
    doc = strict_json(res.stdout)
    assert [p["key"] for p in doc["pairs"]] == ["a/x", "b/c/y", "b/x"]
    assert all(p["l1"] > 0 for p in doc["pairs"])
    # a symlink to a sibling is not a loop: its files are listed by the path they are reached by
    (r / "alias").symlink_to(r / "a", target_is_directory=True)
    res = invoke(env, r, g, *COMMON, "-f", "json", "-r")
    assert res.exit_code == 2
    assert_one_line_error(res.stderr, str(r / "alias" / "x.png"), "no ground-truth file")
    save(g / "alias" / "x.png", rgb(200))
    doc = strict_json(invoke(env, r, g, *COMMON, "-f", "json", "-r").stdout)
    by_key = {p["key"]: p for p in doc["pairs"]}
    assert by_key["alias/x"]["l1"] == by_key["a/x"]["l1"]


# --------------------------------------------------------------------------------- manifests

def test_manifest_pairs_non_mirrored_layouts(env, baseline, tmp_path):
    """--pairs FILE: restored and gt in unrelated layouts, paths relative to the manifest."""
    goods = tmp_path / "goods"
    write_goods(goods / "r", goods / "g")
    out = tmp_path / "runs" / "model-7" / "epoch 3"
    ref = tmp_path / "datasets" / "val" / "hr"
    (out / "nested").mkdir(parents=True)
    ref.mkdir(parents=True)
    (out / "nested" / "pred_0001.png").write_bytes((goods / "r" / "good_a.png").read_bytes())
    (out / "b, final.png").write_bytes((goods / "r" / "good_b.png").read_bytes())
    (ref / "0001.png").write_bytes((goods / "g" / "good_a.png").read_bytes())
    (ref / "0002.png").write_bytes((goods / "g" / "good_b.png").read_bytes())
    lists = tmp_path / "lists"
    lists.mkdir()
    manifest = lists / "pairs.csv"
    manifest.write_text(
        "restored,gt\n"
        "# model 7 against the validation set\n"
        "../runs/model-7/epoch 3/nested/pred_0001.png,../datasets/val/hr/0001.png\n"
        f"\"{out / 'b, final.png'}\",{ref / '0002.png'}\n", encoding="utf-8")
    res = invoke(env, "--pairs", manifest, *COMMON, "-f", "json")
    assert res.exit_code == 0, res.stderr
    doc = strict_json(res.stdout)
    pairs = {p["key"]: p for p in doc["pairs"]}
    assert set(pairs) == {"pred_0001", "b, final"}
    assert pairs["pred_0001"]["gt"] == str(lists / "../datasets/val/hr/0001.png")
    assert_same_as_baseline({"pairs": [{**pairs["pred_0001"], "key": "good_a"},
                                       {**pairs["b, final"], "key": "good_b"}]}, baseline)
    assert doc["settings"]["inputs"] == {"pairs": str(manifest)}

    # a broken file listed in the manifest: refused, or skipped and listed
    (ref / "0003.png").write_bytes(b"")
    (out / "3.png").write_bytes((goods / "r" / "good_a.png").read_bytes())
    with manifest.open("a", encoding="utf-8") as fh:
        fh.write("../runs/model-7/epoch 3/3.png,../datasets/val/hr/0003.png\n")
    res = invoke(env, "--pairs", manifest, *COMMON, "-f", "json")
    assert res.exit_code == 2
    assert_one_line_error(res.stderr, str(lists / "../datasets/val/hr/0003.png"), "file is empty")
    res = invoke(env, "--pairs", manifest, *COMMON, "-f", "json", "--on-error", "skip")
    assert res.exit_code == 2
    doc = strict_json(res.stdout)
    assert [s["key"] for s in doc["skipped"]] == ["3"] and doc["summary"]["count"] == 2


def test_stdin_manifest_resolves_relative_paths_against_the_cwd(dir_doc, pair_dirs, monkeypatch, tmp_path):
    manifest = "restored,gt\n" + "".join(f"restored/{k}.png,gt/{k}.png\n" for k in ("a", "b", "c", "same"))
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(cli, ["score", "--pairs", "-", "-f", "json", "--workers", "0"], input=manifest)
    assert res.exit_code == 0, res.stderr
    doc = validate_score(res.stdout)
    assert doc["settings"]["inputs"] == {"pairs": "<stdin>"}
    assert by_key(doc["pairs"]) == pytest.approx(by_key(dir_doc["pairs"]), rel=1e-9)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    res = CliRunner().invoke(cli, ["score", "--pairs", "-"], input=manifest)
    assert res.exit_code == 2 and str(elsewhere / "restored" / "a.png") in res.stderr


# --------------------------------------------------------------------------------- whole-run errors

def _dup_stem(r, g):
    save(r / "dup.png", rgb(1))
    save(r / "dup.jpg", rgb(1))
    save(g / "dup.png", rgb(1))
    return [r, g], [str(r / "dup.jpg"), str(r / "dup.png"), "same name"]


def _dup_unicode(r, g):
    save(r / unicodedata.normalize("NFC", "café.png"), rgb(1))
    save(r / unicodedata.normalize("NFD", "café.png"), rgb(1))
    save(g / "café.png", rgb(1))
    return [r, g], [str(r / unicodedata.normalize("NFC", "café.png")),
                    str(r / unicodedata.normalize("NFD", "café.png"))]


def _dup_case_ext(r, g):
    save(r / "x.png", rgb(1))
    save(r / "x.PNG", rgb(1))
    save(g / "x.png", rgb(1))
    if len(list(r.iterdir())) < 4:
        pytest.skip("case-insensitive file system")
    return [r, g], [str(r / "x.PNG"), str(r / "x.png")]


def _restored_only(r, g):
    save(r / "extra.png", rgb(1))
    return [r, g], [str(r / "extra.png"), "no ground-truth file", "--allow-missing"]


def _gt_only(r, g):
    save(g / "extra.tif", rgb(1))
    save(g / "more.png", rgb(1))
    return [r, g], [str(g / "extra.tif"), "2 files without a partner", "--allow-missing"]


def _directory_named_like_image(r, g):
    (r / "folder.png").mkdir()
    save(g / "folder.png", rgb(1))
    return [r, g], [str(g / "folder.png"), "no restored file"]


def _dangling_symlink(r, g, tmp_path=None):
    (r / "gone.png").symlink_to(r.parent / "nowhere.png")
    save(g / "gone.png", rgb(1))
    return [r, g], [str(g / "gone.png"), "no restored file"]


def _empty_dir(r, g):
    empty = r.parent / "empty"
    empty.mkdir()
    return [empty, g], [str(empty), "no images found"]


def _only_hidden(r, g):
    hidden = r.parent / "hidden"
    save(hidden / ".x.png", rgb(1))
    save(hidden / "._good_a.png", rgb(1))
    (hidden / "notes.txt").write_text("x")
    return [r, hidden], [str(hidden), "no images found"]


def _subdirs_without_recursive(r, g):
    nested = r.parent / "nested"
    save(nested / "sub" / "good_a.png", rgb(1))
    return [nested, g], [str(nested), "--recursive"]


def _file_and_directory(r, g):
    return [r / "good_a.png", g], [str(r / "good_a.png"), str(g), "both be directories or both be files"]


def _nonexistent(r, g):
    return [r.parent / "nope", g], [str(r.parent / "nope"), "does not exist"]


def _manifest_missing_file(r, g):
    m = r.parent / "pairs.csv"
    m.write_text(f"restored,gt\n{r / 'good_a.png'},{g / 'good_a.png'}\n{r / 'ghost.png'},{g / 'good_b.png'}\n")
    return ["--pairs", m], [str(r / "ghost.png"), "line 3", "does not exist"]


def _manifest_directory(r, g):
    m = r.parent / "pairs.csv"
    m.write_text(f"{r},{g / 'good_a.png'}\n")
    return ["--pairs", m], [str(r), "line 1", "is not a file"]


def _manifest_bad_row(r, g):
    m = r.parent / "pairs.csv"
    m.write_text(f"{r / 'good_a.png'};{g / 'good_a.png'}\n")
    return ["--pairs", m], [str(m), "line 1", "1 column"]


def _manifest_duplicate_row(r, g):
    m = r.parent / "pairs.csv"
    row = f"{r / 'good_a.png'},{g / 'good_a.png'}\n"
    m.write_text(row + row)
    return ["--pairs", m], [str(m), "line 2 repeats the pair on line 1"]


def _manifest_empty(r, g):
    m = r.parent / "pairs.csv"
    m.write_text("restored,gt\n# nothing\n")
    return ["--pairs", m], [str(m), "lists no pairs"]


WHOLE_RUN = [_dup_stem, _dup_unicode, _dup_case_ext, _restored_only, _gt_only, _directory_named_like_image,
             _dangling_symlink, _empty_dir, _only_hidden, _subdirs_without_recursive, _file_and_directory,
             _nonexistent, _manifest_missing_file, _manifest_directory, _manifest_bad_row,
             _manifest_duplicate_row, _manifest_empty]


@pytest.mark.parametrize("make", WHOLE_RUN, ids=[f.__name__.strip("_") for f in WHOLE_RUN])
def test_whole_run_input_errors(make, env, tmp_path):
    """Problems with the set of files, not one pair: exit 2 whatever --on-error says."""
    r, g = case_dirs(tmp_path)
    args, needles = make(r, g)
    for mode in ("fail", "skip"):
        res = invoke(env, *args, *COMMON, "-f", "json", "--on-error", mode)
        assert res.exit_code == 2, (mode, res.stderr)
        assert res.stdout == ""
        assert_one_line_error(res.stderr, *needles)


# ------------------------------------------------------- near misses and --restored-suffix (issue 22)

def test_near_misses_name_the_case_and_the_suffix():
    from hlcli.inputs.pairing import near_misses, strip_suffix

    hints = near_misses(["r/Coffee.png", "r/rocket_x4.png", "r/bird_x4.png", "r/zebra.png", "r/a-x2.png"],
                        ["g/coffee.png", "g/rocket.png", "g/bird.png", "g/lion.png", "g/a.png"])
    assert len(hints) == 3, hints
    assert "r/Coffee.png with g/coffee.png" in hints[0] and "only in case" in hints[0]
    assert "2 such files" in hints[1] and hints[1].endswith("--restored-suffix _x4")
    assert hints[2].endswith("--restored-suffix=-x2")  # a suffix that looks like an option
    assert near_misses(["r/zebra.png"], ["g/lion.png"]) == []
    assert strip_suffix("a/rocket_x4", "_x4") == "a/rocket" and strip_suffix("a/rocket", "_x4") == "a/rocket"
    assert strip_suffix("a_x4/_x4", "_x4") == "a_x4/_x4"  # never an empty name


@pytest.fixture
def suffixed(tmp_path):
    """BasicSR's layout: results/<set>/<name>_x4.png against gt/<set>/<name>.png."""
    for i, (group, name) in enumerate([("Set5", "rocket"), ("Set5", "bird"), ("Set14", "coffee")]):
        gt = textured(40, 40, seed=i)
        save(tmp_path / "gt" / group / f"{name}.png", gt)
        save(tmp_path / "res" / group / f"{name}_x4.png", degrade(gt, seed=i))
    return tmp_path / "res", tmp_path / "gt"


def test_unmatched_files_say_did_you_mean(cli_env, tmp_path):
    for name, gt_name in (("rocket_x4", "rocket"), ("Coffee", "coffee")):
        save(tmp_path / "r" / f"{name}.png", textured(40, 40, 1))
        save(tmp_path / "g" / f"{gt_name}.png", textured(40, 40, 1))
    r = score(tmp_path / "r", tmp_path / "g")
    assert r.exit_code == 2
    hints = [ln for ln in r.stderr.splitlines() if ln.startswith("Hint: did you mean")]
    assert len(hints) == 2, r.stderr
    assert "Coffee.png" in hints[0] and "coffee.png" in hints[0] and "case" in hints[0]
    assert "rocket_x4.png" in hints[1] and hints[1].endswith("--restored-suffix _x4")
    r = score(tmp_path / "r", tmp_path / "g", "--allow-missing", "-f", "json")  # nothing paired: in the error
    assert r.exit_code == 2 and "did you mean" in r.stderr.splitlines()[-1], r.stderr
    save(tmp_path / "r" / "zebra.png", textured(40, 40, 2))
    save(tmp_path / "g" / "zebra.png", textured(40, 40, 2))
    r = score(tmp_path / "r", tmp_path / "g", "--allow-missing", "-f", "json")  # a run: as a note
    assert r.exit_code == 0 and sum(ln.startswith("Hint: did you mean") for ln in r.stderr.splitlines()) == 2, \
        r.stderr


def test_restored_suffix_pairs_basicsr_names_with_groups_baselines_and_shards(cli_env, suffixed, tmp_path):
    res, gt = suffixed
    doc = ok_json(res, gt, "-r", "--restored-suffix", "_x4", "--group-by", "top")
    assert [p["key"] for p in doc["pairs"]] == ["Set14/coffee", "Set5/bird", "Set5/rocket"]
    assert set(doc["summary"]["groups"]) == {"Set5", "Set14"}
    assert doc["settings"]["inputs"]["restored_suffix"] == "_x4"
    validate_score(doc)
    # keys are the stripped names: a baseline scored without the suffix (gt against itself) compares
    base = tmp_path / "base.json"
    base.write_text(json.dumps(ok_json(gt, gt, "-r")), encoding="utf-8")
    r = score(res, gt, "-r", "--restored-suffix", "_x4", "--baseline", base, "-f", "json")
    assert r.exit_code == 0, r.stderr
    regression = json.loads(r.stdout)["gate"]["regressions"]
    assert regression["pairs_compared"] == 3 and regression["new"] == regression["missing"] == []
    # shards and merge
    parts = []
    for i in range(2):
        part = tmp_path / f"part{i}.json"
        r = score(res, gt, "-r", "--restored-suffix", "_x4", "--shard", f"{i}/2", "-o", part)
        assert r.exit_code == 0, r.stderr
        parts.append(part)
    merged = CliRunner().invoke(cli, ["merge", *map(str, parts), "-f", "json"])
    assert merged.exit_code == 0, merged.stderr
    assert [p["key"] for p in json.loads(merged.stdout)["pairs"]] == [p["key"] for p in doc["pairs"]]


def test_restored_suffix_in_a_sweep_and_not_with_a_manifest(cli_env, suffixed, tmp_path):
    res, gt = suffixed
    import shutil

    shutil.copytree(res, tmp_path / "res2")
    out = tmp_path / "sweep"
    r = score(res, tmp_path / "res2", gt, "-r", "--restored-suffix", "_x4", "-o", out)
    assert r.exit_code == 0, r.stderr
    docs = {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}
    assert set(docs) == {"res", "res2"}
    assert all([p["key"] for p in d["pairs"]] == ["Set14/coffee", "Set5/bird", "Set5/rocket"] for d in docs.values())
    manifest = tmp_path / "pairs.csv"
    manifest.write_text(f"{res / 'Set5' / 'bird_x4.png'},{gt / 'Set5' / 'bird.png'}\n", encoding="utf-8")
    r = score("--pairs", manifest, "--restored-suffix", "_x4")
    assert r.exit_code == 2 and "--restored-suffix" in r.stderr
