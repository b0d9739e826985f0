"""Bad input files, end to end through the CLI: every case of ``tests/cases.py``'s ``BAD`` (truncated
and corrupt files, decompression bombs, transparency without ``--alpha``, colour spaces and depths
that cannot be scored exactly, multi-frame files, missing plugins, sizes) is refused with exit 2
and one ``Error:`` line naming the file, or, with ``--on-error skip``, listed as a skip while the
good pairs are scored exactly as in a clean run. Also an unreadable file."""

from __future__ import annotations

import builtins
import io
import os

import pytest

from .cases import (AS_ROOT, BAD, COMMON, GOODS, SCORED, Bad, assert_one_line_error, assert_same_as_baseline,
                    baseline, case_dirs, env, invoke, params, ref_model, seed_of, strict_json, unreadable)

_FIXTURES = (baseline, env, ref_model)  # module-scoped fixtures shared from tests/cases.py


def test_corpus_is_large_enough():
    assert len(BAD) + len(SCORED) >= 30 and len(BAD) >= 30
    names = [c.name for c in BAD + SCORED]
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("case", params(BAD))
def test_bad_input_refused_clearly(case: Bad, env, baseline, tmp_path):
    r, g = case_dirs(tmp_path)
    rp, gp = case.make(r, g, case.name, seed_of(case.name))
    culprit = str(rp if case.culprit == "restored" else gp)

    # --on-error fail (the default): exit 2, one line naming the file, nothing on stdout
    res = invoke(env, r, g, *COMMON, "-f", "json")
    assert res.exit_code == 2, (res.exit_code, res.stderr)
    assert res.stdout == ""
    assert res.stderr.count("\n") == 1, res.stderr
    assert_one_line_error(res.stderr, culprit, *case.needles)

    # --on-error skip: still exit 2, the skip is in the document and on stderr, the good pairs
    # are scored exactly as in a clean run
    res = invoke(env, r, g, *COMMON, "-f", "json", "--on-error", "skip")
    assert res.exit_code == 2, (res.exit_code, res.stderr)
    doc = strict_json(res.stdout)
    assert [s["key"] for s in doc["skipped"]] == [case.name]
    skip = doc["skipped"][0]
    assert skip["path"] == culprit and skip["exit_code"] == 2
    assert all(n in skip["reason"] for n in case.needles), skip["reason"]
    assert "\n" not in skip["reason"]
    assert doc["complete"] is False
    assert doc["summary"]["skipped"] == 1 and doc["summary"]["count"] == len(GOODS)
    assert sorted(p["key"] for p in doc["pairs"]) == sorted(GOODS)
    assert_same_as_baseline(doc, baseline)
    assert "Traceback" not in res.stderr
    assert res.stderr.splitlines() == [
        f"Warning: skipped {case.name}: {skip['reason']}",
        "Error: 1 pair skipped: the result is incomplete (pass --allow-skips to accept that)",
    ]


def test_unreadable_file_is_refused_naming_it(env, baseline, tmp_path, monkeypatch):
    """chmod 000; as root (who reads any file) the open itself is made to fail the same way."""
    r, g = case_dirs(tmp_path)
    rp, _ = unreadable(r, g, "locked", 1)
    if AS_ROOT:
        real_open = builtins.open

        def guarded(file, *args, **kwargs):
            if isinstance(file, (str, os.PathLike)) and os.fspath(file) == str(rp):
                raise PermissionError(13, "Permission denied", str(rp))
            return real_open(file, *args, **kwargs)

        real_fileio = io.FileIO

        def guarded_fileio(file, *args, **kwargs):  # the decoder may open files through io.FileIO
            if isinstance(file, (str, os.PathLike)) and os.fspath(file) == str(rp):
                raise PermissionError(13, "Permission denied", str(rp))
            return real_fileio(file, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", guarded)
        monkeypatch.setattr(io, "FileIO", guarded_fileio)
    res = invoke(env, r, g, *COMMON, "-f", "json")
    assert res.exit_code == 2 and res.stdout == ""
    assert_one_line_error(res.stderr, str(rp), "permission denied", "make the file readable")
    res = invoke(env, r, g, *COMMON, "-f", "json", "--on-error", "skip")
    assert res.exit_code == 2
    doc = strict_json(res.stdout)
    assert [(s["key"], s["path"]) for s in doc["skipped"]] == [("locked", str(rp))]
    assert_same_as_baseline(doc, baseline)
