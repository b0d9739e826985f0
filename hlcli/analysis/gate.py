"""Quality gates for ``hlcli score`` (pure Python and numpy, no torch import).

* ``--fail-if "STAT.METRIC OP VALUE"``: the gate *fails when the expression is true*
  (``mean.hybrid>0.08`` fails a run whose mean hybrid is above 0.08; exactly 0.08 passes).
  STAT is ``count``, ``mean``, ``median``, ``std``, ``min``, ``max`` or a percentile ``pN``
  (0 <= N <= 100, e.g. ``p95``, ``p99.9``), all as defined in :mod:`hlcli.runs.results`; METRIC is
  any metric the run scores (:func:`hlcli.runs.results.metric_names`: ``l1``, the layers,
  ``perceptual``, ``hybrid`` and the extra metrics of :data:`hlcli.metrics.registry.EXTRA`); OP is one
  of ``> >= < <= == !=``, whatever the metric's direction.
  A statistic that is undefined (no pairs scored) fails its gate. ``STAT.METRIC[GROUP] OP VALUE``
  (``mean.hybrid[Urban100]>0.1``) evaluates over one group's pairs of a run scored with
  ``--group-by`` (:mod:`hlcli.inputs.groups`); the group must be one of the run's.
* ``--baseline RUN.json`` with ``--max-regression [METRIC=]VALUE[%]``: compare this run with a
  stored ``hlcli score -f json`` document, pair by pair and on the mean over the pairs both runs
  scored. A pair or mean *regresses* when it got worse by more than ``allowed`` (equal passes):
  ``regression(metric, old, new) > allowed``, a rise of L1, a drop of PSNR (:mod:`hlcli.metrics.registry`).
  ``allowed``, a non-negative amount in the metric's bad direction, is the most lenient of the
  limits given for that metric: ``VALUE`` (absolute) or ``VALUE% * |old|`` (relative, so an old
  value of 0 allows no change for the worse under a relative limit); :func:`excess` is how far
  beyond it a record is.
  A bare VALUE limits ``hybrid``; ``all=VALUE`` limits every metric not named on its own.
  ``--max-pair-regression`` (same syntax), when given, replaces the limits for single pairs,
  so that noisy pairs may move more than the mean.
  Runs made with different settings (λ, layers and their weights, weights sha256, precision,
  crop border) are refused unless the user passes :data:`OVERRIDE_FLAG`.
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass, field, replace
from typing import Any

from ..runs.documents import (OVERRIDE_FLAG, fid_differences, load_document, mismatch_error, pair_value,
                               settings_differences)
from ..runs.readers import metric_names as run_metric_names
from ..metrics.registry import EXTRA, is_set_metric, regression, set_metrics
from ..errors import InputError
from ..runs.results import STATS, PairResult, Run, describe, metric_names
from ..inputs.groups import group_of

__all__ = ["OPS", "OVERRIDE_FLAG", "Gate", "GateSpec", "Limit", "check_groups", "check_metrics", "compare_to_baseline", "excess",
           "evaluate_gates", "load_document", "parse_gate", "parse_limit", "scoped", "statistic"]

OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
       "==": operator.eq, "!=": operator.ne}
GATE_STATS = ("count", *STATS)

_GATE_RE = re.compile(r"\s*(p\d+(?:\.\d+)?|[a-z]+)\s*\.\s*([a-z][a-z0-9_]*)\s*(?:\[([^\]]*)\])?"
                      r"\s*(>=|<=|==|!=|>|<)\s*(\S+)\s*", re.IGNORECASE)
_SET_GATE_RE = re.compile(r"\s*([a-z][a-z0-9_]*)\s*(?:\[([^\]]*)\])?\s*(>=|<=|==|!=|>|<)\s*(\S+)\s*", re.IGNORECASE)
SET_STAT = "value"  # the "statistic" of a gate on a set metric: the set's one value
_LIMIT_RE = re.compile(r"\s*(?:([a-z][a-z0-9_]*)\s*=\s*)?([^%\s=]+)\s*(%?)\s*", re.IGNORECASE)
_GATE_HELP = ("expected STAT.METRIC[GROUP] OP VALUE, e.g. mean.hybrid>0.08 or mean.hybrid[Set5]>0.08 (STAT: "
              + ", ".join(GATE_STATS) + " or pN; OP: > >= < <= == !=)")


# -- --fail-if ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Gate:
    expression: str  # normalised, without spaces: "mean.hybrid>0.08", "mean.hybrid[Set5]>0.08"
    stat: str
    metric: str
    op: str
    threshold: float
    group: str | None = None  # evaluate over this group's pairs only (needs --group-by)


def _finite(text: str) -> float | None:
    try:
        x = float(text)
    except ValueError:
        return None
    return x if math.isfinite(x) else None


def parse_gate(text: str) -> Gate:
    """Parse one ``--fail-if`` expression; ``ValueError`` with a one-line message if invalid."""
    m = _GATE_RE.fullmatch(text)
    if not m:
        return _parse_set_gate(text)
    stat, metric, op, value = m.group(1).lower(), m.group(2).lower(), m.group(4), m.group(5)
    if is_set_metric(metric):
        raise ValueError(f"{stat}.{metric} in gate {text!r}: {metric} is a set metric, one value per run or "
                         f"group (not per pair), so it has no {stat}; gate it by name, e.g. {metric}>30 or "
                         f"{metric}[GROUP]>30")
    group = None if m.group(3) is None else m.group(3).strip()
    if group == "":
        raise ValueError(f"empty group in gate {text!r}: name one, e.g. mean.hybrid[Set5]>0.08")
    if stat not in GATE_STATS:
        q = _finite(stat[1:]) if stat.startswith("p") else None
        if q is None or not 0 <= q <= 100:
            raise ValueError(f"unknown statistic {stat!r} in gate {text!r}: use one of "
                             f"{', '.join(GATE_STATS)} or a percentile pN with 0 <= N <= 100")
    threshold = _finite(value)
    if threshold is None:
        raise ValueError(f"threshold {value!r} in gate {text!r} is not a finite number")
    scope = "" if group is None else f"[{group}]"
    return Gate(f"{stat}.{metric}{scope}{op}{value}", stat, metric, op, threshold, group)


def _parse_set_gate(text: str) -> Gate:
    """``fid>30`` or ``fid[Set5]>30``: a gate on a set metric's value."""
    m = _SET_GATE_RE.fullmatch(text)
    if not m or not is_set_metric(m.group(1).lower()):
        raise ValueError(f"invalid gate {text!r}: {_GATE_HELP}; a set metric by name: "
                         f"{' or '.join(f'{n}>VALUE' for n in set_metrics(EXTRA))}")
    metric, op, value = m.group(1).lower(), m.group(3), m.group(4)
    group = None if m.group(2) is None else m.group(2).strip()
    if group == "":
        raise ValueError(f"empty group in gate {text!r}: name one, e.g. {metric}[Set5]>30")
    threshold = _finite(value)
    if threshold is None:
        raise ValueError(f"threshold {value!r} in gate {text!r} is not a finite number")
    scope = "" if group is None else f"[{group}]"
    return Gate(f"{metric}{scope}{op}{value}", SET_STAT, metric, op, threshold, group)


