"""Start-up: ``--help`` and ``--version`` stay instant (no torch import), ``python -m hlcli``,
``score --help`` lists every option, and the ``layers`` command lists VGG-19's 37 modules."""

from __future__ import annotations

import os
import subprocess
import sys

from click.testing import CliRunner

from hlcli import __version__
from hlcli.cli import cli

from .conftest import ROOT


def run_py(code: str, env=None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})}, timeout=120, **kw)


def test_help_and_version_do_not_import_torch():
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from hlcli.cli import cli\n"
        "for args in (['--help'], ['--version'], ['score', '--help'], ['weights', '--help'], ['layers']):\n"
        "    r = CliRunner().invoke(cli, args)\n"
        "    assert r.exit_code == 0, (args, r.output)\n"
        "print('torch' in sys.modules, 'torchvision' in sys.modules)\n"
    )
    assert run_py(code).stdout.strip() == "False False"


def test_python_dash_m_and_version():
    r = subprocess.run([sys.executable, "-m", "hlcli", "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == f"hlcli, version {__version__}"


def test_score_help_has_every_option():
    r = CliRunner().invoke(cli, ["score", "--help"])
    for opt in ("--lambda", "--layers", "--layer-weights", "--format", "--output", "--device", "--batch-size",
                "--workers", "--weights", "--offline", "--recursive", "--quiet", "--allow-missing", "--pairs",
                "--precision", "--on-error", "--size-mismatch", "--alpha", "--max-pixels"):
        assert opt in r.stdout, opt


def test_layers_command_lists_all_37():
    r = CliRunner().invoke(cli, ["layers"])
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 37
    assert lines[14].startswith("conv3_3  index 14  pre-relu") and "(default)" in lines[14]
    assert lines[36].startswith("pool5    index 36")
