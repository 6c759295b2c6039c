"""moee-bench from Python: :func:`score`, :func:`run` and :func:`compare`, the functions the ``moee-bench score``,
``run`` and ``compare`` commands call (the commands only parse arguments and print), so both paths give the same
numbers. Errors are :class:`moee_bench.bench.core.errors.BenchError` (bad input, nothing computed) and ``OSError``
(the environment); a failed clip is a status in the result, never an exception.

>>> import moee_bench
>>> r = moee_bench.score("my_method/", "gt_videos/", metrics=["psnr", "ssim", "fid"])   # doctest: +SKIP
>>> r.metrics["fid"], r.to_frame().head(), r.failed                                   # doctest: +SKIP
>>> r = moee_bench.score({"c001": frames}, {"c001": gt_frames}, metrics=["psnr", "lpips"])   # (T, H, W, 3) uint8

Floor: above ``bench/suite`` and ``reports``, below ``bench/cli`` (``tests/test_layers.py``); ``moee_bench``
exposes these names lazily, so ``import moee_bench`` stays cheap.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, Union

import numpy as np

from moee_bench.bench.core.errors import BenchError, ClipError
from moee_bench.bench.core.statuses import NOT_FAILURES
from moee_bench.bench.core.paths import check_output_file, write_text_atomic
from moee_bench.bench.core.values import check_device, existing_dir, fps_value
from moee_bench.bench.core.weights import WeightsOptions
from moee_bench.metrics.core.base import ClipInput
import moee_bench.metrics.core.evaluate as evaluation       # called through the module (tests patch evaluate)
from moee_bench.metrics.core.evaluate import ClipOutcome, clip_files, pair_folders
from moee_bench.metrics.core.frames import check_frames

__all__ = ["score", "run", "compare", "ScoreResult", "CompareResult", "DEFAULT_METRICS"]

DEFAULT_METRICS: tuple[str, ...] = ("psnr", "ssim", "lpips", "fid")

Clip = Union[str, Path, np.ndarray, Any]          # a video file, or (T, H, W, 3) uint8 frames (numpy or torch)
Videos = Union[str, Path, Mapping[str, Clip]]     # a folder of .mp4 files, or clip id -> clip


@dataclass
class ScoreResult:
    """What :func:`score` computed: aggregates, per-clip outcomes with statuses, and the protocol.

    :meth:`to_dict` is exactly the JSON ``moee-bench score --json`` writes (``metrics``, ``clips``,
    ``protocol``); :meth:`to_frame` the per-clip values as a pandas DataFrame."""

    metrics: dict[str, Any]                 # aggregate values; ``None`` plus ``<metric>_reason`` when not computed
    clips: list[ClipOutcome]                # per clip: values, status per metric, messages, warnings
    protocol: dict[str, Any]                # versions, weights, N, resize, fps conversion, warnings
    missing: list[str] = field(default_factory=list)    # manifest (split) clips without a generated video

    @property
    def statuses(self) -> dict[str, dict[str, str]]:
        """clip id -> metric -> status (``ok``, ``no_face``, ``too_short``, ``no_gt``, ``error``...)."""
        return {c.clip_id: dict(c.status) for c in self.clips}

    @property
    def failed(self) -> dict[str, dict[str, str]]:
        """The failed clips: clip id -> metric -> ``"status: reason"`` (statuses outside :data:`NOT_FAILURES`)."""
        out = {c.clip_id: {m: f"{s}: {c.messages.get(m, '')}" for m, s in c.status.items() if s not in NOT_FAILURES}
               for c in self.clips}
        return {k: v for k, v in out.items() if v}

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of ``moee-bench score --json`` as a dict."""
        return {"metrics": self.metrics, "clips": [c.to_dict() for c in self.clips], "protocol": self.protocol}

    def to_json(self, path: str | Path | None = None, *, indent: int | None = 1) -> str:
        """The JSON text the CLI writes; with ``path``, also written there atomically."""
        text = json.dumps(self.to_dict(), indent=indent, default=float) + "\n"
        if path is not None:
            write_text_atomic(check_output_file(str(path), "path"), text, "path")
        return text

    def to_frame(self):
        """Per-clip values as a pandas DataFrame indexed by clip id: one column per value key, ``n_frames``,
        ``ref_source`` when known, and one ``status.<metric>`` column per metric."""
        import pandas as pd

        rows = []
        for c in self.clips:
            row: dict[str, Any] = {"clip": c.clip_id, **c.values, "n_frames": c.n_frames}
            if c.ref_source is not None:
                row["ref_source"] = c.ref_source
            row.update({f"status.{m}": s for m, s in c.status.items()})
            rows.append(row)
        return pd.DataFrame(rows).set_index("clip") if rows else pd.DataFrame(index=pd.Index([], name="clip"))


