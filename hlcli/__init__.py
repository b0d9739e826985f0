"""hlcli: score restored images against ground truth with the hybrid loss
``L1 + lambda * sum_l w_l * perceptual_l`` (VGG-19 feature MSE).

Importing ``hlcli`` is cheap; torch is imported by the modules that need it:

>>> from hlcli.metrics import HybridLoss, l1, feature_mse   # differentiable loss and functions
>>> from hlcli.runner import ScoreOptions, score            # the CLI's scoring run
>>> from hlcli import weights                               # resolve / load VGG-19 weights
"""

__version__ = "0.1.0"
