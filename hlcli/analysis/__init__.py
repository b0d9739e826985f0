"""Analysis: what is computed from stored runs (gates, compare, calibrate, tradeoff, the paper
table). Imports runs, metrics (the registry), inputs (groups) and the ground floor; no torch."""
