"""Stored runs: read and check a document written by ``hlcli score --format json``, and tell
whether two runs were made with the same settings (no torch import).

The settings that change the numbers, and so must match before two runs are compared
(``--baseline``, ``hlcli compare``), are λ, the layers (names, order and weights), the weights
file's sha256, the precision and the crop border (``crop_border``; absent, as in documents of
runs without ``--crop-border``, means 0). A difference is refused unless the user passes
:data:`OVERRIDE_FLAG`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import InputError
from ..metrics.registry import EXTRA
from .results import BASE_METRICS
from ..text import plural
from .jsondoc import json_path, schema_problem
from .readers import check_maps_index, check_score, read_part, read_score
from ..nets.datafiles import SPECS
from ..nets.netspecs import NETS

OVERRIDE_FLAG = "--allow-settings-mismatch"


def unofficial_networks(settings: dict[str, Any]) -> list[dict[str, Any]]:
    """The networks of a run (``settings`` of a score document) whose checkpoint is not
    torchvision's official ImageNet one: VGG-19 of the hybrid, the LPIPS and DISTS backbones, and
    DISTS' alpha/beta, NIQE's model and FID/KID's Inception when they are not the official files;
    one rule for all. Each: ``title`` (``VGG-19``), ``used_for``, ``path``, ``source`` (as a person
    would name it: ``--weights``, ``$HLCLI_LPIPS_WEIGHTS``...) and ``sha256``. Every view that
    shows a run asks this (score table, Markdown, report, table, compare, tradeoff, calibrate,
    the sweep table)."""
    records = [("vgg19", settings.get("weights") or {})]
    for name, rec in sorted((settings.get("lpips_networks") or {}).items()):
        backbone = rec.get("backbone") or {} if isinstance(rec, dict) else {}
        net = {"alex": "alexnet", "vgg": "vgg16"}.get(rec.get("net") if isinstance(rec, dict) else None, "")
        records.append((net or str(backbone.get("name", name)), backbone))
    models = settings.get("metric_models") or {}
    if isinstance(models, dict):  # DISTS' backbone and alpha/beta, NIQE's pristine model
        for name, rec in sorted(models.items()):
            if not isinstance(rec, dict):
                continue
            if isinstance(rec.get("backbone"), dict):
                records.append((str(rec["backbone"].get("name", "vgg16")), rec["backbone"]))
            for part in ("weights", "params"):
                if isinstance(rec.get(part), dict):
                    records.append((name, {**rec[part], "official_imagenet1k_v1": rec[part].get("official", True)}))
    fid = settings.get("fid") or {}
    if isinstance(fid, dict) and isinstance(fid.get("weights"), dict):  # FID/KID's Inception
        records.append(("inception", {**fid["weights"], "official_imagenet1k_v1": fid["weights"].get("official", True)}))
    out = []
    for net, rec in records:
        if not isinstance(rec, dict) or rec.get("official_imagenet1k_v1", True) is not False:
            continue
        spec = NETS.get(net) or SPECS.get(net)
        source = str(rec.get("source", "?"))
        how = {"option": spec.option, "env": f"${spec.env}"}.get(source, source) if spec else source
        out.append({"net": net, "title": spec.title if spec else net, "used_for": spec.used_by if spec else "",
                    "path": str(rec.get("path", "?")), "source": how, "sha256": str(rec.get("sha256", "?"))})
    return out


def unofficial_by_run(runs: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """``{"unofficial_weights": [{"run": name, **network}, ...]}`` for the analyses' documents
    (``table``, ``compare``, ``tradeoff``, ``calibrate``) over ``(name, settings)`` pairs; empty
    when every network of every run is official (their documents are then unchanged)."""
    found = [{"run": name, **net} for name, settings in runs for net in unofficial_networks(settings)]
    return {"unofficial_weights": found} if found else {}


def pair_value(pair: dict[str, Any], metric: str) -> float:
    """A metric of a pair as written in a JSON document (``PairResult.as_dict()``): a base or
    extra metric at the top level (null, written for PSNR's +inf, reads as +inf), a layer
    under ``layers``."""
    if metric in BASE_METRICS:
        return pair[metric]
    if metric in EXTRA:
        return math.inf if pair.get(metric) is None else pair[metric]
    return pair["layers"][metric]


def validate_document(doc: Any, kind: str = "score") -> str | None:
    """The first way ``doc`` breaks hlcli's ``<kind>.schema.json`` or the reader's cross-field
    checks (:mod:`hlcli.runs.readers`), as ``<JSON path>: <what>``, or None if it is usable."""
    if kind not in ("score", "maps"):  # an output hlcli does not read back: its schema only
        problem = schema_problem(doc, kind)
        return None if problem is None else f"{json_path(problem[0])}: {problem[1]}"
    try:
        check_maps_index(doc, None) if kind == "maps" else check_score(doc, None, pairs_needed=False)
    except InputError as err:
        return err.render()
    return None


def load_document(path: str | Path, role: str = "baseline") -> dict[str, Any]:
    """Read and check a document written by ``hlcli score -f json`` (``InputError`` if unusable;
    ``role`` "part" or "existing part" reads a shard part). See :mod:`hlcli.runs.readers`."""
    return read_part(path) if role in ("part", "existing part") else read_score(path)


def comparable_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings that change the numbers. Keys absent from ``settings`` are left out, except
    ``crop_border``: absent means 0 (hlcli records it only when it is used)."""
    out: dict[str, Any] = {}
    if "lambda" in settings:
        out["lambda"] = settings["lambda"]
    if "layers" in settings:
        out["layers"] = [(layer["name"], float(layer["weight"])) for layer in settings["layers"]]
    if isinstance(settings.get("weights"), dict):
        out["weights sha256"] = settings["weights"].get("sha256")
    if "precision" in settings:
        out["precision"] = settings["precision"]
    out["crop_border"] = int(settings.get("crop_border", 0))
    return out


# What each key of comparable_settings() is called in help texts and docs.
SETTING_WORDS = {"lambda": "λ", "layers": "layers, layer weights", "weights sha256": "weights",
                 "precision": "precision", "crop_border": "crop border"}


def compared_settings(ignore: tuple[str, ...] = ()) -> str:
    """The settings runs must share, in words: ``λ, layers, layer weights, weights, precision or
    crop border`` (less those in ``ignore``), for help texts."""
    words = [w for k, w in SETTING_WORDS.items() if k not in ignore]
    return ", ".join(words[:-1]) + " or " + words[-1]


def _show(key: str, value: Any) -> str:
    if key == "layers":
        return ", ".join(f"{name}×{weight:g}" for name, weight in value) or "none"
    if key == "weights sha256" and isinstance(value, str):
        return value[:12] + "…"
    return str(value)


#: The keys of ``settings.fid`` that change the set values (FID, KID): --fid-dims, --fid-resize, --fid-patches.
FID_KEYS = ("dims", "resize", "patches")


def fid_differences(a: dict[str, Any], b: dict[str, Any], labels: tuple[str, str]) -> list[str]:
    """One line per way two runs' FID/KID samples and features differ (``settings.fid``:
    :data:`FID_KEYS`, and the Inception weights' sha256 where both settings record one): set
    values made otherwise do not compare. Empty when either run has no set metric."""
    fa, fb = a.get("fid"), b.get("fid")
    if not (isinstance(fa, dict) and isinstance(fb, dict)):
        return []
    ka, kb = ({k: f.get(k) for k in FID_KEYS} for f in (fa, fb))
    sha = [(f.get("weights") or {}).get("sha256") for f in (fa, fb)]
    if None not in sha:
        ka["Inception sha256"], kb["Inception sha256"] = sha
    return [f"FID/KID {k} {ka[k]} ({labels[0]}) vs {kb[k]} ({labels[1]})" for k in ka if ka[k] != kb[k]]


def settings_differences(a: dict[str, Any], b: dict[str, Any], labels: tuple[str, str]) -> list[str]:
    """One line per setting that differs between two runs' ``settings`` (keys in both only)."""
    ca, cb = comparable_settings(a), comparable_settings(b)
    return [f"{key} {_show(key, ca[key])} ({labels[0]}) vs {_show(key, cb[key])} ({labels[1]})"
            for key in ca if key in cb and ca[key] != cb[key]]


def mismatch_error(differences: list[str], path: str | Path | None) -> InputError:
    return InputError("the runs were made with different settings, so their scores are not comparable: "
                      + "; ".join(differences), path,
                      f"score both with the same settings, or pass {OVERRIDE_FLAG} to compare anyway")


# -- several stored runs at once (tradeoff, calibrate, table) ----------------------------------

class StoredRun(NamedTuple):
    """A run read for an analysis: its display ``name``, the ``path`` it came from (None for an
    in-memory run) and its score document ``doc``."""

    name: str
    path: str | None
    doc: dict[str, Any]


def as_document(run: Any, role: str = "input") -> tuple[dict[str, Any], str | None]:
    """A run given as a :class:`~hlcli.Run`, a parsed score document or a path to one, as
    ``(document, path or None)``; a document is checked like a file (``InputError`` if unusable)."""
    if isinstance(run, (str, Path)):
        return load_document(run, role), str(run)
    if hasattr(run, "document") and callable(run.document):
        return run.document(), None

    if not isinstance(run, dict):
        raise InputError(f"the {role} run is a {type(run).__name__}", None,
                         "pass a Run, a document of `hlcli score --format json` (with its pairs) or its path")
    return check_score(run, None), None  # its numbers made floats, in place


def load_runs(runs: Any, names: Any = None, *, ignore: tuple[str, ...] = (),
              allow_settings_mismatch: bool = False) -> tuple[list[StoredRun], list[str]]:
    """Read several runs (each as :func:`as_document` takes it) and check that they were made
    with the same settings, except the raw settings keys in ``ignore`` (``("lambda",)`` where λ
    is the variable). Names default to the file stems (``run1``, ``run2``... in memory) and must
    be unique. Returns the runs and the differences accepted with ``allow_settings_mismatch``."""
    runs = list(runs)
    names = list(names or [])
    if not runs:
        raise InputError("no runs given", None, "give the JSON documents of `hlcli score --format json`")
    if len(names) > len(runs):
        raise InputError(f"{plural(len(names), 'name')} for {plural(len(runs), 'run')}", None, "give at most one --name per run")
    stored = []
    for i, run in enumerate(runs):
        name = names[i] if i < len(names) else (Path(run).stem if isinstance(run, (str, Path)) else f"run{i + 1}")
        doc, path = as_document(run, name)
        stored.append(StoredRun(name, path, doc))
    seen: dict[str, StoredRun] = {}
    for s in stored:
        if s.name in seen:
            raise InputError(f"two runs are named {s.name!r}", s.path or seen[s.name].path,
                             "give each run a distinct name (--name, once per run, in order)")
        seen[s.name] = s

    def strip(settings: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in settings.items() if k not in ignore}

    per_run = [(s, settings_differences(strip(stored[0].doc["settings"]), strip(s.doc["settings"]),
                                        (stored[0].name, s.name))) for s in stored[1:]]
    differences = [d for _, found in per_run for d in found]
    if differences and not allow_settings_mismatch:
        raise mismatch_error(differences, next(s.path for s, found in per_run if found))
    return stored, differences


def common_pairs(stored: list[StoredRun]) -> tuple[list[str], dict[str, list[str]]]:
    """The pair keys present in every run (sorted), and for each run the keys it alone (or with
    some others, but not all) has."""
    keys = [{p["key"] for p in s.doc["pairs"]} for s in stored]
    common = set.intersection(*keys) if keys else set()
    return sorted(common), {s.name: sorted(k - common) for s, k in zip(stored, keys)}
