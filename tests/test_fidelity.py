"""Issue 14: the leaderboard's numbers are the reference tools' numbers, end to end.

The same files through ``score``, through a ``run`` suite and through the reports give the same numbers;
ground truth against itself is exact; the reference never leaks the target; re-cropping methods are not
ranked on GT-aligned metrics; every caveat reaches the reader; FVD's default is StyleGAN-V's clip rule;
failures are per clip; throughput says what it measured.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from moee_bench.baselines.base import Capabilities
from moee_bench.baselines.builtin import GroundTruth
from moee_bench.bench.core import exitcodes
from moee_bench.bench.cli.app import main
from moee_bench.bench.core import media
from moee_bench.bench.core.emotions import parse_emotion
from moee_bench.bench.core.manifest import ClipRecord, Manifest
from moee_bench.bench.suite.store import ResultStore

VISUAL = '["psnr", "ssim", "lpips", "fvd"]'          # FID (a 2048-d sqrtm per value) in the slow test


def _smooth(rng: np.random.Generator, n: int, h: int, w: int) -> np.ndarray:
    """Video-like frames: a drifting smooth pattern plus mild noise (compresses like footage, not like noise)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    ph = rng.uniform(0, 6, 3)
    out = []
    for t in range(n):
        img = np.stack([np.sin(x / (5 + 3 * c) + t * 0.2 + ph[c]) + np.cos(y / (7 + c) - t * 0.1) for c in range(3)], -1)
        img = 110 + 60 * img + rng.normal(0, 6, img.shape)
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return np.stack(out)


def _manifest(root: Path, clips: list[tuple[str, str, str, np.ndarray, bool]]) -> Path:
    """clips: (clip_id, identity, emotion, frames at 25 fps, with ref_image)."""
    rng = np.random.default_rng(1)
    recs = []
    for cid, ident, emo, frames, with_ref in clips:
        a = (0.1 * rng.standard_normal(int(len(frames) / 25 * 16000))).astype(np.float32)
        media.write_video(root / "v" / f"{cid}.mp4", [frames], 25, audio=a)
        media.write_wav(root / "a" / f"{cid}.wav", a)
        ref = None
        if with_ref:
            ref = f"r/{cid}.png"
            media.write_image(root / ref, _smooth(rng, 1, *frames.shape[1:3])[0])
        recs.append(ClipRecord(cid, ident, f"v/{cid}.mp4", parse_emotion(emo), audio=f"a/{cid}.wav", ref_image=ref,
                               split="test"))
    return Manifest("fidelity", root, recs).save(root / "manifest.json")


def _suite(path: Path, manifest: Path, methods: str, metrics: str, params: str = "") -> Path:
    path.write_text(f'name = "t"\ndataset = "{manifest}"\nsplit = "test"\nmetrics = {metrics}\nseed = 0\n'
                    f'[params]\n{params}\n{methods}')
    return path


def _run_store(out: Path) -> tuple[ResultStore, str]:
    st = ResultStore(out / "store")
    return st, st.runs()[-1]["run_id"]


