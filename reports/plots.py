"""Matplotlib figures for the HTML report (Agg backend), each returned as a figure or None when the
store has nothing to show for it. Every figure states its N (clips per bar, cell or method) and how its
interval was made (or that it shows none)."""

from __future__ import annotations

import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from moee_bench.bench.core.emotions import ALL_SINGLE  # noqa: E402
from moee_bench.metrics.emotion.metric import HEADLINE_COMPOUND  # noqa: E402
from moee_bench.metrics.core.keys import KEYS  # noqa: E402
from moee_bench.reports.bootstrap import mean_ci, percentile_ci_method  # noqa: E402


HEADLINE_COLUMNS = 4      # panels per row of the headline charts
TITLE_PT = 10             # their titles' font size (points)


def headline_bars(t: pd.DataFrame, headline: list[str]):
    """One bar chart per headline metric of a :func:`reports.leaderboard.method_table`: value per method with its
    CI (the method named in each title) and N clips scored under each bar."""
    keys = [k for k in headline if k in t.columns and t[k].notna().any()]
    if not keys:
        return None
    # at most 4 panels a row, so that the HTML report (1200 px wide) shows the titles at >= 10 px
    ncols = min(HEADLINE_COLUMNS, len(keys))
    nrows = -(-len(keys) // ncols)
    # rotated method names take height: constrained layout makes room (tight_layout warned and clipped them)
    longest = max((len(str(m)) for m in t["method"]), default=0)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, (3.0 + 0.06 * longest) * nrows), squeeze=False,
                             layout="constrained")
    for ax in axes.flat[len(keys):]:
        ax.set_visible(False)
    for ax, k in zip(axes.flat, keys):
        vals = t[k].to_numpy(dtype=float)
        err = None
        if f"{k}_ci" in t.columns:
            lo = np.array([c[0] if isinstance(c, tuple) else np.nan for c in t[f"{k}_ci"]])
            hi = np.array([c[1] if isinstance(c, tuple) else np.nan for c in t[f"{k}_ci"]])
            err = np.nan_to_num(np.vstack([vals - lo, hi - vals]), nan=0.0).clip(min=0)
        ax.bar(range(len(vals)), np.nan_to_num(vals), yerr=err, color="#4C72B0", capsize=4)
        ns = t[f"{k}_n"] if f"{k}_n" in t.columns else t["n_clips"]
        ax.set_xticks(range(len(vals)), [f"{m}\nN={int(n)}" if pd.notna(n) else m for m, n in zip(t["method"], ns)],
                      rotation=30, ha="right")
        how = {str(x) for x in t[f"{k}_ci_method"].dropna()} if f"{k}_ci_method" in t.columns else set()
        ax.set_title(f"{KEYS[k].label} {KEYS[k].arrow}\n" + textwrap.fill(f"CI: {'; '.join(sorted(how)) or 'none'}", 36),
                     fontsize=TITLE_PT)
    return fig


def emotion_heatmap(clips: pd.DataFrame):
    """Methods x target emotion: single-emotion accuracy."""
    if clips.empty or "emotion_acc" not in clips.columns:
        return None
    scored = clips.dropna(subset=["emotion_acc"])
    t = scored.pivot_table(index="method", columns="emotion", values="emotion_acc", aggfunc="mean")
    if t.empty:
        return None
    t = t[[e for e in ALL_SINGLE if e in t.columns]]
    n = scored.pivot_table(index="method", columns="emotion", values="emotion_acc", aggfunc="count").reindex_like(t)
    fig, ax = plt.subplots(figsize=(1.1 * len(t.columns) + 2, 0.5 * len(t) + 1.7))
    im = ax.imshow(t.to_numpy(float), vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(t.columns)), t.columns, rotation=30, ha="right")
    ax.set_yticks(range(len(t)), [f"{m} (N={int(n.loc[m].sum())})" for m in t.index])
    for (i, j), v in np.ndenumerate(t.to_numpy(float)):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.2f}\nn={int(n.iat[i, j])}", ha="center", va="center", color="white" if v < 0.6 else "black",
                    fontsize=8)
    fig.colorbar(im, ax=ax, label="accuracy")
    ax.set_title("Emotion accuracy per target emotion (mean over the n clips of each cell; no CI:\n"
                 "cells hold few clips, the leaderboard gives the overall accuracy's bootstrap CI)", fontsize=9)
    return fig


def confusion_matrices(clips: pd.DataFrame):
    """One target x predicted count matrix per method (single-emotion targets)."""
    if clips.empty or "emotion_pred_index" not in clips.columns:
        return None
    c = clips.dropna(subset=["emotion_pred_index"])
    c = c[c.emotion.isin(ALL_SINGLE)]
    methods = sorted(c.method.unique())
    if not methods:
        return None
    fig, axes = plt.subplots(1, len(methods), figsize=(4.2 * len(methods), 4), squeeze=False)
    for ax, m in zip(axes[0], methods):
        cm = np.zeros((len(ALL_SINGLE), len(ALL_SINGLE)), int)
        for _, r in c[c.method == m].iterrows():
            cm[ALL_SINGLE.index(r.emotion), int(r.emotion_pred_index)] += 1
        ax.imshow(cm, cmap="Blues")
        for (i, j), v in np.ndenumerate(cm):
            if v:
                ax.text(j, i, str(v), ha="center", va="center", fontsize=8)
        ax.set_xticks(range(len(ALL_SINGLE)), [e[:4] for e in ALL_SINGLE], rotation=45)
        ax.set_yticks(range(len(ALL_SINGLE)), [e[:4] for e in ALL_SINGLE])
        ax.set_xlabel("predicted")
        ax.set_ylabel("target")
        ax.set_title(f"{m} (N={int(cm.sum())} clips)")
    fig.suptitle("Emotion confusion (counts of clips, single-emotion targets; no CI)")
    fig.tight_layout()
    return fig


