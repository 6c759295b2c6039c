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
import sys
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

from tqdm import tqdm

from moee_bench.baselines.base import GenerationRequest, GenerationResult, Method
from moee_bench.baselines.registry import build_method
from moee_bench.bench.core.digest import file_digest
from moee_bench.bench.core.emotions import EmotionSpec
from moee_bench.bench.core.errors import BUG_ERRORS, BenchError, ClipError
from moee_bench.bench.core.faces import face_record
from moee_bench.bench.core.manifest import ClipRecord, Manifest, load_manifest
from moee_bench.bench.core.paths import check_output_dir, clean_stale_temps, safe_name
from moee_bench.bench.core.references import ReferenceChoice, choose_reference, reference_image_file
from moee_bench.bench.core.statuses import is_failure
from moee_bench.bench.core.splits import identity_overlap, select_split, split_record
from moee_bench.bench.core.weights import WeightsOptions
from moee_bench.bench.core.provenance import device_name, environment
from moee_bench.bench.suite.store import ResultStore
from moee_bench.bench.suite.spec import MethodSpec, Suite, validate_suite
from moee_bench.metrics.core.base import Metric
from moee_bench.metrics.core.keys import GT_ALIGNED_KEYS


@dataclass
class RunSummary:
    run_id: str
    store: Path
    failures: list[str] = field(default_factory=list)     # a generation or a metric errored
    notes: list[str] = field(default_factory=list)        # legitimate statuses (no_face, too_short, missing...)
    warnings: dict[str, list[str]] = field(default_factory=dict)     # "method/clip" -> per-clip warnings
    generated: int = 0
    reused: int = 0
    reports: dict[str, Path] = field(default_factory=dict)


def load_dataset(suite: Suite, out_dir: Path) -> Manifest:
    """The suite's manifest (the built-in sample is built under ``out_dir/sample`` on first use)."""
    if suite.dataset == "sample":
        from moee_bench.bench.suite.sample import ensure_sample

        return load_manifest(ensure_sample(out_dir / "sample", verbose=True))
    return load_manifest(suite.dataset)


def config_hash(method: str, version: str, config: dict, *, seed: int, fps: float, size: tuple[int, int] | None,
                emotion: str | None = None) -> str:
    """What a generated video depends on besides its clip and reference: the method, its version and config, the seed,
    fps and size (and an emotion that overrides the clips' own)."""
    what = {"method": method, "version": version, "config": config, "seed": seed, "fps": fps, "size": size}
    if emotion is not None:
        what["emotion"] = emotion
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:16]


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

    def shard(self, items: list) -> list:
        """This rank's shard (round robin)."""
        return items[self.rank::self.world]


