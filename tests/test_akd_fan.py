"""AKD's FAN backend: face-alignment's own pipeline with registry weights (random-initialised here)."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch

from moee_bench.bench.core.errors import WeightsError
from moee_bench.bench.core.weights import WeightsOptions


@pytest.fixture(scope="module")
def fan_weights(tmp_path_factory) -> Path:
    from face_alignment.api import FAN
    from face_alignment.detection.sfd.net_s3fd import s3fd

    d = tmp_path_factory.mktemp("fan")
    torch.manual_seed(0)
    torch.save(FAN(4).state_dict(), d / "2DFAN4-11f355bf06.pth.tar")
    torch.save(s3fd().state_dict(), d / "s3fd-619a316812.pth")
    return d


def test_fan_landmarks_equal_face_alignment_package(fan_weights: Path):
    import face_alignment
    import face_alignment.api as api
    import face_alignment.detection.sfd.sfd_detector as sfd_mod

    from moee_bench.metrics.motion.fan_landmarks import FANLandmarks

    with pytest.warns(UserWarning, match="unverified"):
        ours = FANLandmarks(WeightsOptions(str(fan_weights), allow_unverified=True))
    fan_file, det_file = str(fan_weights / "2DFAN4-11f355bf06.pth.tar"), str(fan_weights / "s3fd-619a316812.pth")
    with mock.patch.object(api, "load_file_from_url", lambda url, *a, **k: fan_file), \
         mock.patch.object(sfd_mod, "load_state_dict_from_url", lambda url, *a, **k: torch.load(det_file, weights_only=True)):
        ref = face_alignment.FaceAlignment(face_alignment.LandmarksType.TWO_D, device="cpu", flip_input=False,
                                           compile=False)
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)
    box = np.array([60.0, 50.0, 190.0, 200.0, 0.99])
    got = ours(frame, [box])
    want = ref.get_landmarks_from_image(frame, detected_faces=[box])[0]
    assert got.shape == (68, 2)
    assert np.array_equal(got, np.asarray(want, np.float64)[:, :2])
    # the points lie in the crop face-alignment takes around the box (box centre +- ~1.1 box sizes)
    assert np.isfinite(got).all() and (np.abs(got - [125, 107]) < 200).all()


def test_akd_fan_option_missing_weights_names_the_file(tmp_path: Path):
    from moee_bench.metrics.motion.akd import AKD
    from moee_bench.metrics.core.registry import MetricOptions

    with pytest.raises(WeightsError, match="2DFAN4-11f355bf06.pth.tar"):
        AKD(MetricOptions(weights=WeightsOptions(str(tmp_path)), params={"akd_landmarks": "fan"}))
    with pytest.raises(ValueError, match="akd_landmarks"):
        AKD(MetricOptions(params={"akd_landmarks": "mediapipe"}))


def test_akd_fan_config_records_weights(fan_weights: Path):
    from moee_bench.metrics.motion.akd import AKD
    from moee_bench.metrics.core.registry import MetricOptions

    with pytest.warns(UserWarning):
        m = AKD(MetricOptions(weights=WeightsOptions(str(fan_weights), allow_unverified=True),
                              params={"akd_landmarks": "fan"}))
    cfg = m.config()
    assert "2DFAN-4" in cfg["landmarks"] and cfg["verified"] is False and set(cfg["weights_sha256"]) == {
        "fan_2d4", "s3fd_face_alignment"}
