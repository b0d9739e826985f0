"""Atomic output files: complete or absent, and as readable as a plain write would make them."""

from __future__ import annotations

import os
import stat

import pytest

from hlcli.atomic import atomic_path


def test_replaces_only_on_success_with_normal_permissions(tmp_path):
    target = tmp_path / "report.json"
    old = os.umask(0o022)
    try:
        with atomic_path(target) as tmp:
            tmp.write_text("done")
    finally:
        os.umask(old)
    assert target.read_text() == "done"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644  # not mkstemp's private 0600
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError
    assert target.read_text() == "done" and sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]
