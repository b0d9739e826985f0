"""Per-dataset results (``hlcli score --group-by``) and gates on one group, end to end through
the CLI on real photos (samples/) laid out as a benchmark: gt/Set5/x.png, gt/Urban100/y.png."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from hlcli.analysis import gate as g
from hlcli.cli import cli
from hlcli.inputs.groups import group_names, group_of
from tests.conftest import SAMPLES
from tests.schemas import loads_strict, validate_jsonl, validate_score

# group -> sample photos, cut to small crops (still real photos) so that a run takes well under 1 s
LAYOUT = {"Set5": ["astronaut", "chelsea"], "Urban100": ["coffee", "rocket"]}
CROP = {"astronaut": (64, 56), "chelsea": (72, 48), "coffee": (64, 64), "rocket": (56, 40)}
STATS = ("mean", "median", "std", "min", "max", "p50", "p90", "p95", "p99")
# two shallow layers: per-layer statistics are checked, at a quarter of conv4_3's cost
LAYERS = ["--layers", "conv1_2,conv2_2"]
METRICS = ["l1", "conv1_2", "conv2_2", "perceptual", "hybrid"]


def _copy_cropped(src: Path, dst: Path, size: tuple[int, int]) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(src) as im:
        im.convert("RGB").crop((16, 16, 16 + size[0], 16 + size[1])).save(dst)


def make_benchmark(root: Path, layout: dict[str, list[str]] = LAYOUT) -> tuple[Path, Path]:
    """root/restored/<group>/<name>.png and root/gt/<group>/<name>.png from the samples."""
    for group, names in layout.items():
        for name in names:
            stem = name.rsplit("/", 1)[-1]
            restored = next((SAMPLES / "restored").glob(f"{stem}.*"))
            _copy_cropped(SAMPLES / "gt" / f"{stem}.png", root / "gt" / group / f"{name}.png", CROP[stem])
            _copy_cropped(restored, root / "restored" / group / f"{name}.png", CROP[stem])
    return root / "restored", root / "gt"


@pytest.fixture(scope="module")
def env(weights_file):
    return {"HLCLI_WEIGHTS": str(weights_file), "HLCLI_OFFLINE": "1"}


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return make_benchmark(tmp_path_factory.mktemp("bench"))


def score(env, *args, **kw):
    return CliRunner().invoke(cli, ["score", *map(str, args), *LAYERS], env=env, **kw)


@pytest.fixture(scope="module")
def grouped(env, bench):
    """One grouped JSON run of the benchmark, parsed and schema-checked."""
    r = score(env, *bench, "-r", "--group-by", "top", "-f", "json")
    assert r.exit_code == 0, r.stderr
    return validate_score(r.stdout)


# -- the statistics ------------------------------------------------------------------------------

def _independent(values: list[float]) -> dict[str, float]:
    """The summary statistics written out plainly in float64 (percentiles: type 7)."""
    v = sorted(values)
    n = len(v)

    def pct(q: float) -> float:
        h = (n - 1) * q / 100
        lo = int(h)
        return v[lo] + (h - lo) * (v[min(lo + 1, n - 1)] - v[lo])

    mean = sum(v) / n
    return {"mean": mean, "median": pct(50), "std": (sum((x - mean) ** 2 for x in v) / n) ** 0.5,
            "min": v[0], "max": v[-1], "p50": pct(50), "p90": pct(90), "p95": pct(95), "p99": pct(99)}


def test_group_statistics_equal_those_of_the_groups_pairs(grouped):
    groups = grouped["summary"]["groups"]
    assert list(groups) == ["Set5", "Urban100"]
    assert grouped["settings"]["group_by"] == "top"
    metrics = METRICS
    for name, members in LAYOUT.items():
        pairs = [p for p in grouped["pairs"] if p["key"].split("/")[0] == name]
        assert sorted(p["key"] for p in pairs) == sorted(f"{name}/{m}" for m in members)
        assert all(p["group"] == name for p in pairs)
        assert groups[name]["count"] == len(members) and groups[name]["skipped"] == 0
        assert list(groups[name]["metrics"]) == metrics
        for m in metrics:
            values = [p[m] if m in ("l1", "perceptual", "hybrid") else p["layers"][m] for p in pairs]
            got = groups[name]["metrics"][m]
            assert got["count"] == len(members)
            for stat, want in _independent(values).items():
                assert got[stat] == pytest.approx(want, rel=1e-12, abs=1e-15), (name, m, stat)
    # the groups partition the run: counts add up, and the overall summary is unchanged
    assert sum(x["count"] for x in groups.values()) == grouped["summary"]["count"] == 4


def test_plain_run_is_unchanged_by_group_by_none(env, bench):
    plain = score(env, *bench, "-r", "-f", "json")
    none = score(env, *bench, "-r", "--group-by", "none", "-f", "json")
    a, b = validate_score(plain.stdout), validate_score(none.stdout)
    a.pop("command"), b.pop("command")
    assert a == b
    assert "groups" not in a["summary"] and "group_by" not in a["settings"] and "crop_border" not in a["settings"]
    assert all("group" not in p for p in a["pairs"])
    header = score(env, *bench, "-r", "-f", "csv").stdout.splitlines()[0]
    assert header == "key,status,width,height,l1,conv1_2,conv2_2,perceptual,hybrid,restored,gt,size_policy,reason"


def test_group_by_dir_uses_the_whole_parent_folder(env, tmp_path):
    restored, gt = make_benchmark(tmp_path, {"Urban100/x4": ["coffee"], "Urban100/x2": ["rocket"],
                                             ".": ["chelsea"]})
    r = score(env, restored, gt, "-r", "--group-by", "dir", "-f", "json")
    doc = validate_score(r.stdout)
    assert list(doc["summary"]["groups"]) == [".", "Urban100/x2", "Urban100/x4"]
    assert {p["key"]: p["group"] for p in doc["pairs"]} == {
        "chelsea": ".", "Urban100/x2/rocket": "Urban100/x2", "Urban100/x4/coffee": "Urban100/x4"}
    top = validate_score(score(env, restored, gt, "-r", "--group-by", "top", "-f", "json").stdout)
    assert {k: v["count"] for k, v in top["summary"]["groups"].items()} == {".": 1, "Urban100": 2}


def test_group_of_and_group_names():
    assert group_of("Set5/baby", "top") == "Set5" and group_of("Set5/baby", "none") is None
    assert group_of("a/b/c", "dir") == "a/b" and group_of("a/b/c", "top") == "a"
    assert group_names(["b/x", "a/y", "b/z", "w"], "top") == [".", "a", "b"]
    with pytest.raises(ValueError, match="unknown group mode"):
        group_of("a/b", "deep")


# -- a group emptied by skips --------------------------------------------------------------------

@pytest.fixture(scope="module")
def emptied(tmp_path_factory):
    """Set5 with two good pairs, Urban100 with one pair whose restored file is corrupt."""
    restored, gt = make_benchmark(tmp_path_factory.mktemp("emptied"), {"Set5": ["astronaut", "chelsea"],
                                                                      "Urban100": ["coffee"]})
    (restored / "Urban100" / "coffee.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    return restored, gt


def test_a_group_empty_after_skips_still_appears_with_count_0(env, emptied):
    args = [*emptied, "-r", "--group-by", "top", "--on-error", "skip", "--allow-skips"]
    doc = validate_score(score(env, *args, "-f", "json").stdout)
    urban = doc["summary"]["groups"]["Urban100"]
    assert urban["count"] == 0 and urban["skipped"] == 1
    assert all(st["count"] == 0 and all(st[k] is None for k in STATS) for st in urban["metrics"].values())
    assert doc["summary"]["groups"]["Set5"]["count"] == 2
    assert doc["skipped"][0]["group"] == "Urban100"

    rows = list(csv.DictReader(io.StringIO(score(env, *args, "--summary-only", "-f", "csv").stdout)))
    urban_rows = [r for r in rows if r["group"] == "Urban100"]
    assert [r["metric"] for r in urban_rows] == METRICS
    assert all(r["count"] == "0" and r["mean"] == "" for r in urban_rows)

    md = score(env, *args, "-f", "markdown").stdout
    assert "| `Urban100` (1 skipped) | hybrid | 0 |  |" in md

    # a gate on the emptied group is undefined, so it fails (exit 1 with --allow-skips)
    r = score(env, *args, "--fail-if", "mean.hybrid[Urban100]>1", "-f", "json")
    assert r.exit_code == 1
    [check] = validate_score(r.stdout)["gate"]["checks"]
    assert check["observed"] is None and check["reason"] == "undefined: no pairs were scored in group Urban100"
    assert "Gate failed: mean.hybrid[Urban100]>1 (undefined: no pairs were scored in group Urban100)" in r.stderr


# -- gates on a group ----------------------------------------------------------------------------

def test_parse_gate_keeps_the_group_and_its_case():
    gate = g.parse_gate(" MEAN.Hybrid [Urban100] > 0.1 ")
    assert (gate.stat, gate.metric, gate.group, gate.op, gate.threshold) == ("mean", "hybrid", "Urban100", ">", 0.1)
    assert gate.expression == "mean.hybrid[Urban100]>0.1"
    assert g.parse_gate("p95.l1[Urban100/x4]<=1e-3").group == "Urban100/x4"
    assert g.parse_gate("mean.l1>1").group is None
    with pytest.raises(ValueError, match="empty group"):
        g.parse_gate("mean.l1[]>1")
    with pytest.raises(ValueError, match="unknown group 'Set14'.*Set5, Urban100"):
        g.check_groups([g.parse_gate("mean.l1[Set14]>1")], ["Set5", "Urban100"], "top")
    with pytest.raises(ValueError, match="not grouped"):
        g.check_groups([g.parse_gate("mean.l1[Set5]>1")], [], "none")


def test_group_gates_pass_and_fail_on_the_groups_own_statistic(env, bench, grouped):
    set5 = grouped["summary"]["groups"]["Set5"]["metrics"]["hybrid"]["mean"]
    urban_p95 = grouped["summary"]["groups"]["Urban100"]["metrics"]["l1"]["p95"]
    assert set5 != grouped["summary"]["metrics"]["hybrid"]["mean"]  # a group gate is not the overall one
    r = score(env, *bench, "-r", "--group-by", "top", "-f", "json",
              "--fail-if", f"mean.hybrid[Set5]>{set5!r}", "--fail-if", f"p95.l1[Urban100] > {urban_p95!r}")
    assert r.exit_code == 0, r.stderr  # equal to the threshold passes
    checks = validate_score(r.stdout)["gate"]["checks"]
    assert [(c["group"], c["observed"], c["passed"]) for c in checks] == [("Set5", set5, True),
                                                                           ("Urban100", urban_p95, True)]
    below = set5 * (1 - 1e-9)
    r = score(env, *bench, "-r", "--group-by", "top", "-f", "markdown", "--fail-if", f"mean.hybrid[Set5]>{below!r}")
    assert r.exit_code == 1
    assert f"Gate failed: mean.hybrid[Set5]>{below!r} (observed" in r.stderr
    assert f"`mean.hybrid[Set5]>{below!r}`" in r.stdout and "❌ fail" in r.stdout


@pytest.mark.parametrize("args, message", [
    (["--group-by", "top", "--fail-if", "mean.hybrid[Set14]>0.1"],
     "unknown group 'Set14' in gate 'mean.hybrid[Set14]>0.1': with --group-by top the groups are Set5, Urban100"),
    (["--fail-if", "mean.hybrid[Set5]>0.1"], "names the group 'Set5' but pairs are not grouped"),
])
def test_unknown_group_is_exit_2_before_scoring(env, bench, tmp_path, args, message):
    # an environment without usable weights: reaching the scoring stage would be exit 3
    bad = {**env, "HLCLI_WEIGHTS": str(tmp_path / "absent.pth")}
    r = score(bad, *bench, "-r", *args, "-f", "json")
    assert r.exit_code == 2, r.stderr
    assert message in r.stderr and r.stdout == ""


# -- every format carries the groups -------------------------------------------------------------

def test_csv_has_a_group_column_last(env, bench, grouped):
    r = score(env, *bench, "-r", "--group-by", "top", "-f", "csv")
    lines = r.stdout.splitlines()
    assert lines[0].endswith(",reason,group") and lines[0].split(",")[8] == "hybrid"
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert {row["key"]: row["group"] for row in rows} == {p["key"]: p["group"] for p in grouped["pairs"]}

    summary = list(csv.DictReader(io.StringIO(score(env, *bench, "-r", "--group-by", "top", "--summary-only",
                                                    "-f", "csv").stdout)))
    assert [r["group"] for r in summary] == [""] * 5 + ["Set5"] * 5 + ["Urban100"] * 5
    for row in summary[5:]:
        st = grouped["summary"]["groups"][row["group"]]["metrics"][row["metric"]]
        assert float(row["mean"]) == st["mean"] and int(row["count"]) == st["count"]


def test_jsonl_lines_carry_groups(env, bench, grouped):
    lines = validate_jsonl(score(env, *bench, "-r", "--group-by", "top", "-f", "jsonl").stdout)
    assert lines[0]["settings"]["group_by"] == "top"
    assert {x["key"]: x["group"] for x in lines if x["type"] == "pair"} == {p["key"]: p["group"] for p in grouped["pairs"]}
    assert lines[-1]["groups"] == grouped["summary"]["groups"]

    lines = validate_jsonl(score(env, *bench, "-r", "--group-by", "top", "--summary-only", "-f", "jsonl").stdout)
    metric_lines = [x for x in lines if x["type"] == "metric"]
    assert [x.get("group") for x in metric_lines] == [None] * 5 + ["Set5"] * 5 + ["Urban100"] * 5
    urban = next(x for x in metric_lines if x.get("group") == "Urban100" and x["metric"] == "hybrid")
    assert urban["mean"] == grouped["summary"]["groups"]["Urban100"]["metrics"]["hybrid"]["mean"]


def test_json_summary_only_keeps_the_groups(env, bench, grouped):
    doc = validate_score(score(env, *bench, "-r", "--group-by", "top", "--summary-only", "-f", "json").stdout)
    assert doc["summary"]["groups"] == grouped["summary"]["groups"]


def test_markdown_and_table_show_a_summary_per_group(env, bench, grouped):
    md = score(env, *bench, "-r", "--group-by", "top", "-f", "markdown").stdout
    assert "### By group (top-level folder)" in md
    assert "| group | metric | count | mean | median | std | min | max | p95 |" in md
    for name in LAYOUT:
        assert f"| `{name}` | hybrid | 2 |" in md
    table = score(env, *bench, "-r", "--group-by", "top", "-f", "table").stdout
    assert "summary by group (top-level folder)" in table
    assert "Set5" in table and "Urban100" in table
    plain_md = score(env, *bench, "-r", "-f", "markdown").stdout
    assert "By group" not in plain_md


def test_schema_accepts_group_fields_only_where_documented(grouped):
    doc = json.loads(json.dumps(grouped))
    doc["summary"]["groups"]["Set5"]["extra"] = 1
    with pytest.raises(Exception):
        validate_score(doc)
    doc = json.loads(json.dumps(grouped))
    doc["settings"]["group_by"] = "none"  # recorded only when grouping
    with pytest.raises(Exception):
        validate_score(doc)
    assert loads_strict(json.dumps(grouped)) == grouped


def test_api_run_has_group_summaries(weights_file, bench):
    import hlcli

    run = hlcli.score_dirs(*bench, layers=["conv1_2", "conv2_2"], recursive=True, group_by="top",
                           weights=str(weights_file))
    summ = run.summary()
    assert set(summ["groups"]) == {"Set5", "Urban100"}
    values = [p.hybrid for p in run.pairs if p.key.startswith("Set5/")]
    assert summ["groups"]["Set5"]["metrics"]["hybrid"]["mean"] == pytest.approx(float(np.mean(values)), rel=1e-12)
