"""Face detection and landmarks from weights that ship inside installed packages (offline).

* :class:`FaceDetector`: MTCNN from facenet-pytorch (bundled P/R/O-net weights): box, score and
  5 landmarks (eyes, nose, mouth corners) per frame, batched, each distinct frame detected once per
  process (:data:`DETECTIONS`), each op on one torch thread (:data:`DETECT_THREADS`), chunks of frames on
  every core at once.
  MTCNN runs through :class:`~moee_bench.bench.core.mtcnn_fast.FastMTCNN` (:data:`DETECT_PATH`): the library's
  own values, computed faster.
* :class:`Landmarks68`: dlib's 68-point shape predictor from ``face_recognition_models``
  (located without importing that package, whose ``__init__`` needs ``pkg_resources``); each (frame, box)
  computed once per process (:data:`LANDMARKS`), so AKD, FLMD and dynamics on the same frames share one pass.
* :func:`face_record`: both, kept across runs in a persistent, digest-checked record
  (:class:`~moee_bench.bench.core.face_record.FaceRecord`) where ``score`` keeps its persistent feature cache.

Both are wrappers around the libraries; the only logic here is choosing the largest face,
converting their outputs to plain float arrays, and the memos.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sqlite3
import threading
import warnings
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import numpy as np

from moee_bench.bench.core.face_record import FaceRecord
# imported inside the functions that use them (seconds to import, or optional): dlib, facenet_pytorch


@dataclass(frozen=True)
class Face:
    """One detected face in pixel coordinates of the frame it came from."""

    box: np.ndarray          # (4,) x1, y1, x2, y2
    score: float
    landmarks5: np.ndarray   # (5, 2) x, y: left eye, right eye, nose, left mouth, right mouth


_Raw = tuple[np.ndarray, np.ndarray, np.ndarray] | None   # MTCNN boxes (k, 4), probs (k,), points (k, 5, 2)


class _DetectionMemo:
    """Raw MTCNN outputs by frame content, shared by every detector in the process (our own code:
    facenet-pytorch has no cache). AKD, emotion and CSIM sample the same frames of a clip, the GT side
    repeats for every method scored against it, and a static or ground-truth "prediction" repeats GT
    frames, so each distinct frame is detected once. Bounded LRU; entries are a few hundred bytes."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self.max_entries = max_entries
        self._d: OrderedDict[bytes, _Raw] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    @staticmethod
    def key(frame: np.ndarray, net: tuple) -> bytes:
        h = hashlib.blake2b(frame.tobytes(), digest_size=16)
        h.update(repr((frame.shape, net)).encode())
        return h.digest()

    def get(self, k: bytes) -> tuple[bool, _Raw]:
        with self._lock:
            if k in self._d:
                self._d.move_to_end(k)
                self.hits += 1
                return True, self._d[k]
            self.misses += 1
            return False, None

    def put(self, k: bytes, raw: _Raw) -> None:
        with self._lock:
            self._d[k] = raw
            while len(self._d) > self.max_entries:
                self._d.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._d.clear()
            self.hits = self.misses = 0


DETECTIONS = _DetectionMemo()


class _LandmarkMemo(_DetectionMemo):
    """dlib 68-point landmarks by (frame content, integer box): AKD, FLMD and dynamics read the same frames
    through the same MTCNN box, so each (frame, box) is predicted once per process."""

    @staticmethod
    def key(frame: np.ndarray, box: tuple[int, int, int, int]) -> bytes:     # type: ignore[override]
        h = hashlib.blake2b(frame.tobytes(), digest_size=16)
        h.update(repr((frame.shape, str(frame.dtype), box)).encode())
        return h.digest()


LANDMARKS = _LandmarkMemo(max_entries=50_000)     # ~1 kB an entry

#: the persistent per-frame face record in use (:func:`face_record`), or None: faces live in the memos only
RECORD: FaceRecord | None = None


