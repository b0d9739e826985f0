"""The JSON Schemas shipped in hlcli/schema/: valid schemas, shipped as package data, accepting
every JSON output hlcli writes and rejecting documents that break the contract."""

from __future__ import annotations

import copy
import json
import tomllib

import jsonschema
import pytest
from click.testing import CliRunner

from hlcli.cli import cli
from hlcli.analysis.compare import compare_runs
from hlcli.runs.documents import validate_document
from tests import synthetic
from tests.conftest import ROOT, save, textured
from tests.schemas import schema, validate_compare, validate_jsonl, validate_score


@pytest.mark.parametrize("kind", ["score", "compare"])
def test_schemas_are_valid_and_shipped(kind):
    jsonschema.Draft202012Validator.check_schema(schema(kind))
    assert schema(kind)["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "schema/*.json" in pyproject["tool"]["setuptools"]["package-data"]["hlcli"]


def test_every_jsonl_line_type_has_a_schema():
    defs = schema("score")["$defs"]
    types = defs["jsonl_line"]["properties"]["type"]["enum"]
    assert all(f"jsonl_{t}" in defs for t in types)


@pytest.fixture
def messy_dirs(pair_dirs):
    """pair_dirs plus a pair of different sizes, a broken restored file and an unmatched one."""
    restored, gt = pair_dirs
    save(gt / "odd.png", textured(44, 44, seed=9))
    save(restored / "odd.png", textured(40, 40, seed=9))
    (restored / "broken.png").write_bytes(b"not an image")
    save(gt / "broken.png", textured(40, 40, seed=3))
    save(restored / "lonely.png", textured(40, 40, seed=4))
    return restored, gt


def test_real_outputs_validate(cli_env, messy_dirs, tmp_path):
    runner = CliRunner()
    restored, gt = map(str, messy_dirs)
    common = ["score", restored, gt, "--workers", "0", "--allow-missing", "--on-error", "skip", "--allow-skips",
              "--size-mismatch", "crop", "--fail-if", "mean.hybrid>1", "--fail-if", "p99.9.conv4_3>=0"]
    res = runner.invoke(cli, [*common, "-f", "json", "-o", str(tmp_path / "run.json")])
    assert res.exit_code == 1, res.stderr  # the second gate fails
    doc = validate_score((tmp_path / "run.json").read_text())
    assert doc["complete"] is False and doc["skipped"] and doc["missing"]["restored_only"]
    assert any("original_sizes" in p for p in doc["pairs"]) and doc["gate"]["passed"] is False
    assert validate_document(doc) is None  # the runtime check (used for --baseline) agrees

    res = runner.invoke(cli, [*common, "-f", "jsonl", "--baseline", str(tmp_path / "run.json"), "--max-regression", "all=0"])
    assert res.exit_code == 1, res.stderr
    lines = validate_jsonl(res.stdout)
    assert {x["type"] for x in lines} == {"header", "missing", "skipped", "pair", "summary"}
    assert lines[-1]["gate"]["regressions"]["passed"] is True

    res = runner.invoke(cli, ["score", restored, gt, "--allow-missing", "--on-error", "skip", "-f", "jsonl",
                              "--weights", str(tmp_path / "none.pth"),
                              "--offline"])
    assert res.exit_code == 3
    assert [x["type"] for x in validate_jsonl(res.stdout)] == ["aborted"]


def test_empty_and_summary_only_documents_validate():
    run = synthetic.run({})
    from hlcli.analysis import gate as g

    run.gate = g.GateSpec([g.parse_gate("mean.hybrid>0")]).evaluate(run)
    doc = validate_score(run.document())
    assert doc["summary"]["metrics"]["hybrid"]["mean"] is None and doc["gate"]["checks"][0]["observed"] is None
    validate_score(synthetic.run({"a": 0.5}).document(summary_only=True))


def _set(path, value):
    def mutate(doc):
        *parents, last = path
        target = doc
        for key in parents:
            target = target[key]
        if value is _DELETE:
            del target[last]
        else:
            target[last] = value
    return mutate


_DELETE = object()


@pytest.mark.parametrize("mutate", [
    _set(["unexpected"], 1),
    _set(["pairs"], _DELETE),
    _set(["summary_only"], True),  # but pairs still present
    _set(["schema_version"], 2),
    _set(["pairs", 0, "l1"], -0.1),
    _set(["pairs", 0, "hybrid"], "0.1"),
    _set(["pairs", 0, "extra"], 1),
    _set(["pairs", 0, "layers"], {"conv9_9": 0.1}),
    _set(["settings", "weights", "sha256"], "abc"),
    _set(["settings", "precision"], "fp64"),
    _set(["summary", "metrics", "hybrid", "p99"], _DELETE),
    _set(["summary", "metrics", "hybrid"], _DELETE),
    _set(["gate"], {"passed": True, "checks": [{"expression": "x", "stat": "mean", "metric": "l1", "op": "=>",
                                                 "threshold": 1, "observed": 0, "passed": True, "reason": None}],
                    "regressions": None}),
    _set(["gate"], {"passed": True, "checks": []}),
], ids=lambda f: "mutation")
def test_score_schema_rejects_broken_documents(mutate):
    doc = copy.deepcopy(synthetic.document({"a": 0.5, "b": 0.25}))
    validate_score(doc)
    mutate(doc)
    with pytest.raises(jsonschema.ValidationError):
        validate_score(doc)
    assert validate_document(doc) is not None


@pytest.mark.parametrize("line", [
    {"type": "nonsense"},
    {"type": "pair", "key": "a"},
    {"type": "metric", "metric": "hybrid", "count": 1},
    {"type": "aborted", "error": "x"},
    {"type": "summary", "count": 0},
])
def test_jsonl_lines_that_break_the_contract(line):
    header = {"type": "header", **synthetic.ENVIRONMENT, "schema_version": 1, "tool": "hlcli",
              "settings": synthetic.settings()}
    validate_jsonl(json.dumps(header) + "\n" + json.dumps({"type": "aborted", "error": "x", "exit_code": 2}))
    with pytest.raises((jsonschema.ValidationError, AssertionError)):
        validate_jsonl(json.dumps(header) + "\n" + json.dumps(line))


def test_jsonl_refuses_non_finite_numbers():
    with pytest.raises(ValueError, match="non-finite"):
        validate_jsonl('{"type": "aborted", "error": "x", "exit_code": NaN}')


@pytest.mark.parametrize("path,value", [
    (["metrics", "hybrid"], _DELETE), (["metrics", "l1", "ties"], -1), (["pairs", "common"], 0),
    (["bootstrap", "method"], "bca"), (["a", "settings", "weights_sha256"], "x"), (["extra"], 1),
])
def test_compare_schema(path, value):
    doc = compare_runs(synthetic.document({"a": 0.5, "b": 0.25}), synthetic.document({"a": 0.25, "b": 0.5}),
                       resamples=100)
    validate_compare(doc)
    _set(path, value)(doc)
    with pytest.raises(jsonschema.ValidationError):
        validate_compare(doc)


def test_baseline_check_without_jsonschema(monkeypatch):
    """Without jsonschema (a broken installation) the same schema is applied by the fallback
    checker, and the refusal names the JSON path."""
    import sys

    monkeypatch.setitem(sys.modules, "jsonschema", None)  # import fails
    doc = synthetic.document({"a": 0.5})
    assert validate_document(doc) is None
    for mutate in (_set(["pairs", 0, "hybrid"], "x"), _set(["settings", "weights"], _DELETE),
                   _set(["pairs", 0, "layers"], {}), _set(["pairs"], {"a": 1})):
        broken = copy.deepcopy(doc)
        mutate(broken)
        problem = validate_document(broken)
        assert problem is not None and problem.startswith(("pairs", "settings")), problem
