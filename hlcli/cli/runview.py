"""What a person or a pipeline sees of one scoring run, for every command that makes or assembles
one (``score``, a sweep, ``merge``, torchrun): :class:`RunView` (the report, progress and notes
on stderr, the exit code), :class:`Integrations` (``--junit``, ``--github``, ``--tensorboard``:
where CI services and dashboards look) and :func:`emit_run` (a run built elsewhere, written as
``score`` writes it). Its own module so that ``score``, ``scaleout`` and ``merge`` import it
rather than each other."""

from __future__ import annotations

import datetime
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import click

from ..errors import HlcliError, MissingFilesError
from ..text import plural
from ..atomic import atomic_path
from .common import (
    OutputPath,
    announce_written,
    echo_err,
    EXIT_ENV,
    EXIT_GATE,
    EXIT_INTERRUPT,
    EXIT_OK,
    is_terminal,
    output_stream,
    stderr_is_terminal,
)
from ..render.score import JsonlStream, write_score
from ..render.gate import failure_lines, note_lines
from ..engine.sysinfo import precision_warning


@dataclass
class RunView:
    """What a person or a pipeline sees of one scoring run: the report in ``fmt`` (JSON Lines
    streamed as pairs are scored), a progress bar and notes on stderr, and the exit code."""

    fmt: str
    quiet: bool = False
    allow_skips: bool = False
    summary_only: bool = False
    gates: Any = None
    table: dict[str, Any] = field(default_factory=dict)  # rows and sort of the table format
    _jsonl: Any = field(default=None, init=False)
    _progress: Any = field(default=None, init=False)
    _task: Any = field(default=None, init=False)
    on_run: Any = None  # called with the finished run (score --report)
    shard: Any = None  # --shard: a hlcli.engine.sharding.ShardSelection
    integrations: Any = None  # --junit, --github, --tensorboard: an Integrations
    part_path: str | None = None  # --shard -o FILE: where the part goes (its set features beside it)

    def score(self, out: IO[str], pairing: Any, opts: Any, inputs: dict[str, Any]) -> int:
        """Score ``pairing``, write the report to ``out`` and return the exit code."""
        from ..engine.scoring import score_pairing  # lazy: keeps PIL/numpy off the cheap paths (import hlcli, --help, reading runs)

        started = time.perf_counter()
        self._jsonl = JsonlStream(out, summary_only=self.summary_only) if self.fmt == "jsonl" else None
        try:
            run = score_pairing(pairing, opts, inputs=inputs, on_start=self.on_start, on_pair=self.on_pair,
                                on_skip=self.on_skip, shard=self.shard)
        except MissingFilesError as err:
            echo_missing(err.missing)
            raise
        except HlcliError as err:
            if self._jsonl:
                self._jsonl.aborted(err.render(), err.exit_code)
            raise
        except KeyboardInterrupt:  # Ctrl-C: the stream still ends on a record that says it was cut
            if self._jsonl:
                self._jsonl.aborted("interrupted", EXIT_INTERRUPT)
            raise
        except Exception as exc:  # a bug (handle_errors says so on stderr, exit 3): the stream says it too
            if self._jsonl:
                self._jsonl.aborted(f"internal error: {type(exc).__name__}: {exc}", EXIT_ENV)
            raise
        finally:
            if self._progress is not None:
                self._progress.stop()
        if self.shard is not None and run.set_features is not None and self.part_path:
            from ..runs.featurefile import write_part_features  # lazy: keeps numpy off the cheap paths (import hlcli, --help)

            write_part_features(self.part_path, run)
        if self.gates:
            run.gate = self.gates.evaluate(run)
        if self._jsonl:
            self._jsonl.summary(run)
        else:
            write_score(run, self.fmt, out, terminal=is_terminal(out), summary_only=self.summary_only, **self.table)
        self.report(run, time.perf_counter() - started)
        if self.on_run is not None:
            self.on_run(run)
        return self.exit_code(run)

    # -- callbacks of score_pairing ---------------------------------------------------------

    def on_start(self, run: Any, total: int) -> None:
        if self.gates:  # now that the weights are known: refuse a baseline made with others
            self.gates.check_settings(run.settings)
        if not self.quiet:  # a precision the device only emulates: say so once, before the wait

            note = precision_warning(run.environment["device"], run.settings["precision"])
            if note:
                echo_err(f"Warning: {note}")
        if self._jsonl:
            self._jsonl.header(run)
            self._jsonl.missing(run)
        if not self.quiet and stderr_is_terminal():
            from rich.console import Console  # lazy: keeps rich off the cheap paths (import hlcli, --help, reading runs)
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn  # lazy: keeps rich off the cheap paths (import hlcli, --help, reading runs)

            # done/total, pairs per second and the time left (rate and estimate once a pair is done)
            self._progress = Progress(TextColumn("scoring"), BarColumn(), MofNCompleteColumn(),
                                      TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), TextColumn("left"),
                                      console=Console(stderr=True), transient=True)
            self._progress.start()
            self._task = self._progress.add_task("score", total=total, rate="")

    def on_pair(self, result: Any) -> None:
        if self._jsonl:
            self._jsonl.pair(result)
        if self._progress is not None:
            self._advance()

    def on_skip(self, skipped: Any) -> None:
        if self._jsonl:
            self._jsonl.skipped(skipped)
        if not self.quiet:
            echo_err(f"Warning: skipped {skipped.key}: {skipped.reason}")
        if self._progress is not None:
            self._advance()

    def _advance(self) -> None:
        self._progress.advance(self._task)
        speed = self._progress.tasks[0].speed
        self._progress.update(self._task, rate="" if not speed else f"{speed:.3g} pairs/s")

    # -- after the run ------------------------------------------------------------------------

    def report(self, run: Any, elapsed: float, done: str | None = None) -> None:
        """Notes and gate results on stderr (gate failures even with --quiet, like errors).
        ``done`` replaces the "scored N pairs in T s" line (e.g. for ``hlcli merge``)."""
        from ..inputs.pairing import near_misses  # lazy: keeps PIL/numpy off the cheap paths (import hlcli, --help, reading runs)

        if not self.quiet:
            for path in run.missing.restored_only:
                echo_err(f"Warning: no ground truth for {path} (not scored)")
            for path in run.missing.gt_only:
                echo_err(f"Warning: no restored file for {path} (not scored)")
            for hint in near_misses(run.missing.restored_only, run.missing.gt_only):
                echo_err(f"Hint: {hint}")
            if stderr_is_terminal():
                click.echo(done or f"scored {plural(len(run.pairs), 'pair')} in {elapsed:.1f} s", err=True)
            for line in note_lines(run.gate):
                echo_err(line)
        for line in failure_lines(run.gate):
            echo_err(line)
        if self.integrations:
            self.integrations.write({None: run}, elapsed)

    def exit_code(self, run: Any) -> int:
        """An incomplete run is exit 2 (or 3) even if a gate failed, and says why even with
        --quiet: a non-zero exit never comes without a reason."""
        if run.skipped and not self.allow_skips:
            click.echo(f"Error: {plural(len(run.skipped), 'pair')} skipped: the result is incomplete "
                       "(pass --allow-skips to accept that)", err=True)
            return max(s.exit_code for s in run.skipped)
        return EXIT_GATE if run.gate and not run.gate["passed"] else EXIT_OK


