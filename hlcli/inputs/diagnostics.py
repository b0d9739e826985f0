"""Warnings raised while reading a file: caught per file and thread, shown as one line each.

Reading one image can make Pillow (or numpy) issue several Python warnings ("Corrupt EXIF data",
"Tag data larger than file. Skipping tag 270", ...) that do not say which file they are about,
and that Python prints as two raw lines each; Pillow also logs some problems ("More samples per
pixel than can be decoded: 11", which logging prints on stderr when the program has not set
logging up). :func:`capture` collects the warnings (and Pillow's log records of level WARNING
or above) raised by the current thread while it reads one file; :mod:`hlcli.inputs.images` then issues at most one
:class:`~hlcli.errors.InputWarning` ``"<path>: <what>"`` per call in their place (or none if the
file is refused: the error names it).

Why not ``warnings.catch_warnings(record=True)``: it swaps the process-wide ``warnings.filters``
and ``warnings.showwarning`` and restores them on exit, so two threads reading files at once
would capture each other's warnings (or those of any other thread) and could leave the process
with the wrong hook. :func:`capture` instead keeps a per-thread stack of collectors and a single
``warnings.showwarning`` hook that appends a warning to the current thread's collector, or
passes it on unchanged when that thread is not reading a file. The hook is installed while at
least one thread is reading (reference-counted, under a lock) and removed afterwards; filters are
never touched, so ``ignore`` filters still apply and ``error`` filters turn a warning into an
exception (which :mod:`hlcli.inputs.images` reports as that file's error). Worker processes have their
own copy of all this.

:func:`warning_lines` is for a command-line program: around a whole command, in the main thread,
it shows every warning as a single ``Warning: ...`` line (or none with ``quiet``) and silences
libtiff's own error messages on file descriptor 2 (see :func:`libtiff_errors_silenced`).
"""

from __future__ import annotations

import ctypes
import logging
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import InputWarning

_local = threading.local()
_lock = threading.Lock()
_active = 0  # threads inside capture()
_previous: Callable[..., Any] | None = None  # the showwarning our hook replaced


def _hook(message: Warning | str, category: type[Warning], filename: str, lineno: int,
          file: Any = None, line: str | None = None) -> None:
    stack = getattr(_local, "stack", None)
    if stack:
        stack[-1].append((message, category))
        _forget(message, category, filename, lineno)
        return
    previous = _previous
    if previous is None or previous is _hook or getattr(_local, "passing_on", False):
        # Not ours, and no hook to pass it to (or a hook that passed it back to us): print it
        # as Python would.
        stream = sys.stderr if file is None else file
        if stream is not None:
            stream.write(warnings.formatwarning(message, category, filename, lineno, line))
        return
    _local.passing_on = True
    try:
        previous(message, category, filename, lineno, file, line)
    finally:
        _local.passing_on = False


def _forget(message: Warning | str, category: type[Warning], filename: str, lineno: int) -> None:
    """Drop the ``__warningregistry__`` entry that makes Python show a warning only once per
    location: the same text in the next file must be caught (and reported) again."""
    frame = sys._getframe(2)
    for _ in range(12):
        if frame is None:
            return
        if frame.f_code.co_filename == filename and frame.f_lineno == lineno:
            registry = frame.f_globals.get("__warningregistry__")
            if isinstance(registry, dict):
                text = str(message)
                registry.pop((text, category, lineno), None)
                registry.pop((text, category, 0), None)
            return
        frame = frame.f_back


class _LogCapture(logging.Filter):
    """On Pillow's loggers: a WARNING-or-worse record logged by a thread inside :func:`capture`
    is caught like a warning (and not passed to logging's handlers, nor to its last-resort
    printing on stderr: "More samples per pixel than can be decoded: 11")."""

    def filter(self, record: logging.LogRecord) -> bool:
        stack = getattr(_local, "stack", None)
        if not stack or record.levelno < logging.WARNING:
            return True
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record: keep its format string
            text = str(record.msg)
        stack[-1].append((text, UserWarning))
        return False


_log_capture = _LogCapture()
_loggers_seen = -1  # size of logging's logger table when Pillow's loggers were last looked for


def _watch_pillow_loggers() -> None:
    """Put the filter on every ``PIL`` logger (plugins create theirs when first imported: all
    are imported the first time, and the table is looked at again whenever it has grown). Filters apply to the logger they are on
    only, not to its children, hence one per logger. Called under ``_lock``."""
    global _loggers_seen
    if _loggers_seen < 0:  # first time: have Pillow import its plugins now, creating their loggers
        from PIL import Image  # lazy: keeps PIL off the cheap paths (import hlcli, --help, reading runs)

        Image.init()
    table = logging.Logger.manager.loggerDict
    if len(table) == _loggers_seen:
        return
    _loggers_seen = len(table)
    for name in list(table):
        if name == "PIL" or name.startswith("PIL."):
            logger = logging.getLogger(name)
            if _log_capture not in logger.filters:
                logger.addFilter(_log_capture)


