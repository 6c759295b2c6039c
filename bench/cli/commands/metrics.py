"""``moee-bench metrics``: every metric with its output keys and directions, the implementation it matches,
its parameter keys, the first-class flags that set them and whether its weights are on this machine.

Everything is read from where it is defined: the metric registry (``metrics/registry.py``) and each
metric class (``keys``, ``higher_is_better``, ``reference``, ``PARAMS``, ``needs_*``), the weights registry (entries
whose ``used_by`` names the metric; ``used_by = ["akd (akd_landmarks=fan)"]`` marks a file needed only
with that option; KID/KVD read their source metric's features, so its weights) and the flag table of
``score``/``run``.
"""

from __future__ import annotations

import argparse
import json
from typing import Any


ARROW = {"higher": "↑", "lower": "↓", "none": "(raw, no direction)"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("metrics", help="list the metrics: keys, direction, reference, flags, weights present",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights-dir", help="folder searched first for weight files")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--markdown", action="store_true",
                   help="print the parameter table (the README's, generated from each metric's PARAMS)")
    p.set_defaults(func=_run)


def _weights_of(metric: str, weights_dir: str | None) -> list[dict[str, Any]]:
    """Registry entries used by ``metric``: name, file, when (None = default protocol), present."""
    from moee_bench.bench.core.weights import locate, registry

    out = []
    for name, spec in sorted(registry().items()):
        for use in spec.used_by:
            who, _, note = use.partition(" ")
            note = note.strip("() ")
            if who == metric:               # "akd (akd_landmarks=fan)": needed only with that option
                out.append({"name": name, "file": spec.file, "when": note if "=" in note else None,
                            "present": locate(name, weights_dir) is not None})
    return out


def _direction(higher: bool | None) -> str:
    return "none" if higher is None else ("higher" if higher else "lower")


def describe_metrics(weights_dir: str | None = None) -> list[dict[str, Any]]:
    """One record per registered metric (see the module docstring for where each field comes from)."""
    from moee_bench.bench.cli.commands._metric_flags import FLAGS
    from moee_bench.metrics.core.registry import METRICS, metric_class

    rows = []
    for name in METRICS:
        row: dict[str, Any] = {"metric": name, "flags": [f"{f.flag} ({f.key})" for f in FLAGS if f.metric == name]}
        try:
            cls = metric_class(name)
        except ImportError as e:            # an optional package missing: say so, list the rest
            rows.append({**row, "error": f"{type(e).__name__}: {e}"})
            continue
        source = getattr(cls, "source_name", None)
        row.update({
            "keys": {k: _direction(cls.higher_is_better.get(k)) for k in cls.keys},
            "reference": cls.reference,
            "params": {k: {"type": p.kind.__name__, "default": p.default,
                           "choices": list(p.choices) if p.choices is not None else None,
                           "minimum": p.minimum, "maximum": p.maximum, "help": p.help}
                       for k, p in cls.parameters().items()},
            "needs": [w for w, flag in (("gt", cls.needs_gt), ("audio", cls.needs_audio), ("reference image", cls.needs_ref),
                                        ("target emotion", cls.needs_emotion)) if flag],
            "weights_from": source,
            "weights": _weights_of(source or name, weights_dir),
        })
        default = [w for w in row["weights"] if w["when"] is None]
        row["default_weights_present"] = all(w["present"] for w in default)
        rows.append(row)
    return rows


def format_metrics(rows: list[dict[str, Any]]) -> str:
    """The text listing."""
    lines = []
    for r in rows:
        lines.append(f"{r['metric']}  (↑ higher is better, ↓ lower)" if r is rows[0] else r["metric"])
        if "error" in r:
            lines.append(f"  not importable here: {r['error']}")
            continue
        lines.append("  keys:      " + ", ".join(f"{k} {ARROW[d]}" for k, d in r["keys"].items()))
        lines.append(f"  reference: {r['reference'] or '(not stated)'}")
        if r["needs"]:
            lines.append("  needs:     " + ", ".join(r["needs"]))
        if r["params"]:
            lines.append("  params:    " + ", ".join(
                f"{k}={v['default']}" + (f" ({'|'.join(map(str, v['choices']))})" if v["choices"] else
                                         f" ({values_text(v)})" if v["minimum"] is not None else "")
                for k, v in r["params"].items()))
        if r["flags"]:
            lines.append("  flags:     " + ", ".join(r["flags"]))
        via = f" (the {r['weights_from']} features')" if r["weights_from"] else ""
        if not r["weights"]:
            lines.append(f"  weights{via}: none in the registry (no weights, or bundled with an installed package)")
        for w in r["weights"]:
            when = f"with {w['when']}" if w["when"] else "default"
            lines.append(f"  weights{via}: {w['name']:<30} {when:<44} {'present' if w['present'] else 'MISSING'}")
    return "\n".join(lines)


def values_text(p: dict[str, Any]) -> str:
    """A parameter's accepted values, as its declaration gives them: choices, bounds, or the type."""
    if p["choices"]:
        return " \\| ".join(f"`{c}`" for c in p["choices"])
    lo, hi = p["minimum"], p["maximum"]
    kind = {"int": "integer", "float": "number", "bool": "`true` \\| `false`", "str": "name (see what it sets)"}[p["type"]]
    if lo is not None and hi is not None:
        return f"{kind} in [{lo:g}, {hi:g}]"
    if lo is not None:
        return f"{kind} >= {lo:g}"
    return kind


def params_markdown() -> str:
    """The README's table of metric parameters, one row per declared key (``PARAMS``), with its flag."""
    from moee_bench.bench.cli.commands._metric_flags import FLAGS
    from moee_bench.metrics.core.registry import METRICS, metric_class

    flags = {f.key: f.flag for f in FLAGS}
    flags["psnr_mode"] = "--psnr-mode"        # score's own flag
    lines = ["| metric | `--param` key | values | default | flag | what it sets |", "|---|---|---|---|---|---|"]
    for name in METRICS:
        cls = metric_class(name)
        own = cls.PARAMS
        for key, p in own.items():
            d = {"type": p.kind.__name__, "choices": p.choices, "minimum": p.minimum, "maximum": p.maximum}
            default = "none" if p.default is None else str(p.default).lower() if p.kind is bool else p.default
            lines.append(f"| `{name}` | `{key}` | {values_text(d)} | `{default}` | "
                         f"{'`' + flags[key] + '`' if key in flags else ''} | {p.help.replace('|', '/')} |")
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> int:
    if args.markdown:
        print(params_markdown())
        return 0
    rows = describe_metrics(args.weights_dir)
    print(json.dumps(rows, indent=1) if args.json else format_metrics(rows))
    return 0
