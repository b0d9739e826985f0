"""``hlcli score A/ B/ [C/ ...] GT/``: a checkpoint sweep, every model against one ground truth
in one run (:mod:`hlcli.engine.sweep`). Each model's document is the one its single run writes; the exit
code is the worst over the models. See docs/sweeps.md. No maths here."""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
import functools

import click

from ..text import plural

from .common import EXIT_GATE, EXIT_OK, is_terminal, output_stream, stderr_is_terminal
from ..engine.distributed import world_size
from .scoreopts import _check_gate_groups
from ..errors import MissingFilesError
from ..render.sweep import write_sweep_csv, write_sweep_table
from .runview import write_run, echo_missing  # every format, jsonl included, as `hlcli merge` writes a run
from ..render.gate import failure_lines, note_lines
from ..nets import weights
from .report import write_report

#: The file extension of each format in ``-o DIR/`` (DIR/<name>.<ext>).
EXTENSIONS = {"json": "json", "jsonl": "jsonl", "csv": "csv", "markdown": "md", "table": "txt"}


def model_names(paths: list[Path], names: tuple[str, ...]) -> list[str]:
    """Each model's name: its folder's base name, or ``--name`` (repeated, in order). Two
    models with one name, or a name that is no file name, are exit 2."""
    if names and len(names) != len(paths):
        raise click.UsageError(f"{len(names)} --name for {len(paths)} model folders: give one per model, in order")
    out = list(names) or [p.name or p.resolve().name for p in paths]
    for name in out:
        if not name or name in (".", "..") or "/" in name or "\\" in name or name != name.strip():
            raise click.BadParameter(f"{name!r} cannot name a model's file; use letters, digits, - _ .",
                                     param_hint="'--name'")
    dupes = sorted({n for n in out if out.count(n) > 1})
    if dupes:
        raise click.UsageError(f"two models are named {', '.join(dupes)}: give each a --name (repeat it, in order)")
    return out


def sweep_format(fmt: str | None, output: str | None) -> str:
    """The format of each model's document (``-o DIR/``: json unless ``-f``) or of the one
    summary on stdout (table on a terminal, else csv)."""
    if output is not None:
        return fmt or "json"
    chosen = fmt or ("table" if sys.stdout.isatty() else "csv")
    if chosen not in ("table", "csv"):
        raise click.UsageError(f"a sweep writes one {chosen} document per model: add -o DIR/ (a folder)")
    return chosen


def run_sweep(paths: list[Path], view: Any, opts: Any, options: dict[str, Any], *, output: str | None) -> int:
    """Score the models ``paths[:-1]`` against the ground truth ``paths[-1]``, write and report;
    return the exit code (the worst over the models)."""
    from ..engine.sweep import Model, check_models  # lazy: keeps PIL/numpy off the cheap paths (import hlcli, --help, reading runs)

    for flag, given in (("--shard", options.get("shard")), ("--pairs", options.get("pairs_file"))):
        if given:
            raise click.UsageError(f"{flag} cannot be used with a sweep (more than one model folder); "
                                   "score the models one at a time")
    if world_size() > 1:
        raise click.UsageError("a sweep (more than one model folder) cannot run under torchrun; see docs/sweeps.md")
    if options.get("resume") and (output is None or view.fmt != "json"):
        raise click.UsageError("--resume with a sweep needs -o DIR/ and json documents")
    *model_paths, gt = paths
    names = model_names(model_paths, options.get("names") or ())
    check_models(dict(zip(names, model_paths)), gt)
    models = [_model(Model, name, path, gt, options["recursive"], options["restored_suffix"])
              for name, path in zip(names, model_paths)]
    for m in models:
        _check_gate_groups(view.gates, m.pairing, opts)
    out_dir = Path(output) if output is not None else None
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise click.BadParameter(f"{out_dir} is a file; a sweep writes one document per model into a folder",
                                 param_hint="'-o'")
    done = _resumed(models, out_dir, opts, view.quiet) if options.get("resume") else {}
    started = time.perf_counter()
    with _reports(opts, options.get("report")) as write_report:
        runs = _score(view, [m for m in models if m.name not in done], opts)
        runs = {m.name: done.get(m.name) or runs[m.name] for m in models}
        failed = _gates(view, runs)
        _write(view, runs, out_dir, [n for n in runs if n not in done], failed)
        if write_report is not None:
            for name in runs:
                if name not in done:
                    write_report(name, runs[name])
    return _report(view, runs, time.perf_counter() - started)


def _model(cls: Any, name: str, path: Path, gt: Path, recursive: bool, suffix: str) -> Any:
    from ..inputs.pairing import dir_inputs, find_pairs  # lazy: keeps PIL/numpy off the cheap paths (import hlcli, --help, reading runs)

    return cls(name, find_pairs(path, gt, recursive=recursive, restored_suffix=suffix),
               dir_inputs(path, gt, recursive, suffix))


def _score(view: Any, models: list[Any], opts: Any) -> dict[str, Any]:
    """Score ``models`` with ``view``'s progress bar and notes."""
    from ..engine.sweep import score_sweep  # lazy: keeps PIL/numpy off the cheap paths (import hlcli, --help, reading runs)

    if not models:
        return {}

    def on_start(runs: dict[str, Any], total: int) -> None:
        for run in runs.values():
            if view.gates:
                view.gates.check_settings(run.settings)
        view.on_start(next(iter(runs.values())), total)

    def on_skip(name: str, s: Any) -> None:
        if not view.quiet:
            click.echo(f"Warning: {name}: skipped {s.key}: {s.reason}", err=True)
        if view._progress is not None:
            view._advance()

    try:
        return score_sweep(models, opts, on_start=on_start, on_pair=lambda name, r: view.on_pair(r), on_skip=on_skip)
    except MissingFilesError as err:
        echo_missing(err.missing)
        raise
    finally:
        if view._progress is not None:
            view._progress.stop()


