"""Tests for hlcli.inputs.pairing: which restored file is scored against which ground truth."""

from __future__ import annotations

import io
import os
import sys
import unicodedata
from pathlib import Path

import pytest

from hlcli.errors import InputError
from hlcli.inputs.pairing import IMAGE_EXTENSIONS, Pair, Pairing, find_pairs, read_manifest


def touch(path: Path, data: bytes = b"\x00not-an-image") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def make(root: Path, *names: str) -> list[Path]:
    return [touch(root / n) for n in names]


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    r, g = tmp_path / "restored", tmp_path / "gt"
    r.mkdir()
    g.mkdir()
    return r, g


def keys(pairing: Pairing) -> list[str]:
    return [p.key for p in pairing.pairs]


# --------------------------------------------------------------------------- directories


def test_matches_by_key_not_position_and_ignores_extension(dirs):
    r, g = dirs
    make(r, "b.png", "a.png", "c.webp")
    make(g, "a.jpg", "b.tiff", "c.png")
    res = find_pairs(r, g)
    assert res.pairs == [
        Pair("a", r / "a.png", g / "a.jpg"),
        Pair("b", r / "b.png", g / "b.tiff"),
        Pair("c", r / "c.webp", g / "c.png"),
    ]
    assert res.restored_only == [] and res.gt_only == [] and res.ignored == []
    assert res.missing_count == 0


def test_accepts_str_arguments(dirs):
    r, g = dirs
    make(r, "a.png")
    make(g, "a.png")
    assert find_pairs(str(r), str(g)).pairs == [Pair("a", r / "a.png", g / "a.png")]


def test_extension_is_case_insensitive(dirs):
    r, g = dirs
    make(r, "x.PNG", "y.JpEg")
    make(g, "x.png", "y.jpg")
    assert find_pairs(r, g).pairs == [
        Pair("x", r / "x.PNG", g / "x.png"),
        Pair("y", r / "y.JpEg", g / "y.jpg"),
    ]


def test_stem_is_case_sensitive(dirs):
    r, g = dirs
    make(r, "x.png")
    make(g, "X.png")
    res = find_pairs(r, g)
    if (g / "x.png").exists():  # case-insensitive file system: cannot test this here
        pytest.skip("case-insensitive file system")
    assert res.pairs == []
    assert res.restored_only == [r / "x.png"]
    assert res.gt_only == [g / "X.png"]
    assert res.missing_count == 2


def test_stem_keeps_inner_dots(dirs):
    r, g = dirs
    make(r, "img.v2.png")
    make(g, "img.v2.jpg", "img.png")
    res = find_pairs(r, g)
    assert keys(res) == ["img.v2"]
    assert res.gt_only == [g / "img.png"]


def test_unmatched_files_listed_sorted(dirs):
    r, g = dirs
    make(r, "a.png", "z.png", "m.png", "only_r2.png")
    make(g, "a.png", "q.png", "b.png")
    res = find_pairs(r, g)
    assert keys(res) == ["a"]
    assert res.restored_only == [r / "m.png", r / "only_r2.png", r / "z.png"]
    assert res.gt_only == [g / "b.png", g / "q.png"]
    assert res.missing_count == 5


def test_nothing_matches_returns_pairing(dirs):
    r, g = dirs
    make(r, "a.png")
    make(g, "b.png")
    res = find_pairs(r, g)
    assert res.pairs == []
    assert res.restored_only == [r / "a.png"] and res.gt_only == [g / "b.png"]


def test_pairs_sorted_by_key(dirs):
    r, g = dirs
    names = ["b10.png", "B.png", "a.png", "b2.png", "_x.png", "é.png"]
    make(r, *names)
    make(g, *names)
    assert keys(find_pairs(r, g)) == sorted(["b10", "B", "a", "b2", "_x", "é"])
    assert keys(find_pairs(r, g)) == ["B", "_x", "a", "b10", "b2", "é"]


def test_non_recursive_ignores_subdirectories(dirs):
    r, g = dirs
    make(r, "top.png", "sub/deep.png")
    make(g, "top.png", "sub/deep.png")
    res = find_pairs(r, g)
    assert res.pairs == [Pair("top", r / "top.png", g / "top.png")]
    assert res.restored_only == [] and res.gt_only == [] and res.ignored == []


