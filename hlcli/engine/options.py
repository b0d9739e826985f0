"""The options of a scoring run (:class:`ScoreOptions`, the fields of ``hlcli score``'s command
line), their checks, and the settings known from them alone. No torch here."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..inputs import images
from ..metrics import registry as metricdefs
from ..errors import InputError
from ..inputs.groups import GROUP_MODES
from ..nets.layers import DEFAULT_LAYERS, LayerSpec, resolve_layers
from ..inputs.loader import SIZE_POLICIES

__all__ = ["ScoreOptions", "extra_metrics", "option_settings", "validate_options"]


@dataclass
class ScoreOptions:
    """Every setting of a scoring run, with the CLI's defaults (``hlcli score --help`` names
    each one: ``lam`` is ``--lambda``, ``size_mismatch`` is ``--size-mismatch`` and so on).

    >>> ScoreOptions(lam=0.1, layers=("relu2_2", "conv4_3"), layer_weights=(0.5, 1.0)).lam
    0.1
    """

    lam: float = 0.05
    layers: tuple[str, ...] = DEFAULT_LAYERS
    layer_weights: tuple[float, ...] | None = None
    device: str = "auto"
    precision: str = "fp32"
    batch_size: int = 16
    pixel_budget: int | None = None  # None: engine default for the device
    workers: int | None = None  # None: auto
    weights: str | None = None
    offline: bool = False
    download_progress: bool = True
    allow_missing: bool = False
    size_mismatch: str = "error"
    alpha: str = "error"
    max_pixels: int | None = images.DEFAULT_MAX_PIXELS
    on_error: str = "fail"  # or "skip"
    worst: int = 5
    deterministic: bool = True
    save_maps: str | None = None  # a folder: error maps of every pair (hlcli.runs.maps); None: none computed
    maps_format: str = "both"  # png, npy or both
    maps_scale: str = "run"  # colour scale of the PNGs: run-wide or per pair
    crop_border: int = 0  # pixels shaved from every side of both images (BasicSR's crop_border)
    group_by: str = "none"  # summary per group of pairs: "none", "top" or "dir" (hlcli.inputs.groups)
    metrics: tuple[str, ...] = ()  # extra metrics (hlcli.metrics.registry.EXTRA): psnr, ssim_y, lpips...
    lpips_weights: str | None = None  # AlexNet backbone checkpoint for lpips (--lpips-weights)
    lpips_vgg_weights: str | None = None  # the old name of vgg16_weights (--lpips-vgg-weights); still read
    vgg16_weights: str | None = None  # VGG-16 backbone checkpoint for lpips_vgg and dists (--vgg16-weights)
    dists_weights: str | None = None  # DISTS' alpha/beta file (--dists-weights)
    niqe_params: str | None = None  # NIQE's pristine model (--niqe-params)

    @property
    def vgg16_file(self) -> str | None:
        """The VGG-16 checkpoint named by ``vgg16_weights`` or, its old name, ``lpips_vgg_weights``."""
        return self.vgg16_weights or self.lpips_vgg_weights
    fid_dims: int = 2048  # Inception features for fid/kid: 64, 192, 768 or 2048 (--fid-dims)
    fid_resize: str = "clean"  # "clean" (clean-fid, PIL bicubic) or "pytorch-fid" (bilinear) (--fid-resize)
    fid_patches: int | None = None  # FID/KID over S x S patches (NeuralCompression's grids) (--fid-patches)
    inception_weights: str | None = None  # pytorch-fid's Inception checkpoint (--inception-weights)


def validate_options(opts: ScoreOptions) -> tuple[tuple[LayerSpec, ...], tuple[float, ...]]:
    """Check the options that need no file (``InputError`` naming the option otherwise);
    return the layer specs and the layer weights (all 1 when not given)."""
    try:
        specs = resolve_layers(list(opts.layers))
    except ValueError as exc:
        raise InputError(str(exc), None, "pass --layers with names from the list") from exc
    if not (math.isfinite(opts.lam) and opts.lam >= 0):
        raise InputError(f"lambda must be a finite number >= 0, got {opts.lam}", None, "e.g. --lambda 0.05")
    weights = opts.layer_weights if opts.layer_weights is not None else (1.0,) * len(specs)
    if len(weights) != len(specs):
        raise InputError(
            f"{len(weights)} layer weights for {len(specs)} layers", None,
            "give one --layer-weights value per --layers entry, in the same order",
        )
    if not all(math.isfinite(w) and w >= 0 for w in weights):
        raise InputError("layer weights must be finite numbers >= 0", None, "e.g. --layer-weights 1,0.5")
    for what, value, allowed in (("size policy", opts.size_mismatch, SIZE_POLICIES),
                                 ("alpha policy", opts.alpha, images.ALPHA_POLICIES),
                                 ("--on-error", opts.on_error, ("fail", "skip"))):
        if value not in allowed:
            raise InputError(f"unknown {what} {value!r}", None, f"use one of {', '.join(allowed)}")
    if opts.batch_size < 1:
        raise InputError("batch size must be >= 1", None, "e.g. --batch-size 16")
    if opts.group_by not in GROUP_MODES:
        raise InputError(f"unknown --group-by {opts.group_by!r}", None, f"use one of {', '.join(GROUP_MODES)}")
    if isinstance(opts.crop_border, bool) or not isinstance(opts.crop_border, int) or opts.crop_border < 0:
        raise InputError(f"crop border must be a whole number >= 0, got {opts.crop_border!r}", None,
                         "e.g. --crop-border 4 (the scale factor, for x4 super-resolution)")
    extra_metrics(opts)
    if opts.fid_dims not in FID_DIMS:
        raise InputError(f"unknown --fid-dims {opts.fid_dims!r}", None, f"use one of {', '.join(map(str, FID_DIMS))}")
    if opts.fid_resize not in FID_RESIZES:
        raise InputError(f"unknown --fid-resize {opts.fid_resize!r}", None, f"use one of {', '.join(FID_RESIZES)}")
    if opts.fid_patches is not None and (isinstance(opts.fid_patches, bool) or not isinstance(opts.fid_patches, int)
                                         or opts.fid_patches < 16):
        raise InputError(f"--fid-patches must be a whole number >= 16, got {opts.fid_patches!r}", None,
                         "e.g. --fid-patches 256 (HiFiC's FID/256)")
    return specs, tuple(float(w) for w in weights)


FID_DIMS = (64, 192, 768, 2048)
FID_RESIZES = ("clean", "pytorch-fid")
KID_SEED = 2020  # torch-fidelity's default seed, recorded in the document


def set_metric_names(opts: ScoreOptions) -> list[str]:
    """The set metrics asked for (FID, KID): one value per run, group or model."""
    return metricdefs.set_metrics(extra_metrics(opts))


def set_settings(opts: ScoreOptions) -> dict[str, Any]:
    """``{"fid": {...}}``: how the set metrics' samples and features are made (they change the
    numbers), only when a set metric is asked for."""
    if not set_metric_names(opts):
        return {}
    return {"fid": {"dims": opts.fid_dims, "resize": opts.fid_resize, "patches": opts.fid_patches,
                    "kid_seed": KID_SEED, "kid_subsets": 100, "kid_subset_size": 1000,
                    "network": "pytorch-fid 0.3.0 fid_inception_v3"}}


def extra_metrics(opts: ScoreOptions) -> tuple[str, ...]:
    """The extra metrics asked for, checked (``InputError`` naming an unknown one)."""
    try:
        return metricdefs.check_extra(opts.metrics)
    except ValueError as exc:
        raise InputError(str(exc), None, "e.g. --metrics psnr,ssim_y,lpips") from exc


def option_settings(opts: ScoreOptions) -> dict[str, Any]:
    """The settings that change the numbers and are known from the options alone (λ, layers
    with their weights, precision): the part of :func:`run_settings` a baseline can be checked
    against before any file is read. ``crop_border`` only when > 0 (absent means 0)."""
    specs, layer_weights = validate_options(opts)
    return {
        "lambda": opts.lam,
        "layers": [
            {"name": s.name, "index": s.index, "activation": s.activation, "weight": w,
             "stride": s.stride, "receptive_field": s.receptive_field}
            for s, w in zip(specs, layer_weights)
        ],
        "precision": opts.precision,
        **({"crop_border": opts.crop_border} if opts.crop_border else {}),
        **set_settings(opts),
    }
