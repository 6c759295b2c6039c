"""Every result key the suite reports: its direction, display name, and how it aggregates.

``clip_mean``: the aggregate is the mean of per-clip values (bootstrap by resampling clips).
``set``: the aggregate is computed over the whole set of clips (FID, FVD: bootstrap by
recomputing from cached features).
"""

from __future__ import annotations

from dataclasses import dataclass

from moee_bench.bench.core.emotions import ALL_SINGLE


# THEval statistics of metrics/dynamics.py: key -> label
DYNAMICS_LABELS = {"lip_dynamics": "Lip dyn.", "head_dynamics": "Head dyn.", "eyebrow_dynamics": "Brow dyn.",
                   "silent_lip_mad": "Silent-lip MAD", "lip_loudness_dist": "Lip-loudness"}


@dataclass(frozen=True)
class KeyInfo:
    key: str
    label: str
    higher_is_better: bool
    kind: str = "clip_mean"      # clip_mean | set
    fmt: str = "{:.3f}"
    closer_to_gt: bool = False   # raw statistic whose best value is the GT's (shown "≈GT", no direction)

    @property
    def arrow(self) -> str:
        """``↑``, ``↓`` or ``≈GT``."""
        return "≈GT" if self.closer_to_gt else ("↑" if self.higher_is_better else "↓")


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
    KeyInfo("emotion_acc/contempt", "Emo-Acc (contempt)", True),
    KeyInfo("emotion_target_prob", "Target prob", True),
    KeyInfo("kid", "KID", False, "set", "{:.4f}"),
    KeyInfo("kvd", "KVD", False, "set", "{:.4f}"),
    KeyInfo("flmd", "FLMD", False, "set", "{:.2f}"),
    KeyInfo("dynamics_score", "Dyn-Score", True, "set"),
    *[KeyInfo(f"{k}_closeness", f"{lbl} (close)", True, "set") for k, lbl in DYNAMICS_LABELS.items()],
    *[KeyInfo(k, lbl, False, fmt="{:.4f}", closer_to_gt=True) for k, lbl in DYNAMICS_LABELS.items()],
    KeyInfo("mouth_open_velocity", "Mouth-open vel.", False, fmt="{:.4f}", closer_to_gt=True),
]}


def key_info(key: str) -> KeyInfo | None:
    return KEYS.get(key)
