"""Scoring under ``torchrun``: every rank scores its shard of the plan, rank 0 gathers.

Started by torchrun with more than one process (``WORLD_SIZE`` > 1, with ``RANK``,
``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT`` set), ``hlcli score``
calls :func:`score_distributed`:

1. the process group: gloo over torchrun's env:// rendezvous store, with a timeout of
   ``$HLCLI_DIST_TIMEOUT`` seconds (default :data:`DEFAULT_TIMEOUT_S`; at least 60 s for the
   rendezvous and the final gather, as ranks may start seconds apart). Results are small
   Python objects, so gloo carries them even when the model runs on CUDA (no NCCL needed);
2. the device: ``cuda:LOCAL_RANK`` for ``--device auto``/``cuda`` when CUDA is there, else the
   CPU with ``torch.set_num_threads(cores // LOCAL_WORLD_SIZE)`` so ranks do not oversubscribe;
3. each rank runs :func:`hlcli.engine.scoring.score_pairing` on its shard
   (:class:`hlcli.engine.sharding.ShardSelection`: the same canonical, pixel-balanced plan on every
   rank). No collective inside the scoring loop: progress goes through the c10d store
   (``store.add``, not a collective), so uneven shards cannot hang;
4. a rank that fails (an ``HlcliError`` under ``--on-error fail``, or a bug) says so in the store,
   and the others stop at their next pair; every rank then waits in the store until all are done
   (giving up after the timeout without progress from any rank), and the results travel to
   rank 0 with one ``gather_object``;
5. rank 0 builds ONE :class:`~hlcli.runs.results.Run` (pairs in canonical order, the run a single
   process makes, with ``distributed: {world_size, backend}`` in its environment), or raises the
   error a single process would have raised. Other ranks get None. With set metrics (FID, KID)
   each rank sends its pairs' Inception features too (float64 numpy arrays, K x dims per side and
   pair: about 32 kB per pair at 2048 dimensions), so rank 0's FID and KID are the single
   process's, computed from the same rows in the same key order.

A rank that is killed is noticed by torchrun's agent, which stops the others (seconds); the
timeout bounds the rest (a lost node).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from ..errors import HlcliEnvironmentError, HlcliError
from ..runs.results import PairResult, Run, Skipped
from .sharding import Shard, ShardSelection

DEFAULT_TIMEOUT_S = 600
TIMEOUT_ENV = "HLCLI_DIST_TIMEOUT"
BACKEND = "gloo"

__all__ = ["DEFAULT_TIMEOUT_S", "RankError", "score_distributed", "world_size"]


def world_size() -> int:
    """``$WORLD_SIZE`` (1 when not started by torchrun or a like launcher). No torch import."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def timeout_s() -> float:
    """The bound on waiting for other ranks: ``$HLCLI_DIST_TIMEOUT`` seconds, else 600."""
    try:
        value = float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_S))
    except ValueError:
        value = DEFAULT_TIMEOUT_S
    return value if value > 0 else DEFAULT_TIMEOUT_S


class RankError(HlcliError):
    """An error raised on another rank, re-raised on rank 0 with its message and exit code."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code

    def __reduce__(self) -> Any:
        return (RankError, (self.what, self.exit_code))


class _Aborted(Exception):
    """Raised inside a rank's scoring loop when another rank has failed."""


def _pack(p: PairResult) -> tuple[Any, ...]:
    """A PairResult as a plain tuple (a third of the pickle size of the dataclass)."""
    return (p.key, p.restored, p.gt, p.width, p.height, p.l1, tuple(p.layers.values()), p.perceptual,
            p.hybrid, p.size_policy, p.original_sizes, p.tiled, p.extra or None)


def _unpack(t: tuple[Any, ...], layer_names: list[str]) -> PairResult:
    return PairResult(t[0], t[1], t[2], t[3], t[4], t[5], dict(zip(layer_names, t[6])), t[7], t[8], t[9], t[10],
                      t[11], dict(t[12] or {}))


