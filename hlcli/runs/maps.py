"""Error maps (``hlcli score --save-maps DIR``): where in each image the scores come from.

For every scored pair, from the same features the scores come from (:meth:`BatchScorer.measure_maps
<hlcli.engine.batch.BatchScorer.measure_maps>`):

* ``DIR/<key>.l1.npy``: float32 H x W, the per-pixel mean over the 3 channels of |Ŷ − Y| (in
  [0, 1]); its mean is the pair's ``l1``.
* ``DIR/<key>.<layer>.npy``: float32 H_l x W_l (the layer's own resolution), the per-position
  mean over the C_l channels of (Φ_l(Y) − Φ_l(Ŷ))²; its mean is the pair's value for that layer.
* ``DIR/<key>.l1.png``, ``DIR/<key>.<layer>.png``, ``DIR/<key>.perceptual.png``: colour-mapped
  (matplotlib's ``viridis``), at image size. The perceptual map is Σ_l w_l · up(map_l), each layer
  map upsampled bilinearly to H x W first (``torch.nn.functional.interpolate``,
  ``mode="bilinear"``, ``align_corners=False``, as LPIPS' ``spatial=True`` does); layer PNGs are
  upsampled the same way. Colour = ``viridis(clip(value / top, 0, 1))``, with ``top`` the 99.5th
  percentile of that kind of map over the whole run (``scale="run"``, the same colours mean the
  same values in every pair) or over the pair alone (``scale="pair"``). ``DIR/maps.json`` records
  every range, the run's keys and settings.

Memory: the run-wide percentile needs every map, so the ``.npy`` files are written during the
run and the PNGs at the end, read back one pair at a time; during the run only an evenly strided
sample of at most :data:`SAMPLE` values per map is kept for the percentile (each pair counts the
same), so memory does not grow with the images. With ``fmt="png"`` the ``.npy`` files are deleted
once the PNGs are written.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any
import importlib

import numpy as np

from ..errors import HlcliEnvironmentError, InputError
from .readers import MAPS_FILE, read_maps_index
from .documents import comparable_settings
from ..metrics.registry import get

FORMATS = ("png", "npy", "both")
SCALES = ("run", "pair")
PERCENTILE = 99.5
COLORMAP = "viridis"
SAMPLE = 4096
UPSAMPLING = "bilinear (torch.nn.functional.interpolate, align_corners=False)"
INSTALL_FIX = "pip install 'hlcli[report]' (it adds matplotlib, for the colormaps and plots)"


def require_matplotlib(what: str) -> None:
    """An environment error (exit 3) naming the install command when matplotlib is missing."""
    try:
        importlib.import_module("matplotlib")
    except ImportError as exc:
        raise HlcliEnvironmentError(f"{what} needs matplotlib, which is not installed", None, INSTALL_FIX) from exc


def map_path(directory: str | Path, key: str, kind: str, ext: str) -> Path:
    """``DIR/<key>.<kind>.<ext>``; a key with subdirectories makes subdirectories. A key that
    would leave DIR (absolute, ``..``) is refused."""
    parts = PurePosixPath(key).parts
    if not parts or PurePosixPath(key).is_absolute() or ".." in parts:
        raise InputError(f"pair key {key!r} cannot name a file inside the maps folder", str(directory),
                         "rename the file so that its key is a relative path without '..'")
    return Path(directory, *parts[:-1], f"{parts[-1]}.{kind}.{ext}")


def colorize(values: np.ndarray, top: float, colormap: str = COLORMAP) -> np.ndarray:
    """``values`` (H x W, >= 0) as uint8 RGB: ``colormap(clip(values / top, 0, 1))``;
    monotone in the value for a given ``top``."""
    from matplotlib import colormaps  # lazy: keeps matplotlib off the cheap paths (import hlcli, --help, reading runs)

    cmap = colormaps[colormap]
    out = np.empty((*values.shape, 3), dtype=np.uint8)
    for y in range(0, values.shape[0], 512):  # in bands: a 4096x4096 map never needs 4 x 64 MB temporaries
        band = values[y : y + 512]
        norm = np.clip(band / top, 0.0, 1.0) if top > 0 else np.zeros_like(band)
        out[y : y + 512] = cmap(norm, bytes=True)[..., :3]
    return out


def colorbar(colormap: str = COLORMAP, width: int = 256, height: int = 12) -> np.ndarray:
    """A horizontal colour bar (uint8 RGB), low on the left."""
    ramp = np.tile(np.linspace(0.0, 1.0, width), (height, 1))
    return colorize(ramp, 1.0, colormap)


def upsample(layer_map: np.ndarray, height: int, width: int) -> np.ndarray:
    """A layer map at image size, float32 (see the module doc for the method)."""
    import torch  # lazy: keeps torch off the cheap paths (import hlcli, --help, reading runs)
    import torch.nn.functional as F  # lazy: keeps torch off the cheap paths (import hlcli, --help, reading runs)

    t = torch.from_numpy(np.ascontiguousarray(layer_map, dtype=np.float32))[None, None]
    return F.interpolate(t, size=(height, width), mode="bilinear", align_corners=False)[0, 0].numpy()


def perceptual_map(layer_maps: Sequence[np.ndarray], weights: Sequence[float], height: int, width: int) -> np.ndarray:
    """Σ_l w_l · up(map_l), float32 H x W (λ-free, like ``perceptual``)."""
    total = np.zeros((height, width), dtype=np.float32)
    for m, w in zip(layer_maps, weights):
        if w:
            total += np.float32(w) * upsample(m, height, width)
    return total


def _sample(values: np.ndarray) -> np.ndarray:
    flat = values.ravel()
    if flat.size <= SAMPLE:
        return flat.astype(np.float32, copy=True)
    return flat[np.linspace(0, flat.size - 1, SAMPLE).astype(np.int64)].astype(np.float32)


def _top(values: np.ndarray) -> float:
    return float(np.percentile(values, PERCENTILE)) if values.size else 0.0


class MapWriter:
    """Writes the maps of a run: :meth:`add` per pair during the run (``.npy`` files and a
    bounded sample for the run-wide scale), :meth:`finish` at the end (PNGs and ``maps.json``)."""

    def __init__(self, directory: str | Path, layers: Sequence[Any], layer_weights: Sequence[float], *,
                 fmt: str = "both", scale: str = "run", extra: Sequence[str] = ()):
        for what, value, allowed in (("--maps-format", fmt, FORMATS), ("--maps-scale", scale, SCALES)):
            if value not in allowed:
                raise InputError(f"unknown {what} {value!r}", None, f"use one of {', '.join(allowed)}")
        if fmt != "npy":
            require_matplotlib("--save-maps with PNG maps")
        self.directory = Path(directory)
        self.layers = [s.name for s in layers]
        self.strides = [s.stride for s in layers]
        self.weights = [float(w) for w in layer_weights]
        self.fmt, self.scale = fmt, scale
        # Extra metrics with a map (--metrics): the SSIM map of the valid region, the LPIPS
        # spatial map; each .npy holds the raw map (its mean is the score), each PNG shows how
        # bad each place is (1 - SSIM for higher-is-better maps).

        self.extra = [n for n in extra if get(n).map]
        self.flip = {n for n in self.extra if get(n).higher_is_better}
        self.kinds = ["l1", *self.layers, "perceptual", *self.extra]
        self.samples: dict[str, list[np.ndarray]] = {k: [] for k in self.kinds}
        self.sizes: dict[str, tuple[int, int]] = {}
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot create the maps folder ({exc.strerror or exc})", str(directory),
                             "give --save-maps a folder you can write to") from exc

    def add(self, key: str, maps: Sequence[Any], extra: dict[str, Any] | None = None) -> None:
        """Store one pair's maps: ``[l1 (H, W), layer maps...]`` (tensors or arrays) and the
        extra metrics' maps (``{name: map}``)."""
        for name, m in (extra or {}).items():
            arr = np.asarray(m, dtype=np.float32)
            path = map_path(self.directory, key, name, "npy")
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, arr)
            self.samples[name].append(_sample(1.0 - arr if name in self.flip else arr))
        arrays = [np.asarray(m, dtype=np.float32) for m in maps]
        h, w = arrays[0].shape
        self.sizes[key] = (w, h)
        for kind, arr in zip(["l1", *self.layers], arrays):
            path = map_path(self.directory, key, kind, "npy")
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, arr)
            self.samples[kind].append(_sample(arr))
        if self.scale == "run":
            self.samples["perceptual"].append(_sample(perceptual_map(arrays[1:], self.weights, h, w)))

    def run_ranges(self) -> dict[str, list[float]]:
        """[0, top] per kind of map, top the run's 99.5th percentile (from the samples)."""
        ranges = {}
        for kind in self.kinds:
            values = np.concatenate(self.samples[kind]) if self.samples[kind] else np.zeros(0, np.float32)
            ranges[kind] = [0.0, _top(values)]
        return ranges

    def finish(self, run: Any) -> dict[str, Any]:
        """Write the PNGs (read back from the ``.npy`` files) and ``maps.json``; return the latter."""
        ranges = self.run_ranges() if self.scale == "run" else None
        pairs = {}
        for key in sorted(self.sizes):
            w, h = self.sizes[key]
            pair_ranges = self._pngs(key, h, w, ranges) if self.fmt != "npy" else None
            pairs[key] = {"width": w, "height": h, "range": pair_ranges or ranges}
        doc = {
            "tool": "hlcli", "kind": "maps", "version": 1, "format": self.fmt, "scale": self.scale,
            "percentile": PERCENTILE, "colormap": COLORMAP, "upsampling": UPSAMPLING,
            "layers": [{"name": n, "weight": w, "stride": s}
                       for n, w, s in zip(self.layers, self.weights, self.strides)],
            "range": ranges, "keys": sorted(self.sizes), "settings": run.settings, "pairs": pairs,
            **({"extra": [{"name": n, "png_shows": f"1 - {n}" if n in self.flip else n} for n in self.extra]}
               if self.extra else {}),
        }
        text = json.dumps(doc, indent=2, allow_nan=False, ensure_ascii=False)
        (self.directory / MAPS_FILE).write_text(text + "\n", encoding="utf-8")
        return doc

    def _pngs(self, key: str, h: int, w: int, ranges: dict[str, list[float]] | None) -> dict[str, list[float]]:
        from PIL import Image  # lazy: keeps PIL off the cheap paths (import hlcli, --help, reading runs)

        npys = [map_path(self.directory, key, kind, "npy") for kind in ["l1", *self.layers]]
        arrays = [np.load(p) for p in npys]
        full = {"l1": arrays[0], "perceptual": perceptual_map(arrays[1:], self.weights, h, w)}
        for name in self.extra:
            npys.append(map_path(self.directory, key, name, "npy"))
            arr = np.load(npys[-1])
            full[name] = 1.0 - arr if name in self.flip else arr
        used = {}
        for kind in self.kinds:
            values = full.get(kind)
            if values is None:
                values = upsample(arrays[1 + self.layers.index(kind)], h, w)
            top = ranges[kind][1] if ranges else _top(values)
            used[kind] = [0.0, top]
            Image.fromarray(colorize(values, top)).save(map_path(self.directory, key, kind, "png"), optimize=False)
        if self.fmt == "png":
            for p in npys:
                p.unlink()
        return used


def load_maps_index(directory: str | Path) -> dict[str, Any]:
    """Read and check ``DIR/maps.json`` (:func:`hlcli.runs.readers.read_maps_index`)."""
    return read_maps_index(directory)


def check_matches(index: dict[str, Any], run_doc: dict[str, Any], directory: str | Path) -> None:
    """Refuse maps made by another run: the keys and the comparable settings must be the same."""
    path = str(Path(directory) / MAPS_FILE)
    fix = "give --maps the folder written by the same `hlcli score` run as RUN.json"
    keys = sorted(p["key"] for p in run_doc["pairs"])
    if sorted(index["keys"]) != keys:
        extra = sorted(set(index["keys"]) ^ set(keys))
        shown = ", ".join(repr(k) for k in extra[:5]) + (" …" if len(extra) > 5 else "")
        raise InputError(f"the maps are of other pairs than the run ({len(extra)} differ: {shown})", path, fix)
    if comparable_settings(index["settings"]) != comparable_settings(run_doc["settings"]):
        raise InputError("the maps were made with other settings (λ, layers, weights or precision) than the run",
                         path, fix)

