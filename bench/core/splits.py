"""Identity-disjoint train/val/test splits, deterministic from a seed, in a versioned file with its hash.

Split file (JSON): ``{"schema": "moee-bench/split", "schema_version": 1, "dataset", "manifest_hash",
"seed", "ratios", "source": "seeded" | "official", "identities": {split: [...]}, "clips": {split: [...]},
"content_hash"}``.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Mapping

from moee_bench.bench.core.errors import ManifestError
from moee_bench.bench.core.manifest import Manifest
from moee_bench.bench.core.paths import atomic_write

SCHEMA = "moee-bench/split"
DEFAULT_RATIOS = {"train": 0.8, "val": 0.1, "test": 0.1}


def _hash(body: Mapping) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def make_split(m: Manifest, *, seed: int = 0, ratios: Mapping[str, float] | None = None,
               official: Mapping[str, str] | None = None) -> dict:
    """Assign identities to splits (each identity in exactly one split). ``official`` (clip id -> split) wins."""
    ratios = dict(ratios or DEFAULT_RATIOS)
    if official is not None:
        clips: dict[str, list[str]] = {}
        for c in m.clips:
            if c.clip_id not in official:
                raise ManifestError(f"clip {c.clip_id}: not in the official split")
            clips.setdefault(official[c.clip_id], []).append(c.clip_id)
        idents = {s: sorted({c.identity for c in m.clips if official[c.clip_id] == s}) for s in clips}
        source = "official"
    else:
        ids = sorted({c.identity for c in m.clips})
        random.Random(seed).shuffle(ids)
        total = sum(ratios.values())
        names = list(ratios)
        counts = [int(round(len(ids) * ratios[n] / total)) for n in names]
        for i, n in enumerate(names):       # every split with a positive ratio gets one identity if possible
            if counts[i] == 0 and ratios[n] > 0 and len(ids) >= len(names):
                counts[i] = 1
        counts[0] = len(ids) - sum(counts[1:])
        idents, start = {}, 0
        for n, k in zip(names, counts):
            idents[n] = sorted(ids[start:start + k])
            start += k
        owner = {i: s for s, v in idents.items() for i in v}
        clips = {s: sorted(c.clip_id for c in m.clips if owner[c.identity] == s) for s in names}
        source = "seeded"
    body = {"schema": SCHEMA, "schema_version": 1, "dataset": m.dataset, "manifest_hash": m.content_hash(),
            "seed": seed, "ratios": ratios, "source": source, "identities": idents,
            "clips": {k: sorted(v) for k, v in clips.items()}}
    body["content_hash"] = _hash(body)
    return body


def save_split(split: dict, path: str | Path) -> Path:
    path = Path(path)
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(split, indent=1) + "\n")
    return path


def load_split(path: str | Path) -> dict:
    body = json.loads(Path(path).read_text())
    if body.get("schema") != SCHEMA:
        raise ManifestError(f"{path} is not a moee-bench split file")
    want = body.pop("content_hash", None)
    if _hash(body) != want:
        raise ManifestError(f"split file {path}: content hash mismatch (edited or tampered)")
    body["content_hash"] = want
    return body


def clips_of(m: Manifest, split: str | None, split_file: dict | None = None) -> list:
    """The clips of ``split`` (from a split file when given, else from each clip's ``split`` field; None: all)."""
    if split is None:
        return list(m.clips)
    if split_file is not None:
        if split_file.get("manifest_hash") not in (None, m.content_hash()):
            raise ManifestError("the split file was made for a different manifest (manifest hash differs)")
        wanted = set(split_file["clips"].get(split, []))
        return [c for c in m.clips if c.clip_id in wanted]
    return [c for c in m.clips if c.split == split]
