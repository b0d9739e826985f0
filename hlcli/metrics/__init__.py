"""The metrics: the registry of definitions (:mod:`~hlcli.metrics.registry`) and one module per
metric family (the hybrid's L1 and VGG terms, PSNR/SSIM, LPIPS). A new metric is one file here and
one registry entry (docs/development.md, "How to add a metric"). Imports nets and the ground floor."""
