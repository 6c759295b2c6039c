"""Every result key the suite reports: its direction, display name, and how it aggregates.

``clip_mean``: the aggregate is the mean of per-clip values (bootstrap by resampling clips).
``set``: the aggregate is computed over the whole set of clips (FID, FVD: bootstrap by
recomputing from cached features).
"""

from __future__ import annotations

from dataclasses import dataclass

from moee_bench.bench.core.emotions import ALL_SINGLE


@dataclass(frozen=True)
class KeyInfo:
    key: str
    label: str
    higher_is_better: bool
    kind: str = "clip_mean"      # clip_mean | set
    fmt: str = "{:.3f}"


KEYS: dict[str, KeyInfo] = {k.key: k for k in [
    KeyInfo("fid", "FID", False, "set", "{:.2f}"),
    KeyInfo("fvd", "FVD", False, "set", "{:.2f}"),
    KeyInfo("lpips", "LPIPS", False),
    KeyInfo("psnr", "PSNR", True, fmt="{:.2f}"),
    KeyInfo("psnr_dataset", "PSNR (dataset)", True, "set", "{:.2f}"),
    KeyInfo("ssim", "SSIM", True),
    KeyInfo("csim", "CSIM", True),
    KeyInfo("akd", "AKD", False),
    KeyInfo("sync_c", "Sync-C", True),
    KeyInfo("sync_d", "Sync-D", False),
    KeyInfo("emotion_acc", "Emo-Acc", True),
    KeyInfo("compound_top2", "Comp-Top2", True),
    KeyInfo("compound_recall", "Comp-Recall", True),
    KeyInfo("compound_mix", "Comp-Mix", True),
    KeyInfo("neutral_vs_emotional_acc", "Neu/Emo-Acc", True, "set"),   # balanced accuracy over the set of clips
    KeyInfo("neutral_vs_emotional_raw_acc", "Neu/Emo-Acc (plain)", True),
    *[KeyInfo(f"emotion_acc/{e}", f"Emo-Acc ({e})", True) for e in ALL_SINGLE],
]}


def key_info(key: str) -> KeyInfo | None:
    return KEYS.get(key)
