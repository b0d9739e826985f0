"""Rendering of every document hlcli writes, in one place: number and text formatting
(:mod:`.common`), score runs (:mod:`.score`), run comparisons (:mod:`.compare`) and gate results
(:mod:`.gate`). Writers take a text stream; nothing here prints on its own or computes a metric.

Numbers are written with Python's shortest round-trip ``repr`` in CSV/JSON/JSONL (so they parse
back bit for bit) and rounded only in tables and Markdown.
"""
