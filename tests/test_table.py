"""The terminal table (issue #13): every number whole at any width from 60 columns, tables that
change shape instead of cutting, a readable page for 10,000 pairs, gates that stand out.

Tables are rendered through Rich consoles of a chosen width (and once through a real
pseudo-terminal), parsed back from the text a person sees, and every number checked against
the value it stands for."""

from __future__ import annotations

import importlib.util
import io
import json
import math
import os
import random
import re
import sys
import time

import pytest
from click.testing import CliRunner
from rich.cells import cell_len
from rich.console import Console

from hlcli.cli import cli
from hlcli.cli.score import parse_rows
from hlcli.render import compare as compare_render
from hlcli.render.score import write_table
from hlcli.render.table import Column, fit_table, number_format, shorten_middle

from . import synthetic
from .conftest import ROOT, degrade, save, textured

WIDTHS = (60, 80, 100, 120, 200)
LAYER_SETS = (("conv3_3",), ("conv3_3", "conv4_3"), ("relu1_2", "conv3_3", "conv4_3"),
              ("relu1_2", "conv2_2", "conv3_3", "conv4_3"), ("relu1_2", "conv2_2", "conv3_3", "conv4_3", "conv5_4"))
NUMBER = re.compile(r"^[+-]?\d+(\.\d+)?(e[+-]\d+)?$")
SCALE = re.compile(r"×10([⁻]?[⁰¹²³⁴⁵⁶⁷⁸⁹]+)$")


# -- reading a table back from what a person sees ----------------------------------------------

def base(label: str) -> str:
    """A header or row label without its power of ten: 'conv3_3 ×10⁻³' -> 'conv3_3'."""
    return SCALE.sub("", label).strip()


def scale_of(label: str) -> int:
    """×10⁻³ -> -3 (0 when there is no label)."""
    m = SCALE.search(label.strip())
    return 0 if m is None else int(m.group(1).translate(str.maketrans("⁻⁰¹²³⁴⁵⁶⁷⁸⁹", "-0123456789")))


def parse_tables(text: str) -> list[dict]:
    """Each box-drawn table in ``text``: headers (lines of a column joined by a space) and rows."""
    tables, current, header_lines = [], None, []
    for line in text.splitlines():
        if line.startswith("┏"):
            current, header_lines = {"headers": None, "rows": []}, []
        elif current is not None and line.startswith("┃"):
            header_lines.append([c.strip() for c in line.strip("┃").split("┃")])
        elif current is not None and line.startswith("┡"):
            current["headers"] = [" ".join(x for x in col if x) for col in zip(*header_lines)]
        elif current is not None and line.startswith("│"):
            current["rows"].append([c.strip() for c in line.strip("│").split("│")])
        elif current is not None and line.startswith("└"):
            tables.append(current)
            current = None
    return tables


def parse_stacked(text: str) -> dict[str, dict[str, str]]:
    """Stacked rows: a key line, then '  field   value' lines."""
    records, key = {}, None
    for line in text.splitlines():
        if not line or line[0] in "┏┃┡│└" or line.startswith(("hlcli", "summary", "worst", "rows stacked")):
            key = None
        elif not line.startswith("  "):
            key = line
            records[key] = {}
        elif key is not None:
            field, value = re.split(r"\s{2,}", line.strip())
            records[key][field] = value
    return records


def sig_digits(text: str) -> int:
    mantissa = text.lstrip("+-").split("e")[0].replace(".", "").lstrip("0")
    return len(mantissa)


def check_number(text: str, value: float, exponent: int) -> None:
    """``text`` (in units of 10**exponent) is ``value`` rounded to the precision shown, with at
    least 4 significant digits; an exact zero is ``0``."""
    assert NUMBER.match(text), f"not a whole number: {text!r}"
    if text == "0":
        assert value == 0, (text, value)
        return
    assert value != 0 and sig_digits(text) >= 4, (text, value)
    mantissa, _, exp = text.partition("e")
    decimals = len(mantissa.partition(".")[2])
    unit = 10.0 ** (int(exp or 0) - decimals + exponent)
    assert abs(float(text) * 10.0 ** exponent - value) <= 0.5 * unit * (1 + 1e-9) + 1e-300, (text, value, exponent)


