"""The house (issue #25): a suite run loads its manifest and builds each method once; one file hasher; the store's
read interface is a declared Protocol that ResultStore satisfies."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from moee_bench.bench.cli.app import main
from moee_bench.bench.core import digest, manifest
from moee_bench.bench.suite import runner, spec
from moee_bench.tests.test_runner import _dataset, _suite


def test_a_run_loads_the_manifest_and_builds_each_method_once(tmp_path: Path, monkeypatch) -> None:
    loads, builds = [], []
    real_load, real_build = manifest.load_manifest, runner.build_method

    def load(path, *a, **k):
        loads.append(Path(path))
        return real_load(path, *a, **k)

    def build(name, config=None):
        builds.append(name)
        return real_build(name, config)

    for mod in (spec, runner):
        monkeypatch.setattr(mod, "load_manifest", load)
    monkeypatch.setattr(runner, "build_method", build)
    m = _dataset(tmp_path / "ds", 2)
    s = _suite(tmp_path / "s.toml", m, '[[methods]]\nname = "ground-truth"\n[[methods]]\nname = "static"\n')
    assert main(["run", "--suite", str(s), "--out", str(tmp_path / "out")]) == 0
    assert loads == [m]                                   # was twice: validate_suite, then prepare
    assert sorted(builds) == ["ground-truth", "static"]   # was twice each: the identity check, then generation


def test_one_file_hasher_gives_hashlib_digest(tmp_path: Path) -> None:
    f = tmp_path / "x.bin"
    data = np.random.default_rng(0).bytes(3 << 20)        # three read chunks
    f.write_bytes(data)
    want = hashlib.sha256(data).hexdigest()
    assert digest.sha256_file(f) == want and digest.file_digest(f) == want
    from moee_bench.bench.core import weights
    from moee_bench.metrics.core import evaluate

    assert weights.sha256_file is digest.sha256_file and not hasattr(evaluate, "file_hash")


def test_the_result_store_implements_the_reports_read_interface(tmp_path: Path) -> None:
    import inspect

    from moee_bench.bench.suite.store import ResultStore
    from moee_bench.reports.source import ResultSource

    declared = [n for n, v in vars(ResultSource).items() if inspect.isfunction(v) and not n.startswith("_")]
    assert len(declared) == 8
    with ResultStore(tmp_path / "s") as st:
        assert isinstance(st, ResultSource)
        for name in declared:
            want = list(inspect.signature(getattr(ResultSource, name)).parameters)
            assert list(inspect.signature(getattr(ResultStore, name)).parameters) == want, name
    # the reports call nothing else on a store, and never name the store's module
    import re

    reports = Path(__file__).resolve().parents[1] / "reports"
    called = set()
    for f in reports.glob("*.py"):
        text = f.read_text()
        assert "bench.suite.store" not in text, f.name
        called |= set(re.findall(r"\bstore\.([a-z_]+)\b", text)) - {"features"}
    assert called <= set(declared), called - set(declared)
