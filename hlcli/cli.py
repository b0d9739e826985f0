"""The ``hlcli`` command line: parse, validate, call the library, render, map errors to exit
codes. No maths here. torch is imported only inside the commands that need it, so
``hlcli --help`` and ``hlcli --version`` stay instant.

Exit codes: 0 success (gate passed), 1 gate failed, 2 bad usage or input, 3 environment
(weights, device, non-finite result, internal error), 130 interrupted, 141 output pipe closed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import IO, Any

import click

from . import __version__
from .cliutil import (
    EXIT_GATE,
    EXIT_OK,
    EXTENSION_FORMATS,
    FORMATS,
    default_format,
    parse_device,
    parse_floats,
    parse_gates,
    parse_lambda,
    parse_layers,
    parse_limits,
    parse_workers,
    stderr_is_terminal,
    debug_option,
    handle_errors,
    output_stream,
)
from .errors import HlcliError
from .layers import DEFAULT_LAYERS, LAYERS


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "-V", "--version", prog_name="hlcli")
def cli() -> None:
    """Score restored images against their ground truth with the hybrid loss

        hybrid = L1 + λ · Σ_l w_l · perceptual_l

    L1 is the mean absolute error of RGB values in [0, 1]; perceptual_l is the mean squared
    difference of VGG-19 (ImageNet) feature maps at layer l.
    """


# ---------------------------------------------------------------------------------------------
# score


@cli.command()
@click.argument("restored", required=False, type=click.Path(exists=True, path_type=Path))
@click.argument("gt", required=False, type=click.Path(exists=True, path_type=Path))
@click.option("--pairs", "pairs_file", metavar="FILE",
              help="CSV manifest of 'restored,gt' paths, one pair per line ('-' reads stdin), "
                   "instead of RESTORED and GT.")
@click.option("-r", "--recursive", is_flag=True, help="Descend into subdirectories (pairs keyed by relative path).")
@click.option("--lambda", "lam", type=float, default=0.05, show_default=True, callback=parse_lambda,
              help="Weight λ of the perceptual term.")
@click.option("--layers", default=",".join(DEFAULT_LAYERS), show_default=True, callback=parse_layers,
              help="Comma-separated VGG-19 layers (see `hlcli layers`).")
@click.option("--layer-weights", callback=parse_floats, metavar="W1,W2,...",
              help="One weight per layer, same order as --layers (default: all 1).")
@click.option("-f", "--format", "fmt", type=click.Choice(FORMATS),
              help="Output format. Default: from -o's extension, else table on a terminal, csv when piped.")
@click.option("-o", "--output", metavar="FILE", help="Write the report to FILE (atomically) instead of stdout.")
@click.option("--device", default="auto", show_default=True, callback=parse_device,
              help="auto, cpu, cuda, cuda:N or mps. A requested device that is absent is exit 3.")
@click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16"]), default="fp32", show_default=True,
              help="Feature precision (autocast). L1 is always exact.")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True,
              help="Most pairs per forward pass (also bounded by --pixel-budget).")
@click.option("--pixel-budget", type=click.IntRange(min=1 << 12), default=None, metavar="PIXELS",
              help="Most pixels per forward pass, both images counted [default: 2097152 on CPU, "
                   "a quarter of free memory on CUDA]. Larger pairs are tiled exactly.")
@click.option("--workers", default="auto", show_default=True, callback=parse_workers,
              help="Decoding worker processes (0 decodes in the main process).")
@click.option("--weights", "weights_path", type=click.Path(dir_okay=False, path_type=Path),
              help="VGG-19 checkpoint (torchvision format). Else $HLCLI_WEIGHTS, the torch cache, a download.")
@click.option("--offline", is_flag=True, envvar="HLCLI_OFFLINE", help="Never download weights (exit 3 if missing).")
@click.option("--allow-missing", is_flag=True, help="Score the matched pairs even if some files have no partner (they are still listed).")
@click.option("--on-error", type=click.Choice(["fail", "skip"]), default="fail", show_default=True,
              help="On a file that cannot be scored: stop, or skip it (listed in every output).")
@click.option("--allow-skips", is_flag=True, help="With --on-error skip: exit 0 even if files were skipped.")
@click.option("--size-mismatch", type=click.Choice(["error", "crop", "resize-restored"]), default="error",
              show_default=True, help="Pairs of different size: refuse, crop both to the common top-left "
                                      "region, or resize restored to the ground truth's size (bicubic).")
@click.option("--alpha", type=click.Choice(["error", "composite", "ignore"]), default="error", show_default=True,
              help="Images with real transparency: refuse, composite over black, or drop alpha.")
@click.option("--max-pixels", type=click.IntRange(min=0), default=None, metavar="N",
              help="Refuse images over N pixels before decoding (decompression bombs) "
                   "[default: 178956970; 0 = no limit].")
@click.option("--worst", type=click.IntRange(min=0), default=5, show_default=True, help="How many worst pairs the summary lists.")
@click.option("--summary-only", is_flag=True,
              help="Only the summary, one line per metric, no per-pair rows (csv columns: metric, count, "
                   "mean, median, std, min, max, p50, p90, p95, p99; json: the document without 'pairs').")
@click.option("--fail-if", "gates", multiple=True, callback=parse_gates, metavar="'STAT.METRIC OP VALUE'",
              help="Exit 1 if this is true of the run, e.g. 'mean.hybrid>0.08', 'p95.l1>0.03'. STAT: count, "
                   "mean, median, std, min, max, pN (p95, p99.9); METRIC: l1, perceptual, hybrid or a "
                   "scored layer; OP: > >= < <= == !=. Repeatable.")
@click.option("--baseline", type=click.Path(exists=True, dir_okay=False, path_type=Path), metavar="RUN.json",
              help="Compare with a run saved by `hlcli score -f json`, pair by pair and on the mean.")
@click.option("--max-regression", "limits", multiple=True, callback=parse_limits, metavar="[METRIC=]VALUE[%]",
              help="With --baseline: exit 1 if a pair or the mean rises by more than VALUE (absolute) or "
                   "VALUE% (relative). A bare value limits hybrid; 'all=' every metric. Repeatable.")
@click.option("--max-pair-regression", "pair_limits", multiple=True, callback=parse_limits,
              metavar="[METRIC=]VALUE[%]",
              help="Limits for single pairs instead of --max-regression's (which then limit only the mean).")
@click.option("--allow-settings-mismatch", is_flag=True,
              help="Compare with a baseline made with other λ, layers, layer weights, weights or precision.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar, no notes on stderr (errors still shown).")
@debug_option
@handle_errors
def score(restored: Path | None, gt: Path | None, pairs_file: str | None, recursive: bool, lam: float,
          layers: tuple[str, ...], layer_weights: tuple[float, ...] | None, fmt: str | None,
          output: str | None, device: str, precision: str, batch_size: int, pixel_budget: int | None,
          workers: int | None, weights_path: Path | None, offline: bool, allow_missing: bool,
          on_error: str, allow_skips: bool, size_mismatch: str, alpha: str, max_pixels: int | None,
          worst: int, summary_only: bool, gates: list[Any], baseline: Path | None, limits: list[Any],
          pair_limits: list[Any], allow_settings_mismatch: bool, quiet: bool, debug: bool) -> None:
    """Score every restored image against its ground truth.

    RESTORED and GT are two directories (files are paired by relative path without extension:
    restored/a/x.png pairs with gt/a/x.jpg) or two image files.

    \b
    Examples:
      hlcli score samples/restored samples/gt --lambda 0.05
      hlcli score out/ gt/ -r --format json -o scores.json
      hlcli score out/ gt/ --layers relu2_2,conv4_3 --layer-weights 0.5,1 --format csv | sort -t, -k7 -g
      hlcli score out/ gt/ --fail-if 'mean.hybrid>0.08' --fail-if 'p95.l1>0.03' -f markdown
      hlcli score out/ gt/ -f json -o new.json --baseline old.json --max-regression 2%
    """
    import warnings

    from PIL import Image

    from . import images
    from .pairing import find_pairs, read_manifest
    from .runner import ScoreOptions, check_options

    # --max-pixels is checked from the header before decoding; Pillow's own warning about images
    # over its default limit (but under ours) is noise on stderr. Forked decode workers inherit this.
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

    if pairs_file is not None:
        if restored is not None or gt is not None:
            raise click.UsageError("give either RESTORED GT or --pairs FILE, not both")
    elif restored is None or gt is None:
        raise click.UsageError("missing RESTORED and GT (two directories or two files), or --pairs FILE")

    if fmt is None:
        fmt = default_format(output, EXTENSION_FORMATS, "csv")
    opts = ScoreOptions(
        lam=lam, layers=layers, layer_weights=layer_weights, device=device, precision=precision,
        batch_size=batch_size, pixel_budget=pixel_budget, workers=workers,
        weights=str(weights_path) if weights_path else None, offline=offline,
        download_progress=not quiet, allow_missing=allow_missing, size_mismatch=size_mismatch,
        alpha=alpha, max_pixels=(images.DEFAULT_MAX_PIXELS if max_pixels is None else (max_pixels or None)),
        on_error=on_error, worst=worst,
    )
    _, layer_weights = check_options(opts)  # bad options are exit 2 before any file is read
    plan = _gate_plan(gates, baseline, limits, pair_limits, allow_settings_mismatch, opts, layer_weights)

    if pairs_file is not None:
        pairing = read_manifest(sys.stdin if pairs_file == "-" else pairs_file)
        inputs = {"pairs": "<stdin>" if pairs_file == "-" else str(pairs_file)}
    else:
        pairing = find_pairs(restored, gt, recursive=recursive)
        inputs = {"restored": str(restored), "gt": str(gt), "recursive": recursive}

    with output_stream(output) as out:
        code = _score_to(out, fmt, pairing, opts, inputs, quiet=quiet, allow_skips=allow_skips,
                         terminal=out is sys.stdout and sys.stdout.isatty(), plan=plan,
                         summary_only=summary_only)
    sys.exit(code)


def _gate_plan(gates: list[Any], baseline: Path | None, limits: list[Any], pair_limits: list[Any],
               allow_mismatch: bool, opts: Any, layer_weights: tuple[float, ...]) -> Any:
    """Check --fail-if/--baseline/--max-regression against the options, before any file is
    read: an unknown metric, a bad baseline or different settings are exit 2."""
    from .gate import GatePlan, check_metrics, load_document, scoped

    for items, flag in ((gates, "--fail-if"), (limits, "--max-regression"), (pair_limits, "--max-pair-regression")):
        try:
            check_metrics(items, opts.layers)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint=f"'{flag}'") from None
    if (limits or pair_limits) and baseline is None:
        raise click.UsageError("--max-regression and --max-pair-regression need --baseline RUN.json")
    plan = GatePlan(list(gates), scoped(list(limits), list(pair_limits)), allow_settings_mismatch=allow_mismatch)
    if baseline is not None:
        plan.baseline, plan.baseline_path = load_document(baseline), str(baseline)
        plan.check_settings({"lambda": opts.lam, "precision": opts.precision,  # the weights' sha256 once loaded
                             "layers": [{"name": n, "weight": w} for n, w in zip(opts.layers, layer_weights)]})
    return plan


def _score_to(out: IO[str], fmt: str, pairing: Any, opts: Any, inputs: dict[str, Any], *,
              quiet: bool, allow_skips: bool, terminal: bool, plan: Any = None, summary_only: bool = False) -> int:
    from .report import JsonlStream, write_report
    from .runner import MissingFilesError, score as run_score

    show_progress = not quiet and stderr_is_terminal()
    jsonl = JsonlStream(out, summary_only=summary_only) if fmt == "jsonl" else None
    progress = None
    task = None
    started = time.perf_counter()

    def on_start(run: Any, total: int) -> None:
        nonlocal progress, task
        if plan:  # now that the weights are known: refuse a baseline made with others
            plan.check_settings(run.settings)
        if jsonl:
            jsonl.header(run)
            jsonl.missing(run)
        if show_progress:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            progress = Progress(TextColumn("scoring"), BarColumn(), MofNCompleteColumn(),
                                TimeRemainingColumn(), console=Console(stderr=True), transient=True)
            progress.start()
            task = progress.add_task("score", total=total)

    def on_pair(result: Any) -> None:
        if jsonl:
            jsonl.pair(result)
        if progress is not None:
            progress.advance(task)

    def on_skip(skipped: Any) -> None:
        if jsonl:
            jsonl.skipped(skipped)
        if not quiet:
            click.echo(f"Warning: skipped {skipped.key}: {skipped.reason}", err=True)
        if progress is not None:
            progress.advance(task)

    try:
        run = run_score(pairing, opts, inputs=inputs, on_start=on_start, on_pair=on_pair, on_skip=on_skip)
    except MissingFilesError as err:
        for path in err.missing.restored_only:
            click.echo(f"missing: no ground truth for {path}", err=True)
        for path in err.missing.gt_only:
            click.echo(f"missing: no restored file for {path}", err=True)
        raise
    except HlcliError as err:
        if jsonl:
            jsonl.aborted(err.render(), err.exit_code)
        raise
    finally:
        if progress is not None:
            progress.stop()

    if plan:
        run.gate = plan.evaluate([p.as_dict() for p in run.pairs], run.layer_names)
    if jsonl:
        jsonl.summary(run)
    else:
        write_report(run, fmt, out, terminal=terminal, summary_only=summary_only)

    if not quiet:
        for path in run.missing.restored_only:
            click.echo(f"Warning: no ground truth for {path} (not scored)", err=True)
        for path in run.missing.gt_only:
            click.echo(f"Warning: no restored file for {path} (not scored)", err=True)
        if stderr_is_terminal():
            elapsed = time.perf_counter() - started
            click.echo(f"scored {len(run.pairs)} pairs in {elapsed:.1f} s", err=True)
    from .gate import failure_lines, note_lines

    for line in [] if quiet else note_lines(run.gate):
        click.echo(line, err=True)
    for line in failure_lines(run.gate):  # shown even with --quiet, like errors
        click.echo(line, err=True)
    if run.skipped and not allow_skips:  # an incomplete run is exit 2 (or 3) even if a gate failed
        # An error, so shown even with --quiet: a non-zero exit never comes without a reason.
        click.echo(f"Error: {len(run.skipped)} pair(s) skipped: the result is incomplete "
                   "(pass --allow-skips to accept that)", err=True)
        return max(s.exit_code for s in run.skipped)
    return EXIT_GATE if run.gate and not run.gate["passed"] else EXIT_OK


# ---------------------------------------------------------------------------------------------
# compare


@cli.command()
@click.argument("run_a", type=click.Path(exists=True, dir_okay=False, path_type=Path), metavar="A.json")
@click.argument("run_b", type=click.Path(exists=True, dir_okay=False, path_type=Path), metavar="B.json")
@click.option("-f", "--format", "fmt", type=click.Choice(["table", "json", "markdown"]),
              help="Output format. Default: from -o's extension, else table.")
@click.option("-o", "--output", metavar="FILE", help="Write the report to FILE (atomically) instead of stdout.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the bootstrap resampling.")
@click.option("--bootstrap", "resamples", type=click.IntRange(min=0), default=10000, show_default=True,
              help="Bootstrap resamples for the 95% interval of the mean difference (0: no interval).")
@click.option("--top", type=click.IntRange(min=0), default=10, show_default=True,
              help="How many of the pairs that changed most to list.")
@click.option("--by", default="hybrid", show_default=True, help="Metric that ranks the pairs that changed most.")
@click.option("--allow-settings-mismatch", is_flag=True,
              help="Compare runs made with other λ, layers, layer weights, weights or precision.")
@debug_option
@handle_errors
def compare(run_a: Path, run_b: Path, fmt: str | None, output: str | None, seed: int, resamples: int, top: int,
            by: str, allow_settings_mismatch: bool, debug: bool) -> None:
    """Compare two runs over the same ground truth (e.g. two models), pair by pair.

    A.json and B.json are documents written by `hlcli score --format json`. For every metric
    (lower is better) and every pair in both: B wins, loses or ties against A; the mean of
    B − A with a seeded bootstrap 95% interval; and the pairs that changed most.

    \b
    Examples:
      hlcli compare old.json new.json
      hlcli compare old.json new.json -f markdown >> "$GITHUB_STEP_SUMMARY"
      hlcli compare old.json new.json -f json | jq '.metrics.hybrid.mean_diff'
    """
    from .compare import compare_runs, write_compare
    from .gate import load_document

    fmt = fmt or default_format(output, {".json": "json", ".md": "markdown", ".markdown": "markdown"}, "table")
    result = compare_runs(load_document(run_a, "A"), load_document(run_b, "B"), a_name=str(run_a), b_name=str(run_b),
                          seed=seed, resamples=resamples, top=top, by=by,
                          allow_settings_mismatch=allow_settings_mismatch)
    with output_stream(output) as out:
        write_compare(result, fmt, out, terminal=out is sys.stdout and sys.stdout.isatty())


# ---------------------------------------------------------------------------------------------
# layers


@cli.command("layers")
def layers_cmd() -> None:
    """List the 37 VGG-19 layer names with their module index.

    convX_Y is the convolution's output before its ReLU; reluX_Y is after it.
    """
    for spec in LAYERS:
        default = "  (default)" if spec.name in DEFAULT_LAYERS else ""
        click.echo(f"{spec.name:<8} index {spec.index:>2}  {spec.activation:<9} "
                   f"{spec.channels:>3} channels  stride {spec.stride:>2}  receptive field {spec.receptive_field:>3} px{default}")


# ---------------------------------------------------------------------------------------------
# weights


@cli.group()
def weights() -> None:
    """Find, download and import the VGG-19 ImageNet weights.

    Looked for in this order: --weights FILE, $HLCLI_WEIGHTS, the torch hub cache
    ($TORCH_HOME/hub/checkpoints/vgg19-dcbb9e9d.pth), then downloaded (unless --offline).
    """


@weights.command("show")
@click.option("--weights", "weights_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also consider this file first, as `hlcli score --weights` would.")
@debug_option
@handle_errors
def weights_show(weights_path: Path | None, debug: bool) -> None:
    """Show where weights are looked for and which file would be used."""
    from . import weights as w

    chosen = None
    for i, cand in enumerate(w.candidates(weights_path), 1):
        mark = "found" if cand.exists else "absent"
        click.echo(f"{i}. {cand.source:<12} {cand.path}  [{mark}]")
        if cand.exists and chosen is None:
            chosen = cand
    click.echo(f"{len(w.candidates(weights_path)) + 1}. {'download':<12} {w.WEIGHTS_URL}")
    click.echo(f"compact cache: {w.cache_dir()}")
    if chosen is None:
        click.echo(f"would use: a download into {w.hub_checkpoint_path()} (not possible with --offline)")
    else:
        sha = w.file_sha256(chosen.path)
        official = "torchvision IMAGENET1K_V1" if sha.startswith(w.OFFICIAL_SHA256_PREFIX) else "NOT the official checkpoint"
        click.echo(f"would use: {chosen.path} (sha256 {sha}, {official})")


@weights.command("download")
@click.option("--force", is_flag=True, help="Download again even if the file is already cached.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@debug_option
@handle_errors
def weights_download(force: bool, quiet: bool, debug: bool) -> None:
    """Download torchvision's VGG-19 IMAGENET1K_V1 checkpoint into the torch cache (hash-checked)."""
    from . import weights as w

    path = w.download(progress=not quiet and stderr_is_terminal(), force=force)
    click.echo(str(path))


@weights.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace a cached file even if it is identical.")
@debug_option
@handle_errors
def weights_import(file: Path, force: bool, debug: bool) -> None:
    """Verify FILE (keys, shapes, sha256) and copy it into the torch cache.

    Use this on a machine without internet, with the vgg19-dcbb9e9d.pth file copied from
    elsewhere. Only torchvision's official checkpoint can be imported; use another file
    directly with --weights FILE or $HLCLI_WEIGHTS.
    """
    from . import weights as w

    click.echo(str(w.import_file(file, force=force)))


def main() -> None:
    cli(prog_name="hlcli")
