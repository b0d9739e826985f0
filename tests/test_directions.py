"""No help text or doc page states a direction or a list of metrics that the registry
(hlcli/metrics/registry.py) contradicts (issue 22 §2).

The checker reads every command's ``--help`` and README.md, docs/*.md, splits them into
clauses, and checks:

* **direction claims**: a clause saying "lower is better" / "higher-is-better" / "↑" … and
  naming metrics (by name or label: ``psnr``, ``PSNR-Y``, ``L1``, "the layers") must agree with
  each named metric's ``higher_is_better`` (each metric is judged by the nearest direction
  phrase in its clause); a clause that gives one direction to *every* metric ("for every metric
  (lower is better)") is wrong as long as the registry has both;
* **best / worst words**: "the highest PSNR" beside "best", "the lowest PSNR" beside "worst"
  must follow the direction too;
* **worsening words**: a clause about regression limits that says metrics *rise* must either
  name only lower-is-better metrics or also say *drop* (a PSNR regression is a drop);
* **complete lists**: a clause that enumerates the metrics a command accepts (l1, perceptual,
  hybrid and the layers) must also name every metric of :data:`hlcli.metrics.registry.EXTRA` or say
  where they come from (``--metrics``); a list of three or more extra metrics must be all of
  them unless it is marked as an example (e.g., …, such as).

The checker is tested on sentences it must refuse (the issue's), so that it cannot pass by
matching nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from hlcli.metrics import registry as metricdefs
from hlcli.cli import cli
from tests.conftest import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_NAMED = [*metricdefs.BASE, *metricdefs.EXTRA]
# every way a metric is written in prose -> its name; "layer(s)" stands for the VGG-19 layers
_ALIASES: dict[str, str] = {}
for _n in _NAMED:
    _ALIASES[_n.lower()] = _n
    _ALIASES[metricdefs.get(_n).label.lower()] = _n
    _ALIASES[_n.replace("_", "-").lower()] = _n
for _layer in ("layer", "layers", "conv3_3", "conv4_3", "conv5_4", "relu2_2", "relu3_3"):
    _ALIASES[_layer] = "conv3_3"
_METRIC_RE = re.compile(r"(?<![\w.=/-])(" + "|".join(sorted(map(re.escape, _ALIASES), key=len, reverse=True))
                        + r")(?![\w/]|-(?!is-|to-)\w)", re.IGNORECASE)
_DIRECTION_RE = re.compile(r"(lower|higher)[- ]is[- ]better|(↑)|(↓)", re.IGNORECASE)
_UNIVERSAL_RE = re.compile(r"\b(every|each|all|any) (other )?(metric|metrics|column)\b", re.IGNORECASE)
_EXAMPLE_RE = re.compile(r"e\.g\.|such as|for example|\.\.\.|…|example", re.IGNORECASE)
_RISE_RE = re.compile(r"\b(rises?|rising)\b", re.IGNORECASE)
_REGRESSION_RE = re.compile(r"regress|allowance|allowed|--max-(pair-)?regression|\blimit", re.IGNORECASE)


@dataclass(frozen=True)
class Problem:
    where: str
    clause: str
    why: str

    def __str__(self) -> str:
        return f"{self.where}: {self.why}: {self.clause!r}"


def clauses(text: str, *, markdown: bool = False) -> list[str]:
    """Sentences and semicolon clauses, whitespace folded; code dropped (fenced and, in
    Markdown, indented blocks: commands and their output are examples, not claims)."""
    text = re.sub(r"```.*?```", " ", text, flags=re.S)
    if markdown:
        text = re.sub(r"(?m)(^\s*\n)((?: {4}.*\n?)+)", r"\1", text)
    text = text.replace("`", "")
    out = []
    for block in re.split(r"\n\s*\n|\n(?=\s*[-*|#] )|\n(?=\s{2}-)", text):
        flat = " ".join(block.split()).replace("**", "")
        out += [c.strip() for c in re.split(r"(?<=[.!?])\s+(?=[A-Z(*])|;\s+|:\s+(?=[A-Z])", flat) if c.strip()]
    return out


def _mentions(clause: str) -> list[tuple[int, str]]:
    return [(m.start(), _ALIASES[m.group(1).lower()]) for m in _METRIC_RE.finditer(clause)]


_SEPARATOR = re.compile(r"^(?:[\s,]|\band\b|\bor\b|\bthe\b|\beach\b)*$", re.IGNORECASE)
_AFTER = re.compile(r"^\s*(?:(?:metric|metrics|one|ones)\s*)?[:(]\s*$|^,?\s*as is\s*$", re.IGNORECASE)
_BEFORE = re.compile(r"^\s*(?:(?:is|are)\s*)?$", re.IGNORECASE)


def _runs(clause: str) -> list[tuple[int, int, list[str]]]:
    """Lists of metric mentions: (start, end, names), consecutive mentions joined by commas,
    'and', 'or', 'the'."""
    runs: list[tuple[int, int, list[str]]] = []
    for m in _METRIC_RE.finditer(clause):
        name = _ALIASES[m.group(1).lower()]
        if runs and _SEPARATOR.match(clause[runs[-1][1]:m.start()]):
            start, _, names = runs[-1]
            runs[-1] = (start, m.end(), [*names, name])
        else:
            runs.append((m.start(), m.end(), [name]))
    return runs


def _governed(clause: str) -> list[tuple[str, bool, str]]:
    """(metric, claimed higher_is_better, phrase) for each metric a direction phrase speaks of:
    the list right after it ("higher is better: psnr, ssim", "a lower-is-better metric (L1, …)",
    "…, as is L1") or right before it ("PSNR and SSIM are higher-is-better", "hybrid↓")."""
    runs = _runs(clause)
    out = []
    for d in _DIRECTION_RE.finditer(clause):
        higher = (d.group(1) or "").lower() == "higher" or d.group(2) is not None
        arrow = d.group(1) is None
        for start, end, names in runs:
            after = start >= d.end() and _AFTER.match(clause[d.end():start]) and not arrow
            before = end <= d.start() and (clause[end:d.start()] == "" if arrow else _BEFORE.match(clause[end:d.start()]))
            if after or before:
                out += [(n, higher, d.group(0)) for n in names]
    return out


_UNIVERSAL = re.compile(r"\b(?:every|each|all)(?: the)? metrics?\b\W{0,3}(?:(?:is|are) )?(lower|higher)[- ]is[- ]better",
                        re.IGNORECASE)
_LISTING = re.compile(r"\bMETRIC\b|--sort|--by|\bpicks\b|\bamong\b|\bone of\b|\baccepts?\b")
_RISE_CLAIM = re.compile(r"rises? by more than|may rise|allowed rise|allows? (?:a |no )?rise|how much .{0,30}\brise",
                         re.IGNORECASE)


def _family(name: str) -> str:
    return metricdefs.get(name).label.split("-")[0].lower()


def _complete(extras: list[str]) -> bool:
    """Every extra metric by name, or every family by its plain name ("PSNR, SSIM and LPIPS"
    speaks of the families; naming one variant, ``psnr_y``, asks for all of them)."""
    if set(extras) == set(metricdefs.EXTRA):
        return True
    families = {_family(n) for n in metricdefs.EXTRA}
    return set(extras) == {n for n in metricdefs.EXTRA if n in families} and {_family(n) for n in extras} == families


def check_clause(clause: str, where: str) -> list[Problem]:
    problems = []
    m = _UNIVERSAL.search(clause)
    if m and len({metricdefs.get(n).higher_is_better for n in _NAMED}) == 2:
        problems.append(Problem(where, clause, f"says every metric is {m.group(1).lower()}-is-better, but the "
                                               "registry has both directions"))
    for name, claimed, phrase in _governed(clause):
        if claimed != metricdefs.get(name).higher_is_better:
            problems.append(Problem(where, clause, f"'{phrase}' for {name}, which is "
                                                   f"{metricdefs.get(name).direction}-is-better"))
    for m in re.finditer(r"\b(best|worst|wins?)\b[^.;]{0,40}?\b(highest|lowest|higher|lower)\s+(\S+)", clause,
                         re.IGNORECASE):
        token = m.group(3).strip("`,.()").lower()
        if token in _ALIASES:
            good = m.group(1).lower() != "worst"
            high = m.group(2).lower().startswith("high")
            if (high == good) != metricdefs.get(_ALIASES[token]).higher_is_better:
                problems.append(Problem(where, clause, f"'{m.group(0)}' contradicts {_ALIASES[token]}'s direction"))
    named = {n for _, n in _mentions(clause)}
    if _RISE_CLAIM.search(clause) and not re.search(r"\bdrops?\b", clause, re.I):
        if not named or any(metricdefs.get(n).higher_is_better for n in named):
            problems.append(Problem(where, clause, "says a regression is a rise, but for a higher-is-better "
                                                   "metric it is a drop"))
    extras = [n for n in metricdefs.EXTRA if n in named]
    if set(metricdefs.BASE) <= named and re.search(r"\blayers?\b", clause, re.I) and _LISTING.search(clause) \
            and set(extras) != set(metricdefs.EXTRA) and not re.search(r"extra metric", clause, re.I):
        problems.append(Problem(where, clause, "lists the metrics it accepts without the extra ones "
                                               f"({', '.join(metricdefs.EXTRA)})"))
    # A list of what --metrics offers names three or more of them, or says it lists ("one of",
    # "among"); "--metrics fid or kid" and "--metrics niqe ... DISTS" speak of those metrics only.
    if len(extras) >= 2 and (len(extras) >= 3 or _LISTING.search(clause)) and not _complete(extras) \
            and re.search(r"--metrics|extra metrics|opt-in", clause) \
            and not _EXAMPLE_RE.search(clause) and not re.search(r"\w,\w", clause):
        problems.append(Problem(where, clause, f"lists the extra metrics without {sorted(set(metricdefs.EXTRA) - set(extras))}"))
    return problems


def check_text(text: str, where: str, *, markdown: bool = False) -> list[Problem]:
    return [p for c in clauses(text, markdown=markdown) for p in check_clause(c, where)]


def _help_texts() -> list[tuple[str, str]]:
    out = []

    def walk(command: click.Command, path: list[str]) -> None:
        result = CliRunner().invoke(cli, [*path, "--help"], terminal_width=100)
        assert result.exit_code == 0, result.output
        # Click wraps option help: unwrap it into one paragraph per option
        text = re.sub(r"\n\s{20,}", " ", result.output)
        out.append(("hlcli " + " ".join(path) + " --help", text.replace("\n  -", "\n\n  -")))
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                walk(sub, [*path, name])

    walk(cli, [])
    return out


# -- the checker refuses what the issue found, and accepts the true statements --------------

WRONG = [
    "For every metric (lower is better) and every pair in both: B wins, loses or ties against A.",
    "Values are means over the pairs every run has. Every metric is lower-is-better: the lowest value is bold.",
    "METRIC: l1, perceptual, hybrid or a scored layer; OP: > >= < <= == !=.",
    "--sort METRIC  Table: order of the pairs, highest first (l1, perceptual, hybrid, a layer, or 'key').",
    "With --baseline: exit 1 if a pair or the mean rises by more than VALUE (absolute) or VALUE% (relative).",
    "PSNR is lower-is-better, as is L1.",
    "SSIM and LPIPS are higher-is-better.",
    "The best of a column is the lowest PSNR.",
    "--metrics LIST  Extra metrics computed in the same pass: psnr, ssim, lpips, lpips_vgg.",
    "For every metric (lower is better): the difference is B − A.",
    "A relative limit allows no rise from 0.",
    "PSNR is lower-is-better, as is LPIPS-VGG.",
    "hybrid↓ and PSNR↓ columns",
    "PSNR, SSIM-Y and LPIPS (--metrics)",
]
RIGHT = [
    "PSNR and SSIM are higher-is-better; L1, the layers, perceptual, hybrid and LPIPS lower-is-better.",
    "↑ higher is better: psnr, psnr_y, ssim, ssim_y; every other metric ↓ lower",
    "The best of a column is the highest PSNR and the lowest LPIPS.",
    "--max-regression psnr=0.05 allows a drop of 0.05 dB; a rise is never a regression.",
    f"Columns: l1, perceptual, hybrid, the runs' layers, or one of {', '.join(metricdefs.EXTRA)}.",
    "hlcli table a.json --metrics psnr_y,ssim_y,lpips,hybrid -f latex",
    "The extra metrics (e.g. psnr, ssim_y, lpips) are opt-in.",
    "PSNR, SSIM, LPIPS, DISTS, NIQE, FID and KID (--metrics), exact to their references",
    "a rise of a lower-is-better metric (L1, the layers, perceptual, hybrid, LPIPS), a drop of a higher-is-better one "
    "(PSNR, SSIM)",
    "↑ marks a higher-is-better metric, PSNR is in dB, hybrid↓ and PSNR↑ dB",
    "a rise of PSNR or SSIM is never a regression, as a fall of L1 is not.",
]


@pytest.mark.parametrize("text", WRONG)
def test_checker_refuses_what_the_registry_contradicts(text):
    assert check_text(text, "sample"), text


@pytest.mark.parametrize("text", RIGHT)
def test_checker_accepts_what_is_true(text):
    assert check_text(text, "sample") == []


def test_checker_reads_the_registry(monkeypatch):
    """Turn PSNR around in the registry and a true sentence becomes false."""
    import dataclasses

    flipped = dataclasses.replace(metricdefs.get("psnr"), higher_is_better=False)
    monkeypatch.setitem(metricdefs._BY_NAME, "psnr", flipped)
    assert check_text("PSNR and SSIM are higher-is-better.", "sample")


# -- the real texts -----------------------------------------------------------------------------

def test_every_help_text_agrees_with_the_registry():
    texts = _help_texts()
    assert len(texts) >= 10 and any("higher is better" in t for _, t in texts)  # it read what it checks
    problems = [p for where, text in texts for p in check_text(text, where)]
    assert not problems, "\n".join(map(str, problems))


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_doc_page_agrees_with_the_registry(path: Path):
    problems = check_text(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)), markdown=True)
    assert not problems, "\n".join(map(str, problems))
