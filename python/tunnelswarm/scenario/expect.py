"""Expectations of a scenario and the verdicts they give.

Theory of operation
-------------------
An expectation is one line a person can read, with the reason it is expected::

    check = "6 <= reconnects_per_10min[mtu] <= 11"
    why   = "tech note: the client reconnects about a minute after every connect"

:func:`parse_check` turns the text into an :class:`Expectation`: a *metric reference*
(a name, optionally with one ``[key]``, e.g. ``asp_drop[mp-svc-no-fragment]`` or
``syslog[722036]``) compared with numbers by one operator (``<``, ``<=``, ``==``, ``!=``,
``>=``, ``>``), or bracketed by two (``lo <= metric <= hi``). Numbers may carry a unit:
``500ms``, ``30s``, ``2m`` are seconds; ``1.5k``/``2M`` multiply by 10³/10⁶; a trailing
``%`` divides by 100.

A run produces :class:`Metrics`: plain numbers (``dtls_up_ratio``) and keyed families
(``reconnects_per_10min`` → ``{"mtu": 9.0}``). A keyed reference to a key that never
happened reads 0 (no reconnect with cause ``dpd`` means ``reconnects[dpd] == 0``); a
reference to a metric the run does not have at all is an error in the scenario, reported
as a failed verdict whose ``observed`` says so, never a crash.

:func:`evaluate` gives one :class:`Verdict` per expectation; a scenario passes when all
of its verdicts pass. Pure code: no IO, no clock.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from tunnelswarm.errors import ConfigError

__all__ = [
    "OPS",
    "Expectation",
    "Metrics",
    "Verdict",
    "evaluate",
    "format_number",
    "parse_check",
    "parse_number",
]

#: the comparison operators of checks (and of load-run thresholds)
OPS: Final[dict[str, Callable[[float, float], bool]]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
}
_OP_RE = r"(<=|>=|==|!=|<|>)"
_NAME_RE = r"([a-z_][a-z0-9_]*)(?:\[([A-Za-z0-9_.:-]+)\])?"
_NUM_RE = r"([-+]?[0-9]+(?:\.[0-9]+)?(?:us|ms|s|m|h|k|M|%)?)"
_SIMPLE = re.compile(rf"^\s*{_NAME_RE}\s*{_OP_RE}\s*{_NUM_RE}\s*$")
_RANGE = re.compile(rf"^\s*{_NUM_RE}\s*(<=|<)\s*{_NAME_RE}\s*(<=|<)\s*{_NUM_RE}\s*$")
_UNITS: dict[str, float] = {
    "us": 1e-6,
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "k": 1e3,
    "M": 1e6,
    "%": 0.01,
}


def parse_number(text: str) -> float:
    """``"30s"`` → 30.0, ``"500ms"`` → 0.5, ``"250us"`` → 0.00025, ``"2m"`` → 120.0,
    ``"99%"`` → 0.99, ``"3"`` → 3.0."""
    m = re.fullmatch(r"\s*([-+]?[0-9]+(?:\.[0-9]+)?)\s*(us|ms|s|m|h|k|M|%)?\s*", text)
    if m is None:
        raise ConfigError(f"{text!r} is not a number (units: us ms s m h k M %)")
    value = float(m.group(1))
    return value * _UNITS[m.group(2)] if m.group(2) else value


def format_number(value: float) -> str:
    """A number as a person writes it: ``3``, ``0.95``, ``1347``."""
    if math.isnan(value):
        return "n/a"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.3g}"


@dataclass(frozen=True, slots=True)
class Expectation:
    """``lo op_lo metric op_hi hi`` or ``metric op value`` (then ``lo`` is None)."""

    text: str
    metric: str
    key: str | None
    op: str
    value: float
    low: float | None = None
    low_op: str | None = None
    why: str = ""

    @property
    def ref(self) -> str:
        return self.metric if self.key is None else f"{self.metric}[{self.key}]"

    def holds(self, observed: float) -> bool:
        if math.isnan(observed):
            return False
        low, low_op = self.low, self.low_op
        if low is not None and low_op is not None and not OPS[low_op](low, observed):
            return False
        return OPS[self.op](observed, self.value)

    def expected_text(self) -> str:
        """The condition without the metric name, e.g. ``>= 6 and <= 11``."""
        if self.low is not None and self.low_op is not None:
            flipped = {"<": ">", "<=": ">="}[self.low_op]
            return f"{flipped} {format_number(self.low)} and {self.op} {format_number(self.value)}"
        return f"{self.op} {format_number(self.value)}"


def parse_check(text: str, why: str = "") -> Expectation:
    """Parse one expectation (see the module docstring); bad text → one-line ConfigError."""
    m = _SIMPLE.match(text)
    if m is not None:
        name, key, op, num = m.groups()
        return Expectation(text.strip(), name, key, op, parse_number(num), why=why)
    m = _RANGE.match(text)
    if m is not None:
        lo, lo_op, name, key, hi_op, hi = m.groups()
        return Expectation(
            text.strip(),
            name,
            key,
            hi_op,
            parse_number(hi),
            low=parse_number(lo),
            low_op=lo_op,
            why=why,
        )
    raise ConfigError(
        f"expectation {text!r}: expected 'metric OP number' or 'number OP metric OP number'"
        " (OP one of < <= == != >= >)"
    )


@dataclass
class Metrics:
    """What a run measured: scalar metrics and keyed families."""

    values: dict[str, float] = field(default_factory=dict)
    families: dict[str, dict[str, float]] = field(default_factory=dict)

    def set(self, name: str, value: float) -> None:
        self.values[name] = float(value)

    def family(self, name: str, counts: Mapping[str, float] | None = None) -> dict[str, float]:
        """The keyed family ``name`` (created empty), updated from ``counts``."""
        fam = self.families.setdefault(name, {})
        if counts:
            for k, v in counts.items():
                fam[str(k)] = float(v)
        return fam

    def lookup(self, metric: str, key: str | None) -> float | None:
        """The value, 0 for a missing key of an existing family, None if unknown."""
        if key is None:
            if metric in self.values:
                return self.values[metric]
            fam = self.families.get(metric)
            return None if fam is None else float(sum(fam.values()))
        fam = self.families.get(metric)
        if fam is None:
            return None
        return fam.get(key, 0.0)

    def as_dict(self) -> dict[str, object]:
        return {**self.values, **{k: dict(v) for k, v in self.families.items()}}


@dataclass(frozen=True, slots=True)
class Verdict:
    expectation: Expectation
    observed: float | None
    passed: bool
    note: str = ""

    def as_dict(self) -> dict[str, object]:
        e = self.expectation
        return {
            "check": e.text,
            "metric": e.ref,
            "expected": e.expected_text(),
            "observed": self.observed,
            "passed": self.passed,
            "why": e.why,
            "note": self.note,
        }


def evaluate(expectations: Iterable[Expectation], metrics: Metrics) -> list[Verdict]:
    """One verdict per expectation, in order."""
    out = []
    for e in expectations:
        observed = metrics.lookup(e.metric, e.key)
        if observed is None:
            out.append(Verdict(e, None, False, f"the run has no metric {e.metric!r}"))
        else:
            out.append(Verdict(e, observed, e.holds(observed)))
    return out
