"""Shared by the tests of the λ tools (calibrate, tradeoff, table): schema validation of their
documents and real runs scored from the sample photos with the random VGG-19 weights."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
from click.testing import CliRunner
from PIL import Image, ImageFilter

from hlcli.cli import cli
from tests.conftest import SAMPLES
from tests.schemas import loads_strict, schema


def validate(kind: str, doc: Any) -> dict[str, Any]:
    """Validate a calibrate/tradeoff/table document (parsed or text) against its shipped schema;
    a document from the API goes through strict JSON first, as the CLI would write it."""
    doc = loads_strict(doc if isinstance(doc, str) else json.dumps(doc, allow_nan=False))
    jsonschema.Draft202012Validator(schema(kind), format_checker=jsonschema.FormatChecker()).validate(doc)
    assert doc["kind"] == kind and doc["tool"] == "hlcli" and doc["schema_version"] == 1
    return doc


def sample_crops(root: Path, size: int = 96, layout: dict[str, str] | None = None) -> tuple[Path, Path]:
    """Centre crops of the sample photos (restored and ground truth, real images) under
    ``root/restored`` and ``root/gt``; ``layout`` maps a sample name to a sub-folder (a dataset)."""
    for side in ("restored", "gt"):
        for src in sorted((SAMPLES / side).iterdir()):
            if src.suffix not in (".png", ".jpg"):
                continue
            img = Image.open(src).convert("RGB")
            w, h = img.size
            box = ((w - size) // 2, (h - size) // 2, (w + size) // 2, (h + size) // 2)
            folder = root / side / (layout or {}).get(src.stem, "")
            folder.mkdir(parents=True, exist_ok=True)
            img.crop(box).save(folder / f"{src.stem}.png")
    return root / "restored", root / "gt"


def blur_copy(src: Path, dst: Path, radius: float) -> Path:
    """Another "model": every image of ``src`` (recursively) blurred, same relative paths."""
    for f in sorted(src.rglob("*.png")):
        out = dst / f.relative_to(src)
        out.parent.mkdir(parents=True, exist_ok=True)
        Image.open(f).filter(ImageFilter.GaussianBlur(radius)).save(out)
    return dst


def noise_copy(src: Path, dst: Path, sigma: float, seed: int = 0) -> Path:
    """Another "model": Gaussian noise added to the ground truth ``src`` (recursively)."""
    rng = np.random.default_rng(seed)
    for f in sorted(src.rglob("*.png")):
        out = dst / f.relative_to(src)
        out.parent.mkdir(parents=True, exist_ok=True)
        arr = np.asarray(Image.open(f).convert("RGB")).astype(np.float64)
        Image.fromarray(np.clip(arr + rng.normal(0, sigma, arr.shape), 0, 255).astype(np.uint8)).save(out)
    return dst


def score(restored: Path, gt: Path, out: Path, weights: Path, *args: str) -> Path:
    """``hlcli score RESTORED GT -r -f json -o OUT --weights WEIGHTS`` through the CLI."""
    res = CliRunner().invoke(cli, ["score", str(restored), str(gt), "-r", "-q", "--workers", "0", "-f", "json",
                                   "-o", str(out), "--weights", str(weights), *args])
    assert res.exit_code == 0, res.stderr
    return out


def with_lambda(doc_path: Path, lam: float, out: Path) -> Path:
    """The same run at another λ: L1 and perceptual do not depend on λ; hybrid is recomputed as
    ``hlcli score --lambda`` would (the summary is left as it was: the tools read the pairs)."""
    doc = json.loads(doc_path.read_text())
    doc["settings"]["lambda"] = lam
    for p in doc["pairs"]:
        p["hybrid"] = p["l1"] + lam * p["perceptual"]
    out.write_text(json.dumps(doc))
    return out
