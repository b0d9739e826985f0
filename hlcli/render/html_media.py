"""The pictures of the HTML report: matplotlib plots as inline SVG, image thumbnails (embedded
as data URIs or linked by relative path) and the maps' colour bar. No torch import except to
colour maps from ``.npy`` files (:mod:`hlcli.runs.maps`)."""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
from ..errors import HlcliError
from ..runs import maps

SCATTER_ID = "hl-scatter"
_RC = {"svg.hashsalt": "hlcli", "svg.fonttype": "path", "font.size": 9}


def _svg(fig: Any) -> str:
    """A figure as an inline ``<svg>`` element (no XML declaration, no DOCTYPE, text as paths:
    no font request)."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _hist(ax: Any, values: list[float]) -> None:
    """A histogram of ``values`` on ``ax``: √n bins (at most 40), one bin around a single value
    (numpy's own ±0.5 around it vanishes in float64 at 1e100 and fails)."""
    bins = max(1, min(40, int(np.ceil(np.sqrt(max(1, len(values)))))))
    span = None
    if values:
        lo, hi = min(values), max(values)
        if not hi - lo > 1e-9 * max(abs(lo), abs(hi)):
            pad = 0.05 * abs(hi) or 0.5
            bins, span = 1, (lo - pad, hi + pad)
    ax.hist(values, bins=bins, range=span, color="#3b528b", edgecolor="white", linewidth=0.5)


def histogram_svg(values: list[float], lam: float) -> str:
    """The distribution of hybrid over the pairs."""
    import matplotlib  # lazy: keeps matplotlib off the cheap paths (import hlcli, --help, reading runs)

    with matplotlib.rc_context(_RC):
        return _svg(histogram_figure(values, lam))


def histogram_figure(values: list[float], lam: float) -> Any:
    """The hybrid histogram's matplotlib figure (call inside ``rc_context(_RC)`` for the page's
    style)."""
    return _histogram(values, f"hybrid = L1 + {lam:g} · perceptual (unitless, lower is better)",
                      "Distribution of hybrid over pairs")


def _histogram(values: list[float], xlabel: str, title: str) -> Any:
    """A histogram figure of ``values`` (:func:`_hist`); its y axis shows whole counts only."""
    from matplotlib.figure import Figure  # lazy: keeps matplotlib off the cheap paths (import hlcli, --help, reading runs)
    from matplotlib.ticker import MaxNLocator  # lazy: keeps matplotlib off the cheap paths (import hlcli, --help, reading runs)

    fig = Figure(figsize=(5.2, 3.2))
    ax = fig.add_subplot()
    _hist(ax, values)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("pairs (count)")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # a count of 1.5 pairs means nothing
    ax.set_title(title)
    return fig


def metric_histogram_svg(values: list[float], metric: Any) -> str:
    """The distribution of an extra metric (``metric``: its :class:`hlcli.metrics.registry.Metric`)
    over the pairs, its direction and unit on the axis."""
    import matplotlib  # lazy: keeps matplotlib off the cheap paths (import hlcli, --help, reading runs)

    unit = f"{metric.unit}, " if metric.unit else ""
    with matplotlib.rc_context(_RC):
        return _svg(_histogram(values, f"{metric.label} ({unit}{metric.direction} is better)",
                               f"Distribution of {metric.label} over pairs"))


def scatter_svg(l1: list[float], perceptual: list[float]) -> str:
    """Per-pair L1 against per-pair perceptual: the two experts. The markers are ``<use>``
    elements in pair order inside ``#hl-scatter`` (the page's script adds each key as a title)."""
    import matplotlib  # lazy: keeps matplotlib off the cheap paths (import hlcli, --help, reading runs)
    from matplotlib.figure import Figure  # lazy: keeps matplotlib off the cheap paths (import hlcli, --help, reading runs)

    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(5.2, 3.2))
        ax = fig.add_subplot()
        (line,) = ax.plot(l1, perceptual, linestyle="none", marker="o", markersize=5, alpha=0.75, color="#21918c")
        line.set_gid(SCATTER_ID)
        ax.set_xlabel("L1 (mean absolute error of RGB in [0, 1])")
        ax.set_ylabel("perceptual (Σ w·mean squared feature diff.)")
        ax.set_title("Pixels (L1) against texture (perceptual), one point per pair")
        ax.ticklabel_format(axis="both", style="sci", scilimits=(-3, 3))
        return _svg(fig)


