"""hlcli report without a browser: what it accepts (schema-checked runs, matching maps), what
it refuses (exit 2 naming the file, exit 3 naming the install command), escaping in the page
source, and the size of a 1,000-pair report. The page in Chromium: test_report_browser.py."""

from __future__ import annotations

import json
import re
import sys

import pytest
from click.testing import CliRunner

from hlcli.cli import cli

from .conftest import SAMPLES

pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def stored(tmp_path_factory, weights_file):
    """A run of samples/ stored as JSON with its maps (npy only: the report colours them)."""
    root = tmp_path_factory.mktemp("stored")
    result = CliRunner().invoke(cli, ["score", str(SAMPLES / "restored"), str(SAMPLES / "gt"), "--weights",
                                      str(weights_file), "-q", "-f", "json", "-o", str(root / "run.json"),
                                      "--save-maps", str(root / "maps"), "--maps-format", "npy"])
    assert result.exit_code == 0, result.stderr
    return root


def report(*args: str):
    return CliRunner().invoke(cli, ["report", *args])


def test_report_with_npy_maps(stored, tmp_path):
    out = tmp_path / "r.html"
    result = report(str(stored / "run.json"), "--maps", str(stored / "maps"), "-o", str(out), "--top", "2",
                    "--thumb-size", "64")
    assert result.exit_code == 0, result.stderr
    page = out.read_text()
    assert page.count('<article class="worst"') == 2
    assert page.count("data:image/png;base64,") == 2 * 4 + 1  # 4 pictures per pair + the colour bar
    assert re.search(r'<img src="data:image/png;base64,[^"]+" width="64"', page)
    assert "https://" not in page.split("<body>")[1].split("<svg")[0]


def test_report_without_maps_says_how_to_get_them(stored, tmp_path):
    out = tmp_path / "r.html"
    assert report(str(stored / "run.json"), "-o", str(out)).exit_code == 0
    page = out.read_text()
    assert "No error maps" in page and page.count('<article class="worst"') == 4


def test_refuses_what_is_not_a_score_document(tmp_path):
    bad = tmp_path / "other.json"
    bad.write_text(json.dumps({"hello": 1}))
    result = report(str(bad), "-o", str(tmp_path / "r.html"))
    assert result.exit_code == 2 and "other.json" in result.stderr and result.stderr.startswith("Error:")
    assert not (tmp_path / "r.html").exists()


def test_refuses_maps_of_another_run(stored, tmp_path):
    doc = json.loads((stored / "run.json").read_text())
    fewer = tmp_path / "fewer.json"
    fewer.write_text(json.dumps({**doc, "pairs": doc["pairs"][:2], "summary": {**doc["summary"], "count": 2}}))
    result = report(str(fewer), "--maps", str(stored / "maps"), "-o", str(tmp_path / "r.html"))
    assert result.exit_code == 2 and "maps.json" in result.stderr and "other pairs" in result.stderr
    other = tmp_path / "lambda.json"
    other.write_text(json.dumps({**doc, "settings": {**doc["settings"], "lambda": 0.5}}))
    result = report(str(other), "--maps", str(stored / "maps"), "-o", str(tmp_path / "r.html"))
    assert result.exit_code == 2 and "other settings" in result.stderr
    result = report(str(stored / "run.json"), "--maps", str(tmp_path), "-o", str(tmp_path / "r.html"))
    assert result.exit_code == 2 and "maps.json: does not exist" in result.stderr