# ------------------------------------------------------------------------------------ the end-to-end suite
def _e2e(d: Path, weights: Path, metrics: str) -> dict:
    """One suite (ground-truth + precomputed) and one ``score`` of the same precomputed folder, random weights in
    the reference formats. c00's pred conforms (25 fps, GT size); c01's is 30 fps, 96 wide and 80 high, and longer than its GT."""
    rng = np.random.default_rng(0)
    gts = {"c00": _smooth(rng, 17, 64, 64), "c01": _smooth(rng, 17, 64, 64)}      # FVD needs 16 frames
    m = _manifest(d / "ds", [(cid, "id0", "happy", fr, True) for cid, fr in gts.items()])
    pre = d / "pre"
    noisy = np.clip(gts["c00"].astype(int) + rng.integers(-20, 20, gts["c00"].shape), 0, 255).astype(np.uint8)
    media.write_video(pre / "c00.mp4", [noisy], 25)
    media.write_video(pre / "c01.mp4", [_smooth(rng, 24, 80, 96)], 30)                # 20 frames at 25 fps
    from moee_bench.bench.core.weights import sha256_file

    w = ["--weights-dir", str(weights), "--allow-unverified-weights",      # random LPIPS/FID: allowed, marked
         "--trust", f"i3d_styleganv={sha256_file(weights / 'i3d_torchscript.pt')}"]   # TorchScript runs code: pinned
    s = _suite(d / "s.toml", m, f'[[methods]]\nname = "ground-truth"\n[[methods]]\nname = "precomputed"\nfolder = "{pre}"\n',
               metrics)
    rc_run = main(["run", "--suite", str(s), "--out", str(d / "out"), *w])
    rc_score = main(["score", "--pred", str(pre), "--manifest", str(m), "--metrics", ",".join(json.loads(metrics)),
                     "--json", str(d / "score.json"), *w])
    return {"dir": d, "rc_run": rc_run, "rc_score": rc_score, "score": json.loads((d / "score.json").read_text()),
            "out": d / "out", "manifest": m, "pre": pre}


@pytest.fixture(scope="module")
def e2e(tmp_path_factory, reference_format_weights):
    return _e2e(tmp_path_factory.mktemp("e2e"), reference_format_weights, VISUAL)


def test_run_and_score_give_identical_values_and_ground_truth_is_exact(e2e):
    assert e2e["rc_run"] == exitcodes.OK and e2e["rc_score"] == exitcodes.OK
    st, rid = _run_store(e2e["out"])
    with st:
        clips = st.clip_table(rid).set_index(["method", "clip_id"])
        agg = st.aggregates(rid).set_index(["method", "key"])["value"]
        gens = {r[0]: json.loads(r[1]) for r in st.conn.execute(
            "SELECT clip_id, normalisation FROM generations WHERE method='precomputed'")}
    score = {c["clip"]: c for c in e2e["score"]["clips"]}
    keys = ["psnr", "psnr_nframes", "ssim", "ssim_nframes", "lpips", "lpips_nframes", "fvd_clips", "fvd_real_offset"]
    for cid in ("c00", "c01"):
        for k in keys:
            assert clips.loc[("precomputed", cid), k] == score[cid][k], (cid, k)    # identical, not close
    for k in ("psnr", "psnr_dataset", "ssim", "lpips", "fvd"):
        assert agg[("precomputed", k)] == pytest.approx(e2e["score"]["metrics"][k], rel=1e-12, abs=0), k
    # the pred was stored as given: the same compressed video, no re-encode, no resize
    assert "stream copy" in gens["c00"]["video"] and "resize" not in gens["c00"]
    assert np.array_equal(media.read_frames(e2e["out"] / "videos" / "precomputed" / "c00.mp4"),
                          media.read_frames(e2e["pre"] / "c00.mp4"))
    # ground truth against itself: exact
    assert agg[("ground-truth", "psnr")] == 100.0 and agg[("ground-truth", "ssim")] == 1.0
    assert agg[("ground-truth", "lpips")] == 0.0
    assert agg[("ground-truth", "psnr_capped_frames")] == 34


@pytest.mark.slow
def test_fid_through_run_equals_score_and_ground_truth_fid_is_zero(tmp_path, reference_format_weights):
    r = _e2e(tmp_path, reference_format_weights, '["fid"]')
    st, rid = _run_store(r["out"])
    with st:
        agg = st.aggregates(rid).set_index(["method", "key"])["value"]
    assert agg[("precomputed", "fid")] == pytest.approx(r["score"]["metrics"]["fid"], rel=1e-12, abs=0)
    assert abs(agg[("ground-truth", "fid")]) < 1e-3


