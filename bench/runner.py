"""Run a suite: generate the missing videos, score them with every metric, store everything, report.

Resumable by construction: the run id is derived from the suite's content, each generated video
is recorded (method, clip, config hash incl. seed) after its atomic write, per-clip metric rows are
written in one transaction each, and per-clip features go to the content-addressed cache. A run
killed at any point and started again regenerates nothing that finished and decodes nothing whose
features are cached; rows are replaced by primary key, never duplicated.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
import platform
import resource
import subprocess
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from baselines.base import GenerationRequest
from baselines.registry import build_method
from bench.emotions import EmotionSpec
from bench.errors import BenchError, ClipError
from bench.manifest import ClipRecord, Manifest, load_manifest
from bench.paths import safe_name
from bench.splits import clips_of, load_split
from bench.store import ResultStore
from bench.suite import Suite
from bench.weights import WeightsOptions

PACKAGES = ("moee-bench", "torch", "torchvision", "numpy", "scipy", "scikit-image", "lpips", "pytorch-fid",
            "syncnet-python", "facexlib", "av", "diffusers", "transformers")


@dataclass
class RunSummary:
    run_id: str
    store: Path
    failures: list[str] = field(default_factory=list)
    generated: int = 0
    reused: int = 0
    reports: dict[str, Path] = field(default_factory=dict)


def _git_commit() -> str | None:
    try:
        r = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                           cwd=Path(__file__).resolve().parent)
        return r.stdout.strip() or None if r.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def _versions() -> dict[str, str]:
    out = {}
    for p in PACKAGES:
        try:
            out[p] = md.version(p)
        except md.PackageNotFoundError:
            pass
    return out


def _device_name(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(0)
    return f"cpu ({platform.processor() or platform.machine()})"


def load_dataset(suite: Suite, out_dir: Path) -> Manifest:
    if suite.dataset == "sample":
        from bench.sample import ensure_sample

        return load_manifest(ensure_sample(out_dir / "sample", verbose=True))
    return load_manifest(suite.dataset)


def _config_hash(suite: Suite, spec_name: str, version: str, config: dict) -> str:
    blob = json.dumps({"method": spec_name, "version": version, "config": config, "seed": suite.seed, "fps": suite.fps,
                       "size": suite.size}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _sha(path: Path) -> str:
    from metrics.evaluate import file_hash

    return file_hash(path)


class Dist:
    """Rank, world size and collectives (torch.distributed, gloo on CPU); a no-op for one process."""

    def __init__(self) -> None:
        import torch.distributed as td

        self.td = td if td.is_available() and td.is_initialized() else None
        self.rank = self.td.get_rank() if self.td else 0
        self.world = self.td.get_world_size() if self.td else 1

    def barrier(self) -> None:
        if self.td:
            self.td.barrier()

    def gather(self, obj: Any) -> list[Any]:
        if not self.td:
            return [obj]
        out: list[Any] = [None] * self.world
        self.td.all_gather_object(out, obj)
        return out

    def mine(self, items: list) -> list:
        """This rank's shard (round robin)."""
        return items[self.rank::self.world]


