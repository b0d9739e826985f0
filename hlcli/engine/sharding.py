"""The sharding plan shared by ``hlcli score --shard I/N``, ``hlcli merge`` and the torchrun
runner (:mod:`hlcli.engine.distributed`). No torch import.

Every job (or rank) computes the same plan from the same pairing: the pairs in canonical key
order (the pairing's order), cut into ``N`` contiguous ranges balanced by pixel count (the
scored size read from the headers), with no padding and no pair twice. Pair ``i`` goes to shard
``floor(N * midpoint_i / total)`` where ``midpoint_i`` is the pixel count of the pairs before it
plus half its own: monotone, so ranges are contiguous; a shard may be empty (fewer pairs than
shards). A pair that failed planning (``--on-error skip``) counts one pixel and is reported by
the shard whose range holds it, so every skip is listed exactly once.

``plan_sha256`` hashes the keys in order and the settings that change the numbers, so that
parts of different plans or settings are never merged by mistake (``hlcli merge`` also checks
the weights' sha256 of every part against the others).

Merging (:func:`merge_documents`) rebuilds one :class:`~hlcli.runs.results.Run` from the parts'
JSON documents: the run a single process would have made (pairs in canonical order, the same
summary), which the CLI renders with the same code as ``hlcli score``.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from ..metrics.registry import set_metrics
from ..runs.readers import pair_extra_metric_names
from ..runs.results import Missing, PairResult, Run, Skipped
from ..text import plural
from ..runs.documents import settings_differences

__all__ = ["Shard", "ShardSelection", "assign_shards", "merge_documents", "parse_shard", "plan_sha256",
           "run_from_document", "shard_ranges"]

_SHARD_FIX = "write it as INDEX/COUNT with 0 <= INDEX < COUNT, e.g. --shard 3/16"


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (0-based) of ``count``."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """``"3/16"`` -> ``Shard(3, 16)`` (``InputError`` otherwise)."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m or int(m[2]) < 1 or int(m[1]) >= int(m[2]):
        raise InputError(f"bad shard {text!r}", None, _SHARD_FIX)
    return Shard(int(m[1]), int(m[2]))