def check_metrics(items: list[Gate] | list[Limit], layer_names: list[str] | tuple[str, ...],
                  extra: tuple[str, ...] | list[str] = ()) -> None:
    """``ValueError`` naming the first gate or limit whose metric this run does not score."""
    valid = metric_names(list(layer_names), extra) + set_metrics(extra)
    for item in items:
        if item.metric in EXTRA and item.metric not in valid:
            raise ValueError(f"{item.expression!r} needs {item.metric}, which this run does not compute: "
                             f"add --metrics {','.join([*extra, item.metric])}")
        if item.metric not in valid and not (isinstance(item, Limit) and item.metric == "all"):
            raise ValueError(f"unknown metric {item.metric!r} in {item.expression!r}: use one of "
                             f"{', '.join(valid)} (a layer must be one of --layers)")


def check_groups(gates: list[Gate], groups: list[str], group_by: str) -> None:
    """``ValueError`` naming the first gate whose group is not one of ``groups`` (the run's
    groups, known from the pairing before anything is scored)."""
    for g in gates:
        if g.group is None:
            continue
        if group_by == "none":
            raise ValueError(f"gate {g.expression!r} names the group {g.group!r} but pairs are not grouped: "
                             "pass --group-by top (top-level folder) or --group-by dir (parent folder)")
        if g.group not in groups:
            known = ", ".join(groups[:20]) + (f", … ({len(groups) - 20} more)" if len(groups) > 20 else "")
            raise ValueError(f"unknown group {g.group!r} in gate {g.expression!r}: with --group-by {group_by} "
                             f"the groups are {known or 'none'}")


