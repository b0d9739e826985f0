"""``hlcli score``'s command line turned into the library's options, gates and pairs, each
checked before any file is read (exit 2). No maths here."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from ..analysis.gate import check_groups, check_metrics, GateSpec, load_document, scoped
from ..inputs.groups import group_names
from ..runs.results import metric_names


def _score_options(options: dict[str, Any], *, quiet: bool) -> Any:
    """The library's options from the command line's, checked (exit 2 before any file is read)."""
    from ..inputs import images  # lazy: keeps PIL/numpy off the cheap paths (import hlcli, --help, reading runs)
    from ..engine.scoring import ScoreOptions, validate_options  # lazy: keeps PIL/numpy off the cheap paths (import hlcli, --help, reading runs)

    max_pixels = options["max_pixels"]
    opts = ScoreOptions(
        lam=options["lam"], layers=options["layers"], layer_weights=options["layer_weights"],
        device=options["device"], precision=options["precision"], batch_size=options["batch_size"],
        pixel_budget=options["pixel_budget"], workers=options["workers"],
        weights=str(options["weights_path"]) if options["weights_path"] else None, offline=options["offline"],
        download_progress=not quiet, allow_missing=options["allow_missing"],
        size_mismatch=options["size_mismatch"], alpha=options["alpha"],
        max_pixels=images.DEFAULT_MAX_PIXELS if max_pixels is None else (max_pixels or None),
        on_error=options["on_error"], worst=options["worst"],
        save_maps=str(options["save_maps"]) if options["save_maps"] else None,
        maps_format=options["maps_format"], maps_scale=options["maps_scale"],
        crop_border=options["crop_border"], group_by=options["group_by"], metrics=options["metrics"],
        lpips_weights=str(options["lpips_weights"]) if options["lpips_weights"] else None,
        vgg16_weights=str(options["vgg16_weights"]) if options["vgg16_weights"] else None,
        dists_weights=str(options["dists_weights"]) if options["dists_weights"] else None,
        niqe_params=str(options["niqe_params"]) if options["niqe_params"] else None,
        fid_dims=int(options["fid_dims"]), fid_resize=options["fid_resize"], fid_patches=options["fid_patches"],
        inception_weights=str(options["inception_weights"]) if options["inception_weights"] else None,
    )
    validate_options(opts)
    return opts


def _pairing(restored: Path | None, gt: Path | None, pairs_file: str | None, recursive: bool,
             restored_suffix: str = "") -> tuple[Any, dict[str, Any]]:
    """The pairs to score and the ``inputs`` record of the settings."""
    from ..inputs.pairing import find_pairs, read_manifest, dir_inputs  # lazy: keeps PIL/numpy off the cheap paths (import hlcli, --help, reading runs)

    if pairs_file is not None:
        if restored_suffix:
            raise click.UsageError("--restored-suffix pairs folders by name; a --pairs manifest names the pairs itself")
        pairing = read_manifest(sys.stdin if pairs_file == "-" else pairs_file)
        return pairing, {"pairs": "<stdin>" if pairs_file == "-" else str(pairs_file)}
    return (find_pairs(restored, gt, recursive=recursive, restored_suffix=restored_suffix),
            dir_inputs(restored, gt, recursive, restored_suffix))


def _check_gate_groups(spec: Any, pairing: Any, opts: Any) -> None:
    """Gates naming a group need --group-by and a group the pairing has (exit 2 otherwise)."""
    try:
        check_groups(spec.gates, group_names([p.key for p in pairing.pairs], opts.group_by), opts.group_by)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--fail-if'") from None


def _gate_spec(options: dict[str, Any], opts: Any) -> Any:
    """Check --fail-if/--baseline/--max-regression against the options, before any file is
    read: an unknown metric, a bad baseline or different settings are exit 2."""
    from ..engine.scoring import option_settings  # lazy: keeps PIL/numpy off the cheap paths (import hlcli, --help, reading runs)

    gates, limits, pair_limits = options["gates"], options["limits"], options["pair_limits"]
    for items, flag in ((gates, "--fail-if"), (limits, "--max-regression"), (pair_limits, "--max-pair-regression")):
        try:
            check_metrics(items, opts.layers, opts.metrics)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint=f"'{flag}'") from None
    baseline = options["baseline"]
    if (limits or pair_limits) and baseline is None:
        raise click.UsageError("--max-regression and --max-pair-regression need --baseline RUN.json")
    spec = GateSpec(list(gates), scoped(list(limits), list(pair_limits)),
                    allow_settings_mismatch=options["allow_settings_mismatch"])
    if baseline is not None:
        spec.baseline, spec.baseline_path = load_document(baseline), str(baseline)
        spec.check_settings(option_settings(opts))  # the weights' sha256 once they are loaded
    return spec


def parse_rows(value: str) -> int | None:
    """``--rows``: a number >= 1, or ``all`` (None)."""
    if value.strip().lower() == "all":
        return None
    try:
        rows = int(value)
    except ValueError:
        rows = 0
    if rows < 1:
        raise click.BadParameter(f"expected a number >= 1 or 'all', got {value!r}")
    return rows


def _table_options(options: dict[str, Any], layers: tuple[str, ...], extra: tuple[str, ...]) -> dict[str, Any]:
    """``rows`` and ``sort`` for the table, ``--sort`` checked against the run's metrics."""
    allowed = [*metric_names(list(layers), extra), "key"]
    if options["sort"] not in allowed:
        raise click.BadParameter(f"unknown metric {options['sort']!r}; expected one of {', '.join(allowed)}",
                                 param_hint="'--sort'")
    return {"rows": options["rows"], "sort": options["sort"]}