@dataclass
class Outcome:
    """What one rank sends to rank 0."""

    rank: int
    pairs: list[tuple[Any, ...]] = field(default_factory=list)
    skipped: list[tuple[str, str, str, int, str | None, str | None]] = field(default_factory=list)
    error: tuple[str, int] | None = None  # (one-line message, exit code)
    aborted: bool = False  # stopped because another rank failed
    set_features: dict[str, tuple[Any, Any]] | None = None  # FID/KID: each pair's float64 features


def assemble(run: Run, outcomes: list[Outcome]) -> Run:
    """Rank 0's run with every rank's pairs and skips, in canonical (key) order; with set metrics,
    every rank's pairs' Inception features (the rows a single process computes, so its FID/KID)."""
    names = run.layer_names
    run.pairs = sorted((_unpack(t, names) for o in outcomes for t in o.pairs), key=lambda p: p.key)
    run.skipped = sorted((Skipped(*s) for o in outcomes for s in o.skipped), key=lambda s: s.key)
    if run.set_features is not None:
        run.set_features = {k: f for o in outcomes for k, f in (o.set_features or {}).items()}
    return run


def first_error(outcomes: list[Outcome]) -> RankError | None:
    """The error of the lowest failing rank (shards are contiguous in key order, so the one a
    single process would have met first), or None."""
    for o in sorted(outcomes, key=lambda o: o.rank):
        if o.error is not None:
            return RankError(*o.error)
    return None