def test_conversion_happens_once_with_the_named_kernel(e2e, tmp_path):
    """c01 (30 fps, 96x80, width x height) is brought to 25 fps and 64x64 once, by media's kernel, identically on both paths."""
    st, rid = _run_store(e2e["out"])
    with st:
        run = st.runs()[-1]
        warns = json.loads(st.clip_table(rid).set_index(["method", "clip_id"]).loc[("precomputed", "c01"), "warnings"])
    assert any(w.startswith("resampled: pred 30 -> 25 fps") for w in warns)
    assert any(w.startswith("resized: pred 96x80 -> 64x64 (cv2.INTER_AREA)") for w in warns)
    assert "cv2.INTER_AREA" in run["meta"]["ingest"]["resize"]
    assert e2e["score"]["protocol"]["resize_kernel"] == media.RESIZE_KERNEL
    pred = media.read_frames(e2e["pre"] / "c01.mp4", fps=25)
    want = media.resize_frames(pred, (64, 64))
    got = media.read_frames(e2e["out"] / "videos" / "precomputed" / "c01.mp4", fps=25, size=(64, 64))
    assert np.array_equal(got, want)


def test_caveats_are_stored_with_the_aggregate_and_shown(e2e):
    st, rid = _run_store(e2e["out"])
    with st:
        extra = {(m, k): json.loads(e or "{}") for m, k, e in zip(*(st.aggregates(rid)[c] for c in ("method", "key", "extra")))}
        run = st.runs()[-1]
    assert "rank-deficient" in extra[("precomputed", "fvd")]["warning"]
    assert "unverified" in extra[("precomputed", "lpips")]["unverified"]
    assert extra[("precomputed", "fvd")]["fvd_clip_rule"] == "styleganv"
    items = extra[("precomputed", "caveats")]["items"]
    assert any("1 of 2 clips: length truncated" in x for x in items)
    assert any("1 of 2 clips: frame rate resampled" in x for x in items)
    assert any(w.startswith("UserWarning: FVD over") for w in run["meta"]["warnings"]["precomputed"])   # not muted
    md = (e2e["out"] / "report" / "LEADERBOARD.md").read_text()
    html = (e2e["out"] / "report" / "report.html").read_text()
    for text in (md, html):
        assert "rank-deficient" in text and "length truncated" in text and "frame rate resampled" in text
        assert "unverified weights" in text
    line = next(ln for ln in md.splitlines() if ln.startswith("| `precomputed`"))
    assert "†" in line                                       # the FVD cell is flagged in the table itself
    r = main(["compare", str(e2e["out"] / "store"), str(e2e["out"] / "store"), "--out", str(e2e["dir"] / "cmp.md")])
    cmp = (e2e["dir"] / "cmp.md").read_text()
    assert r == exitcodes.OK and "length truncated" in cmp and "unverified" in cmp


# ------------------------------------------------------------------------------------ reference policy
def test_a_method_that_copies_its_reference_does_not_score_from_the_target(tmp_path):
    rng = np.random.default_rng(3)
    still = lambda: np.repeat(_smooth(rng, 1, 64, 64), 20, axis=0)      # noqa: E731  a face that does not move
    m = _manifest(tmp_path / "ds", [("a_happy", "a", "happy", still(), False), ("a_neutral", "a", "neutral", still(), False),
                                    ("b_sad", "b", "sad", still(), False)])
    s = _suite(tmp_path / "s.toml", m, '[[methods]]\nname = "static"\n', '["psnr"]')
    assert main(["run", "--suite", str(s), "--out", str(tmp_path / "out")]) == exitcodes.OK
    st, rid = _run_store(tmp_path / "out")
    with st:
        t = st.clip_table(rid).set_index("clip_id")
        run = st.runs()[-1]
    # the static method copies its reference: from the identity's neutral clip it cannot reproduce the target
    assert t.loc["a_happy", "ref_source"] == "neutral:a_neutral"
    assert t.loc["a_happy", "psnr"] < 20
    # with no other neutral clip the policy falls back to the target's first frame, and says so everywhere
    assert t.loc["b_sad", "ref_source"] == "first-frame:b_sad" and t.loc["b_sad", "psnr"] > 30
    assert len(run["meta"]["reference_warnings"]) == 2 and run["meta"]["references"]["a_happy"] == "neutral:a_neutral"
    md = (tmp_path / "out" / "report" / "LEADERBOARD.md").read_text()
    assert "first frame of their own target video" in md
    # score --manifest gives CSIM the same reference and records it per clip
    pred = tmp_path / "out" / "videos" / "static"
    assert main(["score", "--pred", str(pred), "--manifest", str(m), "--metrics", "psnr", "--json",
                 str(tmp_path / "s.json")]) == exitcodes.OK
    doc = json.loads((tmp_path / "s.json").read_text())
    assert {c["clip"]: c["ref_source"] for c in doc["clips"]} == {"a_happy": "neutral:a_neutral",
                                                                  "a_neutral": "first-frame:a_neutral",
                                                                  "b_sad": "first-frame:b_sad"}


