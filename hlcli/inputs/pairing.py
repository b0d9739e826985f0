"""Decide which restored image is scored against which ground-truth image.

Two sources of pairs:

* :func:`find_pairs` matches two directories (or two single files) by *key*: the file's path
  relative to its root, without extension, ``/``-separated and Unicode-NFC-normalised. Files are
  matched by key, never by position, so ``restored/a/x.png`` pairs with ``gt/a/x.jpg`` and a
  decomposed (NFD, as macOS writes) ``café`` pairs with a composed (NFC) one.
* :func:`read_manifest` reads an explicit two-column CSV (``restored,gt``), for ``--pairs FILE``
  and ``--pairs -`` (stdin).

Pairing never opens an image: it only looks at names. Every bad input raises
:class:`~hlcli.errors.InputError` naming the file and saying how to fix it.
"""

from __future__ import annotations

import csv
import io
import os
import posixpath
import shlex
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import TextIO

from ..errors import InputError
from .images import IMAGE_EXTENSIONS
from ..text import plural

__all__ = ["IMAGE_EXTENSIONS", "Pair", "Pairing", "dir_inputs", "find_pairs", "near_misses", "pairs_from_paths", "read_manifest",
           "strip_suffix"]

_USE_PAIRS = "or list the pairs explicitly with --pairs FILE"
_ONE_PER_LINE = "write one 'restored,gt' pair per line; quote paths containing commas"


@dataclass(frozen=True)
class Pair:
    """One restored image and the ground truth it is scored against.

    ``key`` is the pair's name in reports: the relative path without extension, ``/``-separated,
    NFC-normalised (e.g. ``"a/x"``).
    """

    key: str
    restored: Path
    gt: Path


@dataclass
class Pairing:
    """The outcome of pairing: matched pairs (sorted by key) and everything left over.

    ``restored_only`` / ``gt_only`` hold image files without a partner; ``ignored`` holds files
    skipped on purpose (hidden, AppleDouble ``._*``, non-image extension, not a regular file).
    """

    pairs: list[Pair]
    restored_only: list[Path] = field(default_factory=list)
    gt_only: list[Path] = field(default_factory=list)
    ignored: list[Path] = field(default_factory=list)

    @property
    def missing_count(self) -> int:
        """Number of image files that found no partner (on either side)."""
        return len(self.restored_only) + len(self.gt_only)


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def key_for(path: str | Path, root: str | Path) -> str:
    """The key of an image file found under the directory ``root``: its path relative to
    ``root``, with ``/`` separators, without extension, in Unicode NFC (as :func:`find_pairs`
    keys the files it pairs)."""
    rel = os.path.relpath(os.fspath(path), os.fspath(root)).replace(os.sep, "/")
    return _nfc(os.path.splitext(rel)[0])


def _is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _list_images(root: Path, recursive: bool) -> tuple[dict[str, Path], list[Path], bool]:
    """List the image files under ``root`` as ``{key: path}``.

    Returns ``(images, ignored, saw_subdirs)``. Directory symlinks are followed, and every file
    is keyed by the path it is reached by. A directory that is its own ancestor (same
    ``(st_dev, st_ino)`` as a directory above it: a symlink loop) is not entered again and is
    listed in ``ignored``, so loops terminate; a symlink to a sibling directory is not a loop,
    and its files are listed under both names (never under whichever name sorts first).
    Entries are visited in sorted name order, so results and error messages are deterministic.
    """
    images: dict[str, Path] = {}
    ignored: list[Path] = []
    saw_subdirs = False
    # (directory, key prefix, (st_dev, st_ino) of the directories above it)
    stack: list[tuple[Path, str, frozenset[tuple[int, int]]]] = [(root, "", frozenset())]
    while stack:
        directory, prefix, ancestors = stack.pop()
        try:
            st = os.stat(directory)  # follows symlinks
            ident = (st.st_dev, st.st_ino)
            if ident in ancestors:  # a symlink loop
                ignored.append(directory)
                continue
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            raise InputError("cannot list directory", directory,
                             f"check that it exists and is readable ({exc.strerror})") from exc
        subdirs: list[tuple[Path, str, frozenset[tuple[int, int]]]] = []
        inside = ancestors | {ident}
        for entry in entries:
            path = directory / entry.name
            if entry.is_dir():  # follows symlinks
                saw_subdirs = True
                if recursive and not entry.name.startswith("."):
                    subdirs.append((path, prefix + entry.name + "/", inside))
                continue
            # Hidden files (this includes AppleDouble '._x.png'), non-images and things that
            # are not regular files (dangling symlinks, FIFOs) are skipped and reported.
            if entry.name.startswith(".") or not _is_image_name(entry.name) or not entry.is_file():
                ignored.append(path)
                continue
            key = _nfc(os.path.splitext(prefix + entry.name)[0])  # = key_for(path, root)
            if key in images:
                raise InputError(
                    "two files have the same name apart from extension or Unicode form, so it "
                    f"is ambiguous which one to score: {images[key]} and {path}",
                    root, f"remove or rename one of them, {_USE_PAIRS}")
            images[key] = path
        stack.extend(reversed(subdirs))  # pop in sorted order
    return images, ignored, saw_subdirs


