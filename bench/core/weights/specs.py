"""The catalog of registered checkpoints and the folders where their files live.

A catalog table (``catalog/*.toml``)::

    [fid_inception]
    file = "pt_inception-2015-12-05-6726825d.pth"     # file name on disk (unique over the catalog)
    url = "https://..."                                # where it is downloaded from
    sha256 = "6726825d0af5...29b2"                     # full digest; absent = trust on first use
    sha256_source = "..."                              # where the digest was published (or why none is)
    size = 95628359                                    # bytes, optional
    licence = "..."
    used_by = ["fid"]
    format = "torch"       # torch (weights_only state dict) | safetensors | torchscript | tflite | other
    packaged = false       # true: ships inside an installed package, file = "<package>/<path inside it>"
    fetch = true           # false: cannot be downloaded as is (conversion, archive); the user places it
    notes = "..."

Older tables are still read: ``format = "package"`` means ``packaged = true``, and a partial
``sha256`` pattern (``"abcd1234*"``, ``"head*tail"``) is kept as an extra check of an entry that is
otherwise trusted on first use (it is never enough on its own).
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from moee_bench.bench.core.errors import WeightsError
import importlib.util

CATALOG_DIR = Path(__file__).with_name("catalog")
ENV_VAR = "MOEE_BENCH_WEIGHTS"
FORMATS = ("torch", "safetensors", "torchscript", "tflite", "other")
_FULL = re.compile(r"[0-9a-f]{64}")


def is_full_digest(value: str | None) -> bool:
    """Whether ``value`` is a full lower-case hex sha256 digest."""
    return bool(value) and bool(_FULL.fullmatch(value))


@dataclass(frozen=True)
class WeightSpec:
    """One registered checkpoint."""

    name: str
    file: str
    url: str
    sha256: str | None = None          # full published digest, or None (trust on first use)
    sha256_source: str = ""
    size: int | None = None
    licence: str = "unknown"
    used_by: tuple[str, ...] = ()
    format: str = "torch"
    packaged: bool = False
    fetch: bool = True
    notes: str = ""
    legacy_pattern: str | None = None  # an old partial digest ("abcd1234*ef"), checked in addition

    @property
    def trusted_on_first_use(self) -> bool:
        """True when no digest is published: the file is trusted on first use (then locked)."""
        return self.sha256 is None

    def pattern_matches(self, digest: str) -> bool:
        """Whether ``digest`` agrees with the legacy partial pattern (True when there is none)."""
        if not self.legacy_pattern:
            return True
        head, star, tail = self.legacy_pattern.partition("*")
        return digest.startswith(head) and digest.endswith(tail) if star else digest == head


def _spec(name: str, d: dict, source: Path) -> WeightSpec:
    if "file" not in d or "url" not in d:
        raise WeightsError(f"weights {name!r} in {source.name}: `file` and `url` are required")
    raw = (d.get("sha256") or "").strip().lower() or None
    full = raw if is_full_digest(raw) else None
    fmt = d.get("format", "torch")
    packaged = bool(d.get("packaged", False)) or fmt == "package"
    if fmt == "package":                     # legacy spelling of a packaged file
        fmt = "tflite" if str(d["file"]).endswith(".tflite") else "other"
    if fmt not in FORMATS:
        raise WeightsError(f"weights {name!r} in {source.name}: format {fmt!r} is not one of {FORMATS}")
    return WeightSpec(name=name, file=d["file"], url=d["url"], sha256=full, sha256_source=d.get("sha256_source", ""),
                      size=d.get("size"), licence=d.get("licence", "unknown"), used_by=tuple(d.get("used_by", ())),
                      format=fmt, packaged=packaged, fetch=bool(d.get("fetch", not packaged)), notes=d.get("notes", ""),
                      legacy_pattern=raw if raw and not full else None)


@lru_cache(maxsize=1)
def registry() -> dict[str, WeightSpec]:
    """All registered checkpoints by name (read from the catalog files)."""
    out: dict[str, WeightSpec] = {}
    files: dict[str, str] = {}
    for f in sorted(CATALOG_DIR.glob("*.toml")):
        with open(f, "rb") as fh:
            data = tomllib.load(fh)
        for name, d in data.items():
            if name in out:
                raise WeightsError(f"weights {name!r} is registered twice (second time in {f.name})")
            spec = _spec(name, d, f)
            if not spec.packaged and spec.file in files:
                raise WeightsError(f"weights {name!r} and {files[spec.file]!r} share the file name {spec.file!r}")
            files[spec.file] = name
            out[name] = spec
    return out


def get_spec(name: str) -> WeightSpec:
    """The registered checkpoint ``name`` (a :class:`WeightsError` lists the known names)."""
    reg = registry()
    if name not in reg:
        raise WeightsError(f"no weights named {name!r} in the registry; known: {sorted(reg)}")
    return reg[name]


def cache_dir() -> Path:
    """The user weights cache: ``$MOEE_BENCH_WEIGHTS``, else ``~/.cache/moee-bench/weights``
    (``$XDG_CACHE_HOME`` respected). Files fetched on first use go here, beside ``weights.lock``."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "moee-bench" / "weights"


def primary_dir(weights_dir: str | Path | None = None) -> Path:
    """Where a missing file is fetched to (and where the message says to put it)."""
    return Path(weights_dir).expanduser() if weights_dir else cache_dir()


def search_dirs(weights_dir: str | Path | None = None) -> list[Path]:
    """The folders searched for weight files, in order: ``--weights-dir``, the cache, the torch hub cache."""
    dirs: list[Path] = []
    if weights_dir:
        dirs.append(Path(weights_dir).expanduser())
    dirs.append(cache_dir())
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "torch")
    dirs.append(Path(torch_home) / "hub" / "checkpoints")
    out: list[Path] = []
    for d in dirs:
        if d not in out:
            out.append(d)
    return out


def package_path(spec: WeightSpec) -> Path:
    """The file of a packaged entry inside its installed package (raises when the package is absent)."""
    pkg, _, rel = spec.file.partition("/")
    found = importlib.util.find_spec(pkg)
    if found is None or not found.submodule_search_locations:
        raise WeightsError(f"weights {spec.name!r} ship inside the Python package {pkg!r}, which is not installed; "
                           f"{spec.notes or 'install it'}")
    path = Path(list(found.submodule_search_locations)[0]) / rel
    if not path.is_file():
        raise WeightsError(f"weights {spec.name!r}: {path} is missing from the installed {pkg!r} package; "
                           f"reinstall it ({spec.url})")
    return path


def locate(name: str, weights_dir: str | Path | None = None) -> Path | None:
    """The first existing file for ``name`` in :func:`search_dirs` (or its package), or None."""
    spec = get_spec(name)
    if spec.packaged:
        try:
            return package_path(spec)
        except WeightsError:
            return None
    for d in search_dirs(weights_dir):
        p = d / spec.file
        if p.is_file():
            return p
    return None