# ------------------------------------------------------------------------------------ re-cropping methods
class RecropGT(GroundTruth):
    """The ground truth, declared as a method that re-crops the face (it would be 'best' on every GT metric)."""

    name = "recrop-gt"
    capabilities = Capabilities(emotion_inputs=frozenset({"label"}), recrops_face=True)


def test_recropping_method_is_never_ranked_on_gt_aligned_metrics(tmp_path, monkeypatch):
    from moee_bench.baselines import registry

    monkeypatch.setitem(registry.METHODS, "recrop-gt", f"{__name__}:RecropGT")
    rng = np.random.default_rng(4)
    m = _manifest(tmp_path / "ds", [(f"c{i}", "a", "happy", _smooth(rng, 20, 64, 64), True) for i in range(2)])
    s = _suite(tmp_path / "s.toml", m, '[[methods]]\nname = "recrop-gt"\n[[methods]]\nname = "static"\n', '["psnr", "ssim"]')
    assert main(["run", "--suite", str(s), "--out", str(tmp_path / "out")]) == exitcodes.OK
    md = (tmp_path / "out" / "report" / "LEADERBOARD.md").read_text()
    row = next(ln for ln in md.splitlines() if ln.startswith("| `recrop-gt`"))
    assert row.count("n/c (") == 2 and "**" not in row and "‡" in row
    assert "re-crops the face" in md
    html = (tmp_path / "out" / "report" / "report.html").read_text()
    assert "class='nc'" in html and "re-crops the face" in html
    main(["compare", str(tmp_path / "out" / "store"), str(tmp_path / "out" / "store"), "--out", str(tmp_path / "c.md")])
    cmp = (tmp_path / "c.md").read_text()
    line = next(ln for ln in cmp.splitlines() if ln.startswith("| `recrop-gt` | PSNR"))
    assert line.endswith("| not comparable |") and "re-crops the face" in cmp


# ------------------------------------------------------------------------------------ confidence intervals
def test_frame_weighted_mean_gets_a_frame_weighted_ci(tmp_path):
    from moee_bench.reports.bootstrap import paired_diff_ci
    from moee_bench.reports.leaderboard import method_table

    st = ResultStore(tmp_path / "store")
    st.put_run("r", meta={})
    vals, frames = [10.0] * 5 + [40.0] * 5, [1] * 5 + [100] * 5
    for i, (v, n) in enumerate(zip(vals, frames)):
        st.put_clip("r", "m", f"c{i}", values={"psnr": v + 0.01 * i, "psnr_nframes": n}, status={"psnr": "ok"})
    t = st.clip_table("r")
    weighted = float((t.psnr * t.psnr_nframes).sum() / t.psnr_nframes.sum())          # what PSNR.compute() returns
    st.put_aggregates("r", "m", {"psnr": weighted, "n_clips": 10, "n_missing": 0})
    lo, hi = method_table(st, "r").iloc[0]["psnr_ci"]
    assert lo <= weighted <= hi and lo > 30                 # a clip-mean CI (around 25) would not contain it
    d, dlo, dhi = paired_diff_ci(t.psnr.to_numpy(), t.psnr.to_numpy() + 1, base_weights=t.psnr_nframes.to_numpy(),
                                 new_weights=t.psnr_nframes.to_numpy())
    assert d == pytest.approx(1.0) and dlo == pytest.approx(1.0) and dhi == pytest.approx(1.0)
    st.close()


