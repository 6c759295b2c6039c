"""Shared machinery of the adapters that run a baseline's own inference code from a user's checkout.

An adapter never imports the baseline: it writes the method's inputs (16 kHz mono WAV, the reference
image, a YAML config where the method reads one) into a work folder inside the output folder, runs
the method's script with that method's Python (an argument list, no shell, ``cwd`` = the checkout),
finds the file the method wrote, and normalises it to the suite's convention
(:func:`baselines.normalize.normalize_video`).

Method config keys (suite ``[[methods]]`` table or ``--method-config``):
``repo`` (the checkout, required), ``python`` (its interpreter; default ``REPO/.venv/bin/python`` or
``REPO/venv/bin/python``), ``device`` (default ``cuda``), ``timeout`` (seconds, default 7200),
``keep_work`` (keep the work folder), plus per-method keys documented in each adapter.

The script runs through a small launcher (``python -c LAUNCHER``) that seeds Python's ``random``,
NumPy and torch with the request's seed before the method's code starts: several baselines draw
random numbers without seeding (AniPortrait's pose ``id_seed``), and this makes their output
repeatable. The launcher can also drop a method's watermark step (DreamTalk).
"""

from __future__ import annotations

import contextvars
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Sequence

from moee_bench.baselines.base import GenerationRequest, GenerationResult, Method
from moee_bench.baselines.normalize import normalize_video
from moee_bench.bench.core import media
from moee_bench.bench.core.errors import BenchError, ClipError
from moee_bench.bench.core.paths import safe_name

LAUNCHER = r"""
import os, random, runpy, sys
seed, flags, script = int(sys.argv[1]), sys.argv[2].split(","), sys.argv[3]
sys.argv = [script] + sys.argv[4:]
random.seed(seed)
try:
    import numpy
    numpy.random.seed(seed)
except ImportError:
    pass
try:
    import torch
    torch.manual_seed(seed)
except ImportError:
    pass
if "no_watermark" in flags:
    _system, _remove = os.system, os.remove
    os.system = lambda cmd: 0 if "watermark" in cmd else _system(cmd)
    os.remove = lambda p, *a, **k: None if str(p).endswith("-no_watermark.mp4") else _remove(p, *a, **k)
sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
runpy.run_path(script, run_name="__main__")
"""


class InstallError(BenchError):
    """A baseline's checkout, interpreter or weights are missing."""


@dataclass
class Job:
    """What one generation runs: the script (relative to ``cwd``) and its arguments."""

    script: str
    args: list[str]
    cwd: Path
    flags: list[str] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)


_LAST_USAGE: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("last_process_usage", default=None)


def run_process(argv: Sequence[str], *, cwd: Path, log_path: Path, timeout: float) -> int:
    """Run ``argv`` (a list; never a shell) with stdout and stderr to ``log_path``; return the exit code.

    What the process used (:func:`baselines.process.run_measured`: the child's peak RSS, its GPU memory where
    nvidia-smi exists) is left for :func:`last_process_usage`."""
    from moee_bench.baselines.process import run_measured

    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        rc, stats = run_measured(argv, cwd=cwd, stdout=log, timeout=timeout)
        if rc == -9:
            log.write(f"\n[moee-bench] killed after {timeout:.0f} s\n".encode())
    _LAST_USAGE.set(stats)
    return rc


def last_process_usage() -> dict[str, Any] | None:
    """The measurements of the last :func:`run_process` in this context (None when none ran or it was replaced)."""
    return _LAST_USAGE.get()


def log_tail(path: Path, n: int = 15) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-n:])


