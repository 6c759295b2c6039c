"""The project installs under one namespace: nothing collides with other distributions' top-level
``bench``/``metrics``/``reports``/``baselines`` packages or with folders in the user's working directory."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path


import moee_bench

ROOT = Path(moee_bench.__file__).resolve().parent


def test_pyproject_lists_every_package_folder() -> None:
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert cfg["package-dir"] == {"moee_bench": "."}
    on_disk = {"moee_bench"} | {
        "moee_bench." + ".".join(p.parent.relative_to(ROOT).parts)
        for p in ROOT.glob("*/**/__init__.py")
        if p.parent.relative_to(ROOT).parts[0] in ("bench", "metrics", "baselines", "moee_ref", "reports")}
    data_only = set(cfg["package-data"])          # folders of data files without __init__.py, declared as packages
    assert all(not (ROOT / Path(*d.split(".")[1:]) / "__init__.py").exists() for d in data_only)
    assert set(cfg["packages"]) == on_disk | data_only


def test_a_metrics_folder_in_the_working_directory_does_not_shadow_ours(tmp_path: Path) -> None:
    for name in ("metrics", "bench", "reports"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("raise ImportError('the user\\'s own package was imported')\n")
    r = subprocess.run([sys.executable, "-m", "moee_bench", "--version"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-c", "import moee_bench.metrics.core.registry as r, metrics"], cwd=tmp_path,
                       capture_output=True, text=True)
    assert "the user's own package was imported" in r.stderr   # theirs is still theirs


def test_wheel_installs_beside_a_distribution_named_metrics(tmp_path: Path) -> None:
    """``pip install`` of the project and of a package named ``metrics`` into one fresh venv leaves both intact."""
    wheels, src = tmp_path / "wheels", tmp_path / "src"
    # build from a copy: setuptools leaves build/ and *.egg-info beside the sources it builds
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__",
                                                               "moee_bench_runs", "runs", "sample_data"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels),
                    str(src)], check=True)
    other = tmp_path / "other"
    (other / "metrics").mkdir(parents=True)
    (other / "metrics" / "__init__.py").write_text("WHO = 'the other metrics'\n")
    (other / "pyproject.toml").write_text('[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
                                          '[project]\nname = "metrics"\nversion = "9.9"\n'
                                          '[tool.setuptools]\npackages = ["metrics"]\n')
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels),
                    str(other)], check=True)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", *map(str, wheels.glob("*.whl"))],
                   check=True)
    code = ("import metrics, moee_bench, pathlib; "
            "site = pathlib.Path(moee_bench.__file__).parent.parent; "
            "assert metrics.WHO == 'the other metrics'; "
            "assert (site / 'moee_bench' / 'metrics' / 'core' / 'base.py').is_file(); "
            "assert not (site / 'bench').exists() and not (site / 'reports').exists(); "
            "print(moee_bench.__version__)")
    r = subprocess.run([str(py), "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
