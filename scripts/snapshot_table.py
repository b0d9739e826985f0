#!/usr/bin/env python
"""Put the real 80-column output of ``hlcli score samples/restored samples/gt --metrics
psnr,ssim_y,lpips`` into the README.

Runs the installed CLI in a pseudo-terminal 80 columns wide (so Rich lays the table out exactly
as in a person's terminal), strips the colour codes and replaces the ``text`` block that follows
the line ``<!-- snapshot: scripts/snapshot_table.py -->`` in README.md, together with the
caption line after it that names the weights used.

    python scripts/snapshot_table.py [--weights FILE] [--lpips-weights FILE] [--readme README.md] [--check]

The weights resolve as for ``hlcli score`` ($HLCLI_WEIGHTS, $HLCLI_LPIPS_WEIGHTS, the torch cache, ...). ``--check``
exits 1 when the README differs from a fresh snapshot instead of writing it.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARKER = "<!-- snapshot: scripts/snapshot_table.py -->"
COMMAND = ["score", "samples/restored", "samples/gt", "--metrics", "psnr,ssim_y,lpips"]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run_in_pty(cmd: list[str], columns: int, env: dict[str, str], *, stderr: int | None = None,
               timeout: float = 300) -> tuple[int, str, str]:
    """Run ``cmd`` in a real pseudo-terminal ``columns`` wide: (exit code, all it wrote to the
    terminal with the colour codes stripped and CRLF made LF, its stderr when ``stderr`` is
    ``subprocess.PIPE``, else "" and stderr goes to the terminal too)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    proc = subprocess.Popen(cmd, cwd=ROOT, stdin=slave, stdout=slave, stderr=slave if stderr is None else stderr,
                            env=env, close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # the terminal's other end closed: the process is done writing
            break
        if not data:
            break
        chunks.append(data)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr is not None else ""
    proc.wait(timeout=timeout)
    os.close(master)
    return proc.returncode, ANSI.sub("", b"".join(chunks).decode()).replace("\r\n", "\n"), err


def snapshot(weights: str | None, columns: int = 80, lpips_weights: str | None = None) -> str:
    """What ``hlcli`` + :data:`COMMAND` prints on a terminal ``columns`` wide."""
    cmd = [sys.executable, "-m", "hlcli", *COMMAND]
    cmd += ["--weights", weights] if weights else []
    cmd += ["--lpips-weights", lpips_weights] if lpips_weights else []
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "COLUMNS")}
    code, text, err = run_in_pty(cmd, columns, env, stderr=subprocess.PIPE)
    if code != 0:
        sys.exit(f"hlcli score failed (exit {code}):\n{err}")
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines()) + "\n"


def caption(weights: str | None, lpips_weights: str | None = None) -> str:
    import hlcli

    official = (hlcli.load_weights(weights, offline=True).official
                and hlcli.load_weights(lpips_weights, offline=True, net="alexnet").official)
    made = "with torchvision's ImageNet weights" if official else \
        "with random test checkpoints, so the perceptual and LPIPS values are not the ImageNet weights' ones"
    return f"Made by `python scripts/snapshot_table.py`, {made}."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", help="VGG-19 checkpoint (default: as hlcli resolves it)")
    parser.add_argument("--lpips-weights", help="AlexNet checkpoint for lpips (default: as hlcli resolves it)")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--check", action="store_true", help="exit 1 if the README is not current")
    args = parser.parse_args()
    readme = args.readme.read_text(encoding="utf-8")
    start = readme.index(MARKER) + len(MARKER) + 1
    end = readme.index("```\n", readme.index("```text\n", start) + 8) + 4
    block = (f"{caption(args.weights, args.lpips_weights)}\n\n```text\n"
             f"{snapshot(args.weights, lpips_weights=args.lpips_weights)}```\n")
    new = readme[:start] + block + readme[end:]
    if args.check:
        sys.exit(0 if new == readme else "README.md snapshot is not current: run python scripts/snapshot_table.py")
    args.readme.write_text(new, encoding="utf-8")
    print(f"updated {args.readme}")


if __name__ == "__main__":
    main()