@contextmanager
def capture() -> Iterator[list[tuple[Warning | str, type[Warning]]]]:
    """Collect the Python warnings, and the warnings and errors Pillow logs, that the current
    thread raises inside the block (and only those), as ``(message, category)`` pairs, instead
    of showing them. Safe in any number of threads."""
    global _active, _previous
    caught: list[tuple[Warning | str, type[Warning]]] = []
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    with _lock:
        if warnings.showwarning is not _hook:  # first reader, or someone replaced our hook
            _previous = warnings.showwarning
            warnings.showwarning = _hook
        _active += 1
        _watch_pillow_loggers()
    stack.append(caught)
    try:
        yield caught
    finally:
        stack.pop()
        with _lock:
            _active -= 1
            if _active == 0 and warnings.showwarning is _hook:
                warnings.showwarning = _previous
                _previous = None


def summary(caught: list[tuple[Warning | str, type[Warning]]]) -> str:
    """One line for what :func:`capture` caught: the first warning, and how many others."""
    texts: list[str] = []
    for message, category in caught:
        text = " ".join(str(message).split()) or category.__name__
        if not issubclass(category, InputWarning) and category is not UserWarning:
            text = f"{category.__name__}: {text}"
        if text not in texts:
            texts.append(text)
    more = len(texts) - 1
    return texts[0] + (f" (and {more} more warning{'s' * (more > 1)})" if more > 0 else "")


def input_warning(path: Any, caught: list[tuple[Warning | str, type[Warning]]]) -> InputWarning:
    """The single :class:`InputWarning` that stands for everything caught reading ``path``."""
    warning = InputWarning(f"{path}: {summary(caught)}")
    warning.path = str(path)
    return warning


# --- for the command line ---------------------------------------------------------------------

@contextmanager
def warning_lines(echo: Callable[[str], Any], quiet: bool = False) -> Iterator[None]:
    """Show each Python warning raised inside the block as one line ``Warning: <text>`` through
    ``echo`` (nothing with ``quiet``): an :class:`InputWarning` as ``Warning: <file>: <what>``,
    once per file, anything else as ``Warning: <message> (<category>)``, once per text. Also
    silences libtiff's error messages on file descriptor 2 (:func:`libtiff_errors_silenced`).

    For a program's main thread, around a whole command (it sets the process's warning hook:
    enter it once, before any thread or worker process starts). Worker processes forked inside
    the block inherit it; ``echo`` should write to stderr, whole lines at a time.
    """
    shown: set[str] = set()

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: Any = None, line: str | None = None) -> None:
        if quiet:
            return
        text = " ".join(str(message).split())
        if issubclass(category, InputWarning):
            key = getattr(message, "path", None) or text
        else:
            text = key = f"{text} ({category.__name__})"
        if key not in shown:
            shown.add(key)
            echo(f"Warning: {text}")

    with warnings.catch_warnings(), libtiff_errors_silenced():
        if not sys.warnoptions:  # -W options from the user win; else every file gets its line
            warnings.simplefilter("always", InputWarning)
        warnings.showwarning = show
        yield


def _libtiff() -> Any:
    """The ``TIFFSetErrorHandler`` of the libtiff Pillow is linked with, or None (Pillow
    without libtiff, or libtiff linked statically and not exported, as on Windows)."""
    try:
        from PIL import _imaging, features

        if not features.check_codec("libtiff"):
            return None
        # dlsym on the module's own handle also searches the libraries it was linked with.
        setter = ctypes.CDLL(_imaging.__file__).TIFFSetErrorHandler
    except (ImportError, OSError, AttributeError, ValueError):
        return None
    setter.restype = ctypes.c_void_p
    setter.argtypes = [ctypes.c_void_p]
    return setter


@contextmanager
def libtiff_errors_silenced() -> Iterator[bool]:
    """Turn off libtiff's default error handler (which prints ``ZIPDecode: Decoding error ...``
    or ``TIFFFillStrip: Read error on strip 0 ...`` on file descriptor 2, without naming the
    file) inside the block, and restore it after. Yields whether that was possible.

    Pillow already turns libtiff's warning handler off, and still raises an ``OSError`` for the
    failing file, which hlcli reports as that file's error; only the anonymous duplicate on fd 2
    goes. This swaps one function pointer in libtiff; unlike redirecting fd 2, it cannot hide
    another thread's output. Process-wide, so for a program's main thread, like
    :func:`warning_lines`.
    """
    setter = _libtiff()
    if setter is None:
        yield False
        return
    previous = setter(None)
    try:
        yield True
    finally:
        setter(previous)
