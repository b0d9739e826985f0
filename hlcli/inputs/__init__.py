"""Inputs: files -> exact pixels -> pairs -> batches (images, pixels, diagnostics, pairing, groups,
loader). Imports only the ground floor (errors, text); no torch."""
