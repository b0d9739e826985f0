"""Inputs: files -> exact pixels -> pairs -> batches (images, pixels, diagnostics, pairing, groups,
loader). Imports only the ground floor (errors, text); torch only inside the loader's functions
that build the batches."""
