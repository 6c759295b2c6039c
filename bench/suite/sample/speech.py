"""Real text-to-speech, offline: eSpeak NG as shipped by the ``espeakng-loader`` wheel.

The wheel carries ``libespeak-ng.so`` and its voice data; we call the C API through ctypes
(our own ~40 lines: no Python binding offers synthesis to memory). Falls back to an
``espeak-ng`` binary on PATH. Output: float32 mono at 16 kHz. eSpeak is deterministic, so the
same text and voice settings give the same samples.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from moee_bench.bench.core.errors import BenchError
# imported inside the functions that use them (seconds to import, or optional): espeakng_loader, soundfile

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_RATE, _PITCH, _RANGE = 1, 3, 4
_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class _Espeak:
    def __init__(self) -> None:
        import espeakng_loader

        self.lib = ctypes.cdll.LoadLibrary(str(espeakng_loader.get_library_path()))
        self.lib.espeak_Initialize.restype = ctypes.c_int
        self.rate = int(self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0,
                                                   str(espeakng_loader.get_data_path()).encode(), 0))
        if self.rate <= 0:
            raise BenchError("eSpeak NG failed to initialise from espeakng-loader's data folder")
        self._chunks: list[np.ndarray] = []
        self._cb = _CB(self._collect)
        self.lib.espeak_SetSynthCallback(self._cb)

    def _collect(self, wav, n, _events) -> int:
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, (n,)).copy())
        return 0

    def say(self, text: str, voice: str, rate: int, pitch: int, pitch_range: int) -> tuple[np.ndarray, int]:
        self._chunks = []
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise BenchError(f"eSpeak NG has no voice {voice!r}")
        self.lib.espeak_SetParameter(_RATE, rate, 0)
        self.lib.espeak_SetParameter(_PITCH, pitch, 0)
        self.lib.espeak_SetParameter(_RANGE, pitch_range, 0)
        data = text.encode() + b"\0"
        self.lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, 0, None, None)
        self.lib.espeak_Synchronize()
        pcm = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        return pcm.astype(np.float32) / 32768.0, self.rate


@lru_cache(maxsize=1)
def _engine() -> _Espeak | None:
    try:
        return _Espeak()
    except (ImportError, OSError):
        return None


def synthesize(text: str, *, voice: str = "en-us", rate: int = 160, pitch: int = 50, pitch_range: int = 50,
               sample_rate: int = 16000) -> np.ndarray:
    """Speak ``text``; float32 mono at ``sample_rate``."""
    eng = _engine()
    if eng is not None:
        audio, sr = eng.say(text, voice, rate, pitch, pitch_range)
    else:
        exe = shutil.which("espeak-ng")
        if exe is None:
            raise BenchError("no speech synthesiser: install the espeakng-loader wheel (a dependency of moee-bench) "
                             "or the espeak-ng program (apt-get install espeak-ng)")
        import soundfile as sf

        with tempfile.TemporaryDirectory() as d:
            wav = Path(d) / "s.wav"
            subprocess.run([exe, "-v", voice, "-s", str(rate), "-p", str(pitch), "-w", str(wav), text],
                           check=True, capture_output=True, timeout=60)
            audio, sr = sf.read(str(wav), dtype="float32")
    if len(audio) == 0:
        raise BenchError(f"speech synthesis produced no samples for {text!r}")
    g = np.gcd(int(sr), int(sample_rate))
    return resample_poly(audio, sample_rate // g, int(sr) // g).astype(np.float32)


def envelope(audio: np.ndarray, fps: float, n_frames: int, sample_rate: int = 16000) -> np.ndarray:
    """Per-video-frame RMS of the speech, smoothed and scaled to [0, 1]."""
    hop = sample_rate / fps
    out = np.zeros(n_frames, np.float64)
    for k in range(n_frames):
        a, b = int(k * hop), int((k + 1) * hop)
        seg = audio[a:b]
        out[k] = float(np.sqrt(np.mean(seg.astype(np.float64) ** 2))) if len(seg) else 0.0
    if len(out) >= 3:
        out = np.convolve(np.pad(out, 1, mode="edge"), np.ones(3) / 3, mode="valid")
    peak = np.percentile(out, 95) if out.max() > 0 else 1.0
    return np.clip(out / max(peak, 1e-6), 0.0, 1.0)
