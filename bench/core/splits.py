"""Identity-disjoint train/val/test splits, recorded in the manifest: the one source of truth.

``moee-bench data split M.json --out M_split.json`` writes a new manifest whose clips carry their
``split`` and whose ``meta["split"]`` records how the assignment was made (seed, ratios, source,
identities and clip counts per split) and its :func:`assignment_hash`. Every command that works on a
split (``generate``, ``train``, ``run``, ``score --manifest``, ``throughput``) takes that manifest
and a split name and selects clips with :func:`select_split`, which refuses an empty split; the
result records :func:`split_record` (split name, assignment hash, manifest hash, identities).
A manifest whose clips carry ``split`` fields from elsewhere (an official list imported through the
folder CSV, the built-in sample) is used the same way.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from typing import Any, Mapping

from moee_bench.bench.core.errors import ManifestError
from moee_bench.bench.core.manifest import ClipRecord, Manifest, replace_clip

DEFAULT_RATIOS = {"train": 0.8, "val": 0.1, "test": 0.1}
ALL = "all"          # the split name that explicitly selects every clip


def _hash(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def assignment_hash(m: Manifest) -> str:
    """sha256 of the clip -> split assignment of the whole manifest (the split's hash recorded by every run)."""
    return _hash({"dataset": m.dataset, "assignment": {c.clip_id: c.split for c in m.clips}})


def split_counts(m: Manifest) -> dict[str, int]:
    """Clips per split name (``None``: clips without a split)."""
    return dict(Counter(str(c.split) for c in m.clips))


def make_split(m: Manifest, *, seed: int = 0, ratios: Mapping[str, float] | None = None,
               official: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Assign identities to splits (each identity in exactly one split), or take an ``official`` clip -> split map.

    Refuses a seeded split that would leave a split with a positive ratio empty (too few identities),
    naming the counts. Returns ``{"source", "seed", "ratios", "identities": {split: [...]}, "clips": {split: [...]},
    "identity_overlap": [...]}`` (overlap is only possible in an official split, and is reported, not hidden).
    """
    ratios = {k: float(v) for k, v in (ratios or DEFAULT_RATIOS).items() if float(v) > 0}
    if not ratios:
        raise ManifestError("split ratios must name at least one split with a positive ratio")
    if official is not None:
        missing = [c.clip_id for c in m.clips if c.clip_id not in official]
        if missing:
            raise ManifestError(f"{len(missing)} clips of {m.dataset} are not in the official split, e.g. {missing[:5]}")
        clips: dict[str, list[str]] = {}
        for c in m.clips:
            clips.setdefault(official[c.clip_id], []).append(c.clip_id)
        by_id = m.by_id()
        idents = {s: sorted({by_id[c].identity for c in v}) for s, v in clips.items()}
        seen = Counter(i for v in idents.values() for i in v)
        return {"source": "official", "seed": None, "ratios": None, "identities": idents,
                "clips": {k: sorted(v) for k, v in clips.items()},
                "identity_overlap": sorted(i for i, n in seen.items() if n > 1)}
    ids = sorted({c.identity for c in m.clips})
    random.Random(seed).shuffle(ids)
    total = sum(ratios.values())
    names = list(ratios)
    counts = [int(round(len(ids) * ratios[n] / total)) for n in names]
    for i in range(1, len(names)):          # every split gets one identity when there are enough
        if counts[i] == 0 and len(ids) >= len(names):
            counts[i] = 1
    counts[0] = len(ids) - sum(counts[1:])
    if min(counts) <= 0:
        got = ", ".join(f"{n}={k}" for n, k in zip(names, counts))
        raise ManifestError(f"{m.dataset}: {len(ids)} identities cannot fill {len(names)} identity-disjoint splits with "
                            f"ratios {ratios} (identities per split would be {got}); use fewer splits "
                            f"(e.g. --ratios train=0.5,test=0.5) or a dataset with more identities")
    idents, start = {}, 0
    for n, k in zip(names, counts):
        idents[n] = sorted(ids[start:start + k])
        start += k
    owner = {i: s for s, v in idents.items() for i in v}
    clips = {s: sorted(c.clip_id for c in m.clips if owner[c.identity] == s) for s in names}
    return {"source": "seeded", "seed": seed, "ratios": ratios, "identities": idents, "clips": clips,
            "identity_overlap": []}


def apply_split(m: Manifest, split: Mapping[str, Any]) -> Manifest:
    """A new manifest whose clips carry the ``split`` of :func:`make_split`, with ``meta["split"]`` recording it."""
    owner = {cid: s for s, ids in split["clips"].items() for cid in ids}
    out = m.with_clips(replace_clip(c, split=owner.get(c.clip_id)) for c in m.clips)
    out.meta["split"] = {"source": split["source"], "seed": split["seed"], "ratios": split["ratios"],
                         "from_manifest": m.content_hash(),
                         "identities": {k: list(v) for k, v in split["identities"].items()},
                         "clips": {k: len(v) for k, v in split["clips"].items()},
                         "identity_overlap": list(split.get("identity_overlap", []))}
    out.meta["split"]["hash"] = assignment_hash(out)
    return out


def select_split(m: Manifest, split: str | None) -> list[ClipRecord]:
    """The clips of ``split`` (``None`` or ``"all"``: every clip, on purpose). An empty split is an error naming
    the split and the manifest; nothing falls back to other clips."""
    if split in (None, ALL):
        clips = list(m.clips)
    else:
        clips = [c for c in m.clips if c.split == split]
    if not clips:
        where = m.path or f"of dataset {m.dataset}"
        have = ", ".join(f"{k}: {v}" for k, v in sorted(split_counts(m).items()))
        raise ManifestError(f"split {split!r} of manifest {where} has no clips (clips per split: {have or 'none'}). "
                            "Make an identity-disjoint split with `moee-bench data split MANIFEST --out SPLIT_MANIFEST` "
                            "and pass the manifest it writes")
    return clips


def split_record(m: Manifest, split: str | None, clips: list[ClipRecord] | None = None) -> dict[str, Any]:
    """What a run records about the clips it used: split name, assignment hash, manifest hash, identities."""
    clips = select_split(m, split) if clips is None else clips
    made = m.meta.get("split") or {}
    return {"name": split or ALL, "hash": assignment_hash(m), "manifest_hash": m.content_hash(), "dataset": m.dataset,
            "n_clips": len(clips), "identities": sorted({c.identity for c in clips}),
            "made_by": {k: made[k] for k in ("source", "seed", "ratios") if k in made} or "split fields of the manifest"}


def identity_overlap(training: list[Mapping[str, Any]], record: Mapping[str, Any]) -> list[str]:
    """Identities of ``record`` (a :func:`split_record`) that any ``training`` entry (same dataset) was trained on."""
    seen: set[str] = set()
    for t in training:
        if t.get("dataset") == record["dataset"]:
            seen.update(t.get("identities", []))
    return sorted(seen & set(record["identities"]))
