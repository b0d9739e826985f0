"""The results of a scoring run: the :class:`Run` and its records (:class:`PairResult`,
:class:`Skipped`, :class:`Missing`), and their summary statistics (no torch import).

Statistics over the scored pairs, per metric, in float64 (numpy):
``count``, ``mean``, ``median``, ``std`` (population, ddof=0), ``min``, ``max`` and the
percentiles ``p50 p90 p95 p99`` with linear interpolation between closest ranks (numpy's default
``method="linear"``, Hyndman & Fan type 7: the p-th percentile of n sorted values v is
v[i] + f * (v[i+1] - v[i]) with i + f = p/100 * (n - 1)).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from ..metrics.registry import run_metrics
from ..inputs.groups import group_names, group_of

SCHEMA_VERSION = 1
STATS = ("mean", "median", "std", "min", "max", "p50", "p90", "p95", "p99")
PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0}
BASE_METRICS = ("l1", "perceptual", "hybrid")


@dataclass
class PairResult:
    """The scores of one pair. ``layers`` holds the unweighted perceptual value of each layer;
    ``perceptual`` is their weighted sum and ``hybrid`` = ``l1 + lambda * perceptual``.

    >>> r = PairResult("a", "out/a.png", "gt/a.png", 64, 64, l1=0.02, layers={"conv3_3": 0.4},
    ...                perceptual=0.4, hybrid=0.04)
    >>> r.metric("conv3_3"), r.metric("hybrid")
    (0.4, 0.04)
    """

    key: str
    restored: str
    gt: str
    width: int  # the size that was scored (after any size policy)
    height: int
    l1: float
    layers: dict[str, float]  # per-layer perceptual (unweighted), in requested order
    perceptual: float  # sum_l w_l * layers[l]
    hybrid: float
    size_policy: str | None = None  # "crop" / "resize-restored" when one was applied to this pair
    original_sizes: dict[str, list[int]] | None = None  # {"restored": [w, h], "gt": [w, h]} if a policy applied
    tiled: bool = False
    extra: dict[str, float] = field(default_factory=dict)  # --metrics: psnr, ssim... (PSNR may be +inf)

    def metric(self, name: str) -> float:
        """Any metric of the pair by name: l1, perceptual, hybrid, a layer or an extra metric."""
        if name in BASE_METRICS:
            return getattr(self, name)
        if name in self.extra:
            return self.extra[name]
        return self.layers[name]

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "key": self.key,
            "restored": self.restored,
            "gt": self.gt,
            "width": self.width,
            "height": self.height,
            "l1": self.l1,
            "layers": dict(self.layers),
            "perceptual": self.perceptual,
            "hybrid": self.hybrid,
            "size_policy": self.size_policy,
            "tiled": self.tiled,
        }
        if self.original_sizes is not None:
            d["original_sizes"] = self.original_sizes
        for name, value in self.extra.items():  # +inf (identical images' PSNR) is null: strict JSON
            d[name] = value if math.isfinite(value) else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], extra: Sequence[str] = ()) -> PairResult:
        """The record of a JSON document back as a :class:`PairResult` (``extra``: the run's
        extra metric names; a null value, written for +inf, reads back as +inf)."""
        return cls(key=d["key"], restored=d["restored"], gt=d["gt"], width=d["width"], height=d["height"],
                   l1=d["l1"], layers=dict(d["layers"]), perceptual=d["perceptual"], hybrid=d["hybrid"],
                   size_policy=d.get("size_policy"), original_sizes=d.get("original_sizes"),
                   tiled=bool(d.get("tiled", False)),
                   extra={m: math.inf if d.get(m) is None else d[m] for m in extra})


@dataclass
class Skipped:
    """A pair (or file) that was not scored (``on_error="skip"``), why, and the exit code its
    error has under ``on_error="fail"``.

    >>> Skipped("a", "out/a.png", "cannot decode the image (out/a.png): ...", 2).as_dict()["exit_code"]
    2
    """

    key: str
    path: str  # the file at fault
    reason: str  # the one-line error
    exit_code: int  # the exit code the error would have had under --on-error fail
    restored: str | None = None  # the pair's files (None in documents written before they were kept)
    gt: str | None = None

    def as_dict(self) -> dict[str, Any]:
        d = {"key": self.key, "path": self.path, "reason": self.reason, "exit_code": self.exit_code}
        return {**d, **({"restored": self.restored} if self.restored is not None else {}),
                **({"gt": self.gt} if self.gt is not None else {})}

    def short_reason(self) -> str:
        """The reason without the path it names (that path is in ``path``)."""
        return self.reason.replace(f" ({self.path})", "", 1)


@dataclass
class Missing:
    """Image files without a partner on the other side (scored runs list them with
    ``allow_missing``; without it they are a :class:`~hlcli.MissingFilesError`).

    >>> len(Missing(restored_only=["out/extra.png"], gt_only=[]))
    1
    """

    restored_only: list[str] = field(default_factory=list)  # restored files with no ground truth
    gt_only: list[str] = field(default_factory=list)  # ground-truth files with no restored file

    def __len__(self) -> int:
        return len(self.restored_only) + len(self.gt_only)

    def as_dict(self) -> dict[str, Any]:
        return {"restored_only": list(self.restored_only), "gt_only": list(self.gt_only)}


def metric_names(layer_names: Sequence[str], extra: Sequence[str] = ()) -> list[str]:
    """Metric columns in their fixed order: l1, each layer, perceptual, hybrid, then the extra
    metrics (:func:`hlcli.metrics.registry.run_metrics`)."""
    return run_metrics(layer_names, extra)


def describe(values: list[float]) -> dict[str, float | int | None]:
    """count/mean/median/std/min/max/p50/p90/p95/p99 of ``values`` (float64, see module doc).
    Infinite values (PSNR of identical images) are left out of every statistic and counted
    under ``infinite`` (present only when there are some): ``count`` is the finite values."""
    import numpy as np  # lazy: keeps numpy off the cheap paths (import hlcli, --help, reading runs)

    finite = [v for v in values if math.isfinite(v)]
    infinite = {"infinite": len(values) - len(finite)} if len(finite) < len(values) else {}
    values = finite
    n = len(values)
    if n == 0:
        return {"count": 0, **{s: None for s in STATS}, **infinite}
    arr = np.asarray(values, dtype=np.float64)
    out: dict[str, float | int | None] = {
        "count": n,
        "mean": float(np.mean(arr)),
        "median": float(np.median(arr)),
        "std": float(np.std(arr)),
        "min": float(np.min(arr)),
        "max": float(np.max(arr)),
    }
    for name, q in PERCENTILES.items():
        out[name] = float(np.percentile(arr, q, method="linear"))
    out.update(infinite)
    return out


def summarize(
    pairs: list[PairResult], layer_names: list[str] | tuple[str, ...], *, worst: int = 5,
    extra: Sequence[str] = (),
) -> dict[str, Any]:
    metrics = {
        name: describe([p.metric(name) for p in pairs]) for name in metric_names(layer_names, extra)
    }
    ranked = sorted(pairs, key=lambda p: (-p.hybrid, p.key))[: max(worst, 0)]
    return {
        "count": len(pairs),
        "metrics": metrics,
        "worst": [{"key": p.key, "hybrid": p.hybrid, "l1": p.l1, "perceptual": p.perceptual} for p in ranked],
    }


def set_stats(record: dict[str, Any], name: str) -> dict[str, Any]:
    """A set metric as a summary statistics entry (the fixed columns of ``--summary-only`` CSV
    and JSON Lines): ``count`` the samples, ``mean`` the value, ``std`` the subsets' standard
    deviation where the metric has one (KID's ``kid_std``), every other statistic None."""
    out: dict[str, Any] = {"count": record["samples"], **dict.fromkeys(STATS)}
    out["mean"] = record.get(name)
    out["std"] = record.get(f"{name}_std")
    return out


def format_change(delta: float | None, rel: float | None) -> str:
    """A change as people read it: relative, in percent, when the old value was non-zero
    (``rel`` given), else absolute; ``±∞`` when one side was +inf (PSNR of identical images)."""
    if delta is None:
        return "±∞"
    return f"{rel * 100:+.3g}%" if rel is not None else f"{delta:+.6g}"




@dataclass
class Run:
    """A scoring run: how it was made (``settings``, ``environment``) and what it found
    (``pairs``, ``skipped``, ``missing``, ``ignored``, and ``gate`` when gates were evaluated).
    Returned by :func:`hlcli.score_dirs` and :func:`hlcli.score_pairs`;
    ``document()`` is the JSON document that ``hlcli score -f json`` writes.

    >>> run = Run(settings={"lambda": 0.05}, environment={}, layer_names=["conv3_3"])
    >>> run.complete, run.summary()["count"]
    (True, 0)
    """

    settings: dict[str, Any]
    environment: dict[str, Any]
    layer_names: list[str]
    pairs: list[PairResult] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    missing: Missing = field(default_factory=Missing)
    ignored: list[str] = field(default_factory=list)
    gate: dict[str, Any] | None = None
    worst: int = 5
    # Where the pixels of some pairs can be had (``key -> (restored, gt)`` arrays or None): an
    # :class:`hlcli.Evaluator`'s run keeps its worst pairs' pixels here for image panels; None
    # reads the pairs' files again. Not part of the document.
    images: Any = field(default=None, repr=False, compare=False)
    #: Per pair key, (restored, ground truth) Inception features (``K x dims`` float64 numpy
    #: arrays) when set metrics were scored (:mod:`hlcli.metrics.setfeatures`); None otherwise.
    set_features: dict[str, tuple[Any, Any]] | None = None
    _set_cache: dict[tuple[str, ...], dict[str, Any]] = field(default_factory=dict, repr=False, compare=False)

    @property
    def extra_metrics(self) -> list[str]:
        """The extra metrics scored (``settings["metrics"]``; absent means none)."""
        return list(self.settings.get("metrics", []))

    @property
    def metric_names(self) -> list[str]:
        """Every per-pair metric of the run, in column order."""
        return metric_names(self.layer_names, self.extra_metrics)

    @property
    def set_metric_names(self) -> list[str]:
        """The set metrics of the run (FID, KID): one value per run and per group."""
        from ..metrics.registry import set_metrics

        return set_metrics(self.extra_metrics)

    def set_values(self, pairs: list[PairResult]) -> dict[str, Any] | None:
        """The set metrics over ``pairs`` (their features concatenated in key order, so that any
        batching, shard split or rank count gives the same rows in the same order), or None
        when the run has no set metric or no features (a document read back, unless
        :meth:`keep_set_values` kept its stored values)."""
        names = self.set_metric_names
        if not names:
            return None
        keys = sorted(p.key for p in pairs)
        cached = self._set_cache.get(tuple(keys))
        if cached is not None:
            return dict(cached)
        if self.set_features is None:
            return None
        import numpy as np  # lazy: keeps numpy off the cheap paths (import hlcli, --help)

        from ..metrics.fid import KID_SEED, set_record

        fid_settings = self.settings.get("fid") or {}
        dims = int(fid_settings.get("dims", 2048))
        rows = [self.set_features[k] for k in keys]
        r = np.concatenate([a for a, _ in rows]) if rows else np.empty((0, dims))
        g = np.concatenate([b for _, b in rows]) if rows else np.empty((0, dims))
        record = set_record(r, g, tuple(names), kid_seed=int(fid_settings.get("kid_seed", KID_SEED)),
                            patches=fid_settings.get("patches"))
        self._set_cache[tuple(keys)] = record
        return dict(record)

    def keep_set_values(self, summary: dict[str, Any]) -> None:
        """Keep a stored document's set values (``summary["sets"]`` and each group's) as this
        run's: a document read back has no features, but its set values are those its features
        gave (``hlcli score A/ B/ GT/ --resume`` reuses a complete model's document this way)."""
        if "sets" in summary:
            self._set_cache[tuple(sorted(p.key for p in self.pairs))] = dict(summary["sets"])
        for name, group in (summary.get("groups") or {}).items():
            if "sets" in group:
                keys = sorted(p.key for p in self.pairs if self.group_of(p.key) == name)
                self._set_cache[tuple(keys)] = dict(group["sets"])

    @property
    def complete(self) -> bool:
        """True only when every file found was scored: nothing skipped, nothing unmatched."""
        return not self.skipped and not len(self.missing)

    def sorted_pairs(self) -> list[PairResult]:
        return sorted(self.pairs, key=lambda p: p.key)

    @property
    def group_by(self) -> str:
        """How pairs are grouped (``settings["group_by"]``; absent means ``"none"``)."""
        return self.settings.get("group_by", "none")

    def group_of(self, key: str) -> str | None:
        """The group of the pair keyed ``key`` (None when the run is not grouped)."""
        return group_of(key, self.group_by)

    def group_names(self) -> list[str]:
        """Every group of the run, sorted: from the pairs scored and skipped, so that a group
        whose pairs were all skipped is still there (with count 0)."""
        return group_names([p.key for p in self.pairs] + [s.key for s in self.skipped], self.group_by)

    def group_summaries(self) -> dict[str, dict[str, Any]]:
        """Per group: ``count``, ``skipped`` and the same ``metrics`` statistics as the summary,
        over that group's pairs (in scoring order, as the overall summary)."""
        members: dict[str, list[PairResult]] = {name: [] for name in self.group_names()}
        skipped = dict.fromkeys(members, 0)
        for p in self.pairs:
            members[self.group_of(p.key)].append(p)  # type: ignore[index]
        for s in self.skipped:
            skipped[self.group_of(s.key)] += 1  # type: ignore[index]
        out = {name: {"count": len(pairs), "skipped": skipped[name],
                      "metrics": {m: describe([p.metric(m) for p in pairs]) for m in self.metric_names}}
               for name, pairs in members.items()}
        for name, pairs in members.items():
            sets = self.set_values(pairs)
            if sets is not None:
                out[name]["sets"] = sets
        return out

    def summary(self) -> dict[str, Any]:
        s = summarize(self.pairs, self.layer_names, worst=self.worst, extra=self.extra_metrics)
        s["skipped"] = len(self.skipped)
        s["missing"] = len(self.missing)
        s["ignored"] = len(self.ignored)
        s["complete"] = self.complete
        sets = self.set_values(self.pairs)
        if sets is not None:  # only with set metrics: plain documents stay as they were
            s["sets"] = sets
        if self.group_by != "none":  # only when grouping: plain documents stay as they were
            s["groups"] = self.group_summaries()
        return s

    def to_tensorboard(self, writer_or_dir: Any, *, step: int = 0, worst: int | None = None,
                       sort: str = "hybrid") -> None:
        """Log this run to TensorBoard as ``hlcli score --tensorboard DIR --step N`` does: every
        metric's mean as ``hlcli/<metric>`` (per group ``hlcli/<group>/<metric>``) at ``step``,
        and the ``worst`` pairs (default: :attr:`worst`) by ``sort`` as image panels under
        ``hlcli/worst/<rank>``. ``writer_or_dir``: a ``torch.utils.tensorboard.SummaryWriter``
        (flushed, left open) or a folder (a writer made and closed here). Needs the
        ``tensorboard`` package (``pip install 'hlcli[tensorboard]'``). See docs/integrations.md."""
        from .tensorboard import log_run  # lazy: numpy, Pillow and torch only when logging

        log_run(self, writer_or_dir, step=step, worst=self.worst if worst is None else worst, sort=sort)

    def with_group(self, record: dict[str, Any], key: str) -> dict[str, Any]:
        """``record`` with its ``group`` when the run is grouped (unchanged otherwise)."""
        return record if self.group_by == "none" else {**record, "group": self.group_of(key)}

    def header(self) -> dict[str, Any]:
        """What the JSON document and the JSON Lines header share: schema, versions, settings."""
        return {"schema_version": SCHEMA_VERSION, "tool": "hlcli", **self.environment, "settings": self.settings}

    def document(self, *, summary_only: bool = False) -> dict[str, Any]:
        """The JSON document (hlcli/schema/score.schema.json). ``summary_only`` leaves out the
        ``pairs`` array and says so with ``"summary_only": true``."""
        pairs = ({"summary_only": True} if summary_only
                 else {"pairs": [self.with_group(p.as_dict(), p.key) for p in self.sorted_pairs()]})
        return {
            **self.header(),
            "complete": self.complete,
            **pairs,
            "skipped": [self.with_group(s.as_dict(), s.key) for s in sorted(self.skipped, key=lambda s: s.key)],
            "missing": self.missing.as_dict(),
            "ignored": list(self.ignored),
            "summary": self.summary(),
            "gate": self.gate,
        }