def _names(metrics: Sequence[str] | str) -> list[str]:
    names = [m.strip() for m in (metrics.split(",") if isinstance(metrics, str) else metrics) if m and m.strip()]
    if not names:
        raise BenchError("no metric requested (metrics is empty)")
    if len(set(names)) != len(names):
        raise BenchError(f"metrics names a metric twice: {', '.join(names)}")
    return names


def _as_frames(x: Any, what: str) -> np.ndarray:
    """A torch tensor or numpy array as checked ``(T, H, W, 3)`` uint8 frames (``BenchError`` otherwise)."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):          # a torch tensor, without importing torch here
        x = x.detach().cpu().numpy()
    try:
        return check_frames(np.asarray(x), what)
    except ValueError as e:
        raise BenchError(str(e)) from None


def _videos(x: Videos | None, option: str) -> tuple[dict[str, Path | np.ndarray] | None, Path | None]:
    """``(clip id -> file or frames, None)`` for a mapping, ``(None, folder)`` for a folder."""
    if x is None:
        return None, None
    if isinstance(x, Mapping):
        out: dict[str, Path | np.ndarray] = {}
        for cid, v in x.items():
            if not isinstance(cid, str) or not cid:
                raise BenchError(f"{option}: clip ids must be non-empty strings, got {cid!r}")
            if isinstance(v, (str, Path)):
                if not Path(v).is_file():
                    raise BenchError(f"{option}: clip {cid}: {v} is not a file")
                out[cid] = Path(v)
            else:
                out[cid] = _as_frames(v, f"{option} clip {cid}")
        return out, None
    return None, existing_dir(str(x), option)


def _pairs(pred: Videos, gt: Videos | None, manifest: str | Path | None,
           split: str | None) -> tuple[list[ClipInput], list[str], list[str], dict[str, str], dict | None]:
    """The clips to score, warnings, the manifest's (split's) clips that have no generated video, clips
    whose manifest entry cannot be used (id -> reason), and the split's record."""
    from moee_bench.bench.core.manifest import load_manifest
    from moee_bench.bench.core.references import choose_reference

    pred_map, pred_dir = _videos(pred, "--pred")
    gt_map, gt_dir = _videos(gt, "--gt")
    if not manifest:
        if pred_map is None and (gt_map is None):
            return (*pair_folders(pred_dir, gt_dir), [], {}, None)
        preds, warn = (pred_map, []) if pred_map is not None else clip_files(pred_dir)
        gts, w = (gt_map, []) if gt_map is not None else clip_files(gt_dir) if gt_dir else ({}, [])
        warn += w
        if gt is not None:
            warn += [f"clip {k}: GT has no generated counterpart (missing, not scored)" for k in sorted(set(gts) - set(preds))]
            warn += [f"clip {k}: generated clip has no GT (GT-based metrics skipped)" for k in sorted(set(preds) - set(gts))]
        return [ClipInput(k, v, gts.get(k)) for k, v in preds.items()], warn, [], {}, None
    m = load_manifest(manifest)
    by = m.by_id()
    split_info = None
    preds, warn = (pred_map, []) if pred_map is not None else clip_files(pred_dir, known=set(by))
    gts, w = (gt_map, []) if gt_map is not None else clip_files(gt_dir, known=set(by)) if gt_dir else ({}, [])
    warn += w
    where = pred_dir if pred_dir is not None else "the given clips"
    if split:
        from moee_bench.bench.core.splits import select_split, split_record

        chosen = select_split(m, split)
        split_info = split_record(m, split, chosen)
        wanted = {c.clip_id for c in chosen}
        outside = sorted(set(preds) - wanted)
        if outside:
            warn.append(f"{len(outside)} generated videos are not clips of split {split!r} and are not scored "
                        f"(e.g. {outside[:5]})")
        by = {cid: rec for cid, rec in by.items() if cid in wanted}
        preds = {cid: p for cid, p in preds.items() if cid in wanted}
    pairs, missing, broken = [], [], {}
    for cid, rec in by.items():
        if cid not in preds:
            missing.append(cid)
            warn.append(f"clip {cid}: in the {'split' if split else 'manifest'} but no generated video in {where} "
                        "(missing, not scored)")
            continue
        try:
            g = gts.get(cid)
            c = ClipInput(cid, preds[cid], g if g is not None else m.media_path(rec, "video"))
            c.audio = m.media_path(rec, "audio") if rec.audio else None
            c.reference = choose_reference(m, rec)     # the same reference `run` gives methods and CSIM
        except ClipError as e:
            broken[cid] = e.reason
            continue
        c.emotion, c.intensity, c.identity = rec.emotion, rec.intensity, rec.identity
        if isinstance(rec.extra, dict) and "video_stream" in rec.extra:     # the GT file's N-th video stream
            c.gt_video_stream = rec.extra["video_stream"]
        pairs.append(c)
    for cid in sorted(set(preds) - set(by)):
        warn.append(f"clip {cid}: not in the manifest {manifest}"
                    + ("" if cid in gts else " (GT-based metrics skipped)"))
        pairs.append(ClipInput(cid, preds[cid], gts.get(cid)))
    if split and not pairs and not broken:
        raise BenchError(f"no generated video in {where} belongs to split {split!r} of {manifest}")
    return pairs, warn, missing, broken, split_info


