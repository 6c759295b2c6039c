"""Voice activity: Silero VAD 16 kHz as THEval runs it, from the weights inside the ``silero-vad`` wheel.

THEval calls ``get_speech_timestamps(read_audio(wav), load_silero_vad(), return_seconds=True)``;
``load_silero_vad()`` is the package's TorchScript file ``silero_vad/data/silero_vad.jit``. We make the
same call on the same network, with one difference: the file is hash-checked against the registry
(``bench/core/weights/catalog/audio.toml``) and loaded through the weights gate
(:func:`bench.core.weights.load_torchscript`), which never runs an unverified TorchScript file
(``--allow-unverified-weights`` does not lift this: a TorchScript file is code).

The wheel's other forms were considered: ``silero_vad_16k.safetensors`` holds *different* weights
(largest absolute difference 18.2 in ``conv4`` against the TorchScript model's; its speech probabilities
differ by up to 0.37 on eSpeak speech), so it would not be THEval's VAD; the ONNX files need onnxruntime,
which the suite does not install.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from moee_bench.bench.core.errors import WeightsError
from moee_bench.bench.core.weights import ResolvedWeights, WeightsOptions, load_torchscript
import warnings
# imported inside the functions that use them (seconds to import, or optional): silero_vad, torch; our modules that import such packages: classifiers

SR = 16000
WEIGHTS = "silero_vad_jit"


def resolve_vad_weights(options: WeightsOptions | None = None) -> ResolvedWeights:
    """The package's TorchScript file, hash-checked against the registry; refuses an unverified file."""
    from moee_bench.metrics.emotion.classifiers import resolve_package_weights

    resolved = resolve_package_weights(WEIGHTS, options)
    if not resolved.verified:
        raise WeightsError(f"{resolved.path} (sha256 {resolved.sha256}) does not match the registered digest; a "
                           "TorchScript file is only loaded when verified. Reinstall silero-vad==6.2.3.")
    return resolved


@lru_cache(maxsize=2)
def _jit(resolved: ResolvedWeights):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)      # torch 2.14 deprecates jit.load in favour of export
        model = load_torchscript(resolved)
    return model.eval()


def _package_fn():
    """``silero_vad.get_speech_timestamps``; importing the package sets torch's thread count to 1 (its
    ``model.py`` does so at import), which would slow every other network in the process: restored here."""
    import torch

    n = torch.get_num_threads()
    try:
        from silero_vad import get_speech_timestamps
    finally:
        torch.set_num_threads(n)
    return get_speech_timestamps


class SileroVAD:
    """Speech segments of 16 kHz mono audio (Silero VAD 16k, the wheel's verified TorchScript file)."""

    name = "silero-vad 6.2.3 (package TorchScript, sha256-verified before load)"

    def __init__(self, weights: WeightsOptions | None = None) -> None:
        self.weights = resolve_vad_weights(weights)
        self.model = _jit(self.weights)

    def segments(self, audio: np.ndarray) -> list[tuple[float, float]]:
        """Speech segments ``[(start_s, end_s)]``: ``silero_vad.get_speech_timestamps`` with its defaults
        (threshold 0.5, min speech 250 ms, min silence 100 ms, pad 30 ms) and ``return_seconds=True``
        (times rounded to 0.1 s), exactly THEval's call."""
        import torch

        get_speech_timestamps = _package_fn()
        x = np.asarray(audio, np.float32).reshape(-1)
        if len(x) == 0:
            return []
        with torch.no_grad():
            ts = get_speech_timestamps(torch.from_numpy(x), self.model, sampling_rate=SR, return_seconds=True)
        return [(float(t["start"]), float(t["end"])) for t in ts]

    def describe(self) -> dict[str, Any]:
        return {"vad": self.name, "weights_sha256": self.weights.sha256, "verified": self.weights.verified,
                "segments": "silero_vad.get_speech_timestamps defaults (threshold 0.5, min speech 250 ms, "
                            "min silence 100 ms, pad 30 ms), return_seconds=True"}
