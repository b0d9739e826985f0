"""Rendering of every document hlcli writes, in one place: number and text formatting
(:mod:`.common`), terminal tables that never cut a number (:mod:`.table`), score runs
(:mod:`.score`), gate results (:mod:`.gate`), run comparisons (:mod:`.compare`), λ calibration
(:mod:`.calibrate`), trade-offs between runs and their plot (:mod:`.tradeoff`), the paper table
(:mod:`.papertable`), ``hlcli info`` (:mod:`.info`) and the HTML report (:mod:`.html`, with
:mod:`.html_media` and :mod:`.html_assets`). Writers take a text stream; nothing here prints on
its own or computes a metric.

Numbers are written with Python's shortest round-trip ``repr`` in CSV/JSON/JSONL (so they parse
back bit for bit) and rounded only in tables and Markdown.
"""
