"""The feature file a shard's part carries for the set metrics (FID, KID), so that ``hlcli merge``
computes them over the whole run exactly as a single run does.

A set metric is not a mean of per-pair values: FID needs the features' covariance and KID needs
every feature vector (its kernel sums run over pairs of samples across shards). So each part
writes, beside its JSON document, one ``.npy`` file (numpy's format 1.0, read with
``allow_pickle=False``: data, never code) holding a float64 array of shape ``2 x N x D``: the
restored samples' features (``[0]``) and the ground truth's (``[1]``), N samples (images, or
patches with ``--fid-patches``) in the part's canonical pair order, D = ``--fid-dims``. The part's
JSON records, under ``set_features``::

    {"file": "part-0.json.fid.npy", "sha256": "<64 hex>", "samples": N, "dims": D,
     "counts": [samples of each scored pair, in the order of "pairs"]}

The file name is relative to the part (a bare name: no directories), the sha256 is that of the
whole file, and ``sum(counts) == N``. The merge concatenates the parts' arrays in canonical order:
the same float64 rows in the same order as a single run, so the same FID and KID to the last bit
when the features are (and to 1e-9 relative in any case).
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_path

SUFFIX = ".fid.npy"
_NAME = re.compile(r"^[A-Za-z0-9._+-]{1,200}$")


class FeatureFileError(ValueError):
    """A feature file or its record that is not what the part says (the message says what)."""


def file_name_for(part: str | os.PathLike[str]) -> str:
    return Path(part).name + SUFFIX


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write(part: str | os.PathLike[str], restored: np.ndarray, ground_truth: np.ndarray,
          counts: list[int]) -> dict[str, Any]:
    """Write the feature file beside ``part`` (atomically) and return the record for its JSON."""
    r = np.ascontiguousarray(restored, dtype=np.float64)
    g = np.ascontiguousarray(ground_truth, dtype=np.float64)
    if r.shape != g.shape or r.ndim != 2 or sum(counts) != r.shape[0]:
        raise ValueError(f"inconsistent features {r.shape} / {g.shape} for {sum(counts)} samples")
    arr = np.stack([r, g])
    path = Path(part).with_name(file_name_for(part))
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, arr, allow_pickle=False)
    return {"file": path.name, "sha256": sha256_of(path), "samples": int(r.shape[0]), "dims": int(r.shape[1]),
            "counts": [int(c) for c in counts]}


def check_record(rec: Any, pairs: int) -> dict[str, Any]:
    """Cross-field checks of a part's ``set_features`` record (the schema checks the types)."""
    if not isinstance(rec, dict):
        raise FeatureFileError("set_features is not an object")
    name = rec.get("file")
    if not isinstance(name, str) or not _NAME.match(name) or name in (".", ".."):
        raise FeatureFileError(f"set_features.file {name!r} is not a bare file name")
    sha = rec.get("sha256")
    if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise FeatureFileError("set_features.sha256 is not 64 lower-case hex digits")
    counts = rec.get("counts")
    samples, dims = rec.get("samples"), rec.get("dims")
    if not isinstance(counts, list) or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0
                                               for c in counts):
        raise FeatureFileError("set_features.counts is not a list of sample counts")
    if len(counts) != pairs:
        raise FeatureFileError(f"set_features.counts has {len(counts)} entries for {pairs} scored pairs")
    if not isinstance(samples, int) or isinstance(samples, bool) or samples != sum(counts):
        raise FeatureFileError(f"set_features.samples {samples!r} is not the sum of counts ({sum(counts)})")
    if dims not in (64, 192, 768, 2048):
        raise FeatureFileError(f"set_features.dims {dims!r} is not one of 64, 192, 768, 2048")
    return rec


def read(part: str | os.PathLike[str], rec: dict[str, Any], pairs: int) -> tuple[np.ndarray, np.ndarray]:
    """The (restored, ground truth) features of the part ``part`` whose JSON holds ``rec``,
    verified: record, sha256, npy header (float64, ``2 x samples x dims``, C order), finite values."""
    check_record(rec, pairs)
    path = Path(part).with_name(rec["file"])
    if not path.is_file():
        raise FeatureFileError(f"the part's feature file {path.name} is missing (it is written beside the part)")
    if sha256_of(path) != rec["sha256"]:
        raise FeatureFileError(f"the feature file {path.name} does not match the sha256 its part records "
                               "(changed or from another run)")
    try:
        with path.open("rb") as fh:
            version = np.lib.format.read_magic(fh)
            if version != (1, 0):
                raise FeatureFileError(f"the feature file {path.name} is npy format {version}, expected 1.0")
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            want = (2, rec["samples"], rec["dims"])
            if dtype != np.dtype("<f8") or fortran or tuple(shape) != want:
                raise FeatureFileError(f"the feature file {path.name} holds {dtype} {tuple(shape)}"
                                       f"{' (Fortran order)' if fortran else ''}, expected float64 {want}")
            arr = np.fromfile(fh, dtype="<f8", count=int(np.prod(want)))
            if arr.size != int(np.prod(want)) or fh.read(1):
                raise FeatureFileError(f"the feature file {path.name} has the wrong length")
    except (ValueError, OSError) as exc:
        if isinstance(exc, FeatureFileError):
            raise
        raise FeatureFileError(f"the feature file {path.name} is not a valid npy file ({exc})") from None
    arr = arr.reshape(want)
    if not np.isfinite(arr).all():
        raise FeatureFileError(f"the feature file {path.name} holds non-finite values")
    return arr[0], arr[1]


def write_part_features(part: str | os.PathLike[str], run: Any) -> dict[str, Any]:
    """Write ``run``'s set features beside its part ``part`` (pairs in key order) and record
    them in the document (``set_features`` at the top level)."""
    keys = sorted(p.key for p in run.pairs)
    dims = int((run.settings.get("fid") or {}).get("dims", 2048))
    rows = [run.set_features[k] for k in keys]
    r = np.concatenate([a for a, _ in rows]) if rows else np.empty((0, dims))
    g = np.concatenate([b for _, b in rows]) if rows else np.empty((0, dims))
    record = write(part, r, g, [len(a) for a, _ in rows])
    run.environment["set_features"] = record
    return record


def read_part_features(part: str | os.PathLike[str], doc: dict[str, Any]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per pair key, the (restored, ground truth) features a part carries (see :func:`read`)."""
    pairs = doc.get("pairs", [])
    rec = doc.get("set_features")
    if rec is None:
        raise FeatureFileError("the part records no set_features (its FID/KID features): rescore that shard "
                               "with a version of hlcli that writes them")
    r, g = read(part, rec, len(pairs))
    out, start = {}, 0
    for p, n in zip(pairs, rec["counts"]):
        out[p["key"]] = (r[start:start + n], g[start:start + n])
        start += n
    return out