def _existing(value: str | Path, role: str) -> Path:
    """``value`` as a Path, or InputError if it is empty or does not exist."""
    if not str(value):
        raise InputError(f"{role} path is empty", None, "give a file or directory path")
    if not Path(value).exists():
        raise InputError(f"{role} path does not exist", value, "check the spelling of the path")
    return Path(value)


def strip_suffix(key: str, suffix: str) -> str:
    """``key`` without ``suffix`` at the end of its file name (``a/rocket_x4`` → ``a/rocket`` for
    ``_x4``), as BasicSR's ``filename_tmpl`` ``{}_x4`` names restored files; a key that does not
    end in it (or is nothing but it) is unchanged."""
    name = key.rsplit("/", 1)[-1]
    if not suffix or not name.endswith(suffix) or name == suffix:
        return key
    return key[: len(key) - len(suffix)]


def _strip_suffixes(images: dict[str, Path], suffix: str, root: Path) -> dict[str, Path]:
    if not suffix:
        return images
    stripped: dict[str, Path] = {}
    for key, path in images.items():
        new = strip_suffix(key, suffix)
        if new in stripped:
            raise InputError(f"two restored files have the same name once --restored-suffix {suffix!r} is "
                             f"removed: {stripped[new]} and {path}", root,
                             f"remove or rename one of them, {_USE_PAIRS}")
        stripped[new] = path
    return stripped


