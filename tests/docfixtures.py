"""Real documents for the document readers' tests and fuzzer: one small ``hlcli score -f json``
run (groups, a skipped file, a missing file, gates with a baseline, a crop border, opt-in PSNR
and SSIM with an identical pair whose PSNR is null, i.e. +inf), its two
shard parts and its maps index, scored once with seeded random weights. Shared by
``tests/test_documents.py``, ``tests/test_docfuzz.py`` and ``benchmarks/docfuzz.py``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from .conftest import degrade, make_vgg19_state_dict, save, textured

LAYERS = "conv1_2,conv2_1"


def make_documents(root: Path) -> dict[str, Any]:
    """Score a tiny tree under ``root``; return the documents' texts by kind: ``run``, ``baseline``,
    ``part0``, ``part1`` (score documents) and ``maps`` (DIR/maps.json), plus ``maps_dir``."""
    import torch

    from hlcli.cli import cli

    root.mkdir(parents=True, exist_ok=True)
    weights = root / "vgg19-random.pth"
    torch.save(make_vgg19_state_dict(), weights)
    for i, key in enumerate(["set5/a", "set5/b", "set14/c", "set14/d", "set14/same"]):
        gt = textured(24, 32, seed=i)
        save(root / "gt" / f"{key}.png", gt)
        save(root / "restored" / f"{key}.png", gt if key.endswith("same") else degrade(gt, seed=i))
    (root / "restored" / "set14" / "e.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")  # skipped
    save(root / "gt" / "set14" / "e.png", textured(24, 32, seed=9))
    save(root / "gt" / "set5" / "f.png", textured(24, 32, seed=10))  # missing its restored file
    common = [str(root / "restored"), str(root / "gt"), "-r", "--layers", LAYERS, "--weights", str(weights),
              "--workers", "0", "--group-by", "top", "--on-error", "skip", "--allow-skips", "--allow-missing",
              "--crop-border", "2", "--metrics", "psnr,ssim_y", "-f", "json"]
    runner = CliRunner(env={"TORCH_HOME": str(root / "torch"), "HLCLI_CACHE": str(root / "cache"),
                            "HLCLI_WEIGHTS": None, "HLCLI_OFFLINE": "1"})

    def score(*extra: str) -> None:
        r = runner.invoke(cli, ["score", *common, *extra])
        assert r.exit_code in (0, 1), r.stderr

    score("-o", str(root / "baseline.json"), "--lambda", "0.05")
    score("-o", str(root / "run.json"), "--fail-if", "mean.hybrid<10", "--fail-if", "mean.l1[set5]<1",
          "--baseline", str(root / "baseline.json"), "--max-regression", "50%", "--save-maps", str(root / "maps"))
    for i in range(2):
        score("--shard", f"{i}/2", "-o", str(root / f"part{i}.json"))
    out = {name: (root / f"{name}.json").read_text("utf-8") for name in ("run", "baseline", "part0", "part1")}
    out["maps"] = (root / "maps" / "maps.json").read_text("utf-8")
    out["maps_dir"] = root / "maps"
    out["root"] = root
    json.loads(out["run"])
    return out
