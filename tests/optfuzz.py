"""A seeded random walk over every command's options: the option fuzzer of ``tests/test_optfuzz.py``
and ``benchmarks/optfuzz.py``.

The commands and their options are read from the Click objects of :mod:`hlcli.cli` (names, types,
choices, ranges, flags, nargs), so a new option is walked without touching this file. Values
are plausible most of the time (a choice, an in-range number, an existing run, a fresh output
file) and wrong some of the time (out of range, junk, an existing folder or file, a missing
parent folder); a few option names get generators of their own (layers, metrics, gates, shards).
Command line ``i`` of seed ``S`` is fully determined by ``(S, i)`` and runs in a fresh scratch
folder, so it can be replayed alone.

A finding is a command line whose exit code is outside {0, 1, 2, 3}, whose output holds
"internal error" or a traceback, or that raised an exception out of Click.
"""

from __future__ import annotations

import os
import random
import shlex
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from click.testing import CliRunner

from .conftest import degrade, save, textured

#: Commands and options the walk leaves out, with the reason: they reach the network, take
#: seconds by design, or show tracebacks on purpose.
SKIP_COMMANDS = {("weights", "download"): "downloads"}
SKIP_OPTIONS = {("info", "--bench"): "measures for seconds"}
SKIP_EVERYWHERE = {"--debug": "raises the error with its traceback, by design", "--help": "prints help"}
EXIT_CODES = {0, 1, 2, 3}


@dataclass
class World:
    """The small real inputs every command line draws from (read-only during the walk)."""

    root: Path
    weights: Path
    restored: Path  # clean tree: two pairs, one in a subfolder (needs -r)
    restored2: Path  # a second model for sweeps
    gt: Path
    messy_restored: Path  # a broken file, a ground truth with no restored file
    messy_gt: Path
    manifest: Path
    runs: list[Path]  # score documents
    parts: list[Path]  # shard parts
    maps: Path  # a --save-maps folder
    layers: str  # the layers the stored runs were scored with


def make_world(root: Path, weights: Path) -> World:
    """Small inputs under ``root``, scored with the checkpoint ``weights``: a clean tree (two
    pairs, one in a subfolder), a second model, a messy tree (a broken file, a file without its
    partner), a manifest, two stored runs, two shard parts and a maps folder."""
    layers = "conv1_2,conv2_1"
    for i, key in enumerate(["a", "sub/b"]):
        gt = textured(24, 32, seed=20 + i)
        save(root / "gt" / f"{key}.png", gt)
        save(root / "restored" / f"{key}.png", degrade(gt, seed=i))
        save(root / "restored2" / f"{key}.png", degrade(gt, seed=i + 7))
        save(root / "messy_gt" / f"{key}.png", gt)
        save(root / "messy_restored" / f"{key}.png", degrade(gt, seed=i + 3))
    (root / "messy_restored" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    save(root / "messy_gt" / "broken.png", textured(24, 32, seed=9))
    save(root / "messy_gt" / "lonely.png", textured(24, 32, seed=10))
    manifest = root / "pairs.csv"
    manifest.write_text(f"restored,gt\n{root / 'restored' / 'a.png'},{root / 'gt' / 'a.png'}\n", "utf-8")
    world = World(root=root, weights=weights, restored=root / "restored", restored2=root / "restored2",
                  gt=root / "gt", messy_restored=root / "messy_restored", messy_gt=root / "messy_gt",
                  manifest=manifest, runs=[root / "run.json", root / "baseline.json"],
                  parts=[root / "part0.json", root / "part1.json"], maps=root / "maps", layers=layers)
    common = [str(world.restored), str(world.gt), "-r", "--layers", layers, "--workers", "0", "-f", "json",
              "--group-by", "top", "--metrics", "psnr"]
    jobs = [["-o", str(world.runs[0]), "--save-maps", str(world.maps), "--maps-format", "npy"],
            ["-o", str(world.runs[1]), "--lambda", "0.1"],
            ["--shard", "0/2", "-o", str(world.parts[0])], ["--shard", "1/2", "-o", str(world.parts[1])]]
    for extra in jobs:
        code, why, tail = check(world, ["score", *common, *extra])
        if code != 0:
            raise RuntimeError(f"the fuzzer's inputs could not be scored: {tail}")
    return world


def commands(group: click.Group | None = None, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], click.Command]:
    """Every leaf command of ``hlcli`` by its words, e.g. ``("weights", "import")``."""
    if group is None:
        from hlcli.cli import cli

        group = cli
    out: dict[tuple[str, ...], click.Command] = {}
    for name in sorted(group.commands):
        cmd = group.commands[name]
        words = (*prefix, name)
        if isinstance(cmd, click.Group):
            out.update(commands(cmd, words))
        elif words not in SKIP_COMMANDS:
            out[words] = cmd
    return out


