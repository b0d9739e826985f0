"""Groups of pairs, for per-dataset results: benchmarks are folders of datasets
(``gt/Set5/baby.png``, ``gt/Urban100/img_001.png``), and a pair's key is its relative path
without extension (``Set5/baby``). No torch import.

* ``none``: no groups.
* ``top``: the key's top-level folder (``Set5``); a key with no folder is in the group ``.``.
* ``dir``: the key's whole parent folder (``Urban100/x4``); no folder is ``.``.
"""

from __future__ import annotations

from collections.abc import Iterable

GROUP_MODES = ("none", "top", "dir")
ROOT_GROUP = "."


def group_of(key: str, mode: str) -> str | None:
    """The group of the pair keyed ``key`` under ``mode`` (None for ``none``).

    >>> group_of("Set5/baby", "top"), group_of("Urban100/x4/img_001", "dir"), group_of("baby", "top")
    ('Set5', 'Urban100/x4', '.')
    """
    if mode == "none":
        return None
    if mode not in GROUP_MODES:
        raise ValueError(f"unknown group mode {mode!r}: use one of {', '.join(GROUP_MODES)}")
    folder, sep, _ = key.rpartition("/")
    if not sep:
        return ROOT_GROUP
    return folder.split("/", 1)[0] if mode == "top" else folder


def group_names(keys: Iterable[str], mode: str) -> list[str]:
    """The sorted, distinct groups of ``keys`` under ``mode`` (empty for ``none``).

    >>> group_names(["Set5/baby", "Urban100/img_001", "Set5/bird"], "top")
    ['Set5', 'Urban100']
    """
    if mode == "none":
        return []
    return sorted({group_of(k, mode) for k in keys})  # type: ignore[type-var]