def _stream_params(params: dict) -> dict[str, int]:
    """Take ``video_stream`` / ``gt_video_stream`` (the N-th video stream of every pred / GT file, ffmpeg's
    ``0:v:N``) out of ``params`` as ClipInput fields: they choose what is decoded, not a metric's parameter."""
    out = {}
    for key in ("video_stream", "gt_video_stream"):
        if key in params:
            raw = params.pop(key)
            try:
                n = int(str(raw))
            except ValueError:
                n = -1
            if n < 0:
                raise BenchError(f"--param {key}={raw}: give a video stream number, 0 for the first video stream")
            out[key] = n
    return out


MAKE_MANIFEST = ("moee-bench data import folder ROOT --csv clips.csv --out manifest.json (CSV columns: path, "
                 "emotion[, audio, identity, text, ref_image, split]), then --manifest manifest.json")


def refuse_unsupplied(names: list[str], *, gt: bool, manifest: bool) -> None:
    """Refuse, before anything is decoded, metrics whose indispensable input no option can supply: a target
    emotion without ``--manifest``; a GT video without ``--gt`` or ``--manifest``; a reference image without
    either (``score`` takes it from the manifest, else the GT's first frame). Names what is missing and the
    command that supplies it (:class:`BenchError`, exit 2)."""
    from moee_bench.metrics.core.registry import metric_classes

    problems = []
    for name, cls in metric_classes(names).items():
        if cls is None:
            continue
        if cls.needs_emotion and not manifest:
            problems.append(f"metric {name} needs a target emotion (label) per clip and no --manifest gives one; "
                            f"make one: {MAKE_MANIFEST}")
        if cls.needs_gt and not (gt or manifest):
            problems.append(f"metric {name} needs ground-truth videos: give --gt DIR (or --manifest)")
        if cls.needs_ref and not (gt or manifest):
            problems.append(f"metric {name} needs a reference image: give --manifest (its ref_image) or --gt DIR "
                            "(the GT's first frame, warned)")
    if problems:
        raise BenchError("; ".join(problems) + "; nothing was decoded")


