"""Issue #27: the README is a test.

Every shell line of README.md that runs ``moee-bench`` (and every ``moee-bench`` line of the ``--help``
descriptions and epilogs) is

* parsed by the real argument parser: a flag the README uses and no parser wires fails here;
* either run, in README order, in one working folder where the README's placeholders exist as files made
  from a small synthetic dataset (``my_method/``, ``gt_videos/``, ``mead.json``, ``mead.toml``...), and its
  exit status checked against the README's exit-status table; or listed in :data:`NOT_RUN` with the reason.

A new README block is picked up automatically; a line that should not run here gets one entry in
:data:`NOT_RUN`. The README's command reference (every command's options) is compared with the parsers,
so an option wired but not documented fails too.
"""

from __future__ import annotations

import argparse
import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest

from moee_bench.bench.cli.app import build_parser, command_reference, command_tree, main
from moee_bench.bench.core import media
from moee_bench.bench.core.emotions import parse_emotion
from moee_bench.bench.core.manifest import ClipRecord, Manifest

README = Path(__file__).resolve().parents[1] / "README.md"

#: README lines that are not run here (first matching pattern wins), with the reason. One place for new blocks.
NOT_RUN: list[tuple[str, str]] = [
    (r"^\./install\.sh", "the installer: the tests run inside the installed environment; the acceptance check "
                         "follows these two lines on a fresh clone"),
    (r"^torchrun ", "several processes (torchrun); tests/test_runner.py covers the sharded runner"),
    (r"--device cuda", "needs a GPU"),
    (r"^moee-bench bench ", "benchmarks: minutes each, they time the reference chain beside ours and print ratios"),
    (r"^moee-bench train ", "training (about a minute per stage on a free CPU); tests/test_moee_train.py trains "
                            "scaled down"),
    (r"--method moee-ref", "needs the checkpoint the training lines make"),
    (r"--method sadtalker", "needs an external SadTalker checkout and its weights"),
    (r"^moee-bench data import mead ", "needs the MEAD dataset"),
    (r"^moee-bench run$", "the main job on the 27-clip built-in sample (about 2 minutes); the acceptance check runs "
                          "it, `run --suite` below runs the same path on the small dataset"),
    (r"^moee-bench throughput --method static$", "builds the 27-clip sample; the --manifest form below runs"),
]

#: placeholders (whole tokens) the README uses for things the reader supplies
PLACEHOLDERS = {"BASE_RUN": "moee_bench_runs/store", "NEW_RUN": "moee_bench_runs/store", "BASE": "moee_bench_runs",
                "NEW": "moee_bench_runs", "DIR": "export_out"}


def _shell_lines(text: str) -> list[str]:
    """Lines of ```bash blocks that run moee-bench (continuations joined, trailing comments dropped)."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if "moee-bench" in line or "moee_bench" in line:
                out.append(line)
    return out


def _epilog_lines() -> list[str]:
    """``moee-bench ...`` example lines of every parser's description and epilog."""
    out = []
    for parser in command_tree().values():
        for text in (parser.description, parser.epilog):
            for line in (text or "").splitlines():
                line = line.strip()
                if line.startswith("moee-bench "):
                    out.append(re.split(r"\s{2,}", line)[0])
    return out


def _why_not_run(line: str) -> str | None:
    return next((why for pat, why in NOT_RUN if re.search(pat, line)), None)


def _argv(line: str) -> list[str]:
    """The arguments after ``moee-bench`` (placeholders filled)."""
    words = shlex.split(line)
    start = next(i for i, w in enumerate(words) if w.endswith("moee-bench"))
    return [PLACEHOLDERS.get(w, w) for w in words[start + 1:]]


def _exit_codes() -> dict[int, str]:
    """The README's exit-status table: code -> meaning."""
    section = README.read_text().split("### Exit status", 1)[1].split("\n### ", 1)[0]
    return {int(m.group(1)): m.group(2) for m in re.finditer(r"^\| (\d+) \| (.*) \|$", section, re.M)}


LINES = _shell_lines(README.read_text())


def test_the_readme_has_command_lines_and_an_exit_table():
    assert len(LINES) >= 20 and {0, 1, 2, 3, 4, 130} <= set(_exit_codes())