class ExternalMethod(Method):
    """Base of the subprocess adapters. Subclasses set the class attributes and implement :meth:`job`
    and :meth:`find_output`."""

    repo_url: ClassVar[str] = ""
    weights_help: ClassVar[str] = ""
    script: ClassVar[str] = ""
    required: ClassVar[tuple[str, ...]] = ()          # paths inside the checkout that must exist
    seed_note: ClassVar[str] = "request seed passed to the method"

    def __init__(self, config=None) -> None:
        super().__init__(config)
        self._checked = False

    # ------------------------------------------------------------------ installation
    @property
    def repo(self) -> Path:
        if not self.config.get("repo"):
            raise InstallError(f"{self.name}: set `repo` in the method config to a checkout of {self.repo_url} "
                               f"(git clone {self.repo_url}), with its weights ({self.weights_help}), and `python` "
                               f"to the interpreter of that method's environment")
        return Path(str(self.config["repo"])).expanduser().resolve()

    @property
    def python(self) -> Path:
        if self.config.get("python"):
            return Path(str(self.config["python"])).expanduser()
        for cand in (self.repo / ".venv" / "bin" / "python", self.repo / "venv" / "bin" / "python"):
            if cand.exists():
                return cand
        raise InstallError(f"{self.name}: no Python environment for {self.repo}: set `python` in the method config to "
                           f"the interpreter where {self.repo_url}'s requirements are installed")

    def check_install(self) -> None:
        """One clear error naming what is missing and where it should be."""
        if self._checked:
            return
        repo = self.repo
        if not repo.is_dir():
            raise InstallError(f"{self.name}: checkout {repo} does not exist: git clone {self.repo_url} {repo}")
        missing = [r for r in (self.script, *self.required) if not (repo / r).exists()]
        if missing:
            raise InstallError(f"{self.name}: {repo} is missing {', '.join(missing)}. {self.weights_help} "
                               f"(see {self.repo_url}#readme)")
        if not self.python.exists():
            raise InstallError(f"{self.name}: interpreter {self.python} does not exist")
        self._checked = True

    # ------------------------------------------------------------------ per method
    def job(self, request: GenerationRequest, work: Path, inputs: dict[str, Path]) -> Job:
        """The script, arguments and config files for ``request`` (files go into ``work``)."""
        raise NotImplementedError

    def find_output(self, request: GenerationRequest, work: Path, inputs: dict[str, Path], job: Job) -> Path | None:
        """The video the method wrote for this request, or None."""
        raise NotImplementedError

    def crop_box(self, request: GenerationRequest, raw: Path) -> tuple[int, int, int, int] | None:
        """(top, left, height, width) to cut from every output frame (a panel of a grid video), or None."""
        return None

    # ------------------------------------------------------------------ shared flow
    def work_dir(self, request: GenerationRequest) -> Path:
        return request.out_path.parent / ".work" / safe_name(f"{self.name}-{request.clip_id}")

    def uid(self, request: GenerationRequest) -> str:
        """A file-name-safe unique stem for this request's inputs (methods name outputs after them)."""
        return safe_name(f"mb_{request.clip_id}_s{request.seed}")

    def prepare_inputs(self, request: GenerationRequest, work: Path, image_ext: str = ".png") -> dict[str, Path]:
        """16 kHz mono PCM WAV of the driving audio and the reference image, named after :meth:`uid`."""
        uid = self.uid(request)
        wav = media.write_wav(work / f"{uid}.wav", media.read_audio(request.audio, clip_id=request.clip_id))
        img = media.write_image(work / f"{uid}{image_ext}", media.read_image(request.ref_image, clip_id=request.clip_id))
        return {"audio": wav, "image": img}

    def argv(self, job: Job, seed: int) -> list[str]:
        return [str(self.python), "-c", LAUNCHER, str(int(seed)), ",".join(job.flags) or "-", job.script, *job.args]

    def generate(self, request: GenerationRequest) -> GenerationResult:
        self.check_install()
        t0 = time.perf_counter()
        work = self.work_dir(request)
        if work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True)
        inputs = self.prepare_inputs(request, work)
        job = self.job(request, work, inputs)
        log = work / "log.txt"
        _LAST_USAGE.set(None)
        rc = run_process(self.argv(job, request.seed), cwd=job.cwd, log_path=log,
                         timeout=float(self.config.get("timeout", 7200)))
        usage = last_process_usage()
        if rc != 0:
            raise ClipError(request.clip_id, f"{self.name} exited with code {rc}; log {log}:\n{log_tail(log)}")
        raw = self.find_output(request, work, inputs, job)
        if raw is None or not raw.is_file():
            raise ClipError(request.clip_id, f"{self.name} finished but wrote no video where expected; log {log}:\n"
                                             f"{log_tail(log)}")
        rec = normalize_video(raw, request.out_path, audio=request.audio, fps=request.fps, size=request.size,
                              clip_id=request.clip_id, crop=self.crop_box(request, raw))
        rec.update({"method_output": str(raw), "seed": self.seed_note, **job.notes,
                    "process": usage or {"child_peak_rss": "not measured"}})
        if not self.config.get("keep_work"):
            shutil.rmtree(work, ignore_errors=True)
        return GenerationResult(request.clip_id, request.out_path, time.perf_counter() - t0, rec["n_frames"], rec)


def newest(paths: Sequence[Path]) -> Path | None:
    """The most recently modified of ``paths`` (None if empty)."""
    paths = [p for p in paths if p.is_file()]
    return max(paths, key=lambda p: p.stat().st_mtime) if paths else None


def dominant_label(request: GenerationRequest, vocabulary: dict[str, str], method: str) -> tuple[str, dict[str, Any]]:
    """The method's code for the request's emotion: basic labels map directly; a compound or mixture, which
    the method cannot express, uses its strongest component and says so; no emotion is neutral."""
    spec = request.emotion
    if spec is None or not spec.is_emotional:
        return vocabulary["neutral"], {"emotion": "neutral"}
    comps = spec.components
    code = vocabulary[comps[0]]
    if spec.kind in ("compound", "mixture") and len(comps) > 1:
        return code, {"emotion": f"{spec.label}: {method} takes one label; used the strongest component "
                                 f"{comps[0]} ({code})"}
    return code, {"emotion": f"{spec.label} -> {code}"}



def write_yaml_config(template: Path, updates: dict[str, Any], dst: Path) -> Path:
    """The method's own YAML config with ``updates`` applied, written with ``yaml.safe_dump``."""
    import yaml

    try:
        data = yaml.safe_load(template.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise InstallError(f"cannot read the method's config {template}: {e}") from None
    data.update(updates)
    dst.write_text(yaml.safe_dump(data, sort_keys=False))
    return dst


def collect(src: Path | None, work: Path) -> Path | None:
    """Move a file the method wrote inside its checkout into ``work`` (leaving the checkout as it was)."""
    if src is None or not src.is_file():
        return None
    dst = work / src.name
    shutil.move(str(src), dst)
    return dst
