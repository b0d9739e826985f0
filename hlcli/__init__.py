"""hlcli: score restored images against ground truth with the hybrid loss
``L1 + lambda * sum_l w_l * perceptual_l`` (VGG-19 feature MSE).

``import hlcli`` is the API, and it is cheap: each name below is imported from its module the
first time it is touched, so torch loads only when a name that needs it is used.

>>> import hlcli
>>> run = hlcli.score_dirs("samples/restored", "samples/gt", lam=0.05)   # doctest: +SKIP
>>> loss_fn = hlcli.HybridLoss(lam=0.05)                                 # doctest: +SKIP

See docs/python-api.md for every name, with examples.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

# name -> module that defines it (relative to this package)
_EXPORTS = {
    "score_dirs": "engine.scoring",
    "score_pairs": "engine.scoring",
    "score_models": "engine.sweep",
    "ScoreOptions": "engine.scoring",
    "Evaluator": "engine.evaluator",
    "Run": "runs.results",
    "PairResult": "runs.results",
    "Skipped": "runs.results",
    "Missing": "runs.results",
    "HybridLoss": "metrics.hybrid",
    "l1": "metrics.hybrid",
    "feature_mse": "metrics.hybrid",
    "perceptual": "metrics.hybrid",
    "hybrid": "metrics.hybrid",
    "load_weights": "nets.weights",
    "LoadedWeights": "nets.weights",
    "HlcliError": "errors",
    "InputError": "errors",
    "MissingFilesError": "errors",
    "HlcliEnvironmentError": "errors",
    "NonFiniteError": "errors",
    "calibrate_lambda": "analysis.calibrate",
    "tradeoff_runs": "analysis.tradeoff",
    "paper_table": "analysis.papertable",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hlcli' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # for type checkers and IDEs; never executed
    from .errors import HlcliEnvironmentError, HlcliError, InputError, MissingFilesError, NonFiniteError
    from .analysis.calibrate import calibrate_lambda
    from .analysis.papertable import paper_table
    from .analysis.tradeoff import tradeoff_runs
    from .metrics.hybrid import HybridLoss, feature_mse, hybrid, l1, perceptual
    from .runs.results import Missing, PairResult, Run, Skipped
    from .engine.scoring import ScoreOptions, score_dirs, score_pairs
    from .engine.evaluator import Evaluator
    from .engine.sweep import score_models
    from .nets.weights import LoadedWeights, load_weights