def test_recursive_nested_keys(dirs):
    r, g = dirs
    make(r, "top.png", "a/x.png", "a/b/y.png", "c/x.png")
    make(g, "top.jpg", "a/x.jpg", "a/b/y.bmp", "c/other.png")
    res = find_pairs(r, g, recursive=True)
    assert res.pairs == [
        Pair("a/b/y", r / "a/b/y.png", g / "a/b/y.bmp"),
        Pair("a/x", r / "a/x.png", g / "a/x.jpg"),
        Pair("top", r / "top.png", g / "top.jpg"),
    ]
    assert res.restored_only == [r / "c/x.png"]
    assert res.gt_only == [g / "c/other.png"]


def test_recursive_same_stem_in_different_dirs_is_not_duplicate(dirs):
    r, g = dirs
    make(r, "a/x.png", "b/x.png")
    make(g, "a/x.png", "b/x.png")
    assert keys(find_pairs(r, g, recursive=True)) == ["a/x", "b/x"]


def test_recursive_skips_hidden_directories(dirs):
    r, g = dirs
    make(r, "x.png", ".cache/x2.png", ".git/y.png")
    make(g, "x.png")
    res = find_pairs(r, g, recursive=True)
    assert keys(res) == ["x"]
    assert res.restored_only == [] and res.ignored == []


def test_hidden_appledouble_and_non_images_are_ignored(dirs):
    r, g = dirs
    make(r, "x.png", "._x.png", ".hidden.png", "notes.txt", "README", "x.")
    make(g, "x.png", ".DS_Store", "._x.png", "data.csv")
    res = find_pairs(r, g)
    assert res.pairs == [Pair("x", r / "x.png", g / "x.png")]
    assert res.ignored == sorted([
        r / "._x.png", r / ".hidden.png", r / "notes.txt", r / "README", r / "x.",
        g / ".DS_Store", g / "._x.png", g / "data.csv",
    ])
    assert len(res.ignored) == 8
    assert res.missing_count == 0


def test_ignored_in_subdirectories_when_recursive(dirs):
    r, g = dirs
    make(r, "a/x.png", "a/._x.png")
    make(g, "a/x.png")
    res = find_pairs(r, g, recursive=True)
    assert res.ignored == [r / "a/._x.png"]


def test_nfc_and_nfd_names_pair(dirs):
    r, g = dirs
    nfd, nfc = unicodedata.normalize("NFD", "café"), unicodedata.normalize("NFC", "café")
    assert nfd != nfc
    touch(r / f"{nfd}.png")
    touch(g / f"{nfc}.png")
    res = find_pairs(r, g)
    if len(os.listdir(r)) != 1:
        pytest.fail("unexpected directory content")
    assert keys(res) == [nfc]
    assert res.pairs[0].restored.name == os.listdir(r)[0]
    assert res.missing_count == 0


def test_nfd_directory_names_pair_recursively(dirs):
    r, g = dirs
    touch(r / unicodedata.normalize("NFD", "émile") / "x.png")
    touch(g / unicodedata.normalize("NFC", "émile") / "x.png")
    res = find_pairs(r, g, recursive=True)
    assert keys(res) == [unicodedata.normalize("NFC", "émile/x")]


def test_duplicate_stem_on_one_side_names_both_files(dirs):
    r, g = dirs
    make(r, "x.png", "x.jpg")
    make(g, "x.png")
    with pytest.raises(InputError) as err:
        find_pairs(r, g)
    msg = str(err.value)
    assert str(r / "x.png") in msg and str(r / "x.jpg") in msg
    assert "--pairs" in msg and "rename" in msg
    assert err.value.exit_code == 2


def test_duplicate_extension_case_is_duplicate(dirs):
    r, g = dirs
    make(g, "x.png", "x.PNG")
    if len(os.listdir(g)) != 2:
        pytest.skip("case-insensitive file system")
    make(r, "x.png")
    with pytest.raises(InputError) as err:
        find_pairs(r, g)
    assert str(g / "x.PNG") in str(err.value) and str(g / "x.png") in str(err.value)


