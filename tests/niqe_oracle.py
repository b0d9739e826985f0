"""BasicSR 1.4.2's own NIQE (``basicsr/metrics/niqe.py`` with ``utils/matlab_functions.py``;
Apache-2.0, XPixelGroup) as the oracle of the NIQE agreement tests, executed from the release's
sdist (``basicsr-1.4.2.tar.gz`` from PyPI, sha256 checked), never copied into this repository.

``.ci/run`` downloads the sdist with pip (no install: BasicSR's package pulls in its whole
training stack) into ``.ci/cache/``; ``$HLCLI_BASICSR_SDIST`` names another copy. Only the
modules ``niqe.py`` needs are executed, by file path, under stub ``basicsr`` packages (BasicSR's
``__init__`` imports its models, data and training code): ``utils/registry.py``,
``utils/color_util.py``, ``metrics/metric_util.py``, ``utils/matlab_functions.py`` and
``metrics/niqe.py`` (which imports ``scipy.ndimage.filters``, deprecated since SciPy 1.8: the
stub maps it to ``scipy.ndimage`` if a SciPy no longer has it).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tarfile
import tempfile
import types
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SDIST = "basicsr-1.4.2.tar.gz"
SDIST_SHA256 = "b89b595a87ef964cda9913b4d99380ddb6554c965577c0c10cb7b78e31301e87"
FETCH = f"python -m pip download --no-deps --no-binary basicsr basicsr==1.4.2 -d .ci/cache"
MEMBERS = ("basicsr/utils/registry.py", "basicsr/utils/color_util.py", "basicsr/metrics/metric_util.py",
           "basicsr/utils/matlab_functions.py", "basicsr/metrics/niqe.py", "basicsr/metrics/niqe_pris_params.npz")


def sdist_path() -> Path:
    env = os.environ.get("HLCLI_BASICSR_SDIST")
    return Path(env) if env else ROOT / ".ci" / "cache" / SDIST


def missing_reason() -> str | None:
    """Why the oracle cannot run here (None: it can)."""
    p = sdist_path()
    if not p.is_file():
        return f"BasicSR 1.4.2's sdist is not at {p}: run `{FETCH}` (.ci/run does) or set $HLCLI_BASICSR_SDIST"
    sha = hashlib.sha256(p.read_bytes()).hexdigest()
    if sha != SDIST_SHA256:
        return f"{p} is not BasicSR 1.4.2's sdist (sha256 {sha}, expected {SDIST_SHA256})"
    return None


def extract(dest: Path) -> Path:
    """The members niqe.py needs, extracted under ``dest``; returns ``dest / 'basicsr'``."""
    with tarfile.open(sdist_path()) as tar:
        prefix = tar.getnames()[0].split("/")[0]
        for m in MEMBERS:
            member = tar.getmember(f"{prefix}/{m}")
            out = dest / m
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(tar.extractfile(member).read())
    return dest / "basicsr"


def load(pkg: Path) -> types.ModuleType:
    """BasicSR's ``basicsr.metrics.niqe`` module, executed from the extracted files in ``pkg``."""
    saved = {k: v for k, v in sys.modules.items() if k == "basicsr" or k.startswith("basicsr.")}
    for k in saved:
        del sys.modules[k]

    def stub(name: str, path: Path) -> types.ModuleType:
        m = types.ModuleType(name)
        m.__path__ = [str(path)]
        sys.modules[name] = m
        return m

    def by_path(name: str, rel: str) -> types.ModuleType:
        spec = importlib.util.spec_from_file_location(name, pkg / rel)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
        return mod

    shimmed = False
    try:
        import scipy.ndimage

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                import scipy.ndimage.filters  # noqa: F401
            except ImportError:
                sys.modules["scipy.ndimage.filters"] = scipy.ndimage
                shimmed = True
            stub("basicsr", pkg)
            utils = stub("basicsr.utils", pkg / "utils")
            stub("basicsr.metrics", pkg / "metrics")
            by_path("basicsr.utils.registry", "utils/registry.py")
            utils.bgr2ycbcr = by_path("basicsr.utils.color_util", "utils/color_util.py").bgr2ycbcr
            by_path("basicsr.metrics.metric_util", "metrics/metric_util.py")
            by_path("basicsr.utils.matlab_functions", "utils/matlab_functions.py")
            return by_path("basicsr.metrics.niqe", "metrics/niqe.py")
    finally:
        for k in [k for k in sys.modules if k == "basicsr" or k.startswith("basicsr.")]:
            del sys.modules[k]
        sys.modules.update(saved)
        if shimmed:
            del sys.modules["scipy.ndimage.filters"]