def statistic(stat: str, values: list[float]) -> float | int | None:
    """``stat`` of ``values`` with the definitions of :func:`hlcli.runs.results.describe` (None when
    undefined, i.e. no values); ``pN`` is numpy's linear-interpolation percentile."""
    if values and all(v == math.inf for v in values):  # every pair identical: PSNR +inf throughout
        return len(values) if stat == "count" else (0.0 if stat == "std" else math.inf)
    if stat in GATE_STATS:
        return describe(values)[stat] if stat != "count" else len(values)
    values = [v for v in values if math.isfinite(v)]  # as describe(): +inf values left out
    if not values:
        return None
    import numpy as np  # lazy: keeps numpy off the cheap paths (import hlcli, --help, reading runs)

    return float(np.percentile(np.asarray(values, dtype=np.float64), float(stat[1:]), method="linear"))


def evaluate_gates(gates: list[Gate], pairs: list[PairResult], *, group_by: str = "none",
                   sets: Any = None) -> list[dict[str, Any]]:
    """The ``checks`` of the gate section: each gate's observed statistic over ``pairs``, or over
    the pairs of its group (``group_by`` as in :func:`hlcli.inputs.groups.group_of`). A check names
    its ``group`` only when the gate has one. A gate on a set metric observes the value of
    ``sets(members)`` (:meth:`hlcli.runs.results.Run.set_values`)."""
    checks = []
    for g in gates:
        members = pairs if g.group is None else [p for p in pairs if group_of(p.key, group_by) == g.group]
        if g.stat == SET_STAT:
            record = sets(members) if sets is not None else None
            observed = None if record is None else record.get(g.metric)
        else:
            observed = statistic(g.stat, [p.metric(g.metric) for p in members])
        failed = observed is None or OPS[g.op](observed, g.threshold)
        where = "" if g.group is None else f" in group {g.group}"
        reason = None
        if observed is None:
            reason = (f"undefined: {g.metric} needs at least 2 scored pairs{where}" if g.stat == SET_STAT
                      else f"undefined: no pairs were scored{where}")
        if observed == math.inf:  # strict JSON: +inf is written as null, and said in the reason
            observed, reason = None, f"+inf: every pair{where} is identical to its ground truth"
        checks.append({"expression": g.expression, "stat": g.stat, "metric": g.metric,
                       **({} if g.group is None else {"group": g.group}), "op": g.op,
                       "threshold": g.threshold, "observed": observed, "passed": not failed,
                       "reason": reason})
    return checks


# -- --max-regression --------------------------------------------------------------------------

@dataclass(frozen=True)
class Limit:
    expression: str  # as given, without spaces
    metric: str  # a metric name, or "all"
    value: float  # a fraction when relative (2% -> 0.02)
    relative: bool
    scope: str = "both"  # "both" (--max-regression), "mean" or "pairs" (--max-pair-regression)

    def allowed(self, old: float) -> float:
        return self.value * abs(old) if self.relative else self.value


def parse_limit(text: str) -> Limit:
    m = _LIMIT_RE.fullmatch(text)
    value = _finite(m.group(2)) if m else None
    if m is None or value is None or value < 0:
        raise ValueError(f"invalid regression limit {text!r}: expected [METRIC=]VALUE[%] with VALUE a "
                         "number >= 0, e.g. 2% (relative, hybrid), 0.001 (absolute) or l1=1%")
    metric = (m.group(1) or "hybrid").lower()
    relative = m.group(3) == "%"
    return Limit("".join(text.split()), metric, value / 100 if relative else value, relative)


def limits_by_metric(limits: list[Limit], metrics: list[str]) -> dict[str, list[Limit]]:
    """The limits that apply to each metric: those naming it, else those naming ``all``."""
    out: dict[str, list[Limit]] = {}
    for m in metrics:
        own = [lim for lim in limits if lim.metric == m]
        out[m] = own or [lim for lim in limits if lim.metric == "all"]
    return {m: lims for m, lims in out.items() if lims}


