"""A summary's numbers as every view reads them (no torch, no numpy import; imports no other
module of ``runs``, so that :mod:`hlcli.runs.results` and :mod:`hlcli.runs.tensorboard` both can).

A summary (:meth:`hlcli.Run.summary`, or a stored document's ``summary``) holds per-pair
statistics under ``metrics`` and the set metrics (FID, KID: one value per set) under ``sets``,
and the same per group under ``groups``. Views ask here instead of reading either shape
themselves: set values always come from the stored ``sets``, never recomputed.
"""

from __future__ import annotations

from typing import Any

from ..metrics.registry import set_metrics


def summary_values(summary: dict[str, Any]) -> dict[str, float | None]:
    """A summary's (a run's or one group's) one number per metric: each pair metric's mean, then
    each set metric's value (its ``sets``), for every view that shows one number per metric (JUnit,
    the job summary, TensorBoard)."""
    out = {m: st.get("mean") for m, st in (summary.get("metrics") or {}).items()}
    sets = summary.get("sets") or {}
    out.update({m: sets.get(m) for m in set_metrics(list(sets))})
    return out


def set_records(summary: dict[str, Any]) -> list[tuple[str | None, dict[str, Any]]]:
    """The set records of a run's summary: the run's (group None) first, then each group's that
    has one, in the summary's (sorted) group order. Empty without set metrics."""
    out: list[tuple[str | None, dict[str, Any]]] = [(None, summary["sets"])] if summary.get("sets") else []
    out += [(g, gs["sets"]) for g, gs in (summary.get("groups") or {}).items() if gs.get("sets")]
    return out


def set_names(summary: dict[str, Any]) -> list[str]:
    """The set metrics a summary holds values for (registry order)."""
    return set_metrics([m for _, record in set_records(summary) for m in record])