def test_duplicate_unicode_forms_is_duplicate(dirs):
    r, g = dirs
    touch(r / (unicodedata.normalize("NFD", "café") + ".png"))
    touch(r / (unicodedata.normalize("NFC", "café") + ".png"))
    if len(os.listdir(r)) != 2:
        pytest.skip("file system normalises Unicode names")
    make(g, "café.png")
    with pytest.raises(InputError, match="same name"):
        find_pairs(r, g)


def test_symlinked_files_are_followed(dirs, tmp_path):
    r, g = dirs
    target = touch(tmp_path / "elsewhere" / "real.png")
    (r / "x.png").symlink_to(target)
    make(g, "x.png")
    assert find_pairs(r, g).pairs == [Pair("x", r / "x.png", g / "x.png")]


def test_dangling_symlink_is_ignored(dirs, tmp_path):
    r, g = dirs
    make(r, "x.png")
    (r / "gone.png").symlink_to(tmp_path / "nowhere.png")
    make(g, "x.png")
    res = find_pairs(r, g)
    assert keys(res) == ["x"]
    assert res.ignored == [r / "gone.png"]


def test_recursive_follows_directory_symlinks(dirs, tmp_path):
    r, g = dirs
    make(tmp_path / "shared", "s.png")
    (r / "link").symlink_to(tmp_path / "shared", target_is_directory=True)
    make(g, "link/s.png")
    assert find_pairs(r, g, recursive=True).pairs == [
        Pair("link/s", r / "link/s.png", g / "link/s.png")
    ]


def test_recursive_symlink_loop_terminates(dirs):
    r, g = dirs
    make(r, "a/x.png")
    (r / "a" / "loop").symlink_to(r, target_is_directory=True)
    (r / "a" / "self").symlink_to(r / "a", target_is_directory=True)
    make(g, "a/x.png")
    res = find_pairs(r, g, recursive=True)
    assert res.pairs == [Pair("a/x", r / "a/x.png", g / "a/x.png")]
    assert res.restored_only == []


def test_empty_directory_is_error(dirs):
    r, g = dirs
    with pytest.raises(InputError, match="no images found") as err:
        find_pairs(r, g)
    assert str(r) in str(err.value)
    assert err.value.exit_code == 2


def test_directory_with_only_non_images_is_error(dirs):
    r, g = dirs
    make(r, "x.png")
    make(g, "notes.txt", ".x.png")
    with pytest.raises(InputError, match="no images found") as err:
        find_pairs(r, g)
    assert err.value.path == str(g)


def test_empty_top_level_suggests_recursive(dirs):
    r, g = dirs
    make(r, "sub/x.png")
    make(g, "sub/x.png")
    with pytest.raises(InputError, match="--recursive"):
        find_pairs(r, g)
    assert keys(find_pairs(r, g, recursive=True)) == ["sub/x"]


# --------------------------------------------------------------------------- files / errors


def test_two_files_make_one_pair(tmp_path):
    rf = touch(tmp_path / "out" / "photo.v1.png")
    gf = touch(tmp_path / "ref" / "original.jpg")
    res = find_pairs(rf, gf)
    assert res.pairs == [Pair("photo.v1", rf, gf)]
    assert res.restored_only == [] and res.gt_only == [] and res.ignored == []


def test_two_files_key_is_nfc(tmp_path):
    rf = touch(tmp_path / (unicodedata.normalize("NFD", "café") + ".png"))
    gf = touch(tmp_path / "g.png")
    assert keys(find_pairs(rf, gf)) == [unicodedata.normalize("NFC", "café")]


@pytest.mark.parametrize("file_side", ["restored", "gt"])
def test_file_and_directory_mix_is_error(dirs, file_side):
    r, g = dirs
    f = touch(r.parent / "single.png")
    args = (f, g) if file_side == "restored" else (r, f)
    with pytest.raises(InputError) as err:
        find_pairs(*args)
    msg = str(err.value)
    assert "both be directories or both be files" in msg
    assert "--pairs" in msg and str(f) in msg


@pytest.mark.parametrize("missing_side", ["restored", "gt"])
def test_missing_path_is_named(dirs, missing_side):
    r, g = dirs
    ghost = r.parent / "ghost"
    args = (ghost, g) if missing_side == "restored" else (r, ghost)
    with pytest.raises(InputError, match="does not exist") as err:
        find_pairs(*args)
    assert err.value.path == str(ghost)


