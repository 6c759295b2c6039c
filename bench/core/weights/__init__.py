"""The weights registry: every checkpoint the suite can use, where it comes from, and how it is checked.

Entries live in ``bench/weights/catalog/*.toml`` (one file per area: visual, sync, emotion,
moee, baselines), each table::

    [name]
    file = "alexnet-owt-7be5be79.pth"
    url = "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"
    sha256 = "7be5be79*"          # full hex digest, or a known prefix/suffix pattern "abcd1234*ef01"
    size = 244408911             # bytes, optional
    licence = "BSD-3-Clause (torchvision)"
    used_by = ["lpips"]
    format = "torch"             # torch (state dict, weights_only) | safetensors | torchscript | tflite | dlib | other
    notes = "..."

Lookup order for a file: ``weights_dir`` argument (``--weights-dir``), ``$MOEE_BENCH_WEIGHTS``,
then the torch hub cache ``$TORCH_HOME/hub/checkpoints``. A missing file raises one
:class:`WeightsError` naming the file, where to put it and the URL. A hash mismatch is refused
unless ``allow_unverified=True``; the returned :class:`ResolvedWeights` then says ``verified=False``
and every result computed with it must carry that flag.
"""

from __future__ import annotations

import hashlib
import os
import tomllib
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

from moee_bench.bench.core.errors import WeightsError

CATALOG_DIR = Path(__file__).with_name("catalog")
ENV_VAR = "MOEE_BENCH_WEIGHTS"


@dataclass(frozen=True)
class WeightSpec:
    """One registered checkpoint."""

    name: str
    file: str
    url: str
    sha256: str | None = None
    size: int | None = None
    licence: str = "unknown"
    used_by: tuple[str, ...] = ()
    format: str = "torch"
    notes: str = ""

    @property
    def hash_is_partial(self) -> bool:
        return self.sha256 is None or "*" in self.sha256 or len(self.sha256) != 64

    def hash_matches(self, digest: str) -> bool:
        """Whether a full sha256 ``digest`` agrees with the registered (possibly partial) hash."""
        if not self.sha256:
            return False
        pat = self.sha256.lower()
        if "*" in pat:
            head, _, tail = pat.partition("*")
            return digest.startswith(head) and digest.endswith(tail)
        return digest == pat


@dataclass(frozen=True)
class ResolvedWeights:
    """A located checkpoint file and the outcome of its hash check."""

    spec: WeightSpec
    path: Path
    sha256: str
    verified: bool

    def provenance(self) -> dict[str, Any]:
        return {"name": self.spec.name, "file": str(self.path), "sha256": self.sha256, "verified": self.verified}


@lru_cache(maxsize=1)
def registry() -> dict[str, WeightSpec]:
    """All registered checkpoints by name (read from the catalog files)."""
    out: dict[str, WeightSpec] = {}
    for f in sorted(CATALOG_DIR.glob("*.toml")):
        with open(f, "rb") as fh:
            data = tomllib.load(fh)
        for name, d in data.items():
            if name in out:
                raise WeightsError(f"weights {name!r} is registered twice (second time in {f.name})")
            out[name] = WeightSpec(name=name, file=d["file"], url=d["url"], sha256=d.get("sha256"), size=d.get("size"),
                                   licence=d.get("licence", "unknown"), used_by=tuple(d.get("used_by", ())),
                                   format=d.get("format", "torch"), notes=d.get("notes", ""))
    return out


def get_spec(name: str) -> WeightSpec:
    reg = registry()
    if name not in reg:
        raise WeightsError(f"no weights named {name!r} in the registry; known: {sorted(reg)}")
    return reg[name]


def search_dirs(weights_dir: str | Path | None = None) -> list[Path]:
    """The folders searched for weight files, in order."""
    dirs: list[Path] = []
    if weights_dir:
        dirs.append(Path(weights_dir))
    if os.environ.get(ENV_VAR):
        dirs.append(Path(os.environ[ENV_VAR]))
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "torch")
    dirs.append(Path(torch_home) / "hub" / "checkpoints")
    return dirs


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(chunk), b""):
            h.update(b)
    return h.hexdigest()


