"""The small data files two metrics need beside a backbone: DISTS' learned weights (alpha, beta)
and NIQE's pristine model. Resolved, verified and cached like the backbones (:mod:`hlcli.weights`),
each described by a :class:`DataSpec`:

* ``dists``: ``weights.pt`` of the dists-pytorch package (0.1, MIT), 12,288 bytes, a torch
  pickle of ``{'alpha', 'beta'}`` float32 (1, 1475, 1, 1). Order: ``--dists-weights FILE``,
  ``$HLCLI_DISTS_WEIGHTS``, hlcli's cache (``hlcli weights import --net dists FILE``), the file
  of an installed ``dists-pytorch`` (the extra ``hlcli[dists]``; never imported, only read).
* ``niqe``: BasicSR's ``niqe_pris_params.npz`` (the LIVE model of the MATLAB release), 11,850
  bytes. Order: ``--niqe-params FILE``, ``$HLCLI_NIQE_PARAMS``, hlcli's cache (``hlcli weights
  import --net niqe FILE``), then a download from BasicSR's repository (v1.4.2) into the cache,
  sha256-checked, never with ``--offline``.

Files are data, never code: ``torch.load(weights_only=True)`` and ``np.load(allow_pickle=False)``,
then every key and shape checked. A file named by option or variable may be any file of the
right form (its numbers are then not comparable with the official file's, and the run says so);
the cache holds only the official file (its sha256).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: numpy and torch stay lazy
    import numpy as np
    import torch

from ..errors import HlcliEnvironmentError

DISTS_EXTRA_FIX = "pip install 'hlcli[dists]'"

ALPHA_BETA_SHAPE = (1, 1475, 1, 1)  # 3 + 64 + 128 + 256 + 512 + 512 channels
PARAMS_KEYS = {"mu_pris_param": (1, 36), "cov_pris_param": (36, 36), "gaussian_window": (7, 7)}


def check_alpha_beta(obj: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """``obj`` must be a dict of exactly ``alpha`` and ``beta``, finite floating tensors >= 0 of
    shape (1, 1475, 1, 1) whose total is not 0. ``ValueError`` saying what is wrong."""
    import torch

    if not isinstance(obj, Mapping):
        raise ValueError(f"holds a {type(obj).__name__}, not a dict of 'alpha' and 'beta'")
    if set(obj) != {"alpha", "beta"}:
        raise ValueError(f"expected the keys 'alpha' and 'beta', found {sorted(map(str, obj))[:6]}")
    out = []
    for key in ("alpha", "beta"):
        t = obj[key]
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise ValueError(f"{key} is not a floating-point tensor")
        if tuple(t.shape) != ALPHA_BETA_SHAPE:
            raise ValueError(f"{key} has shape {tuple(t.shape)}, expected {ALPHA_BETA_SHAPE}")
        if not torch.isfinite(t).all() or bool((t < 0).any()):
            raise ValueError(f"{key} must be finite and >= 0 (DISTS then lies in [0, 1])")
        out.append(t.detach().to(torch.float32).contiguous())
    if float(out[0].double().sum() + out[1].double().sum()) == 0.0:
        raise ValueError("alpha and beta sum to 0")
    return out[0], out[1]


def read_alpha_beta(path) -> tuple[Any, Any]:
    """Read a DISTS weights file with ``torch.load(weights_only=True)`` (data, never code) and
    check it (:func:`check_alpha_beta`). ``ValueError`` for an unreadable or wrong file."""
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # an unpickler refusal (code in the file), a truncated file, ...
        first = (str(exc).splitlines() or [""])[0][:120]
        raise ValueError(f"not a DISTS weights file ({type(exc).__name__}: {first})") from None
    return check_alpha_beta(obj)


@dataclass(frozen=True)
class NIQEParams:
    """The pristine model (``niqe_pris_params.npz``): mean (36,), covariance (36, 36), the 7x7
    Gaussian window, all float64."""

    mu: np.ndarray
    cov: np.ndarray
    window: np.ndarray


def read_niqe_params(path) -> NIQEParams:
    """Read an ``.npz`` pristine model: numbers only (``allow_pickle=False``), exactly the keys
    and shapes of BasicSR's file, finite. ``ValueError`` saying what is wrong otherwise."""
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: np.asarray(z[k]) for k in z.files}
    except (OSError, ValueError, EOFError) as e:  # not an npz / pickled objects / truncated
        raise ValueError(f"not a NIQE parameter file (.npz of numbers): {e}") from None
    if set(arrays) != set(PARAMS_KEYS):
        raise ValueError(f"expected the arrays {', '.join(sorted(PARAMS_KEYS))}, found {', '.join(sorted(arrays)) or 'none'}")
    for k, shape in PARAMS_KEYS.items():
        a = arrays[k]
        if a.shape != shape or a.dtype.kind != "f" or not np.isfinite(a).all():
            raise ValueError(f"{k} must be finite floats of shape {shape}, found {a.dtype} {a.shape}")
    return NIQEParams(arrays["mu_pris_param"].astype(np.float64).reshape(36),
                      arrays["cov_pris_param"].astype(np.float64), arrays["gaussian_window"].astype(np.float64))




