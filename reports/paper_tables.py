"""The MoEE paper's tables (published numbers, kept as data) side by side with numbers measured here."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np

from moee_bench.metrics.core.keys import KEYS
from moee_bench.reports.source import ResultSource


TABLES = Path(__file__).with_name("data") / "moee_paper_tables.toml"


def published() -> dict:
    with open(TABLES, "rb") as f:
        return tomllib.load(f)


def measured(store: ResultSource, dataset: str) -> dict[str, dict[str, float]]:
    """method label -> metric -> latest measured aggregate, over runs whose dataset name matches."""
    out: dict[str, dict[str, float]] = {}
    runs = [r for r in store.runs() if dataset in (str(r["meta"].get("dataset_name", "")).lower(), r["dataset"].lower())]
    for r in runs:
        agg = store.aggregates(r["run_id"])
        for (method, key), v in agg.set_index(["method", "key"])["value"].items():
            if v is not None and np.isfinite(v):
                out.setdefault(method, {})[key] = float(v)
    return out


def render(store: ResultSource) -> str:
    lines = ["# MoEE paper tables: published vs measured", "",
             "Published numbers come from the source named under each table (kept in "
             "`reports/data/moee_paper_tables.toml`); they are **published, not measured**. Measured numbers come "
             "from this result store (runs whose dataset matches); a row never run here shows 'not measured'.", ""]
    for name, t in published().items():
        meas = measured(store, t["dataset"])
        lines += [f"## {t['title']}", "", f"Source: {t['source']}. Caveat: {t['caveat']}", ""]
        # three cells per metric (published, measured, Δ), so that header, separator and rows have as many cells
        head = ["method"] + [cell for c in t["columns"]
                             for cell in (f"{KEYS[c].label} {'↑' if KEYS[c].higher_is_better else '↓'} published",
                                          f"{KEYS[c].label} measured", f"{KEYS[c].label} Δ")]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        for row in t["rows"]:
            cells = [row["label"]]
            got = meas.get(row["method"], {})
            for c in t["columns"]:
                f = KEYS[c].fmt
                pub = f.format(row[c])
                if c in got:
                    cells += [f"{pub} (published)", f.format(got[c]), f"{got[c] - row[c]:+.3f}"]
                else:
                    cells += [f"{pub} (published)", "not measured", "—"]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        lines += _sample_block(store, t)
        lines += _runnable(t["rows"])
    return "\n".join(lines) + "\n"


SAMPLE_DATASET = "moee-bench-sample"
# metric family each paper column belongs to (its store key) -> the metric name that reports its absence
COLUMN_METRIC = {"fid": "fid", "fvd": "fvd", "lpips": "lpips", "sync_c": "sync", "akd": "akd", "csim": "csim"}


def _sample_runs(store: ResultStore) -> list[dict]:
    return [r for r in store.runs() if SAMPLE_DATASET in (str(r["meta"].get("dataset_name", "")).lower(),
                                                           str(r["dataset"]).lower())]


def _sample_block(store: ResultStore, t: dict) -> list[str]:
    """The table's rows measured by this suite on the built-in sample with the tiny model: a second block, never
    mixed with the published numbers; a cell it cannot fill says why."""
    runs = _sample_runs(store)
    got: dict[str, dict[str, float]] = {}
    why: dict[str, str] = {}
    for r in runs:
        for (method, key), v in store.aggregates(r["run_id"]).set_index(["method", "key"])["value"].items():
            if v is not None and np.isfinite(v):
                got.setdefault(method, {})[key] = float(v)
        for name, reason in (r["meta"].get("metrics_unavailable") or {}).items():
            why.setdefault(name, str(reason).splitlines()[0] if reason else "not computed")
    ran = {m for r in runs for m in (r["meta"].get("methods") or {})}
    out = ["Measured by this suite on the built-in sample, tiny model (not the paper's data or model: "
           "`moee-bench run`, held-out split; numbers test the pipeline, not MoEE):", ""]
    cols = [f"{KEYS[c].label} {'↑' if KEYS[c].higher_is_better else '↓'}" for c in t["columns"]]
    out += ["| method | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 1)]
    for row in t["rows"]:
        m = row["method"]
        cells = [row["label"]]
        for c in t["columns"]:
            if c in got.get(m, {}):
                cells.append(KEYS[c].fmt.format(got[m][c]))
            elif not runs:
                cells.append("— (no run on the sample in this store: `moee-bench run`)")
            elif m not in ran:
                cells.append(f"— (`{m}` is not in the sample suite: an external method, or no shipped tiny weights)")
            elif COLUMN_METRIC.get(c, c) in why:
                cells.append(f"— ({COLUMN_METRIC.get(c, c)} not computed: {why[COLUMN_METRIC.get(c, c)][:120]})")
            else:
                cells.append(f"— ({c} is not among the sample suite's metrics)")
        out.append("| " + " | ".join(cells) + " |")
    return out + [""]


RUN_HOW = {
    "model": "model ablation: `moee-bench train --stage 2 --variant {v} --init STAGE1/ckpt-N --out DIR`, then a "
             "suite method `name = \"{m}\"`, `checkpoint = \"DIR\"`",
    "data": "training-data ablation: the full model trained (stages 1 and 2) on a manifest without "
            "DH-FaceEmoVid-150, stage 2 with `--variant {v}` to label the checkpoint; suite method `name = \"{m}\"`",
}


def _runnable(rows: list[dict]) -> list[str]:
    """How to produce each row that names a runnable method kind (the ablation's moee-ref variants)."""
    rows = [r for r in rows if r.get("kind") in RUN_HOW]
    if not rows:
        return []
    out = ["Runnable rows (each a registered method):", ""]
    for r in rows:
        m = r["method"]
        v = m.partition(":")[2] or "full"
        how = RUN_HOW[r["kind"]].format(v=v, m=m)
        if v == "full":
            how = how.replace("model ablation", "the paper's model").replace(f" --variant {v}", "")
        out.append(f"- {r['label']}: `{m}`, {how}")
    return out + [""]