# -- baseline regressions ----------------------------------------------------------------------

def _mean(values: list[float]) -> float | None:
    """The mean of the finite values (+inf PSNR values left out, as in the summary); None if none."""
    import numpy as np  # lazy: keeps numpy off the cheap paths (import hlcli, --help, reading runs)

    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(np.asarray(finite, dtype=np.float64))) if finite else None


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _rel(delta: float, old: float) -> float | None:
    return delta / abs(old) if old != 0 and math.isfinite(delta) and math.isfinite(old) else None


def excess(record: dict[str, Any]) -> float | None:
    """How far a regression record (a ``summary`` entry or a ``regressed`` pair) is beyond its
    allowance, as an amount in the metric's bad direction (a PSNR drop of 0.99 dB against an
    allowed drop of 0.5 dB is 0.49; negative: within it). None when no limit applies. A stored
    ``baseline`` or ``observed`` of null is +inf (PSNR of an identical pair)."""
    if record.get("allowed") is None:
        return None
    old = math.inf if record["baseline"] is None else record["baseline"]
    new = math.inf if record["observed"] is None else record["observed"]
    return regression(record["metric"], old, new) - record["allowed"]


def scoped(limits: list[Limit], pair_limits: list[Limit]) -> list[Limit]:
    """All limits with their scope: --max-regression ones apply to the mean and, unless
    --max-pair-regression limits are given, to each pair."""
    if not pair_limits:
        return [replace(lim, scope="both") for lim in limits]
    return [replace(lim, scope="mean") for lim in limits] + [replace(lim, scope="pairs") for lim in pair_limits]


def _set_entries(baseline: dict[str, Any], sets: dict[str, Any] | None, extra: list[str] | tuple[str, ...],
                 limits: list[Limit]) -> list[dict[str, Any]]:
    """Regression entries of the set metrics (FID, KID): the baseline's stored value over its run
    against this run's value over its own (a set has one value; there are no pairs to match)."""
    base_sets = (baseline.get("summary") or {}).get("sets") or {}
    names = [m for m in set_metrics(extra) if base_sets.get(m) is not None and sets and sets.get(m) is not None]
    applied = limits_by_metric([lim for lim in limits if lim.scope != "pairs"], names)
    out = []
    for m in names:
        old, new = float(base_sets[m]), float(sets[m])  # type: ignore[index]
        entry: dict[str, Any] = {"metric": m, "baseline": old, "observed": new, "delta": new - old if old != new else 0.0,
                                 "relative_change": _rel(new - old, old), "allowed": None, "passed": True}
        if applied.get(m):
            entry["allowed"] = max(lim.allowed(old) for lim in applied[m])
            entry["passed"] = regression(m, old, new) <= entry["allowed"]
        out.append(entry)
    return out


