"""Issue #27: every promise the documentation makes is executed.

Declared = accepted: each metric's ``PARAMS`` is the one list of keys and values; every declared value (each
choice, each bound) goes through ``score`` and is accepted, every undeclared key or value is refused with a
one-line error and exit 2, never a traceback; the README's parameter table is the declaration. One table of
clip statuses (``bench/core/statuses.py``) decides failures everywhere. Inputs nobody supplies are refused
before any video is decoded.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from moee_bench.bench.core import exitcodes
from moee_bench.bench.cli.app import main
from moee_bench.bench.core import media, statuses
from moee_bench.bench.core.emotions import parse_emotion
from moee_bench.bench.core.manifest import ClipRecord, Manifest
from moee_bench.metrics.core.registry import METRICS, metric_class

README = Path(__file__).resolve().parents[1] / "README.md"


def _block(marker: str) -> str:
    """The README text between ``<!-- marker... -->`` and ``<!-- /marker -->``."""
    m = re.search(rf"<!-- {marker}[^>]*-->\n(.*?)\n<!-- /{marker} -->", README.read_text(), re.S)
    assert m, f"README has no {marker} block"
    return m.group(1)


def _declared() -> list[tuple[str, str, Any]]:
    """(metric, key, value) for every declared value: each choice, both booleans, each bound, none where allowed."""
    out = []
    for name in METRICS:
        for key, p in metric_class(name).PARAMS.items():
            vals: list[Any] = list(p.choices) if p.choices is not None else []
            if p.kind is bool:
                vals = ["true", "false"]
            vals += [b for b in (p.minimum, p.maximum) if b is not None]
            if p.default is None:
                vals.append("none")
            if not vals:
                vals = [p.default]
            out += [(name, key, v if p.kind is not int or not isinstance(v, float) else int(v)) for v in vals]
    return out


def _undeclared() -> list[tuple[str, str, Any]]:
    """(metric, key, value) the declarations refuse: outside the choices, below/above a bound, the wrong type."""
    out = []
    for name in METRICS:
        for key, p in metric_class(name).PARAMS.items():
            if p.choices is not None:
                out.append((name, key, "not-a-choice"))
            if p.kind is bool:
                out.append((name, key, "maybe"))
            if p.kind in (int, float):
                out.append((name, key, "x"))
                if p.minimum is not None:
                    out.append((name, key, p.minimum - 1))
                if p.maximum is not None:
                    out.append((name, key, p.maximum + 1))
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory, reference_format_weights: Path) -> dict[str, Path]:
    """One 16-frame 64x64 clip with audio and a label, in a manifest; the same file as the generated video."""
    d = tmp_path_factory.mktemp("tiny")
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(16000 * 16 // 25)).astype(np.float32)
    media.write_video(d / "ds" / "c0.mp4", [rng.integers(0, 255, (16, 64, 64, 3), dtype=np.uint8)], 25.0, audio=audio)
    Manifest("tiny", d / "ds", [ClipRecord("c0", "p0", "c0.mp4", parse_emotion("happy"), split="test")]).save(
        d / "ds" / "m.json")
    (d / "pred").mkdir()
    shutil.copy(d / "ds" / "c0.mp4", d / "pred" / "c0.mp4")
    return {"dir": d, "manifest": d / "ds" / "m.json", "pred": d / "pred", "gt": d / "ds", "weights": reference_format_weights}


def _pins(wdir: Path) -> list[str]:
    """``--trust NAME=SHA256`` for every registry file the stand-in folder holds (random weights are pinned)."""
    from moee_bench.bench.core.weights import registry, sha256_file

    return [a for name, spec in registry().items() if (wdir / spec.file).is_file()
            for a in ("--trust", f"{name}={sha256_file(wdir / spec.file)}")]


def _score(tiny: dict[str, Path], metric: str, *extra: str) -> tuple[int, dict]:
    out = tiny["dir"] / f"{metric}.json"
    out.unlink(missing_ok=True)
    rc = main(["score", "--pred", str(tiny["pred"]), "--manifest", str(tiny["manifest"]), "--metrics", metric,
               "--weights-dir", str(tiny["weights"]), *_pins(tiny["weights"]), "--json", str(out), *extra])
    return rc, (json.loads(out.read_text()) if out.exists() else {})


# --- declared = accepted ----------------------------------------------------------------------------------

def test_readme_parameter_table_is_the_declaration():
    from moee_bench.bench.cli.commands.metrics import params_markdown

    assert _block("params-table") == params_markdown()
    # every key appears in the README's table, and every key the README's table names is declared
    readme_keys = set(re.findall(r"^\| `\w+` \| `(\w+)` \|", _block("params-table"), re.M))
    declared = {k for n in METRICS for k in metric_class(n).PARAMS}
    assert readme_keys == declared


def test_readme_fvd_words_are_declared_values():
    """The README's prose promises fvd_clips=first|windows and fvd_seed=N (before: 'all|first', no fvd_seed)."""
    text = README.read_text()
    p = metric_class("fvd").PARAMS
    for v in re.findall(r"fvd_clips=(\w+)", text):
        if v != "all":                    # named in the README only as refused
            assert v in p["fvd_clips"].choices, v
    assert "fvd_seed=N" in text and "fvd_seed" in p