@contextmanager
def face_record(folder: str | Path | None) -> Iterator[FaceRecord | None]:
    """Within the block, detections and landmarks missing from the memos are looked up in, and written to, the
    persistent record in ``folder`` (None: no record). Yields the record (its ``hits``, ``misses``, ``rejected``)."""
    global RECORD
    before = RECORD
    rec = None
    if folder is not None:
        try:
            rec = FaceRecord(folder)
        except sqlite3.DatabaseError as e:        # not a database (a damaged or foreign file): said, not used
            warnings.warn(f"face record in {folder} not used ({e}); faces are detected again and not kept",
                          stacklevel=3)
    RECORD = rec
    try:
        yield rec
    finally:
        RECORD = before
        if rec is not None:
            rec.close()


def _encode_raw(raw: _Raw) -> np.ndarray:
    """A detection as one ``(k, 15)`` float64 array (box, probability, 5 points); ``(0, 15)`` for no face."""
    if raw is None:
        return np.zeros((0, 15))
    b, p, l = raw
    return np.concatenate([b, p[:, None], l.reshape(len(l), 10)], axis=1)


def _decode_raw(a: np.ndarray) -> _Raw:
    if len(a) == 0:
        return None
    return (a[:, :4].copy(), a[:, 4].copy(), a[:, 5:].reshape(-1, 5, 2).copy())


@lru_cache(maxsize=1)
def _mtcnn_kind() -> str:
    from importlib.metadata import version

    return f"mtcnn/facenet-pytorch {version('facenet-pytorch')}"


