"""What a person reads after a scenario run, and what tools read: tables and report files.

Theory of operation
-------------------
* :func:`verdict_table` — one row per expectation: the check, what was observed, pass or
  FAIL, and why it is expected.
* :func:`matrix_table` — the seed matrix: one row per scenario with the columns of the
  tech note's story (DTLS up, adapter MTU, reconnects per 10 minutes, mp-svc-no-fragment
  drops, 722036 lines, flows OK/stalled) as ``observed`` — and, where the scenario
  states an expectation about that metric, ``observed (expected)`` with a ``!`` when it
  fails — then the row's verdict.
* :class:`ReportWriter` — ``--report DIR``: ``timeline.jsonl`` is appended line by line
  while the run goes (an interrupted run keeps what happened), ``syslog.log`` and
  ``verdicts.json`` + ``summary.json`` are written at the end. For several scenarios
  (the seed matrix) each gets a subdirectory and ``matrix.json`` sums them up.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from tunnelswarm.scenario.expect import Verdict, format_number
from tunnelswarm.scenario.run import ScenarioResult, TimelineEntry

__all__ = ["ReportWriter", "matrix_table", "verdict_table"]


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)
    ]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    out = [line(header), line(["-" * w for w in widths])]
    out += [line(r) for r in rows]
    return "\n".join(out)


def _obs(v: float | None) -> str:
    return "n/a" if v is None else format_number(v)


def verdict_table(result: ScenarioResult) -> str:
    rows = [
        [
            "pass" if v.passed else "FAIL",
            v.expectation.text,
            _obs(v.observed) + (f" ({v.note})" if v.note else ""),
            v.expectation.why,
        ]
        for v in result.verdicts
    ]
    head = (
        f"scenario {result.scenario.name}: "
        + ("PASSED" if result.passed else "FAILED")
        + (" (interrupted)" if result.interrupted else "")
        + f" — {len(result.verdicts)} checks, "
        + ("virtual time" if result.virtual_time else "real time")
        + f", {format_number(result.scenario.duration)} s simulated in "
        + f"{result.wall_seconds:.1f} s, seed {result.seed}"
    )
    if not rows:
        return head + "\n(no expectations)"
    return head + "\n" + _table(["", "check", "observed", "why"], rows)


#: the seed matrix's columns: (title, metric, key)
MATRIX_COLUMNS: tuple[tuple[str, str, str | None], ...] = (
    ("DTLS up", "dtls_up_ratio", None),
    ("adapter MTU", "adapter_mtu", None),
    ("reconnects/10min", "reconnects_per_10min", "mtu"),
    ("no-frag drops", "asp_drop", "mp-svc-no-fragment"),
    ("722036", "syslog", "722036"),
    ("flows ok", "flows_completed", None),
    ("slowed", "flows_slowed", None),
    ("stalled", "flows_stalled", None),
)


def _cell(result: ScenarioResult, metric: str, key: str | None) -> str:
    observed = result.metrics.lookup(metric, key)
    text = "n/a" if observed is None or math.isnan(observed) else format_number(observed)
    mine: list[Verdict] = [
        v for v in result.verdicts if v.expectation.metric == metric and v.expectation.key == key
    ]
    if metric == "dtls_up_ratio":  # the ever-up check is about the same column
        mine += [v for v in result.verdicts if v.expectation.metric == "dtls_ever_up_ratio"]
    if metric == "reconnects_per_10min":
        mine += [
            v
            for v in result.verdicts
            if v.expectation.metric == "reconnects" and v.expectation.key == "mtu"
        ]
    if not mine:
        return text
    expected = "; ".join(
        ("" if v.expectation.metric == metric else v.expectation.ref + " ")
        + v.expectation.expected_text()
        for v in mine
    )
    bad = any(not v.passed for v in mine)
    return f"{text} ({expected}){'!' if bad else ''}"


def matrix_table(results: Sequence[ScenarioResult]) -> str:
    header = ["scenario", *(c[0] for c in MATRIX_COLUMNS), "verdict"]
    rows = []
    for r in results:
        failed = sum(not v.passed for v in r.verdicts)
        verdict = "pass" if r.passed else f"FAIL ({failed} of {len(r.verdicts)})"
        rows.append([r.scenario.name, *(_cell(r, m, k) for _t, m, k in MATRIX_COLUMNS), verdict])
    legend = (
        "cells: observed (expected); '!' marks a failed expectation. DTLS up = fraction of"
        " clients with DTLS up at the end; reconnects are reason-code-16 (cause mtu) per"
        " client per 10 minutes"
    )
    return _table(header, rows) + "\n" + legend


class ReportWriter:
    """``--report DIR`` for one scenario run (see the module docstring)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self._timeline: IO[str] = (self.dir / "timeline.jsonl").open("w", encoding="utf-8")

    def line(self, entry: TimelineEntry) -> None:
        self._timeline.write(json.dumps(entry.as_dict()) + "\n")
        self._timeline.flush()

    def finish(self, result: ScenarioResult) -> None:
        self._timeline.close()
        (self.dir / "syslog.log").write_text(
            "".join(ln + "\n" for ln in result.syslog), encoding="utf-8"
        )
        (self.dir / "verdicts.json").write_text(
            json.dumps([v.as_dict() for v in result.verdicts], indent=2), encoding="utf-8"
        )
        (self.dir / "summary.json").write_text(
            json.dumps(result.summary(), indent=2, default=str), encoding="utf-8"
        )

    def close(self) -> None:
        if not self._timeline.closed:
            self._timeline.close()


def write_matrix(directory: Path, results: Sequence[ScenarioResult]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "matrix.json").write_text(
        json.dumps([r.summary() for r in results], indent=2, default=str), encoding="utf-8"
    )
