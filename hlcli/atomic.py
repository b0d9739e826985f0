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
    removed and ``target`` is left as it was. The directory must exist. The file gets the
    permissions a plain ``open(target, "w")`` would give it (0666 less the umask), not
    ``mkstemp``'s private 0600: a report written for a CI artifact must stay readable."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _umask() -> int:
    """The process umask (reading it means setting it; restored at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