@lru_cache(maxsize=1)
def _dlib_kind() -> str:
    import dlib

    h = hashlib.sha256()
    with open(_fr_models_dir() / "shape_predictor_68_face_landmarks.dat", "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return f"dlib68/dlib {dlib.__version__}/{h.hexdigest()[:16]}"

#: how MTCNN runs on the CPU: "fast" (:class:`~moee_bench.bench.core.mtcnn_fast.FastMTCNN`, the library's values,
#: faster; the default) or "library" (facenet-pytorch's own ``MTCNN.detect``, the reference ``bench faces`` measures against).
DETECT_PATH = "fast"

#: torch intra-op threads while MTCNN runs. Its R- and O-net stages resample every candidate box on its own
#: (one small ``interpolate(mode="area")`` per box, ~60 a frame): with 2 threads each call waits at an OpenMP
#: barrier, which costs far more than the work whenever the cores are shared (measured on 2 loaded cores:
#: 40.8 ms against 0.045 ms a call, bit-identical results; ``moee-bench bench faces``). None: torch's setting.
#: With 1, :class:`~moee_bench.bench.core.mtcnn_fast.FastMTCNN` still uses every core: one Python thread per core,
#: each on its own chunk of frames.
DETECT_THREADS: int | None = 1


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads (None: unchanged), restoring the previous number."""
    import torch

    before = torch.get_num_threads()
    if n is not None and n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


@lru_cache(maxsize=4)
def _mtcnn(device: str, min_face_size: int):
    from facenet_pytorch import MTCNN

    return MTCNN(keep_all=True, device=device, min_face_size=min_face_size, post_process=False)


@lru_cache(maxsize=4)
def _fast_mtcnn(device: str, min_face_size: int):
    from moee_bench.bench.core.mtcnn_fast import FastMTCNN

    return FastMTCNN(_mtcnn(device, min_face_size))


class FaceDetector:
    """MTCNN face detector (facenet-pytorch, bundled weights). Keeps the largest face of each frame.

    Detectors with the same device and ``min_face_size`` share one network and :data:`DETECTIONS`;
    ``min_score`` is applied after the lookup, so it does not split the memo."""

    name = "mtcnn-facenet-pytorch"

    def __init__(self, device: str = "cpu", min_score: float = 0.9, min_face_size: int = 20) -> None:
        self.device = device
        self.min_score = min_score
        self.net_key = (str(device), int(min_face_size))
        self.mtcnn = _mtcnn(*self.net_key)

    def _raw(self, frames: np.ndarray) -> list[_Raw]:
        keys = [DETECTIONS.key(f, self.net_key) for f in frames]
        known: dict[bytes, _Raw] = {}
        todo: dict[bytes, int] = {}          # first index of each distinct frame not in the memo
        for i, k in enumerate(keys):
            if k in known or k in todo:
                continue
            found, raw = DETECTIONS.get(k)
            if found:
                known[k] = raw
            else:
                todo[k] = i
        kind = f"{_mtcnn_kind()}/{DETECT_PATH}"
        if todo and RECORD is not None:
            for k, a in RECORD.get_many(kind, todo).items():
                known[k] = _decode_raw(a)
                DETECTIONS.put(k, known[k])
                del todo[k]
        if todo:
            batch = frames[list(todo.values())]
            with torch_threads(DETECT_THREADS):
                if DETECT_PATH not in ("fast", "library"):
                    raise ValueError(f"DETECT_PATH must be 'fast' or 'library', got {DETECT_PATH!r}")
                if DETECT_PATH == "fast" and str(self.device) == "cpu":
                    raws = _fast_mtcnn(*self.net_key).detect(batch)
                else:                       # on a GPU the library's own batched call (FastMTCNN is CPU work)
                    raws = self._library(batch)
            for k, raw in zip(todo, raws):
                DETECTIONS.put(k, raw)
                known[k] = raw
            if RECORD is not None:
                RECORD.put_many(kind, {k: _encode_raw(known[k]) for k in todo})
        return [known[k] for k in keys]

    def _library(self, frames: np.ndarray) -> list[_Raw]:
        boxes, probs, points = self.mtcnn.detect(frames, landmarks=True)
        return [None if b is None else (np.asarray(np.asarray(b).tolist(), np.float64).reshape(-1, 4),
                                        np.asarray(np.asarray(p).tolist(), np.float64).reshape(-1),
                                        np.asarray(np.asarray(l).tolist(), np.float64).reshape(-1, 5, 2))
                for b, p, l in zip(boxes, probs, points)]

    def detect(self, frames: np.ndarray) -> list[Face | None]:
        """Detect in ``(n, H, W, 3)`` uint8 RGB frames; ``None`` where no face reaches ``min_score``."""
        frames = np.ascontiguousarray(frames)
        if frames.ndim == 3:
            frames = frames[None]
        out: list[Face | None] = []
        for raw in self._raw(frames):
            if raw is None:
                out.append(None)
                continue
            b, p, l = raw
            keep = p >= self.min_score
            if not keep.any():
                out.append(None)
                continue
            b, p, l = b[keep], p[keep], l[keep]
            i = int(np.argmax((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])))
            out.append(Face(b[i], float(p[i]), l[i]))
        return out


def _fr_models_dir() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("face_recognition_models is not installed (pip install face_recognition_models dlib-bin)")
    return Path(list(spec.submodule_search_locations)[0]) / "models"


@lru_cache(maxsize=1)
def _shape_predictor():
    import dlib

    return dlib.shape_predictor(str(_fr_models_dir() / "shape_predictor_68_face_landmarks.dat"))


@lru_cache(maxsize=1)
def shape_predictor_5():
    """dlib's 5-point shape predictor (eye corners, nose) from ``face_recognition_models``."""
    import dlib

    return dlib.shape_predictor(str(_fr_models_dir() / "shape_predictor_5_face_landmarks.dat"))


class Landmarks68:
    """dlib 68-point landmarks (iBUG 300-W layout) inside a given face box."""

    name = "dlib-shape_predictor_68 (face_recognition_models)"

    def __call__(self, frame: np.ndarray, box: np.ndarray) -> np.ndarray:
        """``(68, 2)`` float64 x, y for the face in ``box`` (x1, y1, x2, y2) of an ``(H, W, 3)`` uint8 RGB frame."""
        import dlib

        box_i = tuple(int(round(v)) for v in box)
        frame = np.ascontiguousarray(frame)
        k = LANDMARKS.key(frame, box_i)
        found, pts = LANDMARKS.get(k)
        if not found and RECORD is not None:
            pts = RECORD.get_many(_dlib_kind(), [k]).get(k)
            found = pts is not None
            if found:
                LANDMARKS.put(k, pts)
        if not found:
            shape = _shape_predictor()(frame, dlib.rectangle(*box_i))
            pts = np.array([[shape.part(i).x, shape.part(i).y] for i in range(68)], np.float64)
            pts.setflags(write=False)
            LANDMARKS.put(k, pts)
            if RECORD is not None:
                RECORD.put_many(_dlib_kind(), {k: pts})
        return pts.copy()
