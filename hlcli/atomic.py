"""Atomic file replacement, shared by the report writer (``-o FILE``) and the weights caches."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target`` (same directory, so the rename is atomic). When
    the block ends normally the temporary file replaces ``target``; on any error or Ctrl-C it is
    removed and ``target`` is left as it was. The directory must exist."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
