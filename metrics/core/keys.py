"""Every result key the suite reports: its direction, display name, and how it aggregates.

``clip_mean``: the aggregate is a mean of per-clip values (bootstrap by resampling clips). When
``weight`` names a per-clip key (the clip's number of scored frames), the aggregate is the
frame-weighted mean (the mean over every frame of every clip) and its CI bootstraps that same
weighted estimator.
``set``: the aggregate is computed over the whole set of clips (FID, FVD: bootstrap by
recomputing from cached features).
``gt_aligned``: compared pixel- or landmark-wise with the full GT frames (not comparable for a method
that re-crops the face).
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
    weight: str | None = None    # per-clip key holding the clip's weight in the aggregate (frame-weighted means)
    gt_aligned: bool = False
    closer_to_gt: bool = False   # raw statistic whose best value is the GT's (shown "≈GT", no direction)

    @property
    def arrow(self) -> str:
        """``↑``, ``↓`` or ``≈GT``."""
        return "≈GT" if self.closer_to_gt else ("↑" if self.higher_is_better else "↓")


KEYS: dict[str, KeyInfo] = {k.key: k for k in [
    KeyInfo("fid", "FID", False, "set", "{:.2f}"),
    KeyInfo("fvd", "FVD", False, "set", "{:.2f}", gt_aligned=True),
    KeyInfo("lpips", "LPIPS", False, weight="lpips_nframes", gt_aligned=True),
    KeyInfo("psnr", "PSNR", True, fmt="{:.2f}", weight="psnr_nframes", gt_aligned=True),
    KeyInfo("psnr_dataset", "PSNR (dataset)", True, "set", "{:.2f}", gt_aligned=True),
    KeyInfo("ssim", "SSIM", True, weight="ssim_nframes", gt_aligned=True),
    KeyInfo("csim", "CSIM", True, weight="csim_nframes"),
    KeyInfo("akd", "AKD", False, weight="akd_nframes", gt_aligned=True),
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
    KeyInfo("kvd", "KVD", False, "set", "{:.4f}", gt_aligned=True),      # FVD's features against full GT frames
    KeyInfo("flmd", "FLMD", False, "set", "{:.2f}"),
    KeyInfo("dynamics_score", "Dyn-Score", True, "set"),
    *[KeyInfo(f"{k}_closeness", f"{lbl} (close)", True, "set") for k, lbl in DYNAMICS_LABELS.items()],
    *[KeyInfo(k, lbl, False, fmt="{:.4f}", closer_to_gt=True) for k, lbl in DYNAMICS_LABELS.items()],
    KeyInfo("mouth_open_velocity", "Mouth-open vel.", False, fmt="{:.4f}", closer_to_gt=True),
]}


GT_ALIGNED_KEYS: tuple[str, ...] = tuple(k for k, i in KEYS.items() if i.gt_aligned)
