"""Typed exceptions raised by the hlcli library.

The library never prints and never exits: it raises one of these with a message that names the
file (when there is one) and says how to fix the problem. The CLI maps each type to an exit code:

* :class:`InputError`        -> exit 2 (bad usage or bad input)
* :class:`HlcliEnvironmentError` -> exit 3 (weights, device, non-finite result)
* :class:`Unscorable`       -> a metric has no value for one image: the run makes it an InputError
"""

from __future__ import annotations

from os import PathLike
from typing import Protocol


class _Unpaired(Protocol):
    """What :class:`MissingFilesError` reads of a :class:`hlcli.Missing` (the ground floor names
    no higher module, not even for type checkers)."""
    restored_only: list[str]
    gt_only: list[str]

    def __len__(self) -> int: ...


class HlcliError(Exception):
    """Base class of every error hlcli raises on purpose.

    ``what`` says what went wrong, ``path`` names the file involved (optional) and ``fix`` says
    how to fix it (optional). ``str(err)`` renders the one-line form
    ``<what> (<path>): <fix>`` used by the CLI as ``Error: ...``.

    >>> try:
    ...     hlcli.score_dirs("out", "gt")
    ... except hlcli.HlcliError as err:
    ...     print(err.exit_code, err)      # doctest: +SKIP
    2 restored directory does not exist (out): check the path
    """
    exit_code = 1

    def __init__(self, what: str, path: str | PathLike[str] | None = None, fix: str | None = None):
        self.what = what
        self.path = None if path is None else str(path)
        self.fix = fix
        super().__init__(self.render())

    def render(self) -> str:
        text = self.what
        if self.path is not None:
            text += f" ({self.path})"
        if self.fix:
            text += f": {self.fix}"
        # One line, always: messages from Pillow or torch may carry newlines.
        return " ".join(text.split())


class InputError(HlcliError):
    """The user's input (files, options, images) cannot be scored as given. Exit code 2.

    >>> err = InputError("image is truncated", "out/a.png", "re-export it")
    >>> err.exit_code, str(err)
    (2, 'image is truncated (out/a.png): re-export it')
    """
    exit_code = 2


class HlcliEnvironmentError(HlcliError):
    """The environment is not usable: weights missing or invalid, device absent. Exit code 3.

    >>> hlcli.load_weights("missing.pth")   # doctest: +SKIP
    Traceback (most recent call last):
    hlcli.errors.HlcliEnvironmentError: weights file given by --weights does not exist (missing.pth): ...
    """
    exit_code = 3


class NonFiniteError(HlcliEnvironmentError):
    """A NaN or infinity appeared in a computed score (never written to any output). Exit code 3.

    >>> NonFiniteError("a score is not finite", "out/a.png", "try --precision fp32").exit_code
    3
    """


class Unscorable(ValueError):
    """A metric's reference implementation has no value for one image (NIQE of an image smaller
    than one block, or of flat content): not an error by itself, a per-pair result that the run
    turns into an :class:`InputError` naming the file (exit 2; ``--on-error skip`` skips the pair).
    ``str()`` is the reason in words; ``fix`` what would give a value.

    >>> Unscorable("all its 96x96 blocks are flat", "use --on-error skip").fix
    'use --on-error skip'
    """

    def __init__(self, reason: str, fix: str):
        super().__init__(reason)
        self.fix = fix


class MissingFilesError(InputError):
    """Files on one side only, without ``allow_missing``. Exit code 2. ``missing`` holds the
    lists (restored files without ground truth, ground-truth files without restored file).

    >>> from hlcli.runs.results import Missing
    >>> str(MissingFilesError(Missing(restored_only=["out/x.png"])))[:39]
    'restored file has no ground-truth file '
    """
    def __init__(self, missing: _Unpaired):
        self.missing = missing
        n = len(missing)
        # The error line names a file (the first one); the CLI lists all of them above it.
        first = (missing.restored_only or missing.gt_only or [None])[0]
        if n == 1:
            what = ("restored file has no ground-truth file" if missing.restored_only
                    else "ground-truth file has no restored file")
        else:
            what = (f"{n} files without a partner ({len(missing.restored_only)} restored without "
                    f"ground truth, {len(missing.gt_only)} ground truth without restored), the "
                    "first being")
        super().__init__(
            what,
            first,
            "add the missing files, or pass --allow-missing to score the matched pairs "
            "(the unmatched ones are still listed in every output)",
        )


class InputWarning(UserWarning):
    """A file was read, but something in it deserves a look (corrupt metadata, a skipped tag).

    ``str(warning)`` is ``"<path>: <what>"``; :func:`hlcli.inputs.images.probe` and
    :func:`~hlcli.inputs.images.decode` issue at most one per call, in place of the warnings Pillow (or
    numpy) raised while reading the file, and set ``path`` to the file.
    """
    path: str | None = None
