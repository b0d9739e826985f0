"""Mutation fuzzing of the documents hlcli reads back: seeded mutations of real documents
(``tests/docfixtures.py``), fed to every command that reads them, in-process.

Mutant ``i`` of a run with seed ``S`` is fully determined by ``(S, i)``: which document
(a score run, a shard part, a maps index), which command reads it, and one to three mutations
(deleted keys, wrong types, extra keys, duplicated pairs and keys, hostile strings, huge or
non-finite numbers, truncated or corrupted bytes). Used by ``tests/test_docfuzz.py`` (a few
thousand per reader) and ``benchmarks/docfuzz.py`` (hundreds of thousands).

A mutant passes when: the reader either accepts it or refuses it with a ``DocumentError``
(one line, no raw control characters); a command fed with it exits 0, 1 or 2 (never 3, never a
traceback); nothing it prints on the terminal holds a raw control character; an HTML report made
from it holds none of the injected markup unescaped.
"""

from __future__ import annotations

import contextlib
import copy
import json
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from click.testing import CliRunner

MARKER = "HLFUZZ"
HOSTILE = [
    f"[red]{MARKER}[/red]", f"[link=file:///etc/passwd]{MARKER}[/link]", f"<script>{MARKER}</script>",
    f"<img src=x onerror=alert('{MARKER}')>", f"\x1b[31m{MARKER}\x1b[0m", f"{MARKER}\x07\x08\r", f"{MARKER}\u202egpj.exe",
    "../../etc/passwd", f"{MARKER}\x00nul", "a\nb", "", " ", "%s%n{0}{}", "'\"&<>`", "\ud800", "\u2028x\u2029",
    "x" * 5000, "conv3_3", "l1", "hybrid", "NaN", "null", "settings", "set5/a",
]
NUMBERS = [0, -1, 1, -0.0, 0.5, 1e-320, 5e-324, 1e300, -1e300, 1e99, 1e101, 2 ** 63, 2 ** 70, 10 ** 40, float("inf"),
           float("-inf"), float("nan"), 1.0, 3, 1e16 + 1, 1 + 2 ** -51, -1 - 2 ** -51, 1.000000002, -1e-17]
OTHERS = [None, True, False, [], {}, [1, 2], {"a": 1}, "x"]


