"""Dataset importers: walk a dataset's own layout and write a moee-bench manifest.

Each importer returns a :class:`~moee_bench.bench.core.manifest.Manifest` whose paths are relative to ``root``.
Labels go through the taxonomy (:func:`moee_bench.bench.core.emotions.parse_emotion`). Labels outside it that the
source dataset really has (MEAD contempt, RAVDESS calm) stay in the manifest as kind-``other``
clips, counted with their reason in ``manifest.meta["outside_taxonomy"]``; the 6+1 metrics and the
methods without that label skip them with a reason. Each clip's reference portrait is chosen here
by the policy of :mod:`bench.core.references` and recorded (``ref_image`` + ``ref_source``).
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path
from typing import Callable

from moee_bench.bench.core.emotions import OUTSIDE_REASONS, parse_emotion
from moee_bench.bench.core.errors import ManifestError, PathEscapeError
from moee_bench.bench.core.manifest import ClipRecord, Manifest
from moee_bench.bench.core.media import VIDEO_SUFFIXES
from moee_bench.bench.core.paths import resolve_inside
from moee_bench.bench.core.references import assign_references

VIDEO_EXT = VIDEO_SUFFIXES


def _rel(root: Path, p: Path) -> str:
    try:
        rel = p.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        raise PathEscapeError(p.stem, f"{p} resolves outside the dataset root {root}") from None
    if any(ord(c) < 32 or ord(c) == 127 for c in rel):
        raise ManifestError(f"clip {p.stem!r}: path {rel!r} contains a newline or another control character; "
                            "rename the file (such a name is refused everywhere else)")
    return rel


class _Collector:
    def __init__(self, dataset: str, root: Path) -> None:
        self.dataset, self.root = dataset, root
        self.clips: list[ClipRecord] = []
        self.outside: Counter[str] = Counter()

    def add(self, clip_id: str, identity: str, video: Path, label: str, **kw) -> None:
        emo = parse_emotion(label, clip_id=clip_id, keep_outside=True)
        if not emo.in_taxonomy:
            self.outside[emo.label] += 1
        audio = kw.pop("audio", None)
        self.clips.append(ClipRecord(clip_id, identity, _rel(self.root, video), emo,
                                     audio=_rel(self.root, audio) if audio else None, **kw))

    def manifest(self, **meta) -> Manifest:
        if not self.clips:
            raise ManifestError(f"no clips found for {self.dataset} under {self.root}")
        outside = {k: {"count": v, "reason": OUTSIDE_REASONS[k] + "; kept as labelled clips outside the taxonomy"}
                   for k, v in sorted(self.outside.items())}
        m = Manifest(self.dataset, self.root, sorted(self.clips, key=lambda c: c.clip_id),
                     meta={"importer": self.dataset, "outside_taxonomy": outside, **meta})
        return assign_references(m)


def import_mead(root: Path) -> Manifest:
    """MEAD: ``<actor>/video/front/<emotion>/level_<n>/<NNN>.mp4`` + ``<actor>/audio/<emotion>/level_<n>/<NNN>.m4a``
    (an absent or empty .m4a leaves the clip on its video's own audio track)."""
    col = _Collector("mead", root)
    empty = 0
    for v in sorted(root.glob("*/video/front/*/level_*/*.mp4")):
        actor, emotion, level = v.parts[-6], v.parts[-3], v.parts[-2]
        n = int(level.split("_")[1])
        a = root / actor / "audio" / emotion / level / (v.stem + ".m4a")
        usable = a.is_file() and a.stat().st_size > 0
        if a.exists() and not usable:
            empty += 1
        col.add(f"{actor}_{emotion}_{level}_{v.stem}", actor, v, emotion, audio=a if usable else None, intensity=n)
    meta = {"empty_audio_files": f"{empty} empty .m4a files ignored: those clips use their video's audio track"} if empty else {}
    return col.manifest(**meta)


def import_hdtf(root: Path, clip_list: Path | None = None) -> Manifest:
    """HDTF: a folder of clips (``<Source>_<Name>_<NNN>.mp4``); all neutral; optional official clip list (one stem per line)."""
    col = _Collector("hdtf", root)
    wanted = None
    if clip_list is not None:
        wanted = {ln.strip().rsplit(".", 1)[0] for ln in Path(clip_list).read_text().splitlines() if ln.strip()}
    for v in sorted(p for p in root.rglob("*") if p.suffix.lower() in VIDEO_EXT):
        if wanted is not None and v.stem not in wanted:
            continue
        identity = re.sub(r"_\d+$", "", v.stem)
        col.add(v.stem, identity, v, "neutral")
    if wanted is not None:
        missing = sorted(wanted - {c.clip_id for c in col.clips})
        if missing:
            raise ManifestError(f"hdtf: {len(missing)} clips of the official list are missing under {root}, e.g. {missing[:5]}")
    return col.manifest(note="HDTF has no emotion labels; clips are marked neutral")


DHF_PATTERN = r"(?P<subject>\d{3})_(?P<emotion>[a-z_]+?)_(?P<clip>\d{3})"


def import_dh_faceemovid(root: Path, pattern: str = DHF_PATTERN, labels_csv: Path | None = None) -> Manifest:
    """DH-FaceEmoVid-150: ``{subject:03d}_{emotion}_{clip:03d}.mp4`` by default (the release layout is unconfirmed:
    ``pattern`` is a regex with named groups subject, emotion, clip), or a labels CSV (columns path, emotion, identity[, text])."""
    col = _Collector("dh-faceemovid-150", root)
    if labels_csv is not None:
        with open(labels_csv, newline="", encoding="utf-8-sig") as f:
            for row in csv.DictReader(f):
                v = resolve_inside(root, row["path"], clip_id=row["path"], what="video")
                col.add(Path(row["path"]).stem, row.get("identity") or "unknown", v, row["emotion"], text=row.get("text") or None)
        return col.manifest(labels=str(labels_csv))
    rx = re.compile(pattern + r"$")
    for v in sorted(p for p in root.rglob("*") if p.suffix.lower() in VIDEO_EXT):
        m = rx.match(v.stem)
        if not m:
            continue
        col.add(v.stem, m["subject"], v, m["emotion"])
    return col.manifest(pattern=pattern)


RAVDESS_EMO = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry", "06": "fearful",
               "07": "disgust", "08": "surprised"}


