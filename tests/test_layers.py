"""The layer map of :mod:`moee_bench` holds on the import graph and on the indirect reaches the import graph
cannot show: no module imports a floor above its own (nor names one in a string, e.g. a lazy registry, nor runs
the CLI in a subprocess), and metrics and baselines (the same floor) never reach each other."""

from __future__ import annotations

import ast
import re
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
    "suite": {"root", "core", "metrics", "baselines", "moee_ref", "reports", "suite"},
    # the Python API (``moee_bench.api``): what the commands call
    "api": {"root", "core", "metrics", "baselines", "moee_ref", "reports", "suite", "api"},
    # the roof: the commands and the benchmarks that time them as users run them (``bench`` dispatches to perf)
    "perf": {"root", "core", "metrics", "baselines", "moee_ref", "reports", "suite", "api", "perf", "cli"},
    "cli": {"root", "core", "metrics", "baselines", "moee_ref", "reports", "suite", "api", "perf", "cli"},
}
# The one declared exception: the root package exposes the API's names lazily (PEP 562 ``__getattr__``),
# so ``moee_bench.score`` works while ``import moee_bench`` imports nothing above the root.
LAZY = {("moee_bench", "moee_bench.api")}


def group(module: str) -> str:
    """The layer group of a ``moee_bench`` module."""
    parts = module.split(".")[1:]
    if not parts or parts[0] in ("__init__", "__version__"):
        return "root"
    if parts[0] == "__main__":
        return "cli"
    if parts[0] == "bench":
        # bench/core the ground floor; bench/suite, bench/perf, bench/cli the roof's storeys; the loose
        # modules left in bench/ (``python -m moee_bench.bench``, the old torchrun path) are CLI entry points
        return {"core": "core", "suite": "suite", "perf": "perf"}.get(parts[1] if len(parts) > 1 else "", "cli")
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


def _files() -> list[Path]:
    return [p for d in PACKAGES for p in (ROOT / d).rglob("*.py")] + [ROOT / f for f in ("__init__.py", "__main__.py",
                                                                                      "api.py")]


_DOTTED = re.compile(r"moee_bench(?:\.[a-z_][a-z0-9_]*)+")


def _string_reaches(tree: ast.AST) -> list[tuple[int, str]]:
    """``moee_bench.x.y`` module paths named in string constants outside docstrings (lazy registries,
    ``importlib.import_module`` arguments, ``python -c`` programs)."""
    docs = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docs.add(id(first.value))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            out += [(node.lineno, m) for m in _DOTTED.findall(node.value)
                    if m.split(".")[1] in (*PACKAGES, "__main__", "api")]       # not entry-point group names
    return out


_CLI_CALL = re.compile(r"""["'](?:moee-bench|-m)["']|["']moee_bench(?:\.bench\.cli[.a-z_]*)?["']""")


def _cli_subprocess_calls(src: str) -> list[int]:
    """Lines that start the ``moee-bench`` command line (or ``python -m moee_bench...``) in a subprocess."""
    return [i for i, line in enumerate(src.splitlines(), 1)
            if ("subprocess" in line or "Popen" in line or "check_output" in line or "[sys.executable" in line)
            and (_CLI_CALL.search(line) or "moee-bench" in line)]


def test_no_module_imports_upward() -> None:
    files = _files()
    assert len(files) > 80
    bad = []
    for f in files:
        mod = _module_name(f)
        g = group(mod)
        for line, target in _imports(ast.parse(f.read_text()), mod, f.name == "__init__.py"):
            if group(target) not in ALLOWED[g] and (mod, target) not in LAZY:
                bad.append(f"{f.relative_to(ROOT)}:{line} ({g}) imports {target} ({group(target)})")
    assert not bad, "imports that point upward or sideways:\n" + "\n".join(bad)


