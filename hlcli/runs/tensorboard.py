"""TensorBoard logging of a run (``--tensorboard DIR --step N``, :meth:`hlcli.Run.to_tensorboard`).

* scalars at step N: every metric's mean (and every set metric's value) as ``hlcli/<metric>``,
  per group ``hlcli/<group>/<metric>``; consecutive evaluations of checkpoints draw curves;
* images: the K worst pairs (by the sort metric) as one panel each, restored | ground truth |
  L1 map, under ``hlcli/worst/<rank>`` (1 = the worst), with a text ``hlcli/worst`` naming them;
  each image at most :data:`PANEL_SIDE` px on its longest side; the L1 map coloured with the
  report's colormap (viridis, 0 to the 99.5th percentile over the panels shown) when matplotlib
  is there, grey otherwise.

Written with ``torch.utils.tensorboard.SummaryWriter`` (the ``tensorboard`` package, extra
``hlcli[tensorboard]``). TensorBoard stores scalars as float32. It works on the
:class:`~hlcli.Run` itself and imports no other module of ``runs`` but :mod:`.summaries` (which
imports none), so that ``Run.to_tensorboard`` can call it without an import cycle.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import HlcliEnvironmentError, HlcliError
from ..inputs.loader import Planned, decode_pair, plan_pair
from ..inputs.pairing import Pair
from ..metrics.registry import badness
from .summaries import summary_values

PANEL_SIDE = 512
COLORMAP = "viridis"  # as the report's maps
INSTALL_FIX = "pip install 'hlcli[tensorboard]' (it adds the tensorboard package)"

#: ``key -> (restored, gt)`` HxWx3 integer arrays as scored (size policy and crop border
#: applied), or None when the pixels cannot be had any more.
PixelSource = Callable[[str], "tuple[np.ndarray, np.ndarray] | None"]


def require_tensorboard(what: str) -> None:
    """An environment error (exit 3) naming the install command when tensorboard is missing."""
    import importlib

    try:
        importlib.import_module("tensorboard")  # only whether it is there
    except ImportError as exc:
        raise HlcliEnvironmentError(f"{what} needs the tensorboard package, which is not installed", None,
                                    INSTALL_FIX) from exc


def scalars(summary: dict[str, Any]) -> dict[str, float]:
    """``tag -> value`` of a run's summary (:meth:`hlcli.Run.summary`): metrics with a finite
    value (each pair metric's mean, each set metric's value: :func:`hlcli.runs.summaries.summary_values`)."""
    out = {}
    for prefix, part in [("hlcli/", summary), *((f"hlcli/{g}/", gs) for g, gs in (summary.get("groups") or {}).items())]:
        for metric, v in summary_values(part).items():
            if v is not None and math.isfinite(v):
                out[f"{prefix}{metric}"] = float(v)
    return out


def worst_pairs(pairs: list[Any], k: int, sort: str = "hybrid") -> list[Any]:
    """The ``k`` worst of ``pairs`` (``PairResult``) by ``sort`` in its direction (``key``: by hybrid)."""
    metric = "hybrid" if sort == "key" else sort
    return sorted(pairs, key=lambda p: (-badness(metric, p.metric(metric)), p.key))[: max(k, 0)]


def _thumb(arr: np.ndarray) -> np.ndarray:
    from PIL import Image  # lazy: Pillow only when a panel is drawn

    h, w = arr.shape[:2]
    f = min(1.0, PANEL_SIDE / max(h, w))
    size = (max(1, round(w * f)), max(1, round(h * f)))
    if size == (w, h):
        return arr
    return np.asarray(Image.fromarray(arr).resize(size, Image.Resampling.LANCZOS))


def _rgb8(arr: np.ndarray) -> np.ndarray:
    return (arr >> 8).astype(np.uint8) if arr.dtype == np.uint16 else arr.astype(np.uint8)


def l1_map(r: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Per-pixel mean over channels of |r - g| in [0, 1] (its mean is the pair's L1)."""
    scale = 65535.0 if r.dtype == np.uint16 or g.dtype == np.uint16 else 255.0
    return np.abs(r.astype(np.float64) - g.astype(np.float64)).mean(axis=2) / scale


