"""Run a suite: generate the missing videos, score them with every metric, store everything, report.

Resumable by construction: the run id is derived from the suite's content, each generated video
is recorded (method, clip, config hash incl. seed) after its atomic write, per-clip metric rows are
written in one transaction each, and per-clip features go to the content-addressed cache. A run
killed at any point and started again regenerates nothing that finished and decodes nothing whose
features are cached; rows are replaced by primary key, never duplicated.
"""

from __future__ import annotations

import hashlib
import json
import resource
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from moee_bench.baselines.base import GenerationRequest
from moee_bench.baselines.registry import build_method
from moee_bench.bench.core.emotions import EmotionSpec
from moee_bench.bench.core.errors import BenchError, ClipError
from moee_bench.bench.core.manifest import ClipRecord, Manifest, load_manifest
from moee_bench.bench.core.paths import safe_name
from moee_bench.bench.core.splits import clips_of, load_split
from moee_bench.bench.core.weights import WeightsOptions
from moee_bench.bench.provenance import device_name, environment
from moee_bench.bench.store import ResultStore
from moee_bench.bench.suite import MethodSpec, Suite
from moee_bench.metrics.base import Metric


@dataclass
class RunSummary:
    run_id: str
    store: Path
    failures: list[str] = field(default_factory=list)
    generated: int = 0
    reused: int = 0
    reports: dict[str, Path] = field(default_factory=dict)


def load_dataset(suite: Suite, out_dir: Path) -> Manifest:
    """The suite's manifest (the built-in sample is built under ``out_dir/sample`` on first use)."""
    if suite.dataset == "sample":
        from moee_bench.bench.sample import ensure_sample

        return load_manifest(ensure_sample(out_dir / "sample", verbose=True))
    return load_manifest(suite.dataset)


