"""Print the emotion classifier's accuracy on a dataset's own (real or sample) videos, per emotion.

From the command line: ``moee-bench emotion-report MANIFEST [--classifier fer2013] [--stride 5]
[--aggregation mean] [--split test] [--json]``.

Every clip's *ground-truth video* is scored against its own manifest label, which measures the
classifier (and the crop protocol) rather than any generation method.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from moee_bench.bench.core.manifest import load_manifest
from moee_bench.bench.core.weights import WeightsOptions
from moee_bench.metrics.core.base import ClipInput
from moee_bench.metrics.emotion.metric import COMPOUND_KEYS, Emotion
from moee_bench.metrics.emotion.scoring import TAXONOMY
from moee_bench.metrics.core.evaluate import evaluate
from moee_bench.metrics.core.registry import MetricOptions


def emotion_report(manifest: str | Path, *, classifier: str = "fer2013", stride: int = 5, aggregation: str = "mean",
                   split: str | None = None, weights: WeightsOptions | None = None, progress: bool = False) -> dict[str, Any]:
    """Score each clip's video of ``manifest`` against its label; returns aggregates, statuses and the protocol."""
    man = load_manifest(manifest)
    clips = [ClipInput(r.clip_id, man.media_path(r, "video"), emotion=r.emotion, intensity=r.intensity, identity=r.identity)
             for r in man.clips if split is None or r.split == split]
    opts = MetricOptions(weights=weights or WeightsOptions(),
                         params={"emotion_classifier": classifier, "emotion_stride": stride, "emotion_aggregation": aggregation})
    metric = Emotion(opts)
    res = evaluate(clips, [metric], progress=progress)
    statuses = Counter(c.status.get("emotion", "missing") for c in res.clips)
    per_label_n = {t: int(sum(res.metrics["emotion_confusion"][i])) for i, t in enumerate(TAXONOMY)}
    return {"dataset": man.dataset, "manifest": str(manifest), "n_clips": len(clips), "statuses": dict(statuses),
            "metrics": res.metrics, "per_label_n": per_label_n, "protocol": res.protocol["metrics"]["emotion"],
            "clips": [{"clip": c.clip_id, "status": c.status.get("emotion"), "pred": c.values.get("emotion_pred"),
                       "message": c.messages.get("emotion")} for c in res.clips]}


def _fmt(v: Any) -> str:
    return "—" if v is None else f"{v:.3f}"


def format_report(rep: dict[str, Any]) -> str:
    """A plain-text table of per-emotion accuracy, the confusion matrix and the compound / neutral checks."""
    m = rep["metrics"]
    proto = rep["protocol"]
    lines = [f"dataset {rep['dataset']} ({rep['n_clips']} clips): statuses {rep['statuses']}",
             f"classifier {proto['classifier']['classifier']}, detector {proto['detector']}, stride {proto['stride']}, "
             f"aggregation {proto['aggregation']}", "",
             f"{'emotion':<12} {'n':>4} {'accuracy':>9}"]
    for t in TAXONOMY:
        lines.append(f"{t:<12} {rep['per_label_n'][t]:>4} {_fmt(m.get(f'emotion_acc/{t}')):>9}")
    lines.append(f"{'overall':<12} {sum(rep['per_label_n'].values()):>4} {_fmt(m.get('emotion_acc')):>9}")
    lines += ["", "confusion (rows = label, columns = prediction): " + " ".join(t[:4] for t in TAXONOMY)]
    for t, row in zip(TAXONOMY, m["emotion_confusion"]):
        lines.append(f"  {t:<10} " + " ".join(f"{v:>4d}" for v in row))
    lines.append("")
    lines.append(f"compound clips {m.get('compound_clips', 0)}: " + ", ".join(
        f"{k} {_fmt(m.get(k))}" for k in COMPOUND_KEYS) + f" (headline {m.get('compound_headline')})")
    lines.append(f"neutral vs emotional: balanced {_fmt(m.get('neutral_vs_emotional_acc'))}, "
                 f"plain {_fmt(m.get('neutral_vs_emotional_raw_acc'))}")
    lines.append(f"frames scored {m.get('emotion_frames_scored')}, sampled frames without a face {m.get('emotion_frames_noface')}, "
                 f"frames with an excluded top class {m.get('emotion_excluded_top_frames')}")
    return "\n".join(lines)
