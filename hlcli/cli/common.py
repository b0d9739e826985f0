"""Plumbing shared by hlcli's Click commands: exit codes, the error handler that turns library
exceptions into one-line messages, option callbacks, default formats and atomic output files.
No torch import."""

from __future__ import annotations

import contextlib
import functools
import math
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import click

from ..atomic import atomic_path, is_special
from ..errors import HlcliError
from ..text import human_size
from ..nets.layers import resolve_layers
from ..metrics.registry import check_extra
from ..analysis.gate import parse_gate, parse_limit
from ..inputs.diagnostics import warning_lines
from ..render.common import unofficial_lines

EXIT_OK, EXIT_GATE, EXIT_ENV, EXIT_INTERRUPT, EXIT_PIPE = 0, 1, 3, 130, 141
EXTENSION_FORMATS = {".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl",
                     ".md": "markdown", ".markdown": "markdown", ".txt": "table"}


_CONTROL = str.maketrans({c: f"\\x{c:02x}" for c in [*range(0x20), *range(0x7f, 0xa0)]})


def terminal_safe(text: str) -> str:
    """``text`` with control characters (ANSI escapes, NUL, CR, C1) shown as ``\\xNN``, never
    raw: file names and keys come from documents and directories that anyone may have written."""
    return text.translate(_CONTROL)


def echo_err(text: str) -> None:
    """One line on stderr (a warning or note naming files), control characters escaped."""
    click.echo(terminal_safe(text), err=True)


def _err(message: str) -> None:
    """``Error: <message>`` on stderr, one line, control characters (ANSI escapes) shown escaped."""
    click.echo(f"Error: {message}".translate(_CONTROL), err=True)


