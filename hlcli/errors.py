"""Typed exceptions raised by the hlcli library.

The library never prints and never exits: it raises one of these with a message that names the
file (when there is one) and says how to fix the problem. The CLI maps each type to an exit code:

* :class:`InputError`        -> exit 2 (bad usage or bad input)
* :class:`HlcliEnvironmentError` -> exit 3 (weights, device, non-finite result)
"""

from __future__ import annotations

from os import PathLike


class HlcliError(Exception):
    """Base class of every error hlcli raises on purpose.

    ``what`` says what went wrong, ``path`` names the file involved (optional) and ``fix`` says
    how to fix it (optional). ``str(err)`` renders the one-line form
    ``<what> (<path>): <fix>`` used by the CLI as ``Error: ...``.
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
    """The user's input (files, options, images) cannot be scored as given. Exit code 2."""

    exit_code = 2


class HlcliEnvironmentError(HlcliError):
    """The environment is not usable: weights missing or invalid, device absent. Exit code 3."""

    exit_code = 3


class NonFiniteError(HlcliEnvironmentError):
    """A NaN or infinity appeared in a computed score. Exit code 3."""
