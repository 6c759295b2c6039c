"""The layer map of :mod:`moee_bench` holds on the import graph: no module imports a layer above
its own, and metrics and baselines (the same layer) never import each other."""

from __future__ import annotations

import ast
from pathlib import Path

import moee_bench

ROOT = Path(moee_bench.__file__).resolve().parent
PACKAGES = ("bench", "metrics", "baselines", "moee_ref", "reports")


# group -> the groups it may import (its own included): the map in ``moee_bench.__doc__``
ALLOWED = {
    "root": {"root"},
    "core": {"root", "core"},
    "metrics": {"root", "core", "metrics"},
    "baselines": {"root", "core", "baselines"},
    "moee_ref": {"root", "core", "baselines", "moee_ref"},
    "reports": {"root", "core", "metrics", "reports"},
    "bench": {"root", "core", "metrics", "baselines", "moee_ref", "reports", "bench"},
}


def group(module: str) -> str:
    """The layer group of a ``moee_bench`` module."""
    parts = module.split(".")[1:]
    if not parts or parts[0] in ("__init__", "__version__"):
        return "root"
    if parts[0] == "__main__":
        return "bench"
    if parts[:2] == ["bench", "core"]:
        return "core"
    return parts[0]


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join(["moee_bench", *parts])


def _imports(tree: ast.AST, module: str, is_pkg: bool) -> list[tuple[int, str]]:
    """Every ``moee_bench`` module imported anywhere in the file, except under ``if TYPE_CHECKING:``."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for n in ast.walk(node)}
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("moee_bench")]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = module.split(".") if is_pkg else module.split(".")[:-1]
                pkg = pkg[: len(pkg) - node.level + 1]
                base = ".".join(pkg + ([base] if base else []))
            if base.startswith("moee_bench"):
                out += [(node.lineno, f"{base}.{a.name}" if base == "moee_bench" else base) for a in node.names]
    return out


def test_no_module_imports_upward() -> None:
    files = [p for d in PACKAGES for p in (ROOT / d).rglob("*.py")] + [ROOT / "__init__.py", ROOT / "__main__.py"]
    assert len(files) > 80
    bad = []
    for f in files:
        mod = _module_name(f)
        g = group(mod)
        for line, target in _imports(ast.parse(f.read_text()), mod, f.name == "__init__.py"):
            if group(target) not in ALLOWED[g]:
                bad.append(f"{f.relative_to(ROOT)}:{line} ({g}) imports {target} ({group(target)})")
    assert not bad, "imports that point upward or sideways:\n" + "\n".join(bad)


def test_checker_sees_violations() -> None:
    tree = ast.parse("from moee_bench.bench.runner import run_suite\nimport moee_bench.metrics.fid\n")
    got = [t for _, t in _imports(tree, "moee_bench.bench.core.media", False)]
    assert got == ["moee_bench.bench.runner", "moee_bench.metrics.fid"]
    assert group("moee_bench.bench.runner") not in ALLOWED[group("moee_bench.bench.core.media")]
    assert group("moee_bench.metrics.fid") not in ALLOWED[group("moee_bench.baselines.base")]
    assert group("moee_bench.metrics.lpips_metric") not in ALLOWED[group("moee_bench.moee_ref.losses")]