def _paths(doc: Any, limit: int = 4000) -> list[list[Any]]:
    out: list[list[Any]] = []
    stack: list[tuple[list[Any], Any]] = [([], doc)]
    while stack and len(out) < limit:
        where, value = stack.pop()
        out.append(where)
        if isinstance(value, dict):
            stack.extend(([*where, k], v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend(([*where, i], v) for i, v in enumerate(value))
    return out


def _get(doc: Any, where: list[Any]) -> Any:
    for part in where:
        doc = doc[part]
    return doc


FREE_TEXT = {"restored", "gt", "path", "reason", "platform", "hlcli_version", "expression", "baseline", "key",
             "command", "gt_only", "restored_only", "ignored", "versions", "colormap", "upsampling", "group"}


def _benign(rng: random.Random, doc: Any, paths: list[list[Any]]) -> tuple[Any, str]:
    """A change that keeps the document's shape: a hostile string where hlcli stores free text
    (keys, paths, reasons, the command, versions), or a number scaled within its range."""
    free = [p for p in paths if p and isinstance(_get(doc, p), str)
            and any(isinstance(part, str) and part in FREE_TEXT for part in p[-2:])]
    numbers = [p for p in paths if p and isinstance(_get(doc, p), (int, float)) and not isinstance(_get(doc, p), bool)]
    if free and (rng.random() < 0.6 or not numbers):
        where = rng.choice(free)
        old = _get(doc, where)
        hostile = rng.choice(HOSTILE[:14])
        _get(doc, where[:-1])[where[-1]] = (old.rsplit("/", 1)[0] + "/" + hostile) if "/" in old else hostile
        return doc, "benign-text"
    if numbers:
        where = rng.choice(numbers)
        old = _get(doc, where)
        new = rng.choice([0, old * rng.uniform(0, 10), old + 1]) if isinstance(old, float) else rng.choice([0, old + 1])
        _get(doc, where[:-1])[where[-1]] = new
    return doc, "benign-number"


def _mutate_tree(rng: random.Random, doc: Any) -> tuple[Any, str]:
    paths = _paths(doc)
    if rng.random() < 0.18:
        return _benign(rng, doc, paths)
    where = rng.choice(paths[1:] or paths)
    parent = _get(doc, where[:-1]) if where else None
    last = where[-1] if where else None
    op = rng.choice(["delete", "type", "number", "string", "extra", "duplicate", "rename", "swap", "version",
                     "layer", "empty"])
    if op == "version" and isinstance(doc, dict):
        key = "version" if doc.get("kind") == "maps" else "schema_version"
        doc[key] = rng.choice([2, 0, 99, "1", 1.0, None, -1, 10 ** 30])
        return doc, op
    if op == "layer" and isinstance(doc, dict) and isinstance(doc.get("pairs"), list) and doc["pairs"]:
        pair = rng.choice(doc["pairs"])
        if isinstance(pair, dict) and isinstance(pair.get("layers"), dict) and pair["layers"]:
            name = rng.choice(list(pair["layers"]))
            value = pair["layers"].pop(name)
            if rng.random() < 0.5:
                pair["layers"][rng.choice(["conv4_3", "relu1_1", "pool5", name.upper(), "x"])] = value
        return doc, op
    if parent is None:
        return rng.choice([[], None, 1, "x", [doc]]), "root"
    if op == "delete":
        del parent[last]
    elif op == "type":
        parent[last] = rng.choice(OTHERS + NUMBERS[:3] + HOSTILE[:3])
    elif op == "number":
        parent[last] = rng.choice(NUMBERS)
    elif op == "string":
        if isinstance(parent, dict) and rng.random() < 0.4:
            parent[rng.choice(HOSTILE)] = parent.pop(last)
        else:
            parent[last] = rng.choice(HOSTILE)
    elif op == "extra":
        target = _get(doc, where) if isinstance(_get(doc, where), (dict, list)) else parent
        value = rng.choice(OTHERS + HOSTILE + NUMBERS)
        if isinstance(target, dict):
            target[rng.choice(HOSTILE + ["extra", "metrics", "group", "shard", "summary_only"])] = value
        else:
            target.append(copy.deepcopy(rng.choice(target)) if target and rng.random() < 0.5 else value)
    elif op == "duplicate":
        if isinstance(parent, list):
            parent.insert(rng.randrange(len(parent) + 1), copy.deepcopy(parent[last]))
        elif isinstance(doc, dict) and isinstance(doc.get("pairs"), list) and doc["pairs"]:
            doc["pairs"].append(copy.deepcopy(rng.choice(doc["pairs"])))
    elif op == "rename" and isinstance(parent, dict):
        parent[rng.choice(list(parent))] = parent.pop(last) if len(parent) > 1 else parent[last]
    elif op == "swap":
        other = rng.choice(paths[1:])
        try:
            a, b = _get(doc, where), _get(doc, other)
            parent[last], _get(doc, other[:-1])[other[-1]] = copy.deepcopy(b), copy.deepcopy(a)
        except (KeyError, IndexError, TypeError):
            pass
    elif op == "empty":
        value = _get(doc, where)
        if isinstance(value, (dict, list)):
            value.clear()
    return doc, op


def _dumps(doc: Any, rng: random.Random) -> bytes:
    text = json.dumps(doc, indent=2 if rng.random() < 0.1 else None, ensure_ascii=rng.random() < 0.5, allow_nan=True)
    return text.encode("utf-8", "surrogatepass")


def _mutate_bytes(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    op = rng.choice(["truncate", "flip", "insert", "cut", "dupkey", "bom", "utf16", "empty", "garbage", "deep"])
    n = len(data)
    if op == "truncate":
        return data[: rng.randrange(n)], op
    if op == "flip":
        buf = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            buf[rng.randrange(n)] = rng.randrange(256)
        return bytes(buf), op
    if op == "insert":
        at = rng.randrange(n)
        return data[:at] + rng.choice([b"NaN", b"Infinity", b"-Infinity", b"1e999", b"\xff\xfe", b"\x00", b",",
                                       b"}", b"]", b"\"", b"9" * 5000, b"\\ud800"]) + data[at:], op
    if op == "cut":
        a = rng.randrange(n)
        return data[:a] + data[a + rng.randint(1, 200):], op
    if op == "dupkey":
        keys = [m.start() for m in re.finditer(rb'"[A-Za-z_0-9/]+": ', data)]
        if keys:
            at = rng.choice(keys)
            end = data.find(b",", at)
            if end > 0:
                return data[:end + 1] + data[at:end + 1] + data[end + 1:], op
        return data, op
    if op == "bom":
        return b"\xef\xbb\xbf" + data, op
    if op == "utf16":
        return data.decode("utf-8", "replace").encode("utf-16"), op
    if op == "empty":
        return rng.choice([b"", b"   \n", b"null", b"[]", b"{}", b"0", b"\"x\""]), op
    if op == "deep":
        depth = rng.choice([70, 500, 5000, 100000])
        return b'{"schema_version": 1, "settings": ' + b"[" * depth + b"]" * depth + b"}", op
    return bytes(rng.randrange(256) for _ in range(rng.randint(1, 64))), op


def mutate(rng: random.Random, text: str) -> tuple[bytes, list[str]]:
    """One mutant of the document ``text``, and the names of the mutations applied."""
    doc, ops = json.loads(text), []
    for _ in range(rng.choice([1, 1, 2, 3])):
        doc, op = _mutate_tree(rng, doc)
        ops.append(op)
    data = _dumps(doc, rng)
    if rng.random() < 0.25:
        data, op = _mutate_bytes(rng, data)
        ops.append(op)
    return data, ops


# -- running ------------------------------------------------------------------------------------------

READERS = ("score", "part", "maps")
COMMANDS = {"score": ("report", "compare", "calibrate", "tradeoff", "table", "baseline"),
            "part": ("merge", "resume"), "maps": ("report-maps",)}


@dataclass
class Tally:
    mutants: Counter = field(default_factory=Counter)  # per reader
    accepted: Counter = field(default_factory=Counter)  # per reader: passed the reader
    exits: Counter = field(default_factory=Counter)  # (command, exit code)
    findings: list[str] = field(default_factory=list)

    def add(self, other: "Tally") -> None:
        self.mutants += other.mutants
        self.accepted += other.accepted
        self.exits += other.exits
        self.findings += other.findings


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _argv(command: str, mutant: Path, docs: dict[str, Any], out: Path) -> list[str]:
    root = docs["root"]
    run, baseline = str(root / "run.json"), str(root / "baseline.json")
    m = str(mutant)
    return {
        "report": ["report", m, "-o", str(out), "--top", "2", "--thumb-size", "16", "--images", "link"],
        "compare": ["compare", m, run, "-f", "table"],
        "calibrate": ["calibrate", m, "-f", "json"],
        "tradeoff": ["tradeoff", m, baseline, "-f", "json"],
        "table": ["table", m, baseline, "-f", "markdown", "--group-by", "top"],
        "baseline": ["merge", str(root / "part0.json"), str(root / "part1.json"), "-f", "json", "--allow-skips",
                     "--baseline", m, "--max-regression", "10%"],
        "merge": ["merge", m, str(root / "part1.json"), "-f", "table" if "table" in mutant.name else "json", "--allow-skips"],
        "report-maps": ["report", run, "--maps", str(mutant.parent), "-o", str(out), "--top", "2",
                        "--thumb-size", "16", "--images", "link"],
    }[command]


def _read(reader: str, path: Path) -> Any:
    from hlcli.runs import readers

    if reader == "score":
        return readers.read_score(path)
    if reader == "part":
        return readers.read_part(path)
    return readers.read_maps_index(path.parent)


def _resume(doc: dict[str, Any]) -> None:
    """What ``score --resume`` does with an accepted part, short of scoring: rebuild the run and
    write its document."""
    from hlcli.engine.sharding import part_problems, run_from_document

    part_problems(doc)
    run = run_from_document(doc)
    json.dumps(run.document(), allow_nan=False)


def run_one(seed: int, index: int, docs: dict[str, Any], work: Path, *, cli_every: int = 80) -> Tally:
    """Make mutant ``index`` of ``seed``, read it and feed it to its command; count what happened."""
    from hlcli.errors import InputError
    from hlcli.runs.jsondoc import DocumentError

    tally = Tally()
    rng = random.Random(f"{seed}:{index}")
    reader = READERS[index % len(READERS)]
    command = rng.choice(COMMANDS[reader])
    source = {"score": docs["run"], "part": docs["part0"], "maps": docs["maps"]}[reader]
    data, ops = mutate(rng, source)
    where = work / ("maps" if reader == "maps" else "docs")
    where.mkdir(parents=True, exist_ok=True)
    mutant = where / ("maps.json" if reader == "maps" else "mutant-table.json" if (index // 3) % 3 == 0 else "mutant.json")
    mutant.write_bytes(data)
    tag = f"seed {seed} mutant {index} ({reader}, {command}, {'+'.join(ops)})"
    tally.mutants[reader] += 1
    accepted = False
    try:
        doc = _read(reader, mutant)
        accepted = True
        tally.accepted[reader] += 1
    except DocumentError as err:
        text = err.render()
        if "\n" in text or _CONTROL.search(text):
            tally.findings.append(f"{tag}: the refusal is not one clean line: {text[:200]!r}")
    except InputError:
        pass
    except Exception as exc:  # noqa: BLE001 - a finding
        tally.findings.append(f"{tag}: reader raised {type(exc).__name__}: {str(exc)[:200]}")
        return tally
    if command == "resume":
        if accepted:
            try:
                _resume(doc)
            except InputError:
                pass
            except Exception as exc:  # noqa: BLE001
                tally.findings.append(f"{tag}: resume raised {type(exc).__name__}: {str(exc)[:200]}")
        tally.exits[(command, 0 if accepted else 2)] += 1
        return tally
    if not accepted and index % cli_every:
        tally.exits[(command, 2)] += 1  # the command's first step is this reader: exit 2
        return tally
    out = work / "report.html"
    with contextlib.suppress(FileNotFoundError):
        out.unlink()
    tally.findings += check_command(command, _argv(command, mutant, docs, out), out, tag, tally)
    return tally


def check_command(command: str, argv: list[str], out: Path, tag: str, tally: Tally) -> list[str]:
    from hlcli.cli import cli

    result = CliRunner().invoke(cli, argv, catch_exceptions=True)
    tally.exits[(command, result.exit_code)] += 1
    findings = []
    if result.exit_code not in (0, 1, 2):
        findings.append(f"{tag}: exit {result.exit_code}: {result.stderr.strip()[:300]} {result.exception!r}")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        findings.append(f"{tag}: traceback: {type(result.exception).__name__}: {result.exception}")
    for name, text in (("stdout", result.stdout), ("stderr", result.stderr)):
        if _CONTROL.search(text):
            findings.append(f"{tag}: raw control character on {name}: {text[:200]!r}")
    if out.is_file():
        page = out.read_text("utf-8")
        for bad in (f"<script>{MARKER}", "<img src=x onerror", f"\x1b[31m{MARKER}", "\x1b"):
            if bad in page:
                findings.append(f"{tag}: report holds injected markup unescaped: {bad!r}")
    return findings


@contextlib.contextmanager
def plots_stubbed(enabled: bool = True):
    """The report's matplotlib plots (0.15 to 0.6 s a report, numbers only: the reader bounds
    them) replaced by an empty SVG, to keep the suite fast; the benchmark keeps some."""
    from hlcli.render import html_media

    names = [n for n in dir(html_media) if n.endswith("_svg") and not n.startswith("_")]
    saved = {n: getattr(html_media, n) for n in names}
    if enabled:
        for n in names:
            setattr(html_media, n, lambda *a, **k: "<svg></svg>")
    try:
        yield
    finally:
        for n, f in saved.items():
            setattr(html_media, n, f)


def run_range(seed: int, start: int, stop: int, docs: dict[str, Any], work: Path, *, real_plots: bool = False,
              **kw: Any) -> Tally:
    tally = Tally()
    with plots_stubbed(not real_plots):
        for i in range(start, stop):
            tally.add(run_one(seed, i, docs, work, **kw))
    return tally