@pytest.mark.parametrize("line", LINES + _epilog_lines())
def test_every_documented_command_line_is_wired(line: str):
    """Every README (and --help) moee-bench line parses: its command and flags exist (argparse exits 2 otherwise)."""
    if "moee-bench" not in line.split("#")[0] or line.startswith("torchrun"):
        pytest.skip("not a moee-bench command line")
    argv = _argv(line)
    if argv[:1] == ["bench"] and "|" in argv:          # `bench metrics | sync | cache | moee`: alternatives
        argv = argv[:2]
    try:
        build_parser().parse_args(argv)
    except SystemExit as e:
        pytest.fail(f"README line does not parse (exit {e.code}): {line}")


def test_every_flag_the_readme_names_is_wired():
    """A `--flag` named anywhere in the README (prose included) is an option of some command (or torchrun's)."""
    wired = {s for p in command_tree().values() for a in p._actions for s in a.option_strings}
    text = README.read_text().split("<!-- command-reference -->")[0] + README.read_text().split(
        "<!-- /command-reference -->")[1]
    named = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9_-]*[a-z0-9])", text))
    foreign = {"--nproc_per_node"}                                  # torchrun's
    assert named - wired - foreign == set()


def test_every_wired_option_is_documented():
    """The README's command reference is the parsers' (regenerate it with command_reference() when adding one)."""
    m = re.search(r"<!-- command-reference -->\n(.*?)\n<!-- /command-reference -->", README.read_text(), re.S)
    assert m and m.group(1) == command_reference()


# --- running the README ------------------------------------------------------------------------------------

def _make_placeholders(root: Path) -> None:
    """The files the README's lines name, made from a small synthetic dataset (5 identities, 10-frame clips)."""
    rng = np.random.default_rng(0)
    clips = []
    for i, emo in enumerate(("happy", "sad", "angry", "neutral", "surprised")):
        frames = rng.integers(0, 255, (10, 64, 64, 3), dtype=np.uint8)
        audio = (0.1 * rng.standard_normal(6400)).astype(np.float32)
        media.write_video(root / "data" / f"c{i}.mp4", [frames], 25.0, audio=audio)
        clips.append(ClipRecord(f"c{i}", f"p{i}", f"c{i}.mp4", parse_emotion(emo)))
    Manifest("readme", root / "data", clips).save(root / "mead.json")
    for folder in ("my_method", "gt_videos", "runs/test"):
        shutil.copytree(root / "data", root / folder)
    (root / "mead.toml").write_text('name = "readme"\ndataset = "mead.split.json"\nsplit = "test"\n'
                                    'metrics = ["psnr", "ssim"]\n[[methods]]\nname = "ground-truth"\n')


def test_readme_lines_run_with_the_documented_exit_status(tmp_path: Path, monkeypatch, capsys):
    """Every README line not in NOT_RUN runs (in README order, one working folder) and exits as documented:
    0 here, since nothing in the filled-in data fails (the exit table's "success")."""
    _make_placeholders(tmp_path)
    monkeypatch.chdir(tmp_path)
    codes = _exit_codes()
    ran, results = [], []
    # what a line reads must exist first: the data lines make mead.split.json, `run` makes the store that
    # report/compare/export read; otherwise README order
    first = (r"^moee-bench data ", r"^moee-bench run ")
    order = sorted(LINES, key=lambda ln: next((i for i, p in enumerate(first) if re.search(p, ln)), len(first)))
    for line in order:
        if _why_not_run(line):
            continue
        rc = main(_argv(line))
        out = capsys.readouterr()
        results.append((line, rc, out.err.strip().splitlines()[-1:] if rc else ""))
        ran.append(line)
    assert len(ran) >= 8, ran
    bad = [(line, rc, codes.get(rc, "not in the README's exit table"), err) for line, rc, err in results if rc != 0]
    assert not bad, bad
    assert (tmp_path / "moee_bench_runs" / "report" / "LEADERBOARD.md").is_file()
    assert not (tmp_path / "LEADERBOARD.md").exists()


def test_not_run_reasons_cover_only_readme_lines():
    """Each NOT_RUN entry still matches a README line (a stale entry hides nothing)."""
    lines = LINES + _epilog_lines()
    for pat, why in NOT_RUN:
        assert any(re.search(pat, line) for line in lines), (pat, why)
