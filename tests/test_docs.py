"""The documentation stays true: docs/cli.md is what scripts/gen_cli_docs.py generates from the
``--help`` texts now, it shows every command and every option, the README stays short, and every
relative link in the README and in docs/ points at a file (and heading) that exists.

Modelled on sqlite-utils' tests/test_docs.py."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from hlcli.cli import cli
from tests.conftest import ROOT

README = ROOT / "README.md"
README_LIMIT = 12 * 1024  # bytes: details belong in docs/
DOCS = ROOT / "docs"
CLI_MD = DOCS / "cli.md"
SCRIPT = ROOT / "scripts" / "gen_cli_docs.py"
REGENERATE = "python scripts/gen_cli_docs.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("gen_cli_docs", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen_cli_docs = _load_script()


# -- the click tree, walked here independently of the script -----------------------------------

def _commands(command: click.Command, path: str = "hlcli"):
    yield path, command
    if isinstance(command, click.Group):
        ctx = click.Context(command, info_name=path.rsplit(" ", 1)[-1])
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                yield from _commands(sub, f"{path} {name}")


def _flags(option: click.Option) -> list[str]:
    """The long flags of an option (``--lambda``; both sides of ``--x/--no-x``), else its short ones."""
    names = [*option.opts, *option.secondary_opts]
    return [n for n in names if n.startswith("--")] or names


COMMANDS = dict(_commands(cli))
OPTIONS = [(path, flag) for path, command in COMMANDS.items() for param in command.params
           if isinstance(param, click.Option) and not param.hidden for flag in _flags(param)]


def _sections(text: str) -> dict[str, str]:
    """docs/cli.md cut at its ``## hlcli ...`` headings."""
    parts = re.split(r"^## (hlcli(?: \S+)*)\s*$", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


# -- docs/cli.md ---------------------------------------------------------------------------------

def test_cli_reference_is_current():
    assert CLI_MD.is_file(), f"docs/cli.md is missing: run `{REGENERATE}`"
    assert CLI_MD.read_text(encoding="utf-8") == gen_cli_docs.render(), \
        f"docs/cli.md is stale: run `{REGENERATE}`"


def test_check_option_reports_a_stale_file(tmp_path):
    page = tmp_path / "cli.md"
    page.write_text("stale\n", encoding="utf-8")

    def run(*args):
        return subprocess.run([sys.executable, str(SCRIPT), *args, "--output", str(page)],
                              capture_output=True, text=True, cwd=ROOT, timeout=120)

    res = run("--check")
    assert res.returncode == 1 and REGENERATE in res.stderr
    assert page.read_text(encoding="utf-8") == "stale\n"  # --check writes nothing
    assert run().returncode == 0
    assert page.read_text(encoding="utf-8") == gen_cli_docs.render()
    assert run("--check").returncode == 0


def test_cli_reference_help_does_not_depend_on_the_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")
    narrow = gen_cli_docs.render()
    monkeypatch.setenv("COLUMNS", "250")
    assert gen_cli_docs.render() == narrow


@pytest.mark.parametrize("command", list(COMMANDS))
def test_help_fits_80_columns(command):
    """Every --help, examples included (``\\b`` blocks are not rewrapped), fits an 80-column terminal."""
    from click.testing import CliRunner

    res = CliRunner().invoke(cli, [*command.split()[1:], "--help"], env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.output
    wide = [line for line in res.output.splitlines() if len(line) > 80]
    assert wide == [], f"`{command} --help` at 80 columns has lines wider than 80: {wide}"


def test_cli_reference_follows_the_groups_order():
    assert list(_sections(CLI_MD.read_text(encoding="utf-8"))) == list(COMMANDS)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_command_is_documented(command):
    sections = _sections(CLI_MD.read_text(encoding="utf-8"))
    assert command in sections, f"`{command}` has no section in docs/cli.md: run `{REGENERATE}`"
    assert f"Usage: {command} " in sections[command]


@pytest.mark.parametrize("command, flag", OPTIONS, ids=[f"{c}:{f}" for c, f in OPTIONS])
def test_option_is_documented(command, flag):
    section = _sections(CLI_MD.read_text(encoding="utf-8")).get(command, "")
    assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", section), \
        f"{flag} of `{command}` is not in docs/cli.md: run `{REGENERATE}`"


# -- README and links ----------------------------------------------------------------------------

def test_readme_is_short():
    size = len(README.read_bytes())
    assert size <= README_LIMIT, f"README.md is {size} bytes (limit {README_LIMIT}): move details to docs/"


FENCE = re.compile(r"^ {0,3}(```|~~~).*?^ {0,3}\1[^\n]*$", re.M | re.S)
INLINE_CODE = re.compile(r"(`+).+?\1", re.S)
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M)
HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def _prose(text: str) -> str:
    return INLINE_CODE.sub("", FENCE.sub("", text))


def _anchors(path: Path) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces to hyphens, -1, -2 for repeats."""
    seen: dict[str, int] = {}
    for heading in HEADING.findall(FENCE.sub("", path.read_text(encoding="utf-8"))):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        if n:
            seen[f"{slug}-{n}"] = 1
    return set(seen)


def _links() -> list[tuple[str, str]]:
    links = []
    for doc in [README, *sorted(DOCS.glob("*.md"))]:
        text = _prose(doc.read_text(encoding="utf-8"))
        for target in [*LINK.findall(text), *REFERENCE.findall(text)]:
            if not re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*:|//", target):  # http:, mailto:, ...
                links.append((doc.relative_to(ROOT).as_posix(), target))
    return links


LINKS = _links()


def test_readme_installs_for_users_first_and_docs_say_how_to_get_a_cpu_torch():
    """A user's install line (no test extras) comes before the developer's; docs/ give the CPU
    wheel index for machines without a GPU (the default torch wheels bundle CUDA, 5.7 GB)."""
    readme = (ROOT / "README.md").read_text()
    user, dev = readme.index("python -m pip install "), readme.index('pip install -e ".[test]"')
    assert user < dev and "[test]" not in readme[user:readme.index("\n", user)].split("#")[0]
    cpu = "pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu"
    assert cpu in (ROOT / "docs" / "performance.md").read_text() and cpu in readme


def test_the_docs_have_relative_links():
    assert any(doc == "README.md" and target.startswith("docs/cli.md") for doc, target in LINKS)


@pytest.mark.parametrize("doc, target", LINKS, ids=[f"{d}->{t}" for d, t in LINKS])
def test_relative_link_resolves(doc, target):
    path, _, fragment = target.partition("#")
    source = ROOT / doc
    dest = (source.parent / path).resolve() if path else source
    assert dest.exists(), f"{doc} links to {target}, but {dest.relative_to(ROOT)} does not exist"
    if fragment and dest.suffix == ".md":
        assert fragment in _anchors(dest), f"{doc} links to {target}: no such heading in {dest.name}"