# ------------------------------------------------------------------------------------ FVD clip rule
class _FakeFVD:
    """The parts of moee_bench.metrics.visual.fvd.FVD the extractor uses; ``embed`` returns the frames' first pixel values."""

    def __init__(self, clips: str, seed: int = 0) -> None:
        self.clips, self.seed = clips, seed

    def embed(self, clip: np.ndarray) -> np.ndarray:
        return clip[:, 0, 0, 0].astype(np.float64)


def _extract(rule: str, n: int, clip_id: str = "x", seed: int = 0, chunk: int = 7):
    """Both sides' parts, each fed its own video in chunks, paired by FVD.combine (as the evaluator does)."""
    from moee_bench.metrics.core.base import VideoChunk
    from moee_bench.metrics.visual.fvd import FVD, _Extractor

    videos = {"pred": np.arange(n, dtype=np.uint8), "gt": (100 + np.arange(n)).astype(np.uint8)}
    parts = {}
    for side, v in videos.items():
        frames = v.reshape(n, 1, 1, 1).repeat(3, -1)
        ex = _Extractor(_FakeFVD(rule, seed), clip_id, side)
        for s in range(0, n, chunk):
            ex.add(VideoChunk(s, frames[s:s + chunk]))
        parts[side] = ex.finish()
    return FVD.combine(parts)


def test_fvd_default_is_one_stylegan_v_clip_per_video():
    f = _extract("styleganv", 40)
    off = int(f["real_offset"][0])
    assert f["pred"].shape == (1, 16) and list(f["pred"][0]) == list(range(16))          # generated: frame 0
    assert 0 <= off <= 24 and list(f["gt"][0]) == list(range(100 + off, 116 + off))      # real: random offset
    assert int(_extract("styleganv", 40, chunk=16)["real_offset"][0]) == off            # seeded per clip, not by chunking
    offsets = [int(_extract("styleganv", 20, clip_id=f"c{i}")["real_offset"][0]) for i in range(400)]
    counts = np.bincount(offsets, minlength=5)
    assert counts.min() > 50 and len(counts) == 5                                        # uniform over [0, T-16]
    assert int(_extract("first", 40)["real_offset"][0]) == 0 and list(_extract("first", 40)["gt"][0])[0] == 100
    assert _extract("windows", 40)["gt"].shape == (2, 16)                                # the named pooling variant
    from moee_bench.bench.core.errors import ClipError

    with pytest.raises(ClipError):
        _extract("styleganv", 15)