# ---------------------------------------------------------------------------------------------
# Values


class Walker:
    """Draws command lines for one (seed, index): ``r`` decides everything."""

    def __init__(self, world: World, scratch: Path, r: random.Random):
        self.w, self.scratch, self.r = world, scratch, r

    # -- small helpers --------------------------------------------------------------------------
    def wrong(self) -> bool:
        return self.r.random() < 0.06

    def pick(self, *items: Any) -> Any:
        return self.r.choice(items)

    def output(self, exts: tuple[str, ...] = (".json", ".csv", ".md", ".txt", ".jsonl", ".html", ".tex", "")) -> str:
        """An output path: mostly a fresh file, sometimes one that cannot be written as given."""
        (self.scratch / "existing_dir").mkdir(exist_ok=True)
        (self.scratch / "existing.txt").write_text("old\n", "utf-8")
        if self.r.random() < 0.25:  # outputs are where a late failure loses the most work
            return str(self.pick(self.scratch / "existing_dir", self.scratch / "existing_dir/",
                                 self.scratch / "no" / "such" / "dir" / f"out{self.pick(*exts)}",
                                 self.scratch / "existing.txt" / "under_a_file.json", "-",
                                 self.scratch / "existing.txt"))
        return str(self.scratch / f"out{self.r.randrange(3)}{self.pick(*exts)}")

    def junk(self) -> str:
        return self.pick("", " ", "x", "-1", "0", "1e309", "nan", "1,2", "a=b", "../..", "∞", "--", "%", "\x1b[31m")

    def number(self, lo: float | None, hi: float | None, integer: bool) -> str:
        if self.wrong():
            bad = [self.junk()]
            if lo is not None:
                bad.append(str(lo - 1))
            if hi is not None:
                bad.append(str(hi + 1))
            return self.pick(*bad)
        lo_v = 0 if lo is None else lo
        hi_v = (lo_v + 20) if hi is None else hi
        if integer:
            return str(self.r.randint(int(lo_v), int(min(hi_v, lo_v + 64))))
        return repr(round(self.r.uniform(lo_v, min(hi_v, lo_v + 2)), 3))

    def run_doc(self) -> str:
        return str(self.pick(*self.w.runs, *self.w.parts) if not self.wrong()
                   else self.pick(self.w.manifest, self.w.weights, self.w.gt / "a.png", self.scratch / "nope.json"))

    # -- option values by name, then by type ------------------------------------------------------
    def named(self, cmd: tuple[str, ...], name: str) -> str | None:
        r = self.r
        layers = ["conv1_2", "conv2_1", "relu1_1", "pool1", "conv3_3", "conv4_3", "relu2_2"]
        metrics = ["l1", "perceptual", "hybrid", "psnr", "psnr_y", "ssim", "ssim_y", "lpips", "lpips_vgg",
                   "conv1_2", "conv2_1"]
        if name == "layers":
            return self.w.layers if r.random() < 0.5 else ",".join(r.sample(layers, r.randint(1, 3)))
        if name == "metrics" and cmd == ("score",):
            return ",".join(r.sample(["psnr", "psnr_y", "ssim", "ssim_y", "lpips_vgg", "nope"], r.randint(0, 2)))
        if name == "metrics":
            return ",".join(r.sample(metrics, r.randint(1, 3)))
        if name in ("sort", "by"):
            return self.pick(*metrics, "key", "wat")
        if name == "gates":
            stat = self.pick("mean", "p95", "max", "count", "median", "p99.9", "bogus")
            group = self.pick("", "", "[set5]", "[sub]", "[nope]")
            return f"{stat}.{self.pick(*metrics)}{group}{self.pick('>', '<', '>=', '==', '~')}{self.pick('0', '0.5', '100', 'x')}"
        if name in ("limits", "pair_limits"):
            return self.pick("2%", "0.1", "hybrid=0.01", "all=5%", "psnr=0.5", "l1=-1", "x=", "ssim_y=1%")
        if name == "shard":
            return self.pick("0/2", "1/2", "0/1", "2/2", "1/0", "a/b", "0/3")
        if name == "rows":
            return self.pick("all", "1", "5", "0", "x")
        if name in ("output",):
            return self.output()
        if name == "report":
            return self.output((".html",))
        if name == "plot":
            return self.output((".png", ".svg", ".pdf", ".txt"))
        if name == "save_maps":
            (self.scratch / "existing.txt").write_text("old\n", "utf-8")
            return str(self.pick(self.scratch / "maps", self.scratch / "maps", self.scratch / "existing.txt",
                                 self.scratch / "existing_dir", self.scratch / "no" / "parent" / "maps",
                                 self.scratch / "existing.txt" / "maps"))
        if name == "maps_dir":
            return str(self.w.maps if not self.wrong() else self.scratch)
        if name == "pairs_file":
            return str(self.w.manifest) if not self.wrong() else self.pick("-", str(self.w.runs[0]))
        if name == "baseline":
            return str(self.w.runs[1] if not self.wrong() else self.pick(self.w.parts[0], self.w.manifest))
        if name == "names":
            return self.pick("m1", "m2", "a b", "", "x/y", "..")
        if name == "device":
            return self.pick("cpu", "cpu", "auto", "cuda", "mps", "tpu")
        if name == "workers":
            return self.pick("0", "0", "auto", "-1", "x")
        if name == "layer_weights":
            return self.pick("1", "1,1", "0.5,2", "1,1,1", "x", "nan")
        if name == "lam":
            return self.pick("0", "0.05", "1", "-1", "nan", "inf")
        if name == "pixel_budget":
            return self.pick("4096", "65536", "2097152", "100", "x")
        if name in ("weights_path", "lpips_path", "lpips_vgg_path", "lpips_weights", "lpips_vgg_weights"):
            return str(self.w.weights if not self.wrong() else self.pick(self.w.manifest, self.scratch / "nope.pth"))
        return None

    def by_type(self, param: click.Parameter) -> str:
        t = param.type
        if isinstance(t, click.Choice):
            return self.pick(*t.choices) if not self.wrong() else self.junk()
        if isinstance(t, (click.IntRange, click.FloatRange)):
            return self.number(t.min, t.max, isinstance(t, click.IntRange))
        if t is click.INT or t is click.FLOAT:
            return self.number(None, None, t is click.INT)
        if isinstance(t, click.Path):
            return self.run_doc() if t.dir_okay is False else str(self.pick(self.w.gt, self.w.maps, self.scratch))
        return self.junk() if self.wrong() else self.pick(str(self.w.runs[0]), "1", "x")

    def value(self, cmd: tuple[str, ...], param: click.Parameter) -> str:
        named = self.named(cmd, param.name or "")
        return named if named is not None else self.by_type(param)

    # -- arguments ----------------------------------------------------------------------------------
    def arguments(self, cmd: tuple[str, ...]) -> list[str]:
        w, r = self.w, self.r
        if cmd == ("score",):
            roll = r.random()
            if roll < 0.55:
                args = [w.restored, w.gt]
            elif roll < 0.7:
                args = [w.restored, w.restored2, w.gt]
            elif roll < 0.8:
                args = [w.messy_restored, w.messy_gt]
            elif roll < 0.9:
                args = [w.restored / "a.png", w.gt / "a.png"]
            else:
                args = self.pick([], [w.gt], [w.restored, w.gt / "a.png"], [w.runs[0], w.gt])
            return [str(a) for a in args]
        if cmd == ("merge",):
            return [str(p) for p in self.pick(w.parts, w.parts, w.parts[:1], [*w.parts, w.parts[0]], w.runs[:1])]
        if cmd == ("compare",):
            return [self.run_doc(), self.run_doc()]
        if cmd in (("table",), ("tradeoff",)):
            return [self.run_doc() for _ in range(self.pick(1, 2, 2, 3))]
        if cmd in (("report",), ("calibrate",)):
            return [self.run_doc()]
        if cmd == ("weights", "import"):
            return [str(self.pick(w.weights, w.manifest))]
        out = []
        for p in commands()[cmd].params:  # a new command: something for each argument
            if isinstance(p, click.Argument):
                out.extend(self.by_type(p) for _ in range(max(1, p.nargs)))
        return out

    def line(self, cmd: tuple[str, ...], command: click.Command) -> list[str]:
        """One command line (without ``hlcli``): the arguments, then a random subset of options."""
        args = [*cmd, *self.arguments(cmd)]
        options = [p for p in command.params if isinstance(p, click.Option)
                   and (cmd[0], p.opts[-1]) not in SKIP_OPTIONS and p.opts[-1] not in SKIP_EVERYWHERE]
        chosen = self.r.sample(options, min(len(options), self.r.randint(0, 5)))
        chosen += [p for p in options if p.required and p not in chosen and not self.wrong()]
        if cmd == ("score",):  # the weights and a small, fast network most of the time
            args += ["--weights", str(self.w.weights)] if self.r.random() < 0.9 else []
            args += ["--layers", self.w.layers] if not any(p.name == "layers" for p in chosen) else []
            args += ["--workers", "0"] if not any(p.name == "workers" for p in chosen) else []
        for p in chosen:
            flag = self.pick(*p.opts)
            if p.is_flag or p.count:
                args.append(flag)
                continue
            for _ in range(self.r.randint(1, 2) if p.multiple else 1):
                args += [flag, *(self.value(cmd, p) for _ in range(max(1, p.nargs)))]
        return args