def compare_to_baseline(pairs: list[PairResult], layer_names: list[str], baseline: dict[str, Any],
                        limits: list[Limit], *, baseline_path: str,
                        differences: list[str] | None = None, extra: list[str] | tuple[str, ...] = (),
                        sets: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``regressions`` part of the gate section (see the module doc for the rules).
    ``limits`` carry their scope (see :func:`scoped`). ``sets``: this run's set values
    (:meth:`hlcli.runs.results.Run.set_values`), compared with the baseline's ``summary.sets``."""
    base = {p["key"]: p for p in baseline["pairs"]}
    cur = {p.key: p for p in pairs}
    common = sorted(base.keys() & cur.keys())
    base_metrics = set(run_metric_names(baseline["settings"]))
    metrics = [m for m in metric_names(layer_names, extra) if m in base_metrics]
    applied = limits_by_metric([lim for lim in limits if lim.scope != "pairs"], metrics)
    applied_pairs = limits_by_metric([lim for lim in limits if lim.scope != "mean"], metrics)
    summary, regressed = [], []
    for m in metrics:
        lims = applied.get(m)
        entry: dict[str, Any] = {"metric": m, "baseline": None, "observed": None, "delta": None,
                                 "relative_change": None, "allowed": None, "passed": not (lims and not common)}
        if common:
            old, new = _mean([pair_value(base[k], m) for k in common]), _mean([cur[k].metric(m) for k in common])
            old = math.inf if old is None else old  # only +inf values (identical images): PSNR +inf
            new = math.inf if new is None else new
            entry.update(baseline=_finite_or_none(old), observed=_finite_or_none(new),
                         delta=_finite_or_none(new - old) if old != new else 0.0,
                         relative_change=_rel(new - old, old))
            if lims and math.isfinite(old):
                entry["allowed"] = max(lim.allowed(old) for lim in lims)
                entry["passed"] = regression(m, old, new) <= entry["allowed"]
            elif lims:  # the baseline was perfect (+inf): any finite value is a regression
                entry["allowed"], entry["passed"] = 0.0, regression(m, old, new) <= 0
        summary.append(entry)
        pair_lims = applied_pairs.get(m)
        for k in common if pair_lims else ():
            old, new = pair_value(base[k], m), cur[k].metric(m)
            allowed = max(lim.allowed(old) for lim in pair_lims) if math.isfinite(old) else 0.0
            if regression(m, old, new) > allowed:  # by the metric's direction: a PSNR drop, an L1 rise
                regressed.append({"key": k, "metric": m, "baseline": _finite_or_none(old),
                                  "observed": _finite_or_none(new), "delta": _finite_or_none(new - old),
                                  "relative_change": _rel(new - old, old), "allowed": allowed})
    summary += _set_entries(baseline, sets, extra, limits)
    return {
        "baseline": str(baseline_path),
        "passed": all(e["passed"] for e in summary) and not regressed,
        "limits": [{"expression": lim.expression, "metric": lim.metric, "value": lim.value,
                    "relative": lim.relative, "scope": lim.scope} for lim in limits],
        "settings_differences": list(differences or []),
        "pairs_compared": len(common),
        "new": sorted(cur.keys() - base.keys()),
        "missing": sorted(base.keys() - cur.keys()),
        "summary": summary,
        "regressed": regressed,
    }


@dataclass
class GateSpec:
    """What ``hlcli score`` checks after scoring: ``--fail-if`` gates and a ``--baseline``."""

    gates: list[Gate] = field(default_factory=list)
    limits: list[Limit] = field(default_factory=list)  # with their scope, see scoped()
    baseline: dict[str, Any] | None = None
    baseline_path: str | None = None
    allow_settings_mismatch: bool = False
    differences: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.gates or self.baseline is not None)

    def check_settings(self, settings: dict[str, Any]) -> list[str]:
        """Compare ``settings`` (complete or partial) with the baseline's; ``InputError`` on a
        difference unless the override was given. Returns the differences found."""
        if self.baseline is None:
            return []
        diffs = settings_differences(self.baseline["settings"], settings, ("baseline", "this run"))
        if diffs and not self.allow_settings_mismatch:
            raise mismatch_error(diffs, self.baseline_path)
        known = run_metric_names(self.baseline["settings"]) + list((self.baseline.get("summary") or {}).get("sets") or {})
        fid = fid_differences(self.baseline["settings"], settings, ("baseline", "this run"))
        if fid and not self.allow_settings_mismatch:
            raise mismatch_error(fid, self.baseline_path)
        for lim in self.limits:
            if lim.metric not in (*known, "all"):
                raise InputError(f"--max-regression {lim.expression}: the baseline has no {lim.metric} scores",
                                 self.baseline_path, f"limit one of {', '.join(known)}")
        self.differences = diffs
        return diffs

    def evaluate(self, run: Run) -> dict[str, Any] | None:
        """The gate section of ``run``'s report, or None when there is nothing to check."""
        if not self:
            return None
        checks = evaluate_gates(self.gates, run.pairs, group_by=run.group_by, sets=run.set_values)
        regressions = None
        if self.baseline is not None:
            regressions = compare_to_baseline(run.pairs, run.layer_names, self.baseline, self.limits,
                                              baseline_path=str(self.baseline_path),
                                              differences=self.differences, extra=run.extra_metrics,
                                              sets=run.set_values(run.pairs))
        passed = all(c["passed"] for c in checks) and (regressions is None or regressions["passed"])
        return {"passed": passed, "checks": checks, "regressions": regressions}