def check_text(text: str, width: int) -> None:
    """No line wider than the console; no ellipsis, except in a key of the worst-pairs list when
    one pair alone is wider than the terminal (``  6.673 k5_abc…defg``: number first, whole)."""
    for line in text.splitlines():
        assert cell_len(line) <= width, (width, line)
        if "…" in line:
            assert re.match(r"^  [0-9.e+-]+ \S+…\S+$", line) and cell_len(line) == width, (line, text)


def check_pairs(text: str, run, width: int) -> int:
    """Every per-pair number on screen, in tables or stacked rows, matches the run; returns how
    many numbers were checked."""
    pairs = {p.key: p for p in run.pairs}
    checked = 0
    for t in parse_tables(text):
        if t["headers"][0] != "pair":
            continue
        for row in t["rows"]:
            p = pairs[row[0]]  # the whole key: never cut or wrapped
            for header, cell in zip(t["headers"][1:], row[1:]):
                name = base(header)
                if name == "size":
                    assert cell == f"{p.width}x{p.height}"
                else:
                    check_number(cell, p.metric(name), scale_of(header))
                    checked += 1
    stacked = text[text.index("hlcli score"):text.index("rows stacked")] if "rows stacked" in text else ""
    for key, fields in parse_stacked(stacked).items():
        p = pairs[key]
        for field, cell in fields.items():
            name = base(field)
            if name != "size":
                check_number(cell, p.metric(name), scale_of(field))
                checked += 1
    return checked


def check_summary(text: str, run) -> int:
    metrics = run.summary()["metrics"]
    checked = 0
    for t in parse_tables(text):
        if t["headers"][0] != "metric":
            continue
        for row in t["rows"]:
            name = base(row[0])
            for stat, cell in zip(t["headers"][1:], row[1:]):
                check_number(cell, metrics[name][stat], scale_of(row[0]))
                checked += 1
    return checked


def render(run, width: int, **kw) -> str:
    console = Console(width=width, record=True, file=io.StringIO(), highlight=False, soft_wrap=False)
    write_table(run, io.StringIO(), terminal=False, console=console, **kw)
    return console.export_text()


def make_run(layers, key_len: int, seed: int, n: int = 6):
    """Pairs with keys of ``key_len`` characters and values from 0 to 1e4, exact zeros and tiny
    values among them; perceptual and hybrid follow the definitions."""
    rng = random.Random(seed)
    pool = [0.0, 1e-9, 3.2e-7, 0.000123456, 0.0381487, 0.5, 1.0, 7.25, 123.456, 9999.5, 1e4]
    pairs = []
    for i in range(n):
        key = (f"k{i}_" + "abcdefghij" * 6)[:key_len] if key_len >= 3 else f"k{i}"
        l1 = 0.0 if i == 0 else rng.choice(pool[:7])
        values = {name: (0.0 if i == 0 else rng.choice(pool)) for name in layers}
        pairs.append(synthetic.pair(key, l1, values))
    return synthetic.run(pairs, layers=tuple((n, 1.0) for n in layers))


# -- numbers -----------------------------------------------------------------------------------

def test_number_format_keeps_four_significant_digits():
    f = number_format([0.0381487, 0.0249342, 0.0])
    assert (f.label, f(0.0381487), f(0.0249342), f(0.0)) == ("", "0.03815", "0.02493", "0")
    f = number_format([0.00286521, 0.000430, 0.000694])
    assert f.label == "×10⁻³" and [f(x) for x in (0.00286521, 0.000430)] == ["2.8652", "0.4300"]
    f = number_format([12345.6, 10000.0])
    assert f.label == "" and f(12345.6) == "12346"
    f = number_format([1e-9, 1e4, 0.0])
    assert f.scientific and (f(1e-9), f(1e4), f(0.0)) == ("1.000e-09", "1.000e+04", "0")
    f = number_format([0.125, -0.5], signed=True)
    assert (f(0.125), f(-0.5)) == ("+0.1250", "-0.5000")
    assert number_format([0.0, 0.0])(0.0) == "0" and number_format([None, 2.5])(None) == ""
    with pytest.raises(ValueError):
        number_format([1.0])(math.nan)