def run_suite(suite: Suite, out_dir: Path, *, weights_dir: str | None = None, allow_unverified: bool = False,
              device: str = "cpu", fail_fast: bool = False, report: bool = True, log=print) -> RunSummary:
    """Run every method of ``suite`` on its split; results go to ``out_dir/store``.

    Under torchrun each rank generates and scores its round-robin shard of the clips and writes
    its per-clip rows; metric states are gathered and merged on rank 0, which writes the
    aggregates, the run metadata and the report.
    """
    from metrics.evaluate import ClipInput, evaluate
    from metrics.registry import MetricOptions, metric_class

    dist = Dist()
    if dist.rank != 0:
        log = lambda *a, **k: None  # noqa: E731
    out_dir = Path(out_dir)
    if dist.rank == 0:                  # rank 0 builds the sample and creates the store (schema, WAL) first
        manifest = load_dataset(suite, out_dir)
        ResultStore(out_dir / "store").close()
    dist.barrier()
    if dist.rank != 0:
        manifest = load_dataset(suite, out_dir)
    split_file = load_split(suite.split_file) if suite.split_file else None
    clips = clips_of(manifest, suite.split, split_file)
    if not clips:
        raise BenchError(f"split {suite.split!r} of {manifest.dataset} has no clips")
    store = ResultStore(out_dir / "store")
    run_id = f"{safe_name(suite.name)}-{suite.hash[:12]}"
    wopts = WeightsOptions(weights_dir, allow_unverified)
    summary = RunSummary(run_id, store.folder)
    mopts = MetricOptions(weights=wopts, device=device, params=dict(suite.params))
    metrics, unavailable = [], {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for name in suite.metrics:
            try:
                metrics.append(metric_class(name)(mopts))
            except KeyError as e:
                raise BenchError(str(e)) from None
            except (BenchError, ImportError, AttributeError) as e:
                unavailable[name] = f"{type(e).__name__}: {e}"
                log(f"metric {name}: not computed: {e}")
    meta = {"git_commit": _git_commit(), "versions": _versions(), "python": sys.version.split()[0],
            "device": _device_name(device), "seed": suite.seed, "suite": suite.raw, "suite_hash": suite.hash,
            "dataset_name": manifest.dataset, "manifest_hash": manifest.content_hash(),
            "weights": [r.provenance() for r in wopts.used], "unverified_weights": wopts.any_unverified,
            "metrics_unavailable": unavailable, "protocol": {m.name: m.protocol() for m in metrics},
            "n_clips": len(clips), "methods": {}}
    by_id = manifest.by_id()
    for spec in suite.methods:
        method = build_method(spec.name, spec.config)
        meta["methods"][spec.label] = method.describe()
        chash = _config_hash(suite, spec.name, method.version, spec.config)
        vid_dir = out_dir / "videos" / safe_name(spec.label)
        gen_s, gen_frames, n_gen = 0.0, 0, 0
        ok_clips: list[ClipRecord] = []
        for clip in dist.mine(clips):
            out_path = vid_dir / f"{safe_name(clip.clip_id)}.mp4"
            prev = store.generation(spec.label, clip.clip_id, chash)
            if prev and prev["status"] == "ok" and out_path.is_file() and _sha(out_path) == prev["sha256"]:
                summary.reused += 1
                ok_clips.append(clip)
                continue
            try:
                req = build_request(manifest, clip, out_path, out_dir, seed=suite.seed, fps=suite.fps, size=suite.size)
                res = method.generate(req)
            except ClipError as e:
                store.put_generation(spec.label, clip.clip_id, chash, path=str(out_path), sha256="", seconds=0.0,
                                     n_frames=0, normalisation={}, status=e.status, message=e.reason)
                summary.failures.append(f"{spec.label}/{clip.clip_id}: generation {e.status}: {e.reason}")
                if fail_fast:
                    raise
                continue
            store.put_generation(spec.label, clip.clip_id, chash, path=str(out_path), sha256=_sha(out_path),
                                 seconds=res.seconds, n_frames=res.n_frames, normalisation=res.normalisation)
            gen_s += res.seconds
            gen_frames += res.n_frames
            n_gen += 1
            summary.generated += 1
            ok_clips.append(clip)
        tot = [sum(x) for x in zip(*dist.gather((gen_s, gen_frames, n_gen)))]
        if tot[2] and dist.rank == 0:
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            store.put_throughput(run_id, spec.label, device=_device_name(device),
                                 frames_per_s=tot[1] / tot[0] if tot[0] > 0 else None,
                                 seconds_per_clip=tot[0] / tot[2], peak_mem_bytes=rss, n_clips=int(tot[2]),
                                 extra={"peak_mem": "rank-0 process peak RSS (CPU)" if device == "cpu" else "CUDA",
                                        "world_size": dist.world})
        missing = [c for c in dist.mine(clips) if c not in ok_clips]
        for c in missing:
            gen = store.generation(spec.label, c.clip_id, chash) or {}
            store.put_clip(run_id, spec.label, c.clip_id, values={},
                           status={m: gen.get("status", "missing") for m in suite.metrics},
                           messages={m: gen.get("message", "") for m in suite.metrics},
                           info=_info(c, 0, 0.0, ["not generated: " + gen.get("message", "")]))
        inputs = [ClipInput(c.clip_id, vid_dir / f"{safe_name(c.clip_id)}.mp4", manifest.media_path(c, "video"),
                            manifest.media_path(c, "ref_image") if c.ref_image else None,
                            manifest.media_path(c, "audio") if c.audio else None, c.emotion, c.intensity, c.identity)
                  for c in ok_clips]
        for m in metrics:
            m.reset()

        def on_clip(o, _label=spec.label) -> None:
            c = by_id[o.clip_id]
            status = dict(o.status)
            for n, why in unavailable.items():
                status[n] = "unavailable"
            store.put_clip(run_id, _label, o.clip_id, values=o.values, status=status,
                           messages={**o.messages, **unavailable}, info=_info(c, o.n_frames, o.seconds, o.warnings))
            store.put_feature_keys(run_id, _label, o.clip_id, o.feature_keys)
            bad = {k: v for k, v in o.status.items() if v != "ok"}
            if bad:
                summary.failures.extend(f"{_label}/{o.clip_id}: {k} {v}: {o.messages.get(k, '')}" for k, v in bad.items())

        log(f"scoring {spec.label}: {len(inputs)} clips, metrics {[m.name for m in metrics]}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            evaluate(inputs, metrics, fps=suite.fps, size=suite.size, cache=store.features, progress=dist.rank == 0,
                     fail_fast=fail_fast, on_clip=on_clip)
        states = dist.gather([m.state_dict() for m in metrics])
        n_missing = sum(dist.gather(len(missing)))
        if dist.rank != 0:
            continue
        for other in states[1:]:
            for m, st in zip(metrics, other):
                m.merge_state(st)
        agg: dict[str, Any] = {}
        for m in metrics:
            agg.update(m.compute())
        for n, why in unavailable.items():
            agg[n] = None
        agg["n_clips"] = len(clips)
        agg["n_missing"] = n_missing
        store.put_aggregates(run_id, spec.label, agg,
                             extra={n: {"reason": why} for n, why in unavailable.items()})
    dist.barrier()
    if dist.rank != 0:
        store.close()
        return summary
    meta["weights"] = [r.provenance() for r in wopts.used]
    meta["unverified_weights"] = wopts.any_unverified
    meta["world_size"] = dist.world
    store.put_run(run_id, suite_hash=suite.hash, dataset=manifest.dataset, split=suite.split or "all", meta=meta)
    if report:
        try:
            from reports.build import write_reports
        except ImportError as e:
            log(f"report skipped: {e}")
        else:
            summary.reports = write_reports(store, out_dir / "report", [run_id], None)
    store.close()
    return summary


def _info(c: ClipRecord, n_frames: int, seconds: float, warnings_: list[str]) -> dict[str, Any]:
    return {"identity": c.identity, "emotion": c.emotion.label, "emotion_kind": c.emotion.kind,
            "intensity": c.intensity, "n_frames": n_frames, "seconds": seconds, "warnings": warnings_}


def build_request(manifest: Manifest, clip: ClipRecord, out_path: Path, out_dir: Path, *, seed: int, fps: float,
                  size: tuple[int, int] | None, emotion: EmotionSpec | None = None) -> GenerationRequest:
    """The generation request for one dataset clip (``emotion`` overrides the clip's own label)."""
    return GenerationRequest(
        clip_id=clip.clip_id,
        ref_image=manifest.media_path(clip, "ref_image") if clip.ref_image else _first_frame_ref(manifest, clip, out_dir),
        audio=manifest.media_path(clip, "audio") if clip.audio else manifest.media_path(clip, "video"),
        out_path=out_path, emotion=emotion or clip.emotion, emotion_text=None if emotion else clip.text, seed=seed,
        fps=fps, size=size, gt_video=manifest.media_path(clip, "video"))


def _first_frame_ref(m: Manifest, clip: ClipRecord, out_dir: Path) -> Path:
    from bench import media

    p = out_dir / "refs" / f"{safe_name(clip.clip_id)}.png"
    if not p.exists():
        media.write_image(p, media.first_frame(m.media_path(clip, "video"), clip_id=clip.clip_id))
    return p