# ------------------------------------------------------------------------------------ per-clip failures
def test_failures_are_per_clip_and_run_exits_failed_clips(tmp_path, monkeypatch):
    from moee_bench.metrics.visual import ssim

    rng = np.random.default_rng(5)
    m = _manifest(tmp_path / "ds", [(f"c{i}", "a", "happy", _smooth(rng, 20, 64, 64), True) for i in range(4)])
    pre = tmp_path / "pre"
    for i in (0, 2, 3):
        media.write_video(pre / f"c{i}.mp4", [_smooth(rng, 20, 64, 64)], 25)
    (pre / "c1.mp4").write_bytes(b"not a video at all")                                  # the generation fails
    real_add = ssim._Extractor.add

    def flaky(self, chunk):
        if chunk.pred[0, :8, :8].mean() > 245:          # c2's marker: a white corner
            raise RuntimeError("detector estimation failed\nsecond line")
        return real_add(self, chunk)

    monkeypatch.setattr(ssim._Extractor, "add", flaky)
    c2 = media.read_frames(pre / "c2.mp4")
    c2[:, :16, :16] = 255
    media.write_video(pre / "c2.mp4", [c2], 25)
    s = _suite(tmp_path / "s.toml", m, f'[[methods]]\nname = "precomputed"\nfolder = "{pre}"\n', '["psnr", "ssim"]')
    assert main(["run", "--suite", str(s), "--out", str(tmp_path / "out")]) == exitcodes.FAILED_CLIPS
    st, rid = _run_store(tmp_path / "out")
    with st:
        status = st.status_table(rid).set_index(["clip_id", "metric"])
        vals = st.clip_table(rid).set_index("clip_id")
    assert status.loc[("c1", "psnr"), "status"] == "error" and "corrupt" in status.loc[("c1", "psnr"), "message"]
    assert status.loc[("c2", "ssim"), "status"] == "error"
    assert status.loc[("c2", "ssim"), "message"] == "RuntimeError: detector estimation failed"
    assert status.loc[("c2", "psnr"), "status"] == "ok" and np.isfinite(vals.loc["c2", "psnr"])
    assert all(np.isfinite(vals.loc[c, "ssim"]) for c in ("c0", "c3"))
    # a bug is not a clip's status: it fails loudly
    monkeypatch.setattr(ssim._Extractor, "add", lambda self, chunk: self.no_such_attribute)
    with pytest.raises(AttributeError):
        main(["run", "--suite", str(s), "--out", str(tmp_path / "out2")])


def test_legitimate_statuses_are_not_failures(tmp_path):
    rng = np.random.default_rng(6)
    m = _manifest(tmp_path / "ds", [(f"c{i}", "a", "happy", _smooth(rng, 20, 64, 64), True) for i in range(2)])
    pre = tmp_path / "pre"
    media.write_video(pre / "c0.mp4", [_smooth(rng, 20, 64, 64)], 25)                    # c1 missing: not a failure
    s = _suite(tmp_path / "s.toml", m, f'[[methods]]\nname = "precomputed"\nfolder = "{pre}"\n', '["psnr", "akd"]')
    assert main(["run", "--suite", str(s), "--out", str(tmp_path / "out")]) == exitcodes.OK   # akd: no_face


# ------------------------------------------------------------------------------------ throughput
def test_subprocess_peak_rss_is_the_childs_and_unmeasured_is_not_zero(tmp_path):
    from moee_bench.baselines.process import run_measured
    from moee_bench.bench.perf.throughput import memory_report

    code = "import numpy as np; a = np.ones(300 * 2**20 // 8); print(a.sum())"
    with open(tmp_path / "log.txt", "wb") as log:
        rc, stats = run_measured([sys.executable, "-c", code], cwd=tmp_path, stdout=log, timeout=60)
    assert rc == 0 and stats["child_peak_rss_bytes"] > 300 * 2**20
    mem = memory_report("cpu", {"child_peak_rss_bytes": stats["child_peak_rss_bytes"],
                                "child_peak_rss": stats["child_peak_rss"]})
    assert mem["peak_mem_bytes"] == stats["child_peak_rss_bytes"] and "subprocess" in mem["peak_mem_kind"]
    own = memory_report("cpu")
    assert own["child_peak_rss_bytes"] is None and own["cuda_allocator_peak_bytes"] is None
    assert own["child_peak_rss"].startswith("not measured") and "RSS" in own["peak_mem_kind"]
    with open(tmp_path / "log2.txt", "wb") as log:
        rc, _ = run_measured([sys.executable, "-c", "import time; time.sleep(30)"], cwd=tmp_path, stdout=log, timeout=0.5)
    assert rc == -9


