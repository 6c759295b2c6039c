"""The ``moee-bench`` command line. Each subcommand lives in its own module under
``bench/cli/commands/`` and exposes ``register(subparsers)``; this module only discovers and runs them, and
:func:`run_command` is the one place where errors become exit codes (``moee-bench`` and torchrun alike)."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sqlite3
import sys
from typing import Sequence

from moee_bench import __version__
from moee_bench.bench.core import exitcodes
from moee_bench.bench.core.errors import BenchError

DESCRIPTION = """\
moee-bench: evaluate emotional audio-driven talking-head generation (MoEE and baselines).

Typical use:
  moee-bench run                        run the built-in sample suite end to end
  moee-bench score --pred DIR --gt DIR --metrics psnr,ssim,lpips,fid --json out.json
  moee-bench data import mead ROOT --out mead.json
  moee-bench report                     write LEADERBOARD.md and an HTML report

Exit status: 0 ok; 1 compare found a significant regression; 2 usage error or bad input (nothing
computed); 3 finished, but some clips failed (named in the output); 4 compare: a metric of the base
run is missing from the new run; 5 compare: the runs are not comparable on some metric (different
manifest, split, decode rule, precision, parameters or weights; each named); 130 interrupted (finished
work is kept, a re-run resumes).
"""


class _Version(argparse.Action):
    """``--version``: the version, and the git commit when running from a checkout (looked up only when asked)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        from moee_bench.bench.core.provenance import git_commit

        commit = git_commit()
        print(f"moee-bench {__version__}" + (f" (git {commit})" if commit else ""))
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    import moee_bench.bench.cli.commands as pkg

    parser = argparse.ArgumentParser(prog="moee-bench", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action=_Version, nargs=0, help="print the version (and git commit) and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"moee_bench.bench.cli.commands.{info.name}")
        mod.register(sub)
    return parser


def command_tree(parser: argparse.ArgumentParser | None = None,
                 path: tuple[str, ...] = ()) -> dict[tuple[str, ...], argparse.ArgumentParser]:
    """Every command and subcommand (``("data", "import")``...) with its parser, ``()`` for ``moee-bench`` itself."""
    parser = parser or build_parser()
    out = {path: parser}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out.update(command_tree(sub, path + (name,)))
    return out


def command_reference() -> str:
    """The README's command reference: every command and the options its parser accepts (a test compares them)."""
    lines = ["| command | options |", "|---|---|"]
    for path, parser in command_tree().items():
        opts = [s for a in parser._actions for s in a.option_strings if s.startswith("--") and s != "--help"]
        lines.append(f"| `moee-bench{' ' if path else ''}{' '.join(path)}` | {', '.join(f'`{o}`' for o in opts) or '—'} |")
    return "\n".join(lines)


def run_command(args: argparse.Namespace) -> int:
    """Run a parsed command; a :class:`BenchError` or an environment error becomes one line and its exit code."""
    try:
        rc = args.func(args)
    except BenchError as e:
        print(f"moee-bench: error: {e}", file=sys.stderr)
        return exitcodes.USAGE
    except OSError as e:           # the environment, not a bug: full disk, permissions, a vanished folder
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        print(f"moee-bench: error: {e.strerror or e}{where}", file=sys.stderr)
        return exitcodes.USAGE
    except sqlite3.Error as e:     # a store error no store method caught: the environment's if store_error knows it
        from moee_bench.bench.suite.store import store_error

        err = store_error("", e)
        if err is None:
            raise
        print(f"moee-bench: error: {err}", file=sys.stderr)
        return exitcodes.USAGE
    except KeyboardInterrupt:
        print("moee-bench: interrupted; finished work is kept and a re-run resumes", file=sys.stderr)
        return exitcodes.INTERRUPTED
    return int(rc or 0)


def main(argv: Sequence[str] | None = None) -> int:
    """The ``moee-bench`` command: parse ``argv`` (default ``sys.argv[1:]``) and run the command."""
    for stream in (sys.stdout, sys.stderr):      # a clip name the terminal's encoding lacks is escaped, not a crash
        if hasattr(stream, "reconfigure") and getattr(stream, "errors", "") == "strict":
            stream.reconfigure(errors="backslashreplace")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    return run_command(args)


if __name__ == "__main__":
    sys.exit(main())
