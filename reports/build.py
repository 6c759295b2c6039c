"""Write every report of a store: LEADERBOARD.md, the HTML report and exports."""

from __future__ import annotations

from pathlib import Path

from moee_bench.bench.core.paths import atomic_write
from moee_bench.reports.export import export_all
from moee_bench.reports.html import render_html
from moee_bench.reports.leaderboard import render_markdown
from moee_bench.reports.paper_tables import render as render_paper_tables
from moee_bench.reports.source import ResultSource


def write_reports(store: ResultSource, out_dir: Path, run_ids: list[str] | None = None,
                  leaderboard_path: Path | None = None, set_bootstrap: int = 0) -> dict[str, Path]:
    """Render the reports of ``run_ids`` (all runs when None) into ``out_dir``; also to ``leaderboard_path``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    md = render_markdown(store, run_ids, set_bootstrap)
    paths: dict[str, Path] = {}
    for p in [out_dir / "LEADERBOARD.md"] + ([Path(leaderboard_path)] if leaderboard_path else []):
        with atomic_write(p) as tmp:
            tmp.write_text(md, encoding="utf-8")
    paths["leaderboard"] = out_dir / "LEADERBOARD.md"
    if leaderboard_path:
        paths["leaderboard_copy"] = Path(leaderboard_path)
    with atomic_write(out_dir / "PAPER_TABLES.md") as tmp:
        tmp.write_text(render_paper_tables(store), encoding="utf-8")
    paths["paper_tables"] = out_dir / "PAPER_TABLES.md"
    html = out_dir / "report.html"
    with atomic_write(html) as tmp:
        tmp.write_text(render_html(store, run_ids), encoding="utf-8")
    paths["html"] = html
    paths.update(export_all(store, out_dir, run_ids))
    return paths
