"""The house (docs/development.md, "The layout"): one-way layers checked by import-linter, the
folder map and its size limits, and the "How to add a metric" recipe, walked with a toy metric."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest's own dependency
    import tomli as tomllib

PKG = ROOT / "hlcli"
DEV = (ROOT / "docs" / "development.md").read_text(encoding="utf-8")


def folders() -> set[str]:
    return {p.name for p in PKG.iterdir() if p.is_dir() and p.name != "__pycache__"}


def test_lint_imports_keeps_every_contract():
    """`lint-imports` (import-linter: imports inside functions count) with this checkout's hlcli."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    exe = Path(sys.executable).with_name("lint-imports")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "importlinter.cli"]
    r = subprocess.run([*cmd, "--no-cache"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"Contracts: (\d+) kept, 0 broken", r.stdout), r.stdout


def test_contracts_cover_every_folder_and_top_module():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    kinds = {c["type"] for c in cfg["contracts"]}
    assert {"layers", "acyclic_siblings", "forbidden"} <= kinds
    (layers,) = [c for c in cfg["contracts"] if c["type"] == "layers"]
    assert layers["containers"] == ["hlcli"]
    named = {n.strip() for layer in layers["layers"] for n in layer.split("|")}
    code_folders = {f for f in folders() if (PKG / f / "__init__.py").exists()}
    top = {p.stem for p in PKG.glob("*.py")} - {"__init__"}
    assert named == code_folders | top
    (acyclic,) = [c for c in cfg["contracts"] if c["type"] == "acyclic_siblings"]
    assert acyclic["ancestors"] == ["hlcli"]


def test_module_counts():
    top = sorted(p.name for p in PKG.glob("*.py"))
    assert len(top) <= 8, top
    for folder in folders():
        mods = list((PKG / folder).glob("*.py"))
        assert len(mods) <= 16, (folder, len(mods))


def test_development_md_opens_with_the_map_of_every_folder():
    assert DEV.index("## The layout") < DEV.index("## How to add a metric") < DEV.index("## Running the tests")
    layout = DEV[DEV.index("## The layout"):DEV.index("## How to add a metric")]
    table = set(re.findall(r"^\| `hlcli/(\w+)/` \|", layout, re.M))
    assert table == folders()
    # every module path the diagram names exists
    for path in re.findall(r"(?<![\w/])(\w+/\w+\.py)\b", layout):
        if path.split("/")[0] in folders():
            assert (PKG / path).exists(), path
        else:
            assert (ROOT / path).exists(), path
    for name in re.findall(r"`(\w+\.py)`", layout):
        assert list(PKG.rglob(name)), name


def test_add_a_metric_recipe_names_real_things():
    recipe = DEV[DEV.index("## How to add a metric"):DEV.index("## Running the tests")]
    for path in re.findall(r"`((?:hlcli|tests|scripts)/[\w/]+\.(?:py|json))`", recipe):
        assert (ROOT / path).exists(), path
    from dataclasses import fields

    from hlcli.metrics import psnr_ssim
    from hlcli.metrics import registry

    field_names = {f.name for f in fields(registry.Metric)}
    for field in ("name", "label", "higher_is_better", "unit", "needs", "compute", "map", "infinite",
                  "decimals", "min_side", "definition"):
        assert field in field_names and re.search(rf"`{field}(`|=)", recipe), field
    assert isinstance(registry._EXTRA, tuple) and "`_EXTRA`" in recipe
    px_attrs = {"restored", "gt", "scale", "rgb", "y", "nets"}
    for a in px_attrs:
        assert f"px.{a}" in recipe
    assert {"rgb", "y"} <= set(dir(psnr_ssim.PixelPair))
    # each registered metric's compute/map path resolves (the form step 2 asks for)
    import importlib

    for m in registry._EXTRA:
        for path in filter(None, (m.compute, m.map)):
            module, fn = path.split(":")
            assert module.startswith("hlcli.metrics.") and (ROOT / (module.replace(".", "/") + ".py")).exists(), path
            assert re.search(rf"^def {fn}\(", (ROOT / (module.replace(".", "/") + ".py")).read_text(), re.M), path


def test_schema_names_every_extra_metric():
    """Step 3 of the recipe: the score schema knows every metric of the registry."""
    import json

    from hlcli.metrics import registry

    text = (PKG / "schema" / "score.schema.json").read_text(encoding="utf-8")
    schema = json.loads(text)
    enums = [e for e in re.findall(r'"enum": (\[[^\]]*\])', text) if '"psnr"' in e]
    assert enums and all(set(json.loads(e)) == set(registry.EXTRA) for e in enums)
    patterns = [p for p in re.findall(r'"pattern": "(\^\(l1[^"]*)"', text)]
    assert patterns
    for name in registry.EXTRA:
        assert all(re.fullmatch(p.replace("\\\\", "\\"), name) for p in patterns), name
        if registry.get(name).is_set:  # one value per set: in the summary's (and groups') sets
            assert name in schema["$defs"]["sets"]["properties"], name
        else:
            assert text.count(f'"{name}": {{"$ref"') >= 2, name  # per pair and in the summary
    scopes = [json.loads(e) for e in re.findall(r'"scope": \{"enum": (\[[^\]]*\])', text) if '"image"' in e]
    assert scopes and all(set(e) == set(registry.SCOPES) for e in scopes)  # every scope the registry has


def test_add_a_metric_recipe_end_to_end(tmp_path, monkeypatch, pair_dirs, weights_file):
    """Steps 1 and 2 with a toy metric (mean absolute error on the 0-255 scale): one new module,
    one registry line, and the metric is computed, summarised and ordered like the others."""
    import numpy as np
    from PIL import Image

    import hlcli
    from hlcli.metrics import registry

    (tmp_path / "toy_metric.py").write_text(
        "import torch\n\n\n"
        "def mae255(px):\n"
        "    r, g = px.rgb\n"
        "    return (r - g).abs().flatten(1).mean(dim=1)\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    toy = registry.Metric("mae255", "MAE", False, None, "pixels", "toy_metric:mae255", decimals=3,
                          definition="mean absolute error on the 0-255 scale")
    monkeypatch.setattr(registry, "_EXTRA", (*registry._EXTRA, toy))
    monkeypatch.setattr(registry, "EXTRA", (*registry.EXTRA, "mae255"))
    monkeypatch.setattr(registry, "_BY_NAME", {**registry._BY_NAME, "mae255": toy})

    restored, gt = pair_dirs
    run = hlcli.score_dirs(restored, gt, weights=str(weights_file), metrics=("mae255", "psnr"), workers=0)
    assert run.metric_names[-2:] == ["psnr", "mae255"]
    for p in run.pairs:
        a = np.asarray(Image.open(Path(restored) / f"{p.key}.png").convert("RGB"), dtype=np.float64)
        b = np.asarray(Image.open(Path(gt) / f"{p.key}.png").convert("RGB"), dtype=np.float64)
        assert p.metric("mae255") == pytest.approx(np.abs(a - b).mean(), rel=1e-12)
    assert "mae255" in run.summary()["metrics"]