def test_shorten_middle():
    assert shorten_middle("astronaut", 9) == "astronaut"
    assert shorten_middle("astronaut_from_nasa", 9) == "astr…nasa"


# -- every width, 1 to 5 layers, keys of 3 to 60 characters -------------------------------------

@pytest.mark.parametrize("width", WIDTHS)
def test_every_number_whole_at_every_width(width):
    for n_layers, layers in enumerate(LAYER_SETS, start=1):
        for key_len in (3, 12, 30, 60):
            run = make_run(layers, key_len, seed=width * 100 + n_layers * 7 + key_len)
            text = render(run, width)
            check_text(text, width)
            assert check_pairs(text, run, width) == len(run.pairs) * (len(layers) + 3), (layers, key_len, text)
            assert check_summary(text, run) == (len(layers) + 3) * 6
            assert "summary of 6 pairs" in text


def realistic_run(layers, key_len: int):
    """Values like the samples': l1 a few hundredths, layers a few thousandths."""
    pairs = [synthetic.pair((f"{name}_" + "x" * 60)[:key_len], l1, {n: l1 * (0.02 + 0.03 * j) for j, n in enumerate(layers)})
             for name, l1 in (("astronaut", 0.0381487), ("chelsea", 0.0249342), ("coffee", 0.0291512), ("rocket", 0.0))]
    return synthetic.run(pairs, layers=tuple((n, 1.0) for n in layers))


def test_layouts_at_80_columns():
    """Default layers: one table; five layers: the per-layer columns move to a second table with
    a note; a key wider than a table allows: rows stacked; wider than the terminal: shortened."""
    two = realistic_run(("conv3_3", "conv4_3"), 9)
    text = render(two, 80)
    assert [t["headers"][0] for t in parse_tables(text)] == ["pair", "metric"] and "moved" not in text
    five = realistic_run(LAYER_SETS[-1], 9)
    tables = parse_tables(render(five, 80))
    assert tables[0]["headers"][:2] == ["pair", "size"] and tables[1]["headers"][0] == "pair"
    assert "per-layer columns are in the next table; -f csv shows all" in render(five, 80)
    long_keys = realistic_run(LAYER_SETS[-1], 60)
    text = render(long_keys, 80)
    assert "rows stacked to fit 80 columns" in text and check_pairs(text, long_keys, 80) == 4 * 8

    console = Console(width=60, record=True, file=io.StringIO())
    fitted = fit_table(console, "t", Column("pair", ["x" * 100], justify="left"), [Column("v", ["1.000"])])
    text = console.export_text()
    assert fitted.shortened and "xxxx…xxxx" in text  # keys only, as the last resort
    assert "1.000" in text and "pair names shortened in the middle" in text


# -- large runs ------------------------------------------------------------------------------

def test_ten_thousand_pairs_render_a_page_in_under_a_second():
    rng = random.Random(0)
    run = synthetic.run({f"img_{i:05d}": rng.uniform(0.001, 0.1) for i in range(10_000)})
    start = time.perf_counter()
    text = render(run, 80)
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0, elapsed
    check_text(text, 80)
    assert "showing 40 of 10,000 pairs, worst by hybrid; -f csv for all" in text
    rows = parse_tables(text)[0]["rows"]
    worst = sorted(run.pairs, key=lambda p: -p.hybrid)[:40]
    assert [r[0] for r in rows] == [p.key for p in worst]
    assert check_pairs(text, run, 80) == 40 * 5 and "summary of 10,000 pairs" in text
    by_l1 = render(run, 80, rows=3, sort="l1")
    assert [r[0] for r in parse_tables(by_l1)[0]["rows"]] == [p.key for p in sorted(run.pairs, key=lambda p: -p.l1)[:3]]
    assert "showing 3 of 10,000 pairs, worst by l1" in by_l1
    everything = render(synthetic.run({f"k{i}": 0.01 * (i + 1) for i in range(50)}), 120, rows=None)
    assert len(parse_tables(everything)[0]["rows"]) == 50 and "showing" not in everything


# -- the CLI: options, a real terminal ------------------------------------------------------------

