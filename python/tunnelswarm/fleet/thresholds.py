"""Pass/fail thresholds of a load run, and the exit codes CI reads.

Theory of operation
-------------------
A threshold is one comparison a person can read, given on the command line or in the
scenario file::

    --threshold 'setup_p99<500ms' --threshold 'dtls_ratio>0.99' --threshold 'errors==0'

:func:`parse_threshold` turns the text into a :class:`Threshold`: a *metric reference*
(a name, optionally with one ``[key]`` such as ``reconnects[dpd]``) compared with a
number by one operator (``<``, ``<=``, ``==``, ``!=``, ``>=``, ``>``); spaces are allowed
around the operator. The language is that of the scenario file's ``[[expect]]`` checks
(:mod:`tunnelswarm.scenario.expect`), less the bracketed ``lo <= metric <= hi`` form (write
two thresholds). Numbers take the same units: ``250us``, ``500ms``, ``2s``, ``1m`` are seconds,
``1.5k``/``2M`` multiply by 10³/10⁶, ``99%`` is 0.99. So time metrics are in seconds and
ratios between 0 and 1.

A name ending in ``_pNN`` or ``_pNN.N`` is a percentile of a distribution:
``setup_p99``, ``setup_p99.9`` (0 < NN <= 100). :attr:`Threshold.base` and
:attr:`Threshold.percentile` tell the engine which percentiles to compute from its
histograms (:func:`required_percentiles`); the metric's name is normalised
(``setup_p99.0`` is ``setup_p99``).

:meth:`Threshold.evaluate` looks the reference up in a flat ``Mapping[str, float]`` of the
run's metrics (keyed metrics appear as ``name[key]``, see :func:`flatten_metrics`). A
keyed reference whose key never happened reads 0 when the family itself (``name``) is
present (no reconnect with cause ``dpd`` means ``reconnects[dpd] == 0``). A metric the run
does not have at all, or a NaN (a percentile of no samples), is a *failed* threshold with
a note saying so, never a crash and never a silent pass. :func:`format_results` prints
the results as a plain-text table, observed values in the unit the limit was written in.

Exit codes (for CI)
-------------------
``tunnelswarm run`` ends with exactly one of:

=====  ========================  =================================================
code   name                      meaning
=====  ========================  =================================================
0      ``EXIT_OK``               the run completed and every threshold held (or none
                                 was given)
1      ``EXIT_THRESHOLD_FAILED`` at least one threshold failed, or the run was
                                 interrupted (Ctrl-C, SIGTERM) before its end, so its
                                 numbers cannot vouch for the headend
2      ``EXIT_RUN_ERROR``        the run could not be made: bad arguments or scenario
                                 file, headend unreachable at preflight, no usable
                                 source address ... (argparse also exits 2 on usage)
=====  ========================  =================================================

A CI job can therefore tell "the headend got worse" (1) from "the test is broken" (2).
:func:`exit_code` maps results to 0 or 1; the caller returns 2 itself when the run could
not be made. Pure code: no IO, no clock.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from tunnelswarm.errors import ConfigError
from tunnelswarm.scenario.expect import OPS, Metrics, format_number, parse_number

__all__ = [
    "EXIT_OK",
    "EXIT_RUN_ERROR",
    "EXIT_THRESHOLD_FAILED",
    "Threshold",
    "ThresholdResult",
    "evaluate_all",
    "exit_code",
    "flatten_metrics",
    "format_results",
    "parse_threshold",
    "parse_thresholds",
    "required_percentiles",
]

#: the run completed and every threshold held (or none was given)
EXIT_OK: Final = 0
#: at least one threshold failed, or the run was interrupted before its end
EXIT_THRESHOLD_FAILED: Final = 1
#: the run could not be made (bad arguments, headend unreachable at preflight, ...)
EXIT_RUN_ERROR: Final = 2

_THRESHOLD_RE: Final = re.compile(
    r"\s*(?P<base>[a-z_][a-z0-9_]*?)(?:_p(?P<pct>[0-9]+(?:\.[0-9]+)?))?"
    r"(?:\[(?P<key>[A-Za-z0-9_.:-]+)\])?"
    r"\s*(?P<op><=|>=|==|!=|<|>)\s*"
    r"(?P<num>[-+]?[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>us|ms|s|m|h|k|M|%)?\s*"
)


def _exact(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def _in_unit(value: float, unit: str | None) -> str:
    """``value`` (base units) as written in ``unit``: 0.231 in ms → ``231ms``."""
    if unit is None:
        return format_number(value)
    return f"{format_number(value / parse_number('1' + unit))}{unit}"


@dataclass(frozen=True, slots=True)
class ThresholdResult:
    """One threshold's outcome. ``name``: the metric reference; ``limit`` and ``observed``
    in base units (``observed`` None when the run has no such metric); ``text``: the
    threshold as written; ``note``: why it failed when not by comparison."""

    name: str
    op: str
    limit: float
    observed: float | None
    passed: bool
    text: str
    note: str = ""
    unit: str | None = None

    @property
    def condition(self) -> str:
        """``setup_p99 < 500ms``: normalised, the limit in the unit it was written in."""
        return f"{self.name} {self.op} {_in_unit(self.limit, self.unit)}"

    @property
    def observed_text(self) -> str:
        if self.observed is None:
            return "-"
        return _in_unit(self.observed, self.unit)

    def as_dict(self) -> dict[str, object]:
        return {
            "threshold": self.text,
            "metric": self.name,
            "op": self.op,
            "limit": self.limit,
            "observed": self.observed,
            "passed": self.passed,
            "note": self.note,
        }


@dataclass(frozen=True, slots=True)
class Threshold:
    """``metric[key] op limit``; see the module docstring."""

    text: str
    metric: str
    key: str | None
    op: str
    limit: float
    unit: str | None = None
    base: str = ""
    percentile: float | None = None

    @property
    def ref(self) -> str:
        return self.metric if self.key is None else f"{self.metric}[{self.key}]"

    def holds(self, observed: float) -> bool:
        return not math.isnan(observed) and OPS[self.op](observed, self.limit)

    def evaluate(self, metrics: Mapping[str, float]) -> ThresholdResult:
        """The result against the run's flat metrics (see the module docstring)."""
        observed = metrics.get(self.ref)
        if observed is None and self.key is not None and self.metric in metrics:
            observed = 0.0  # the family exists; this key never happened
        if observed is None:
            note = f"the run has no metric {self.ref!r}"
            close = difflib.get_close_matches(self.ref, list(metrics), n=1)
            if close:
                note += f" (did you mean {close[0]!r}?)"
            return self._result(None, False, note)
        observed = float(observed)
        if math.isnan(observed):
            return self._result(None, False, f"{self.ref} has no samples")
        return self._result(observed, self.holds(observed), "")

    def _result(self, observed: float | None, passed: bool, note: str) -> ThresholdResult:
        return ThresholdResult(
            self.ref, self.op, self.limit, observed, passed, self.text, note, self.unit
        )


