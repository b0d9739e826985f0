"""The document fuzzer in the suite: seeded mutations of one real scored run, its shard part and
its maps index (``tests/docfuzz.py``), read by their readers and fed, in-process, to every
command that reads documents: report, compare, calibrate, tradeoff, table, merge (parts and
--baseline), --resume (rebuilding the run) and report --maps. 2,000 mutants per reader: half read
with jsonschema, half with its import blocked (the fallback checker applies the same schemas;
the cross-field checks are Python either way). Pass: exit 0, 1 or 2, never 3 or a traceback;
refusals one clean line; no raw control character on the terminal; no injected markup in a
report. benchmarks/docfuzz.py runs the same mutants by the hundred thousand (docs/inputs.md)."""

from __future__ import annotations

import sys
import time

import pytest

from . import docfuzz

PER_READER = 2000


@pytest.mark.parametrize("library", ["jsonschema", "without jsonschema"])
def test_document_fuzzer(scored_documents, tmp_path, monkeypatch, library):
    if library != "jsonschema":
        monkeypatch.setitem(sys.modules, "jsonschema", None)
    half = PER_READER * len(docfuzz.READERS) // 2
    start = 0 if library == "jsonschema" else half  # different mutants in each half
    began = time.perf_counter()
    tally = docfuzz.run_range(7, start, start + half, scored_documents, tmp_path)
    elapsed = time.perf_counter() - began
    assert not tally.findings, "\n".join(tally.findings[:20])
    assert sum(tally.mutants.values()) == half and min(tally.mutants.values()) >= half // 3
    commands = {command for command, _ in tally.exits}
    assert commands == {c for cs in docfuzz.COMMANDS.values() for c in cs}, commands
    assert all(tally.accepted[r] > 0 for r in docfuzz.READERS), tally.accepted  # some reach the commands
    assert {code for _, code in tally.exits} <= {0, 1, 2}
    print(f"{library}: {half} mutants in {elapsed:.1f} s; accepted {dict(tally.accepted)}")