@dataclass
class Generation:
    """What the generate stage leaves for one method: the clips with a video, and this rank's timing."""

    spec: MethodSpec
    video_dir: Path
    ok: list[ClipRecord] = field(default_factory=list)
    missing: list[ClipRecord] = field(default_factory=list)
    skipped: list[ClipRecord] = field(default_factory=list)     # emotion outside the method's vocabulary
    seconds: float = 0.0
    frames: int = 0
    n_generated: int = 0
    load_seconds: float | None = None        # model load, measured apart (None: the method has no load step)
    child: dict[str, Any] = field(default_factory=dict)   # subprocess measurements (moee_bench.bench.suite.resources.child_usage)
    recrops_face: bool = False
    reused: int = 0                          # videos reused from an earlier run (same config and reference)


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
                 allow_identity_overlap: bool = False, precision: str = "fp32") -> None:
        self.suite = suite
        self.allow_identity_overlap = allow_identity_overlap
        self.out_dir = Path(out_dir)
        self.weights = weights or WeightsOptions()
        self.device = device
        self.precision = precision          # moee_bench.metrics.core.precision; a bf16 run gets its own run id
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
        from moee_bench.metrics.core.registry import MetricOptions, build_metrics, check_size

        suite, dist = self.suite, self.dist
        # the whole suite and the output folder are checked, and the metrics built, before anything is created
        validated = validate_suite(suite)      # the manifest it loaded (None: the sample, built below)
        check_output_dir(self.out_dir, "--out")
        mopts = MetricOptions(weights=self.weights, device=self.device, params=dict(suite.params),
                              precision=self.precision)
        self.warnings: dict[str, list[str]] = {}
        with self._recording_warnings("prepare"):
            self.metrics, self.unavailable = build_metrics(list(suite.metrics), mopts)
        check_size(self.metrics, suite.size, source="suite size")
        if dist.rank == 0:                  # rank 0 builds the sample and creates the store (schema, WAL) first
            self.manifest = validated or load_dataset(suite, self.out_dir)
            ResultStore(self.out_dir / "store").close()
        dist.barrier()
        if dist.rank != 0:
            self.manifest = validated or load_dataset(suite, self.out_dir)
        self.clips = select_split(self.manifest, suite.split)
        self.split = split_record(self.manifest, suite.split, self.clips)
        # before any work: no method is evaluated on identities it was trained on (unless allowed)
        self.methods = {spec.label: build_method(spec.name, spec.config) for spec in suite.methods}   # built once
        self.identity_checks = {label: training_check(method, self.split, allow=self.allow_identity_overlap)
                                for label, method in self.methods.items()}
        self.by_id = self.manifest.by_id()
        self.store = ResultStore(self.out_dir / "store")
        self.run_id = f"{safe_name(suite.name)}-{suite.hash[:12]}"
        if self.precision != "fp32":
            self.run_id += f"-{self.precision}"
        self.summary = RunSummary(self.run_id, self.store.folder)
        self.store.mark_live(self.run_id)           # `report` meanwhile says "in progress", not "interrupted"
        for name, why in self.unavailable.items():
            self.log(f"metric {name}: not computed: {why}")
        self.references = {c.clip_id: choose_reference(self.manifest, c) for c in self.clips}
        leaks = [r.warning for r in self.references.values() if r.warning]
        for w in leaks[:5]:
            self.log(f"warning: {w}")
        from moee_bench.bench.core import media

        self.meta = {**environment(self.device), "seed": suite.seed, "suite": suite.raw, "suite_hash": suite.hash,
                     "dataset_name": self.manifest.dataset, "manifest_hash": self.manifest.content_hash(),
                     "metrics_unavailable": self.unavailable,
                     "protocol": {m.name: m.protocol() for m in self.metrics}, "n_clips": len(self.clips),
                     "ingest": media.ingest_protocol(suite.fps, suite.size),
                     "references": {cid: r.source for cid, r in self.references.items()},
                     "reference_warnings": leaks, "warnings": self.warnings, "split": self.split, "methods": {},
                     "precision": self.precision}
        decoded = {r["meta"].get("ingest", {}).get("decode") for r in self.store.runs()} - {None}
        if decoded and media.DECODE not in decoded:     # cache keys hold the decoding: those features are stale
            self.log(f"decoding changed since this store was last scored (was: {sorted(decoded)[-1]}; now: "
                     f"{media.DECODE}): video features are decoded and extracted again")

    @contextmanager
    def _recording_warnings(self, stage: str) -> Iterator[None]:
        """Record (and log once) every Python warning raised in a stage; never mute them."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                yield
            finally:
                seen = self.warnings.setdefault(stage, [])
                for w in caught:
                    msg = f"{w.category.__name__}: {w.message}"
                    if msg not in seen:
                        seen.append(msg)
                        self.log(f"warning ({stage}): {msg}")

    # stage 2 -------------------------------------------------------------------------------
    def generate(self, spec: MethodSpec) -> Generation:
        """Generate this rank's clips with one method; reuse every video already recorded with this config and
        reference. A clip whose generation raises is recorded as that clip's failure (bugs propagate)."""
        suite, store = self.suite, self.store
        method = self.methods[spec.label]
        self.meta["methods"][spec.label] = {**method.describe(), **self.identity_checks[spec.label]}
        chash = config_hash(spec.name, method.version, spec.config, seed=suite.seed, fps=suite.fps, size=suite.size)
        gen = Generation(spec, self.out_dir / "videos" / safe_name(spec.label),
                         recrops_face=bool(method.capabilities.recrops_face))
        norms: list[dict[str, Any]] = []
        from moee_bench.bench.suite.resources import child_usage, reset_device_peak

        reset_device_peak(self.device)
        clean_stale_temps(gen.video_dir)        # leftovers of a killed write (never a clip)

        def plan(clip: ClipRecord) -> tuple[GenerationRequest, dict[str, Any] | None]:
            req = build_request(self.manifest, clip, gen.video_dir / f"{safe_name(clip.clip_id)}.mp4", self.out_dir,
                                seed=suite.seed, fps=suite.fps, size=suite.size,
                                reference=self.references.get(clip.clip_id))
            prev = store.generation(spec.label, clip.clip_id, chash)
            return req, prev and {"status": prev["status"], "sha256": prev["sha256"],
                                  "reference": prev["normalisation"].get("reference")}

        mine = list(self.dist.shard(self.clips))
        steps = generate_clips(method, mine, plan, fail_fast=self.fail_fast)
        for step in tqdm(steps, total=len(mine), desc=f"{spec.label}: generation, {len(mine)} clips", unit="clip",
                         file=sys.stderr, leave=False, disable=self.dist.rank != 0):
            clip = step.clip
            if step.load_seconds is not None:
                gen.load_seconds = step.load_seconds
            if step.status == "skipped":
                gen.skipped.append(clip)
                store.put_clip(self.run_id, spec.label, clip.clip_id, values={}, status={m: "skipped" for m in suite.metrics},
                               messages={m: step.reason for m in suite.metrics},
                               info=_info(clip, 0, 0.0, ["not generated: " + step.reason]))
            elif step.status == "reused":
                self.summary.reused += 1
                gen.reused += 1
                gen.ok.append(clip)
            elif step.result is None:
                out_path = gen.video_dir / f"{safe_name(clip.clip_id)}.mp4"
                store.put_generation(spec.label, clip.clip_id, chash, path=str(out_path), sha256="", seconds=0.0,
                                     n_frames=0, normalisation={}, status=step.status, message=step.reason)
                line = f"{spec.label}/{clip.clip_id}: generation {step.status}: " + (step.reason.splitlines() or [""])[0]
                (self.summary.failures if is_failure(step.status) else self.summary.notes).append(line)
                gen.missing.append(clip)
            else:
                res = step.result
                store.put_generation(spec.label, clip.clip_id, chash, path=str(step.request.out_path),
                                     sha256=file_digest(step.request.out_path), seconds=res.seconds,
                                     n_frames=res.n_frames,
                                     normalisation={**res.normalisation, "reference": reference_record(step.request)})
                norms.append(res.normalisation)
                gen.seconds += res.seconds
                gen.frames += res.n_frames
                gen.n_generated += 1
                self.summary.generated += 1
                gen.ok.append(clip)
        gen.child = child_usage(norms)
        for c in gen.missing:
            row = store.generation(spec.label, c.clip_id, chash) or {}
            store.put_clip(self.run_id, spec.label, c.clip_id, values={},
                           status={m: row.get("status", "missing") for m in suite.metrics},
                           messages={m: row.get("message", "") for m in suite.metrics},
                           info=_info(c, 0, 0.0, ["not generated: " + row.get("message", "")],
                                      self._ref_source(c)))
        return gen

    def _ref_source(self, clip: ClipRecord) -> str | None:
        r = self.references.get(clip.clip_id)
        return r.source if r else None

    def record_throughput(self, gen: Generation) -> None:
        """Store the method's generation speed over every rank (only when something was generated, and only for
        methods that generate: ground truth, static and precomputed videos have no generation speed).

        Peak memory is labelled by what was measured: this process's peak RSS (which includes the scoring
        of earlier methods), the children's peak RSS for subprocess baselines, and on CUDA the allocator's
        peak; what cannot be measured is None ("not measured"), never 0."""
        from moee_bench.bench.suite.resources import child_usage, memory_report

        parts = self.dist.gather((gen.seconds, gen.frames, gen.n_generated, gen.child))
        seconds, frames, n_generated = (sum(x[i] for x in parts) for i in range(3))   # over every rank
        if not n_generated or self.dist.rank != 0 or not self.meta["methods"][gen.spec.label].get("generates", True):
            return
        mem = memory_report(self.device, child_usage({"process": x[3]} for x in parts))
        self.store.put_throughput(self.run_id, gen.spec.label, device=device_name(self.device),
                                  frames_per_s=frames / seconds if seconds > 0 else None,
                                  seconds_per_clip=seconds / n_generated, peak_mem_bytes=mem["peak_mem_bytes"],
                                  n_clips=int(n_generated),
                                  extra={**mem, "model_load_s": gen.load_seconds,
                                         "model_load": ("measured apart (Method.load), rank 0" if gen.load_seconds
                                                        is not None else "not measured: no separate load step (a "
                                                        "subprocess baseline loads its model inside every clip, "
                                                        "so it is part of seconds_per_clip)"),
                                         "world_size": self.dist.world})

    # stage 3 -------------------------------------------------------------------------------
    def score(self, gen: Generation) -> None:
        """Score this rank's generated clips with every metric; each clip's rows are stored as it finishes."""
        from moee_bench.metrics.core.evaluate import ClipInput, evaluate

        label, m = gen.spec.label, self.manifest
        inputs = [ClipInput(c.clip_id, gen.video_dir / f"{safe_name(c.clip_id)}.mp4", m.media_path(c, "video"),
                            None, m.media_path(c, "audio") if c.audio else None, c.emotion, c.intensity, c.identity,
                            reference=self.references.get(c.clip_id),
                            gt_video_stream=c.extra.get("video_stream") if isinstance(c.extra, dict) else None)
                  for c in gen.ok]
        for metric in self.metrics:
            metric.reset()

        from_cache = [0, 0]                 # clips read entirely from the feature cache, clips with a part extracted

        def on_clip(o) -> None:
            from_cache[0 if not o.extracted else 1] += 1
            c = self.by_id[o.clip_id]
            status = dict(o.status)
            for n in self.unavailable:
                status[n] = "unavailable"
            self.store.put_clip(self.run_id, label, o.clip_id, values=o.values, status=status,
                                messages={**o.messages, **self.unavailable},
                                info=_info(c, o.n_frames, o.seconds, o.warnings, o.ref_source))
            self.store.put_feature_keys(self.run_id, label, o.clip_id, o.feature_keys)
            if o.warnings:
                self.summary.warnings[f"{label}/{o.clip_id}"] = list(o.warnings)
            for k, v in o.status.items():
                if v != "ok":
                    line = f"{label}/{o.clip_id}: {k} {v}: {o.messages.get(k, '')}"
                    (self.summary.failures if is_failure(v) else self.summary.notes).append(line)

        names = ",".join(x.name for x in self.metrics)
        with self._recording_warnings(label), face_record(self.store.features.folder):
            evaluate(inputs, self.metrics, fps=self.suite.fps, size=self.suite.size, cache=self.store.features,
                     progress=self.dist.rank == 0, fail_fast=self.fail_fast, on_clip=on_clip,
                     compute=False,        # aggregate() computes once, after the ranks' states are merged
                     desc=f"{label}: metrics {names}, {len(inputs)} clips")
        reused = f"{gen.reused} videos reused from an earlier run, " if gen.reused else ""
        self.log(f"{label}: {len(inputs)} clips scored with {names}: {reused}{from_cache[0]} clips read entirely from "
                 f"the feature cache (not decoded), {from_cache[1]} extracted")

    def merge(self) -> bool:
        """Gather every rank's metric states into rank 0's metrics; True on rank 0.

        Each state travels with its metric's config and feature identity (weights included), and a rank
        whose metrics differ from rank 0's is refused (:meth:`Metric.merge`), not summed."""
        snaps = self.dist.gather([m.snapshot() for m in self.metrics])
        if self.dist.rank != 0:
            return False
        for rank, other in enumerate(snaps[1:], start=1):
            if [s["metric"] for s in other] != [m.name for m in self.metrics]:
                raise BenchError(f"rank {rank} scored metrics {[s['metric'] for s in other]}, rank 0 "
                                 f"{[m.name for m in self.metrics]}: refusing to merge")
            for m, snap in zip(self.metrics, other):
                try:
                    m.merge(snap)
                except ValueError as e:
                    raise BenchError(f"rank {rank}: {e}") from None
        return True

    def aggregate(self, gen: Generation, n_missing: int, n_skipped: int = 0) -> dict[str, Any]:
        """Compute and store the method's aggregates from the merged states (rank 0); ``n_missing``
        counts the clips of every rank that have no video.

        Every caveat is stored with the aggregate it qualifies (``extra`` of that key): a metric's
        ``<key>_warning``/``<key>_reason``, unverified weights, and for a method that re-crops the face the
        GT-aligned keys' ``not_comparable`` reason; the ``caveats`` row lists them all with the per-clip
        counts of truncated lengths, resampled frame rates, resized frames and leaked references. ``n_skipped``
        counts the clips whose emotion the method lacks."""
        agg: dict[str, Any] = {}
        texts: dict[str, dict[str, str]] = {}       # headline key -> the metric's descriptive strings
        with self._recording_warnings(gen.spec.label):
            for m in self.metrics:
                out = m.compute()
                agg.update(out)
                texts[m.keys[0]] = {k: v for k, v in out.items() if isinstance(v, str) and not k.endswith(("_warning", "_reason"))}
        for n in self.unavailable:
            agg[n] = None
        agg["n_clips"] = len(self.clips)
        agg["n_missing"] = n_missing
        agg["n_skipped"] = n_skipped
        extra, caveats = _caveats(self, gen, agg)
        for key, t in texts.items():
            if t:
                extra.setdefault(key, {}).update(t)
        agg["caveats"] = len(caveats)
        extra["caveats"] = {"items": caveats}
        self.store.put_aggregates(self.run_id, gen.spec.label, agg, extra=extra)
        return agg

    # stage 4 -------------------------------------------------------------------------------
    def finish(self) -> None:
        """Write the run's metadata and, if asked, the report (rank 0); close the store."""
        failures = self.dist.gather(self.summary.failures)      # every rank's, so rank 0 exits FAILED_CLIPS too
        self.summary.failures = [f for part in failures for f in part]
        if self.dist.rank == 0:
            self.meta.update({"weights": self.weights.provenance(), "weights_by_metric": self.weights.by_metric(),
                              "unverified_weights": self.weights.unverified_metrics(), "world_size": self.dist.world})
            self.store.put_run(self.run_id, suite_hash=self.suite.hash, dataset=self.manifest.dataset,
                               split=self.suite.split or "all", meta=self.meta)
            if self.write_report:
                self.report()
        self.store.clear_live()
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
            n_skipped = sum(self.dist.gather(len(gen.skipped)))
            if self.merge():
                self.aggregate(gen, n_missing, n_skipped)
        self.finish()
        return self.summary