@dataclass(frozen=True)
class DataSpec:
    name: str  # the --net value of `hlcli weights`
    title: str
    filename: str  # its name in hlcli's cache
    sha256: str  # the official file's
    size: int
    env: str
    option: str
    used_by: str
    url: str | None = None  # where a missing file is downloaded from (niqe)
    package: str | None = None  # an installed package that ships it (dists): (import name)
    package_file: str | None = None

    @property
    def import_command(self) -> str:
        return f"hlcli weights import --net {self.name}"

    @property
    def fix_missing(self) -> str:
        if self.url:
            return (f"drop --offline to download it, or fetch {self.url} elsewhere and run "
                    f"`{self.import_command} FILE`, or pass {self.option} FILE")
        return (f"{DISTS_EXTRA_FIX}, or run `{self.import_command} FILE` with dists-pytorch's "
                f"{self.package_file}, or pass {self.option} FILE")


SPECS: dict[str, DataSpec] = {
    s.name: s
    for s in (
        DataSpec("dists", "DISTS weights (alpha, beta)", "dists-weights.pt",
                 "f5e65c96230b7f6ca995691647d482237e4cab8a50c5c4a5784f219ef0748218", 12288,
                 "HLCLI_DISTS_WEIGHTS", "--dists-weights", "DISTS (--metrics dists)",
                 package="DISTS_pytorch", package_file="weights.pt"),
        DataSpec("niqe", "NIQE pristine model", "niqe_pris_params.npz",
                 "2a7c182a68c9e7f1b2e2e5ec723279d6f65d912b6fcaf37eb2bf03d7367c4296", 11850,
                 "HLCLI_NIQE_PARAMS", "--niqe-params", "NIQE (--metrics niqe)",
                 url="https://raw.githubusercontent.com/XPixelGroup/BasicSR/v1.4.2/basicsr/metrics/niqe_pris_params.npz"),
    )
}


@dataclass(frozen=True)
class Candidate:
    source: str  # "option", "env", "cache", "package", "download"
    path: Path
    exists: bool


def _package_file(spec: DataSpec) -> Path | None:
    """The file an installed package ships, found without importing the package."""
    import importlib.util

    if not spec.package:
        return None
    try:
        found = importlib.util.find_spec(spec.package)
    except (ImportError, ValueError):
        return None
    locations = list(found.submodule_search_locations or []) if found is not None else []
    return Path(locations[0]) / spec.package_file if locations else None


def candidates(name: str, explicit: str | os.PathLike[str] | None = None) -> list[Candidate]:
    """Every place ``name``'s file is looked for, in order (for ``hlcli weights show``)."""
    from .weights import cache_dir

    spec = SPECS[name]
    out = []
    if explicit is not None:
        out.append(Candidate("option", Path(explicit), Path(explicit).is_file()))
    env = os.environ.get(spec.env)
    if env:
        p = Path(env).expanduser()
        out.append(Candidate("env", p, p.is_file()))
    cached = cache_dir() / spec.filename
    out.append(Candidate("cache", cached, cached.is_file()))
    pkg = _package_file(spec)
    if pkg is not None:
        out.append(Candidate("package", pkg, pkg.is_file()))
    return out


