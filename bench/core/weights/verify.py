"""Find a registered file (fetching it on first use) and decide how far it is trusted.

Trust of one file, in order:

- ``pinned``: ``--trust NAME=SHA256`` was given and the file has that digest (``published`` when
  the pin equals the registry's digest). A pin that does not match is refused.
- ``published``: the file has the registry's full digest (published upstream or by a mirror; the
  catalog names the source).
- ``locked``: the entry has no published digest and the file matches its entry in the
  ``weights.lock`` beside it; a file fetched for such an entry is locked on first use.
- ``unverified``: only with ``allow_unverified`` (``--allow-unverified-weights``): a file that
  matches none of the above is used, and every result computed with it says so.

Anything else is refused with both digests and the file's path.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moee_bench.bench.core.digest import file_digest
from moee_bench.bench.core.errors import WeightsError
from moee_bench.bench.core.weights import fetching as _fetch
from moee_bench.bench.core.weights.specs import (WeightSpec, get_spec, locate, package_path, primary_dir)
from moee_bench.bench.core.weights.trust import lock_path, read_lock, write_lock

TRUSTED = ("published", "locked", "pinned")
TRUST_LEVELS = TRUSTED + ("unverified",)


@dataclass(frozen=True)
class ResolvedWeights:
    """A located checkpoint file, its full digest and how it is trusted (see :data:`TRUST_LEVELS`)."""

    spec: WeightSpec
    path: Path
    sha256: str
    trust: str
    basis: str = ""            # what the trust rests on: the digest's source, the lock file, the pin

    @property
    def verified(self) -> bool:
        return self.trust in TRUSTED

    def provenance(self) -> dict[str, Any]:
        """The record every result carries for this file."""
        return {"name": self.spec.name, "file": str(self.path), "sha256": self.sha256, "trust": self.trust,
                "basis": self.basis, "verified": self.verified}


def _lock_dir(spec: WeightSpec, path: Path, weights_dir: str | Path | None) -> Path:
    return primary_dir(weights_dir) if spec.packaged else path.parent


def check(spec: WeightSpec, path: Path, digest: str, *, lock_dir: Path, pins: dict[str, str] | None = None,
          allow_unverified: bool = False, lock_source: str | None = None) -> ResolvedWeights:
    """Decide the trust of ``path`` (digest ``digest``) for ``spec``; refuse, or with ``allow_unverified`` warn.

    ``lock_source`` (set when this process has just fetched the file) locks a file of an entry
    without a published digest on first use.
    """
    name = spec.name
    pin = (pins or {}).get(name)
    lock_file = lock_path(lock_dir)
    if pin:
        if digest == pin:
            trust = "published" if digest == spec.sha256 else "pinned"
            return ResolvedWeights(spec, path, digest, trust, spec.sha256_source if trust == "published" else "--trust pin")
        problem = f"expected {pin} (the --trust pin)"
    elif spec.sha256:
        if digest == spec.sha256:
            return ResolvedWeights(spec, path, digest, "published", spec.sha256_source)
        problem = f"expected {spec.sha256} (registry; {spec.sha256_source or 'published digest'})"
    else:
        entry = read_lock(lock_dir).get(name)
        if entry:
            if digest == entry["sha256"]:
                return ResolvedWeights(spec, path, digest, "locked", f"{lock_file} ({entry.get('source', '')})")
            problem = f"expected {entry['sha256']} (locked in {lock_file})"
        elif not spec.pattern_matches(digest):
            problem = f"does not match the partial digest {spec.legacy_pattern} in the catalog"
        elif spec.size is not None and path.stat().st_size != spec.size:
            problem = f"has {path.stat().st_size} bytes, the catalog says {spec.size}"
        elif lock_source is not None:
            write_lock(lock_dir, name, spec.file, digest, lock_source)
            return ResolvedWeights(spec, path, digest, "locked", f"{lock_file} (trust on first use: {lock_source})")
        else:
            problem = (f"has no published digest and is not in {lock_file}; if you trust this file, lock it with "
                       f"`moee-bench weights fetch {name}` or pass --trust {name}={digest}")
    msg = f"weights {name!r} at {path} have sha256 {digest}, {problem}"
    if allow_unverified:
        warnings.warn(msg + "; used anyway because unverified weights were allowed: results computed with it "
                      "are marked unverified.", stacklevel=3)
        return ResolvedWeights(spec, path, digest, "unverified", "--allow-unverified-weights")
    raise WeightsError(msg + ". Refused: replace the file (or delete it to fetch it again).")


def resolve(name: str, weights_dir: str | Path | None = None, *, allow_unverified: bool = False,
            pins: dict[str, str] | None = None, offline: bool | None = None, progress: bool = True) -> ResolvedWeights:
    """Find (or fetch on first use) the file of a registered checkpoint and check it (see the module doc)."""
    spec = get_spec(name)
    lock_source = None
    if spec.packaged:
        path = package_path(spec)
    else:
        path = locate(name, weights_dir)
        if path is None:
            path = _fetch.fetch(spec, primary_dir(weights_dir), offline=offline, progress=progress)
            lock_source = f"fetched from {spec.url}"
    return check(spec, path, file_digest(path), lock_dir=_lock_dir(spec, path, weights_dir), pins=pins,
                 allow_unverified=allow_unverified, lock_source=lock_source)


def adopt(name: str, weights_dir: str | Path | None = None, *, pins: dict[str, str] | None = None) -> ResolvedWeights:
    """``weights fetch`` of a file already here: check it, and lock it when its entry has no published
    digest and it is not locked yet (the user vouches for it by running the command)."""
    spec = get_spec(name)
    path = package_path(spec) if spec.packaged else locate(name, weights_dir)
    if path is None:
        raise WeightsError(f"weights {name!r}: no file to adopt")
    return check(spec, path, file_digest(path), lock_dir=_lock_dir(spec, path, weights_dir), pins=pins,
                 lock_source=f"local file {path}, locked by `moee-bench weights fetch`")