def test_subprocess_gpu_peak_is_queried_for_the_childs_process_tree(tmp_path, monkeypatch):
    """nvidia-smi's per-process memory, summed over the method's process tree (a stand-in nvidia-smi here)."""
    from moee_bench.baselines.process import run_measured

    fake = tmp_path / "bin" / "nvidia-smi"
    fake.parent.mkdir()
    fake.write_text(f"#!{sys.executable}\nimport psutil\n"
                    "for p in psutil.process_iter(['pid', 'cmdline']):\n"
                    "    if any('gpu_marker' in c for c in (p.info['cmdline'] or [])):\n"
                    "        print(f\"{p.info['pid']}, 1536\")\n"
                    "print('1, 99999')\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{__import__('os').environ['PATH']}")
    with open(tmp_path / "log.txt", "wb") as log:
        rc, stats = run_measured([sys.executable, "-c", "import time; time.sleep(2.5)  # gpu_marker"], cwd=tmp_path,
                                 stdout=log, timeout=60)
    assert rc == 0 and stats["child_gpu_peak_bytes"] == 1536 * 2**20 and "nvidia-smi" in stats["child_gpu_peak"]


def test_throughput_reports_model_load_apart_or_says_not_measured(tmp_path):
    st = ResultStore(tmp_path / "store")
    st.put_run("r", meta={})
    st.put_aggregates("r", "m", {"n_clips": 1, "n_missing": 0})
    st.put_throughput("r", "m", device="cpu", frames_per_s=5.0, seconds_per_clip=2.0, peak_mem_bytes=None, n_clips=1,
                      extra={"model_load_s": None})
    from moee_bench.reports.leaderboard import render_markdown

    md = render_markdown(st)
    row = next(ln for ln in md.splitlines() if ln.startswith("| `m` | cpu"))
    assert row.count("not measured") == 2 and "| 0 |" not in row
    st.close()


def test_precomputed_videos_of_a_dataset_without_audio_are_scored_and_say_so(tmp_path):
    """A dataset whose clips carry no audio track (the `bench leaderboard` data, silent corpora): the
    stored video keeps its frames, the missing driving audio is recorded, and the GT-based metrics are scored."""
    from moee_bench.bench.core import media
    from moee_bench.bench.core.emotions import parse_emotion
    from moee_bench.bench.core.manifest import ClipRecord, Manifest
    from moee_bench.bench.suite.runner import run_suite
    from moee_bench.bench.suite.store import ResultStore
    from moee_bench.bench.suite.spec import load_suite

    rng = np.random.default_rng(0)
    g = rng.integers(0, 255, (12, 64, 64, 3), dtype=np.uint8)
    media.write_video(tmp_path / "gt" / "c0.mp4", [g], 25)
    media.write_video(tmp_path / "pred" / "c0.mp4", [g[::-1].copy()], 25)
    m = Manifest("silent", tmp_path, [ClipRecord("c0", "a", "gt/c0.mp4", parse_emotion("neutral"), split="test")])
    m.save(tmp_path / "manifest.json")
    (tmp_path / "s.toml").write_text(f'name = "s"\ndataset = "{tmp_path / "manifest.json"}"\nsplit = "test"\n'
                                     f'metrics = ["psnr"]\n[[methods]]\nname = "precomputed"\nfolder = "{tmp_path / "pred"}"\n')
    s = run_suite(load_suite(tmp_path / "s.toml"), tmp_path / "out", report=False, log=lambda *a, **k: None)
    assert not s.failures and not s.notes
    with ResultStore(tmp_path / "out" / "store") as st:
        (chash,) = [r[0] for r in st.conn.execute("SELECT config_hash FROM generations")]
        row = st.generation("precomputed", "c0", chash)
        assert "no driving audio" in row["normalisation"]["audio"]
        agg = st.aggregates().set_index(["method", "key"])["value"]
    assert np.isfinite(agg[("precomputed", "psnr")])