def run_suite(suite: Suite, out_dir: Path, *, weights_dir: str | None = None, allow_unverified: bool = False,
              device: str = "cpu", fail_fast: bool = False, report: bool = True, log=print,
              weights: WeightsOptions | None = None, allow_identity_overlap: bool = False,
              precision: str = "fp32") -> RunSummary:
    """Run every method of ``suite`` on its split; results go to ``out_dir/store`` (see :class:`SuiteRunner`).
    ``weights`` (the CLI's weights options) wins over ``weights_dir``/``allow_unverified``; ``precision``:
    the feature networks' (:mod:`moee_bench.metrics.core.precision`; a bf16 run gets its own run id)."""
    return SuiteRunner(suite, out_dir, weights=weights or WeightsOptions(weights_dir, allow_unverified), device=device,
                       fail_fast=fail_fast, report=report, log=log, allow_identity_overlap=allow_identity_overlap,
                       precision=precision).run()


def training_check(method, split: dict[str, Any], *, allow: bool) -> dict[str, Any]:
    """Refuse to evaluate a method on identities its recorded training data contains (unless ``allow``).

    ``split`` is a :func:`bench.core.splits.split_record`. Methods trained elsewhere report
    ``training_data = "unknown"``: nothing can be checked and the record says so.
    """
    training = method.training_data()
    if isinstance(training, str):
        return {"identity_check": f"not possible: training data {training}"}
    overlap = identity_overlap(training, split)
    if overlap and not allow:
        raise BenchError(f"{method.name} was trained on {len(overlap)} identities of {split['dataset']} that split "
                         f"{split['name']!r} evaluates ({', '.join(overlap[:8])}{' ...' if len(overlap) > 8 else ''}); "
                         "evaluate it on a split of other identities, or pass --allow-identity-overlap to do it on "
                         "purpose (recorded with the run)")
    return {"identity_check": {"split": split["name"], "split_hash": split["hash"], "overlap": overlap,
                               "allowed": bool(overlap)}}


