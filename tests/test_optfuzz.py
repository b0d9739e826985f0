"""Option combinations as a fuzz target (issue 22 §5): a seeded random walk over every command's
options, read from the Click commands themselves (``tests/optfuzz.py``), over small real inputs,
in-process. No command line may end in an internal error, a traceback, an exception out of
Click or an exit code outside 0-3. The longer walk is ``benchmarks/optfuzz.py``."""

from __future__ import annotations

import os

import click
import pytest

from . import optfuzz

#: The seed of this run's walk: $HLCLI_OPTFUZZ_SEED, else a fixed one (printed on failure).
SEED = int(os.environ.get("HLCLI_OPTFUZZ_SEED", "22"))
LINES = 240


@pytest.fixture(scope="module")
def world(tmp_path_factory, weights_file):
    return optfuzz.make_world(tmp_path_factory.mktemp("optfuzz"), weights_file)


@pytest.mark.slow
def test_a_random_walk_over_every_commands_options(world, tmp_path):
    tally = optfuzz.walk(world, SEED, 0, LINES, tmp_path)
    report = "\n".join(f.describe() for f in tally.findings)
    assert not tally.findings, (f"seed {SEED}: {len(tally.findings)} of {tally.lines} command lines failed "
                                f"(replay one: python benchmarks/optfuzz.py --seed {SEED} --only N)\n{report}")
    assert tally.lines == LINES and set(tally.codes) <= optfuzz.EXIT_CODES
    assert tally.codes[0] > LINES // 5 and tally.codes[2] > LINES // 5  # plausible and wrong lines both


def test_every_command_and_option_is_walked():
    """The walk reads the commands from hlcli.cli: every leaf command but the skipped ones."""
    from hlcli.cli import cli

    cmds = optfuzz.commands()
    assert ("score",) in cmds and ("weights", "show") in cmds and ("weights", "download") not in cmds
    leaves = {name for name, c in cli.commands.items() if not isinstance(c, click.Group)}
    assert {w[0] for w in cmds if len(w) == 1} == leaves


def test_a_line_is_determined_by_seed_and_index(world, tmp_path):
    a = optfuzz.draw(world, 5, 17, tmp_path / "a")
    b = optfuzz.draw(world, 5, 17, tmp_path / "a")
    assert a == b and a != optfuzz.draw(world, 5, 18, tmp_path / "a")


def test_the_walk_flags_an_internal_error(world, tmp_path, monkeypatch):
    """The checker can fail: an exception inside a command is a finding."""
    import hlcli.cli.calibrate

    monkeypatch.setattr(hlcli.cli.calibrate, "calibrate_lambda", lambda *a, **k: 1 / 0)
    code, why, _ = optfuzz.check(world, ["calibrate", str(world.runs[0])])
    assert code == 3 and why == "internal error"