@pytest.fixture
def long_dirs(tmp_path):
    keys = ["a", "pair_with_a_longer_name_01"]
    for i, key in enumerate(keys):
        gt = textured(40, 48, seed=i)
        save(tmp_path / "gt" / f"{key}.png", gt)
        save(tmp_path / "restored" / f"{key}.png", degrade(gt, seed=i))
    return tmp_path / "restored", tmp_path / "gt"


def test_cli_rows_and_sort(cli_env, pair_dirs):
    runner = CliRunner()
    res = runner.invoke(cli, ["score", *map(str, pair_dirs), "-f", "table", "--rows", "2", "--sort", "l1",
                              "--workers", "0"])
    assert res.exit_code == 0, res.stderr
    assert "showing 2 of 4 pairs, worst by l1" in res.stdout
    table = parse_tables(res.stdout)[0]
    l1 = [float(r[[base(h) for h in table["headers"]].index("l1")]) for r in table["rows"]]
    assert len(l1) == 2 and l1 == sorted(l1, reverse=True) and "same" not in [r[0] for r in table["rows"]]
    assert parse_rows("all") is None and parse_rows("7") == 7
    keyed = render(synthetic.run({"b": 0.1, "a": 0.2, "c": 0.05}), 80, rows=None, sort="key")
    assert [r[0] for r in parse_tables(keyed)[0]["rows"]] == ["a", "b", "c"]
    for bad in (["--sort", "conv5_4"], ["--rows", "0"], ["--rows", "some"]):
        res = runner.invoke(cli, ["score", *map(str, pair_dirs), *bad])
        assert res.exit_code == 2 and "Error" in res.stderr, bad


def run_in_pty(args: list[str], columns: int, env: dict[str, str]) -> str:
    """Run hlcli in a real pseudo-terminal of ``columns`` columns; all it wrote, ANSI stripped
    (the pseudo-terminal runner of scripts/snapshot_table.py, which makes the README's table)."""
    spec = importlib.util.spec_from_file_location("snapshot_table", ROOT / "scripts" / "snapshot_table.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    code, text, _ = script.run_in_pty([sys.executable, "-m", "hlcli", *args], columns,
                                      {**env, "COLUMNS": str(columns), "TERM": "xterm-256color"})
    assert code == 0, text
    return text


def test_real_terminal_80_columns_five_layers(cli_env, long_dirs):
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    res = CliRunner().invoke(cli, ["score", *map(str, long_dirs), "--layers", ",".join(LAYER_SETS[-1]),
                                   "--workers", "0", "-f", "json"])
    doc = json.loads(res.stdout)
    text = run_in_pty(["score", *map(str, long_dirs), "--layers", ",".join(LAYER_SETS[-1]), "--workers", "0"],
                      80, env)
    assert re.search(r"scoring .*[0-2]/2 .*left", text)  # progress on stderr: done/total, time left
    table = text[text.index("hlcli score"):]
    check_text(table, 80)
    run = synthetic.run([synthetic.pair(p["key"], p["l1"], p["layers"]) for p in doc["pairs"]],
                        layers=tuple((n, 1.0) for n in LAYER_SETS[-1]))
    for p, q in zip(run.pairs, doc["pairs"]):
        p.perceptual, p.hybrid, p.width, p.height = q["perceptual"], q["hybrid"], q["width"], q["height"]
    assert check_pairs(table, run, 80) == 2 * 8
    assert "per-layer columns are in the next table; -f csv shows all" in table


# -- gates and compare ---------------------------------------------------------------------------

def test_gate_results_stand_out():
    run = synthetic.run({"a": 0.1, "b": 0.2})
    run.gate = {"passed": False, "checks": [
        {"expression": "mean.hybrid>1", "observed": 0.15, "passed": True, "op": ">", "threshold": 1.0, "reason": None},
        {"expression": "max.l1>0.1", "observed": 0.2, "passed": False, "op": ">", "threshold": 0.1, "reason": None}]}
    out = io.StringIO()
    write_table(run, out, terminal=True, console=Console(width=100, file=out, force_terminal=True,
                                                          color_system="standard", highlight=False))
    assert "\x1b[32mpass\x1b[0m" in out.getvalue() and "\x1b[1;31mFAIL\x1b[0m" in out.getvalue()
    out = io.StringIO()
    write_table(run, out, terminal=True, console=Console(width=100, file=out, force_terminal=True, no_color=True,
                                                          highlight=False))
    assert "\x1b[1mFAIL\x1b[0m" in out.getvalue() and "\x1b[32m" not in out.getvalue()  # bold, no colour
    piped = io.StringIO()
    write_table(run, piped, terminal=False)
    assert "FAIL" in piped.getvalue() and "\x1b[" not in piped.getvalue()


