"""The reference-image policy: which portrait a method and CSIM get for a clip.

The reference must never be a frame of the emotional target clip itself: a method that copies its
reference would otherwise score the target's expression, identity and pixels for free. The
policy, in order (the choice and its source are recorded per clip):

1. the manifest's ``ref_image`` (``ref_source`` says whether the user set it or an importer
   derived it, e.g. ``neutral:<clip_id>``); a ``ref_image`` naming a video means that video's
   first frame (importers record a neutral clip's video this way, see :func:`assign_references`);
2. the first frame of a neutral clip of the same identity, other than the clip itself (MEAD,
   RAVDESS, CREMA-D and DH-FaceEmoVid-150 all have one): the lowest clip id of that identity's
   neutral clips, so every clip of an identity shares one reference;
3. otherwise the first frame of the target clip itself, with a warning saying that the
   reference leaks the target.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from moee_bench.bench.core import media
from moee_bench.bench.core.manifest import ClipRecord, Manifest
from moee_bench.bench.core.paths import safe_name


@dataclass(frozen=True)
class ReferenceChoice:
    """Where a clip's reference portrait comes from: an image file, or frame ``frame`` of ``video``."""

    source: str                    # "manifest" | "manifest:<ref_source>" | "neutral:<clip_id>" | "first-frame:<clip_id>"
    image: Path | None = None
    video: Path | None = None
    frame: int = 0
    warning: str | None = None

    @property
    def leaks_target(self) -> bool:
        return self.source.startswith("first-frame:")


def neutral_donor(manifest: Manifest, clip: ClipRecord) -> ClipRecord | None:
    """The neutral clip of ``clip``'s identity whose first frame serves as its reference (never ``clip``)."""
    donors = sorted((c for c in manifest.clips
                     if c.identity == clip.identity and c.clip_id != clip.clip_id and c.emotion.kind == "neutral"),
                    key=lambda c: c.clip_id)
    return donors[0] if donors else None


def choose_reference(manifest: Manifest, clip: ClipRecord) -> ReferenceChoice:
    """Apply the policy of this module to one clip."""
    if clip.ref_image:
        src = "manifest" if clip.ref_source is None else f"manifest:{clip.ref_source}"
        path = manifest.media_path(clip, "ref_image")
        if media.is_video_path(path):
            return ReferenceChoice(src, video=path, frame=0)
        return ReferenceChoice(src, image=path)
    donor = neutral_donor(manifest, clip)
    if donor is not None:
        return ReferenceChoice(f"neutral:{donor.clip_id}", video=manifest.media_path(donor, "video"))
    return ReferenceChoice(f"first-frame:{clip.clip_id}", video=manifest.media_path(clip, "video"),
                           warning=f"clip {clip.clip_id}: no reference image and no other neutral clip of identity "
                                   f"{clip.identity}: the reference is the target clip's own first frame, which leaks "
                                   "the target (expression, pixels) into methods that copy it and into CSIM")


def reference_pixels(choice: ReferenceChoice, *, clip_id: str | None = None) -> np.ndarray:
    """The chosen reference as ``(H, W, 3)`` uint8 RGB: the image, or frame ``choice.frame`` of the video (an
    ``image`` path that names a video, e.g. ``ref_image = "videos/neutral.mp4"``, means that video's frame)."""
    path = choice.image if choice.image is not None else choice.video
    if path is None:
        raise ValueError(f"clip {clip_id}: reference choice {choice.source!r} names no file")
    if choice.image is not None and not media.is_video_path(path):
        return media.read_image(path, clip_id=clip_id)
    return media.frame_at(path, choice.frame, clip_id=clip_id)


def reference_image_file(choice: ReferenceChoice, folder: Path, *, clip_id: str | None = None) -> Path:
    """An image file holding the chosen reference, for methods that read one: the manifest's image itself,
    else a PNG of the chosen frame written once into ``folder`` (named after the source, so the clips that
    share a reference share the file)."""
    if choice.image is not None and not media.is_video_path(choice.image):
        return choice.image
    p = Path(folder) / f"{safe_name(f'{choice.source}-f{choice.frame}')}.png"
    if not p.exists():
        media.write_image(p, reference_pixels(choice, clip_id=clip_id))
    return p


def assign_references(manifest: Manifest) -> Manifest:
    """Record step 2 of the policy in the manifest: every clip without a ``ref_image`` that has a neutral donor
    gets ``ref_image`` = the donor's video (its first frame) and ``ref_source`` = ``neutral:<donor id>``.
    A user-set ``ref_image`` is never changed. Counts go to ``meta["references"]`` (``user``, ``neutral``,
    and ``none``: clips left to step 3, the target's own first frame, warned about when used)."""
    counts: Counter[str] = Counter()
    clips = []
    for c in manifest.clips:
        if c.ref_image:
            counts["user" if c.ref_source is None else "derived"] += 1
        else:
            donor = neutral_donor(manifest, c)
            if donor is not None:
                c = replace(c, ref_image=donor.video, ref_source=f"neutral:{donor.clip_id}")
                counts["neutral"] += 1
            else:
                counts["none"] += 1
        clips.append(c)
    out = manifest.with_clips(clips)
    out.meta["references"] = {k: counts[k] for k in ("user", "derived", "neutral", "none") if counts[k]}
    return out