def parse_threshold(text: str) -> Threshold:
    """Parse one threshold (see the module docstring); bad text → one-line ConfigError."""
    m = _THRESHOLD_RE.fullmatch(text)
    if m is None:
        raise ConfigError(
            f"threshold {text!r}: expected 'metric OP number' (OP one of < <= == != >= >),"
            " e.g. 'setup_p99<500ms' or 'errors==0'"
        )
    base, pct_text, key, op, num, unit = m.group("base", "pct", "key", "op", "num", "unit")
    percentile = None
    metric = base
    if pct_text is not None:
        percentile = float(pct_text)
        if not 0 < percentile <= 100:
            raise ConfigError(f"threshold {text!r}: a percentile must be above 0 and at most 100")
        metric = f"{base}_p{_exact(percentile)}"
    limit = parse_number(num + (unit or ""))
    return Threshold(text.strip(), metric, key, op, limit, unit, base, percentile)


def parse_thresholds(texts: Iterable[str]) -> list[Threshold]:
    return [parse_threshold(t) for t in texts]


def required_percentiles(thresholds: Iterable[Threshold]) -> list[tuple[str, float]]:
    """``(base, percentile)`` pairs the engine must compute, sorted, each once."""
    return sorted({(t.base, t.percentile) for t in thresholds if t.percentile is not None})


def flatten_metrics(metrics: Metrics) -> dict[str, float]:
    """A scenario :class:`~tunnelswarm.scenario.expect.Metrics` as a flat mapping: scalars
    by name, each keyed family as its total (``name``) and per key (``name[key]``)."""
    flat = dict(metrics.values)
    for name, family in metrics.families.items():
        flat[name] = float(sum(family.values()))
        for key, value in family.items():
            flat[f"{name}[{key}]"] = value
    return flat


def evaluate_all(
    thresholds: Iterable[Threshold], metrics: Mapping[str, float]
) -> list[ThresholdResult]:
    """One result per threshold, in order."""
    return [t.evaluate(metrics) for t in thresholds]


def exit_code(results: Iterable[ThresholdResult], *, interrupted: bool = False) -> int:
    """:data:`EXIT_OK` when the run completed and every threshold held, else
    :data:`EXIT_THRESHOLD_FAILED` (see the module docstring for :data:`EXIT_RUN_ERROR`)."""
    if interrupted or not all(r.passed for r in results):
        return EXIT_THRESHOLD_FAILED
    return EXIT_OK


def format_results(results: Iterable[ThresholdResult]) -> str:
    """A plain-text table, one row per threshold, and a summary line::

    threshold          observed  result
    setup_p99 < 500ms  231ms     ok
    errors == 0        -         FAILED  the run has no metric 'errors'
    1 of 2 thresholds held
    """
    rows = list(results)
    if not rows:
        return "no thresholds"
    table = [("threshold", "observed", "result", "")]
    table += [(r.condition, r.observed_text, "ok" if r.passed else "FAILED", r.note) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True))
        + (f"  {row[3]}" if row[3] else "")
        for row in table
    ]
    held = sum(r.passed for r in rows)
    if held == len(rows):
        lines.append(f"all {len(rows)} threshold(s) held")
    else:
        lines.append(f"{held} of {len(rows)} threshold(s) held")
    return "\n".join(line.rstrip() for line in lines)
