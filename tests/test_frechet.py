"""The headline Fréchet distance (issue 30, point 1): FID and StyleGAN-V FVD take ``tr sqrt(S1 S2)`` by symmetric
eigendecomposition (``eigh``), judged against pytorch-fid's / StyleGAN-V's ``sqrtm`` functions on full-rank
covariances and against an extended-precision value on rank-deficient ones; the method is named in the
protocol and the reference function is one parameter away."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from moee_bench.bench.core import exitcodes
from moee_bench.bench.cli.app import main
from moee_bench.bench.core import media
from moee_bench.bench.perf.frechet_accuracy import extended_reference
from moee_bench.bench.perf.frechet_accuracy import features as _features
from moee_bench.metrics.core.frechet import FRECHET_METHODS, frechet_distance, frechet_distance_eigh, psd_factor


def _moments(x: np.ndarray, ddof: int) -> tuple[np.ndarray, np.ndarray]:
    return x.mean(0), np.cov(x, rowvar=False, ddof=ddof)


def test_extended_reference_equals_a_40_digit_computation():
    """The reference itself, against mpmath at 40 digits (covariances, eigen-square-roots) on a small case."""
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 40
    x, y = _features(1, 8, 12), _features(2, 8, 12, shift=0.05)

    def mean_cov(a: np.ndarray):
        m = mp.matrix(a.tolist())
        mu = [mp.fsum(m[i, j] for i in range(m.rows)) / m.rows for j in range(m.cols)]
        c = mp.matrix(m.cols, m.cols)
        for p in range(m.cols):
            for q in range(m.cols):
                c[p, q] = mp.fsum((m[i, p] - mu[p]) * (m[i, q] - mu[q]) for i in range(m.rows)) / (m.rows - 1)
        return mu, c

    (m1, c1), (m2, c2) = mean_cov(x), mean_cov(y)
    w, v = mp.eigsy(c1)
    r = v * mp.diag([mp.sqrt(max(e, 0)) for e in w]) * v.T
    w2, _ = mp.eigsy(r * c2 * r)
    exact = (mp.fsum((a - b) ** 2 for a, b in zip(m1, m2)) + mp.fsum(c1[i, i] + c2[i, i] for i in range(c1.rows))
             - 2 * mp.fsum(mp.sqrt(max(e, 0)) for e in w2))
    assert extended_reference(x, y, 1) == pytest.approx(float(exact), rel=1e-13)


def test_eigh_equals_pytorch_fid_on_well_conditioned_features():
    from pytorch_fid.fid_score import calculate_frechet_distance

    x, y = _features(1, 1500, 96), _features(2, 1500, 96, shift=0.05)
    args = (*_moments(x, 1), *_moments(y, 1))
    ref = calculate_frechet_distance(*args)
    assert frechet_distance(*args, method="eigh") == pytest.approx(ref, rel=1e-6)
    assert frechet_distance(*args, method="pytorch-fid") == ref
    assert frechet_distance(*args) == ref                      # no method named: pytorch-fid's (FLMD keeps its numbers)


@pytest.mark.parametrize("d, n, ddof, reference", [
    (256, 100, 1, "pytorch-fid"),       # FID-like, N < dims: pytorch-fid's sqrtm of a singular product
    (400, 50, 0, "sqrtm-product"),      # StyleGAN-V FVD (400-d I3D, biased covariance), few clips
    (400, 200, 0, "sqrtm-product"),
])
def test_eigh_is_at_least_as_accurate_as_sqrtm_on_rank_deficient_covariances(d, n, ddof, reference):
    x, y = _features(1, n, d), _features(2, n, d, shift=0.05)
    args = (*_moments(x, ddof), *_moments(y, ddof))
    exact = extended_reference(x, y, ddof)
    err = {m: abs(frechet_distance(*args, method=m) - exact) / exact for m in ("eigh", reference)}
    assert err["eigh"] <= max(err[reference], 1e-12), err
    assert err["eigh"] < 1e-6, err


@pytest.mark.parametrize("d, n, ddof, dead", [
    (256, 100, 1, 0),      # rank-deficient: the former R = sqrt(S1) form was off by ~5e-8 here
    (400, 50, 0, 0),
    (300, 900, 1, 40),     # full rank but for 40 dead (constant) units, as a ReLU network's pool features have
    (300, 120, 1, 40),
])
def test_eigh_is_within_1e_11_of_extended_precision(d, n, ddof, dead):
    """The pivoted-Cholesky + eigenvalues form stops at the numerical rank, so it takes no square root of rounding
    noise: within 1e-11 of the extended-precision value, rank-deficient covariances included."""
    x, y = _features(1, n, d), _features(2, n, d, shift=0.05)
    x[:, :dead], y[:, :dead] = 0.3, 0.3
    exact = extended_reference(x, y, ddof)
    got = frechet_distance(*_moments(x, ddof), *_moments(y, ddof), method="eigh")
    assert abs(got - exact) / exact < 1e-11


def test_psd_factor_stops_at_the_rank_and_refuses_non_finite_covariances():
    x = _features(3, 30, 64)
    s = np.cov(x, rowvar=False)
    f = psd_factor(s)
    assert f.shape == (64, 29)                              # N - 1 = 29: the rank of a 30-sample covariance
    np.testing.assert_allclose(f @ f.T, s, rtol=0, atol=1e-12 * np.abs(s).max())
    s[3, 3] = np.nan                                        # LAPACK's dpstrf would report rank 0 for it
    with pytest.raises(np.linalg.LinAlgError, match="non-finite"):
        frechet_distance_eigh(x.mean(0), s, x.mean(0), np.eye(64))
    with pytest.raises(np.linalg.LinAlgError, match="non-finite"):
        frechet_distance_eigh(x.mean(0), np.eye(64), x.mean(0), s)


def test_unknown_method_is_refused():
    x = _features(1, 20, 4)
    with pytest.raises(ValueError, match="unknown Fréchet method 'svd'.*eigh"):
        frechet_distance(*_moments(x, 1), *_moments(x, 1), method="svd")
    assert set(FRECHET_METHODS) == {"eigh", "pytorch-fid", "sqrtm-product"}
    assert frechet_distance_eigh(*_moments(x, 1), *_moments(x, 1)) == pytest.approx(0.0, abs=1e-10)


def test_fvd_default_and_reference_distances():
    from moee_bench.metrics.visual.fvd import DEFAULT_FRECHET, FRECHET, frechet_styleganv

    x, y = _features(1, 600, 64), _features(2, 600, 64, shift=0.05)
    args = (*_moments(x, 0), *_moments(y, 0))
    assert DEFAULT_FRECHET == {"styleganv": "eigh", "videogpt": "tfgan-svd"}
    assert FRECHET["eigh"][0](*args) == pytest.approx(frechet_styleganv(*args), rel=1e-9)
    assert FRECHET["eigh"][0](*args) == pytest.approx(extended_reference(x, y, 0), rel=1e-12)


# ------------------------------------------------------------------------------- the path users run
@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("fr")
    rng = np.random.default_rng(0)
    for i in range(2):
        g = rng.integers(0, 255, (6, 48, 48, 3), dtype=np.uint8)
        p = np.clip(g.astype(int) + rng.integers(-40, 40, g.shape), 0, 255).astype(np.uint8)
        media.write_video(d / "gt" / f"c{i}.mp4", [g], 25.0)
        media.write_video(d / "pred" / f"c{i}.mp4", [p], 25.0)
    return d / "pred", d / "gt"


def _score_fid(folders, weights: Path, out: Path, *extra: str) -> dict:
    rc = main(["score", "--pred", str(folders[0]), "--gt", str(folders[1]), "--metrics", "fid", "--json", str(out),
               "--weights-dir", str(weights), "--allow-unverified-weights", *extra])
    assert rc == exitcodes.OK
    return json.loads(out.read_text())


@pytest.mark.slow
def test_score_names_the_method_and_the_reference_is_one_parameter_away(folders, reference_format_weights, tmp_path):
    """``score`` with the default (eigh) and with ``--param fid_frechet=pytorch-fid`` (scipy sqrtm at 2048 dims:
    tens of seconds on 2 cores, hence slow): the protocol names each method and the values agree."""
    fast = _score_fid(folders, reference_format_weights, tmp_path / "a.json")
    ref = _score_fid(folders, reference_format_weights, tmp_path / "b.json", "--param", "fid_frechet=pytorch-fid")
    assert fast["protocol"]["metrics"]["fid"]["frechet"].startswith("eigh")
    assert ref["protocol"]["metrics"]["fid"]["frechet"].startswith("pytorch-fid")
    assert fast["metrics"]["fid"] == pytest.approx(ref["metrics"]["fid"], rel=1e-6)


def test_score_refuses_an_unknown_frechet_method(folders, reference_format_weights, tmp_path, capsys):
    rc = main(["score", "--pred", str(folders[0]), "--gt", str(folders[1]), "--metrics", "fid", "--json",
               str(tmp_path / "x.json"), "--weights-dir", str(reference_format_weights), "--allow-unverified-weights",
               "--param", "fid_frechet=sqrtm"])
    assert rc == exitcodes.USAGE and "fid_frechet" in capsys.readouterr().err