@pytest.mark.parametrize("width", WIDTHS)
def test_compare_table_numbers_whole(width, monkeypatch):
    from .test_compare import result

    r = result()
    out = io.StringIO()
    monkeypatch.setattr(compare_render, "table_console",
                        lambda o, terminal: Console(file=o, width=width, highlight=False, soft_wrap=False))
    compare_render.write_compare_table(r, out)
    text = out.getvalue()
    check_text(text, width)
    checked = 0
    for t in parse_tables(text):
        for row in t["rows"]:
            if t["headers"][0] == "metric":
                e = r["metrics"][base(row[0])]
                for header, cell in zip(t["headers"][1:], row[1:]):
                    exp = scale_of(row[0])
                    if header in ("mean A", "mean B", "B − A"):
                        check_number(cell, e[{"mean A": "mean_a", "mean B": "mean_b", "B − A": "mean_diff"}[header]], exp)
                        checked += 1
                    elif header == "95% interval":
                        lo, hi = cell.strip("[]").split(", ")
                        check_number(lo, e["ci_low"], exp)
                        check_number(hi, e["ci_high"], exp)
            else:
                c = next(c for c in r["changed_most"]["pairs"] if c["key"] == row[0])
                for header, cell in zip(t["headers"][1:], row[1:]):
                    if base(header) in ("A", "B"):
                        check_number(cell, c[base(header).lower()], scale_of(header))
                        checked += 1
    assert checked == 3 * len(r["metrics"]) + 2 * len(r["changed_most"]["pairs"])


def test_readme_snapshot_is_an_80_column_table():
    readme = (ROOT / "README.md").read_text()
    start = readme.index("<!-- snapshot: scripts/snapshot_table.py -->")
    block = readme[start:readme.index("```\n", readme.index("```text", start) + 7)]
    body = block.split("```text\n", 1)[1]
    assert "hlcli score" in body and "summary of 4 pairs" in body
    check_text(body, 80)


# -- one scale per metric in a view; tables that compare down a column (issue #18) -------------

def _console(width: int, out: io.StringIO) -> Console:
    return Console(file=out, width=width, color_system=None, legacy_windows=False)


def _scales_by_metric(labels: list[str]) -> dict[str, set[int]]:
    """{metric: the powers of ten its labels show}, from labels like 'Set5 conv3_3 ×10⁻³' or
    'hybrid↓ Set5 ×10⁻³' (the metric: the word with a direction arrow, else the last word)."""
    out: dict[str, set[int]] = {}
    for label in labels:
        words = base(label).split()
        if words:
            metric = next((w for w in words if w.endswith(("↓", "↑"))), words[-1])
            out.setdefault(metric, set()).add(scale_of(label))
    return out


def test_group_summaries_share_one_scale_per_metric():
    """Groups 1000x apart: every group's row of a metric (and the overall summary) in one scale."""
    values = {f"jpeg/{i}": 0.0004 + i * 1e-5 for i in range(4)} | {f"noise/{i}": 0.4 + i * 0.01 for i in range(4)}
    run = synthetic.run(values)
    run.settings["group_by"] = "top"
    for width in (80, 120, 200):
        out = io.StringIO()
        write_table(run, out, terminal=True, console=_console(width, out), rows=None, sort="hybrid")
        text = out.getvalue()
        labels = [row[0] for t in parse_tables(text) for row in t["rows"] if t["headers"][0] in ("metric", "group metric")]
        labels += [k for k in parse_stacked(text)]
        for metric, scales in _scales_by_metric(labels).items():
            assert len(scales) == 1, (width, metric, scales, text)


