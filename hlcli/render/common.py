"""Formatting shared by every document: strict JSON, numbers, Markdown escaping, the Rich
console. No torch import."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any, TextIO
import textwrap
from ..runs.documents import unofficial_networks


def dumps_strict(obj: Any, **kwargs: Any) -> str:
    """JSON with strict number rules: a NaN or infinity is a ``ValueError``, never written."""
    return json.dumps(obj, allow_nan=False, ensure_ascii=False, **kwargs)


def write_json(obj: Any, out: TextIO) -> None:
    """One indented, strict JSON document and a newline."""
    out.write(dumps_strict(obj, indent=2))
    out.write("\n")


def write_in(fmt: str, writers: dict[str, Callable[[], None]]) -> None:
    """Call the writer of ``fmt`` from ``writers`` (format name -> a function of no argument);
    an unknown format is a ``ValueError`` (the CLI's choices never pass one)."""
    writer = writers.get(fmt)
    if writer is None:
        raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(writers)}")
    writer()


def exact(x: float) -> str:
    """A finite number as its shortest round-trip text (CSV cells); +inf (PSNR of identical
    images) is ``inf``; NaN or -inf is an error."""
    if x == math.inf:
        return "inf"
    if not math.isfinite(x):
        raise ValueError(f"non-finite value {x!r} cannot be written")
    return repr(float(x))


def num(x: float | None, spec: str = ".6g") -> str:
    """A number rounded for people (6 significant digits by default); None is empty."""
    return "" if x is None else format(x, spec)


def signed(x: float | None) -> str:
    return num(x, "+.6g")


def percent(rel: float | None) -> str:
    """A relative change in percent with 3 significant digits, e.g. ``+2.5%``."""
    return "" if rel is None else f"{rel * 100:+.3g}%"


def change(delta: float | None, rel: float | None) -> str:
    """A change as people read it: relative, in percent, when the old value was non-zero
    (``rel`` given), else absolute."""
    if delta is None:
        return ""
    return percent(rel) if rel is not None else f"{delta:+.6g}"


def md_escape(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def md_code(text: str) -> str:
    """Text as inline code inside a Markdown table cell."""
    return "`" + md_escape(text).replace("`", "'") + "`"


def md_row(cells: list[str]) -> str:
    """A Markdown table row of cells already escaped (:func:`md_escape`, :func:`md_code`)."""
    return "| " + " | ".join(cells) + " |"


CONTROL_ESCAPES = str.maketrans({c: f"\\x{c:02x}" for c in [*range(0x09), *range(0x0b, 0x20), *range(0x7f, 0xa0)]})


def table_console(out: TextIO, *, terminal: bool) -> Any:
    """A Rich console on ``out``. A closed pipe raises ``BrokenPipeError`` (the CLI's exit 141)
    instead of Rich's default ``SystemExit(1)``, which would read as "a gate failed"."""
    from rich.console import Console  # lazy: keeps rich off the cheap paths (import hlcli, --help, reading runs)

    from rich.segment import Segment  # lazy: keeps rich off the cheap paths (import hlcli, --help, reading runs)

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            raise BrokenPipeError

        def _render_buffer(self, buffer: Any) -> str:
            # Keys, paths and names come from documents anyone may have written: their control
            # characters (ANSI escapes, NUL, CR) are shown escaped, never sent to the terminal.
            # Rich's own codes (styles, cursor control) are made after this, from styles.
            return super()._render_buffer(
                s if s.control else Segment(s.text.translate(CONTROL_ESCAPES), s.style) for s in buffer)

    return _Console(file=out, force_terminal=terminal, width=None if terminal else 160,
                    highlight=False, soft_wrap=False)


#: Per network file (hlcli.nets.netspecs.NETS, hlcli.nets.datafiles.SPECS): the numbers it changes
#: (tests/test_unofficial.py checks every network has its entry).
AFFECTED = {"vgg19": "perceptual and hybrid numbers", "alexnet": "LPIPS numbers", "vgg16": "LPIPS-VGG and DISTS numbers",
            "dists": "DISTS numbers", "niqe": "NIQE numbers", "inception": "FID and KID numbers"}


def weights_warnings(settings: dict[str, Any] | None) -> list[str]:
    """One warning per network of a run (``settings`` of a score document) that is not
    torchvision's official ImageNet checkpoint (:func:`hlcli.runs.documents.unofficial_networks`):
    its numbers are not comparable with anyone else's. Said by every view of a run."""
    return [network_warning(n) for n in unofficial_networks(settings or {})]


def network_warning(n: dict[str, Any]) -> str:
    """The warning about one entry of :func:`hlcli.runs.documents.unofficial_networks`."""
    return (f"the weights are not the official ImageNet {n['title']} ({n['path']} from {n['source']}, sha256 "
            f"{n['sha256'][:12]}): {AFFECTED.get(n['net'], 'its numbers')} are not comparable "
            "with runs on the official weights")


def unofficial_lines(result: dict[str, Any]) -> list[str]:
    """``Warning:`` lines for an analysis document's ``unofficial_weights`` (one per run and network)."""
    return [f"Warning: {n['run']}: {network_warning(n)}" for n in result.get("unofficial_weights") or []]


def print_sentence(console: Any, text: str, style: str = "") -> None:
    """A sentence for people, wrapped between words only: a word longer than the line (a path)
    stays whole on a line of its own rather than being cut (Rich folds such words)."""
    from rich.text import Text  # lazy: keeps rich off the cheap paths (import hlcli, --help, reading runs)

    for line in textwrap.wrap(text, width=max(20, console.width), break_long_words=False,
                              break_on_hyphens=False) or [""]:
        console.print(Text(line, style=style), soft_wrap=True)


def print_command(console: Any, text: str) -> None:
    """A command a person is meant to copy: one line whatever the width (never wrapped or cut)."""
    from rich.text import Text  # lazy: keeps rich off the cheap paths (import hlcli, --help, reading runs)

    console.print(Text(text), soft_wrap=True)
