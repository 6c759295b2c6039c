"""THEval's naturalness and synchronisation statistics as pure functions of landmark tracks and audio.

Definitions follow Newbyl/THEval (commit cfe23fe; ``Naturalness/*.py``, ``Synchronization/*.py``,
``theval/scoring.py``); where THEval is silent or its code does something we do not copy, the choice
is written at the function. Inputs are per-frame landmarks ``(n, K, 2)`` in pixels of the evaluation
frame (NaN rows = no face), named through a :class:`moee_bench.metrics.motion.landmarks.Scheme`. Every function returns a
float, or NaN when the clip does not allow the statistic (too few frames, no silence...), never 0.
"""

from __future__ import annotations

import numpy as np

from moee_bench.metrics.motion.landmarks import Scheme

THEVAL_SIZE = 256.0          # THEval resizes frames to 256x256 for lip dynamics and silent-lip stability
MIN_SILENCE_S = 0.3          # THEval MIN_SILENCE_DURATION = 300 ms
MIN_SPEECH_RATIO = 0.1       # THEval lip sync: NaN below 10 % speech frames
RMS_WINDOW_S = 0.05          # THEval lip sync: 50 ms RMS frames and hop


def _valid(points: np.ndarray) -> np.ndarray:
    return np.isfinite(np.asarray(points, np.float64)).all(axis=(1, 2))