def near_misses(restored_only: list[str] | list[Path], gt_only: list[str] | list[Path]) -> list[str]:
    """"Did you mean" hints for unmatched files whose names are close to a partner's: names equal
    apart from case (``Coffee.png`` / ``coffee.png``), or a restored name that is a ground-truth
    name plus a suffix (``rocket_x4.png`` / ``rocket.png``: BasicSR's ``{}_x4``). One line per
    kind of near miss, naming one example and how to pair them."""
    def stem(p: str | Path) -> str:
        return _nfc(PurePath(p).stem)

    gt_stems = {stem(g): str(g) for g in gt_only}
    gt_folded: dict[str, str] = {}
    for name, path in gt_stems.items():
        gt_folded.setdefault(name.casefold(), path)
    case: list[tuple[str, str]] = []
    suffixes: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for r in restored_only:
        name = stem(r)
        if name.casefold() in gt_folded and name not in gt_stems:
            case.append((str(r), gt_folded[name.casefold()]))
            continue
        # the longest ground-truth name the restored name starts with, the rest a short suffix
        for cut in range(len(name) - 1, 0, -1):
            if name[:cut] in gt_stems and len(name) - cut <= 16:
                suffixes[name[cut:]].append((str(r), gt_stems[name[:cut]]))
                break
    hints = []
    if case:
        r, g = case[0]
        hints.append(f"did you mean: {r} with {g}? Their names differ only in case ({plural(len(case), 'such file')} "
                     "in all): rename them, or list the pairs with --pairs FILE")
    for suffix, found in sorted(suffixes.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        r, g = found[0]
        flag = f"--restored-suffix={shlex.quote(suffix)}" if suffix.startswith("-") else \
            f"--restored-suffix {shlex.quote(suffix)}"
        hints.append(f"did you mean: {r} with {g}? The restored name adds {suffix!r} "
                     f"({plural(len(found), 'such file')} in all): pair them with {flag}")
    return hints


def find_pairs(restored: str | Path, gt: str | Path, *, recursive: bool = False,
               restored_suffix: str = "") -> Pairing:
    """Pair restored images with ground-truth images by key.

    ``restored`` and ``gt`` must both be files (one pair, keyed by the restored file's stem) or
    both directories. Only top-level files are listed unless ``recursive`` is true.
    ``restored_suffix`` (e.g. ``"_x4"``) is removed from the end of restored file names before
    pairing (BasicSR's ``filename_tmpl``), so ``rocket_x4.png`` pairs with ``rocket.png`` under
    the key ``rocket``. Raises :class:`InputError` for missing paths, a file/directory mix, a
    directory without images, or two files with the same key on one side.
    """
    r, g = _existing(restored, "restored"), _existing(gt, "ground-truth")
    if r.is_file() and g.is_file():
        return Pairing(pairs=[Pair(strip_suffix(_nfc(r.stem), restored_suffix), r, g)])
    if not (r.is_dir() and g.is_dir()):
        kinds = ", ".join(f"{p} is {'a directory' if p.is_dir() else 'not a directory'}"
                          for p in (r, g))
        raise InputError("restored and ground truth must both be directories or both be files "
                         f"({kinds})", None, f"pass two directories or two files, {_USE_PAIRS}")

    listed = []
    for root in (r, g):
        images, ignored, saw_subdirs = _list_images(root, recursive)
        if not images:
            hint = " (it has subdirectories: add --recursive)" * (saw_subdirs and not recursive)
            raise InputError(
                "no images found in directory", root,
                f"check the path{hint}; image extensions are {', '.join(sorted(IMAGE_EXTENSIONS))}")
        listed.append((images, ignored))
    (r_images, r_ignored), (g_images, g_ignored) = listed
    r_images = _strip_suffixes(r_images, restored_suffix, r)

    common = r_images.keys() & g_images.keys()
    return Pairing(
        pairs=[Pair(k, r_images[k], g_images[k]) for k in sorted(common)],
        restored_only=sorted(p for k, p in r_images.items() if k not in common),
        gt_only=sorted(p for k, p in g_images.items() if k not in common),
        ignored=sorted(r_ignored + g_ignored),
    )


def dir_inputs(restored: str | Path, gt: str | Path, recursive: bool, restored_suffix: str = "") -> dict[str, object]:
    """The ``settings.inputs`` record of two paths paired by :func:`find_pairs` (``restored_suffix``
    only when one is given, so plain documents are unchanged)."""
    inputs: dict[str, object] = {"restored": str(restored), "gt": str(gt), "recursive": recursive}
    if restored_suffix:
        inputs["restored_suffix"] = restored_suffix
    return inputs


def _read_text(source: str | os.PathLike[str] | TextIO) -> tuple[str, str, Path]:
    """Return ``(text, manifest name, default base directory)`` for a path or a text stream."""
    is_path = isinstance(source, (str, os.PathLike))
    name = str(source) if is_path else str(getattr(source, "name", None) or "<stream>")
    try:
        if is_path:
            with open(source, encoding="utf-8-sig", newline="") as fh:
                text = fh.read()
        else:
            text = source.read()
    except FileNotFoundError as exc:
        raise InputError("pairs manifest does not exist", name, "check the --pairs path") from exc
    except UnicodeDecodeError as exc:
        raise InputError("pairs manifest is not UTF-8 text", name, "save it as UTF-8 CSV") from exc
    except OSError as exc:
        raise InputError(f"cannot read pairs manifest ({exc.strerror})", name,
                         "check that it is a readable file") from exc
    base = Path(source).parent if is_path else Path.cwd()
    return text.removeprefix("\ufeff"), name, base


def _manifest_keys(written: list[str]) -> list[str]:
    """Unique, deterministic keys for the restored paths as written in the manifest.

    Each row starts with its stem as key; rows whose keys clash escalate to the path as written
    without extension, then with extension, then with ``#<n>`` (n-th row naming that path).
    """
    posix = [_nfc(PurePath(w).as_posix()) for w in written]
    no_ext = [os.path.splitext(p)[0] for p in posix]
    seen: dict[str, int] = defaultdict(int)
    numbered = []
    for p in posix:  # n-th occurrence of the same written path, in manifest order
        seen[p] += 1
        numbered.append(f"{p}#{seen[p]}")
    candidates = [[posixpath.basename(n), n, p, c] for n, p, c in zip(no_ext, posix, numbered)]
    levels = [0] * len(written)
    while True:
        groups: dict[str, list[int]] = defaultdict(list)
        for i, cands in enumerate(candidates):
            groups[cands[levels[i]]].append(i)
        clashes = [ids for ids in groups.values() if len(ids) > 1]
        if not clashes:
            return [cands[levels[i]] for i, cands in enumerate(candidates)]
        bumped = False
        for ids in clashes:
            for i in ids:
                if levels[i] < len(candidates[i]) - 1:
                    levels[i] += 1
                    bumped = True
        if not bumped:  # only reachable with pathological names such as 'x.png#1'
            names = ", ".join(written[i] for i in clashes[0])
            raise InputError(f"cannot give distinct names to restored files {names}", None,
                             "rename one of them")


def read_manifest(source: str | Path | TextIO, *, base: Path | None = None) -> Pairing:
    """Read explicit pairs from a ``restored,gt`` CSV file path or an open text stream.

    An optional first row ``restored,gt`` is a header. Blank lines and lines starting with
    ``#`` are skipped; fields are stripped of surrounding whitespace. Relative paths resolve
    against ``base`` (default: the manifest's directory, or the current directory for a stream).
    Pairs are returned sorted by key; the other lists of the result are empty.
    """
    text, name, default_base = _read_text(source)
    root = Path(base) if base is not None else default_base
    rows: list[tuple[int, str, Path, Path]] = []  # (line, restored as written, restored, gt)
    seen_rows: dict[tuple[str, str], int] = {}
    first = True
    for line_no, line in enumerate(io.StringIO(text, newline=None), start=1):
        line = line.rstrip("\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            fields = [f.strip() for f in next(csv.reader([line]))]
        except csv.Error as exc:
            raise InputError(f"line {line_no} is not valid CSV ({exc})", name,
                             _ONE_PER_LINE) from exc
        if first and [f.lower() for f in fields] == ["restored", "gt"]:
            first = False
            continue
        first = False
        if len(fields) != 2 or not all(fields):
            raise InputError(f"line {line_no} has {plural(len(fields), 'column')} or an empty path; "
                             f"expected exactly 2 (restored,gt)", name, _ONE_PER_LINE)
        paths = []
        for value, role in zip(fields, ("restored", "ground-truth")):
            p = Path(value)
            p = p if p.is_absolute() else root / p
            if not p.is_file():
                what = "is not a file" if p.exists() else "does not exist"
                raise InputError(f"{role} file on line {line_no} of {name} {what}", p,
                                 f"fix the path (relative paths are resolved against {root})")
            paths.append(p)
        ident = (os.path.normpath(paths[0]), os.path.normpath(paths[1]))
        if ident in seen_rows:
            raise InputError(f"line {line_no} repeats the pair on line {seen_rows[ident]}", name,
                             "remove the duplicate row")
        seen_rows[ident] = line_no
        rows.append((line_no, fields[0], paths[0], paths[1]))
    if not rows:
        raise InputError("pairs manifest lists no pairs", name,
                         "write one 'restored,gt' pair per line")
    return _keyed([(w, r, g) for _, w, r, g in rows])


def _keyed(rows: list[tuple[str, Path, Path]]) -> Pairing:
    """Pairs ``(restored as written, restored, gt)`` keyed by :func:`_manifest_keys`, sorted."""
    keys = _manifest_keys([w for w, _, _ in rows])
    pairs = [Pair(k, r, g) for k, (_, r, g) in zip(keys, rows)]
    return Pairing(pairs=sorted(pairs, key=lambda p: p.key))


def pairs_from_paths(items: list[tuple[Path, Path]]) -> Pairing:
    """Explicit ``(restored, gt)`` paths, keyed as a ``--pairs`` manifest keys them. Every path
    must be a file and no pair may repeat (``InputError`` naming the path otherwise)."""
    rows: list[tuple[str, Path, Path]] = []
    seen: set[tuple[str, str]] = set()
    for restored, gt in items:
        for p, role in ((restored, "restored"), (gt, "ground-truth")):
            if not p.is_file():
                what = "is not a file" if p.exists() else "does not exist"
                raise InputError(f"{role} file {what}", p, "fix the path")
        ident = (os.path.normpath(restored), os.path.normpath(gt))
        if ident in seen:
            raise InputError("the pair is given twice", restored, "remove the duplicate")
        seen.add(ident)
        rows.append((str(restored), restored, gt))
    if not rows:
        raise InputError("no pairs given", None, "pass at least one (restored, gt) pair")
    return _keyed(rows)