def _info(c: ClipRecord, n_frames: int, seconds: float, warnings_: list[str],
          ref_source: str | None = None) -> dict[str, Any]:
    return {"identity": c.identity, "emotion": c.emotion.label, "emotion_kind": c.emotion.kind,
            "intensity": c.intensity, "n_frames": n_frames, "seconds": seconds, "warnings": warnings_,
            "ref_source": ref_source}


_CLIP_CAVEATS = (("truncated:", "length truncated to the shorter of pred and GT"),
                 ("resampled:", "frame rate resampled to the evaluation fps"),
                 ("resized:", "frames resized to the evaluation size"),
                 ("reference:", "reference = first frame of the target clip itself (leaks the target)"))


def _caveats(runner: "SuiteRunner", gen: Generation, agg: dict[str, Any]) -> tuple[dict[str, dict], list[str]]:
    """(extra per aggregate key, human-readable caveat lines) for one method's aggregates."""
    extra: dict[str, dict] = {n: {"reason": why} for n, why in runner.unavailable.items()}
    lines: list[str] = []
    for k in list(agg):
        for suffix in ("_warning", "_reason"):
            if k.endswith(suffix) and isinstance(agg[k], str):
                base = k[: -len(suffix)]
                extra.setdefault(base, {})[suffix[1:]] = agg[k]
                if suffix == "_warning":
                    lines.append(f"{base}: {agg[k]}")
    bad = set(runner.weights.unverified_metrics())
    for m in runner.metrics:
        if m.name in bad:
            why = "computed with unverified weights (digest matches neither the registry, the lock nor a --trust pin)"
            for key in m.keys:
                extra.setdefault(key, {})["unverified"] = why
            lines.append(f"{m.name}: {why}")
    if gen.recrops_face:
        why = (f"{gen.spec.label} re-crops the face (Capabilities.recrops_face): its frames are not aligned with the "
               "full GT frames, so GT-aligned metrics are not comparable with other methods")
        hit = [k for k in GT_ALIGNED_KEYS if agg.get(k) is not None]
        for k in hit:
            extra.setdefault(k, {})["not_comparable"] = why
        if hit:
            lines.append(f"{', '.join(hit)} not comparable: {why}")
    clips = runner.store.clip_table(runner.run_id)
    if not clips.empty and "warnings" in clips.columns:
        mine = clips[clips.method == gen.spec.label]
        warns = [json.loads(w or "[]") for w in mine["warnings"]]
        for prefix, what in _CLIP_CAVEATS:
            n = sum(any(str(w).startswith(prefix) for w in ws) for ws in warns)
            if n:
                agg[f"n_{prefix[:-1]}"] = n
                lines.append(f"{n} of {len(warns)} clips: {what}")
    return extra, lines


