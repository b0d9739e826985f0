"""The HTML report as a person uses it: opened from file:// in headless Chromium (Debian's
chromium and chromium-driver, driven by selenium; nothing is downloaded). Skipped, with the reason,
only when the browser is not installed."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from hlcli.cli import cli
from hlcli.analysis import gate as g
from hlcli.render.gate import allowance, over_by

from .conftest import SAMPLES, degrade, save, textured

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
INJECTION = "<img src=x onerror=alert(1)>"

pytestmark = pytest.mark.skipif(
    not (Path(CHROMIUM).is_file() and Path(DRIVER).is_file()),
    reason="needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver; .ci/run does)",
)
pytest.importorskip("matplotlib")
selenium = pytest.importorskip("selenium")


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1600", "--allow-file-access-from-files"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    yield driver
    driver.quit()


def _score_report(root: Path, weights: Path, name: str, *extra: str) -> tuple[Path, dict]:
    run, report = root / f"{name}.json", root / f"{name}.html"
    args = ["score", "--weights", str(weights), "-q", "-f", "json", "-o", str(run), "--report", str(report), *extra]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.stderr
    return report, json.loads(run.read_text())


@pytest.fixture(scope="module")
def samples_report(tmp_path_factory, weights_file):
    root = tmp_path_factory.mktemp("report")
    return _score_report(root, weights_file, "samples", str(SAMPLES / "restored"), str(SAMPLES / "gt"))


@pytest.fixture(scope="module")
def injection_report(tmp_path_factory, weights_file):
    """A pair whose file name is a script injection (a valid Linux file name)."""
    root = tmp_path_factory.mktemp("inject")
    for i, name in enumerate([INJECTION, "plain"]):
        gt = textured(40, 48, seed=i)
        save(root / "gt" / f"{name}.png", gt)
        save(root / "restored" / f"{name}.png", degrade(gt, seed=i))
    return _score_report(root, weights_file, "inject", str(root / "restored"), str(root / "gt"))


def load(driver, path: Path) -> tuple[list, list]:
    """Open the report; return (browser console entries, network problems) of this load."""
    driver.get_log("browser"), driver.get_log("performance")  # drop earlier entries
    driver.get(path.as_uri())
    driver.execute_script("return document.readyState")
    console = driver.get_log("browser")
    problems = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg["method"] == "Network.loadingFailed":
            problems.append(msg["params"])
        elif msg["method"] == "Network.requestWillBeSent":
            url = msg["params"]["request"]["url"]
            if not url.startswith(("data:", "file:")):
                problems.append(url)
    return console, problems


def column(driver, metric: str) -> list[float]:
    return driver.execute_script(
        "var th = document.querySelector('#pairs th[data-metric=' + arguments[0] + ']');"
        "return Array.from(document.querySelectorAll('#pairs tbody tr')).filter(r => !r.hidden)"
        ".map(r => parseFloat(r.cells[th.cellIndex].getAttribute('data-v')));", metric)


def test_loads_offline_without_errors_or_requests(browser, samples_report):
    report, doc = samples_report
    console, problems = load(browser, report)
    assert [c for c in console if c["level"] in ("SEVERE", "WARNING")] == []
    assert problems == []
    csp = browser.find_element("css selector", "meta[http-equiv=Content-Security-Policy]").get_attribute("content")
    assert "default-src 'none'" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    rows = browser.find_elements("css selector", "#pairs tbody tr")
    assert len(rows) == len(doc["pairs"]) == 4
    # scatter: one point per pair, each with its key on hover
    titles = browser.execute_script("return Array.from(document.querySelectorAll('#hl-scatter use title'))"
                                    ".map(t => t.textContent)")
    assert sorted(titles) == sorted(p["key"] for p in doc["pairs"])


def test_worst_pairs_show_decoded_images_and_zoom_together(browser, samples_report):
    report, doc = samples_report
    load(browser, report)
    items = browser.find_elements("css selector", "#worst article.worst")
    assert len(items) == len(doc["pairs"])  # --top 12 > 4 pairs
    worst = max(doc["pairs"], key=lambda p: p["hybrid"])
    assert items[0].get_attribute("data-key") == worst["key"]
    widths = browser.execute_script("return Array.from(document.querySelectorAll('#worst .view img'))"
                                    ".map(i => i.complete ? i.naturalWidth : 0)")
    assert len(widths) == 4 * len(doc["pairs"]) and min(widths) > 0  # restored, gt, L1 map, perceptual map
    items[0].find_element("css selector", "button[data-zoom='1.5']").click()
    transforms = browser.execute_script("return Array.from(arguments[0].querySelectorAll('.view img'))"
                                        ".map(i => i.style.transform)", items[0])
    assert len(set(transforms)) == 1 and "scale(1.5)" in transforms[0]
    first = items[0].find_element("css selector", ".panel[data-kind=restored] img").get_attribute("src")
    items[0].find_element("css selector", "button[data-flicker]").click()
    assert items[0].find_element("css selector", ".panel[data-kind=restored] img").get_attribute("src") != first


def test_sort_by_clicking_the_header_and_filter(browser, samples_report):
    report, doc = samples_report
    load(browser, report)
    header = browser.find_element("css selector", "#pairs th[data-metric=hybrid]")
    header.click()
    values = column(browser, "hybrid")
    assert values == sorted((p["hybrid"] for p in doc["pairs"]), reverse=True)
    assert header.get_attribute("aria-sort") == "descending"
    header.click()
    assert column(browser, "hybrid") == sorted(p["hybrid"] for p in doc["pairs"])
    assert header.get_attribute("aria-sort") == "ascending"
    browser.find_element("css selector", "#filter").send_keys("co")
    keys = browser.execute_script("return Array.from(document.querySelectorAll('#pairs tbody tr'))"
                                  ".filter(r => !r.hidden).map(r => r.cells[0].textContent)")
    assert keys == [p["key"] for p in doc["pairs"] if "co" in p["key"]] == ["coffee"]
    assert browser.find_element("css selector", "#shown").text == "1 of 4 pairs shown"


def test_injected_name_is_text_and_runs_nothing(browser, injection_report):
    from selenium.common.exceptions import NoAlertPresentException

    report, doc = injection_report
    assert INJECTION in {p["key"] for p in doc["pairs"]}
    console, problems = load(browser, report)
    assert problems == [] and [c for c in console if c["level"] == "SEVERE"] == []
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018
    assert browser.execute_script("return document.querySelectorAll('img[src=x], img:not([src^=data])').length") == 0
    cells = [c.text for c in browser.find_elements("css selector", "#pairs tbody td:first-child")]
    assert INJECTION in cells
    assert INJECTION in browser.find_element("css selector", "#worst").text
    widths = browser.execute_script("return Array.from(document.querySelectorAll('#worst .view img'))"
                                    ".map(i => i.naturalWidth)")
    assert len(widths) == 8 and min(widths) > 0


def test_screenshot_is_not_blank(browser, samples_report):
    report, _ = samples_report
    load(browser, report)
    shot = np.asarray(Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("L"), dtype=np.float64)
    assert shot.shape[0] > 500 and shot.std() > 20


def test_linked_images_load_from_file(browser, samples_report, tmp_path):
    report, doc = samples_report
    run = tmp_path / "run.json"
    run.write_text(json.dumps({**doc, "pairs": [{**p, "restored": str(Path(p["restored"]).resolve()),
                                                  "gt": str(Path(p["gt"]).resolve())} for p in doc["pairs"]]}))
    out = tmp_path / "linked.html"
    result = CliRunner().invoke(cli, ["report", str(run), "-o", str(out), "--images", "link", "--top", "2"])
    assert result.exit_code == 0, result.stderr
    console, problems = load(browser, out)
    assert problems == [] and [c for c in console if c["level"] == "SEVERE"] == []
    srcs = browser.execute_script("return Array.from(document.querySelectorAll('#worst .view img'))"
                                  ".map(i => [i.getAttribute('src'), i.naturalWidth])")
    assert len(srcs) == 4 and all(not s.startswith("data:") and w > 0 for s, w in srcs)


# -- the report explains its verdict (issue 18) -------------------------------------------------

LONG = "a_rather_long_directory_name_of_a_dataset_" * 3  # captions must not break the gallery row


@pytest.fixture(scope="module")
def failing_report(tmp_path_factory, weights_file):
    """A run that regressed against its baseline on 3 of 6 pairs (more noise), with a failing
    gate; deep paths on both sides."""
    root = tmp_path_factory.mktemp("failing") / LONG
    for i in range(6):
        gt = textured(48, 56, seed=i)
        save(root / "gt" / f"p{i}.png", gt)
        save(root / "old" / f"p{i}.png", degrade(gt, seed=i, amount=8))
        save(root / "new" / f"p{i}.png", degrade(gt, seed=i, amount=40 if i % 2 else 8))
    base = root / "base.json"
    common = ["--weights", str(weights_file), "-q", "--layers", "conv2_2,conv3_3"]
    result = CliRunner().invoke(cli, ["score", str(root / "old"), str(root / "gt"), *common, "-o", str(base)])
    assert result.exit_code == 0, result.stderr
    run, report = root / "new.json", root / "new.html"
    result = CliRunner().invoke(cli, ["score", str(root / "new"), str(root / "gt"), *common, "-o", str(run),
                                      "--report", str(report), "--baseline", str(base),
                                      "--max-pair-regression", "5%", "--fail-if", "mean.l1>0.001"])
    assert result.exit_code == 1, result.stderr
    return report, json.loads(run.read_text())


def test_failing_report_shows_first_what_failed(browser, failing_report):
    report, doc = failing_report
    load(browser, report)
    regressed = doc["gate"]["regressions"]["regressed"]
    assert len(regressed) >= 3
    box = browser.find_element("css selector", "#what-failed")
    assert box.is_displayed()
    # the first section under the header: what failed, before the summary
    first = browser.execute_script("return document.querySelector('header').nextElementSibling.id")
    assert first == "what-failed"
    gates = browser.execute_script("return Array.from(document.querySelectorAll('#failed-gates tbody tr'))"
                                   ".map(r => [r.cells[0].textContent, parseFloat(r.cells[1].textContent)])")
    [check] = doc["gate"]["checks"]
    assert gates == [[check["expression"], pytest.approx(doc["summary"]["metrics"]["l1"]["mean"], rel=1e-5)]]
    rows = browser.execute_script(
        "return Array.from(document.querySelectorAll('#regressed tbody tr')).map(r => Array.from(r.cells)"
        ".map(c => c.textContent))")
    assert len(rows) == len(regressed)  # every regressed pair of the JSON, listed
    assert {(r[0], r[1]) for r in rows} == {(x["key"], x["metric"]) for x in regressed}
    over = [g.excess(x) / abs(x["baseline"]) for x in
            sorted(regressed, key=lambda x: [r[:2] for r in rows].index([x["key"], x["metric"]]))]
    assert over == sorted(over, reverse=True)  # furthest over its allowance first
    for r in rows:  # baseline, this run, allowance as in the JSON
        x = next(x for x in regressed if (x["key"], x["metric"]) == (r[0], r[1]))
        assert float(r[2]) == pytest.approx(x["baseline"], rel=1e-5)
        assert float(r[3]) == pytest.approx(x["observed"], rel=1e-5)
        assert r[4] == allowance(x) and float(r[4].split()[0]) == pytest.approx(x["allowed"], rel=1e-5)
        assert r[5] == over_by(x) and float(r[5].split()[0]) == pytest.approx(g.excess(x), rel=1e-5)
    # links into the pairs table and the gallery land on that pair
    targets = browser.execute_script(
        "return Array.from(document.querySelectorAll('#regressed tbody tr')).map(r => Array.from("
        "r.querySelectorAll('a')).map(a => { var t = document.getElementById(a.getAttribute('href').slice(1));"
        " return t ? (t.getAttribute('data-key') || t.cells[0].getAttribute('data-v')) : null; }))")
    for r, found in zip(rows, targets):
        assert found and set(found) == {r[0]}
    # no metric whose pairs regressed reads as passing
    cells = browser.execute_script("return Array.from(document.querySelectorAll('#regression-summary tbody tr'))"
                                   ".map(r => [r.cells[0].textContent, r.cells[5].className])")
    for metric, cls in cells:
        assert cls == ("fail" if any(x["metric"] == metric for x in regressed) else "pass")


def test_passing_report_says_what_passed_in_one_line(browser, samples_report):
    report, doc = samples_report
    load(browser, report)
    assert browser.find_elements("css selector", "#what-failed") == []
    line = browser.find_element("css selector", "#what-passed .passed-line").text
    assert line == f"No gates: {len(doc['pairs'])} pairs scored, none skipped."


def test_non_official_weights_are_flagged_in_the_header(browser, samples_report):
    report, doc = samples_report
    assert doc["settings"]["weights"]["official_imagenet1k_v1"] is False  # the tests' random weights
    load(browser, report)
    warning = browser.find_element("css selector", "header #weights-warning")
    assert warning.is_displayed() and "not the official ImageNet VGG-19" in warning.text


@pytest.mark.parametrize("which", ["samples_report", "failing_report"])
def test_gallery_row_holds_four_pictures_at_1280(browser, which, request):
    """At 1280 px the four pictures of a pair share one top coordinate (one row), long paths
    included (shortened in the middle, the full path on hover), and nothing is wider than the page."""
    report, doc = request.getfixturevalue(which)
    browser.set_window_size(1280, 1600)
    try:
        load(browser, report)
        for item in browser.find_elements("css selector", "#worst article.worst"):
            tops = browser.execute_script("return Array.from(arguments[0].querySelectorAll('.view'))"
                                          ".map(v => Math.round(v.getBoundingClientRect().top))", item)
            assert len(tops) == 4 and len(set(tops)) == 1, tops
            caption = item.find_element("css selector", ".panel[data-kind=restored] figcaption")
            key = item.get_attribute("data-key")
            path = next(p["restored"] for p in doc["pairs"] if p["key"] == key)
            assert caption.get_attribute("title") == path and len(caption.text) <= 44
        assert browser.execute_script("return document.documentElement.scrollWidth") <= browser.execute_script(
            "return document.documentElement.clientWidth")
    finally:
        browser.set_window_size(1280, 1600)
