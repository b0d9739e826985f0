"""Synthetic runs and score documents with chosen numbers, for fast tests of gates, baselines,
compare and rendering (no network, no model)."""

from __future__ import annotations

from typing import Any

from hlcli.runs.results import Run
from hlcli.runs.results import PairResult

SHA = "ab" * 32
ENVIRONMENT = {"hlcli_version": "0.0.test", "versions": {"python": "3.11", "torch": "2.x"},
               "platform": "test", "device": {"type": "cpu", "index": None}, "threads": 1,
               "command": ["hlcli", "score"]}


def settings(lam: float = 0.05, layers: tuple[tuple[str, float], ...] = (("conv3_3", 1.0), ("conv4_3", 1.0)),
             sha256: str = SHA, precision: str = "fp32") -> dict[str, Any]:
    index = {"conv3_3": 14, "conv4_3": 23, "relu2_2": 8, "conv5_4": 34}
    return {
        "inputs": {"restored": "restored", "gt": "gt", "recursive": False},
        "lambda": lam,
        "layers": [{"name": n, "index": index.get(n, 0), "activation": "pre-relu", "weight": w, "stride": 4,
                    "receptive_field": 40} for n, w in layers],
        "network": {"name": "vgg19"},
        "normalization": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "input_range": [0, 1]},
        "weights": {"path": "w.pth", "source": "option", "sha256": sha256, "official_imagenet1k_v1": False},
        "precision": precision, "dtype": {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}[precision],
        "batch_size": 16, "pixel_budget": 1 << 21, "tile": {"core": 816, "halo": 104}, "workers": 0,
        "size_mismatch": "error", "alpha": "error", "max_pixels": 178956970, "on_error": "fail",
        "allow_missing": False,
    }


def pair(key: str, l1: float, layers: dict[str, float] | None = None, *, lam: float = 0.05,
         weights: dict[str, float] | None = None) -> PairResult:
    """A pair whose perceptual and hybrid follow the definitions exactly."""
    layers = {"conv3_3": l1 / 2, "conv4_3": l1 / 4} if layers is None else layers
    perceptual = sum((weights or {}).get(n, 1.0) * v for n, v in layers.items())
    return PairResult(key, f"restored/{key}.png", f"gt/{key}.png", 8, 8, l1, dict(layers), perceptual,
                      l1 + lam * perceptual)


def run(values: dict[str, float] | list[PairResult], **kw: Any) -> Run:
    """A Run over pairs given as {key: l1} (layers derived from l1) or as PairResult objects."""
    s = settings(**kw)
    pairs = list(values) if isinstance(values, list) else [pair(k, v, lam=s["lambda"]) for k, v in values.items()]
    return Run(settings=s, environment=dict(ENVIRONMENT), layer_names=[l["name"] for l in s["layers"]], pairs=pairs)


def document(values: dict[str, float] | list[PairResult], **kw: Any) -> dict[str, Any]:
    return run(values, **kw).document()


def pairs(values: dict[str, float]) -> list[PairResult]:
    return run(values).pairs