def test_summary_split_never_leaves_one_statistic_alone():
    run = synthetic.run({f"a_very_long_pair_name_{i}": 0.01 * (i + 1) for i in range(5)})
    for width in range(60, 100, 3):
        out = io.StringIO()
        write_table(run, out, terminal=True, console=_console(width, out), rows=None, sort="hybrid", summary_only=True)
        tables = [t for t in parse_tables(out.getvalue()) if t["headers"][0] == "metric"]
        if len(tables) > 1:
            assert all(len(t["headers"]) >= 3 for t in tables), (width, [t["headers"] for t in tables])


def _paper(n_runs: int):
    import hlcli

    rnd = random.Random(n_runs)
    keys = [f"Set5/{i}" for i in range(4)] + [f"Urban100/{i}" for i in range(4)]
    docs = [synthetic.document({k: rnd.uniform(0.0001, 0.0005) * (1 + r) for k in keys}) for r in range(n_runs)]
    names = [f"model_{chr(97 + i)}_ckpt" for i in range(n_runs)]
    return hlcli.paper_table(docs, names=names, group_by="top", metrics="hybrid,l1,perceptual"), names


@pytest.mark.parametrize("n_runs", [3, 6])
@pytest.mark.parametrize("width", [80, 100, 120, 200])
def test_paper_table_compares_down_a_column(n_runs, width):
    """3 runs x 2 groups x 3 metrics (and 6 runs): every table shown has every run, so a column
    (or a row, transposed) is read across all runs; nothing is stacked per run; one scale per
    metric; every number reads back."""
    from hlcli.render.papertable import write_table_console

    t, names = _paper(n_runs)
    out = io.StringIO()
    import hlcli.render.papertable as P

    real = P.table_console
    P.table_console = lambda o, terminal=False: _console(width, o)
    try:
        write_table_console(t, out)
    finally:
        P.table_console = real
    text = out.getvalue()
    check_text(text, width)
    tables = parse_tables(text)
    assert tables, text
    for table in tables:
        shown = set(table["headers"][1:]) | {row[0] for row in table["rows"]}
        assert set(names) <= shown, (width, table["headers"])
    transposed = tables[0]["headers"][0] == "column"
    labels = [row[0] for table in tables for row in table["rows"]] if transposed else \
        [h for table in tables for h in table["headers"][1:]]
    scales = _scales_by_metric([label.replace("\n", " ") for label in labels])
    assert all(len(s) == 1 for s in scales.values()), scales
    if n_runs == 3 and width >= 80:  # the case of the issue: no per-run blocks at 80 columns
        assert "stacked" not in text
    # numbers read back: the first column/row of values is each run's Set5 hybrid
    j = next(j for j, c in enumerate(t["columns"]) if c["group"] == "Set5" and c["metric"] == "hybrid")
    for i, name in enumerate(names):
        if transposed:
            row = next(r for table in tables for r in table["rows"] if base(r[0]).startswith("Set5 hybrid"))
            cell = row[1 + next(k for k, h in enumerate(tables[0]["headers"][1:]) if h == name)]
            exponent = scale_of(row[0])
        else:
            table = next(tb for tb in tables if any("Set5" in h and "hybrid" in h for h in tb["headers"]))
            col = next(k for k, h in enumerate(table["headers"]) if "Set5" in h and "hybrid" in h)
            cell = next(r for r in table["rows"] if r[0] == name)[col]
            exponent = scale_of(table["headers"][col].replace(" Set5", ""))
        check_number(cell.rstrip(" *"), t["rows"][i]["values"][j], exponent)


def test_compare_changed_most_shares_one_scale():
    a = synthetic.document({f"k{i}": 0.03 + i * 0.001 for i in range(5)})
    b = synthetic.document({f"k{i}": 0.015 + i * 0.0001 for i in range(5)})
    import hlcli.analysis.compare as C

    r = C.compare_runs(a, b, resamples=0)
    out = io.StringIO()
    compare_render.write_compare_table(r, out)  # not a terminal: wide
    table = next(t for t in parse_tables(out.getvalue()) if t["headers"][0] == "pair")
    assert len({scale_of(h) for h in table["headers"][1:4]}) == 1, table["headers"]
