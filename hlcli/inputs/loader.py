"""Turn pairs into batches: header probing, size checks, size-grouped batching, parallel decode.

Images are never padded or resized to share a batch: a batch holds pairs of one size only.
Batch size is bounded by a pixel budget (pixels through the network per forward, restored and
ground truth counted) as well as by ``--batch-size``. Pairs whose single forward would exceed
the budget are marked for exact tiled inference (see ``engine``).

Decoded images travel as uint8/uint16 tensors (4x smaller than float32 through worker queues);
the engine scales them on the compute device, and L1 is summed exactly on the integers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple
import signal
import threading

import numpy as np

from . import images
from ..errors import HlcliError, InputError
from .pairing import Pair
from PIL import Image

SIZE_POLICIES = ("error", "crop", "resize-restored")


@dataclass(frozen=True)
class Planned:
    """A pair whose headers were read: what will be scored, at which size."""

    index: int  # position in the run's pair list
    pair: Pair
    width: int  # scored size (after the size policy and the crop border)
    height: int
    policy: str | None  # the size policy applied to this pair, if any
    restored_size: tuple[int, int]
    gt_size: tuple[int, int]
    depth: int  # 8 or 16: the bit depth both sides are brought to
    crop_border: int = 0  # pixels shaved from every side after the size policy

    @property
    def policy_size(self) -> tuple[int, int]:
        """(width, height) after the size policy, before the crop border."""
        return self.width + 2 * self.crop_border, self.height + 2 * self.crop_border


@dataclass(frozen=True)
class Failure:
    """A pair that cannot be scored; ``error`` is the typed error with file and fix."""

    index: int
    pair: Pair
    error: HlcliError


def _small_fix(crop: int, min_side_for: str) -> str:
    what = "shallower --layers" if min_side_for == "the deepest requested layer" else f"--metrics without {min_side_for}"
    return f"use a smaller --crop-border, {what} or larger images" if crop else f"use {what} or larger images"


def plan_pair(index: int, pair: Pair, *, size_policy: str, max_pixels: int | None, min_side: int,
              crop_border: int = 0, min_side_for: str = "the deepest requested layer") -> Planned | Failure:
    """Read both headers (no pixel decoding) and decide how the pair will be scored: the size
    policy first, then ``crop_border`` pixels off every side (BasicSR's ``crop_border``); the
    size left must reach ``min_side`` (the layers' and the extra metrics' minimum; ``min_side_for``
    names who needs it in the error)."""
    try:
        r = images.probe(pair.restored, max_pixels=max_pixels)
        g = images.probe(pair.gt, max_pixels=max_pixels)
    except HlcliError as err:
        return Failure(index, pair, err)
    rs, gs = (r.width, r.height), (g.width, g.height)
    policy = None
    w, h = gs
    if rs != gs:
        if size_policy == "crop":
            w, h, policy = min(r.width, g.width), min(r.height, g.height), "crop"
        elif size_policy == "resize-restored":
            policy = "resize-restored"
        else:
            return Failure(index, pair, InputError(
                f"size mismatch: restored is {rs[0]}x{rs[1]}, ground truth {pair.gt} is {gs[0]}x{gs[1]}",
                pair.restored,
                "restore at the ground truth's size, or choose --size-mismatch crop|resize-restored",
            ))
    c = crop_border
    if min(w, h) - 2 * c < min_side:
        left = f"{max(w - 2 * c, 0)}x{max(h - 2 * c, 0)}"
        need = f"needs at least {min_side}x{min_side}" + (
            f" after the crop border: {min_side + 2 * c}x{min_side + 2 * c} here" if c else "")
        return Failure(index, pair, InputError(
            (f"image is {w}x{h}, {left} after --crop-border {c}" if c else f"image is {w}x{h}")
            + f", too small for {min_side_for} ({need})",
            pair.gt, _small_fix(c, min_side_for),
        ))
    depth = 16 if 16 in (r.bit_depth, g.bit_depth) else 8
    return Planned(index, pair, w - 2 * c, h - 2 * c, policy, rs, gs, depth, c)


def batches(plans: list[Planned], *, batch_size: int, pixel_budget: int) -> list[list[Planned]]:
    """Group plans by (height, width, depth) and cut each group into batches of at most
    ``batch_size`` pairs and at most ``pixel_budget`` pixels per forward (2 images per pair).
    A pair over the budget on its own is a batch of one (the engine tiles it). Order is
    deterministic: groups by first appearance, pairs in their original order."""
    groups: dict[tuple[int, int, int], list[Planned]] = {}
    for p in plans:
        groups.setdefault((p.height, p.width, p.depth), []).append(p)
    out = []
    for (h, w, _), members in groups.items():
        per = max(1, min(batch_size, pixel_budget // (2 * h * w)))
        out.extend(members[i : i + per] for i in range(0, len(members), per))
    return out


def _to_depth(arr: np.ndarray, depth: int) -> np.ndarray:
    """Bring a decoded image to ``depth`` bits exactly: uint8 * 257 maps 0..255 onto 0..65535
    with v/255 == v*257/65535, so mixed 8/16-bit pairs keep exact integer L1."""
    if depth == 16 and arr.dtype == np.uint8:
        return arr.astype(np.uint16) * np.uint16(257)
    return arr


def _resize(arr: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bicubic (antialiased) resize of an integer image, rounded back to its own bit depth, as if
    the resized image had been saved to a file."""
    scale = 65535 if arr.dtype == np.uint16 else 255
    chans = []
    for c in range(arr.shape[2]):
        im = Image.fromarray(arr[:, :, c].astype(np.float32), mode="F")
        chans.append(np.asarray(im.resize((width, height), Image.Resampling.BICUBIC)))
    out = np.clip(np.rint(np.stack(chans, axis=2)), 0, scale)
    return np.ascontiguousarray(out.astype(arr.dtype))


def decode_pair(plan: Planned, *, alpha: str, max_pixels: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Decode both images of ``plan`` to HxWx3 integer arrays of the planned size and depth."""
    r = decode_side(plan, "restored", alpha=alpha, max_pixels=max_pixels)
    return r, decode_side(plan, "gt", alpha=alpha, max_pixels=max_pixels)


def decode_side(plan: Planned, side: str, *, alpha: str, max_pixels: int | None) -> np.ndarray:
    """Decode one image of ``plan`` (``side``: "restored" or "gt") to an HxWx3 integer array of
    the planned size and depth: the size policy, the crop border and the depth applied. A sweep
    (:mod:`hlcli.engine.sweep`) decodes a ground truth once for every model whose plan shares it."""
    path, size = (plan.pair.restored, plan.restored_size) if side == "restored" else (plan.pair.gt, plan.gt_size)
    arr = images.decode(path, alpha=alpha, max_pixels=max_pixels)
    if (arr.shape[1], arr.shape[0]) != size:
        raise InputError(
            f"decoded size {arr.shape[1]}x{arr.shape[0]} differs from the header's {size[0]}x{size[1]}",
            path, "the file is damaged; re-save it",
        )
    w, h = plan.policy_size
    if plan.policy == "crop":
        arr = arr[:h, :w]
    elif plan.policy == "resize-restored" and side == "restored":
        arr = _resize(arr, w, h)
    c = plan.crop_border
    if c:
        arr = arr[c : h - c, c : w - c]
    return _to_depth(arr, plan.depth)


def stack_images(arrs: list[np.ndarray]) -> Any:
    """HxWx3 integer arrays of one size -> an (N, 3, H, W) tensor (NCHW view of NHWC memory:
    channels_last, which the engine wants anyway). torch's uint16 tensors support few ops, so
    16-bit data travels as int32 (exact)."""
    import torch  # lazy: keeps torch off the cheap paths (import hlcli, --help, reading runs)

    a = np.stack(arrs)
    if a.dtype == np.uint16:
        a = a.astype(np.int32)
    return torch.from_numpy(a).permute(0, 3, 1, 2)


class DecodedBatch(NamedTuple):
    """Pairs of one size, decoded: ``restored`` and ``gt`` are uint8 (or int32 holding 16-bit)
    tensors (N, 3, H, W), None when every pair of the batch failed; a pair that failed to decode
    is in ``failures`` (with its error) instead of ``plans``."""

    plans: list[Planned]
    restored: Any
    gt: Any
    failures: list[Failure]

    @property
    def scale(self) -> int:
        """The value of white: 65535 for 16-bit batches, else 255."""
        return 65535 if self.plans[0].depth == 16 else 255


class BatchDataset:
    """A map-style dataset whose items are whole batches (lists of plans), so that DataLoader
    workers decode and stack a batch each while the engine computes the previous one. An item
    is a :class:`DecodedBatch`."""

    def __init__(self, groups: list[list[Planned]], *, alpha: str, max_pixels: int | None):
        self.groups = groups
        self.alpha = alpha
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.groups)

    def __getitem__(self, i: int) -> DecodedBatch:
        ok: list[Planned] = []
        rs, gs, failures = [], [], []
        for plan in self.groups[i]:
            try:
                r, g = decode_pair(plan, alpha=self.alpha, max_pixels=self.max_pixels)
            except HlcliError as err:
                failures.append(Failure(plan.index, plan.pair, err))
                continue
            ok.append(plan)
            rs.append(r)
            gs.append(g)
        if not ok:
            return DecodedBatch(ok, None, None, failures)
        return DecodedBatch(ok, stack_images(rs), stack_images(gs), failures)


def decoded_batches(
    groups: list[list[Planned]], *, alpha: str, max_pixels: int | None, workers: int, pin_memory: bool
) -> Iterator[DecodedBatch]:
    """Yield decoded batches in order, decoding up to ``workers`` batches ahead in worker
    processes. With ``workers=0``, or a single batch (there is nothing to overlap its decoding
    with), batches are decoded in this process: no worker start-up, no inter-process copy.
    ``pin_memory`` (CUDA) puts batches in page-locked memory for asynchronous copies."""
    def pin(batch: DecodedBatch) -> DecodedBatch:
        if batch.restored is None:
            return batch
        return batch._replace(restored=batch.restored.pin_memory(), gt=batch.gt.pin_memory())

    yield from iterate_dataset(BatchDataset(groups, alpha=alpha, max_pixels=max_pixels), workers=workers,
                               pin_memory=pin_memory, pin=pin)


def iterate_dataset(dataset: Any, *, workers: int, pin_memory: bool, pin: Any) -> Iterator[Any]:
    """Yield the items of a map-style ``dataset`` of whole batches in order, decoded up to
    ``workers`` items ahead in worker processes (in this process with ``workers=0`` or a single
    item). ``pin(item)`` pins an item decoded in this process (``pin_memory``)."""
    if workers == 0 or len(dataset) <= 1:
        for i in range(len(dataset)):
            item = dataset[i]
            yield pin(item) if pin_memory else item
        return

    from torch.utils.data import DataLoader  # lazy: keeps torch off the cheap paths (import hlcli, --help, reading runs)

    loader = DataLoader(
        dataset,
        batch_size=None,  # items are already batches
        shuffle=False,
        num_workers=workers,
        pin_memory=pin_memory,
        prefetch_factor=2,
        persistent_workers=False,
    )
    with _sigint_deferred():
        batches_in = iter(loader)  # forks the workers
    while True:
        with _sigint_deferred():
            item = next(batches_in, None)
        if item is None:
            return
        yield item


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) back until the end of the block, then raise KeyboardInterrupt there.

    Around starting the DataLoader workers, because a KeyboardInterrupt raised inside
    ``os.fork``'s hooks is swallowed ("Exception ignored in _releaseLock") and the run would go on;
    and around fetching a batch, because an interrupted file-descriptor handshake makes the
    worker print a traceback. Workers forked inside the block inherit this handler, so Ctrl-C
    does nothing to them: the main process shuts them down on its way out. A second Ctrl-C
    interrupts at once (should a worker hang). Only in the main thread, and only while SIGINT has
    Python's default handler (never overriding the caller's).
    """
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return
    received: list[int] = []

    def hold(signum: int, frame: Any) -> None:
        if received:
            raise KeyboardInterrupt
        received.append(signum)

    signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if received:
        raise KeyboardInterrupt
