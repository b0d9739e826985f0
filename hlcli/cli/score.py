"""``hlcli score``: parse the options, call :func:`hlcli.engine.scoring.score_pairing`, render the run,
report on stderr and choose the exit code. No maths here."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any
import warnings

import click

from ..nets.layers import DEFAULT_LAYERS
from ..render.score import FORMATS
from ..render import helptext
from .common import (
    EXTENSION_FORMATS,
    OutputPath,
    debug_option,
    default_format,
    file_warnings_shown,
    handle_errors,
    output_stream,
    parse_device,
    parse_floats,
    parse_gates,
    parse_lambda,
    parse_layers,
    parse_limits,
    parse_metrics,
    parse_workers,
)
from .report import score_report
from .runview import Integrations, RunView, integration_options
from .scaleout import scale_out
from .scoreopts import _check_gate_groups, _gate_spec, _pairing, _score_options, _table_options, parse_rows
from .sweep import run_sweep, sweep_format

__all__ = ["RunView", "_check_gate_groups", "_table_options", "parse_rows", "score_cmd"]


def _is_sweep(params: dict[str, Any]) -> bool:
    """More than one RESTORED folder: ``-o`` names a folder of documents."""
    return len(params.get("paths") or ()) > 2


@click.command("score")
@click.argument("paths", nargs=-1, metavar="RESTORED... GT", type=click.Path(exists=True, path_type=Path))
@click.option("--pairs", "pairs_file", metavar="FILE",
              help="CSV manifest of 'restored,gt' paths, one pair per line ('-' reads stdin), "
                   "instead of RESTORED and GT.")
@click.option("-r", "--recursive", is_flag=True, help="Descend into subdirectories (pairs keyed by relative path).")
@click.option("--restored-suffix", default="", metavar="SUFFIX",
              help="Remove SUFFIX from the end of restored file names before pairing, as BasicSR's "
                   "filename_tmpl '{}_x4' adds it: --restored-suffix _x4 pairs rocket_x4.png with "
                   "rocket.png (key 'rocket').")
@click.option("--group-by", type=click.Choice(["none", "top", "dir"]), default="none", show_default=True,
              help="Also summarise each group of pairs: top = top-level folder (gt/Set5/x.png is in Set5), "
                   "dir = whole parent folder. Adds a per-group summary and a 'group' column.")
@click.option("--lambda", "lam", type=float, default=0.05, show_default=True, callback=parse_lambda,
              help="Weight λ of the perceptual term.")
@click.option("--layers", default=",".join(DEFAULT_LAYERS), show_default=True, callback=parse_layers,
              help="Comma-separated VGG-19 layers (see `hlcli layers`).")
@click.option("--layer-weights", callback=parse_floats, metavar="W1,W2,...",
              help="One weight per layer, same order as --layers (default: all 1).")
@click.option("-f", "--format", "fmt", type=click.Choice(FORMATS),
              help="Output format. Default: from -o's extension, else table on a terminal, csv when piped.")
@click.option("-o", "--output", type=OutputPath(example="scores.json", folder_if=_is_sweep), metavar="FILE", help="Write the report to FILE (atomically) instead of stdout. "
              "A sweep: a folder (created if missing) that receives <name>.<ext> per model (json unless -f).")
@click.option("--name", "names", multiple=True, metavar="NAME",
              help="A sweep: the models' names, repeated in order (default: each folder's base name).")
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
@click.option("--crop-border", type=click.IntRange(min=0), default=0, show_default=True, metavar="N",
              help="Shave N pixels from every side of both images before every metric, after any size "
                   "policy (BasicSR's crop_border, e.g. 4 for x4 super-resolution).")
@click.option("--metrics", "metrics", default="", metavar="LIST", callback=parse_metrics,
              help=f"Extra metrics computed in the same pass, comma-separated: {helptext.extra_metrics_by_need()}. "
                   "See docs/metrics.md.")
@click.option("--lpips-weights", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="AlexNet ImageNet checkpoint (torchvision format) for lpips. Else $HLCLI_LPIPS_WEIGHTS, the "
                   "torch cache, a download.")
@click.option("--vgg16-weights", "--lpips-vgg-weights", "vgg16_weights", type=click.Path(dir_okay=False, path_type=Path),
              metavar="FILE",
              help="VGG-16 ImageNet checkpoint (torchvision format) for lpips_vgg and dists. Else "
                   "$HLCLI_VGG16_WEIGHTS, the torch cache, a download. The old names --lpips-vgg-weights and "
                   "$HLCLI_LPIPS_VGG_WEIGHTS still work.")
@click.option("--dists-weights", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="DISTS' alpha/beta file (dists-pytorch's weights.pt) for dists. Else $HLCLI_DISTS_WEIGHTS, "
                   "hlcli's cache, the installed dists-pytorch (hlcli[dists]).")
@click.option("--niqe-params", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="NIQE's pristine model (BasicSR's niqe_pris_params.npz) for niqe. Else $HLCLI_NIQE_PARAMS, "
                   "hlcli's cache, a hash-checked download.")
@click.option("--fid-dims", type=click.Choice(["64", "192", "768", "2048"]), default="2048", show_default=True,
              help="fid, kid: pytorch-fid's Inception features (64, 192, 768: spatially averaged block outputs).")
@click.option("--fid-resize", type=click.Choice(["clean", "pytorch-fid"]), default="clean", show_default=True,
              help="fid, kid: to 299x299 as clean-fid (PIL bicubic per channel, pyiqa's) or pytorch-fid "
                   "(bilinear, no antialias).")
@click.option("--fid-patches", type=click.IntRange(min=16), default=None, metavar="S",
              help="fid, kid: over SxS patches (NeuralCompression's FID/S: the grid, plus one shifted by S/2).")
@click.option("--inception-weights", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="pytorch-fid's Inception checkpoint for fid, kid. Else $HLCLI_INCEPTION_WEIGHTS, the torch "
                   "cache, a download.")
@click.option("--alpha", type=click.Choice(["error", "composite", "ignore"]), default="error", show_default=True,
              help="Images with real transparency: refuse, composite over black, or drop alpha.")
@click.option("--max-pixels", type=click.IntRange(min=0), default=None, metavar="N",
              help="Refuse images over N pixels before decoding (decompression bombs) "
                   "[default: 178956970; 0 = no limit].")
@click.option("--worst", type=click.IntRange(min=0), default=5, show_default=True, help="How many worst pairs the summary lists.")
@click.option("--rows", default="40", show_default=True, metavar="N|all",
              callback=lambda ctx, param, value: parse_rows(value),
              help="Table: show at most N pairs, the worst by --sort ('all': every pair; -f csv has all).")
@click.option("--sort", default="hybrid", show_default=True, metavar="METRIC",
              help=f"Table: order of the pairs, worst first by the metric's direction: {helptext.metric_names()} "
                   f"({helptext.directions()}); 'key' for by name.")
@click.option("--summary-only", is_flag=True,
              help="Only the summary, one line per metric, no per-pair rows (csv columns: metric, count, "
                   "mean, median, std, min, max, p50, p90, p95, p99; json: the document without 'pairs').")
@click.option("--fail-if", "gates", multiple=True, callback=parse_gates, metavar="'STAT.METRIC OP VALUE'",
              help="Exit 1 if this is true of the run, e.g. 'mean.hybrid>0.08', 'p95.l1>0.03'. STAT: count, "
                   f"mean, median, std, min, max, pN (p95, p99.9); METRIC: {helptext.metric_names()}; "
                   "OP: > >= < <= == !=. The gate fails when the expression is true, whatever the metric's "
                   "direction. 'mean.hybrid[Set5]>0.08' checks one group (with --group-by). Repeatable.")
@click.option("--baseline", type=click.Path(exists=True, dir_okay=False, path_type=Path), metavar="RUN.json",
              help="Compare with a run saved by `hlcli score -f json`, pair by pair and on the mean.")
@click.option("--max-regression", "limits", multiple=True, callback=parse_limits, metavar="[METRIC=]VALUE[%]",
              help="With --baseline: exit 1 if a pair or the mean gets worse by more than VALUE (absolute, in "
                   f"the metric's unit) or VALUE% (relative): {helptext.worse_words()} "
                   f"({helptext.directions()}). A bare value limits hybrid; 'all=' every metric. Repeatable.")
@click.option("--max-pair-regression", "pair_limits", multiple=True, callback=parse_limits,
              metavar="[METRIC=]VALUE[%]",
              help="Limits for single pairs instead of --max-regression's (which then limit only the mean).")
@click.option("--allow-settings-mismatch", is_flag=True,
              help=f"Compare with a baseline made with other {helptext.compared_settings()}.")
@click.option("--save-maps", type=OutputPath(folder=True), metavar="DIR",
              help="Write each pair's error maps to DIR/<key>.<l1|layer>.npy (mean = the score) and colour-mapped "
                   "PNGs (l1, each layer, perceptual), with DIR/maps.json. See docs/report.md. "
                   "A sweep: DIR/<name>/ per model.")
@click.option("--maps-format", type=click.Choice(["png", "npy", "both"]), default="both", show_default=True,
              help="With --save-maps: which files to keep.")
@click.option("--maps-scale", type=click.Choice(["run", "pair"]), default="run", show_default=True,
              help="With --save-maps: PNG colours span [0, 99.5th percentile] of the whole run or of each pair.")
@click.option("--report", type=OutputPath(example="report.html"), metavar="FILE.html",
              help="Also write the HTML report of `hlcli report` (maps in a temporary folder unless --save-maps). "
                   "A sweep: FILE-<name>.html per model.")
@click.option("--shard", metavar="I/N",
              help="Score only shard I (0-based) of N: a contiguous, pixel-balanced range of the pairs in key "
                   "order; -f json parts combine with `hlcli merge`. Under torchrun, ranks shard by themselves. "
                   "See docs/scaling.md.")
@click.option("--resume", is_flag=True,
              help="With --shard and -o FILE (json): do not rescore a shard whose FILE is already complete "
                   "for the same plan. A sweep with -o DIR/: score only the models whose DIR/<name>.json is "
                   "missing or incomplete.")
@integration_options
@click.option("-q", "--quiet", is_flag=True, help="No progress bar, no notes on stderr (errors still shown).")
@debug_option
@handle_errors
@file_warnings_shown
def score_cmd(paths: tuple[Path, ...], pairs_file: str | None, fmt: str | None,
              output: str | None, quiet: bool, allow_skips: bool, summary_only: bool, **options: Any) -> None:
    """Score every restored image against its ground truth.

    RESTORED and GT are two directories (files are paired by relative path without extension:
    restored/a/x.png pairs with gt/a/x.jpg) or two image files. More than one RESTORED folder
    is a sweep: every model against the same GT, each GT image decoded and run through VGG-19
    once (docs/sweeps.md).

    \b
    Examples:
      hlcli score samples/restored samples/gt --lambda 0.05
      hlcli score out/ gt/ -r --format json -o scores.json
      hlcli score out/ gt/ --metrics psnr_y,ssim_y,lpips --crop-border 4
      hlcli score out/ gt/ --layers relu2_2,conv4_3 --layer-weights 0.5,1 -f csv
      hlcli score out/ gt/ --fail-if 'mean.hybrid>0.08' --fail-if 'p95.l1>0.03'
      hlcli score out/ gt/ -o new.json --baseline old.json --max-regression 2%
      hlcli score out/ gt/ --fail-if 'mean.l1>0.03' --junit junit.xml --github
      hlcli score ckpts/*/ gt/ -o sweep/     # a sweep: sweep/<checkpoint>.json
    """
    from PIL import Image  # lazy: keeps PIL off the cheap paths (import hlcli, --help, reading runs)

    # --max-pixels is checked from the header before decoding; Pillow's own warning about images
    # over its default limit (but under ours) is noise on stderr. Forked decode workers inherit this.
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

    if pairs_file is not None:
        if paths:
            raise click.UsageError("give either RESTORED GT or --pairs FILE, not both")
    elif len(paths) < 2:
        raise click.UsageError("missing RESTORED and GT (two directories or two files), or --pairs FILE")
    names = options.pop("names")
    if names and len(paths) <= 2:
        raise click.UsageError("--name names the models of a sweep (more than one RESTORED folder)")
    restored, gt = (paths[0], paths[1]) if len(paths) == 2 else (None, None)

    sweep = len(paths) > 2
    # where every pair is listed, for GitHub's summary: the document, else the HTML report, else the JUnit file
    where = ((f"the documents in {output}" if sweep else output) if output not in (None, "-") else None) \
        or options["report"] or options["junit"]
    integrations = Integrations.from_options(options, quiet=quiet, allow_skips=allow_skips, sweep=sweep, where=where)
    opts = _score_options(options, quiet=quiet)
    gates = _gate_spec(options, opts)  # bad options and baselines are exit 2 before any file is read
    if sweep:
        view = RunView(sweep_format(fmt, output), quiet=quiet, allow_skips=allow_skips, summary_only=summary_only,
                       gates=gates, table=_table_options(options, opts.layers, opts.metrics),
                       integrations=integrations)
        sys.exit(run_sweep(list(paths), view, opts, {**options, "names": names, "pairs_file": pairs_file},
                           output=output))
    pairing, inputs = _pairing(restored, gt, pairs_file, options["recursive"], options["restored_suffix"])
    _check_gate_groups(gates, pairing, opts)  # an unknown group is exit 2 before scoring
    view = RunView(fmt or default_format(output, EXTENSION_FORMATS, "csv"), quiet=quiet,
                   allow_skips=allow_skips, summary_only=summary_only, gates=gates,
                   table=_table_options(options, opts.layers, opts.metrics), integrations=integrations)
    code = scale_out(view, output, pairing, opts, inputs, options)  # --shard, --resume, torchrun
    if code is not None:
        sys.exit(code)
    with score_report(opts, options["report"], quiet=quiet) as view.on_run, output_stream(output, quiet=quiet) as out:
        code = view.score(out, pairing, opts, inputs)
    sys.exit(code)