def test_no_module_names_a_higher_floor_in_a_string() -> None:
    """A lazy registry (``"moee_bench.moee_ref.method:MoEERef"`` in ``baselines``) reaches upward as surely as an
    import does; methods of higher floors register through the ``moee_bench.methods`` entry points instead."""
    bad = []
    for f in _files():
        mod = _module_name(f)
        g = group(mod)
        for line, target in _string_reaches(ast.parse(f.read_text())):
            if group(target) not in ALLOWED[g]:
                bad.append(f"{f.relative_to(ROOT)}:{line} ({g}) names {target} ({group(target)})")
    assert not bad, "strings that name a higher floor:\n" + "\n".join(bad)


def test_only_the_roof_runs_the_cli_in_a_subprocess() -> None:
    """Below ``bench/perf`` and ``bench/cli`` nothing starts ``moee-bench`` (a subprocess reaches the roof)."""
    bad = []
    for f in _files():
        g = group(_module_name(f))
        if g in ("perf", "cli"):
            continue
        bad += [f"{f.relative_to(ROOT)}:{n}" for n in _cli_subprocess_calls(f.read_text())]
    assert not bad, "subprocess calls of the CLI below the roof:\n" + "\n".join(bad)


def test_methods_of_higher_floors_are_entry_points() -> None:
    """The MoEE reference and its variants come from ``pyproject.toml``'s entry points, not from a string in
    ``baselines``; the registry still finds every one of them."""
    import tomllib

    from moee_bench.baselines.registry import METHODS, available

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["moee_bench.methods"]
    assert "moee-ref" in declared and not any(v.startswith("moee_bench.moee_ref") for v in METHODS.values())
    table = available()
    assert {k: table[k] for k in declared} == declared


def test_checker_sees_violations() -> None:
    reg = ast.parse('"""moee_bench.reports.html in a docstring is prose."""\nM = {"x": "moee_bench.moee_ref.method:MoEERef"}\n')
    assert [t for _, t in _string_reaches(reg)] == ["moee_bench.moee_ref.method"]
    assert group("moee_bench.moee_ref.method") not in ALLOWED[group("moee_bench.baselines.registry")]
    assert _cli_subprocess_calls('subprocess.run([sys.executable, "-m", "moee_bench", "score"])') == [1]
    assert _cli_subprocess_calls('subprocess.run(["moee-bench", "run"])') == [1]
    assert _cli_subprocess_calls('subprocess.run(["ffmpeg", "-i", str(p)])') == []
    assert group("moee_bench.bench.cli.app") not in ALLOWED[group("moee_bench.bench.suite.runner")]
    assert group("moee_bench.bench.perf.throughput") not in ALLOWED[group("moee_bench.bench.suite.runner")]
    tree = ast.parse("from moee_bench.bench.suite.runner import run_suite\nimport moee_bench.metrics.visual.fid\n")
    got = [t for _, t in _imports(tree, "moee_bench.bench.core.media", False)]
    assert got == ["moee_bench.bench.suite.runner", "moee_bench.metrics.visual.fid"]
    assert group("moee_bench.bench.suite.runner") not in ALLOWED[group("moee_bench.bench.core.media")]
    assert group("moee_bench.metrics.visual.fid") not in ALLOWED[group("moee_bench.baselines.base")]
    assert group("moee_bench.metrics.visual.lpips") not in ALLOWED[group("moee_bench.moee_ref.losses")]


def test_the_root_reaches_the_api_only_lazily_in_its_getattr() -> None:
    """The declared exception: the root's one import of ``moee_bench.api`` sits inside ``__getattr__`` (PEP 562),
    and ``import moee_bench`` imports neither the API, the metrics nor torch."""
    import subprocess
    import sys

    tree = ast.parse((ROOT / "__init__.py").read_text())
    lazy = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "__getattr__")
    inside = {t for _, t in _imports(lazy, "moee_bench", True)}
    assert inside == {"moee_bench.api"}
    outside = [t for _, t in _imports(tree, "moee_bench", True) if group(t) != "root"]
    assert outside == ["moee_bench.api"]            # the one, inside __getattr__
    code = ("import sys, moee_bench; assert moee_bench.__version__; "
            "print(sorted(m for m in ('torch', 'moee_bench.api', 'moee_bench.metrics') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]"
    code = "import moee_bench, sys; f = moee_bench.score; print(f.__module__, 'moee_bench.api' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.split() == ["moee_bench.api", "True"]
