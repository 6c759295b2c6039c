"""The face pass on one torch thread (issue 30, point 4): the landmarks AKD, FLMD and dynamics read are identical to
the path before (torch's own thread setting), on real-face frames; ``bench faces`` prints the per-frame times."""

from __future__ import annotations

import numpy as np

from moee_bench.bench.core import exitcodes
from moee_bench.bench.cli.app import main
from moee_bench.bench.core import faces
from moee_bench.bench.perf.faces import face_pass, portrait_frames


def test_one_thread_detector_gives_identical_landmarks():
    import torch

    frames = portrait_frames(6)
    threads = torch.get_num_threads()
    _, before = face_pass(frames, None)
    _, after = face_pass(frames, 1)
    assert np.isfinite(after).all()                                 # a face in every frame: the values are real
    assert np.array_equal(before, after)
    assert torch.get_num_threads() == threads and faces.DETECT_THREADS == 1     # settings restored


def test_bench_faces_runs_and_checks_identity(tmp_path, capsys):
    assert main(["bench", "faces", "--frames", "3", "--repeats", "1"]) == exitcodes.OK
    out = capsys.readouterr().out
    assert "landmarks identical" in out and "True" in out and "speed-up" in out
    assert "akd_detect_every=5 (declared, values change)" in out and "MTCNN alone" in out