def test_every_declared_value_is_accepted_and_read_through_the_declaration():
    """Fast part (the slow test below runs each through `score`): validation accepts every declared value and
    the constructors read their parameters only through the declaration (``Metric.param_value``)."""
    import inspect

    from moee_bench.metrics.core.registry import MetricOptions, check_params

    for metric, key, value in _declared():
        parsed = check_params([metric], {key: value})[key]
        assert metric_class(metric).param_value(MetricOptions(params={key: parsed}), key) == parsed
    for name in METRICS:
        src = inspect.getsource(metric_class(name).__init__)
        assert "options.param(" not in src and ".param(\"" not in src, name     # before: defaults written twice


@pytest.mark.slow
@pytest.mark.parametrize("metric, key, value", _declared(), ids=lambda x: str(x))
def test_every_declared_value_goes_through_score(tiny, capsys, metric: str, key: str, value: Any):
    rc, out = _score(tiny, metric, "--param", f"{key}={value}")
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert rc == exitcodes.OK, err
    assert metric in out["metrics"] or f"{metric}_reason" in out["metrics"] or any(
        k.startswith(metric.rstrip("d")) for k in out["metrics"]), out["metrics"]


@pytest.mark.parametrize("metric, key, value", _undeclared() + [("psnr", "psnr_nokey", "1"), ("fvd", "fvd_clips", "all")],
                         ids=lambda x: str(x))
def test_undeclared_values_and_keys_are_one_line_refusals(tiny, capsys, metric: str, key: str, value: Any):
    rc, out = _score(tiny, metric, "--param", f"{key}={value}")
    err = capsys.readouterr().err.strip()
    assert rc == exitcodes.USAGE and not out
    assert "Traceback" not in err and len(err.splitlines()) == 1 and key in err, err
    if value == "all":
        assert "fvd_clips=windows" in err


def test_fvd_clips_windows_and_seed_reach_the_metric(tiny):
    """The README's fvd_clips=windows and fvd_seed=N (refused before) are accepted and named in the output."""
    rc, out = _score(tiny, "fvd", "--param", "fvd_clips=windows", "--param", "fvd_seed=3")
    assert rc == 0 and out["metrics"]["fvd_clip_rule"] == "windows"
    rc, out = _score(tiny, "fvd", "--param", "fvd_seed=3")
    assert rc == 0 and '"seed": 3' in json.dumps(out["protocol"]["metrics"]["fvd"])


def test_metrics_listing_shows_the_declared_choices(capsys):
    assert main(["metrics"]) == 0
    text = capsys.readouterr().out
    assert "fvd_clips=styleganv (styleganv|first|windows)" in text and "fvd_seed=0" in text


# --- one table of statuses ---------------------------------------------------------------------------------

def test_readme_status_table_is_the_one_table():
    assert _block("status-table") == statuses.markdown_table()
    assert exitcodes.is_failure is statuses.is_failure
    for s in ("no_label", "missing", "outside_taxonomy", "skipped", "no_face", "unavailable"):
        assert not exitcodes.is_failure(s), s          # before: exitcodes called no_label/missing failures
    assert exitcodes.is_failure("error") and exitcodes.is_failure("a-status-nobody-declared")