def to_theval_square(points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Pixel landmarks of an ``(H, W)`` frame as they would be on THEval's frame resized to 256x256."""
    h, w = size
    return np.asarray(points, np.float64) * np.array([THEVAL_SIZE / w, THEVAL_SIZE / h])


def lip_dynamics(points: np.ndarray, scheme: Scheme, size: tuple[int, int]) -> float:
    """THEval *Lip dynamics* (``std_over_time``): the vector of all pairwise distances between the lip points
    (in 256x256 coordinates) per frame with a face, its population std over time per pair, mean over pairs.

    THEval landmarks the 256x256-resized frame; we landmark the evaluation frame and rescale the
    coordinates (same geometry, the landmarker sees more pixels)."""
    p = to_theval_square(points, size)[_valid(points)][:, list(scheme.lips)]
    if len(p) < 2:
        return float("nan")
    iu, ju = np.triu_indices(p.shape[1], k=1)
    d = np.linalg.norm(p[:, iu] - p[:, ju], axis=-1)
    return float(d.std(axis=0).mean())


def head_motion_dynamics(angles: np.ndarray, centres: np.ndarray) -> float:
    """THEval *Head motion dynamics*: ``sqrt(mean_k std(angle_k) * mean_k var(diff(angle_k)) + mean(var(cx), var(cy)))``
    over the frames with a face (angles: pitch, yaw, roll in degrees; centres: face-box centre in pixels).

    THEval's ``var(diff)`` is 0 with fewer than 3 frames and its translation term needs more than one frame;
    we return NaN below 3 frames instead."""
    a = np.asarray(angles, np.float64)
    c = np.asarray(centres, np.float64)
    ok = np.isfinite(a).all(axis=1) & np.isfinite(c).all(axis=1)
    a, c = a[ok], c[ok]
    if len(a) < 3:
        return float("nan")
    avg_std = a.std(axis=0).mean()
    avg_dvar = np.diff(a, axis=0).var(axis=0).mean()
    avg_tvar = c.var(axis=0).mean()
    return float(np.sqrt(avg_std * avg_dvar + avg_tvar))


def eyebrow_dynamics(points: np.ndarray, scheme: Scheme) -> float:
    """THEval *Eyebrow dynamics* (micro-expression intensity): per frame with a face, each side's distance
    from the eyebrow centre to the eye centre divided by the distance between the two eye centres; the mean
    absolute change between consecutive face frames, pooled over both sides. Frames whose eye distance is
    below 1e-3 px are skipped (THEval's rule); a frame without a face does not break the chain (THEval keeps
    the previous value). Pixel coordinates of the evaluation frame, as THEval (no resize)."""
    p = np.asarray(points, np.float64)[_valid(points)]
    if len(p) < 2:
        return float("nan")
    c = lambda idx: p[:, list(idx)].mean(axis=1)  # noqa: E731
    eye_l, eye_r = c(scheme.eye_left), c(scheme.eye_right)
    scale = np.linalg.norm(eye_l - eye_r, axis=1)
    keep = scale >= 1e-3
    if keep.sum() < 2:
        return float("nan")
    left = np.linalg.norm(c(scheme.brow_left) - eye_l, axis=1)[keep] / scale[keep]
    right = np.linalg.norm(c(scheme.brow_right) - eye_r, axis=1)[keep] / scale[keep]
    return float((np.abs(np.diff(left)).sum() + np.abs(np.diff(right)).sum()) / (2 * (len(left) - 1)))


def speech_frames(segments: list[tuple[float, float]], fps: float, n_frames: int) -> np.ndarray:
    """Boolean ``(n,)``: frames inside a speech segment, ``int(start * fps)`` .. ``int(end * fps)`` inclusive (THEval)."""
    m = np.zeros(n_frames, bool)
    for s, e in segments:
        a, b = int(s * fps), int(e * fps)
        m[max(a, 0):min(b + 1, n_frames)] = True
    return m


def silent_frames(segments: list[tuple[float, float]], fps: float, n_frames: int) -> np.ndarray:
    """Boolean ``(n,)``: frames outside every speech segment, kept only in runs of at least
    ``0.3 s * fps`` frames (THEval's ``MIN_SILENCE_DURATION``)."""
    sil = ~speech_frames(segments, fps, n_frames)
    out = np.zeros(n_frames, bool)
    i = 0
    while i < n_frames:
        if not sil[i]:
            i += 1
            continue
        j = i
        while j < n_frames and sil[j]:
            j += 1
        if j - i >= MIN_SILENCE_S * fps:
            out[i:j] = True
        i = j
    return out


def inner_lip_gap(points: np.ndarray, scheme: Scheme, size: tuple[int, int]) -> np.ndarray:
    """``(n,)`` THEval's silent-lip opening: mean over the inner-lip point pairs of ``|y_upper - y_lower|``
    divided by the outer-eye-corner distance, in 256x256 coordinates; NaN without a face or when the eye
    distance is below 1e-3."""
    p = to_theval_square(points, size)
    gap = np.abs(p[:, list(scheme.inner_upper), 1] - p[:, list(scheme.inner_lower), 1]).mean(axis=1)
    eye = np.linalg.norm(p[:, scheme.eye_outer[0]] - p[:, scheme.eye_outer[1]], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(eye >= 1e-3, gap / eye, np.nan)


def silent_lip_stability(points: np.ndarray, scheme: Scheme, size: tuple[int, int], silent: np.ndarray) -> float:
    """THEval *Silent lip stability*: over the silent frames with a face, ``median(|x - mean(x)|)`` of the
    inner-lip opening (:func:`inner_lip_gap`). NaN with fewer than 2 such frames (THEval's rule)."""
    x = inner_lip_gap(points, scheme, size)[np.asarray(silent, bool)]
    x = x[np.isfinite(x)]
    if len(x) < 2:
        return float("nan")
    return float(np.median(np.abs(x - x.mean())))


def mouth_openness(points: np.ndarray, scheme: Scheme) -> np.ndarray:
    """``(n,)`` THEval's lip-sync openness: ``|mean y(inner upper) - mean y(inner lower)|`` over
    ``|mean x(right eye corners) - mean x(left eye corners)|``.

    THEval takes these in MediaPipe's normalised coordinates (x / W, y / H), which scales the ratio by
    W / H on non-square frames; we use pixels (the same number on square frames, aspect-independent)."""
    p = np.asarray(points, np.float64)
    gap = np.abs(p[:, list(scheme.inner_upper), 1].mean(axis=1) - p[:, list(scheme.inner_lower), 1].mean(axis=1))
    io = np.abs(p[:, list(scheme.eye_right_x), 0].mean(axis=1) - p[:, list(scheme.eye_left_x), 0].mean(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(io > 0, gap / io, np.nan)


def frame_rms(audio: np.ndarray, sr: int, fps: float, n_frames: int) -> np.ndarray:
    """``(n,)`` audio loudness at each video frame time ``i / fps``: ``librosa.feature.rms`` with
    ``frame_length = hop_length = int(0.05 * sr)`` and ``center=True`` (zero padding of half a window),
    frame times ``k * hop / sr``, linearly interpolated (``np.interp``) as THEval does.

    Our few lines for librosa's RMS (librosa is not a dependency): pad, frame, ``sqrt(mean(x^2))``;
    tests/test_dynamics.py checks it against a hand computation."""
    x = np.asarray(audio, np.float64).reshape(-1)
    fl = int(sr * RMS_WINDOW_S)
    x = np.pad(x, fl // 2)
    if len(x) < fl:
        x = np.pad(x, (0, fl - len(x)))
    n = 1 + max(len(x) - fl, 0) // fl
    frames = np.lib.stride_tricks.sliding_window_view(x, fl)[::fl][:n]
    rms = np.sqrt((frames ** 2).mean(axis=1))
    times = np.arange(len(rms)) * fl / sr
    return np.interp(np.arange(n_frames) / fps, times, rms)


def lip_loudness_distance(openness: np.ndarray, rms: np.ndarray, speech: np.ndarray) -> float:
    """THEval *Lip sync*: over speech frames with a face, min-max normalise the openness and the RMS
    (``(x - min) / (max - min + 1e-8)``) and take the mean absolute difference. NaN when speech covers
    less than 10 % of the frames or fewer than 2 frames remain (THEval's rules)."""
    o, v, s = np.asarray(openness, np.float64), np.asarray(rms, np.float64), np.asarray(speech, bool)
    if len(s) == 0 or s.mean() < MIN_SPEECH_RATIO:
        return float("nan")
    m = s & np.isfinite(o)
    if m.sum() < 2:
        return float("nan")
    o, v = o[m], v[m]
    on = (o - o.min()) / (o.max() - o.min() + 1e-8)
    vn = (v - v.min()) / (v.max() - v.min() + 1e-8)
    return float(np.mean(np.abs(on - vn)))


def mouth_open_velocity(points: np.ndarray, scheme: Scheme) -> float:
    """Mean absolute frame-to-frame change of :func:`mouth_openness` over consecutive frames that both have a
    face (per frame, interocular units). Our addition (THEval has no velocity term): the mouth-opening speed."""
    o = mouth_openness(points, scheme)
    d = np.diff(o)
    d = d[np.isfinite(d)]
    return float(np.abs(d).mean()) if len(d) else float("nan")


def closeness(value: float, gt: float) -> float:
    """THEval's per-metric score ``1 - |m - gt| / |gt|`` (``theval/scoring.py``); NaN when ``gt`` is 0 (THEval raises)."""
    if not np.isfinite(value) or not np.isfinite(gt) or abs(gt) <= 1e-9:
        return float("nan")
    return float(1.0 - abs(value - gt) / abs(gt))
