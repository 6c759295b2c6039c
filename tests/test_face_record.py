"""The persistent per-frame face record (issue 30, point 4: one face pass per frame across metrics and runs).

The answers: what the metrics give with no record at all (``--no-cache``), dlib's and MTCNN's own call counts, and
the record's own rows edited by hand."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from moee_bench.bench.cli.app import main
from moee_bench.bench.core import exitcodes, faces, mtcnn_fast
from moee_bench.bench.core.face_record import FILENAME
from tests.conftest import write_sample_pairs


@pytest.fixture(scope="module")
def pairs(sample_manifest: Path, tmp_path_factory) -> tuple[Path, Path]:
    """pred/gt folders of two real sample pairs, 6 frames each."""
    return write_sample_pairs(sample_manifest, tmp_path_factory.mktemp("record_pairs"), 6)


class Calls:
    """Counts MTCNN frames and dlib calls actually computed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.mtcnn = self.dlib = 0
        detect = mtcnn_fast.FastMTCNN.detect

        def counted_detect(det, frames):
            self.mtcnn += len(frames)
            return detect(det, frames)

        predictor = faces._shape_predictor()

        def counted_predictor(*a):
            self.dlib += 1
            return predictor(*a)

        monkeypatch.setattr(mtcnn_fast.FastMTCNN, "detect", counted_detect)
        monkeypatch.setattr(faces, "_shape_predictor", lambda: counted_predictor)


def _score(folders, out: Path, metrics: str, *extra: str) -> dict:
    faces.DETECTIONS.clear()
    faces.LANDMARKS.clear()
    rc = main(["score", "--pred", str(folders[0]), "--gt", str(folders[1]), "--metrics", metrics, "--json", str(out),
               *extra])
    assert rc == exitcodes.OK
    return json.loads(out.read_text())


def _record(cache_home: Path) -> Path:
    return cache_home / "moee-bench" / "features" / FILENAME


def test_a_later_score_with_another_metric_reads_every_face_from_the_record(pairs, tmp_path, monkeypatch,
                                                                           _private_feature_cache):
    truth = _score(pairs, tmp_path / "truth.json", "flmd,dynamics", "--no-cache")
    assert not _record(_private_feature_cache).exists()          # --no-cache keeps nothing, faces included
    calls = Calls(monkeypatch)
    first = _score(pairs, tmp_path / "akd.json", "akd")
    n = 2 * 2 * 6                                                  # clips x sides x frames
    assert (calls.mtcnn, calls.dlib) == (n, n)
    assert first["protocol"]["feature_cache"]["face_record"]["frames_computed"] == 2 * n     # detections + landmarks
    assert _record(_private_feature_cache).is_file()
    later = _score(pairs, tmp_path / "later.json", "flmd,dynamics")
    assert (calls.mtcnn, calls.dlib) == (n, n)                     # nothing detected or predicted again
    kept = later["protocol"]["feature_cache"]["face_record"]
    assert kept["frames_read"] == 2 * n and kept["frames_computed"] == 0 and kept["rejected"] == 0
    for k, v in truth["metrics"].items():
        assert later["metrics"][k] == v, k


def test_an_edited_face_record_row_is_not_used_and_said(pairs, tmp_path, monkeypatch, _private_feature_cache):
    truth = _score(pairs, tmp_path / "truth.json", "akd", "--no-cache")
    _score(pairs, tmp_path / "first.json", "flmd")                # fills the record
    with sqlite3.connect(_record(_private_feature_cache)) as c:
        key, value = c.execute("SELECT key, value FROM faces WHERE kind LIKE 'dlib68%' LIMIT 1").fetchone()
        pts = np.frombuffer(value, np.float64).copy()
        pts[0] += 40.0                                             # a landmark moved by hand; the digest kept
        c.execute("UPDATE faces SET value=? WHERE key=? AND kind LIKE 'dlib68%'", (pts.tobytes(), key))
    calls = Calls(monkeypatch)
    got = _score(pairs, tmp_path / "akd.json", "akd")
    assert calls.dlib == 1                                         # the edited frame, and only it, recomputed
    assert got["protocol"]["feature_cache"]["face_record"]["rejected"] == 1
    assert any("face record" in w and "not used" in w for w in got["protocol"]["warnings"])
    assert got["metrics"]["akd"] == truth["metrics"]["akd"]
    again = _score(pairs, tmp_path / "again.json", "akd")          # the row was rewritten with the right value
    assert calls.dlib == 1 and again["protocol"]["feature_cache"]["face_record"]["rejected"] == 0


def test_cache_info_shows_and_prune_empties_the_face_record(pairs, tmp_path, capsys, _private_feature_cache):
    _score(pairs, tmp_path / "a.json", "akd")
    capsys.readouterr()
    assert main(["cache", "info"]) == exitcodes.OK
    assert f"{FILENAME}: 48 frames" in capsys.readouterr().out    # 24 detections + 24 landmark sets
    assert main(["cache", "prune", "--older-than", "1"]) == exitcodes.OK
    assert "pruned 0 frames from the face record" in capsys.readouterr().out
    assert main(["cache", "prune"]) == exitcodes.OK
    out = capsys.readouterr().out
    assert "pruned 48 frames from the face record" in out and f"{FILENAME}: 0 frames" in out


def test_a_damaged_face_record_file_is_said_and_not_used(pairs, tmp_path, _private_feature_cache):
    truth = _score(pairs, tmp_path / "truth.json", "akd", "--no-cache")
    path = _record(_private_feature_cache)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not a database" * 100)
    got = _score(pairs, tmp_path / "akd.json", "akd")
    assert got["metrics"]["akd"] == truth["metrics"]["akd"]
    assert "face_record" not in got["protocol"]["feature_cache"]
    assert any("face record" in w and "not used" in w for w in got["protocol"]["warnings"])