def test_no_other_list_of_benign_statuses():
    root = README.parent
    for f in root.rglob("*.py"):
        if ".venv" in f.parts or f.parent.name == "tests":
            continue
        text = f.read_text()
        assert "BENIGN_STATUSES" not in text and '"ok", "unavailable", "missing"' not in text, f


# --- refuse early ----------------------------------------------------------------------------------------

@pytest.fixture
def count_decodes(monkeypatch):
    """How many times a media file is opened (probe or decode)."""
    calls = []
    real = media._open

    def counting(path, clip_id):
        calls.append(path)
        return real(path, clip_id)

    monkeypatch.setattr(media, "_open", counting)
    return calls


def test_labels_nobody_gives_are_refused_before_decoding(tiny, capsys, count_decodes):
    out = tiny["dir"] / "nolabel.json"
    argv = ["score", "--pred", str(tiny["pred"]), "--gt", str(tiny["gt"]), "--json", str(out)]
    rc = main(argv + ["--metrics", "psnr,ssim,akd,emotion"])
    err = capsys.readouterr().err
    assert rc == exitcodes.USAGE and not out.exists() and count_decodes == []
    assert "emotion needs a target emotion" in err and "moee-bench data import folder" in err
    assert main(argv + ["--metrics", "psnr"]) == exitcodes.OK and json.loads(out.read_text())["metrics"]["psnr"] > 0


@pytest.mark.parametrize("metrics, says", [("psnr", "psnr needs ground-truth videos"),
                                           ("csim", "csim needs a reference image")])
def test_gt_or_reference_nobody_gives_is_refused(tiny, capsys, count_decodes, metrics: str, says: str):
    rc = main(["score", "--pred", str(tiny["pred"]), "--metrics", metrics, "--json", str(tiny["dir"] / "x.json")])
    assert rc == exitcodes.USAGE and says in capsys.readouterr().err and count_decodes == []


def test_weights_missing_offline_are_decided_before_any_decode(tiny, tmp_path, capsys, count_decodes):
    """Metrics whose weights are absent are 'not computed' with the file to fetch, and no video is opened for them."""
    out = tmp_path / "w.json"
    rc = main(["score", "--pred", str(tiny["pred"]), "--gt", str(tiny["gt"]), "--metrics", "lpips,fid,fvd,csim",
               "--weights-dir", str(tmp_path), "--json", str(out)])
    doc = json.loads(out.read_text())
    assert rc == exitcodes.OK and count_decodes == []
    for m in ("lpips", "fid", "fvd", "csim"):
        assert doc["metrics"][m] is None and "put " in doc["metrics"][f"{m}_reason"], doc["metrics"]


# --- the protocol names the code's own resize kernel --------------------------------------------------------

def test_decode_protocol_names_the_kernel_the_code_uses():
    import cv2

    from moee_bench.metrics.core.evaluate import DECODE

    names = re.findall(r"cv2\.(INTER_\w+)", DECODE)
    assert len(names) == 1, DECODE                     # before: "swscale bicubic", a kernel the code does not use
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (2, 40, 30, 3), dtype=np.uint8)
    for size in ((20, 15), (64, 48)):
        want = np.stack([cv2.resize(f, size[::-1], interpolation=getattr(cv2, names[0])) for f in frames])
        assert np.array_equal(media.resize_frames(frames, size), want)


# --- reports keep their legend's promises -------------------------------------------------------------------