def integration_options(command: Any) -> Any:
    """``--junit``, ``--github``, ``--tensorboard`` and ``--step``, for ``score`` and ``merge``."""
    for option in reversed((
        click.option("--junit", type=OutputPath(example="junit.xml"), metavar="FILE",
                     help="Also write a JUnit XML report to FILE (atomically, also when a gate fails): a test "
                          "case per gate and per limited pair, for GitLab, Jenkins and GitHub test-report "
                          "actions. A sweep: a test suite per model. See docs/integrations.md."),
        click.option("--github", is_flag=True, envvar="HLCLI_GITHUB",
                     help="GitHub Actions: the failing gates and the worst regressed pairs as ::error "
                          "annotations (at most 10), and a Markdown summary (under 1 MiB) appended to "
                          "$GITHUB_STEP_SUMMARY [env: HLCLI_GITHUB=1]."),
        click.option("--tensorboard", type=OutputPath(folder=True), metavar="DIR",
                     help="Log every metric's mean (and per group) as hlcli/<metric> at --step, and the "
                          "--worst pairs by --sort as images, to the TensorBoard folder DIR (a sweep: "
                          "DIR/<name>/). Needs pip install 'hlcli[tensorboard]'."),
        click.option("--step", type=click.IntRange(min=0), default=None, metavar="N",
                     help="With --tensorboard: the step the values are logged at, e.g. the checkpoint's "
                          "iteration [default: 0]."),
    )):
        command = option(command)
    return command


