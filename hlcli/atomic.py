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
    ``mkstemp``'s private 0600: a report written for a CI artifact must stay readable.

    A ``target`` that exists and is neither a regular file nor a folder (``/dev/null``,
    ``/dev/stdout``, a FIFO) is yielded itself and written in place: replacing it would put a
    regular file where the device was (and, as root, succeed)."""
    if is_special(target):
        yield target
        return
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def is_special(path: Path) -> bool:
    """Whether ``path`` exists and is neither a regular file nor a folder (a device, a FIFO)."""
    return path.exists() and not path.is_file() and not path.is_dir()


def _umask() -> int:
    """The process umask (reading it means setting it; restored at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
