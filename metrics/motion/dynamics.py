"""Landmark dynamics (THEval-style naturalness and synchronisation), per clip and relative to GT.

Five statistics of :mod:`moee_bench.metrics.motion.dynamics_defs` (THEval's definitions; every deviation stated there),
computed on the generated video and, when the clip has one, on its GT video with the same audio:

=====================  =======================  =====================================================
key                    THEval name              what it measures
=====================  =======================  =====================================================
``lip_dynamics``       Lip dynamics             std over time of the lip shape (pairwise lip distances)
``head_dynamics``      Head motion dynamics     pose-angle spread x jerkiness + face-centre spread
``eyebrow_dynamics``   Eyebrow dynamics         mean |change| of brow-to-eye distance per frame
``silent_lip_mad``     Silent lip stability     mouth opening MAD during VAD silences >= 0.3 s
``lip_loudness_dist``  Lip sync                 mean |norm. mouth opening - norm. audio RMS| in speech
=====================  =======================  =====================================================

plus ``mouth_open_velocity`` (mean |change| of the mouth opening per frame; ours, not in THEval's score).

Per clip: ``<key>`` (generated) and ``<key>_gt``. Aggregates: ``<key>`` = mean over clips,
``<key>_gt`` = mean over the clips scored on both sides, ``<key>_closeness`` = THEval's
``1 - |mean_pred - mean_gt| / |mean_gt|`` over those paired clips (THEval compares dataset means), and
``dynamics_score`` = the mean of the five closeness values (THEval's naturalness + synchronisation
groups; its three quality metrics are not part of this metric). Closer to GT is better for the raw
values; higher is better for closeness.

Landmarks (``dynamics_landmarks``): ``dlib`` (default; MTCNN + dlib 68 points, always installed) or
``mediapipe`` (THEval's FaceMesh; optional package). Head pose: ``cv2.solvePnP`` on six landmarks
(:func:`moee_bench.metrics.motion.landmarks.head_pose`) instead of THEval's FaceXFormer network. Speech: Silero VAD
(:mod:`moee_bench.metrics.motion.vad`) on the driving audio (else the video's own track), 16 kHz. A clip without a face in
any generated frame is ``no_face``; a statistic a clip does not allow (no silence, < 10 % speech, no
audio) is left out of that clip and counted (``<key>_n`` in the aggregates), never 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from moee_bench.bench.core.errors import ClipError
from moee_bench.metrics.motion import dynamics_defs as D
from moee_bench.metrics.core.base import ClipContext, Features, FrameChunk, MeanState, Metric, Param, State
from moee_bench.metrics.motion.landmarks import build_backend, head_pose
from moee_bench.metrics.motion.vad import SileroVAD

THEVAL_KEYS = ("lip_dynamics", "head_dynamics", "eyebrow_dynamics", "silent_lip_mad", "lip_loudness_dist")
RAW_KEYS = THEVAL_KEYS + ("mouth_open_velocity",)
AUDIO_KEYS = ("silent_lip_mad", "lip_loudness_dist")
SR = 16000


def side_values(points: np.ndarray, centres: np.ndarray, pose: np.ndarray, scheme, size: tuple[int, int], fps: float,
                segments: list[tuple[float, float]] | None, rms: np.ndarray | None) -> dict[str, float]:
    """The raw statistics of one video side (NaN where the clip does not allow one); ``segments`` are the VAD's
    speech segments in seconds and ``rms`` the audio loudness at each frame (:func:`dynamics_defs.frame_rms`)."""
    n = len(points)
    out = {"lip_dynamics": D.lip_dynamics(points, scheme, size),
           "head_dynamics": D.head_motion_dynamics(pose, centres),
           "eyebrow_dynamics": D.eyebrow_dynamics(points, scheme),
           "mouth_open_velocity": D.mouth_open_velocity(points, scheme),
           "silent_lip_mad": float("nan"), "lip_loudness_dist": float("nan")}
    if segments is not None and rms is not None:
        out["silent_lip_mad"] = D.silent_lip_stability(points, scheme, size, D.silent_frames(segments, fps, n))
        out["lip_loudness_dist"] = D.lip_loudness_distance(D.mouth_openness(points, scheme),
                                                           np.asarray(rms, np.float64)[:n],
                                                           D.speech_frames(segments, fps, n))
    return out


class _Extractor:
    def __init__(self, m: "Dynamics", ctx: ClipContext) -> None:
        self.m, self.ctx = m, ctx
        self.pred = m.backend.tracker()
        self.gt = m.backend.tracker()
        self.has_gt = False

    def add(self, chunk: FrameChunk) -> None:
        self.pred.add(chunk.pred)
        if chunk.gt is not None:
            self.has_gt = True
            self.gt.add(chunk.gt)

    def finish(self) -> Features:
        ctx = self.ctx
        pts, ctr = self.pred.result()
        if not np.isfinite(pts).all(axis=(1, 2)).any():
            raise ClipError(ctx.clip_id, f"no face found in any of the {len(pts)} generated frames "
                                         f"({self.m.backend.name})", status="no_face")
        size = ctx.size or (0, 0)
        feats: Features = {"pred_points": pts, "pred_centres": ctr,
                           "pred_pose": head_pose(pts, self.m.backend.scheme, size).astype(np.float32),
                           "size": np.array(size, np.int64), "fps": np.array(ctx.fps, np.float64)}
        if self.has_gt:
            gp, gc = self.gt.result()
            feats.update({"gt_points": gp, "gt_centres": gc,
                          "gt_pose": head_pose(gp, self.m.backend.scheme, size).astype(np.float32)})
        if ctx.audio is not None:
            audio = np.asarray(ctx.audio, np.float32)
            segs = self.m.vad().segments(audio)
            feats["speech_segments"] = np.asarray(segs, np.float64).reshape(-1, 2)
            feats["rms"] = D.frame_rms(audio, SR, ctx.fps, len(pts))
        return feats


class Dynamics(Metric):
    """THEval-style landmark dynamics of the generated video, its GT, and their closeness."""

    name = "dynamics"
    reference = "THEval (Newbyl/THEval) landmark dynamics and closeness to GT"
    keys = tuple(f"{k}_closeness" for k in THEVAL_KEYS) + ("dynamics_score",) + RAW_KEYS
    higher_is_better = {**{f"{k}_closeness": True for k in THEVAL_KEYS}, "dynamics_score": True}
    needs_audio = True
    states = {"pred": State(lambda: {k: MeanState() for k in RAW_KEYS}),          # every clip with a generated value
              "pred_paired": State(lambda: {k: MeanState() for k in RAW_KEYS}),   # clips with both values
              "gt_paired": State(lambda: {k: MeanState() for k in RAW_KEYS})}
    parts = {"pair": ("pred", "gt", "audio")}      # the GT side when the clip has one (else its identity is "absent")
    PARAMS = {"dynamics_landmarks": Param(str, "dlib", ("dlib", "mediapipe"), help="landmark backend")}

    def __init__(self, options: Any = None) -> None:
        self.landmarks = str(self.param_value(options, "dynamics_landmarks"))
        self.device = getattr(options, "device", "cpu")
        self.weights = getattr(options, "weights", None)
        self.backend = build_backend(self.landmarks, self.device)
        self._vad = None
        self._vad_info = self.vad().describe()
        super().__init__()

    def vad(self):
        """The Silero VAD (built once; its weights are resolved and checked at construction)."""
        if self._vad is None:
            self._vad = SileroVAD(self.weights)
        return self._vad

    def config(self) -> dict[str, Any]:
        return {"definitions": "THEval (Newbyl/THEval cfe23fe), deviations in metrics/dynamics_defs.py",
                **self.backend.describe(), "head_pose": "cv2.solvePnP (SQPnP), 6 landmarks, generic 3D face, f = width",
                "vad": self._vad_info, "audio": "driving audio (else the video's track), 16 kHz mono",
                "rms": "50 ms frames and hop, centred, interpolated at frame times"}

    def protocol(self) -> dict[str, Any]:
        return {"metric": self.name, **self.config(),
                "closeness": "1 - |mean_pred - mean_gt| / |mean_gt| over clips scored on both sides (THEval Eq. 12)",
                "dynamics_score": "mean of the five closeness values (THEval naturalness + synchronisation)"}

    def extractor(self, ctx: ClipContext) -> _Extractor:
        return _Extractor(self, ctx)

    def update(self, ctx: ClipContext | None, feats: Features) -> dict[str, Any]:
        size = tuple(int(x) for x in np.asarray(feats["size"]))
        fps = float(feats["fps"])
        segs = [tuple(s) for s in np.asarray(feats["speech_segments"]).tolist()] if "speech_segments" in feats else None
        rms = np.asarray(feats["rms"]) if "rms" in feats else None
        scheme = self.backend.scheme
        pv = side_values(feats["pred_points"], feats["pred_centres"], feats["pred_pose"], scheme, size, fps, segs, rms)
        gv = (side_values(feats["gt_points"], feats["gt_centres"], feats["gt_pose"], scheme, size, fps, segs, rms)
              if "gt_points" in feats else {})
        values: dict[str, Any] = {}
        for k in RAW_KEYS:
            v, g = pv[k], gv.get(k, float("nan"))
            if np.isfinite(v):
                values[k] = v
                self.pred[k].add(v)
            if np.isfinite(g):
                values[f"{k}_gt"] = g
            if np.isfinite(v) and np.isfinite(g):
                self.pred_paired[k].add(v)
                self.gt_paired[k].add(g)
        if segs is None and ctx is not None:
            ctx.notes.append("dynamics: no audio, silent-lip stability and lip-loudness synchrony not computed")
        return values

    def compute(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k in RAW_KEYS:
            out[k] = self.pred[k].mean()
            out[f"{k}_n"] = self.pred[k].count
            out[f"{k}_gt"] = self.gt_paired[k].mean()
            out[f"{k}_n_paired"] = self.gt_paired[k].count
            if out[k] is None:
                out[f"{k}_reason"] = "no clip allowed this statistic" + (" (no audio or no silence / speech)" if k in AUDIO_KEYS else "")
            if k in THEVAL_KEYS:
                pm, gm = self.pred_paired[k].mean(), out[f"{k}_gt"]
                c = D.closeness(np.nan if pm is None else pm, np.nan if gm is None else gm)
                out[f"{k}_closeness"] = c if np.isfinite(c) else None
                if out[f"{k}_closeness"] is None:
                    out[f"{k}_closeness_reason"] = ("no clip scored on both the generated and the GT video"
                                                    if not self.gt_paired[k].count else "GT mean is 0")
        missing = [k for k in THEVAL_KEYS if out[f"{k}_closeness"] is None]
        if missing:
            out["dynamics_score"] = None
            out["dynamics_score_reason"] = f"closeness missing for {missing}"
        else:
            out["dynamics_score"] = float(np.mean([out[f"{k}_closeness"] for k in THEVAL_KEYS]))
        return out