@dataclass
class Integrations:
    """Where CI services and dashboards look (docs/integrations.md): the JUnit file, GitHub's
    annotations and job summary, TensorBoard. Checked before any work, written once the gates
    are evaluated (also when one failed: that is when it matters)."""

    junit: str | None = None
    github: bool = False
    tensorboard: str | None = None
    step: int = 0
    sort: str = "hybrid"
    where: str | None = None  # where every pair is listed, for the summary's "left out" line
    quiet: bool = False
    allow_skips: bool = False
    sweep: bool = False
    started: str = field(default_factory=lambda: datetime.datetime.now(datetime.timezone.utc)
                         .replace(microsecond=0).isoformat())

    @classmethod
    def from_options(cls, options: dict[str, Any], *, quiet: bool, allow_skips: bool, sweep: bool = False,
                     where: str | None = None) -> Integrations:
        """Pop the four options from ``options`` (their paths are already checked, see
        :class:`OutputPath`); a missing ``tensorboard`` package is exit 3 here, before any work."""
        junit, github = options.pop("junit", None), bool(options.pop("github", False))
        tensorboard, step = options.pop("tensorboard", None), options.pop("step", None)
        if step is not None and tensorboard is None:
            raise click.UsageError("--step is the TensorBoard step: give it with --tensorboard DIR")
        if tensorboard is not None:
            from ..runs.tensorboard import require_tensorboard  # lazy: numpy and Pillow only when logging

            require_tensorboard("--tensorboard")
        return cls(junit, github, tensorboard, step or 0, options.get("sort") or "hybrid", where, quiet,
                   allow_skips, sweep)

    def __bool__(self) -> bool:
        return bool(self.junit or self.github or self.tensorboard)

    def write(self, runs: dict[Any, Any], elapsed: float) -> None:
        """Write ``runs`` (model name -> run; a single run under the key None, named after its
        inputs) to each integration asked for."""
        runs = {run_name(run) if name is None else name: run for name, run in runs.items()}
        docs = {name: run.document() for name, run in runs.items()}
        if self.junit:
            self._junit(docs, runs, elapsed)
        if self.github:
            self._github(docs)
        if self.tensorboard:
            for name, run in runs.items():
                run.to_tensorboard(Path(self.tensorboard, name) if self.sweep else self.tensorboard,
                                   step=self.step, sort=self.sort)

    def _junit(self, docs: dict[str, Any], runs: dict[str, Any], elapsed: float) -> None:
        from ..render.ci import junit_suite, junit_xml

        total = sum(len(r.pairs) for r in runs.values()) or 1
        share = {name: len(r.pairs) / total if len(runs) > 1 else 1.0 for name, r in runs.items()}
        suites = [junit_suite(name, doc, time=elapsed * share[name], timestamp=self.started,
                              allow_skips=self.allow_skips) for name, doc in docs.items()]
        data, notes = junit_xml(suites, time=elapsed)
        with atomic_path(Path(self.junit)) as tmp:
            tmp.write_bytes(data)
        for note in notes:
            echo_err(f"Warning: {note}")
        if not self.quiet:
            announce_written(self.junit)

    def _github(self, docs: dict[str, Any]) -> None:
        from ..render.ci import SUMMARY_LIMIT, SUMMARY_MARGIN, annotations, step_summary

        where = self.where or "the JSON report (add -f json -o run.json, and keep it as an artifact)"
        for line in annotations(docs, allow_skips=self.allow_skips, sweep=self.sweep, where=where):
            click.echo(line, err=True)  # stderr: the runner reads commands there too, stdout stays the report
        path = os.environ.get("GITHUB_STEP_SUMMARY")
        if path:
            try:
                used = os.path.getsize(path)
            except OSError:
                used = 0
            text = step_summary(docs, allow_skips=self.allow_skips, sweep=self.sweep, where=where,
                                budget=max(0, SUMMARY_LIMIT - SUMMARY_MARGIN - used))
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(text)


def run_name(run: Any) -> str:
    """A single run's name in the JUnit file and GitHub's titles: its restored folder's name,
    else its manifest's (``--pairs``), else ``run``."""
    inputs = run.settings.get("inputs") or {}
    if inputs.get("restored"):
        path = Path(inputs["restored"])
        return path.name or path.resolve().name or "run"
    pairs = inputs.get("pairs") or ""
    return (Path(pairs).stem if pairs and not pairs.startswith("<") else "") or "run"


def echo_missing(missing: Any) -> None:
    """The unmatched files of a refused run on stderr, one line each, then a "did you mean" line
    per kind of near miss (names equal but for case, or for a restored suffix)."""
    from ..inputs.pairing import near_misses  # lazy: keeps PIL/numpy off the cheap paths (import hlcli, --help, reading runs)

    for path in missing.restored_only:
        echo_err(f"missing: no ground truth for {path}")
    for path in missing.gt_only:
        echo_err(f"missing: no restored file for {path}")
    for hint in near_misses(missing.restored_only, missing.gt_only):
        echo_err(f"Hint: {hint}")


def emit_run(view: Any, run: Any, output: str | None, started: float, done: str | None = None) -> int:
    """Evaluate the gates of ``view`` (a :class:`RunView`), write ``run`` to
    ``output`` (stdout when None, else atomically) in ``view.fmt``, report on stderr and return
    the exit code: what ``hlcli score`` does after scoring, for a run built elsewhere (merged
    parts, torchrun ranks gathered). ``done`` replaces the "scored N pairs" line."""
    if view.gates:
        view.gates.check_settings(run.settings)
        run.gate = view.gates.evaluate(run)
    if not view.quiet:
        for s in run.skipped:
            echo_err(f"Warning: skipped {s.key}: {s.reason}")
    with output_stream(output, quiet=view.quiet) as out:
        write_run(view, run, out)
    view.report(run, time.perf_counter() - started, done)
    return view.exit_code(run)


def write_run(view: Any, run: Any, out: IO[str]) -> None:
    """``run`` in ``view.fmt`` on ``out`` (JSON Lines too, from a finished run)."""
    if view.fmt != "jsonl":
        write_score(run, view.fmt, out, terminal=is_terminal(out), summary_only=view.summary_only, **view.table)
        return
    stream = JsonlStream(out, summary_only=view.summary_only)
    stream.header(run)
    stream.missing(run)
    for s in run.skipped:
        stream.skipped(s)
    for p in run.pairs:
        stream.pair(p)
    stream.summary(run)