def _check_in_memory(pairs: Sequence[ClipInput], names: Sequence[str], params: Mapping[str, Any]) -> None:
    """Refuse, before any work, what in-memory frames cannot give: Sync-C/D's file steps read the video file."""
    if "sync" not in names or not any(isinstance(c.pred, np.ndarray) for c in pairs):
        return
    if params.get("sync_pixels", "jpeg") != "exact" or params.get("sync_audio", "driving") == "video":
        raise BenchError("sync on in-memory frames: syncnet-python's file steps (JPEG dump, AVI re-encode) and the "
                         "video's own audio need a video file; pass params={'sync_pixels': 'exact'} with driving audio "
                         "(a manifest), or score .mp4 files")


def score(pred: Videos, gt: Videos | None = None, *, manifest: str | Path | None = None, split: str | None = None,
          metrics: Sequence[str] | str = DEFAULT_METRICS, params: Mapping[str, Any] | None = None,
          device: str = "cpu", fps: float = 25.0, size: tuple[int, int] | None = None, strict: bool = False,
          precision: str = "fp32", weights: WeightsOptions | None = None, cache: str | Path | None = "default",
          progress: bool = True) -> ScoreResult:
    """Score generated clips (against GT clips and/or a manifest) with ``metrics``; what ``moee-bench score`` runs.

    ``pred`` / ``gt``: a folder of ``.mp4`` files paired by clip id, or a mapping clip id -> video file or frames
    already in memory (``(T, H, W, 3)`` uint8 RGB, numpy or torch, taken as sampled at ``fps``). ``manifest``
    (and ``split``) supplies GT video, driving audio, reference image and emotion per clip. ``params``: metric
    parameters (``moee-bench metrics`` lists them; unknown keys are refused). ``weights``: where weight files are
    looked up and how they are trusted (default: the weights cache, fetching on first use). ``cache``:
    ``"default"`` keeps the features read from a GT video alone in the persistent, content-keyed, digest-checked
    cache ``$XDG_CACHE_HOME/moee-bench/features`` (a test set is embedded once; everything else goes to a temporary
    cache), as the CLI does; ``None`` keeps nothing (``--no-cache``); a folder keeps every feature there
    (``--feature-cache DIR``). Everything given is checked before any video is decoded
    (:class:`BenchError`); a clip that cannot be scored gets a status and a reason in the result."""
    from moee_bench.bench.core.faces import face_record
    from moee_bench.bench.core.provenance import environment
    from moee_bench.bench.suite.store import FeatureStore, GTFeatureCache, default_feature_cache_dir
    from moee_bench.metrics.core.registry import MetricOptions, build_metrics, check_params, check_size

    names = _names(metrics)
    check_device(device, "device")
    if precision not in ("fp32", "bf16"):
        raise BenchError(f"precision {precision!r}: expected fp32 or bf16")
    try:
        fps = fps_value(fps, "fps")
    except ValueError as e:
        raise BenchError(str(e)) from None
    if split and not manifest:
        raise BenchError("--split needs --manifest (the split is recorded in the manifest)")
    params = dict(params or {})
    streams = _stream_params(params)
    params = check_params(names, params)
    wopts = weights if weights is not None else WeightsOptions()
    existing_dir(wopts.weights_dir, "--weights-dir")
    size = (int(size[0]), int(size[1])) if size else None
    pairs, warn, missing, broken, split_info = _pairs(pred, gt, manifest, split)
    refuse_unsupplied(names, gt=gt is not None, manifest=manifest is not None)   # pairing decodes nothing
    if streams:
        pairs = [dataclasses.replace(c, **streams) for c in pairs]
    if not pairs and not broken:
        raise BenchError(f"no clips to score in {pred if isinstance(pred, (str, Path)) else 'the given clips'}"
                         + (f" ({len(missing)} manifest clips missing)" if missing else ""))
    _check_in_memory(pairs, names, params)
    opts = MetricOptions(weights=wopts, device=device, params=params, precision=precision)
    metric_objs, unavailable = build_metrics(names, opts)
    check_size(metric_objs, size)
    with warnings.catch_warnings(record=True) as caught, tempfile.TemporaryDirectory(prefix="moee-score-") as tmp:
        warnings.simplefilter("always")
        needs = any(getattr(m, "needs_feature_cache", False) for m in metric_objs)
        persistent, why_off = None, ""
        if cache == "default":
            # GT features persist across calls; the rest goes to a temporary cache, which KID/KVD read back from
            if any(c.gt is not None for c in pairs):
                persistent = FeatureStore(default_feature_cache_dir())
                store = GTFeatureCache(persistent, FeatureStore(Path(tmp)))
            else:
                store, why_off = FeatureStore(Path(tmp)) if needs else None, "no GT video"
        elif cache is not None:
            persistent = store = FeatureStore(Path(cache))
        else:
            store, why_off = FeatureStore(Path(tmp)) if needs else None, "--no-cache"
        # faces (MTCNN + dlib per frame) persist beside the persistent features: a later score reads them back
        with face_record(persistent.folder if persistent is not None else None) as faces_kept:
            res = evaluation.evaluate(pairs, metric_objs, fps=fps, size=size, strict=strict, cache=store,
                                      progress=progress)
            cache_note = _cache_record(persistent, res.clips, why_off)
            if faces_kept is not None and (faces_kept.hits or faces_kept.misses):
                cache_note["face_record"] = {"path": str(faces_kept.path.resolve()), "frames_read": faces_kept.hits,
                                             "frames_computed": faces_kept.misses,
                                             "rejected": len(faces_kept.rejected)}
        if cache not in (None, "default"):
            cache_note["all_features"] = True
    for cid, why in broken.items():        # unusable manifest entries (a path escaping the root...): failed, named
        res.clips.append(ClipOutcome(cid, status={n: "error" for n in names}, messages={n: why for n in names}))
    for n, why in unavailable.items():
        res.metrics[n] = None
        res.metrics[f"{n}_reason"] = why
    res.protocol["precision"] = precision
    res.protocol.update({**environment(device), "weights": wopts.provenance(),
                         "weights_by_metric": wopts.by_metric(), "unverified_weights": wopts.unverified_metrics(),
                         "pairing_warnings": warn, "missing_clips": missing, "split": split_info,
                         "feature_cache": cache_note,
                         "warnings": sorted({str(w.message) for w in caught})})
    return ScoreResult(res.metrics, res.clips, res.protocol, missing)


