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
    "score_dirs": "scoring",
    "score_pairs": "scoring",
    "score_models": "sweep",
    "ScoreOptions": "scoring",
    "Run": "results",
    "PairResult": "results",
    "Skipped": "results",
    "Missing": "results",
    "HybridLoss": "metrics",
    "l1": "metrics",
    "feature_mse": "metrics",
    "perceptual": "metrics",
    "hybrid": "metrics",
    "load_weights": "weights",
    "LoadedWeights": "weights",
    "HlcliError": "errors",
    "InputError": "errors",
    "MissingFilesError": "errors",
    "HlcliEnvironmentError": "errors",
    "NonFiniteError": "errors",
    "calibrate_lambda": "calibrate",
    "tradeoff_runs": "tradeoff",
    "paper_table": "papertable",
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
    from .calibrate import calibrate_lambda
    from .papertable import paper_table
    from .tradeoff import tradeoff_runs
    from .metrics import HybridLoss, feature_mse, hybrid, l1, perceptual
    from .results import Missing, PairResult, Run, Skipped
    from .scoring import ScoreOptions, score_dirs, score_pairs
    from .sweep import score_models
    from .weights import LoadedWeights, load_weights