def import_ravdess(root: Path) -> Manifest:
    """RAVDESS: ``MM-VC-EE-II-SS-RR-AA.mp4`` (modality, vocal channel, emotion, intensity, statement, repetition, actor);
    speech audio-visual files (modality 01 or 02, channel 01) only."""
    col = _Collector("ravdess", root)
    for v in sorted(root.rglob("*.mp4")):
        parts = v.stem.split("-")
        if len(parts) != 7 or parts[1] != "01" or parts[0] not in ("01", "02"):
            continue
        emo = RAVDESS_EMO.get(parts[2])
        if emo is None:
            raise ManifestError(f"clip {v.stem}: unknown RAVDESS emotion code {parts[2]}")
        col.add(v.stem, f"actor{parts[6]}", v, emo, intensity=int(parts[3]))
    return col.manifest()


CREMA_EMO = {"ANG": "anger", "DIS": "disgust", "FEA": "fear", "HAP": "happiness", "NEU": "neutral", "SAD": "sadness"}
CREMA_LVL = {"LO": 1, "MD": 2, "HI": 3, "XX": None}


def import_crema_d(root: Path) -> Manifest:
    """CREMA-D: ``<actor>_<sentence>_<EMO>_<LEVEL>.flv|mp4`` (e.g. 1001_DFA_ANG_XX)."""
    col = _Collector("crema-d", root)
    for v in sorted(p for p in root.rglob("*") if p.suffix.lower() in VIDEO_EXT):
        parts = v.stem.split("_")
        if len(parts) != 4:
            continue
        if parts[2] not in CREMA_EMO:
            raise ManifestError(f"clip {v.stem}: unknown CREMA-D emotion code {parts[2]}")
        col.add(v.stem, parts[0], v, CREMA_EMO[parts[2]], intensity=CREMA_LVL.get(parts[3]))
    return col.manifest()


def import_folder(root: Path, csv_path: Path) -> Manifest:
    """A CSV with columns path, emotion and optional audio, identity, text, ref_image, split (paths relative to root)."""
    col = _Collector("folder", root)
    with open(csv_path, newline="", encoding="utf-8-sig") as f:       # utf-8-sig: Excel writes a BOM
        reader = csv.DictReader(f)
        missing = {"path", "emotion"} - set(reader.fieldnames or [])
        if missing:
            raise ManifestError(f"{csv_path}: missing columns {sorted(missing)}")
        for row in reader:
            cid = Path(row["path"]).stem
            v = resolve_inside(root, row["path"], clip_id=cid, what="video")
            a = resolve_inside(root, row["audio"], clip_id=cid, what="audio") if row.get("audio") else None
            if row.get("ref_image"):
                resolve_inside(root, row["ref_image"], clip_id=cid, what="ref_image")
            col.add(cid, row.get("identity") or cid, v, row["emotion"], audio=a, text=row.get("text") or None,
                    ref_image=row.get("ref_image") or None, split=row.get("split") or None)
    return col.manifest(csv=str(csv_path))


IMPORTERS: dict[str, Callable[..., Manifest]] = {
    "mead": import_mead, "hdtf": import_hdtf, "dh-faceemovid-150": import_dh_faceemovid,
    "ravdess": import_ravdess, "crema-d": import_crema_d, "folder": import_folder,
}
