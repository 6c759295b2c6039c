"""Built-in reference methods: ``ground-truth`` (upper bound), ``static`` (reference frame held,
driving audio: lower bound) and ``precomputed`` (a folder of videos made elsewhere)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from moee_bench.baselines.base import Capabilities, GenerationRequest, GenerationResult, Method
from moee_bench.baselines.normalize import normalize_video
from moee_bench.bench.core import media
from moee_bench.bench.core.errors import ClipError
from moee_bench.bench.core.paths import clip_file_candidates, find_clip_file


class GroundTruth(Method):
    """The dataset's own video, stored like any method's output (an upper bound): its video stream is copied,
    not re-encoded, so it is scored frame for frame as the GT itself."""

    name = "ground-truth"
    version = "1"
    generates = False
    capabilities = Capabilities(emotion_inputs=frozenset({"label", "compound", "mixture", "text", "audio"}))

    def generate(self, request: GenerationRequest) -> GenerationResult:
        if request.gt_video is None:
            raise ClipError(request.clip_id, "ground-truth method: the clip has no GT video", status="missing")
        t = time.perf_counter()
        rec = normalize_video(request.gt_video, request.out_path, audio=request.audio, fps=request.fps,
                              size=request.size, clip_id=request.clip_id)
        return GenerationResult(request.clip_id, request.out_path, time.perf_counter() - t, rec["n_frames"], rec)


class Static(Method):
    """The reference image held still for the length of the driving audio (a lower bound for motion and sync)."""

    name = "static"
    version = "1"
    generates = False
    capabilities = Capabilities(emotion_inputs=frozenset({"none"}))

    def generate(self, request: GenerationRequest) -> GenerationResult:
        t = time.perf_counter()
        img = media.read_image(request.ref_image, clip_id=request.clip_id)
        if request.size is not None:
            img = media.resize_frames(img, request.size)
        audio = media.read_audio(request.audio, clip_id=request.clip_id)
        n = request.num_frames or max(1, int(round(len(audio) / media.AUDIO_RATE * request.fps)))
        audio = np.pad(audio, (0, max(0, int(n / request.fps * media.AUDIO_RATE) - len(audio))))[: int(n / request.fps * media.AUDIO_RATE)]
        media.write_video(request.out_path, (img for _ in range(n)), request.fps, audio=audio,   # one frame at a time
                          clip_id=request.clip_id)
        return GenerationResult(request.clip_id, request.out_path, time.perf_counter() - t, n,
                                {"method": "reference image repeated", "audio": "driving audio muxed"})


class Precomputed(Method):
    """Videos generated elsewhere: ``config["folder"]/<clip_id>.mp4`` (or the name ``generate`` gives it,
    :func:`bench.core.paths.safe_name`); a missing clip is reported missing, never scored."""

    name = "precomputed"
    version = "1"
    generates = False
    capabilities = Capabilities(emotion_inputs=frozenset({"label", "compound", "mixture", "text", "audio"}))

    def generate(self, request: GenerationRequest) -> GenerationResult:
        folder = Path(self.config.get("folder", ""))
        src = find_clip_file(folder, request.clip_id)
        if src is None:
            names = " or ".join(repr(p.name) for p in clip_file_candidates(folder, request.clip_id))
            raise ClipError(request.clip_id, f"precomputed video {names} is missing in {folder} (not scored)",
                            status="missing")
        t = time.perf_counter()
        rec = normalize_video(src, request.out_path, audio=request.audio if self.config.get("mux_audio", True) else None,
                              fps=request.fps, size=request.size, clip_id=request.clip_id)
        return GenerationResult(request.clip_id, request.out_path, time.perf_counter() - t, rec["n_frames"], rec)