def test_image_extensions_constant():
    assert ".png" in IMAGE_EXTENSIONS and ".avif" in IMAGE_EXTENSIONS
    assert all(e == e.lower() and e.startswith(".") for e in IMAGE_EXTENSIONS)


# --------------------------------------------------------------------------- manifest


@pytest.fixture
def files(tmp_path: Path) -> Path:
    make(tmp_path, "out/a.png", "out/b.png", "ref/a.jpg", "ref/b.jpg", "out/sub/a.png")
    return tmp_path


def write_manifest(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_manifest_with_header_relative_to_manifest_dir(files):
    m = write_manifest(files / "pairs.csv", "restored,gt\nout/b.png,ref/b.jpg\nout/a.png,ref/a.jpg\n")
    res = read_manifest(m)
    assert res.pairs == [
        Pair("a", files / "out/a.png", files / "ref/a.jpg"),
        Pair("b", files / "out/b.png", files / "ref/b.jpg"),
    ]
    assert res.restored_only == [] and res.gt_only == [] and res.ignored == []
    assert res.missing_count == 0


def test_manifest_header_case_and_whitespace(files):
    m = write_manifest(files / "p.csv", " Restored , GT \nout/a.png , ref/a.jpg\n")
    assert keys(read_manifest(m)) == ["a"]


def test_manifest_without_header_comments_blank_lines_crlf(files):
    text = "# produced by run 7\r\n\r\nout/a.png,ref/a.jpg\r\n   \r\n  # another comment\r\nout/b.png,ref/b.jpg"
    m = write_manifest(files / "p.csv", text)
    assert read_manifest(m).pairs == [
        Pair("a", files / "out/a.png", files / "ref/a.jpg"),
        Pair("b", files / "out/b.png", files / "ref/b.jpg"),
    ]


def test_manifest_header_only_allowed_on_first_row(files):
    make(files, "restored", "gt")  # files literally named like the header
    m = write_manifest(files / "p.csv", "out/a.png,ref/a.jpg\nrestored,gt\n")
    assert keys(read_manifest(m)) == ["a", "restored"]


def test_manifest_utf8_bom_and_quoted_commas(files):
    touch(files / "out" / "x,y.png")
    m = files / "p.csv"
    m.write_bytes('\ufeffrestored,gt\n"out/x,y.png",ref/a.jpg\n'.encode("utf-8"))
    assert read_manifest(m).pairs == [Pair("x,y", files / "out/x,y.png", files / "ref/a.jpg")]


def test_manifest_absolute_paths_and_explicit_base(files, tmp_path):
    m = write_manifest(tmp_path / "elsewhere.csv",
                       f"{files / 'out/a.png'},a.jpg\n")
    res = read_manifest(m, base=files / "ref")
    assert res.pairs == [Pair("a", files / "out/a.png", files / "ref/a.jpg")]


def test_manifest_from_stream_resolves_against_cwd(files, monkeypatch):
    monkeypatch.chdir(files)
    res = read_manifest(io.StringIO("restored,gt\nout/a.png,ref/a.jpg\n"))
    assert res.pairs == [Pair("a", files / "out/a.png", files / "ref/a.jpg")]
    assert res.pairs[0].restored.is_absolute()


def test_manifest_from_stream_with_base(files):
    res = read_manifest(io.StringIO("out/b.png,ref/b.jpg\n"), base=files)
    assert res.pairs == [Pair("b", files / "out/b.png", files / "ref/b.jpg")]


@pytest.mark.parametrize("row", ["out/a.png", "out/a.png,ref/a.jpg,extra", "out/a.png,", ",ref/a.jpg"])
def test_manifest_bad_row_names_manifest_and_line(files, row):
    m = write_manifest(files / "p.csv", f"restored,gt\n# note\nout/b.png,ref/b.jpg\n{row}\n")
    with pytest.raises(InputError, match="line 4") as err:
        read_manifest(m)
    assert err.value.path == str(m)
    assert "2" in err.value.what


def test_manifest_bad_row_in_stream_is_named(files):
    stream = io.StringIO("a,b,c\n")
    with pytest.raises(InputError, match="line 1") as err:
        read_manifest(stream, base=files)
    assert err.value.path == "<stream>"


def test_manifest_stdin_name(files, monkeypatch):
    stream = io.StringIO("a\n")
    stream.name = "<stdin>"  # what sys.stdin reports
    with pytest.raises(InputError) as err:
        read_manifest(stream, base=files)
    assert err.value.path == "<stdin>"


@pytest.mark.parametrize("row, missing", [("out/nope.png,ref/a.jpg", "out/nope.png"),
                                          ("out/a.png,ref/nope.jpg", "ref/nope.jpg")])
def test_manifest_missing_file_names_file_and_line(files, row, missing):
    m = write_manifest(files / "p.csv", f"out/b.png,ref/b.jpg\n\n{row}\n")
    with pytest.raises(InputError, match="line 3") as err:
        read_manifest(m)
    assert err.value.path == str(files / missing)
    assert "does not exist" in str(err.value) and str(m) in str(err.value)


def test_manifest_directory_listed_is_error(files):
    m = write_manifest(files / "p.csv", "out,ref/a.jpg\n")
    with pytest.raises(InputError, match="line 1 .* is not a file"):
        read_manifest(m)


def test_manifest_missing_manifest(tmp_path):
    with pytest.raises(InputError, match="does not exist") as err:
        read_manifest(tmp_path / "absent.csv")
    assert err.value.path == str(tmp_path / "absent.csv")


def test_manifest_empty_is_error(files):
    m = write_manifest(files / "p.csv", "restored,gt\n# nothing\n\n")
    with pytest.raises(InputError, match="no pairs"):
        read_manifest(m)


def test_manifest_exact_duplicate_row_is_error(files):
    m = write_manifest(files / "p.csv", "out/a.png,ref/a.jpg\nout/b.png,ref/b.jpg\n./out/a.png,ref/a.jpg\n")
    with pytest.raises(InputError, match="line 3 repeats the pair on line 1") as err:
        read_manifest(m)
    assert err.value.path == str(m)


def test_manifest_colliding_stems_use_written_path(files):
    m = write_manifest(files / "p.csv", "out/sub/a.png,ref/a.jpg\nout/a.png,ref/a.jpg\nout/b.png,ref/b.jpg\n")
    res = read_manifest(m)
    assert res.pairs == [
        Pair("b", files / "out/b.png", files / "ref/b.jpg"),
        Pair("out/a", files / "out/a.png", files / "ref/a.jpg"),
        Pair("out/sub/a", files / "out/sub/a.png", files / "ref/a.jpg"),
    ]


def test_manifest_colliding_paths_without_extension_keep_extension(files):
    touch(files / "out" / "a.jpg")
    m = write_manifest(files / "p.csv", "out/a.png,ref/a.jpg\nout/a.jpg,ref/a.jpg\n")
    assert keys(read_manifest(m)) == ["out/a.jpg", "out/a.png"]


def test_manifest_same_restored_twice_numbered_in_order(files):
    m = write_manifest(files / "p.csv", "out/a.png,ref/b.jpg\nout/a.png,ref/a.jpg\n")
    res = read_manifest(m)
    assert res.pairs == [
        Pair("out/a.png#1", files / "out/a.png", files / "ref/b.jpg"),
        Pair("out/a.png#2", files / "out/a.png", files / "ref/a.jpg"),
    ]


def test_manifest_keys_are_nfc(files):
    touch(files / "out" / (unicodedata.normalize("NFD", "café") + ".png"))
    nfd_row = unicodedata.normalize("NFD", "out/café.png")
    m = write_manifest(files / "p.csv", f"{nfd_row},ref/a.jpg\n")
    assert keys(read_manifest(m)) == [unicodedata.normalize("NFC", "café")]


def test_manifest_keys_unique_and_sorted(files):
    make(files, *[f"o{i}/img.png" for i in range(5)])
    rows = "".join(f"o{i}/img.png,ref/a.jpg\n" for i in (3, 0, 4, 1, 2))
    m = write_manifest(files / "p.csv", rows + "out/b.png,ref/b.jpg\n")
    assert keys(read_manifest(m)) == ["b", "o0/img", "o1/img", "o2/img", "o3/img", "o4/img"]


def test_pairing_module_has_no_heavy_imports():
    src = Path(sys.modules["hlcli.inputs.pairing"].__file__).read_text(encoding="utf-8")
    assert "import torch" not in src and "PIL" not in src
