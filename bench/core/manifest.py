"""Clip records and the manifest file format.

A manifest is one UTF-8 JSON file::

    {
      "schema": "moee-bench/manifest",
      "schema_version": 1,
      "dataset": "mead",
      "root": "<dataset root: absolute, or relative to the manifest file's folder>",
      "compounds": {"angrily_disgusted": ["anger", "disgust"], ...},
      "meta": {...free-form provenance...},
      "content_hash": "sha256 of the canonical JSON of every other field",
      "clips": [ {ClipRecord fields}, ... ]
    }

Every media path in a clip is relative to ``root`` and must stay inside it. The content
hash makes a tampered or hand-edited manifest detectable; :func:`load_manifest` refuses a
mismatch unless ``verify_hash=False``.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping

from moee_bench.bench.core.emotions import DEFAULT_COMPOUNDS, EmotionSpec, validate_compounds
from moee_bench.bench.core.errors import EmotionLabelError, ManifestError
from moee_bench.bench.core.paths import atomic_write, resolve_inside

SCHEMA = "moee-bench/manifest"
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class ClipRecord:
    """One talking-head clip of a dataset."""

    clip_id: str
    identity: str
    video: str
    emotion: EmotionSpec
    audio: str | None = None          # None: the video's own audio track
    ref_image: str | None = None      # None: chosen by bench.core.references.choose_reference
    ref_source: str | None = None     # how ref_image was chosen: None = set by the user; "neutral:<clip_id>"
                                      # = derived by an importer from that clip (see bench.core.references)
    fps: float | None = None
    n_frames: int | None = None
    duration: float | None = None
    intensity: int | None = None
    aus: dict[str, float] | None = None
    text: str | None = None
    split: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"clip_id": self.clip_id, "identity": self.identity, "video": self.video,
                             "emotion": self.emotion.to_dict()}
        for k in ("audio", "ref_image", "ref_source", "fps", "n_frames", "duration", "intensity", "aus", "text", "split"):
            v = getattr(self, k)
            if v is not None:
                d[k] = v
        if self.extra:
            d["extra"] = self.extra
        return d

    @staticmethod
    def from_dict(d: Mapping[str, Any], compounds: Mapping[str, Any] | None = None) -> "ClipRecord":
        if not isinstance(d, Mapping):
            raise ManifestError(f"a clip entry must be a JSON object, got {str(d)[:60]!r}")
        raw_id = d.get("clip_id")
        cid = str(raw_id) if raw_id is not None else "?"
        missing = [k for k in ("clip_id", "identity", "video", "emotion") if d.get(k) is None]
        if missing:
            raise ManifestError(f"clip {cid}: missing fields {missing}")
        if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)) or not cid.strip():
            raise ManifestError(f"clip {cid!r}: clip_id must be a non-empty string")
        bad = [c for c in cid if ord(c) < 32 or ord(c) == 127]
        if bad:
            raise ManifestError(f"clip {cid!r}: clip_id contains control characters {bad}")
        for k in ("video", "audio", "ref_image"):
            if d.get(k) is not None and not isinstance(d[k], str):
                raise ManifestError(f"clip {cid}: {k} must be a path string, got {d[k]!r}")
        if isinstance(d["identity"], bool) or not isinstance(d["identity"], (str, int)) or not str(d["identity"]).strip():
            raise ManifestError(f"clip {cid}: identity must be a non-empty string, got {d['identity']!r}")
        for k in ("split", "text", "ref_source"):
            if d.get(k) is not None and not isinstance(d[k], str):
                raise ManifestError(f"clip {cid}: {k} must be a string, got {d[k]!r}")
        aus = d.get("aus")
        if aus is not None and not (isinstance(aus, Mapping) and all(
                isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                for k, v in aus.items())):
            raise ManifestError(f"clip {cid}: aus must be an object of AU name -> finite number, got {str(aus)[:60]!r}")
        if d.get("extra") is not None and not isinstance(d["extra"], Mapping):
            raise ManifestError(f"clip {cid}: extra must be a JSON object, got {str(d['extra'])[:60]!r}")
        for k in ("video", "audio", "ref_image"):
            if isinstance(d.get(k), str) and any(ord(c) < 32 or ord(c) == 127 for c in d[k]):
                raise ManifestError(f"clip {cid}: {k} path {d[k]!r} contains a newline or another control character")
        if not isinstance(d["emotion"], Mapping):
            raise ManifestError(f"clip {cid}: emotion must be an object like {{\"label\": \"happy\"}}, got {d['emotion']!r}")
        try:
            emo = EmotionSpec.from_dict(d["emotion"], compounds=compounds, clip_id=cid)
        except (KeyError, TypeError, ValueError) as e:      # a malformed entry, not a bug of ours
            raise ManifestError(f"clip {cid}: emotion {d['emotion']!r} is malformed ({type(e).__name__}: {e})") from None
        return ClipRecord(
            clip_id=cid, identity=str(d["identity"]), video=str(d["video"]), emotion=emo,
            audio=d.get("audio"), ref_image=d.get("ref_image"), ref_source=d.get("ref_source"),
            fps=_number(d, "fps", cid, positive=True), n_frames=_number(d, "n_frames", cid, integer=True),
            duration=_number(d, "duration", cid, positive=True), intensity=_number(d, "intensity", cid, integer=True),
            aus=d.get("aus"), text=d.get("text"), split=d.get("split"), extra=dict(d.get("extra") or {}),
        )


def _number(d: Mapping[str, Any], key: str, cid: str, *, integer: bool = False, positive: bool = False) -> Any:
    """A numeric clip field: finite (NaN and infinities are refused), integral where asked, > 0 where asked."""
    v = d.get(key)
    if v is None:
        return None
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    if ok and integer:
        ok = float(v).is_integer() and v >= 0
    if ok and positive:
        ok = v > 0
    if not ok:
        want = "a whole number >= 0" if integer else ("a finite number > 0" if positive else "a finite number")
        raise ManifestError(f"clip {cid}: {key} must be {want}, got {v!r}")
    return int(v) if integer else float(v)


@dataclass
class Manifest:
    """A dataset: its root folder, its compound-emotion list and its clips."""

    dataset: str
    root: Path
    clips: list[ClipRecord]
    compounds: dict[str, tuple[str, str]] = field(default_factory=lambda: dict(DEFAULT_COMPOUNDS))
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for c in self.clips:
            if c.clip_id in seen:
                raise ManifestError(f"clip {c.clip_id}: duplicate clip id in manifest of {self.dataset!r}")
            seen.add(c.clip_id)

    def by_id(self) -> dict[str, ClipRecord]:
        return {c.clip_id: c for c in self.clips}

    def media_path(self, clip: ClipRecord, what: str = "video") -> Path:
        """Absolute path of a clip's ``video``, ``audio`` or ``ref_image``, refused if it escapes the root."""
        rel = getattr(clip, what)
        if rel is None:
            raise ValueError(f"clip {clip.clip_id}: no {what} path")
        return resolve_inside(self.root, rel, clip_id=clip.clip_id, what=what)

    def with_clips(self, clips: Iterable[ClipRecord]) -> "Manifest":
        return Manifest(self.dataset, self.root, list(clips), dict(self.compounds), dict(self.meta), self.path)

    def _body(self, root_str: str) -> dict[str, Any]:
        return {
            "schema": SCHEMA, "schema_version": SCHEMA_VERSION, "dataset": self.dataset, "root": root_str,
            "compounds": {k: list(v) for k, v in sorted(self.compounds.items())},
            "meta": self.meta, "clips": [c.to_dict() for c in self.clips],
        }

    def content_hash(self) -> str:
        """sha256 over the canonical JSON of the clips, compounds and dataset name (not the root location)."""
        body = self._body("")
        body.pop("root")
        return _hash(body)

    def save(self, path: str | Path) -> Path:
        """Write atomically. ``root`` is stored relative to the manifest's folder when it lies below it."""
        path = Path(path)
        root = self.root.resolve()
        folder = path.parent.resolve()
        try:
            root_str = str(root.relative_to(folder)) or "."
        except ValueError:
            root_str = str(root)
        body = self._body(root_str)
        body["content_hash"] = self.content_hash()
        with atomic_write(path) as tmp:
            tmp.write_text(json.dumps(body, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        self.path = path
        return path


def _hash(body: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()).hexdigest()


def load_manifest(path: str | Path, *, verify_hash: bool = True,
                  bad_clips: dict[str, str] | None = None) -> Manifest:
    """Read a manifest; refuses unknown schemas, duplicate ids, unknown labels, NaN/infinite numbers and
    (by default) a hash mismatch. With ``bad_clips`` (``data validate``), a clip entry that cannot be
    read is recorded there (id -> reason) and left out instead of failing the whole load; the hash is
    then checked only when every entry could be read."""
    path = Path(path)
    if path.exists() and not path.is_file():
        raise ManifestError(f"manifest {path} is not a regular file")
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"manifest {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ManifestError(f"manifest {path} is not readable JSON: {e}") from None
    if not isinstance(body, dict) or body.get("schema") != SCHEMA:
        raise ManifestError(f"{path} is not a moee-bench manifest (schema {body.get('schema') if isinstance(body, dict) else None!r})")
    version = body.get("schema_version", -1)
    if isinstance(version, bool) or not isinstance(version, int):
        raise ManifestError(f"{path}: schema_version must be a whole number, got {version!r}")
    if version > SCHEMA_VERSION:
        raise ManifestError(f"{path} has schema_version {version}; this moee-bench reads up to {SCHEMA_VERSION}")
    raw_compounds = body.get("compounds") or DEFAULT_COMPOUNDS
    if not isinstance(raw_compounds, Mapping) or not all(isinstance(p, list) for p in raw_compounds.values()):
        raise ManifestError(f"{path}: 'compounds' must be an object of name -> [emotion, emotion], "
                            f"got {str(raw_compounds)[:80]!r}")
    try:
        compounds = validate_compounds(raw_compounds)
    except (TypeError, ValueError) as e:
        raise ManifestError(f"{path}: {e}") from None
    if body.get("meta") is not None and not isinstance(body["meta"], Mapping):
        raise ManifestError(f"{path}: 'meta' must be a JSON object, got {str(body['meta'])[:60]!r}")
    entries = body.get("clips", [])
    if not isinstance(entries, list):
        raise ManifestError(f"manifest {path}: 'clips' must be a list")
    clips = []
    for i, d in enumerate(entries):
        try:
            clips.append(ClipRecord.from_dict(d, compounds))
        except (ManifestError, EmotionLabelError) as e:
            if bad_clips is None:
                raise
            cid = str(d.get("clip_id")) if isinstance(d, Mapping) and d.get("clip_id") is not None else f"#{i}"
            bad_clips[cid if cid not in bad_clips else f"{cid} (entry #{i})"] = str(e).removeprefix(f"clip {cid}: ")
    if bad_clips:
        verify_hash = False
    root = Path(body.get("root", "."))
    if not root.is_absolute():
        root = (path.parent / root).resolve()
    m = Manifest(str(body.get("dataset", "unknown")), root, clips, compounds, dict(body.get("meta") or {}), path)
    if verify_hash:
        want = body.get("content_hash")
        got = m.content_hash()
        if want != got:
            raise ManifestError(f"manifest {path}: content hash mismatch (stored {want}, computed {got}); "
                                "the file was edited or tampered with. Re-import it, or run "
                                "`moee-bench data validate --rehash` after checking the edit.")
    return m


def replace_clip(clip: ClipRecord, **changes: Any) -> ClipRecord:
    """A copy of ``clip`` with fields changed."""
    return replace(clip, **changes)