def missing_message(spec: WeightSpec, weights_dir: str | Path | None = None) -> str:
    dirs = search_dirs(weights_dir)
    return (f"weights file {spec.file!r} ({spec.name}, used by {', '.join(spec.used_by) or 'moee-bench'}) not found. "
            f"Put it at {dirs[0] / spec.file} (searched: {', '.join(str(d) for d in dirs)}). "
            f"Download it from {spec.url} (or run `moee-bench weights fetch {spec.name}` on a machine with internet); "
            f"licence: {spec.licence}.")


def locate(name: str, weights_dir: str | Path | None = None) -> Path | None:
    """The first existing file for ``name`` in :func:`search_dirs`, or None."""
    spec = get_spec(name)
    for d in search_dirs(weights_dir):
        p = d / spec.file
        if p.is_file():
            return p
    return None


def resolve(name: str, weights_dir: str | Path | None = None, *, allow_unverified: bool = False) -> ResolvedWeights:
    """Find and hash-check the file of a registered checkpoint."""
    spec = get_spec(name)
    p = locate(name, weights_dir)
    if p is None:
        raise WeightsError(missing_message(spec, weights_dir))
    digest = sha256_file(p)
    ok = spec.hash_matches(digest)
    if not ok:
        want = spec.sha256 or "(no hash registered)"
        msg = f"weights {name!r} at {p} have sha256 {digest}, expected {want}"
        if not allow_unverified:
            raise WeightsError(msg + ". Refusing tampered or wrong weights; replace the file, or pass "
                               "--allow-unverified-weights (results are then marked unverified).")
        warnings.warn(msg + "; continuing because unverified weights were allowed: results are marked unverified.",
                      stacklevel=2)
    return ResolvedWeights(spec, p, digest, ok)


def load_state_dict(resolved: ResolvedWeights, *, map_location: str = "cpu") -> dict[str, Any]:
    """Load a checkpoint as a state dict without unpickling code (``weights_only=True`` or safetensors)."""
    import torch

    p = resolved.path
    try:
        if resolved.spec.format == "safetensors" or p.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(p), device=map_location)
        obj = torch.load(str(p), map_location=map_location, weights_only=True)
    except Exception as e:
        raise WeightsError(f"weights {resolved.spec.name!r} at {p} cannot be loaded safely "
                           f"(weights_only / safetensors): {type(e).__name__}: {e}") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise WeightsError(f"weights {resolved.spec.name!r} at {p} is not a state dict")
    return obj


@contextmanager
def must_fit(what: str) -> Iterator[None]:
    """Around code that loads a state dict into a network: a file of another architecture (a shape
    mismatch, missing keys: ``RuntimeError``/``KeyError`` from ``load_state_dict``) becomes a
    :class:`WeightsError` naming ``what``, so that metric is "not computed" and the others still run."""
    try:
        yield
    except (RuntimeError, KeyError) as e:
        lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()] or [type(e).__name__]
        raise WeightsError(f"{what}: the weights do not fit the network (another architecture?): "
                           f"{type(e).__name__}: {' '.join(lines[:2])[:300]}") from None


def load_into(module, state_dict: dict[str, Any], *, what: str, allow_missing: tuple[str, ...] = ()) -> None:
    """``module.load_state_dict`` that names what did not fit: every key must match, except the
    ``allow_missing`` keys (tied or training-only tensors some exports leave out); a shape mismatch
    is a :class:`WeightsError` too."""
    with must_fit(what):
        missing, unexpected = module.load_state_dict(state_dict, strict=False)
    missing = [k for k in missing if k not in allow_missing]
    if missing or unexpected:
        raise WeightsError(f"{what} does not fit: missing {missing[:5]}, unexpected {unexpected[:5]}")


@dataclass
class WeightsOptions:
    """How a component finds its weights (passed down from the CLI)."""

    weights_dir: str | None = None
    allow_unverified: bool = False
    used: list[ResolvedWeights] = field(default_factory=list)

    def resolve(self, name: str) -> ResolvedWeights:
        r = resolve(name, self.weights_dir, allow_unverified=self.allow_unverified)
        self.used.append(r)
        return r

    @property
    def any_unverified(self) -> bool:
        return any(not r.verified for r in self.used)
