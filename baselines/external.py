"""Shared machinery of the adapters that run a baseline's own inference code from a user's checkout.

An adapter never imports the baseline: it writes the method's inputs (16 kHz mono WAV, the reference
image, a YAML config where the method reads one) into a work folder inside the output folder, runs
the method's script with that method's Python (an argument list, no shell, ``cwd`` = the checkout),
finds the file the method wrote, and normalises it to the suite's convention
(:func:`baselines.normalize.normalize_video`).

The user's checkout is left as it was. A method that writes into folders of its working directory
(``private_dirs``: AniPortrait's and EchoMimic's ``output/``, DreamTalk's ``tmp/`` and ``output_video/``,
EAT's ``demo/imgs*``) runs in a *shadow checkout* in the work folder: symbolic links to every entry of
the checkout except those folders, which are fresh and empty there (:func:`shadow_checkout`). Outputs
and caches that a config names go to the work folder; the interpreter runs with
``PYTHONDONTWRITEBYTECODE=1`` so no ``__pycache__`` appears in the checkout. :meth:`ExternalMethod.plan`
(``generate --dry-run``) prepares everything and returns the exact argv, cwd and config files instead
of running.

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
import os
import shlex
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
from moee_bench.baselines.process import run_measured
# imported inside the functions that use them (seconds to import, or optional): yaml

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
    configs: list[Path] = field(default_factory=list)   # config files written for this run (shown by --dry-run)
    env: dict[str, str] = field(default_factory=dict)   # extra environment variables for the script


_LAST_USAGE: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("last_process_usage", default=None)


def run_process(argv: Sequence[str], *, cwd: Path, log_path: Path, timeout: float,
                env: dict[str, str] | None = None) -> int:
    """Run ``argv`` (a list; never a shell) with stdout and stderr to ``log_path``; return the exit code.
    ``env`` adds variables to this process's environment.

    What the process used (:func:`baselines.process.run_measured`: the child's peak RSS, its GPU memory where
    nvidia-smi exists) is left for :func:`last_process_usage`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **(env or {})}    # no __pycache__ in the user's checkout
    with open(log_path, "wb") as log:
        rc, stats = run_measured(argv, cwd=cwd, stdout=log, timeout=timeout, env=env)
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
    private_dirs: ClassVar[tuple[str, ...]] = ()      # folders the script writes relative to its cwd (shadowed)
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
        missing = [r for r in (self.script, *self.requirements()) if not (repo / r).exists()]
        if missing:
            raise InstallError(f"{self.name}: {repo} is missing {', '.join(missing)}. {self.weights_help} "
                               f"(see {self.repo_url}#readme)")
        if not self.python.exists():
            raise InstallError(f"{self.name}: interpreter {self.python} does not exist")
        self.check_runtime()
        self._checked = True

    def check_runtime(self) -> None:
        """Further checks of what the script fetches or needs at run time (raise :class:`InstallError`)."""

    def requirements(self) -> tuple[str, ...]:
        """Paths inside the checkout that the script loads with this config (default :attr:`required`)."""
        return self.required

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

    def checkout(self, work: Path) -> Path:
        """The script's working directory: the shadow checkout in ``work`` when the method has private folders."""
        return work / "checkout" if self.private_dirs else self.repo

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

    def prepare(self, request: GenerationRequest) -> tuple[Path, dict[str, Path], Job]:
        """Check the install, make a fresh work folder (and shadow checkout), write the inputs and build the job."""
        self.check_install()
        work = self.work_dir(request)
        if work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True)
        if self.private_dirs:
            shadow_checkout(self.repo, self.checkout(work), self.private_dirs)
        inputs = self.prepare_inputs(request, work)
        return work, inputs, self.job(request, work, inputs)

    def plan(self, request: GenerationRequest) -> dict[str, Any]:
        """What :meth:`generate` would run for ``request``, without running it: ``argv``, ``cwd``, ``command``
        (the script and its arguments, shell-quoted for reading), ``configs`` (path -> text) and ``work``."""
        work, _, job = self.prepare(request)
        return {"argv": self.argv(job, request.seed), "cwd": str(job.cwd), "work": str(work),
                "command": shlex.join([job.script, *job.args]), "flags": list(job.flags), "env": dict(job.env),
                "configs": {str(p): p.read_text() for p in job.configs}}

    def generate(self, request: GenerationRequest) -> GenerationResult:
        t0 = time.perf_counter()
        work, inputs, job = self.prepare(request)
        log = work / "log.txt"
        _LAST_USAGE.set(None)
        rc = run_process(self.argv(job, request.seed), cwd=job.cwd, log_path=log,
                         timeout=float(self.config.get("timeout", 7200)), env=job.env)
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


def shadow_checkout(repo: Path, dest: Path, private: Sequence[str]) -> Path:
    """A working copy of ``repo`` at ``dest`` made of symbolic links, in which every path of ``private`` is a
    fresh empty folder; the folders above a private path are real folders whose other entries are links."""
    def build(src: Path, dst: Path, paths: list[tuple[str, ...]]) -> None:
        dst.mkdir(parents=True, exist_ok=True)
        heads = {p[0] for p in paths}
        if src.is_dir():
            for entry in src.iterdir():
                if entry.name not in heads:
                    os.symlink(entry, dst / entry.name)
        for head in sorted(heads):
            if (head,) in paths:
                (dst / head).mkdir(parents=True, exist_ok=True)
            else:
                build(src / head, dst / head, [p[1:] for p in paths if p[0] == head])

    build(Path(repo), Path(dest), [Path(p).parts for p in private])
    return Path(dest)


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
    if not spec.in_taxonomy:
        if spec.label not in vocabulary:
            raise ClipError(request.clip_id, f"{method} has no label for {spec.label!r}", status="skipped")
        return vocabulary[spec.label], {"emotion": f"{spec.label} -> {vocabulary[spec.label]} (outside the MoEE taxonomy)"}
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
