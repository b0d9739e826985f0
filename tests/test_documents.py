"""The document readers (hlcli/runs/readers.py, hlcli/runs/jsondoc.py): every refusal, one by one, for each
kind (a score run, a shard part, a maps index), with jsonschema and without it; the commands'
one-line ``Error: <file>: <JSON path>: <what>: <fix>`` and exit 2; hostile strings inert in the
report and on the terminal; the commands' own documents strict JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from hlcli.runs import readers
from hlcli.cli import cli
from hlcli.runs.jsondoc import DocumentError

from .cases import strict_json

KINDS = ("score", "part", "maps")


@pytest.fixture(params=["jsonschema", "without jsonschema"])
def schema_library(request, monkeypatch):
    if request.param != "jsonschema":
        monkeypatch.setitem(sys.modules, "jsonschema", None)  # import fails: the fallback checker
    return request.param


def _source(docs, kind: str) -> str:
    return {"score": docs["run"], "part": docs["part0"], "maps": docs["maps"]}[kind]


def _read(kind: str, path: Path):
    if kind == "maps":
        return readers.read_maps_index(path.parent)
    return readers.read_part(path) if kind == "part" else readers.read_score(path)


def _write(tmp_path: Path, kind: str, data: bytes | str) -> Path:
    path = tmp_path / kind / ("maps.json" if kind == "maps" else "doc.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def _refused(kind: str, path: Path) -> str:
    with pytest.raises(DocumentError) as info:
        _read(kind, path)
    text = info.value.render()
    assert info.value.exit_code == 2 and "\n" not in text
    assert text.startswith(str(path) + ": "), text
    return text


def _edited(docs, kind: str, edit) -> str:
    doc = json.loads(_source(docs, kind))
    edit(doc)
    return json.dumps(doc, allow_nan=True)


def _pair_layers(doc):
    return doc["pairs"][1]["layers"]


MUTATIONS = {
    # name: (edit of a score/part document, edit of a maps index, expected JSON path, expected words)
    "missing key": (lambda d: d["settings"].pop("lambda"), lambda d: d.pop("keys"),
                    {"score": "settings.lambda", "maps": "keys"}, "is missing"),
    "wrong type": (lambda d: d["pairs"][1].update(l1="0.5"), lambda d: d["pairs"]["set5/a"].update(width="28"),
                   {"score": "pairs[1].l1", "maps": 'pairs["set5/a"].width'}, "is a string"),
    "negative score": (lambda d: d["pairs"][0].update(hybrid=-1.0),
                       lambda d: d["layers"][0].update(weight=-1),
                       {"score": "pairs[0].hybrid", "maps": "layers[0].weight"}, "below the minimum"),
    "extra key": (lambda d: d["pairs"][0].update(hybird=1.0), lambda d: d["pairs"]["set5/a"]["range"].pop("l1"),
                  {"score": "pairs[0].hybird", "maps": 'pairs["set5/a"].range.l1'}, ""),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", list(MUTATIONS))
def test_schema_refusals_name_the_json_path(scored_documents, tmp_path, kind, case, schema_library):
    edit_run, edit_maps, where, words = MUTATIONS[case]
    text = _refused(kind, _write(tmp_path, kind, _edited(scored_documents, kind,
                                                         edit_maps if kind == "maps" else edit_run)))
    assert f": {where['maps' if kind == 'maps' else 'score']}: " in text and words in text, text


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999", "1e300"])
def test_non_finite_or_huge_numbers_are_refused(scored_documents, tmp_path, kind, number, schema_library):
    text = _source(scored_documents, kind)
    if kind == "maps":
        old = '"percentile": 99.5'
        new = f'"percentile": {number}'
    else:
        old = f'"lambda": {json.loads(text)["settings"]["lambda"]}'
        new = f'"lambda": {number}'
    assert old in text
    refusal = _refused(kind, _write(tmp_path, kind, text.replace(old, new, 1)))
    assert ("percentile" in refusal or "lambda" in refusal) or "NaN" in refusal or "Infinity" in refusal, refusal


@pytest.mark.parametrize("kind", ["score", "part"])
def test_a_pair_without_a_layer_of_the_settings_is_refused(scored_documents, tmp_path, kind, schema_library):
    text = _edited(scored_documents, kind, lambda d: _pair_layers(d).pop("conv2_1"))
    refusal = _refused(kind, _write(tmp_path, kind, text))
    assert ": pairs[1].layers.conv2_1: is missing: the settings name layers conv1_2, conv2_1" in refusal


@pytest.mark.parametrize("kind", ["score", "part"])
def test_a_pair_with_a_layer_the_settings_do_not_name_is_refused(scored_documents, tmp_path, kind, schema_library):
    text = _edited(scored_documents, kind, lambda d: _pair_layers(d).update(conv4_3=0.1))
    assert ": pairs[1].layers.conv4_3: is not one of the settings' layers" in _refused(kind, _write(tmp_path, kind, text))


def test_maps_index_with_other_layers_than_its_settings_is_refused(scored_documents, tmp_path, schema_library):
    text = _edited(scored_documents, "maps", lambda d: d["layers"].pop())
    assert ": layers: are conv1_2, the settings' are conv1_2, conv2_1" in _refused("maps", _write(tmp_path, "maps", text))


@pytest.mark.parametrize("kind", KINDS)
def test_duplicate_keys_are_refused(scored_documents, tmp_path, kind, schema_library):
    text = _source(scored_documents, kind)
    old = '"tool": "hlcli",'
    assert old in text
    refusal = _refused(kind, _write(tmp_path, kind, text.replace(old, old + ' "tool": "hlcli",', 1)))
    assert ": tool: appears twice in the same object (a duplicated key)" in refusal


@pytest.mark.parametrize("kind", ["score", "part"])
def test_duplicated_pairs_are_refused(scored_documents, tmp_path, kind, schema_library):
    text = _edited(scored_documents, kind, lambda d: d["pairs"].append(dict(d["pairs"][0])))
    assert "a duplicated pair" in _refused(kind, _write(tmp_path, kind, text))


@pytest.mark.parametrize("kind", ["score", "part"])
def test_counts_that_disagree_are_refused(scored_documents, tmp_path, kind, schema_library):
    text = _edited(scored_documents, kind, lambda d: d["summary"].update(count=d["summary"]["count"] + 1))
    assert ": summary.count: is " in _refused(kind, _write(tmp_path, kind, text))


@pytest.mark.parametrize("kind", KINDS)
def test_a_newer_schema_version_is_refused_by_name(scored_documents, tmp_path, kind, schema_library):
    key = "version" if kind == "maps" else "schema_version"
    text = _edited(scored_documents, kind, lambda d: d.update({key: 2, "a_key_of_version_2": {}}))
    refusal = _refused(kind, _write(tmp_path, kind, text))
    assert f": {key}: is 2: the document was written by a newer hlcli" in refusal
    assert f"reads {key} 1: upgrade hlcli" in refusal


BYTES = {
    "truncated file": (lambda text: text[: len(text) // 2].encode(), "ends before its JSON is complete"),
    "not JSON": (lambda text: b"schema_version = 1\n", "is not valid JSON"),
    "not UTF-8": (lambda text: text.encode("utf-16"), "is not UTF-8 text"),
    "latin-1 byte": (lambda text: text.replace('"hlcli"', '"hlcl\u00e9"', 1).encode("latin-1"), "is not UTF-8 text"),
    "empty file": (lambda text: b"", "is empty"),
    "white space": (lambda text: b" \n\t", "holds only white space"),
    "an array": (lambda text: b"[]", "holds an array, not a JSON object"),
    "lone surrogate": (lambda text: text.replace('"hlcli"', '"\\ud800"', 1).encode(), "lone UTF-16 surrogate"),
    "deep nesting": (lambda text: b"[" * 100000 + b"]" * 100000, "nested deeper"),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", list(BYTES))
def test_unreadable_bytes_are_refused(scored_documents, tmp_path, kind, case, schema_library):
    make, words = BYTES[case]
    assert words in _refused(kind, _write(tmp_path, kind, make(_source(scored_documents, kind))))


@pytest.mark.parametrize("cut", ['{"schema_version": -', '{"schema_version": 1e', '{"a": tru', '{"a": nul',
                                 '{"a": 0.12', '{"a": "x', '{"a"', '{'])
def test_a_file_cut_inside_a_literal_is_truncated(tmp_path, cut):
    """Where the cut falls (inside a number, true/null, a string) never changes the diagnosis."""
    assert "ends before its JSON is complete" in _refused("score", _write(tmp_path, "score", cut))


@pytest.mark.parametrize("kind", KINDS)
def test_a_directory_given_as_a_file_is_refused(tmp_path, kind):
    where = tmp_path / kind / ("maps.json" if kind == "maps" else "doc.json")
    where.mkdir(parents=True)
    assert "is a directory, not a file" in _refused(kind, where)


def test_a_summary_only_run_is_refused_where_pairs_are_needed(scored_documents, tmp_path):
    def summary_only(d):
        d.pop("pairs")
        d["summary_only"] = True

    path = _write(tmp_path, "score", _edited(scored_documents, "score", summary_only))
    assert "summary_only: is true" in _refused("score", path)
    assert readers.read_score(path, pairs_needed=False)["summary_only"] is True


def test_unknown_settings_and_opt_in_metrics_are_accepted(scored_documents, tmp_path, schema_library):
    """Forward compatible within schema version 1: settings may gain keys. The opt-in metrics of
    settings.metrics (issue 16) are numbers every pair carries (null: PSNR's +inf), listed by
    readers.metric_names, the one place the reader asks."""
    doc = json.loads(_edited(scored_documents, "score", lambda d: d["settings"].update(a_future_setting={"x": 1})))
    assert readers.check_score(doc, "x.json") is doc
    assert readers.metric_names(doc["settings"]) == ["l1", "conv1_2", "conv2_1", "perceptual", "hybrid", "psnr",
                                                     "ssim_y"]
    assert any(p["psnr"] is None for p in doc["pairs"])  # the identical pair
    del doc["pairs"][3]["ssim_y"]
    with pytest.raises(DocumentError, match=r"x\.json: pairs\[3\]\.ssim_y: is missing: settings\.metrics names"):
        readers.check_score(doc, "x.json")


# -- through the commands ---------------------------------------------------------------------------

def _commands(docs, mutant: Path) -> list[list[str]]:
    root = docs["root"]
    return [["compare", str(mutant), str(root / "run.json")], ["calibrate", str(mutant)],
            ["tradeoff", str(mutant), str(root / "baseline.json")], ["table", str(mutant), str(root / "baseline.json")],
            ["report", str(mutant), "-o", str(mutant.parent / "r.html")],
            ["merge", str(root / "part0.json"), str(root / "part1.json"), "--baseline", str(mutant)]]


@pytest.mark.parametrize("index", range(6))
def test_every_command_refuses_with_one_line_and_exit_2(scored_documents, tmp_path, index):
    text = _edited(scored_documents, "score", lambda d: _pair_layers(d).pop("conv2_1"))
    mutant = _write(tmp_path, "score", text)
    r = CliRunner().invoke(cli, _commands(scored_documents, mutant)[index])
    assert r.exit_code == 2, r.stderr
    assert r.stderr == (f"Error: {mutant}: pairs[1].layers.conv2_1: is missing: the settings name layers conv1_2, "
                        "conv2_1, and every pair has a value for each: give a file written by `hlcli score --format "
                        "json` (with its pairs, not --summary-only)\n")


def test_merge_and_report_maps_refuse_with_their_readers(scored_documents, tmp_path):
    part = _write(tmp_path, "part", _edited(scored_documents, "part", lambda d: d["shard"].update(index=5)))
    r = CliRunner().invoke(cli, ["merge", str(part), str(scored_documents["root"] / "part1.json")])
    assert r.exit_code == 2 and ": shard.index: is 5, not below the shard count 2" in r.stderr
    maps = _write(tmp_path, "maps", _edited(scored_documents, "maps", lambda d: d["keys"].pop()))
    r = CliRunner().invoke(cli, ["report", str(scored_documents["root"] / "run.json"), "--maps", str(maps.parent),
                                 "-o", str(tmp_path / "r.html")])
    assert r.exit_code == 2 and "maps.json: pairs" in r.stderr and "is not listed in keys" in r.stderr


# -- hostile strings --------------------------------------------------------------------------------

MARKUP = "[red]x[/red]"
ESCAPE = "\x1b[31mred\x1b[0m"
SCRIPT = "<script>alert(1)</script>"


def _hostile(docs) -> dict:
    doc = json.loads(docs["run"])
    for i, p in enumerate(doc["pairs"]):
        old = p["key"]
        p["key"] = f"{p['key'].split('/')[0]}/{[MARKUP, ESCAPE, SCRIPT, 'ok', 'ok2'][i]}"
        p["restored"] = f"/x/{SCRIPT}{ESCAPE}.png"
        for w in doc["summary"]["worst"]:
            if w["key"] == old:
                w["key"] = p["key"]
    doc["command"] = ["hlcli", "score", SCRIPT, ESCAPE, MARKUP]
    doc["versions"]["torch"] = SCRIPT
    doc["skipped"][0]["reason"] = SCRIPT + ESCAPE
    doc["missing"]["gt_only"] = [f"/gt/{SCRIPT}{ESCAPE}{MARKUP}.png"]
    doc["gate"]["checks"][1]["group"] = SCRIPT
    return doc


def test_hostile_strings_are_inert_in_the_report(scored_documents, tmp_path):
    path = tmp_path / "hostile.json"
    path.write_text(json.dumps(_hostile(scored_documents)))
    readers.read_score(path)
    r = CliRunner().invoke(cli, ["report", str(path), "-o", str(tmp_path / "r.html")])
    assert r.exit_code == 0, r.stderr
    page = (tmp_path / "r.html").read_text("utf-8")
    assert SCRIPT not in page and "\x1b" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "hlcli score &#x27;&lt;script&gt;" in page or "hlcli score '&lt;script&gt;" in page  # shell-quoted


@pytest.mark.parametrize("argv", [["compare", "{h}", "{h}", "-f", "table"], ["merge", "{p0}", "{p1}", "-f", "table",
                                  "--allow-skips"]])
def test_hostile_strings_are_shown_literally_and_escaped_on_the_terminal(scored_documents, tmp_path, argv):
    root = scored_documents["root"]
    path = tmp_path / "hostile.json"
    doc = _hostile(scored_documents)
    path.write_text(json.dumps(doc))
    part = json.loads(scored_documents["part0"])
    part["pairs"][0]["key"] = f"set14/{MARKUP}{ESCAPE}"
    part["skipped"] = [{**s, "key": f"set14/{ESCAPE}", "reason": ESCAPE} for s in part["skipped"]]
    (tmp_path / "p0.json").write_text(json.dumps(part))
    args = [a.format(h=path, run=root / "run.json", p0=tmp_path / "p0.json", p1=root / "part1.json") for a in argv]
    r = CliRunner().invoke(cli, args, terminal_width=200)
    assert r.exit_code in (0, 1), r.stderr
    assert "\x1b" not in r.stdout + r.stderr
    assert "\\x1b[31m" in r.stdout + r.stderr
    if argv[0] == "compare":
        assert MARKUP in r.stdout


def test_the_commands_own_documents_are_strict_json(scored_documents, tmp_path):
    """λ so large that calibrate's share is 1, a perceptual of 0: whatever the inputs, the
    outputs of calibrate, tradeoff, table and merge parse as strict JSON."""
    root = scored_documents["root"]

    def extreme(d):
        d["settings"]["lambda"] = 1e99
        for p in d["pairs"]:
            p["perceptual"] = 0.0
            p["layers"] = {k: 0.0 for k in p["layers"]}

    path = _write(tmp_path, "score", _edited(scored_documents, "score", extreme))
    for args in (["calibrate", str(path), "-f", "json"], ["tradeoff", str(path), str(root / "baseline.json"), "-f",
                 "json", "--allow-settings-mismatch"], ["table", str(path), str(root / "baseline.json"), "-f", "json"],
                 ["merge", str(root / "part0.json"), str(root / "part1.json"), "-f", "json", "--allow-skips"]):
        r = CliRunner().invoke(cli, args)
        assert r.exit_code in (0, 1, 2), (args, r.stderr)
        if r.exit_code != 2:
            strict_json(r.stdout)


@pytest.mark.parametrize("value", [0.0, 1e-100, 1e100, "mixed"])
def test_extreme_but_valid_numbers_reach_every_command_without_an_internal_error(scored_documents, tmp_path, value):
    """The readers bound numbers to 0 and ±1e-100..±1e100; everything inside must work
    downstream, the report's real plots included (numpy's histogram failed on 1e100)."""
    root = scored_documents["root"]

    def extreme(d):
        for i, p in enumerate(d["pairs"]):
            v = (1e100 if i == 0 else 1e-100) if value == "mixed" else value
            p.update(l1=v, perceptual=v, hybrid=v, layers={k: v for k in p["layers"]})

    path = _write(tmp_path, "score", _edited(scored_documents, "score", extreme))
    readers.read_score(path)
    runs = [str(path), str(root / "baseline.json")]
    for args in (["report", str(path), "-o", str(tmp_path / "r.html")], ["calibrate", str(path), "-f", "json"],
                 ["calibrate", str(path), "--balance-layers"], ["compare", *runs], ["tradeoff", *runs, "-f", "json"],
                 ["table", *runs, "-f", "latex"], ["merge", str(root / "part0.json"), str(root / "part1.json"),
                                                  "--allow-skips", "-f", "json", "--baseline", str(path)]):
        r = CliRunner().invoke(cli, args)
        assert r.exit_code in (0, 1, 2) and "internal error" not in r.stderr, (args, r.stderr)
        if r.exit_code != 2 and "-f" in args and args[args.index("-f") + 1] == "json":
            strict_json(r.stdout)


@pytest.mark.skipif(not hasattr(__import__("os"), "mkfifo"), reason="needs mkfifo")
def test_a_document_naming_a_fifo_or_a_directory_as_an_image_does_not_hang_the_report(scored_documents, tmp_path):
    import os

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    def hostile_paths(d):
        d["pairs"][0]["restored"] = str(fifo)  # reading it would block forever
        d["pairs"][1]["gt"] = str(tmp_path)

    path = _write(tmp_path, "score", _edited(scored_documents, "score", hostile_paths))
    r = CliRunner().invoke(cli, ["report", str(path), "-o", str(tmp_path / "r.html")])
    assert r.exit_code == 0, r.stderr


@pytest.mark.parametrize("images", ["embed", "link"])
def test_a_path_too_long_for_the_system_is_no_internal_error(scored_documents, tmp_path, images):
    """Found by benchmarks/docfuzz.py (seed 1, mutant 124089): Path.is_file() raises
    ENAMETOOLONG for a 5,000-character path instead of returning False."""
    def long_names(d):
        d["pairs"][0]["restored"] = "x" * 5000
        d["pairs"][1]["gt"] = "/tmp/" + "y" * 300 + "/z.png"

    path = _write(tmp_path, "score", _edited(scored_documents, "score", long_names))
    r = CliRunner().invoke(cli, ["report", str(path), "-o", str(tmp_path / "r.html"), "--images", images])
    assert r.exit_code == 0, r.stderr