@dataclass(frozen=True)
class LoadedData:
    """A verified data file: ``value`` (DISTS: (alpha, beta); NIQE: :class:`NIQEParams`) and its provenance."""

    name: str
    value: Any
    path: Path
    source: str
    sha256: str
    official: bool

    def record(self) -> dict[str, Any]:
        return {"path": str(self.path), "source": self.source, "sha256": self.sha256, "official": self.official}


def _read(spec: DataSpec, path: Path) -> Any:
    """Parse and check the file (``ValueError`` saying what is wrong)."""
    return read_alpha_beta(path) if spec.name == "dists" else read_niqe_params(path)


def _load(spec: DataSpec, path: Path, source: str) -> LoadedData:
    from .weights import file_sha256

    sha = file_sha256(path)
    official = sha == spec.sha256
    if source in ("cache", "download", "package") and not official:
        fix = (f"reinstall it ({DISTS_EXTRA_FIX})" if source == "package" else
               f"delete it and run `{spec.import_command} FILE` with the official file")
        raise HlcliEnvironmentError(
            f"the {spec.title} file's sha256 {sha[:16]}... is not the official one ({spec.sha256[:16]}...)",
            path, fix + f", or pass {spec.option} FILE to use a file of your own")
    try:
        value = _read(spec, path)
    except ValueError as exc:
        raise HlcliEnvironmentError(f"not a {spec.title} file: {exc}", path,
                                    f"use the official {spec.filename} ({spec.size} bytes), passed as {spec.option} FILE") from None
    return LoadedData(spec.name, value, path, source, sha, official)


def load(name: str, explicit: str | os.PathLike[str] | None = None, *, offline: bool = False,
         progress: bool = False) -> LoadedData:
    """Find, verify and load ``name``'s file (see the module doc for the order)."""
    spec = SPECS[name]
    for cand in candidates(name, explicit):
        if cand.exists:
            return _load(spec, cand.path, cand.source)
        if cand.source in ("option", "env"):
            how = spec.option if cand.source == "option" else f"${spec.env}"
            raise HlcliEnvironmentError(f"{spec.title} file given by {how} does not exist", cand.path,
                                        "check the path")
    if spec.url is None or offline:
        from .weights import cache_dir

        why = "--offline forbids a download" if spec.url else "none is installed"
        raise HlcliEnvironmentError(f"{spec.title} not found and {why}", cache_dir() / spec.filename,
                                    spec.fix_missing)
    return _load(spec, download(name, progress=progress), "download")


def download(name: str, *, progress: bool = False, force: bool = False) -> Path:
    """Download ``name``'s official file into hlcli's cache, sha256-checked."""
    import torch.hub

    from .weights import cache_dir

    spec = SPECS[name]
    dst = cache_dir() / spec.filename
    if spec.url is None:
        raise HlcliEnvironmentError(f"the {spec.title} has no download", None, spec.fix_missing)
    if dst.is_file() and not force:
        return dst
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(spec.url, str(dst), hash_prefix=spec.sha256, progress=progress)
    except Exception as exc:  # URLError, HTTPError, RuntimeError (hash mismatch), OSError
        raise HlcliEnvironmentError(f"could not download the {spec.title} from {spec.url}: {exc}", dst,
                                    spec.fix_missing) from exc
    return dst


def import_file(name: str, src: Path, *, force: bool = False) -> Path:
    """Verify ``src`` and copy it into hlcli's cache; only the official file (its sha256) goes there."""
    import shutil

    from ..atomic import atomic_path
    from .weights import cache_dir, file_sha256

    spec = SPECS[name]
    if not src.is_file():
        raise HlcliEnvironmentError("no such file", src, "check the path")
    loaded = _load(spec, src, "option")
    if not loaded.official:
        raise HlcliEnvironmentError(
            f"file is a valid {spec.title} file but not the official one (sha256 {loaded.sha256[:16]}..., "
            f"expected {spec.sha256[:16]}...)", src, f"use it directly with {spec.option} FILE or ${spec.env}")
    dst = cache_dir() / spec.filename
    if dst.is_file() and not force and file_sha256(dst) == loaded.sha256:
        return dst
    dst.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
    return dst