def _colour(values: np.ndarray, top: float) -> np.ndarray:
    """The report's colours (viridis, 0 to ``top``), or grey without matplotlib."""
    norm = np.clip(values / top, 0.0, 1.0) if top > 0 else np.zeros_like(values)
    try:
        from matplotlib import colormaps  # lazy and optional: grey without it
    except ImportError:
        return np.repeat((norm * 255).round().astype(np.uint8)[..., None], 3, axis=2)
    return colormaps[COLORMAP](norm, bytes=True)[..., :3]


def panels(worst: list[Any], pixels: PixelSource) -> list[tuple[Any, np.ndarray]]:
    """(pair, panel HxWx3 uint8) for each of ``worst`` whose pixels can be had."""
    got = []
    for p in worst:
        px = pixels(p.key)
        if px is not None:
            got.append((p, px[0], px[1], l1_map(px[0], px[1])))
    if not got:
        return []
    top = float(np.percentile(np.concatenate([m.ravel()[:: max(1, m.size // 4096)] for *_, m in got]), 99.5))
    out = []
    for p, r, g, m in got:
        parts = [_thumb(_rgb8(r)), _thumb(_rgb8(g)), _thumb(_colour(m.astype(np.float32), top))]
        gap = np.full((parts[0].shape[0], 4, 3), 255, dtype=np.uint8)
        out.append((p, np.concatenate([parts[0], gap, parts[1], gap, parts[2]], axis=1)))
    return out


def log_run(run: Any, target: Any, *, step: int = 0, worst: int = 5, sort: str = "hybrid") -> None:
    """Log ``run`` (a :class:`hlcli.Run`) to ``target`` (a ``SummaryWriter``, or a folder for a
    new one, closed here) at ``step``: what ``hlcli score --tensorboard`` writes."""
    writer, owned = open_writer(target)
    try:
        for tag, value in scalars(run.summary()).items():
            writer.add_scalar(tag, value, step)
        pixels = run.images if run.images is not None else file_pixels(run)
        if worst > 0:
            _log_worst(writer, run, step, worst, sort, pixels)
        writer.flush()
    finally:
        if owned:
            writer.close()


def _log_worst(writer: Any, run: Any, step: int, worst: int, sort: str, pixels: PixelSource) -> None:
    metric = "hybrid" if sort == "key" else sort
    shown = panels(worst_pairs(run.pairs, worst, sort), pixels)
    rows = [f"| rank | pair | {metric} |", "|---:|---|---:|"]
    for rank, (p, panel) in enumerate(shown, 1):
        writer.add_image(f"hlcli/worst/{rank}", panel, step, dataformats="HWC")
        rows.append(f"| {rank} | `{p.key}` | {p.metric(metric):.6g} |")
    if shown:
        writer.add_text("hlcli/worst", "\n".join(rows) + "\n\nEach panel: restored | ground truth | L1 map", step)


def open_writer(target: Any) -> tuple[Any, bool]:
    """``(writer, owned)``: ``target`` itself when it has ``add_scalar``, else a new
    ``SummaryWriter`` on the folder ``target`` (owned: the caller closes it)."""
    if hasattr(target, "add_scalar"):
        return target, False
    require_tensorboard("logging to TensorBoard")
    from torch.utils.tensorboard import SummaryWriter  # lazy: torch only when logging

    return SummaryWriter(log_dir=str(Path(target))), True


def file_pixels(run: Any) -> PixelSource:
    """The pixels of a run's pairs, decoded again from their files as the run scored them (size
    policy, crop border, alpha policy); None for a pair that cannot be read any more."""
    settings = run.settings
    by_key = {p.key: p for p in run.pairs}

    def get(key: str) -> tuple[np.ndarray, np.ndarray] | None:
        p = by_key.get(key)
        if p is None:
            return None
        try:
            plan = plan_pair(0, Pair(key, Path(p.restored), Path(p.gt)),
                             size_policy=p.size_policy or "error", max_pixels=settings.get("max_pixels"), min_side=1,
                             crop_border=settings.get("crop_border", 0))
            if not isinstance(plan, Planned):
                return None
            return decode_pair(plan, alpha=settings.get("alpha", "error"), max_pixels=settings.get("max_pixels"))
        except (HlcliError, OSError):
            return None

    return get
