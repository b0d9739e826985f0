"""The engine: one scoring run (options, device and precision, the batch scorer, sweeps, shards,
torchrun, what the machine offers). Imports runs, metrics, nets, inputs and the ground floor."""
