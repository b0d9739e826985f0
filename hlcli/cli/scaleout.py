"""``hlcli score`` scaled out: ``--shard I/N`` and ``--resume`` (parts for ``hlcli merge``) and
the torchrun path (:mod:`hlcli.engine.distributed`). See docs/scaling.md. No torch import here."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any
from dataclasses import replace

import click

from .common import EXIT_INTERRUPT, echo_err
from .runview import echo_missing, emit_run
from ..engine.distributed import score_distributed, world_size
from ..errors import InputError, MissingFilesError
from ..engine.sharding import (
    parse_shard,
    part_problems,
    plan_settings,
    plan_sha256,
    run_from_document,
    ShardSelection,
)
from ..nets import weights
from ..runs.documents import load_document


def scale_out(view: Any, output: str | None, pairing: Any, opts: Any, inputs: dict[str, Any],
              options: dict[str, Any]) -> int | None:
    """Handle --shard/--resume and torchrun for ``hlcli score``: the exit code when the run was
    handled here (torchrun, or a resumed shard already done), else None with ``view.shard`` set
    for a --shard run (None for a plain run)."""
    shard_text, resume = options.get("shard"), options.get("resume")
    if world_size() > 1:
        for flag, given in (("--shard", shard_text), ("--resume", resume), ("--save-maps", options.get("save_maps")),
                            ("--report", options.get("report"))):
            if given:
                raise click.UsageError(f"{flag} cannot be used under torchrun (WORLD_SIZE > 1); see docs/scaling.md")
        return score_torchrun(view, output, pairing, opts, inputs)
    if resume and not (shard_text and output and output != "-" and view.fmt == "json"):
        raise click.UsageError("--resume needs --shard I/N and -o FILE in json format")
    if not shard_text:
        return None
    from ..metrics.registry import set_metrics

    if set_metrics(options.get("metrics") or ()) and not (output and output != "-" and view.fmt == "json"):
        raise click.UsageError("--shard with fid or kid needs -o FILE in json format: the part's Inception "
                               "features are written beside FILE (FILE.fid.npy) for `hlcli merge`")
    view.part_path = output
    if options.get("save_maps"):
        # Each shard would write its own DIR/maps.json over the others' (one index, one shard's
        # pairs): refused rather than merged, since maps need the network anyway (docs/scaling.md).
        raise click.UsageError("--save-maps cannot be combined with --shard: each shard would overwrite "
                               "DIR/maps.json with an index of its own pairs only; save maps from a run "
                               "without --shard (for a subset of pairs, give it with --pairs FILE)")

    try:
        selection = ShardSelection(parse_shard(shard_text))
    except InputError as exc:
        raise click.BadParameter(exc.render(), param_hint="'--shard'") from None
    if resume:
        code = resume_done(view, output, pairing, opts, selection)
        if code is not None:
            return code
    view.shard = selection
    return None


def resume_done(view: Any, output: str, pairing: Any, opts: Any, selection: Any) -> int | None:
    """The exit code of the shard already in ``output`` (complete, same plan, same weights), or
    None when it must be scored (absent, incomplete, another plan)."""
    path = Path(output)
    if not path.is_file():
        return None
    started = time.perf_counter()
    shard = selection.shard
    expected = plan_sha256([p.key for p in pairing.pairs], plan_settings(opts))
    try:
        doc = load_document(path, role="existing part")
        info = doc.get("shard") or {}
        same = (info.get("index"), info.get("count"), info.get("plan_sha256")) == (shard.index, shard.count, expected)
        why = part_problems(doc) or (None if same else "another shard or plan")
    except InputError as exc:
        why = exc.what
    if why is None:
        resolved = weights.resolve(opts.weights, offline=opts.offline, progress=opts.download_progress)
        if weights.file_sha256(resolved.path) != doc["settings"]["weights"]["sha256"]:
            why = "other weights"
    if why is not None:
        if not view.quiet:
            echo_err(f"note: rescoring shard {shard}: {output} is not this shard's complete part ({why})")
        return None
    if not view.quiet:
        echo_err(f"note: shard {shard} is already complete in {output} (same plan): not rescored")
    run = run_from_document(doc, worst=opts.worst)
    if view.gates:
        view.gates.check_settings(run.settings)
        run.gate = view.gates.evaluate(run)
    view.report(run, time.perf_counter() - started)
    return view.exit_code(run)


def score_torchrun(view: Any, output: str | None, pairing: Any, opts: Any, inputs: dict[str, Any]) -> int:
    """This process is one rank of a torchrun job: score its shard; rank 0 writes the one
    output and has the one exit code that matters, other ranks write nothing and exit 0 (or
    130 on Ctrl-C, silently: rank 0 says it)."""
    rank = int(os.environ.get("RANK", "0"))
    started = time.perf_counter()
    if rank != 0:
        try:
            score_distributed(pairing, replace(opts, download_progress=False), inputs=inputs)
        except KeyboardInterrupt:
            sys.exit(EXIT_INTERRUPT)
        return 0

    try:
        run = score_distributed(pairing, opts, inputs=inputs, on_start=view.on_start,
                                on_progress=lambda done: _progress(view, done))
    except MissingFilesError as err:  # listed as a single process lists them
        echo_missing(err.missing)
        raise
    finally:
        if view._progress is not None:
            view._progress.stop()
    return emit_run(view, run, output, started)  # rank 0 always gets the run, or an exception


def _progress(view: Any, done: int) -> None:
    """Rank 0's progress bar (when shown) at ``done`` pairs of all ranks."""
    if view._progress is not None:
        view._progress.update(view._task, completed=done)
        speed = view._progress.tasks[0].speed
        view._progress.update(view._task, rate="" if not speed else f"{speed:.3g} pairs/s")