def _gates(view: Any, runs: dict[str, Any]) -> dict[str, str]:
    """Evaluate the gates on each model's run; ``{name: what failed}`` for the table's status."""
    failed = {}
    for name, run in runs.items():
        if view.gates:
            view.gates.check_settings(run.settings)
            run.gate = view.gates.evaluate(run)
        problems = []
        if run.gate and not run.gate["passed"]:
            problems.append("gate failed")
        if run.skipped:
            problems.append(f"{len(run.skipped)} skipped")
        if problems:
            failed[name] = ", ".join(problems)
    return failed


def _write(view: Any, runs: dict[str, Any], out_dir: Path | None, fresh: list[str], failed: dict[str, str]) -> None:
    """Each fresh model's document into ``out_dir`` (atomically, once every model is scored),
    or the one summary on stdout."""
    if out_dir is None:
        with output_stream(None) as out:
            if view.fmt == "table":
                write_sweep_table(runs, out, terminal=is_terminal(out), failed=failed)
            else:
                write_sweep_csv(runs, out, summary_only=view.summary_only)
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in fresh:
        with output_stream(str(out_dir / f"{name}.{EXTENSIONS[view.fmt]}")) as out:
            write_run(view, runs[name], out)


def _report(view: Any, runs: dict[str, Any], elapsed: float) -> int:
    """Notes and gate results on stderr, each line naming its model; the worst exit code."""
    codes = []
    for name, run in runs.items():
        if not view.quiet:
            for path in run.missing.restored_only:
                click.echo(f"Warning: {name}: no ground truth for {path} (not scored)", err=True)
            for path in run.missing.gt_only:
                click.echo(f"Warning: {name}: no restored file for {path} (not scored)", err=True)
            for line in note_lines(run.gate):
                click.echo(f"{name}: {line}", err=True)
        for line in failure_lines(run.gate):
            click.echo(f"{name}: {line}", err=True)
        if run.skipped and not view.allow_skips:
            click.echo(f"Error: {name}: {plural(len(run.skipped), 'pair')} skipped: the result is incomplete "
                       "(pass --allow-skips to accept that)", err=True)
            codes.append(max(s.exit_code for s in run.skipped))
        else:
            codes.append(EXIT_GATE if run.gate and not run.gate["passed"] else EXIT_OK)
    if not view.quiet and stderr_is_terminal():
        click.echo(f"scored {len(runs)} models in {elapsed:.1f} s", err=True)
    if view.integrations:  # --junit, --github, --tensorboard: every model at once
        view.integrations.write(runs, elapsed)
    return max(codes)


def _resumed(models: list[Any], out_dir: Path | None, opts: Any, quiet: bool) -> dict[str, Any]:
    """``--resume``: the runs of the models whose document in ``out_dir`` is complete for this
    sweep (same inputs, settings, weights and pairs); the others are scored."""
    from ..engine.sweep import stored_run  # lazy: keeps PIL/numpy off the cheap paths (import hlcli, --help, reading runs)

    @functools.cache
    def sha256() -> str:
        return weights.file_sha256(weights.resolve(opts.weights, offline=opts.offline,
                                                   progress=opts.download_progress).path)

    @functools.cache
    def inception_sha256() -> str:  # with fid/kid: the stored set values need the same Inception
        return weights.file_sha256(weights.resolve(opts.inception_weights, offline=opts.offline,
                                                   progress=opts.download_progress, net="inception").path)

    done = {}
    for m in models:
        path = out_dir / f"{m.name}.json"
        run, why = stored_run(path, m, opts, sha256, inception_sha256)
        if run is not None:
            done[m.name] = run
            if not quiet:
                click.echo(f"note: {m.name}: {path} is complete: not rescored", err=True)
        elif path.exists() and not quiet:
            click.echo(f"note: {m.name}: rescoring: {path} is not complete for this sweep ({why})", err=True)
    return done


@contextlib.contextmanager
def _reports(opts: Any, report: str | None) -> Iterator[Any]:
    """``--report R.html`` in a sweep: one report per model, R-<name>.html, its maps from
    ``--save-maps DIR/<name>`` or a temporary folder."""
    if report is None:
        yield None
        return
    from ..runs.maps import require_matplotlib  # lazy: keeps numpy off the cheap paths (import hlcli, --help, reading runs)

    require_matplotlib("--report")
    target = Path(report)
    if not (target.parent if str(target.parent) else Path(".")).is_dir():
        raise click.BadParameter(f"directory {target.parent} does not exist", param_hint="'--report'")
    temporary = None
    if opts.save_maps is None:
        temporary = tempfile.mkdtemp(prefix="hlcli-maps-")
        opts.save_maps, opts.maps_format = temporary, "png"

    def write(name: str, run: Any) -> None:
        doc = run.document()
        path = str(target.with_name(f"{target.stem}-{name}{target.suffix}"))
        write_report(doc, path, maps_dir=Path(opts.save_maps) / name if doc["pairs"] else None, check_maps=False)

    try:
        yield write
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