def test_missing_matplotlib_names_the_extra(stored, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    result = report(str(stored / "run.json"), "-o", str(tmp_path / "r.html"))
    assert result.exit_code == 3 and "pip install 'hlcli[report]'" in result.stderr


def test_every_text_is_escaped(stored, tmp_path):
    doc = json.loads((stored / "run.json").read_text())
    evil = "<img src=x onerror=alert(1)>"
    p = {**doc["pairs"][0], "key": evil, "restored": f"r/{evil}.png", "gt": f"g/</script>{evil}.png"}
    doc = {**doc, "pairs": [p, *doc["pairs"][1:]], "command": ["hlcli", "score", evil],
           "skipped": [{"key": "s" + evil, "path": evil, "reason": evil, "exit_code": 2}],
           "summary": {**doc["summary"], "skipped": 1}}
    run = tmp_path / "evil.json"
    run.write_text(json.dumps(doc))
    out = tmp_path / "r.html"
    result = report(str(run), "-o", str(out))
    assert result.exit_code == 0, result.stderr
    page = out.read_text()
    assert evil not in page and "</script><img" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert page.count("<script>") == 1 and page.count("</script>") == 2  # the keys' JSON block and the script


def test_thousand_pair_report_stays_small(stored, tmp_path):
    doc = json.loads((stored / "run.json").read_text())
    pairs = [{**doc["pairs"][i % 4], "key": f"set/{i:04d}", "hybrid": doc["pairs"][i % 4]["hybrid"] + i * 1e-6}
             for i in range(1000)]
    run = tmp_path / "big.json"
    run.write_text(json.dumps({**doc, "pairs": pairs, "summary": {**doc["summary"], "count": 1000}}))
    out = tmp_path / "big.html"
    result = report(str(run), "-o", str(out))
    assert result.exit_code == 0, result.stderr
    page = out.read_text()
    assert page.count("<tr id=\"pair-") == len(pairs) and page.count('<article class="worst"') == 12
    assert out.stat().st_size < 20e6


def test_score_report_shows_failed_gates(cli_env, tmp_path):
    out = tmp_path / "gated.html"
    result = CliRunner().invoke(cli, ["score", str(SAMPLES / "restored"), str(SAMPLES / "gt"), "-q", "-f", "csv",
                                      "--layers", "conv2_2", "--fail-if", "mean.hybrid>0", "--fail-if", "max.l1>1",
                                      "--report", str(out)])
    assert result.exit_code == 1, result.stderr
    page = out.read_text()
    assert "gates failed" in page and "mean.hybrid&gt;0" in page and page.count('class="fail"') == 1
    assert page.count('<article class="worst"') == 4 and page.count("data:image/png;base64,") == 4 * 4 + 1


@pytest.mark.parametrize("n", [1, 3, 4, 30])
def test_histogram_counts_are_whole(n):
    """The histogram's y axis shows whole counts only, however few pairs (1-4 pairs gave 0.5 steps)."""
    from hlcli.render.html_media import histogram_figure

    fig = histogram_figure([0.01 * (i % 7) for i in range(n)], 0.05)
    ax = fig.axes[0]
    lo, hi = ax.get_ylim()
    ticks = [t for t in ax.get_yticks() if lo <= t <= hi]
    assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks), ticks


# ------------------------------------------------ relative image paths from another folder (issue 22)

@pytest.fixture
def relative_run(tmp_path, monkeypatch, weights_file):
    """Four small pairs in proj/, scored from proj/ with relative paths, the document in proj/out/."""
    from .conftest import degrade, save, textured

    proj = tmp_path / "proj"
    for i in range(4):
        gt = textured(32, 40, seed=i)
        save(proj / "gt" / f"p{i}.png", gt)
        save(proj / "restored" / f"p{i}.png", degrade(gt, seed=i))
    (proj / "out").mkdir()
    monkeypatch.chdir(proj)
    result = CliRunner().invoke(cli, ["score", "restored", "gt", "--weights", str(weights_file), "-q", "-f", "json",
                                      "-o", "out/run.json", "--layers", "conv1_2", "--workers", "0"])
    assert result.exit_code == 0, result.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return proj


def test_report_from_another_folder_finds_the_images(relative_run, tmp_path):
    doc = json.loads((relative_run / "out" / "run.json").read_text())
    assert doc["cwd"] == str(relative_run) and doc["pairs"][0]["restored"].startswith("restored")
    for images in ("embed", "link"):
        out = tmp_path / f"r-{images}.html"
        result = report(str(relative_run / "out" / "run.json"), "-o", str(out), "--thumb-size", "32",
                        "--images", images)
        assert result.exit_code == 0 and "Warning" not in result.stderr, result.stderr
        page = out.read_text()
        assert "not available" not in page and f"<code>{relative_run}</code>" in page