def _device(opts: Any, local_rank: int, local_world: int) -> Any:
    """``opts`` with this rank's device; on the CPU, this rank's share of the cores."""
    import torch  # lazy: keeps torch off the cheap paths (import hlcli, --help, reading runs)

    if opts.device in ("auto", "cuda") and torch.cuda.is_available():
        return replace(opts, device=f"cuda:{local_rank % torch.cuda.device_count()}")  # ranks may share a GPU
    if opts.device in ("auto", "cpu"):
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        torch.set_num_threads(max(1, cores // max(1, local_world)))
        return replace(opts, device="cpu")
    return opts


class _Group:
    """The gloo process group and this run's keys in the rendezvous store."""

    def __init__(self) -> None:
        import torch.distributed as dist  # lazy: keeps torch off the cheap paths (import hlcli, --help, reading runs)
        from torch.distributed.rendezvous import rendezvous  # lazy: keeps torch off the cheap paths (import hlcli, --help, reading runs)

        self.timeout = timeout_s()
        pg_timeout = timedelta(seconds=max(self.timeout, 60))  # ranks may start seconds apart
        store, self.rank, self.world = next(rendezvous("env://", timeout=pg_timeout))
        run_id = f"{os.environ.get('TORCHELASTIC_RUN_ID', 'hlcli')}/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}"
        dist.init_process_group(BACKEND, store=dist.PrefixStore(f"hlcli-pg/{run_id}", store), rank=self.rank,
                                world_size=self.world, timeout=pg_timeout)
        self.store = dist.PrefixStore(f"hlcli/{run_id}", store)

    def count(self, key: str, add: int = 0) -> int:
        return int(self.store.add(key, add))

    def wait_all_done(self, on_progress: Callable[[int], None]) -> None:
        """Wait in the store (not a collective) until every rank has finished scoring; give up
        when no rank has scored a pair for the timeout."""
        self.count("finished", 1)
        last, since = -1, time.monotonic()
        while self.count("finished") < self.world:
            done = self.count("done")
            if done != last:
                last, since = done, time.monotonic()
                on_progress(done)
            elif time.monotonic() - since > self.timeout:
                raise HlcliEnvironmentError(
                    f"no rank of the torchrun job made progress for {self.timeout:g} s", None,
                    f"a rank or node is lost; rerun, or raise ${TIMEOUT_ENV} if single pairs take that long")
            time.sleep(0.05)
        on_progress(self.count("done"))

    def gather(self, outcome: Outcome) -> list[Outcome] | None:
        import torch.distributed as dist  # lazy: keeps torch off the cheap paths (import hlcli, --help, reading runs)

        out: list[Any] | None = [None] * self.world if self.rank == 0 else None
        dist.gather_object(outcome, out, dst=0)
        return out

    def close(self) -> None:
        import torch.distributed as dist  # lazy: keeps torch off the cheap paths (import hlcli, --help, reading runs)

        if dist.is_initialized():
            dist.destroy_process_group()


def _score_rank(group: _Group, pairing: Any, opts: Any, inputs: dict[str, Any] | None,
                on_start: Callable[[Run, int], None] | None,
                on_progress: Callable[[int], None] | None) -> tuple[Run | None, Outcome]:
    """Score this rank's shard; every failure is caught into the outcome (and announced)."""
    from .scoring import score_pairing  # lazy: keeps PIL/numpy off the cheap paths (import hlcli, --help, reading runs)

    outcome = Outcome(group.rank)

    def on_pair(_: Any) -> None:
        done = group.count("done", 1)
        if on_progress is not None:
            on_progress(done)
        if group.count("failed"):
            raise _Aborted

    def start(run: Run, _: int) -> None:
        if on_start is not None:
            on_start(run, len(pairing.pairs))

    try:
        run = score_pairing(pairing, opts, inputs=inputs, on_start=start, on_pair=on_pair,
                            on_skip=on_pair, shard=ShardSelection(Shard(group.rank, group.world), record=False))
    except _Aborted:
        outcome.aborted = True
        return None, outcome
    except Exception as exc:  # noqa: BLE001 - any failure must reach rank 0, not hang the job
        group.count("failed", 1)
        outcome.error = ((exc.render(), exc.exit_code) if isinstance(exc, HlcliError) else
                         (f"internal error on rank {group.rank}: {type(exc).__name__}: {exc} (rerun with "
                          "--debug for a traceback and report it)", 3))
        if group.rank == 0:
            raise
        return None, outcome
    outcome.pairs = [_pack(p) for p in run.pairs]
    outcome.skipped = [(s.key, s.path, s.reason, s.exit_code, s.restored, s.gt) for s in run.skipped]
    outcome.set_features = run.set_features
    return run, outcome


def score_distributed(pairing: Any, opts: Any, *, inputs: dict[str, Any] | None = None,
                      on_start: Callable[[Run, int], None] | None = None,
                      on_progress: Callable[[int], None] | None = None) -> Run | None:
    """Score ``pairing`` across the torchrun job (see the module doc). On rank 0: the gathered
    :class:`Run`, or the error a single process would raise (``on_start(run, total)`` with all
    ranks' pair count, ``on_progress(done)`` with all ranks' pairs done so far); elsewhere None."""
    from . import batch as engine  # noqa: F401  (before torch: it enables the huge-page allocator, see there)

    group = _Group()
    try:
        opts = _device(opts, int(os.environ.get("LOCAL_RANK", group.rank)),
                       int(os.environ.get("LOCAL_WORLD_SIZE", group.world)))
        own_error: BaseException | None = None
        try:
            run, outcome = _score_rank(group, pairing, opts, inputs, on_start if group.rank == 0 else None,
                                       on_progress if group.rank == 0 else None)
        except Exception as exc:  # rank 0's own error, raised after the others are gathered
            own_error, run, outcome = exc, None, Outcome(0, error=(str(exc), 1))
        group.wait_all_done(on_progress if group.rank == 0 and on_progress else lambda n: None)
        outcomes = group.gather(outcome)
    finally:
        group.close()
    if group.rank != 0:
        return None
    if own_error is not None:
        raise own_error
    error = first_error(outcomes or [])
    if error is not None or run is None:
        raise error or HlcliEnvironmentError("rank 0 stopped without a result", None, "rerun")
    run = assemble(run, outcomes or [])
    run.environment["distributed"] = {"world_size": group.world, "backend": BACKEND}
    if run.set_features is not None:  # the small-set note of the whole run, as a single process's
        from .scoring import _warn_small_sets  # lazy: keeps PIL/numpy off the cheap paths (import hlcli, --help, reading runs)

        _warn_small_sets(run)
    return run