def build_request(manifest: Manifest, clip: ClipRecord, out_path: Path, out_dir: Path, *, seed: int, fps: float,
                  size: tuple[int, int] | None, emotion: EmotionSpec | None = None,
                  reference: ReferenceChoice | None = None) -> GenerationRequest:
    """The generation request for one dataset clip (``emotion`` overrides the clip's own label).

    The reference portrait follows the reference policy (:func:`bench.core.references.choose_reference`,
    or ``reference`` when the caller already chose it): never a frame of the target clip unless the
    dataset offers nothing else, which the choice's warning says."""
    choice = reference or choose_reference(manifest, clip)
    return GenerationRequest(
        clip_id=clip.clip_id,
        ref_image=reference_image_file(choice, out_dir / "refs", clip_id=clip.clip_id),
        audio=manifest.media_path(clip, "audio") if clip.audio else manifest.media_path(clip, "video"),
        out_path=out_path, emotion=emotion or clip.emotion, emotion_text=None if emotion else clip.text, seed=seed,
        fps=fps, size=size, gt_video=manifest.media_path(clip, "video"), ref_source=choice.source)


def reference_record(req: GenerationRequest) -> dict[str, str]:
    """The reference a video was generated from (its source and image hash), so that a changed reference regenerates."""
    return {"source": str(req.ref_source), "sha256": file_digest(Path(req.ref_image))}


