"""ImageNet backbone weights: where they are looked for, how they are verified, cached and fetched.

Three torchvision checkpoints, one code path, described by a :class:`NetSpec` each:

* ``vgg19``: VGG-19 ``IMAGENET1K_V1`` for the hybrid loss (``--weights``, ``$HLCLI_WEIGHTS``),
* ``alexnet``: AlexNet ``IMAGENET1K_V1``, the backbone of LPIPS (``--lpips-weights``,
  ``$HLCLI_LPIPS_WEIGHTS``),
* ``vgg16``: VGG-16 ``IMAGENET1K_V1``, the backbone of LPIPS-VGG and DISTS (``--vgg16-weights``,
  ``$HLCLI_VGG16_WEIGHTS``; the old names ``--lpips-vgg-weights``, ``$HLCLI_LPIPS_VGG_WEIGHTS`` still work).

DISTS' alpha/beta and NIQE's pristine model are small data files, not torchvision checkpoints:
:mod:`hlcli.nets.datafiles` resolves them.

Resolution order (first hit wins):

1. the network's option (the ``explicit`` argument),
2. its environment variable,
3. the torch hub cache, ``$TORCH_HOME/hub/checkpoints/<torchvision's file name>``,
4. a download of torchvision's checkpoint into that cache (hash-checked, progress on stderr),
   never with ``offline=True``.

A weights file is data, never code: it is read with ``torch.load(weights_only=True)`` and every
key and shape the network needs is checked before use. Both torchvision's full checkpoint and a
``features.*``-only state dict are accepted.

Loading torchvision's 548 MB legacy-format checkpoint costs about a second per run, so after the
first verified load hlcli keeps a compact copy (the conv layers of ``features`` only, zip format
that can be memory-mapped) in its own cache, keyed by the source file's sha256. The source's
sha256 is itself cached by (path, size, mtime), so a warm run neither re-hashes nor re-reads it.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import os
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
import warnings

from ..atomic import atomic_path
from ..errors import HlcliEnvironmentError
from ..text import key_mismatch
from .netspecs import DEFAULT_NET, EXPECTED_SHAPES, NETS, NetSpec, get_spec

__all__ = ["EXPECTED_SHAPES", "NETS", "NetSpec", "get_spec"]  # re-exported from .netspecs

ENV_CACHE = "HLCLI_CACHE"
COMPACT_FORMAT = 1

# VGG-19's values under their historical names.
WEIGHTS_URL = NETS["vgg19"].url
WEIGHTS_FILENAME = NETS["vgg19"].filename
OFFICIAL_SHA256_PREFIX = NETS["vgg19"].sha256_prefix
ENV_WEIGHTS = NETS["vgg19"].env
FIX_OFFLINE = NETS["vgg19"].fix_offline


def torch_home() -> Path:
    """torch's hub root, computed as ``torch.hub.get_dir()`` does, without importing torch."""
    env = os.environ.get("TORCH_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(xdg).expanduser() / "torch"


def hub_checkpoint_path(net: str = DEFAULT_NET) -> Path:
    return torch_home() / "hub" / "checkpoints" / get_spec(net).filename


def cache_dir() -> Path:
    """hlcli's own cache (compact weights, sha256 index): ``$HLCLI_CACHE`` or
    ``$XDG_CACHE_HOME/hlcli`` (default ``~/.cache/hlcli``)."""
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(xdg).expanduser() / "hlcli"


@dataclass(frozen=True)
class Candidate:
    source: str  # "option", "env", "torch-cache", "download"
    path: Path
    exists: bool


def candidates(explicit: str | os.PathLike[str] | None = None, *, net: str = DEFAULT_NET) -> list[Candidate]:
    """Every place ``net``'s weights are looked for, in order (for ``hlcli weights show``)."""
    spec = get_spec(net)
    out = []
    if explicit is not None:
        out.append(Candidate("option", Path(explicit), Path(explicit).is_file()))
    env = os.environ.get(env_name(spec))
    if env:
        out.append(Candidate("env", Path(env).expanduser(), Path(env).expanduser().is_file()))
    hub = hub_checkpoint_path(net)
    out.append(Candidate("torch-cache", hub, hub.is_file()))
    return out


def env_name(spec: NetSpec) -> str:
    """The environment variable that names ``spec``'s file: ``spec.env``, else the first of its
    old names that is set (``$HLCLI_LPIPS_VGG_WEIGHTS`` for VGG-16), else ``spec.env``."""
    return next((v for v in (spec.env, *spec.old_env) if os.environ.get(v)), spec.env)


@dataclass(frozen=True)
class ResolvedWeights:
    path: Path
    source: str  # "option", "env", "torch-cache", "download"
    net: str = DEFAULT_NET


def resolve(explicit=None, *, offline: bool = False, progress: bool = True,
            net: str = DEFAULT_NET) -> ResolvedWeights:
    """Find ``net``'s weights file, downloading it into the torch hub cache as the last resort."""
    spec = get_spec(net)
    for cand in candidates(explicit, net=net):
        if cand.exists:
            return ResolvedWeights(cand.path, cand.source, net)
        if cand.source in ("option", "env"):
            # The user named a file: never fall through to another one silently.
            how = spec.option if cand.source == "option" else f"${env_name(spec)}"
            fix = (f"check the path, or leave out {spec.option} to use the torch cache" if cand.source == "option"
                   else f"check the path, pass {spec.option} FILE, or unset {how} to use the torch cache")
            raise HlcliEnvironmentError(f"weights file given by {how} does not exist", cand.path, fix)
    if offline:
        raise HlcliEnvironmentError(
            f"{spec.title} weights not found and --offline forbids a download", hub_checkpoint_path(net),
            spec.fix_offline,
        )
    return ResolvedWeights(download(progress=progress, net=net), "download", net)


def download(*, progress: bool = True, force: bool = False, net: str = DEFAULT_NET) -> Path:
    """Download torchvision's ``IMAGENET1K_V1`` checkpoint of ``net`` into the torch hub cache,
    checking its sha256 prefix. Uses torch.hub's downloader (temp file, hash check, atomic rename)."""
    import torch.hub  # lazy: keeps torch off the cheap paths (import hlcli, --help, reading runs)

    spec = get_spec(net)
    dst = hub_checkpoint_path(net)
    if dst.is_file() and not force:
        return dst
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(
            spec.url, str(dst), hash_prefix=spec.sha256_prefix, progress=progress
        )
    except Exception as exc:  # URLError, HTTPError, RuntimeError (hash mismatch), OSError
        raise HlcliEnvironmentError(
            f"could not download the {spec.title} weights from {spec.url}: {exc}", dst, spec.fix_offline
        ) from exc
    return dst


# --------------------------------------------------------------------------------------------
# sha256, with a small index so that a warm run does not re-hash 548 MB.


def _index_path() -> Path:
    return cache_dir() / "sha256-index.json"


def _read_index() -> dict[str, Any]:
    try:
        data = json.loads(_index_path().read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}



def file_sha256(path: Path, *, use_index: bool = True) -> str:
    """sha256 of ``path``; remembered by (real path, size, mtime_ns) in hlcli's cache."""
    st = path.stat()
    key = str(path.resolve())
    stamp = [st.st_size, st.st_mtime_ns]
    index = _read_index() if use_index else {}
    entry = index.get(key)
    if isinstance(entry, dict) and entry.get("stamp") == stamp and isinstance(entry.get("sha256"), str):
        return entry["sha256"]
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            digest.update(chunk)
    sha = digest.hexdigest()
    if use_index:
        index = _read_index()
        index[key] = {"stamp": stamp, "sha256": sha}
        try:
            _index_path().parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(_index_path()) as tmp:
                tmp.write_text(json.dumps(index, indent=1), encoding="utf-8")
        except OSError:
            pass  # a read-only cache only costs speed
    return sha


# --------------------------------------------------------------------------------------------
# Loading and verification.


# Whether a load error's fix names the command-line option (``--weights FILE``) or the Python
# argument (``weights=PATH``): hlcli.cli sets it for the duration of a command.
CLI_OPTIONS: contextvars.ContextVar[bool] = contextvars.ContextVar("hlcli_cli_options", default=False)


def how_to_pass(spec: Any) -> str:
    """How the user names ``spec``'s file where they are: ``--weights FILE`` or ``weights=PATH``."""
    if CLI_OPTIONS.get():
        return f"{spec.option} FILE"
    return f"{spec.option.lstrip('-').replace('-', '_')}=PATH"


def _not_loadable(path: Path, exc: Exception) -> str:
    """What ``path`` is not, in hlcli's words (never torch's text, which advises turning
    ``weights_only`` off: that would run code from the file)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
    except OSError as err:
        return f"cannot read the weights file ({err.strerror or type(err).__name__})"
    if zipfile.is_zipfile(path) or head[:1] == b"\x80" or head == b"PK":
        if "weights only" in str(exc).lower() or type(exc).__name__ == "UnpicklingError":
            return ("the weights file holds Python objects, not only tensors (a pickled model or code); "
                    "hlcli reads weights as data and never runs code from them")
        return "the weights file is a damaged or truncated PyTorch checkpoint"
    return "the weights file is not a PyTorch checkpoint (neither a zip archive nor a pickle of tensors)"


def _torch_load(path: Path, net: str = DEFAULT_NET) -> Any:
    import torch  # lazy: keeps torch off the cheap paths (import hlcli, --help, reading runs)

    kwargs: dict[str, Any] = {"map_location": "cpu", "weights_only": True}
    if zipfile.is_zipfile(path):
        kwargs["mmap"] = True  # only the new zip format can be memory-mapped
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. torch's "Detected pickle protocol 4" on a hostile file
            return torch.load(str(path), **kwargs)
    except Exception as exc:  # pickle errors, "Weights only load failed", truncated zip, ...
        spec = get_spec(net)
        raise HlcliEnvironmentError(
            _not_loadable(path, exc), path,
            f"use torchvision's {spec.filename} (`{spec.download_command}`), or a state_dict() of "
            f"{spec.title} saved with torch.save, passed as {how_to_pass(spec)}",
        ) from None


def extract_features(obj: Any, path: Path | None, net: str = DEFAULT_NET) -> dict[str, Any]:
    """Check ``obj`` is torchvision's state dict of ``net`` (full or ``features.*`` only) and
    return its conv tensors, verified key by key and shape by shape. ``path`` names the file in
    errors (None for a state dict given in code)."""
    import torch  # lazy: keeps torch off the cheap paths (import hlcli, --help, reading runs)

    spec = get_spec(net)
    if net == "inception":  # pytorch-fid's network: its own key and shape table
        from .inception import StateDictError, check_state_dict  # lazy: keeps torch off the cheap paths

        try:
            return check_state_dict(obj)
        except StateDictError as exc:
            raise HlcliEnvironmentError(
                f"weights file {exc}", path,
                f"use pytorch-fid's {spec.filename} (`{spec.download_command}`), or a state_dict() of its "
                f"fid_inception_v3(), passed as {how_to_pass(spec)}",
            ) from None
    if not isinstance(obj, dict):
        raise HlcliEnvironmentError(
            f"weights file holds a {type(obj).__name__}, not a state dict", path,
            f"use torchvision's {spec.filename} or a dict of its features.* tensors",
        )
    feature_keys = {k for k in obj if isinstance(k, str) and k.startswith("features.")}
    expected = {f"{p}.{s}" for p in spec.expected_shapes for s in ("weight", "bias")}
    missing = sorted(expected - feature_keys, key=_natural)
    unexpected = sorted(feature_keys - expected, key=_natural)
    if missing or unexpected:
        raise HlcliEnvironmentError(
            f"not {'an' if spec.title[0] in 'AEIOU' else 'a'} {spec.title} state dict "
            f"({key_mismatch(missing, unexpected)})", path,
            f"use torchvision's {spec.name} IMAGENET1K_V1 checkpoint ({spec.filename})",
        )
    out = {}
    for prefix, (w_shape, b_shape) in spec.expected_shapes.items():
        for suffix, shape in (("weight", w_shape), ("bias", b_shape)):
            key = f"{prefix}.{suffix}"
            t = obj[key]
            if not isinstance(t, torch.Tensor) or not t.is_floating_point():
                raise HlcliEnvironmentError(
                    f"weights entry {key} is not a floating-point tensor", path,
                    f"use torchvision's {spec.filename}",
                )
            if tuple(t.shape) != shape:
                raise HlcliEnvironmentError(
                    f"weights entry {key} has shape {tuple(t.shape)}, expected {shape}", path,
                    f"this is not {spec.title}; use torchvision's {spec.filename}",
                )
            out[key] = t
    return out


def _natural(key: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in key.split("."))


@dataclass(frozen=True)
class LoadedWeights:
    """Verified weights of one network: ``state_dict`` (for :class:`hlcli.HybridLoss` when
    ``net`` is ``vgg19``, for :class:`hlcli.nets.lpips_net.LPIPSNet` when it is ``alexnet`` or
    ``vgg16``), and where they came from (``sha256`` is what ``hlcli score -f json`` records).

    >>> w = hlcli.load_weights("vgg19-dcbb9e9d.pth")     # doctest: +SKIP
    >>> loss_fn = hlcli.HybridLoss(w.state_dict)         # doctest: +SKIP
    """

    state_dict: dict[str, Any]  # the features.* conv tensors, float32, verified
    path: Path
    source: str
    sha256: str  # of the source file
    official: bool  # sha256 starts with torchvision's published prefix
    compact_cache: Path | None  # the compact copy used or written, if any
    net: str = DEFAULT_NET


def _compact_path(sha: str, net: str = DEFAULT_NET) -> Path:
    return cache_dir() / f"{net}-features-{sha[:16]}.pt"


def load(resolved: ResolvedWeights, *, use_cache: bool = True) -> LoadedWeights:
    """Load and verify the weights in ``resolved``; uses/writes the compact cache."""
    import torch  # lazy: keeps torch off the cheap paths (import hlcli, --help, reading runs)

    net = resolved.net
    spec = get_spec(net)
    path = resolved.path
    sha = file_sha256(path, use_index=use_cache)
    official = sha.startswith(spec.sha256_prefix)
    if resolved.source in ("torch-cache", "download") and not official:
        raise HlcliEnvironmentError(
            f"the cached checkpoint's sha256 {sha[:16]}... does not match torchvision's "
            f"({spec.sha256_prefix}...): the file is corrupt or not the official one", path,
            f"delete it and run `{spec.download_command}`, or pass {spec.option} FILE to use a file "
            "of your own (its numbers are not comparable with the official weights')",
        )
    compact = _compact_path(sha, net)
    if use_cache and compact.is_file():
        obj = _torch_load(compact, net)
        if (
            isinstance(obj, dict)
            and obj.get("hlcli_compact") == COMPACT_FORMAT
            and obj.get("source_sha256") == sha
        ):
            try:
                state = extract_features(obj.get("state_dict"), compact, net)
                return LoadedWeights(state, path, resolved.source, sha, official, compact, net)
            except HlcliEnvironmentError:
                pass  # a damaged cache entry: fall back to the source and rewrite it
    state = extract_features(_torch_load(path, net), path, net)
    state = {k: v.detach().to(torch.float32).contiguous() for k, v in state.items()}
    written = None
    if use_cache:
        try:
            compact.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(compact) as tmp:
                torch.save(
                    {"hlcli_compact": COMPACT_FORMAT, "source_sha256": sha, "state_dict": state}, tmp
                )
            written = compact
        except OSError:
            pass  # a read-only cache only costs speed
    return LoadedWeights(state, path, resolved.source, sha, official, written, net)


def import_file(src: Path, *, force: bool = False, net: str = DEFAULT_NET) -> Path:
    """Verify ``src`` and copy it into the torch hub cache under torchvision's name. Only the
    official checkpoint may go there (its sha256 must match torchvision's published prefix)."""
    spec = get_spec(net)
    if not src.is_file():
        raise HlcliEnvironmentError("no such weights file", src, "check the path")
    extract_features(_torch_load(src, net), src, net)
    sha = file_sha256(src)
    if not sha.startswith(spec.sha256_prefix):
        raise HlcliEnvironmentError(
            f"file is a valid {spec.title} state dict but not torchvision's IMAGENET1K_V1 checkpoint "
            f"(sha256 {sha[:16]}..., expected {spec.sha256_prefix}...)", src,
            f"use it directly with {spec.option} FILE or ${spec.env} instead of importing it",
        )
    dst = hub_checkpoint_path(net)
    if dst.is_file() and not force and file_sha256(dst) == sha:
        return dst
    dst.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
    return dst


def load_weights(path: str | os.PathLike[str] | None = None, *, offline: bool = False,
                 progress: bool = False, net: str = DEFAULT_NET) -> LoadedWeights:
    """Find, verify and load the weights of ``net`` (``vgg19``, the default; ``alexnet`` or
    ``vgg16`` for LPIPS) in ``hlcli score``'s order: ``path``, the network's environment variable
    (``$HLCLI_WEIGHTS``, ``$HLCLI_LPIPS_WEIGHTS``, ``$HLCLI_VGG16_WEIGHTS``), the torch hub
    cache, then a hash-checked download (never with ``offline``). Raises
    :class:`~hlcli.HlcliEnvironmentError` when none can be had.

    >>> w = hlcli.load_weights(offline=True)   # doctest: +SKIP
    >>> w.sha256[:8], w.official               # doctest: +SKIP
    ('dcbb9e9d', True)
    """
    return load(resolve(path, offline=offline, progress=progress, net=net))