def _cache_record(persistent: Any, clips: list, why_off: str) -> dict:
    """Where GT features were kept and how many GT parts came from it or were extracted (or why none were kept)."""
    if persistent is None:
        return {"persistent": None, "reason": why_off}
    n, size = persistent.size()
    return {"persistent": str(Path(persistent.folder).resolve()), "entries": n, "bytes": size,
            "gt_parts_cached": sum(1 for c in clips for k in c.cached if k.endswith("/gt")),
            "gt_parts_extracted": sum(1 for c in clips for k in c.extracted if k.endswith("/gt"))}


def run(suite: str | Path | None = None, out: str | Path = "moee_bench_runs", *, params: Mapping[str, Any] | None = None,
        device: str = "cpu", precision: str = "fp32", weights: WeightsOptions | None = None, fail_fast: bool = False,
        report: bool = True, allow_identity_overlap: bool = False, log: Callable[..., None] = print):
    """Run a benchmark suite (TOML file; ``None``: the built-in sample suite) into ``out``; what ``moee-bench run``
    runs. Resumable: finished work in ``out/store`` is reused. ``params`` override the suite's ``[params]`` (a new
    run id). Returns the :class:`moee_bench.bench.suite.runner.RunSummary` (run id, store, failures, notes,
    per-clip warnings, report files); read the results with ``ResultStore(summary.store)``."""
    from moee_bench.bench.suite.runner import run_suite
    from moee_bench.bench.suite.spec import load_suite

    wopts = weights if weights is not None else WeightsOptions()
    existing_dir(wopts.weights_dir, "--weights-dir")
    check_device(device, "device")
    s = load_suite(suite)
    s.override_params(dict(params or {}))
    return run_suite(s, Path(out), weights=wopts, device=device, fail_fast=fail_fast, report=report, log=log,
                     allow_identity_overlap=allow_identity_overlap, precision=precision)