# ---------------------------------------------------------------------------------------------
# Running


@dataclass
class Finding:
    seed: int
    index: int
    argv: list[str]
    code: int
    why: str
    tail: str

    def describe(self) -> str:
        return (f"seed {self.seed} line {self.index}: exit {self.code}, {self.why}\n"
                f"  hlcli {shlex.join(self.argv)}\n  {self.tail}")


@dataclass
class Tally:
    lines: int = 0
    codes: Counter = field(default_factory=Counter)
    per_command: Counter = field(default_factory=Counter)
    findings: list[Finding] = field(default_factory=list)


def draw(world: World, seed: int, index: int, workdir: Path) -> list[str]:
    """Command line ``index`` of ``seed`` (its scratch folder made fresh under ``workdir``)."""
    r = random.Random(f"{seed}:{index}")
    scratch = workdir / f"line{index}"
    scratch.mkdir(parents=True, exist_ok=True)
    cmds = commands()
    words = r.choice(sorted(cmds))
    if r.random() < 0.4:  # score has most of the options: walk it more often
        words = ("score",)
    return Walker(world, scratch, r).line(words, cmds[words])


def check(world: World, argv: list[str]) -> tuple[int, str | None, str]:
    """Run ``hlcli argv`` in-process; (exit code, what is wrong or None, output tail)."""
    from hlcli.cli import cli

    env = {"HLCLI_OFFLINE": "1", "HLCLI_WEIGHTS": str(world.weights), "NO_COLOR": "1",
           "HLCLI_LPIPS_WEIGHTS": None, "HLCLI_LPIPS_VGG_WEIGHTS": None}
    result = CliRunner(env=env).invoke(cli, argv, input="", catch_exceptions=True)
    text = result.output
    exc = result.exception
    why = None
    if exc is not None and not isinstance(exc, SystemExit):
        why = f"uncaught {type(exc).__name__}: {exc}"
    elif result.exit_code not in EXIT_CODES:
        why = f"exit code {result.exit_code}"
    elif "internal error" in text:
        why = "internal error"
    elif "Traceback (most recent call last)" in text:
        why = "traceback"
    tail = " | ".join(text.strip().splitlines()[-2:])[-300:]
    return result.exit_code, why, tail


def walk(world: World, seed: int, start: int, stop: int, workdir: Path) -> Tally:
    """Lines ``start`` to ``stop`` of ``seed``."""
    tally = Tally()
    cwd = os.getcwd()
    workdir.mkdir(parents=True, exist_ok=True)
    os.chdir(workdir)  # relative outputs of a command line land in the scratch area
    try:
        for i in range(start, stop):
            argv = draw(world, seed, i, workdir)
            code, why, tail = check(world, argv)
            tally.lines += 1
            tally.codes[code] += 1
            tally.per_command[argv[0] if argv[0] != "weights" else " ".join(argv[:2])] += 1
            if why is not None:
                tally.findings.append(Finding(seed, i, argv, code, why, tail))
    finally:
        os.chdir(cwd)
    return tally
