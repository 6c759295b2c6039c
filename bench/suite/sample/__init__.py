"""The built-in sample dataset, generated offline and deterministically from real material that
ships inside installed packages.

What it is made of:

* **Faces**: three real frontal photographs: ``skimage.data.astronaut()`` (NASA portrait of Eileen
  Collins, public domain), matplotlib's ``sample_data/grace_hopper.jpg`` (US Navy portrait of
  Grace Hopper, public domain) and face 12 of ``skimage.data.lfw_subset()`` (a 25x25 grey crop from
  Labeled Faces in the Wild, upscaled 8x on a blurred canvas; the earlier profile view, scikit-image's
  cameraman, read 2 of 7 and was dropped; faces 0-20 of that subset read at most 4 of 7 uncalibrated).
  Each is cropped square around its MTCNN face box (2.4x the box) and resized to 256x256.
* **Speech**: eSpeak NG (from the ``espeakng-loader`` wheel) speaking a different Harvard
  sentence per clip, resampled to 16 kHz.
* **Motion** (:mod:`moee_bench.bench.suite.sample.face_anim`): 68 dlib landmarks per portrait drive a thin-plate-spline
  warp from a neutral base (a smiling portrait gets its mouth closed and its smile released first; that
  neutral still is the clip's reference image). The jaw and lower lip open with the speech RMS envelope
  at 25 fps, the head sways by a few pixels and degrees, and each emotion is a FACS-prototype set of
  action-unit-like controls (brows, lids, cheeks, mouth corners, lips, jaw) plus the appearance cues a
  64x64 grey classifier relies on (teeth, dark open mouth, brow furrows, forehead lines, nasolabial
  folds), ramping in over the first 0.4 s. Compound emotions add both components' controls at
  :data:`COMPOUND_GAIN` x half weight (a control both move the same way takes the stronger value, not the sum:
  fear and surprise share AU1+2+5+26); ``happily_surprised`` is rendered at 0.2 happiness / 0.8 surprise
  (:data:`RENDER_SHARE`; its target stays 0.5/0.5), since the classifier reads a far weaker smile than surprise.
  Intensity levels 1-3 scale the expression (0.5, 0.8, 1.0).
* **Per-portrait calibration**, each from a measured read of that portrait: hopper's neutral still reads
  "neutral" at 0.78, so her levels are rendered 1.6x stronger, never beyond the full expression
  (:data:`EXPRESSIVITY`); lfw12's photograph rests with raised inner brows and heavy lids (its neutral read
  "sadness"), so its neutral base lowers the inner brows and lifts the outer brows and lids (:data:`REST`; the
  reference image is that corrected still).

**A calibrated sample.** The expressions were tuned until the embedded FER2013 classifier, through the
emotion metric's own detector, crop and frame averaging, reads them. Ground-truth clips, single-emotion
targets read correctly (generator version 4, stride 5; version 3 in brackets): astronaut 6 of 7 [6] (disgust
reads as anger), lfw12 5 of 7 [3] (disgust reads as anger, fear as happiness), hopper 5 of 7 [3] (disgust
reads as neutral, surprise as anger). No disgust clip reads disgust (its probability stays <= 0.05 on them).
Compounds, held-out split (astronaut, lfw12): ``compound_top2`` 3 of 4 clips for ground truth (astronaut's
happily_surprised reads fear, surprise, happiness), 0 for ``static``; version 3 read 0 on every compound clip;
``compound_mix`` 0.790 vs 0.362 (suite run, ground truth vs static).
``static`` (the neutral still held) gets one label for every clip, so 1 of 7. The emotion columns of a sample
run can thus tell a moving expression from a frozen frame; they say nothing about any method.
``tests/test_sample_emotions.py`` holds these numbers (the per-identity ones in its slow test).

What it can show: the whole pipeline on real faces and real speech; lip-sync signal (mouth
motion follows the audio), landmark motion (AKD), identity (CSIM), emotion classifiers reacting
to expression changes, resume and reporting. What it cannot show: realistic expressions (a warp and
painted cues, no real muscle or eye changes), true emotional speech (the voice is neutral),
generalisation (3 identities, one a 25x25 photograph upscaled), a trained model's quality (the shipped tiny
MoEE saw one identity for a few steps). Numbers on it test the tooling, not a method.

Layout under ``out_dir``: ``manifest.json``, ``videos/<clip>.mp4`` (H.264 + AAC, the "GT"),
``audio/<clip>.wav`` (driving speech), ``refs/<identity>.png`` (neutral still = reference image).
Splits are identity-disjoint: astronaut and lfw12 = test (the held-out split the sample suite runs on),
hopper = train (what the shipped tiny MoEE was trained on). Compounds are ``happily_surprised`` and
``fearfully_surprised``, whose both components the classifier can read (it never reads disgust), so that
ground truth's top two classes can be the pair.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from moee_bench.bench.core import media
from moee_bench.bench.core.emotions import BASIC, parse_emotion
from moee_bench.bench.core.errors import BenchError, ManifestError
from moee_bench.bench.core.manifest import ClipRecord, Manifest, load_manifest
from moee_bench.bench.core.faces import FaceDetector, Landmarks68
# imported inside the functions that use them (seconds to import, or optional): PIL, cv2, matplotlib, skimage; our modules that import such packages: face_anim, speech

FPS = 25.0
SIZE = 256
IDENTITIES = ("astronaut", "lfw12", "hopper")
SPLITS = {"astronaut": "test", "lfw12": "test", "hopper": "train"}
# compounds whose both components the FER2013 classifier can read (it never reads disgust, see face_anim)
EMOTIONS = BASIC + ("neutral", "happily_surprised", "fearfully_surprised")
# expression strength per intensity level; a compound scales each component's weight by COMPOUND_GAIN
LEVEL_STRENGTH = {1: 0.5, 2: 0.8, 3: 1.0}
COMPOUND_GAIN = 1.5
# per-portrait expressivity: hopper's neutral still reads "neutral" at 0.78, the strongest of the three, and her
# anger, fear and surprise at level 1-2 stayed below neutral; her levels are rendered 1.6x stronger, never beyond
# the full expression (a stronger one turns her smile into a grimace that reads "anger")
EXPRESSIVITY = {"hopper": 1.6}
# per-portrait correction of the resting face, baked into the neutral base (the reference image): lfw12's photograph
# has raised inner brows and heavy upper lids (an AU1 cast) and its neutral still read "sadness" (0.31, neutral 0.19);
# its inner brows come down, its outer brows and upper lids up
REST = {"lfw12": {"brow_inner_y": 0.06, "brow_outer_y": -0.03, "upper_lid_y": -0.03}}
# how a compound's rendering shares its weight between its components (the target stays the manifest's 0.5/0.5):
# the classifier reads happiness from a far weaker smile than surprise from raised brows and an open mouth
RENDER_SHARE = {"happily_surprised": {"happiness": 0.2, "surprise": 0.8}}
SENTENCES = (
    "The birch canoe slid on the smooth planks.", "Glue the sheet to the dark blue background.",
    "It is easy to tell the depth of a well.", "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.", "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.", "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.", "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.", "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.", "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.", "A pot of tea helps to pass the evening.",
    "Smoky fires lack flame and heat.", "The soft cushion broke the man's fall.",
    "The salt breeze came across from the sea.", "The girl at the booth sold fifty bonds.",
    "The small pup gnawed a hole in the sock.", "The fish twisted and turned on the bent hook.",
    "Press the pants and sew a button on the vest.", "The swan dive was far short of perfect.",
    "The beauty of the view stunned the young boy.", "Two blue fish swam in the tank.",
    "Her purse was full of useless trash.",
)
# FACS prototype action units the puppet imitates (design labels, not detector output)
AUS = {"happiness": {"AU6": 1.0, "AU12": 1.0, "AU25": 1.0}, "sadness": {"AU1": 1.0, "AU15": 1.0},
       "anger": {"AU4": 1.0, "AU7": 1.0, "AU10": 1.0, "AU25": 1.0}, "disgust": {"AU4": 1.0, "AU9": 1.0, "AU10": 1.0},
       "fear": {"AU1": 1.0, "AU2": 1.0, "AU4": 1.0, "AU5": 1.0, "AU20": 1.0, "AU26": 1.0},
       "surprise": {"AU1": 1.0, "AU2": 1.0, "AU5": 1.0, "AU26": 1.0}}
# bumped whenever the generated media change, so that ensure_sample() regenerates an older sample
GENERATOR_VERSION = 4


def _portrait(name: str) -> np.ndarray:
    import matplotlib
    import skimage.data
    from PIL import Image

    if name == "astronaut":
        return skimage.data.astronaut()
    if name == "hopper":
        with Image.open(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg") as im:
            return np.asarray(im.convert("RGB"))
    if name.startswith("lfw"):
        return _lfw_portrait(int(name[3:]))
    raise KeyError(name)


def _lfw_portrait(index: int) -> np.ndarray:
    """Face ``index`` of scikit-image's ``lfw_subset`` (25x25 grey crops of Labeled Faces in the Wild), upscaled
    8x and set on a canvas whose border is the crop's edge, blurred, so that the face detector and the 2.4x face
    crop see a head on a plain background."""
    import cv2
    import skimage.data

    face = cv2.resize((skimage.data.lfw_subset()[index] * 255).round().astype(np.uint8), (200, 200),
                      interpolation=cv2.INTER_CUBIC)
    pad = 160
    canvas = cv2.copyMakeBorder(face, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    blurred = cv2.GaussianBlur(canvas, (0, 0), 25)
    mask = np.zeros(canvas.shape, np.float32)
    mask[pad + 8:-pad - 8, pad + 8:-pad - 8] = 1.0
    mask = cv2.GaussianBlur(mask, (0, 0), 6)
    out = (canvas * mask + blurred * (1 - mask)).round().astype(np.uint8)
    return np.repeat(out[..., None], 3, axis=2)


def _crop_face(img: np.ndarray, detector) -> np.ndarray:
    import cv2

    face = detector.detect(img[None])[0]
    if face is None:
        raise BenchError("sample generation: no face found in a bundled portrait (facenet-pytorch MTCNN)")
    x1, y1, x2, y2 = face.box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2 - 0.05 * (y2 - y1)
    half = 1.2 * max(x2 - x1, y2 - y1)
    pad = int(half) + 2
    padded = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_REFLECT)
    a, b = int(round(cy - half)) + pad, int(round(cx - half)) + pad
    side = int(round(2 * half))
    crop = padded[a:a + side, b:b + side]
    return cv2.resize(crop, (SIZE, SIZE), interpolation=cv2.INTER_AREA)


def _landmarks(img: np.ndarray, detector) -> np.ndarray:
    face = detector.detect(img[None])[0]
    if face is None:
        raise BenchError("sample generation: no face found after cropping a bundled portrait")
    return Landmarks68()(img, face.box)


def _render_weights(spec) -> np.ndarray:
    """The weights over BASIC that the puppet renders for a target: its own weights, a compound's scaled by
    :data:`COMPOUND_GAIN` and shared between its components as :data:`RENDER_SHARE` says."""
    w = np.asarray(spec.weights, np.float64)
    if spec.kind != "compound":
        return w
    share = RENDER_SHARE.get(spec.label)
    if share is not None:
        w = w.sum() * np.array([share.get(b, 0.0) for b in BASIC])
    return w * COMPOUND_GAIN


def make_sample(out_dir: str | Path, *, verbose: bool = False) -> Path:
    """Generate the sample dataset under ``out_dir`` and return its manifest path (deterministic)."""
    from moee_bench.bench.suite.sample.face_anim import Puppet
    from moee_bench.bench.suite.sample.speech import envelope, synthesize
    t0 = time.perf_counter()
    out = Path(out_dir)
    for sub in ("videos", "audio", "refs"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    detector = FaceDetector(min_score=0.8)
    clips: list[ClipRecord] = []
    k = 0
    bar = tqdm(total=len(IDENTITIES) * len(EMOTIONS), desc="sample dataset: building clips", unit="clip",
               file=sys.stderr, leave=False, disable=not verbose)
    for ident_i, ident in enumerate(IDENTITIES):
        still = _crop_face(_portrait(ident), detector)
        puppet = Puppet(still, _landmarks(still, detector), REST.get(ident))
        media.write_image(out / "refs" / f"{ident}.png", puppet.neutral)
        for emo_i, emo_name in enumerate(EMOTIONS):
            spec = parse_emotion(emo_name)
            clip_id = f"{ident}_{spec.label}"
            level = 1 + (ident_i + emo_i) % 3
            rng = np.random.default_rng(1000 * ident_i + emo_i)
            speech = synthesize(SENTENCES[k % len(SENTENCES)], pitch=35 + 15 * ident_i, rate=150 + 10 * (emo_i % 3))
            k += 1
            lead = np.zeros(int(0.2 * 16000), np.float32)
            audio = np.concatenate([lead, speech, lead])[: int(4.0 * 16000)]
            n = int(round(len(audio) / 16000 * FPS))
            audio = audio[: int(n / FPS * 16000)]
            env = envelope(audio, FPS, n)
            phase = rng.uniform(0, 2 * np.pi, 3)
            level_strength = LEVEL_STRENGTH[level] if spec.is_emotional else 0.0
            strength = min(1.0, level_strength * EXPRESSIVITY.get(ident, 1.0))
            weights = _render_weights(spec)
            frames = np.empty((n, SIZE, SIZE, 3), np.uint8)
            for t in range(n):
                sec = t / FPS
                head = (3.0 * np.sin(2 * np.pi * 0.4 * sec + phase[0]), 2.0 * np.sin(2 * np.pi * 0.3 * sec + phase[1]),
                        1.5 * np.sin(2 * np.pi * 0.25 * sec + phase[2]))
                ramp = min(1.0, sec / 0.4)
                frames[t] = puppet.frame(float(env[t]), weights, strength * ramp, head)
            media.write_video(out / "videos" / f"{clip_id}.mp4", [frames], FPS, audio=audio, clip_id=clip_id)
            media.write_wav(out / "audio" / f"{clip_id}.wav", audio)
            aus = None
            if spec.is_emotional:
                aus = {}
                for comp in spec.components:
                    for au, v in AUS[comp].items():
                        aus[au] = max(aus.get(au, 0.0), round(v * level_strength, 3))
            clips.append(ClipRecord(
                clip_id=clip_id, identity=ident, video=f"videos/{clip_id}.mp4", emotion=spec,
                audio=f"audio/{clip_id}.wav", ref_image=f"refs/{ident}.png", fps=FPS, n_frames=n,
                duration=round(n / FPS, 4), intensity=level if spec.is_emotional else None, aus=aus,
                text=f"a {spec.label.replace('_', ' ')} face saying: {SENTENCES[(k - 1) % len(SENTENCES)]}",
                split=SPLITS[ident]))
            bar.update(1)
    bar.close()
    manifest = Manifest("moee-bench-sample", out, clips, meta={
        "generator": "moee_bench.bench.suite.sample.make_sample", "generator_version": GENERATOR_VERSION, "fps": FPS, "size": SIZE,
        "faces": {"astronaut": "skimage.data.astronaut (public domain)",
                  "hopper": "matplotlib sample_data/grace_hopper.jpg (public domain)",
                  "lfw12": "skimage.data.lfw_subset()[12] (Labeled Faces in the Wild, 25x25, upscaled)"},
        "speech": "eSpeak NG via espeakng-loader, Harvard sentences", "splits": SPLITS,
        "seconds_to_generate": None})
    path = manifest.save(out / "manifest.json")
    if verbose:
        print(f"sample dataset: {len(clips)} clips in {time.perf_counter() - t0:.1f} s -> {path}")
    return path


def ensure_sample(out_dir: str | Path, *, verbose: bool = False) -> Path:
    """Return the sample manifest under ``out_dir``, generating it only if absent, tampered, incomplete or made by
    another generator version."""
    path = Path(out_dir) / "manifest.json"
    if path.exists():
        try:
            m = load_manifest(path)
            if m.meta.get("generator_version") != GENERATOR_VERSION:
                if verbose:
                    print(f"sample dataset at {out_dir} was made by generator version {m.meta.get('generator_version', 1)}; "
                          f"regenerating (version {GENERATOR_VERSION})", flush=True)
            elif len(m.clips) == len(IDENTITIES) * len(EMOTIONS) and all(
                    os.path.exists(m.media_path(c, w)) for c in m.clips for w in ("video", "audio", "ref_image")):
                return path
        except (ManifestError, BenchError):
            pass
    return make_sample(out_dir, verbose=verbose)