def warn_unofficial(result: dict[str, Any]) -> None:
    """Say on stderr, one ``Warning:`` line each, which runs of an analysis (``table``,
    ``compare``, ``tradeoff``, ``calibrate``) were scored with non-official network weights."""
    for line in unofficial_lines(result):
        echo_err(line)


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn library errors into one-line messages and exit codes; tracebacks only with
    ``--debug``. Ctrl-C exits 130, a closed output pipe (``| head``) exits quietly. Every
    output path of the command (options of type :class:`OutputPath`) is checked first, before
    any work (:func:`check_outputs`)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = bool(kwargs.get("debug"))
        check_outputs(click.get_current_context(silent=True))
        try:
            return func(*args, **kwargs)
        except HlcliError as err:
            if debug:
                raise
            _err(err.render())
            sys.exit(err.exit_code)
        except KeyboardInterrupt:
            if debug:
                raise
            click.echo("Interrupted.", err=True)
            sys.exit(EXIT_INTERRUPT)
        except BrokenPipeError:
            # The reader went away (e.g. `| head -1`): say nothing, and make sure Python's final
            # flush of stdout does not print a traceback either.
            with contextlib.suppress(OSError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
            sys.exit(EXIT_PIPE)
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except Exception as exc:  # a bug: one line, and how to get the details
            if debug:
                raise
            _err(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for a traceback "
                 "and report it)")
            sys.exit(EXIT_ENV)

    return wrapper


# ---------------------------------------------------------------------------------------------
# Output paths: every file or folder a command will write, checked before any work


class OutputPath(click.ParamType):
    """An output file (``-o``, ``--report``, ``--plot``) or folder (``--save-maps``, a sweep's
    ``-o DIR/``): parsed as a string, checked by :func:`check_outputs` once every parameter is
    known (a sweep's ``-o`` is a folder, a single run's a file: ``folder_if`` tells which).

    A file must not be an existing folder, nor end in a slash; its folder must exist (it is not
    created) and be writable. A folder must not be an existing file; it is created with its
    parents when written, so its nearest existing ancestor must be a writable folder."""

    name = "path"

    def __init__(self, *, folder: bool = False, example: str = "out.json",
                 folder_if: Callable[[dict[str, Any]], bool] | None = None):
        self.folder, self.example, self.folder_if = folder, example, folder_if

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        return value if value is None else str(value)

    def problem(self, value: str, params: dict[str, Any]) -> str | None:
        """Why ``value`` cannot be written, with the fix; None when it can."""
        if value == "-":
            return None if not (self.folder or (self.folder_if and self.folder_if(params))) else \
                "'-' (stdout) is no folder: give a folder for the documents, e.g. out/"
        folder = self.folder or (self.folder_if is not None and self.folder_if(params))
        target = Path(value)
        if folder:
            if target.exists() and not target.is_dir():
                return f"{value} is a file, not a folder: give a folder (it is created if missing)"
            ancestor = target
            while not ancestor.exists() and ancestor != ancestor.parent:
                ancestor = ancestor.parent
            if not ancestor.is_dir():
                return f"{value} cannot be created: {ancestor} is a file, not a folder; give another folder"
            if not os.access(ancestor, os.W_OK | os.X_OK):
                return f"{value} cannot be created: no permission to write in {ancestor}; give another folder"
            return None
        if is_special(target):  # a device or FIFO (-o /dev/null): written in place
            return None if os.access(target, os.W_OK) else f"{value} cannot be written: no permission"
        if target.is_dir() or value.endswith(("/", os.sep)):
            name = f"{value.rstrip('/' + os.sep)}{os.sep}{self.example}"
            return f"{value} is a folder: give a file name, e.g. {name}"
        parent = target.parent if str(target.parent) else Path(".")
        if not parent.exists():
            return f"the folder {parent} of {value} does not exist: create it first (mkdir -p {parent})"
        if not parent.is_dir():
            return f"{value} cannot be written: {parent} is a file, not a folder; give another path"
        if not os.access(parent, os.W_OK | os.X_OK):
            return f"{value} cannot be written: no permission to write in {parent}; give another path"
        return None


def check_outputs(ctx: click.Context | None) -> None:
    """Exit 2 (a usage error naming the option, the path and the fix) if an output path of
    ``ctx``'s command cannot be written: before any image is read or any run scored, so a bad
    ``-o`` costs nothing. The one place every command's output paths are checked."""
    if ctx is None:
        return
    for param in ctx.command.params:
        if isinstance(param.type, OutputPath) and param.name is not None:
            value = ctx.params.get(param.name)
            problem = None if value is None else param.type.problem(str(value), ctx.params)
            if problem is not None:
                raise click.BadParameter(problem, ctx=ctx, param=param)


debug_option = click.option("--debug", is_flag=True, help="Show Python tracebacks on errors.")


def file_warnings_shown(func: Callable[..., Any]) -> Callable[..., Any]:
    """Run a command that reads images inside :func:`hlcli.inputs.diagnostics.warning_lines`: a Python
    warning raised while reading a file becomes one ``Warning: <file>: <what>`` line on stderr
    (none with ``--quiet``), and libtiff's own error lines on fd 2 are silenced (the file's
    ``Error:`` line says what went wrong). Entered in the main thread before any decode worker
    is forked, so the workers inherit it. Goes under ``@handle_errors``."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with warning_lines(lambda line: click.echo(line, err=True), quiet=bool(kwargs.get("quiet"))):
            return func(*args, **kwargs)

    return wrapper


# ---------------------------------------------------------------------------------------------
# Option parsing helpers


def parse_layers(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    try:
        return tuple(s.name for s in resolve_layers([v for v in value.split(",") if v.strip()]))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


def parse_metrics(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    """``--metrics``: known extra metric names (exit 2 with the nearest name otherwise)."""
    try:
        return check_extra(value.split(","))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def parse_floats(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        return tuple(float(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers, e.g. 1,0.5; got {value!r}") from None


def parse_workers(ctx: click.Context, param: click.Parameter, value: str) -> int | None:
    if value == "auto":
        return None
    try:
        n = int(value)
    except ValueError:
        raise click.BadParameter("expected 'auto' or a number >= 0") from None
    if n < 0:
        raise click.BadParameter("expected 'auto' or a number >= 0")
    return n


def parse_device(ctx: click.Context, param: click.Parameter, value: str) -> str:
    v = value.lower()
    if v in ("auto", "cpu", "cuda", "mps") or (v.startswith("cuda:") and v[5:].isdigit()):
        return v
    raise click.BadParameter("expected auto, cpu, cuda, cuda:N or mps")


def parse_lambda(ctx: click.Context, param: click.Parameter, value: float) -> float:
    if not math.isfinite(value) or value < 0:
        raise click.BadParameter("must be a finite number >= 0")
    return value


def parse_gates(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> list[Any]:
    try:
        return [parse_gate(v) for v in value]
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def parse_limits(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> list[Any]:
    try:
        return [parse_limit(v) for v in value]
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def default_format(output: str | None, choices: dict[str, str], piped: str) -> str:
    """From -o's extension, else table on a terminal (or for a file), else ``piped``."""
    ext = Path(output).suffix.lower() if output and output != "-" else ""
    to_terminal = output is None and sys.stdout.isatty()
    return choices.get(ext) or ("table" if to_terminal or output not in (None, "-") else piped)


@contextlib.contextmanager
def output_stream(path: str | None, *, quiet: bool = False, option: str = "-o") -> Iterator[IO[str]]:
    """stdout, or ``path`` written atomically: a temporary file beside it, renamed into place
    only when the report is complete. An error or Ctrl-C leaves no half-written file. A file
    written is announced on stderr (``wrote report.html (1.2 MB)``) unless ``quiet``."""
    if path is None or path == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():  # checked before any work (OutputPath); gone since then
        raise click.BadParameter(f"directory {directory} does not exist", param_hint=f"'{option}'")
    if target.is_dir():
        raise click.BadParameter(f"{path} is a folder: give a file name", param_hint=f"'{option}'")
    with atomic_path(target) as tmp, tmp.open("w", encoding="utf-8", newline="") as fh:
        yield fh
        fh.flush()
        if tmp != target:  # not a device written in place (-o /dev/null): no fsync there
            os.fsync(fh.fileno())
    if not quiet:
        announce_written(path)


def announce_written(path: str | Path) -> None:
    """``wrote FILE (SIZE)`` on stderr: what a command wrote, where a person sees it."""
    with contextlib.suppress(OSError):
        click.echo(f"wrote {path} ({human_size(Path(path).stat().st_size)})", err=True)


def stderr_is_terminal() -> bool:
    return sys.stderr.isatty()


def default_output_format(output: str | None, choices: tuple[str, ...], piped: str = "table") -> str:
    """:func:`default_format` for a command whose formats are ``choices``: -o's extension picks
    one of them when it maps to one."""
    return default_format(output, {k: v for k, v in EXTENSION_FORMATS.items() if v in choices}, piped)


def is_terminal(out: IO[str]) -> bool:
    """Whether ``out`` is stdout on a terminal (tables for people get colour and full width)."""
    return out is sys.stdout and sys.stdout.isatty()