def png_data_uri(rgb: np.ndarray) -> str:
    from PIL import Image  # lazy: keeps PIL off the cheap paths (import hlcli, --help, reading runs)

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def thumb_size(width: int, height: int, longest: int) -> tuple[int, int]:
    """(w, h) with the longest side at most ``longest`` (never enlarged)."""
    f = min(1.0, longest / max(width, height))
    return max(1, round(width * f)), max(1, round(height * f))


def _to_rgb8(arr: np.ndarray) -> np.ndarray:
    return (arr >> 8).astype(np.uint8) if arr.dtype == np.uint16 else arr.astype(np.uint8)


def is_regular_file(path: str | Path) -> bool:
    """Whether ``path`` (from a document: any string) names a regular file; False for a device, a
    FIFO, a directory, or a name the system refuses (too long, a NUL), never an exception."""
    try:
        return Path(path).is_file()
    except (OSError, ValueError):
        return False


def image_bases(doc: dict[str, Any], doc_path: str | Path | None = None,
                root: str | Path | None = None) -> list[Path]:
    """The folders a document's relative image paths may start from, in the order tried: ``root``
    alone when given (``report --images-root``); else the folder the run was recorded from (the
    document's ``cwd``), the document's own folder, the current folder."""
    if root is not None:
        return [Path(root)]
    bases = [Path(doc["cwd"])] if isinstance(doc.get("cwd"), str) and doc["cwd"] else []
    if doc_path is not None:
        bases.append(Path(doc_path).resolve().parent)
    bases.append(Path.cwd())
    unique: list[Path] = []
    for b in bases:
        if b not in unique:
            unique.append(b)
    return unique


def find_image(path: str, bases: list[Path]) -> str | None:
    """``path`` from a document as a file that exists: as it is when absolute, else under the
    first of ``bases`` that has it; None when none has it (the image is gone or moved)."""
    try:
        p = Path(path)
        if p.is_absolute():
            return path if is_regular_file(p) else None
    except (OSError, ValueError):
        return None
    for base in bases:
        if is_regular_file(base / p):
            return str(base / p)
    return None


def photo_thumb(path: str, size: tuple[int, int], alpha: str) -> np.ndarray | None:
    """A decoded image (hlcli's decoder: orientation, 16-bit, alpha policy) resized to ``size``;
    None if it cannot be read any more."""
    from PIL import Image  # lazy: keeps PIL off the cheap paths (import hlcli, --help, reading runs)

    from ..inputs import images  # lazy: keeps PIL off the cheap paths (import hlcli, --help, reading runs)

    if not is_regular_file(path):  # a path from a document: never a device or a FIFO (/dev/stdin)
        return None
    try:
        arr = _to_rgb8(images.decode(path, alpha=alpha if alpha in images.ALPHA_POLICIES else "ignore"))
    except (HlcliError, OSError):
        return None
    return np.asarray(Image.fromarray(arr).resize(size, Image.Resampling.LANCZOS))


def map_thumb(maps_dir: Path, key: str, kind: str, index: dict[str, Any], size: tuple[int, int]) -> np.ndarray | None:
    """A map's PNG resized to ``size``, or (``--maps-format npy``) coloured from its ``.npy``
    files with the range recorded in maps.json; None if neither is there."""
    from PIL import Image  # lazy: keeps PIL off the cheap paths (import hlcli, --help, reading runs)

    png = maps.map_path(maps_dir, key, kind, "png")
    if is_regular_file(png):
        with Image.open(png) as img:
            return np.asarray(img.convert("RGB").resize(size, Image.Resampling.BOX))
    pair = index["pairs"].get(key) or {}
    top = ((pair.get("range") or {}).get(kind) or [0, 0])[1]
    try:
        if kind == "l1":
            values = np.load(maps.map_path(maps_dir, key, "l1", "npy"))
        else:
            layers = index.get("layers") or []
            arrays = [np.load(maps.map_path(maps_dir, key, layer["name"], "npy")) for layer in layers]
            values = maps.perceptual_map(arrays, [layer["weight"] for layer in layers], pair["height"], pair["width"])
    except (OSError, ValueError, KeyError):
        return None
    return np.asarray(Image.fromarray(maps.colorize(values, float(top))).resize(size, Image.Resampling.BOX))


def link(target: str | Path, report: Path) -> str:
    """A URL-quoted relative path from the report's folder to ``target``."""
    rel = os.path.relpath(Path(target).resolve(), report.resolve().parent)
    return quote(Path(rel).as_posix(), safe="/")


def colorbar_uri() -> str:
    return png_data_uri(maps.colorbar())