def assign_shards(costs: list[int], count: int) -> list[int]:
    """The shard of each item (in order) for ``count`` contiguous, cost-balanced shards."""
    total = sum(costs)
    out, before = [], 0
    for c in costs:
        out.append(min(count - 1, (count * (2 * before + c)) // (2 * total)))
        before += c
    return out


def shard_ranges(costs: list[int], count: int) -> list[tuple[int, int]]:
    """``[start, stop)`` of every shard over items of ``costs`` (see :func:`assign_shards`)."""
    owners = assign_shards(costs, count)
    return [(bisect.bisect_left(owners, k), bisect.bisect_right(owners, k)) for k in range(count)]


def plan_settings(opts: Any) -> dict[str, Any]:
    """The settings of ``opts`` (a ScoreOptions) that change which pairs are scored or their
    numbers, known before any file is read (the weights are checked apart, by sha256)."""
    return {
        "lambda": opts.lam,
        "layers": list(opts.layers),
        "layer_weights": None if opts.layer_weights is None else [float(w) for w in opts.layer_weights],
        "precision": opts.precision,
        "crop_border": opts.crop_border,
        "size_mismatch": opts.size_mismatch,
        "alpha": opts.alpha,
        "max_pixels": opts.max_pixels,
    }


def plan_sha256(keys: list[str], settings: dict[str, Any]) -> str:
    """sha256 of the pair keys in order and ``settings`` (canonical JSON)."""
    text = json.dumps({"keys": keys, "settings": settings}, sort_keys=True, ensure_ascii=False,
                      separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class ShardSelection:
    """The hook :func:`hlcli.engine.scoring.score_pairing` calls once every header is read: keeps the
    plans and plan-time skips of shard ``shard`` only. ``record`` (``--shard``) is what the JSON
    document stores as ``shard``; the torchrun runner passes ``record=False`` (its gathered run
    must look like a single-process run)."""

    shard: Shard
    record: bool = True
    info: dict[str, Any] | None = None  # set by select(): the document's ``shard`` record

    def select(self, pairing: Any, plans: list[Any], skipped: list[Skipped], opts: Any) -> tuple[list[Any], list[Skipped]]:
        keys = [p.key for p in pairing.pairs]
        planned = {p.pair.key: p for p in plans}
        costs = [max(1, planned[k].width * planned[k].height) if k in planned else 1 for k in keys]
        start, stop = shard_ranges(costs, self.shard.count)[self.shard.index]
        mine = set(keys[start:stop])
        if self.record:
            self.info = {"index": self.shard.index, "count": self.shard.count,
                         "plan_sha256": plan_sha256(keys, plan_settings(opts)),
                         "range": [start, stop], "total_pairs": len(keys)}
        return [p for p in plans if p.pair.key in mine], [s for s in skipped if s.key in mine]


# -- reading parts back ------------------------------------------------------------------------

def skipped_from_dict(d: dict[str, Any]) -> Skipped:
    return Skipped(d["key"], d["path"], d["reason"], d["exit_code"], d.get("restored"), d.get("gt"))


def run_from_document(doc: dict[str, Any], *, worst: int = 5) -> Run:
    """The :class:`Run` a ``score -f json`` document was written from (pairs in key order;
    ``gate`` left for the caller to evaluate; the ``shard`` record dropped)."""
    reserved = {"schema_version", "tool", "settings", "complete", "summary_only", "pairs", "skipped", "missing",
                "ignored", "summary", "gate", "shard", "set_features"}
    environment = {k: v for k, v in doc.items() if k not in reserved}
    missing = doc.get("missing", {})
    return Run(settings=doc["settings"], environment=environment,
               layer_names=[layer["name"] for layer in doc["settings"]["layers"]],
               pairs=[PairResult.from_dict(p, pair_extra_metric_names(doc["settings"])) for p in doc.get("pairs", [])],
               skipped=[skipped_from_dict(s) for s in doc.get("skipped", [])],
               missing=Missing(list(missing.get("restored_only", [])), list(missing.get("gt_only", []))),
               ignored=list(doc.get("ignored", [])), worst=worst)


def part_problems(doc: dict[str, Any]) -> str | None:
    """Why a document cannot be one complete part of a sharded run, or None."""
    info = doc.get("shard")
    if not isinstance(info, dict):
        return "it has no shard record (it was not written by `hlcli score --shard I/N`)"
    start, stop = info["range"]
    found = len(doc.get("pairs", [])) + len(doc.get("skipped", []))
    if found != stop - start:
        return f"it holds {plural(found, 'pair')}, its range [{start}, {stop}) has {stop - start}"
    return None


def _merged_features(docs: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """Every part's set features (FID, KID), read from the feature file beside it and checked
    (:mod:`hlcli.runs.featurefile`); ``InputError`` naming the part otherwise."""
    from ..runs.featurefile import FeatureFileError, read_part_features  # lazy: keeps numpy off the cheap paths (import hlcli, --help)

    out: dict[str, Any] = {}
    for path, doc in docs:
        try:
            out.update(read_part_features(path, doc))
        except FeatureFileError as exc:
            raise InputError(str(exc), path, "rescore that shard with -o FILE (json) and keep FILE.fid.npy "
                             "beside it") from None
    return out


def merge_documents(docs: list[tuple[str, dict[str, Any]]], *, worst: int = 5) -> Run:
    """One run from the ``(path, document)`` parts of a sharded run: every shard 0..N-1 of one
    plan exactly once, else ``InputError`` listing the missing, duplicated and foreign parts."""
    if not docs:
        raise InputError("no parts to merge", None, "pass the part files, e.g. hlcli merge part-*.json -o run.json")
    problems, by_index = [], {}
    for path, doc in docs:
        why = part_problems(doc)
        if why:
            raise InputError(f"not a complete shard: {why}", path, "rescore that shard")
    first_path, first = docs[0]
    ref = first["shard"]
    for path, doc in docs:
        info = doc["shard"]
        diffs = settings_differences(first["settings"], doc["settings"], (first_path, path))
        if info["plan_sha256"] != ref["plan_sha256"] or info["count"] != ref["count"] or diffs:
            why = "; ".join(diffs) or f"plan {info['plan_sha256'][:12]}… of {plural(info['count'], 'shard')}"
            problems.append(f"foreign part {path} ({why}; {first_path} has plan {ref['plan_sha256'][:12]}… "
                            f"of {plural(ref['count'], 'shard')})")
            continue
        by_index.setdefault(info["index"], []).append(path)
    problems += [f"shard {i}/{ref['count']} given {len(p)} times ({', '.join(p)})" for i, p in sorted(by_index.items())
                 if len(p) > 1]
    absent = [str(i) for i in range(ref["count"]) if i not in by_index]
    if absent:
        problems.append(f"missing {'shard' if len(absent) == 1 else 'shards'} {', '.join(absent)} of {ref['count']}")
    if problems:
        raise InputError("cannot merge: " + "; ".join(problems), None,
                         "pass every part of one `hlcli score --shard I/N` plan exactly once")
    parts = [run_from_document(doc, worst=worst) for _, doc in docs]
    run = parts[0]
    if set_metrics(first["settings"].get("metrics") or []):
        run.set_features = _merged_features(docs)
    run.pairs = sorted((p for part in parts for p in part.pairs), key=lambda p: p.key)
    run.skipped = sorted((s for part in parts for s in part.skipped), key=lambda s: s.key)
    return run
