"""Matplotlib figures for the HTML report (Agg backend), each returned as a figure or None when the
store has nothing to show for it."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from moee_bench.bench.core.emotions import ALL_SINGLE  # noqa: E402
from moee_bench.metrics.keys import KEYS  # noqa: E402


def emotion_heatmap(clips: pd.DataFrame):
    """Methods x target emotion: single-emotion accuracy."""
    if clips.empty or "emotion_acc" not in clips.columns:
        return None
    t = clips.dropna(subset=["emotion_acc"]).pivot_table(index="method", columns="emotion", values="emotion_acc", aggfunc="mean")
    if t.empty:
        return None
    t = t[[e for e in ALL_SINGLE if e in t.columns]]
    fig, ax = plt.subplots(figsize=(1.1 * len(t.columns) + 2, 0.5 * len(t) + 1.5))
    im = ax.imshow(t.to_numpy(float), vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(t.columns)), t.columns, rotation=30, ha="right")
    ax.set_yticks(range(len(t)), t.index)
    for (i, j), v in np.ndenumerate(t.to_numpy(float)):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="white" if v < 0.6 else "black", fontsize=9)
    fig.colorbar(im, ax=ax, label="accuracy")
    ax.set_title("Emotion accuracy per target emotion")
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
        ax.set_title(m)
    fig.suptitle("Emotion confusion (counts)")
    fig.tight_layout()
    return fig


def compound_bars(agg: pd.DataFrame):
    keys = ["compound_top2", "compound_recall", "compound_mix"]
    a = agg[agg.key.isin(keys)].pivot_table(index="method", columns="key", values="value")
    if a.empty:
        return None
    fig, ax = plt.subplots(figsize=(5, 3))
    a[[k for k in keys if k in a.columns]].plot.bar(ax=ax, rot=30, ylim=(0, 1))
    ax.set_title("Compound emotions (headline: compound_mix)")
    return fig


def offset_histograms(clips: pd.DataFrame):
    if clips.empty or "offset" not in clips.columns or clips["offset"].notna().sum() == 0:
        return None
    methods = sorted(clips.dropna(subset=["offset"]).method.unique())
    fig, ax = plt.subplots(figsize=(6, 3))
    for m in methods:
        ax.hist(clips[clips.method == m]["offset"].dropna(), bins=np.arange(-15.5, 16.5), alpha=0.5, label=m)
    ax.set_xlabel("SyncNet AV offset (frames)")
    ax.legend()
    ax.set_title("Sync offsets")
    return fig


def speed_quality(agg: pd.DataFrame, thr: pd.DataFrame):
    if thr.empty or thr["frames_per_s"].notna().sum() == 0:
        return None
    for key in ("fid", "lpips", "akd", "psnr", "ssim"):
        q = agg[agg.key == key].set_index("method")["value"].dropna()
        if len(q):
            break
    else:
        return None
    t = thr.set_index("method")["frames_per_s"].dropna()
    common = q.index.intersection(t.index)
    if not len(common):
        return None
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.scatter(t[common], q[common])
    for m in common:
        ax.annotate(m, (t[m], q[m]))
    ax.set_xscale("log")
    ax.set_xlabel("generation frames/s (log)")
    ax.set_ylabel(f"{KEYS[key].label} {'↑' if KEYS[key].higher_is_better else '↓'}")
    ax.set_title("Speed vs quality")
    return fig