@dataclass
class CompareResult:
    """What :func:`compare` found: one verdict per method and metric, the markdown table, the caveats, the exit
    code ``moee-bench compare`` returns for it, and :meth:`to_dict` (the JSON ``compare --json`` writes)."""

    base: str                   # run ids
    new: str
    verdicts: list              # reports.compare.Verdict
    markdown: str
    base_caveats: Any
    new_caveats: Any
    exit_code: int = 0
    settings: dict = field(default_factory=dict)     # alpha, threshold, correction, resample, n_boot
    ignored_missing: frozenset = frozenset()

    def by_verdict(self, verdict: str) -> list:
        """The verdicts whose ``verdict`` is ``verdict`` (``regressed``, ``missing``, ...)."""
        return [v for v in self.verdicts if v.verdict == verdict]

    @property
    def regressed(self) -> list:
        return self.by_verdict("regressed")

    @property
    def missing(self) -> list:
        return self.by_verdict("missing")

    @property
    def gating_missing(self) -> list:
        """Missing metrics not excused by ``ignore_missing``."""
        return [v for v in self.missing if "all" not in self.ignored_missing and v.key not in self.ignored_missing]

    @property
    def not_comparable(self) -> list:
        return [v for v in self.verdicts if v.refused in ("runs", "data")]

    def to_frame(self):
        """The verdicts as a pandas DataFrame (one row per method and metric)."""
        import dataclasses

        import pandas as pd

        return pd.DataFrame([dataclasses.asdict(v) for v in self.verdicts])

    def to_dict(self) -> dict:
        """The document ``moee-bench compare --json`` writes."""
        from moee_bench.reports.resampling import CORRECTIONS

        s = self.settings
        return {"base": self.base, "new": self.new, "alpha": s.get("alpha"), "threshold": s.get("threshold"),
                "correction": s.get("correction"), "correction_name": CORRECTIONS[s.get("correction", "holm")],
                "resample": s.get("resample"), "n_boot": s.get("n_boot"),
                "n_tests": sum(v.p == v.p for v in self.verdicts), "exit_code": self.exit_code,
                "regressed": len(self.regressed), "not_comparable": len(self.not_comparable),
                "missing": len(self.missing), "verdicts": [v.as_dict() for v in self.verdicts]}


