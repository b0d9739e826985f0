"""Tables for people at a terminal: numbers that are never cut, tables that change shape to fit.

Every table hlcli prints goes through this module, so the same rules hold everywhere:

* **Numbers are whole.** :func:`number_format` picks one format for a set of numbers (a column,
  or a row of statistics) that shows each with at least 4 significant digits, aligned on the
  decimal point: plain fixed-point when that is narrow (``0.03815``), else in units of a common
  power of ten named in the header (``38.15`` under ``×10⁻³`` means 0.03815), else, for a range
  of more than about four decades, scientific notation (``3.815e-05``). Exact zeros are ``0``.
* **Tables fit.** :func:`fit_table` prints one table when it fits the console; otherwise it moves
  columns (those of a later ``group`` first, e.g. the per-layer ones) to more tables keyed by the
  same first column, or stacks each row as a block of ``field value`` lines; as the last resort
  it shortens keys in the middle (``astr…naut``), never numbers. A one-line note says what moved
  and how to see everything. Cells never wrap and never hold an ellipsis.

Use from a renderer (``console`` from :func:`hlcli.render.common.table_console`)::

    from .table import Column, fit_table, number_column
    fit_table(console, "hlcli score", Column("pair", keys, justify="left"),
              [Column("size", sizes), number_column("l1", l1s),
               number_column("conv3_3", c33, group=1)], moved="per-layer columns")

For statistics laid out one metric per row, give each row its own :func:`number_format` and put
its :attr:`NumberFormat.label` in the row's key cell (see :mod:`hlcli.render.score`). No torch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any
from dataclasses import dataclass
from ..metrics.registry import EXTRA, get

SIG_DIGITS = 4  # at least this many significant digits for every number shown
MAX_FIXED_WIDTH = 8  # wider fixed-point columns switch to scientific notation
MAX_TABLES = 3  # a split into more tables than this stacks the rows instead
MIN_KEY = 8  # keys are never shortened below this many characters
_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


# -- numbers ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class NumberFormat:
    """How one set of numbers is shown: in units of ``10**exponent`` with ``decimals`` digits
    after the point, or in ``scientific`` notation with ``decimals`` digits of mantissa.
    ``signed`` writes a ``+`` on positive numbers (differences)."""

    exponent: int = 0
    decimals: int = 0
    scientific: bool = False
    signed: bool = False

    @property
    def label(self) -> str:
        """The common power of ten, e.g. ``×10⁻³``; empty when numbers are shown as they are."""
        return "" if self.scientific or self.exponent == 0 else "×10" + str(self.exponent).translate(_SUPERSCRIPT)

    def __call__(self, x: float | None) -> str:
        """``x`` as text; None is empty, an exact zero is ``0``, non-finite is an error."""
        if x is None:
            return ""
        if x == math.inf:  # PSNR of identical images (hlcli.metrics.registry: Metric.infinite)
            return "∞"
        if not math.isfinite(x):
            raise ValueError(f"non-finite value {x!r} cannot be shown")
        sign = "+" if self.signed else ""
        if x == 0:
            return "0"
        if self.scientific:
            return format(x, f"{sign}.{self.decimals}e")
        return fixed(x / 10.0 ** self.exponent if self.exponent else x, self.decimals, sign)


def fixed(x: float, decimals: int, sign: str = "") -> str:
    """``x`` with ``decimals`` fixed decimals, never ``-0.0000``: a value that rounds to zero has
    no minus sign (an FID of -3.6e-15, rounding of identical sets, reads ``0.0000``). Python's
    ``z`` format option does this from 3.11 only.

    >>> fixed(-3.6e-15, 4), fixed(-0.00006, 4), fixed(0.0, 2, "+")
    ('0.0000', '-0.0001', '+0.00')
    """
    text = format(x, f"{sign}.{decimals}f")
    return text[1:] if text.startswith("-") and not text.strip("-0.") else text


def _decade(x: float) -> int:
    """floor(log10(|x|)), exact at powers of ten."""
    e = math.floor(math.log10(abs(x)))
    if abs(x) >= 10.0 ** (e + 1):
        return e + 1
    return e - 1 if abs(x) < 10.0 ** e else e


def _fixed(values: list[float], exponent: int, signed: bool) -> tuple[NumberFormat, int]:
    """The fixed-point format in units of 10**exponent that gives the smallest non-zero value
    SIG_DIGITS significant digits, and the widest text it writes."""
    smallest = min(abs(v) for v in values if v != 0)
    fmt = NumberFormat(exponent, max(0, SIG_DIGITS - 1 - (_decade(smallest) - exponent)), signed=signed)
    return fmt, max(len(fmt(v)) for v in values)


def number_format(values: Iterable[float | None], *, signed: bool = False) -> NumberFormat:
    """One format for ``values`` (None ignored) that shows each whole, with at least 4
    significant digits. Of the three candidates, the first that is good enough:

    1. as they are, while at most 7 wide or no wider than 2.;
    2. in units of the power of ten (a multiple of 3) that gives the largest value 1 to 3
       integer digits, named by :attr:`NumberFormat.label`, while at most MAX_FIXED_WIDTH wide;
    3. scientific notation (values spread over more than about four decades).

    >>> f = number_format([0.0381487, 0.0249342, 0.0]); f.label, f(0.0381487), f(0.0)
    ('', '0.03815', '0')
    >>> f = number_format([0.00174742, 0.00021044]); f.label, f(0.00174742), f(0.00021044)
    ('×10⁻³', '1.7474', '0.2104')
    >>> number_format([1e-9, 1e4])(1e-9)
    '1.000e-09'
    """
    vals = [float(v) for v in values if v is not None and v != math.inf]
    if not any(vals):
        return NumberFormat(signed=signed)
    plain, plain_width = _fixed(vals, 0, signed)
    scaled, scaled_width = _fixed(vals, 3 * math.floor(_decade(max(abs(v) for v in vals)) / 3), signed)
    if plain_width <= max(7, scaled_width) and plain_width <= MAX_FIXED_WIDTH:
        return plain
    if scaled_width <= MAX_FIXED_WIDTH:
        return scaled
    return NumberFormat(decimals=SIG_DIGITS - 1, scientific=True, signed=signed)


def sig(x: float) -> str:
    """One number alone, with 4 significant digits kept (``0.02920``, not ``0.0292``)."""
    return "0" if x == 0 else format(x, "#.4g").rstrip(".")


def percent_sig(rel: float | None) -> str:
    """A relative change in percent with 4 significant digits (``+5.000%``); None is empty."""
    if rel is None:
        return ""
    return "0%" if rel == 0 else format(rel * 100, "+#.4g").rstrip(".") + "%"


# -- columns ----------------------------------------------------------------------------------

@dataclass
class Column:
    """One column: its header (lines separated by ``\\n``), its cells as text, how they are
    justified, and its ``group``: when the table is too wide, columns of a higher group move
    first to a table of their own (e.g. per-layer columns, group 1)."""

    header: str
    cells: list[str]
    justify: str = "right"
    group: int = 0

    def width(self) -> int:
        from rich.cells import cell_len  # lazy: keeps rich off the cheap paths (import hlcli, --help, reading runs)

        return max([cell_len(line) for line in self.header.split("\n")] + [cell_len(c) for c in self.cells])

    def field(self) -> str:
        """The header on one line (for stacked rows)."""
        return " ".join(self.header.split("\n"))


def metric_format(metric: str, values: Iterable[float | None], *, signed: bool = False) -> NumberFormat:
    """The format of a metric's numbers: the metric's own fixed decimals where its definition
    has them (PSNR in dB: ``32.451``, never ×10⁻³), else :func:`number_format` of ``values``."""
    decimals = get(metric).decimals
    if decimals is not None:
        return NumberFormat(decimals=decimals, signed=signed)
    return number_format(values, signed=signed)


def metric_header(metric: str) -> str:
    """A metric's column header: its name, or for an extra metric its label, direction and
    unit (``PSNR↑ dB``)."""
    return get(metric).header() if metric in EXTRA else metric


def set_cells(records: Sequence[dict[str, Any]], names: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    """The set metrics (FID, KID) of several sets (their records: the run's, each group's) as a
    table: the headers (``samples``, then each metric's :func:`metric_header` with its power of
    ten, if any) and one row of cells per set (the sample count, ``(small)`` after it when the
    covariance is singular; each value in one format per metric for every set, the metric's own
    decimals where it has them, FID ``0.1705``; ``± std`` where the record has one, KID's
    subsets)."""
    formats = {m: metric_format(m, [r.get(k) for r in records for k in (m, f"{m}_std")]) for m in names}
    headers = ["samples", *(f"{metric_header(m)} {formats[m].label}".strip() for m in names)]
    rows = []
    for r in records:
        cells = [f"{r['samples']:,}" + (" (small)" if r.get("small") else "")]
        for m in names:
            std = r.get(f"{m}_std")
            cells.append(formats[m](r.get(m)) + ("" if std is None or r.get(m) is None else f" ± {formats[m](std)}"))
        rows.append(cells)
    return headers, rows


def shared_formats(pools: dict[str, Iterable[float | None]]) -> dict[str, NumberFormat]:
    """One format per metric for a whole view, chosen from every value of that metric the view
    shows (each pair's and every statistic, over the whole run and each group): in any one view a
    metric has one scale, so columns and rows that are compared (groups, runs, A and B) read
    alike."""
    return {metric: metric_format(metric, list(values)) for metric, values in pools.items()}


def number_column(name: str, values: Sequence[float | None], *, signed: bool = False, group: int = 0,
                  metric: str | None = None, fmt: NumberFormat | None = None) -> Column:
    """A right-justified column of numbers in one format (``fmt``; else ``metric``'s, see
    :func:`metric_format`, or :func:`number_format`), its power of ten (if any) on a second
    header line."""
    if fmt is None:
        fmt = metric_format(metric, values, signed=signed) if metric else number_format(values, signed=signed)
    return Column(name + ("\n" + fmt.label if fmt.label else ""), [fmt(v) for v in values], group=group)


def shorten_middle(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters in the middle: ``astronaut`` -> ``astr…aut``."""
    if len(text) <= width:
        return text
    head = width // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head):]


# -- layouts ----------------------------------------------------------------------------------

def table_width(columns: Sequence[Column]) -> int:
    """Characters a Rich table with the default box and padding needs for ``columns``."""
    return sum(c.width() for c in columns) + 3 * len(columns) + 1


def _chunks(key: Column, columns: list[Column], width: int, max_tables: int = MAX_TABLES) -> list[list[Column]] | None:
    """Columns in tables that each fit ``width`` with the key first, a new table at each change
    of group, the columns of a group spread evenly over its tables (never one statistic alone in
    a table of its own); None when one column alone does not fit or more than ``max_tables`` are
    needed."""
    segments: list[list[Column]] = []
    for col in sorted(columns, key=lambda c: c.group):
        if segments and segments[-1][-1].group == col.group:
            segments[-1].append(col)
        else:
            segments.append([col])
    tables: list[list[Column]] = []
    for segment in segments:
        if any(table_width([key, col]) > width for col in segment):
            return None
        tables += _balanced(key, segment, width)
    return tables if len(tables) <= max_tables else None


def _balanced(key: Column, segment: list[Column], width: int) -> list[list[Column]]:
    """``segment`` in the fewest tables that fit, with as even a number of columns each as fits."""
    for count in range(1, len(segment) + 1):
        size, extra = divmod(len(segment), count)
        parts, start = [], 0
        for i in range(count):
            stop = start + size + (1 if i < extra else 0)
            parts.append(segment[start:stop])
            start = stop
        if all(table_width([key, *part]) <= width for part in parts):
            return parts
    return [[col] for col in segment]


def _stack_width(key: Column, columns: list[Column]) -> int:
    from rich.cells import cell_len  # lazy: keeps rich off the cheap paths (import hlcli, --help, reading runs)

    fields = max((cell_len(c.field()) for c in columns), default=0)
    values = max((cell_len(x) for c in columns for x in c.cells), default=0)
    return max(key.width(), 2 + fields + 2 + values)


@dataclass
class Fitted:
    """What :func:`fit_table` printed: ``layout`` is ``table``, ``split`` or ``stacked``;
    ``tables`` the columns of each table printed; ``notes`` the lines said about it."""

    layout: str
    tables: list[list[Column]]
    notes: list[str]
    shortened: bool = False


def _layout(key: Column, columns: list[Column], width: int) -> tuple[str, list[list[Column]]] | None:
    if table_width([key, *columns]) <= width:
        return "table", [columns]
    split = _chunks(key, columns, width)
    if split is not None:
        return "split", split
    if _stack_width(key, columns) <= width:
        return "stacked", [columns]
    return None


def _shortened(key: Column, columns: list[Column], width: int) -> tuple[Column, str, list[list[Column]]]:
    """Last resort: keys shortened in the middle to the widest budget that lets a layout fit,
    tried in the order one table, split, stacked (where the key has a line of its own)."""
    def short(budget: int) -> Column:
        return Column(key.header, [shorten_middle(k, budget) for k in key.cells], key.justify, key.group)

    narrowest_split = max((table_width([c]) for c in columns), default=0)
    for budget in (width - table_width(columns) - 3, width - narrowest_split - 3, width):
        if budget >= MIN_KEY:
            found = _layout(short(budget), columns, width)
            if found is not None:
                return short(budget), *found
    return short(max(MIN_KEY, width)), "stacked", [columns]


def fit_table(console, title: str, key: Column, columns: list[Column], *, moved: str = "some columns",
              full: str = "-f csv", width: int | None = None, notes: Sequence[str] = (),
              style_note: str = "dim") -> Fitted:
    """Print ``key`` and ``columns`` as a table on ``console`` (``width``: the console's), in the
    first layout that fits: one table; the columns in up to MAX_TABLES tables keyed by ``key``
    (a new one at each change of ``Column.group``); each row stacked as ``field value`` lines;
    and only then with keys shortened in the middle. ``moved`` names what moves in a split
    (``"per-layer columns"``); ``full`` is the option that shows everything (``"-f csv"``).
    ``notes`` (e.g. a row cap) are printed after the table, one line each, with the note on the
    layout. Returns what was printed."""
    width = width or console.width
    said = list(notes)
    found = _layout(key, columns, width)
    shortened = found is None
    if shortened:
        key, *found = _shortened(key, columns, width)  # type: ignore[assignment]
    layout, tables = found  # type: ignore[misc]
    if title:
        _print_line(console, title, "italic")
    if layout == "stacked":
        _print_stacked(console, key, columns)
        said.append(f"rows stacked to fit {width} columns; {full} has a table of all")
    else:
        for cols in tables:
            _print_table(console, key, cols)
        if layout == "split":
            said.append(f"{moved} are in the next table; {full} shows all")
    if shortened:
        said.append(f"{key.header.split(chr(10))[0]} names shortened in the middle to fit; {full} has them")
    for line in said:
        _print_line(console, line, style_note)
    return Fitted(layout, tables, said, shortened)


def _print_line(console, text: str, style: str) -> None:
    from rich.text import Text  # lazy: keeps rich off the cheap paths (import hlcli, --help, reading runs)

    console.print(Text(text, style=style))  # wrapped between words on a narrow terminal


def _print_table(console, key: Column, columns: list[Column]) -> None:
    from rich.table import Table  # lazy: keeps rich off the cheap paths (import hlcli, --help, reading runs)
    from rich.text import Text  # lazy: keeps rich off the cheap paths (import hlcli, --help, reading runs)

    t = Table(show_edge=True, expand=False)
    for col in (key, *columns):
        t.add_column(Text(col.header), justify=col.justify, no_wrap=True, min_width=col.width())
    for i, k in enumerate(key.cells):
        t.add_row(Text(k), *(Text(c.cells[i]) for c in columns))
    console.print(t)


def _print_stacked(console, key: Column, columns: list[Column]) -> None:
    """Each row as its key on a line, then one ``field  value`` line per column."""
    from rich.cells import cell_len  # lazy: keeps rich off the cheap paths (import hlcli, --help, reading runs)
    from rich.text import Text  # lazy: keeps rich off the cheap paths (import hlcli, --help, reading runs)

    fields = max((cell_len(c.field()) for c in columns), default=0)
    values = max((cell_len(x) for c in columns for x in c.cells), default=0)
    for i, k in enumerate(key.cells):
        console.print(Text(k, style="bold"), no_wrap=True, overflow="ignore")
        for c in columns:
            name = c.field()
            cell = c.cells[i]
            line = "  " + name + " " * (fields - cell_len(name)) + "  " + " " * (values - cell_len(cell)) + cell
            console.print(Text(line), no_wrap=True, overflow="ignore")