def _config_hash(suite: Suite, spec_name: str, version: str, config: dict) -> str:
    blob = json.dumps({"method": spec_name, "version": version, "config": config, "seed": suite.seed, "fps": suite.fps,
                       "size": suite.size}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _sha(path: Path) -> str:
    from moee_bench.metrics.evaluate import file_hash

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


@dataclass
class Generation:
    """What the generate stage leaves for one method: the clips with a video, and this rank's timing."""

    spec: MethodSpec
    video_dir: Path
    ok: list[ClipRecord] = field(default_factory=list)
    missing: list[ClipRecord] = field(default_factory=list)
    seconds: float = 0.0
    frames: int = 0
    n_generated: int = 0


class SuiteRunner:
    """One suite run in stages; :meth:`run` chains them, and each can be called (and tested) alone.

    ``prepare`` (dataset, split, store, metrics, run metadata) -> per method: ``generate``,
    ``record_throughput``, ``score``, ``merge``, ``aggregate`` -> ``finish`` (run row, report).

    Under torchrun each rank generates and scores its round-robin shard of the clips and writes its
    per-clip rows; ``merge`` gathers the metric states on rank 0, which aggregates, writes the run
    metadata and the report.
    """

    def __init__(self, suite: Suite, out_dir: Path, *, weights: WeightsOptions | None = None, device: str = "cpu",
                 fail_fast: bool = False, report: bool = True, log: Callable[..., None] = print,
                 precision: str = "fp32") -> None:
        self.suite = suite
        self.out_dir = Path(out_dir)
        self.weights = weights or WeightsOptions()
        self.device = device
        self.precision = precision          # metrics.precision; a bf16 run gets its own run id
        self.fail_fast = fail_fast
        self.write_report = report
        self.dist = Dist()
        self.log = log if self.dist.rank == 0 else (lambda *a, **k: None)
        self.metrics: list[Metric] = []
        self.unavailable: dict[str, str] = {}
        self.meta: dict[str, Any] = {}

    # stage 1 -------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Load the dataset and its split, open the store, build the metrics, start the run metadata."""
        from moee_bench.metrics.registry import MetricOptions, build_metrics

        suite, dist = self.suite, self.dist
        if dist.rank == 0:                  # rank 0 builds the sample and creates the store (schema, WAL) first
            self.manifest = load_dataset(suite, self.out_dir)
            ResultStore(self.out_dir / "store").close()
        dist.barrier()
        if dist.rank != 0:
            self.manifest = load_dataset(suite, self.out_dir)
        split_file = load_split(suite.split_file) if suite.split_file else None
        self.clips = clips_of(self.manifest, suite.split, split_file)
        if not self.clips:
            raise BenchError(f"split {suite.split!r} of {self.manifest.dataset} has no clips")
        self.by_id = self.manifest.by_id()
        self.store = ResultStore(self.out_dir / "store")
        self.run_id = f"{safe_name(suite.name)}-{suite.hash[:12]}"
        if self.precision != "fp32":
            self.run_id += f"-{self.precision}"
        self.summary = RunSummary(self.run_id, self.store.folder)
        mopts = MetricOptions(weights=self.weights, device=self.device, params=dict(suite.params),
                              precision=self.precision)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            self.metrics, self.unavailable = build_metrics(list(suite.metrics), mopts)
        for name, why in self.unavailable.items():
            self.log(f"metric {name}: not computed: {why}")
        self.meta = {**environment(self.device), "seed": suite.seed, "suite": suite.raw, "suite_hash": suite.hash,
                     "dataset_name": self.manifest.dataset, "manifest_hash": self.manifest.content_hash(),
                     "metrics_unavailable": self.unavailable,
                     "protocol": {m.name: m.protocol() for m in self.metrics}, "n_clips": len(self.clips),
                     "methods": {}, "precision": self.precision}

    # stage 2 -------------------------------------------------------------------------------
    def generate(self, spec: MethodSpec) -> Generation:
        """Generate this rank's clips with one method; reuse every video already recorded with this config."""
        suite, store = self.suite, self.store
        method = build_method(spec.name, spec.config)
        self.meta["methods"][spec.label] = method.describe()
        chash = _config_hash(suite, spec.name, method.version, spec.config)
        gen = Generation(spec, self.out_dir / "videos" / safe_name(spec.label))
        for clip in self.dist.mine(self.clips):
            out_path = gen.video_dir / f"{safe_name(clip.clip_id)}.mp4"
            prev = store.generation(spec.label, clip.clip_id, chash)
            if prev and prev["status"] == "ok" and out_path.is_file() and _sha(out_path) == prev["sha256"]:
                self.summary.reused += 1
                gen.ok.append(clip)
                continue
            try:
                req = build_request(self.manifest, clip, out_path, self.out_dir, seed=suite.seed, fps=suite.fps,
                                    size=suite.size)
                res = method.generate(req)
            except ClipError as e:
                store.put_generation(spec.label, clip.clip_id, chash, path=str(out_path), sha256="", seconds=0.0,
                                     n_frames=0, normalisation={}, status=e.status, message=e.reason)
                self.summary.failures.append(f"{spec.label}/{clip.clip_id}: generation {e.status}: {e.reason}")
                if self.fail_fast:
                    raise
                gen.missing.append(clip)
                continue
            store.put_generation(spec.label, clip.clip_id, chash, path=str(out_path), sha256=_sha(out_path),
                                 seconds=res.seconds, n_frames=res.n_frames, normalisation=res.normalisation)
            gen.seconds += res.seconds
            gen.frames += res.n_frames
            gen.n_generated += 1
            self.summary.generated += 1
            gen.ok.append(clip)
        for c in gen.missing:
            row = store.generation(spec.label, c.clip_id, chash) or {}
            store.put_clip(self.run_id, spec.label, c.clip_id, values={},
                           status={m: row.get("status", "missing") for m in suite.metrics},
                           messages={m: row.get("message", "") for m in suite.metrics},
                           info=_info(c, 0, 0.0, ["not generated: " + row.get("message", "")]))
        return gen

    def record_throughput(self, gen: Generation) -> None:
        """Store the method's generation speed over every rank (only when something was generated)."""
        tot = [sum(x) for x in zip(*self.dist.gather((gen.seconds, gen.frames, gen.n_generated)))]
        if not tot[2] or self.dist.rank != 0:
            return
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        self.store.put_throughput(self.run_id, gen.spec.label, device=device_name(self.device),
                                  frames_per_s=tot[1] / tot[0] if tot[0] > 0 else None,
                                  seconds_per_clip=tot[0] / tot[2], peak_mem_bytes=rss, n_clips=int(tot[2]),
                                  extra={"peak_mem": "rank-0 process peak RSS (CPU)" if self.device == "cpu" else "CUDA",
                                         "world_size": self.dist.world})

    # stage 3 -------------------------------------------------------------------------------
    def score(self, gen: Generation) -> None:
        """Score this rank's generated clips with every metric; each clip's rows are stored as it finishes."""
        from moee_bench.metrics.evaluate import ClipInput, evaluate

        label, m = gen.spec.label, self.manifest
        inputs = [ClipInput(c.clip_id, gen.video_dir / f"{safe_name(c.clip_id)}.mp4", m.media_path(c, "video"),
                            m.media_path(c, "ref_image") if c.ref_image else None,
                            m.media_path(c, "audio") if c.audio else None, c.emotion, c.intensity, c.identity)
                  for c in gen.ok]
        for metric in self.metrics:
            metric.reset()

        def on_clip(o) -> None:
            c = self.by_id[o.clip_id]
            status = dict(o.status)
            for n in self.unavailable:
                status[n] = "unavailable"
            self.store.put_clip(self.run_id, label, o.clip_id, values=o.values, status=status,
                                messages={**o.messages, **self.unavailable},
                                info=_info(c, o.n_frames, o.seconds, o.warnings))
            self.store.put_feature_keys(self.run_id, label, o.clip_id, o.feature_keys)
            bad = {k: v for k, v in o.status.items() if v != "ok"}
            self.summary.failures.extend(f"{label}/{o.clip_id}: {k} {v}: {o.messages.get(k, '')}" for k, v in bad.items())

        self.log(f"scoring {label}: {len(inputs)} clips, metrics {[x.name for x in self.metrics]}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            evaluate(inputs, self.metrics, fps=self.suite.fps, size=self.suite.size, cache=self.store.features,
                     progress=self.dist.rank == 0, fail_fast=self.fail_fast, on_clip=on_clip)

    def merge(self) -> bool:
        """Gather every rank's metric states into rank 0's metrics; True on rank 0."""
        states = self.dist.gather([m.state_dict() for m in self.metrics])
        if self.dist.rank != 0:
            return False
        for other in states[1:]:
            for m, st in zip(self.metrics, other):
                m.merge_state(st)
        return True

    def aggregate(self, gen: Generation, n_missing: int) -> dict[str, Any]:
        """Compute and store the method's aggregates from the merged states (rank 0); ``n_missing``
        counts the clips of every rank that have no video."""
        agg: dict[str, Any] = {}
        for m in self.metrics:
            agg.update(m.compute())
        for n in self.unavailable:
            agg[n] = None
        agg["n_clips"] = len(self.clips)
        agg["n_missing"] = n_missing
        self.store.put_aggregates(self.run_id, gen.spec.label, agg,
                                  extra={n: {"reason": why} for n, why in self.unavailable.items()})
        return agg

    # stage 4 -------------------------------------------------------------------------------
    def finish(self) -> None:
        """Write the run's metadata and, if asked, the report (rank 0); close the store."""
        self.dist.barrier()
        if self.dist.rank == 0:
            self.meta.update({"weights": [r.provenance() for r in self.weights.used],
                              "unverified_weights": self.weights.any_unverified, "world_size": self.dist.world})
            self.store.put_run(self.run_id, suite_hash=self.suite.hash, dataset=self.manifest.dataset,
                               split=self.suite.split or "all", meta=self.meta)
            if self.write_report:
                self.report()
        self.store.close()

    def report(self) -> None:
        """LEADERBOARD.md, the HTML report and the exports of this run under ``out_dir/report``."""
        from moee_bench.reports.build import write_reports

        self.summary.reports = write_reports(self.store, self.out_dir / "report", [self.run_id], None)

    def run(self) -> RunSummary:
        """Every stage, every method."""
        self.prepare()
        for spec in self.suite.methods:
            gen = self.generate(spec)
            self.record_throughput(gen)
            self.score(gen)
            n_missing = sum(self.dist.gather(len(gen.missing)))
            if self.merge():
                self.aggregate(gen, n_missing)
        self.finish()
        return self.summary


def run_suite(suite: Suite, out_dir: Path, *, weights_dir: str | None = None, allow_unverified: bool = False,
              device: str = "cpu", fail_fast: bool = False, report: bool = True, log=print,
              precision: str = "fp32") -> RunSummary:
    """Run every method of ``suite`` on its split; results go to ``out_dir/store`` (see :class:`SuiteRunner`)."""
    return SuiteRunner(suite, out_dir, weights=WeightsOptions(weights_dir, allow_unverified), device=device,
                       fail_fast=fail_fast, report=report, log=log, precision=precision).run()


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
    from moee_bench.bench.core import media

    p = out_dir / "refs" / f"{safe_name(clip.clip_id)}.png"
    if not p.exists():
        media.write_image(p, media.first_frame(m.media_path(clip, "video"), clip_id=clip.clip_id))
    return p
