"""Words for people, shared by every message and document: counts with their noun in the right
number, file sizes, what a file lacks. No torch import."""

from __future__ import annotations


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """``1 pair``, ``2 pairs``, ``1,000 pairs``: a count with its noun in the right number
    (``nouns`` for an irregular plural)."""
    return f"{n:,} {noun if n == 1 else (nouns or noun + 's')}"


def human_size(n: int) -> str:
    """A file size for people: ``812 bytes``, ``4.1 kB``, ``1.2 MB`` (powers of 1000)."""
    if n < 1000:
        return plural(n, "byte")
    size = float(n)
    for unit in ("kB", "MB", "GB"):
        size /= 1000
        if size < 999.95:
            return f"{size:.1f} {unit}"
    return f"{size / 1000:.1f} TB"


def key_mismatch(missing: list[str], unexpected: list[str], shown: int = 4) -> str:
    """``missing a, b ...; unexpected c``: how a state dict's keys differ from the expected ones
    (the first ``shown`` of each)."""
    def few(keys: list[str]) -> str:
        return ", ".join(keys[:shown]) + (" ..." if len(keys) > shown else "")

    return "; ".join([f"missing {few(missing)}"] * bool(missing) + [f"unexpected {few(unexpected)}"] * bool(unexpected))