def test_old_document_falls_back_to_its_own_folder(relative_run, tmp_path):
    doc = json.loads((relative_run / "out" / "run.json").read_text())
    del doc["cwd"]  # written before hlcli recorded it
    old = relative_run / "old.json"  # beside restored/ and gt/
    old.write_text(json.dumps(doc))
    out = tmp_path / "r.html"
    result = report(str(old), "-o", str(out), "--thumb-size", "32")
    assert result.exit_code == 0 and "Warning" not in result.stderr, result.stderr
    assert "not available" not in out.read_text()


def test_images_truly_gone_are_one_warning_and_images_root_points_at_them(relative_run, tmp_path):
    import shutil

    moved = tmp_path / "moved"
    shutil.move(str(relative_run), str(moved))
    out = tmp_path / "r.html"
    result = report(str(moved / "out" / "run.json"), "-o", str(out), "--thumb-size", "32")
    assert result.exit_code == 0
    lines = [ln for ln in result.stderr.splitlines() if not ln.startswith("wrote ")]
    assert len(lines) == 1 and lines[0].startswith("Warning: 8 pictures of the report not found"), result.stderr
    assert "e.g. restored/" in lines[0] and "--images-root DIR" in lines[0]
    assert out.read_text().count("not available") == 8
    result = report(str(moved / "out" / "run.json"), "-o", str(out), "--thumb-size", "32", "--images-root", str(moved))
    assert result.exit_code == 0 and "Warning" not in result.stderr, result.stderr
    assert "not available" not in out.read_text()


def test_report_shows_the_stored_set_values_per_run_and_group(fid_run, tmp_path, monkeypatch):
    """The report of a stored FID/KID run: the set values read from the document's summary (the
    run's and each group's, never recomputed: the Inception is not even loadable here), FID with
    the registry's 4 decimals, each small set's note."""
    from html.parser import HTMLParser

    _, path = fid_run
    doc = json.loads(path.read_text())
    monkeypatch.setenv("HLCLI_INCEPTION_WEIGHTS", str(tmp_path / "absent.pth"))
    out = tmp_path / "r.html"
    result = report(str(path), "-o", str(out), "--top", "1", "--thumb-size", "32")
    assert result.exit_code == 0, result.stderr

    class Cells(HTMLParser):
        def __init__(self):
            super().__init__()
            self.rows, self.inside, self.cell = [], False, None

        def handle_starttag(self, tag, attrs):
            if tag == "table":
                self.inside = ("id", "sets") in attrs
            elif self.inside and tag == "tr":
                self.rows.append([])
            elif self.inside and tag in ("td", "th"):
                self.cell = ""

        def handle_endtag(self, tag):
            if self.inside and tag in ("td", "th"):
                self.rows[-1].append(self.cell)
                self.cell = None
            elif tag == "table":
                self.inside = False

        def handle_data(self, data):
            if self.cell is not None:
                self.cell += data

    html = out.read_text()
    parsed = Cells()
    parsed.feed(html)
    head, *rows = parsed.rows
    assert head == ["set", "samples", "FID↓", "KID↓"]
    by_set = {r[0]: r[1:] for r in rows}
    summ = doc["summary"]
    assert by_set["all pairs"][:2] == ["4 (small)", f"{summ['sets']['fid']:.4f}"]
    assert by_set["A"][1] == f"{summ['groups']['A']['sets']['fid']:.4f}" and set(by_set) == {"all pairs", "A", "B"}
    assert by_set["B"][2].endswith(" ± 0")
    assert html.count('class="warning set-note"') == 3 and "Note (A): FID over 2 images" in html
    # a pair metric has its histogram; a set metric has no distribution over pairs (it drew an empty one)
    assert 'id="histogram-psnr"' in html
    assert 'id="histogram-fid"' not in html and 'id="histogram-kid"' not in html and "Distribution of FID" not in html
