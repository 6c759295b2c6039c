"""Report sections of issue #20: new leaderboard columns with directions and CIs, the landmark-dynamics table,
Sync/emotion breakdowns by target emotion and intensity, and the intensity response (hand-computed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from moee_bench.bench.suite.store import ResultStore
from moee_bench.metrics.core.keys import DYNAMICS_LABELS

EMOS = ("happiness", "sadness")


@pytest.fixture
def store(tmp_path: Path) -> ResultStore:
    st = ResultStore(tmp_path / "store")
    st.put_run("r1", dataset="mead", split="test", meta={"dataset_name": "mead"})
    rng = np.random.default_rng(0)
    for method, gain in (("ground-truth", 1.0), ("m", 0.5)):
        clip = 0
        for emo in EMOS:
            for level in (1, 2, 3):
                for rep in range(2):
                    vals = {"sync_c": 5.0 + (1.0 if emo == "happiness" else 0.0) + 0.1 * rep,
                            "emotion_acc": float(level >= 2 or method == "ground-truth"),
                            "emotion_target_prob": gain * level / 3 + 0.01 * rep}
                    for k in DYNAMICS_LABELS:
                        vals[k] = 1.0 + gain * 0.1 * rep + rng.normal(0, 0.01)
                        vals[f"{k}_gt"] = 1.0 + 0.1 * rep
                    st.put_clip("r1", method, f"c{clip}", values=vals, status={"sync": "ok", "emotion": "ok", "dynamics": "ok"},
                                info={"emotion": emo, "intensity": level, "n_frames": 50})
                    clip += 1
        st.put_aggregates("r1", method, {"sync_c": 5.5, "emotion_acc": 0.8, "kid": 0.0123, "kid_se": 0.001,
                                         "dynamics_score": 0.97, "n_clips": clip})
    return st


def test_leaderboard_shows_new_columns_with_directions_and_cis(store):
    from moee_bench.reports.leaderboard import method_table, render_markdown

    md = render_markdown(store)
    assert "KID ↓" in md and "Dyn-Score ↑" in md
    assert "0.0123 [0.0103, 0.0143]" in md                        # KID +- 1.96 SE
    t = method_table(store, "r1").set_index("method")
    lo, hi = t.loc["m", "dynamics_score_ci"]
    assert lo < hi and np.isfinite(lo)
    assert "### Landmark dynamics" in md and "Lip dyn. ≈GT" in md and "Lip dyn. close ↑" in md
    assert "### Sync-C ↑ by target emotion" in md and "### Emo-Acc ↑ by target intensity" in md


def test_breakdown_means_and_intensity_response_hand_computed(store):
    from moee_bench.reports.breakdown import breakdown, closeness_of_means, intensity_response

    clips = store.clip_table("r1")
    t = breakdown(clips, "sync_c", "emotion").set_index("method")
    assert t.loc["m", "happiness"].startswith("6.050") and t.loc["m", "sadness"].startswith("5.050")
    per_level, rho = intensity_response(clips)
    pl = per_level.set_index(["method", "level"])
    assert pl.loc[("m", 1), "emotion_acc"].startswith("0.000") and pl.loc[("m", 3), "emotion_acc"].startswith("1.000")
    # target prob 0.5 * level / 3 + 0.01 * rep: level 2 mean = 1/3 + 0.005
    assert pl.loc[("m", 2), "target_prob"].startswith(f"{1 / 3 + 0.005:.3f}")
    r = rho.set_index(["method", "emotion"])
    # within one emotion the prob rises with the level (ties within a level broken by rep): rho from scipy
    from scipy.stats import spearmanr

    exp = spearmanr([1, 1, 2, 2, 3, 3], [0.5 / 3, 0.5 / 3 + 0.01, 1 / 3, 1 / 3 + 0.01, 0.5, 0.51]).statistic
    assert r.loc[("m", "happiness"), "spearman_rho"] == pytest.approx(exp)
    assert closeness_of_means(np.array([1.2, 1.2]), np.array([1.0, 1.0])) == pytest.approx(0.8)


def test_html_report_has_the_new_sections(store, tmp_path):
    from moee_bench.reports.html import render_html

    h = render_html(store)
    assert "id=\"dynamics\"" in h and "id=\"intensity-response\"" in h and "KID ↓" in h and "≈GT" in h
