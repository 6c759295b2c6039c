"""``moee-bench emotion-report MANIFEST``: the emotion classifier's accuracy on a dataset's own videos, per emotion
(each clip's ground-truth video against its own label: a check of the classifier and its crop, not of a method)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from moee_bench.bench.cli.options import add_weights_arguments, options_from_args
from moee_bench.bench.core.ffmpeg import ensure_ffmpeg_on_path
from moee_bench.metrics.emotion.report import emotion_report, format_report


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("emotion-report", help="the emotion classifier's per-emotion accuracy on a manifest's own videos")
    p.add_argument("manifest", type=Path)
    p.add_argument("--classifier", default="fer2013")
    p.add_argument("--stride", type=int, default=5)
    p.add_argument("--aggregation", default="mean", choices=["mean", "vote"])
    p.add_argument("--split", default=None)
    add_weights_arguments(p)
    p.add_argument("--json", action="store_true", help="print the full report as JSON")
    p.set_defaults(func=_run)


def _run(a: argparse.Namespace) -> int:
    ensure_ffmpeg_on_path()
    rep = emotion_report(a.manifest, classifier=a.classifier, stride=a.stride, aggregation=a.aggregation, split=a.split,
                         weights=options_from_args(a), progress=True)
    print(json.dumps(rep, indent=2, default=str) if a.json else format_report(rep))
    return 0
