"""``moee-bench compare`` verdicts through the CLI on stores whose answer is known by construction.

Each new run is the base run plus a per-clip PSNR change whose range fixes the verdict whatever the
bootstrap draws: every interval of a mean lies between the smallest and the largest per-clip change."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from moee_bench.bench.cli import exitcodes
from moee_bench.bench.cli.app import main
from moee_bench.bench.suite.store import ResultStore


def _store(folder: Path, run_id: str, psnr: np.ndarray, *, identities: list[str] | None = None,
           meta: dict | None = None, method: str = "m") -> Path:
    st = ResultStore(folder)
    st.put_run(run_id, dataset="mead", split="test", meta=meta or {})
    for i, v in enumerate(psnr):
        info = {"n_frames": 50, **({"identity": identities[i]} if identities else {})}
        st.put_clip(run_id, method, f"c{i:02d}", values={"psnr": float(v)}, status={"psnr": "ok"}, info=info)
    st.close()
    return folder


def _ci(out: str) -> tuple[float, float, float]:
    m = re.search(r"\| ([+-]\d+\.\d+) \[([+-]\d+\.\d+), ([+-]\d+\.\d+)\] \|", out)
    assert m, out
    return float(m.group(1)), float(m.group(2)), float(m.group(3))


BASE = 24.0 + np.random.default_rng(0).normal(0, 1.0, 27)       # 27 clips, PSNR of noise-8 videos


@pytest.mark.parametrize("name,change,verdict,code", [
    # noise 8 -> 16: every clip loses 5.8 to 6.4 dB
    ("noise 8 -> 16", -6.1 + np.random.default_rng(1).uniform(-0.3, 0.3, 27), "❌ regressed", exitcodes.REGRESSION),
    # noise 8 -> 8, new seed: every clip within 0.2 dB either way
    ("noise 8 -> 8", np.random.default_rng(2).uniform(-0.2, 0.2, 27), "no significant change", exitcodes.OK),
    # noise 8 -> 4: every clip gains 5.8 to 6.4 dB
    ("noise 8 -> 4", 6.1 + np.random.default_rng(3).uniform(-0.3, 0.3, 27), "✅ improved", exitcodes.OK),
    # half the clips noise 4 (+6 dB), half noise 16 (-6 dB): the interval spans 0 (wrong on the old code: improved)
    ("half 4, half 16", np.where(np.arange(27) % 2 == 0, 6.1, -6.1), "no significant change", exitcodes.OK),
])
def test_four_rows_of_the_issue(tmp_path: Path, capsys, name, change, verdict, code):
    b = _store(tmp_path / "base", "base", BASE)
    n = _store(tmp_path / "new", "new", BASE + change)
    assert main(["compare", str(b), str(n), "--metrics", "psnr"]) == code
    out = capsys.readouterr().out
    row = next(ln for ln in out.splitlines() if ln.startswith("| `m` | PSNR"))
    assert row.rstrip(" |").endswith(verdict), row
    d, lo, hi = _ci(row)
    assert change.min() - 1e-9 <= lo <= d <= hi <= change.max() + 1e-9
    if name == "half 4, half 16":
        assert lo < 0 < hi


def test_threshold_needs_the_whole_interval_beyond_it(tmp_path: Path, capsys):
    """--threshold 0.5 with an interval like [-0.585, -0.017]: it reaches past -0.5 but does not lie beyond it."""
    rng = np.random.default_rng(5)
    change = np.clip(-0.3 + rng.normal(0, 0.75, 27), -1.6, 1.0)
    change += -0.3 - change.mean()                                # mean change exactly -0.3 dB, above -0.5
    b = _store(tmp_path / "base", "base", BASE)
    n = _store(tmp_path / "new", "new", BASE + change)
    assert main(["compare", str(b), str(n), "--threshold", "0.5"]) == exitcodes.OK
    row = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("| `m` | PSNR"))
    d, lo, hi = _ci(row)
    assert d == pytest.approx(-0.3, abs=1e-4) and lo < -0.5 < hi < 0     # the case of the issue
    assert row.rstrip(" |").endswith("no significant change"), row
    # without a threshold the same interval lies wholly below 0: a regression
    assert main(["compare", str(b), str(n)]) == exitcodes.REGRESSION
    # an improvement of the same shape is not "improved" beyond 0.5 either
    n2 = _store(tmp_path / "new2", "new2", BASE - change)
    assert main(["compare", str(b), str(n2), "--threshold", "0.5"]) == exitcodes.OK
    assert "improved" not in capsys.readouterr().out.split("| `m` | PSNR")[-1].splitlines()[0]