@pytest.fixture
def small_store(tmp_path: Path):
    """A run asking for psnr, akd, emotion and lpips: lpips not computed here, emotion over 3 of the 5 clips."""
    from moee_bench.bench.suite.store import ResultStore

    st = ResultStore(tmp_path / "store")
    st.put_run("r1", suite_hash="abc", dataset="demo", split="test",
               meta={"dataset_name": "demo", "suite": {"metrics": ["psnr", "akd", "emotion", "lpips"]},
                     "metrics_unavailable": {"lpips": "WeightsError: put alexnet.pth at /w (from URL)"}})
    for method, base in (("a", 30.0), ("b", 25.0)):
        for i in range(5):
            vals = {"psnr": base + i, "psnr_nframes": 10, "akd": 2.0}
            status = {"psnr": "ok", "akd": "ok", "emotion": "ok" if i < 3 else "no_label", "lpips": "unavailable"}
            if i < 3:
                vals["emotion_acc"] = 1.0 if i < 2 else 0.0
            st.put_clip("r1", method, f"c{i}", values=vals, status=status, info={"n_frames": 10})
        st.put_aggregates("r1", method, {"psnr": base + 2, "akd": 2.0, "emotion_acc": 2 / 3, "lpips": None,
                                         "n_clips": 5, "n_missing": 0})
    yield st
    st.close()


def _tables_in_source(md: str) -> int:
    """Blocks of consecutive source lines starting with '|' (each meant as one table)."""
    n, inside = 0, False
    for line in md.splitlines():
        is_row = line.lstrip().startswith("|")
        n += is_row and not inside
        inside = is_row
    return n


def _rendered_tables(md: str) -> list[list[int]]:
    """Per table markdown-it renders: the cell count of each row."""
    from markdown_it import MarkdownIt

    tables, rows, cells = [], [], 0
    for tok in MarkdownIt("commonmark").enable("table").parse(md):
        if tok.type == "table_open":
            rows = []
        elif tok.type == "tr_open":
            cells = 0
        elif tok.type in ("th_open", "td_open"):
            cells += 1
        elif tok.type == "tr_close":
            rows.append(cells)
        elif tok.type == "table_close":
            tables.append(rows)
    return tables


def test_every_generated_markdown_file_renders_as_tables(small_store, tmp_path):
    """Before: PAPER_TABLES.md's header rows had 13 cells and separators 5, so no table rendered."""
    from moee_bench.reports.build import write_reports

    paths = write_reports(small_store, tmp_path / "rep", None)
    mds = [p for p in paths.values() if Path(p).suffix == ".md"]
    assert {Path(p).name for p in mds} >= {"LEADERBOARD.md", "PAPER_TABLES.md"}
    for p in mds:
        md = Path(p).read_text()
        rendered = _rendered_tables(md)
        assert len(rendered) == _tables_in_source(md) > 0, p
        for rows in rendered:
            assert len(set(rows)) == 1, (p, rows)      # header, separator and body rows have as many cells


def test_leaderboard_keeps_asked_columns_and_gives_n_per_metric(small_store):
    """Before: a metric not computed lost its column; N said 5 where Emo-Acc is over 3 clips."""
    from moee_bench.reports.leaderboard import render_markdown

    md = render_markdown(small_store)
    table = [line for line in md.splitlines() if line.startswith("| ")]
    header = [c.strip() for c in table[0].strip("|").split("|")]
    a = [c.strip() for c in next(line for line in table if line.startswith("| `a`")).strip("|").split("|")]
    col = {h.split(" ")[0]: i for i, h in enumerate(header)}
    assert a[col["LPIPS"]] == "—" and "LPIPS — not computed: WeightsError: put alexnet.pth" in md
    assert a[col["N"]] == "5" and a[col["Emo-Acc"]].endswith("(N=3)") and "(N=" not in a[col["PSNR"]]
    assert "PSNR (dB) ↑" in header and "AKD (px at 256²) ↓" in header


