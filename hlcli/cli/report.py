"""``hlcli report``: a self-contained HTML report of a stored run, and the ``score --report``
shortcut (maps to a temporary folder unless ``--save-maps`` is given)."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from .common import debug_option, file_warnings_shown, handle_errors, output_stream, OutputPath, echo_err
from ..runs.documents import load_document
from ..text import plural


@click.command("report", short_help="A self-contained HTML report of a run, with its error maps.")
@click.argument("run", type=click.Path(exists=True, dir_okay=False, path_type=Path), metavar="RUN.json")
@click.option("-o", "--output", required=True, type=OutputPath(example="report.html"), metavar="FILE.html", help="Write the report to FILE (atomically).")
@click.option("--maps", "maps_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), metavar="DIR",
              help="The folder of `hlcli score --save-maps DIR` for this run (its maps.json must match it).")
@click.option("--top", type=click.IntRange(min=0), default=12, show_default=True,
              help="How many of the worst pairs (by hybrid) to show side by side.")
@click.option("--thumb-size", type=click.IntRange(min=16), default=512, show_default=True, metavar="PX",
              help="Longest side of the embedded pictures.")
@click.option("--images", type=click.Choice(["embed", "link"]), default="embed", show_default=True,
              help="Embed the pictures as thumbnails (one self-contained file) or link the files by relative path.")
@click.option("--images-root", type=click.Path(exists=True, file_okay=False, path_type=Path), metavar="DIR",
              help="The folder the run's relative image paths start from [default: the folder the run was "
                   "scored in (recorded in RUN.json), else RUN.json's folder, then the current one].")
@debug_option
@handle_errors
@file_warnings_shown
def report_cmd(run: Path, output: str, maps_dir: Path | None, top: int, thumb_size: int, images: str,
               images_root: Path | None, debug: bool) -> None:
    """Write one self-contained HTML file about a stored run: verdict and settings, summary,
    gates, plots (hybrid histogram, L1 against perceptual), a sortable and filterable table of
    every pair, and the worst pairs with their error maps under synchronised zoom.

    RUN.json is a document written by `hlcli score --format json`. The file makes no request
    (a Content-Security-Policy forbids it) and opens from file:// offline. Needs matplotlib:
    pip install 'hlcli[report]'.

    \b
    Examples:
      hlcli score out/ gt/ -f json -o run.json --save-maps maps/
      hlcli report run.json --maps maps/ -o report.html
      hlcli score out/ gt/ --report report.html      # the same in one step
    """
    from ..runs.maps import require_matplotlib  # lazy: keeps numpy off the cheap paths (import hlcli, --help, reading runs)

    require_matplotlib("hlcli report")
    doc = load_document(run, "scored")
    write_report(doc, output, maps_dir=maps_dir, top=top, thumb_size=thumb_size, images=images, doc_path=run,
                 images_root=images_root)


def write_report(doc: dict[str, Any], output: str, *, maps_dir: Path | None, top: int = 12,
                 thumb_size: int = 512, images: str = "embed", check_maps: bool = True,
                 quiet: bool = False, doc_path: Path | None = None, images_root: Path | None = None) -> None:
    """Render ``doc`` (a checked score document) to ``output``, atomically. Relative image paths
    start from ``images_root``, else the folder recorded in ``doc``, ``doc_path``'s, the current
    one; pictures found in none are one warning line on stderr (not with ``quiet``)."""
    from ..runs.maps import check_matches, load_maps_index  # lazy: keeps numpy off the cheap paths (import hlcli, --help, reading runs)
    from ..render.html import ReportOptions, render_report  # lazy: keeps numpy off the cheap paths (import hlcli, --help, reading runs)
    from ..render.html_media import image_bases  # lazy: keeps numpy off the cheap paths (import hlcli, --help, reading runs)

    index = None
    if maps_dir is not None:
        index = load_maps_index(maps_dir)
        if check_maps:
            check_matches(index, doc, maps_dir)
    opts = ReportOptions(output=Path(output), maps_dir=maps_dir, maps_index=index, top=top,
                         thumb_size=thumb_size, images=images,
                         image_bases=image_bases(doc, doc_path, images_root))
    page = render_report(doc, opts)
    if opts.not_found and not quiet:
        echo_err(not_found_warning(opts.not_found, opts.image_bases or [], images_root is not None))
    with output_stream(output, quiet=quiet, option="--report" if check_maps is False else "-o") as out:
        out.write(page)


def not_found_warning(paths: list[str], bases: list[Path], rooted: bool) -> str:
    """One ``Warning:`` line for pictures of the report that were not found: how many, one
    example, where they were looked for and how to point at them."""
    example = paths[0]
    where = "" if Path(example).is_absolute() else f" (looked for under {', '.join(map(str, bases))})"
    fix = ("check --images-root" if rooted else
           "pass --images-root DIR, the folder the run's relative paths start from, or run hlcli report from it")
    return (f"Warning: {plural(len(paths), 'picture')} of the report not found, shown as 'not available': "
            f"e.g. {example}{where}; {fix}")


@contextlib.contextmanager
def score_report(opts: Any, report: str | None, *, quiet: bool = False) -> Iterator[Callable[[Any], None] | None]:
    """For ``score --report FILE``: check matplotlib before any file is read, put the maps in a
    temporary folder unless ``--save-maps`` chose one, and yield the callback that writes the
    report once the run is done (None without ``--report``)."""
    if report is None:
        yield None
        return
    from ..runs.maps import require_matplotlib  # lazy: keeps numpy off the cheap paths (import hlcli, --help, reading runs)

    require_matplotlib("--report")
    directory = Path(report).parent if str(Path(report).parent) else Path(".")
    if not directory.is_dir():
        raise click.BadParameter(f"directory {directory} does not exist", param_hint="'--report'")
    temporary = None
    if opts.save_maps is None:
        temporary = tempfile.mkdtemp(prefix="hlcli-maps-")
        opts.save_maps, opts.maps_format = temporary, "png"

    def write(run: Any) -> None:
        doc = run.document()
        if doc["pairs"]:
            write_report(doc, report, maps_dir=Path(opts.save_maps), check_maps=False, quiet=quiet)
        else:
            write_report(doc, report, maps_dir=None, quiet=quiet)

    try:
        yield write
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