def load_run(ref: str | Path, store_dir: str | Path):
    """``(run record, per-clip table, aggregates)`` of ``ref``: a run id in ``store_dir``, a store folder, or the
    ``--out`` folder given to ``run`` (their latest run). ``BenchError`` naming the known runs otherwise."""
    from moee_bench.bench.suite.store import ResultStore

    ref = str(ref)
    if not (Path(ref) / "results.sqlite").is_file() and (Path(ref) / "store" / "results.sqlite").is_file():
        ref = str(Path(ref) / "store")                   # the --out folder given to `run`
    if (Path(ref) / "results.sqlite").is_file():
        st = ResultStore(ref, readonly=True)
        runs = st.runs()
        if not runs:
            st.close()
            raise BenchError(f"store {ref} has no finished runs")
        run = runs[-1]
    else:
        if not (Path(store_dir) / "results.sqlite").is_file():
            raise BenchError(f"{ref!r} is not a store folder, and there is no result store at {store_dir} to look "
                             "it up as a run id (--store)")
        st = ResultStore(store_dir, readonly=True)
        known = [r["run_id"] for r in st.runs()]
        if ref not in known:
            st.close()
            raise BenchError(f"run {ref!r} is not in {store_dir} (and {ref} is not a store folder); known runs: "
                             f"{', '.join(known) or 'none'}")
        run = next(r for r in st.runs() if r["run_id"] == ref)
    rid = run["run_id"]
    table, agg = st.clip_table(rid), st.aggregates(rid)
    st.close()
    return run, table, agg


def compare(base: str | Path, new: str | Path, *, store: str | Path = "moee_bench_runs/store", threshold: float = 0.0,
            metrics: Sequence[str] | None = None, alpha: float = 0.05, correction: str = "holm",
            resample: str = "auto", n_boot: int = 2000, ignore_missing: Sequence[str] = ()) -> CompareResult:
    """Paired comparison of two runs (run ids in ``store``, store folders or ``run --out`` folders: their latest
    run) per method and clip-averaged metric, as ``moee-bench compare`` prints it: a verdict needs the whole
    ``1 - alpha`` CI beyond ``threshold`` on one side and the adjusted p-value (``correction`` over all tests)
    below ``alpha``; metrics the runs cannot be compared on are refused with the reason. ``exit_code``: 1 on a
    significant regression, else 5 when some metric is not comparable, else 4 when a base metric is missing from
    the new run (unless ``ignore_missing`` names it or holds ``all``), else 0."""
    from moee_bench.bench.core import exitcodes
    from moee_bench.metrics.core.keys import KEYS
    from moee_bench.reports.compare import comparability, compare_tables, render, run_caveats
    from moee_bench.reports.resampling import CORRECTIONS, MODES

    ignore = frozenset(m for m in ignore_missing if m)
    for given in list(metrics or []) + sorted(ignore - {"all"}):
        if given not in KEYS:
            raise BenchError(f"unknown metric key {given!r}; known: {', '.join(KEYS)}")
    if not 0 < alpha < 1:
        raise BenchError(f"alpha must be between 0 and 1, got {alpha!r}")
    if correction not in CORRECTIONS:
        raise BenchError(f"correction {correction!r}: expected one of {', '.join(sorted(CORRECTIONS))}")
    if resample not in MODES:
        raise BenchError(f"resample {resample!r}: expected one of {', '.join(MODES)}")
    brun, btable, base_agg = load_run(base, store)
    nrun, ntable, new_agg = load_run(new, store)
    bname, nname = brun["run_id"], nrun["run_id"]
    bcav, ncav = run_caveats(base_agg), run_caveats(new_agg)
    keys = list(metrics) if metrics else sorted(set(btable.columns) & set(KEYS))
    refused = comparability(brun, nrun, keys)
    verdicts = compare_tables(btable, ntable, threshold=threshold, metrics=list(metrics) if metrics else None,
                              base_caveats=bcav, new_caveats=ncav, base_agg=base_agg, new_agg=new_agg, alpha=alpha,
                              correction=correction, resample=resample, refused=refused, n_boot=n_boot)
    md = render(verdicts, bname, nname, bcav, ncav, alpha=alpha, correction=correction, threshold=threshold)
    res = CompareResult(bname, nname, verdicts, md, bcav, ncav,
                        settings={"alpha": alpha, "threshold": threshold, "correction": correction,
                                  "resample": resample, "n_boot": n_boot}, ignored_missing=ignore)
    res.exit_code = (exitcodes.REGRESSION if res.regressed else exitcodes.NOT_COMPARABLE if res.not_comparable
                     else exitcodes.METRIC_MISSING if res.gating_missing else exitcodes.OK)
    return res