def compound_bars(clips: pd.DataFrame):
    """Per method: mean of each compound protocol over its compound clips, with percentile-bootstrap CIs."""
    keys = [k for k in ("compound_top2", "compound_recall", "compound_mix") if k in clips.columns]
    c = clips.dropna(subset=keys, how="all") if keys else clips.iloc[:0]
    if c.empty:
        return None
    methods = sorted(c.method.unique())
    fig, ax = plt.subplots(figsize=(1.2 * len(methods) * len(keys) / 3 + 4, 3.4))
    width = 0.8 / len(keys)
    for j, k in enumerate(keys):
        vals = [c[c.method == m][k].to_numpy(float) for m in methods]
        mean = np.array([np.nanmean(v) if np.isfinite(v).any() else np.nan for v in vals])
        ci = np.array([mean_ci(v) for v in vals])
        err = np.nan_to_num(np.vstack([mean - ci[:, 0], ci[:, 1] - mean]), nan=0.0).clip(min=0)
        ax.bar(np.arange(len(methods)) + (j - (len(keys) - 1) / 2) * width, np.nan_to_num(mean), width, yerr=err,
               capsize=3, label=k + (" (headline)" if k == HEADLINE_COMPOUND else ""))
    n = [int(c[c.method == m][keys].notna().any(axis=1).sum()) for m in methods]
    ax.set_xticks(range(len(methods)), [f"{m}\nN={k}" for m, k in zip(methods, n)], rotation=30, ha="right")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    ax.set_title(f"Compound emotions (N compound clips; CI: {percentile_ci_method()})", fontsize=8)
    return fig


def offset_histograms(clips: pd.DataFrame):
    if clips.empty or "offset" not in clips.columns or clips["offset"].notna().sum() == 0:
        return None
    methods = sorted(clips.dropna(subset=["offset"]).method.unique())
    fig, ax = plt.subplots(figsize=(6, 3))
    for m in methods:
        off = clips[clips.method == m]["offset"].dropna()
        ax.hist(off, bins=np.arange(-15.5, 16.5), alpha=0.5, label=f"{m} (N={len(off)})")
    ax.set_xlabel("SyncNet AV offset (frames)")
    ax.set_ylabel("clips")
    ax.legend()
    ax.set_title("Sync offsets (distribution over clips; no CI)")
    return fig


def speed_quality(table: pd.DataFrame, thr: pd.DataFrame, generating: set[str] | None = None):
    """Generation frames/s against the first headline quality metric present, for the methods that generate
    (``generating``: the run's methods whose description says ``generates``; ground truth, static and
    precomputed videos have no generation speed). ``table`` is :func:`reports.leaderboard.method_table`."""
    if thr.empty or table.empty or thr["frames_per_s"].notna().sum() == 0:
        return None
    t = thr.dropna(subset=["frames_per_s"]).set_index("method")
    if generating is not None:
        t = t[t.index.isin(generating)]
    for key in ("fid", "lpips", "akd", "psnr", "ssim"):
        if key in table.columns and table[key].notna().any():
            break
    else:
        return None
    q = table.set_index("method")
    common = [m for m in t.index if m in q.index and pd.notna(q.at[m, key])]
    if not common:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ci = q[f"{key}_ci"] if f"{key}_ci" in q.columns else pd.Series(index=q.index, dtype=object)
    for m in common:
        lo, hi = ci.get(m) if isinstance(ci.get(m), tuple) else (np.nan, np.nan)
        y = float(q.at[m, key])
        err = None if not np.isfinite(lo) else [[max(0.0, y - lo)], [max(0.0, hi - y)]]
        ax.errorbar(t.at[m, "frames_per_s"], y, yerr=err, fmt="o", capsize=4)
        n = q.at[m, f"{key}_n"] if f"{key}_n" in q.columns and pd.notna(q.at[m, f"{key}_n"]) else q.at[m, "n_clips"]
        ax.annotate(f"{m} (N={int(n)}, speed over {int(t.at[m, 'n_clips'])} generated)", (t.at[m, "frames_per_s"], y),
                    fontsize=7)
    how = q[f"{key}_ci_method"].dropna().iloc[0] if f"{key}_ci_method" in q.columns and q[f"{key}_ci_method"].notna().any() else "none"
    ax.set_xscale("log")
    ax.set_xlabel("generation frames/s (log; total frames / total generation seconds)")
    ax.set_ylabel(f"{KEYS[key].label} {'↑' if KEYS[key].higher_is_better else '↓'}")
    ax.set_title(textwrap.fill(f"Speed vs quality, methods that generate (CI: {how})", 70), fontsize=8)
    return fig
