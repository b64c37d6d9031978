"""``tunnelswarm scenarios`` and ``tunnelswarm run SCENARIO`` (see docs/scenarios.md).

Exit status of ``run``: 0 every expectation held; 1 at least one failed (or the run was
interrupted); 2 the scenario could not be run (bad file, unknown profile, socket error).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from tunnelswarm.errors import TunnelswarmError
from tunnelswarm.scenario.catalog import SEED_MATRIX, find_scenario, list_builtin
from tunnelswarm.scenario.report import ReportWriter, matrix_table, verdict_table, write_matrix
from tunnelswarm.scenario.run import RunOptions, ScenarioResult, TimelineEntry, run_scenario

__all__ = ["add_parsers", "run_command", "scenarios_command"]

EXIT_PASSED = 0
EXIT_FAILED = 1
EXIT_ERROR = 2


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = sub.add_parser("scenarios", help="list the built-in scenarios")
    s.add_argument("-v", "--verbose", action="count", default=0, help=argparse.SUPPRESS)
    r = sub.add_parser(
        "run",
        help="run a scenario (built-in name, seed-matrix, or a .toml/.py file)",
        description="Run a scenario and print its timeline and verdicts. Exit 0 when every"
        " expectation holds, 1 when one fails, 2 when the scenario cannot be run.",
    )
    r.add_argument("scenario", metavar="SCENARIO", help="built-in name, seed-matrix, or a file")
    r.add_argument(
        "--virtual-time",
        action="store_true",
        help="in-process mock ASA over an in-memory network with a mock clock (seconds"
        " for minutes; replays with --seed)",
    )
    r.add_argument(
        "--quick",
        action="store_true",
        help="real time, shortened: the scenario's [realtime] duration, timers and checks",
    )
    r.add_argument("--seed", type=int, help="replaces the scenario's seed")
    r.add_argument("--report", metavar="DIR", type=Path, help="write timeline, syslog, verdicts")
    r.add_argument("-q", "--quiet", action="store_true", help="no timeline, only the verdicts")
    r.add_argument("-v", "--verbose", action="count", default=0, help=argparse.SUPPRESS)


def scenarios_command(out: TextIO = sys.stdout) -> int:
    items = list_builtin()
    width = max(len(s.name) for s in items)
    for s in items:
        out.write(f"{s.name:<{width}}  {s.description}\n")
    out.write(f"{'seed-matrix':<{width}}  all of the tech note's cases above, one table\n")
    return EXIT_PASSED


def _one(
    name: str, args: argparse.Namespace, out: TextIO, report_dir: Path | None
) -> ScenarioResult:
    sc = find_scenario(name)
    writer = ReportWriter(report_dir) if report_dir is not None else None

    def on_line(entry: TimelineEntry) -> None:
        if writer is not None:
            writer.line(entry)
        if not args.quiet:
            out.write(entry.line() + "\n")

    mode = "virtual time" if args.virtual_time else "real time"
    if args.quick and not args.virtual_time:
        mode += ", shortened"
        sc = sc.for_real_time()
    if not args.quiet:
        out.write(f"== {sc.name} ({mode}): {sc.description}\n")
    try:
        result = run_scenario(
            sc,
            RunOptions(
                virtual_time=args.virtual_time,
                seed=args.seed,
                on_line=on_line,
                quick=args.quick and not args.virtual_time,
            ),
        )
    finally:
        if writer is not None:
            writer.close()
    if writer is not None:
        writer.finish(result)
    return result


def run_command(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    try:
        if args.scenario == "seed-matrix":
            results = []
            for name in SEED_MATRIX:
                sub = args.report / name if args.report is not None else None
                results.append(_one(name, args, out, sub))
                if results[-1].interrupted:
                    break
            if args.report is not None:
                write_matrix(args.report, results)
            out.write("\n" + matrix_table(results) + "\n")
            failed = [r.scenario.name for r in results if not r.passed]
            out.write(
                f"\nseed-matrix: {len(results) - len(failed)}/{len(results)} scenarios passed"
                + (f" (failed: {', '.join(failed)})" if failed else "")
                + "\n"
            )
            return EXIT_PASSED if not failed and len(results) == len(SEED_MATRIX) else EXIT_FAILED
        result = _one(args.scenario, args, out, args.report)
        out.write("\n" + verdict_table(result) + "\n")
        return EXIT_PASSED if result.passed else EXIT_FAILED
    except (TunnelswarmError, OSError) as e:
        print(f"tunnelswarm: error: {e}", file=sys.stderr)
        return EXIT_ERROR