def test_report_without_arguments_writes_into_the_output_folder(small_store, tmp_path, monkeypatch, capsys):
    """Before: `moee-bench report` also wrote ./LEADERBOARD.md (the tracked file in a checkout) without saying so."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(["report", "--store", str(small_store.folder)]) == exitcodes.OK
    out = capsys.readouterr().out
    assert not (work / "LEADERBOARD.md").exists()
    written = re.findall(r"^  \w+: (.+)$", out, re.M)
    assert len(written) >= 6 and all((work / w).is_file() or Path(w).is_file() for w in written)
    assert all(Path(w).resolve().is_relative_to(work / "moee_bench_runs" / "report") for w in written)


def test_headline_chart_titles_are_readable_at_the_html_width(small_store):
    """Before: 16 panels in one row at 7 pt, shown in a 1200 px column: titles ~3-6 px high."""
    import re as _re

    from moee_bench.reports import html as report_html
    from moee_bench.reports import plots
    from moee_bench.reports.leaderboard import HEADLINE, method_table

    t = method_table(small_store, "r1")
    for k in HEADLINE:                          # every headline column present: the widest chart
        if k not in t.columns:
            t[k] = [1.0] * len(t)
    fig = plots.headline_bars(t, HEADLINE)
    width_px = float(_re.search(r"max-width:(\d+)px", report_html.CSS).group(1))
    scale = min(1.0, width_px / (fig.get_figwidth() * 100))          # _png saves at 100 dpi, img max-width 100%
    sizes = [ax.title.get_fontsize() * 100 / 72 * scale for ax in fig.axes if ax.get_visible()]
    assert sizes and min(sizes) >= 10, sizes


# --- a quiet, informative console -------------------------------------------------------------------------

def test_no_tflite_banner_when_the_fer_classifier_runs(capfd):
    """Before: LiteRT's C++ 'Created TensorFlow Lite XNNPACK delegate for CPU.' line on every first run."""
    from moee_bench.metrics.emotion.classifiers import FER2013Tflite

    clf = FER2013Tflite()
    p = clf.predict(np.zeros((2, clf.input_size, clf.input_size, 3), np.uint8))
    assert p.shape == (2, len(clf.classes))
    err = capfd.readouterr().err
    assert "TensorFlow Lite" not in err and "XNNPACK" not in err, err


def test_a_resumed_run_says_what_it_reused(tmp_path, capsys):
    """Before: the second run printed 'scoring ground-truth: 1 clips' as if it scored anew."""
    rng = np.random.default_rng(1)
    media.write_video(tmp_path / "ds" / "c0.mp4", [rng.integers(0, 255, (10, 64, 64, 3), dtype=np.uint8)], 25.0)
    man = Manifest("tiny", tmp_path / "ds", [ClipRecord("c0", "id0", "c0.mp4", parse_emotion("happy"), split="test")])
    man.save(tmp_path / "ds" / "manifest.json")
    suite = tmp_path / "s.toml"
    suite.write_text(f'name = "t"\ndataset = "{tmp_path / "ds" / "manifest.json"}"\nsplit = "test"\n'
                     'metrics = ["psnr"]\n[[methods]]\nname = "ground-truth"\n')
    base = ["run", "--suite", str(suite), "--out", str(tmp_path / "out"), "--no-report"]
    assert main(base) == 0
    first = capsys.readouterr()
    assert "0 clips read entirely from the feature cache (not decoded), 1 extracted" in first.out
    assert main(base) == 0
    second = capsys.readouterr()
    assert "1 videos reused from an earlier run, 1 clips read entirely from the feature cache" in second.out
    assert not re.search(r"^\s*\S+: \d+ frames$", first.out + first.err + second.out + second.err, re.M)


def test_install_builds_without_warnings_from_our_pyproject(tmp_path):
    """Before: the license table and the data folders missing from `packages` gave setuptools warnings."""
    import subprocess
    import sys

    src = tmp_path / "src"                 # a copy: the build leaves build/ and *.egg-info beside the sources
    shutil.copytree(README.parent, src, ignore=shutil.ignore_patterns(
        ".git", "build", "dist", "*.egg-info", "__pycache__", ".venv", "moee_bench_runs", "runs", "sample_data"))
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w",
                        str(tmp_path / "whl"), str(src)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Warning" not in r.stdout + r.stderr, (r.stdout + r.stderr)[-3000:]


@pytest.mark.slow
def test_building_the_sample_prints_no_line_per_clip(tmp_path, capfd):
    """Before: 27 `  clip: N frames` lines on the first run; now one progress bar (stderr) and one summary line."""
    from moee_bench.bench.suite.sample import make_sample

    make_sample(tmp_path / "s", verbose=True)
    cap = capfd.readouterr()
    assert not re.search(r"^\s*\S+: \d+ frames\s*$", cap.out + cap.err, re.M)
    assert len(cap.out.strip().splitlines()) == 1 and "sample dataset: 27 clips" in cap.out