def reusable(prev: Mapping[str, Any] | None, req: GenerationRequest) -> bool:
    """The one reuse rule (``run`` and ``generate``): a video is reused when its record (made under the same
    :func:`config_hash`) says it was generated, the file still has the recorded sha256, and it was generated from
    the same reference (:func:`reference_record`)."""
    return (bool(prev) and prev.get("status") == "ok" and req.out_path.is_file()
            and file_digest(req.out_path) == prev.get("sha256") and prev.get("reference") == reference_record(req))


@dataclass
class GenerationStep:
    """One clip through :func:`generate_clips`."""

    clip: ClipRecord
    status: str                                  # ok | reused | skipped | a ClipError status | error
    request: GenerationRequest | None = None
    result: GenerationResult | None = None       # set when generated now
    reason: str = ""
    wall_seconds: float = 0.0                    # method.generate, wall clock
    load_seconds: float | None = None            # Method.load, on the step that loaded the model (when it has one)


def generate_clips(method: Method, clips: Iterable[ClipRecord],
                   plan: Callable[[ClipRecord], tuple[GenerationRequest, Mapping[str, Any] | None]], *,
                   emotion: EmotionSpec | None = None, fail_fast: bool = False,
                   loaded: bool = False) -> Iterator[GenerationStep]:
    """The one generation loop (``run``, ``generate``, the throughput benchmark): per clip, skip an emotion the method
    lacks, build the request and the previous record (``plan``), reuse by :func:`reusable`, load the model before the
    first clip generated (unless ``loaded``), generate, ``method.batch_size()`` requests at a time
    (:meth:`Method.generate_batch`; a batch's wall time is shared evenly by its clips). A clip whose generation raises
    is that clip's step (status and reason); bugs, and errors that mean the method cannot run here at all, propagate,
    as everything does with ``fail_fast``."""
    size = max(1, int(method.batch_size()))
    pending: list[tuple[ClipRecord, GenerationRequest]] = []
    load_s: float | None = None

    def failed(clip: ClipRecord, req: GenerationRequest | None, e: Exception, load: float | None) -> GenerationStep:
        if isinstance(e, BUG_ERRORS) or fail_fast or (isinstance(e, BenchError) and not isinstance(e, ClipError)):
            raise e                             # (a BenchError: the method cannot run here at all: install, weights)
        status = e.status if isinstance(e, ClipError) else "error"
        reason = e.reason if isinstance(e, ClipError) else f"{type(e).__name__}: {e}"
        return GenerationStep(clip, status, req, reason=reason, load_seconds=load)

    def flush() -> Iterator[GenerationStep]:
        nonlocal load_s
        batch = list(pending)
        pending.clear()
        t = time.perf_counter()
        try:
            results = method.generate_batch([req for _, req in batch])
        except Exception as e:                   # the whole batch failed: every clip of it gets the status
            for clip, req in batch:
                yield failed(clip, req, e, load_s)
                load_s = None
            return
        wall = (time.perf_counter() - t) / len(batch)
        for (clip, req), res in zip(batch, results):
            if isinstance(res, Exception):
                yield failed(clip, req, res, load_s)
            else:
                yield GenerationStep(clip, "ok", req, res, wall_seconds=wall, load_seconds=load_s)
            load_s = None

    for clip in clips:
        why = method.skip_reason(emotion or clip.emotion)
        if why:
            yield GenerationStep(clip, "skipped", reason=why)
            continue
        req = None
        try:
            req, prev = plan(clip)
            if reusable(prev, req):
                yield GenerationStep(clip, "reused", req)
                continue
            if not loaded:
                t = time.perf_counter()
                if method.load():
                    load_s = time.perf_counter() - t
                loaded = True
        except Exception as e:
            yield failed(clip, req, e, None)
            continue
        pending.append((clip, req))
        if len(pending) >= size:
            yield from flush()
    if pending:
        yield from flush()
