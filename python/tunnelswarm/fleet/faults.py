"""Faults injected during a load run, and the outages they cause, client by client.

Theory of operation
-------------------
**Faults.** ``tunnelswarm run … --fault 'KIND at T [for D | down D]'`` (repeatable; the
same text in Python as :func:`parse_fault`) schedules one fault ``T`` seconds after the
plan's start (:data:`FAULT_KINDS`):

=================== ====================================================================
``udp-blackout``    every datagram between the clients and the headend is dropped for
                    ``D`` (DTLS dies by DPD; data falls back to CSTP), then UDP flows again
``tcp-cut``         every open TCP connection between clients and headend is reset once
                    (the clients reconnect with their session cookie)
``headend-pause``   the headend neither sends nor receives for ``D`` (a hung box: TCP
                    bytes wait, datagrams are lost)
``headend-restart`` the in-process mock ASA is stopped -- every connection closed, every
                    session forgotten, the listeners gone -- and started again ``D`` later
                    (``down``; default 0) with the same certificate and ports: a reload.
                    Old cookies are refused (401), so clients log in again as their
                    profile's reconnect policy and the load model allow
=================== ====================================================================

The first three act on the clients' own path (:class:`~tunnelswarm.drive.impair.
LinkImpairments`: in virtual time the in-memory network, on real sockets wrappers around
the clients' sockets), so they work against any headend and need no root -- they act
only on this process's packets. ``headend-restart`` needs the in-process mock; against
``--headend`` kill and restart the headend yourself: the outages are measured alike.

**Outages.** :class:`OutageTracker` turns the sessions' lives into outages per client
(per slot of the load model: the emulated user, whichever session currently plays it).
An outage begins when a client that had its tunnel up loses it -- the session starts a
reconnect (cause: ``transport``, ``dpd``, ``mtu``, ``rekey``) or ends in an error
(cause: the error's, e.g. ``cookie-rejected``) without the plan having stopped it. It
ends, *recovered*, when that client has a tunnel again: the same session reconnected
(``reconnect``), or, in the closed model, a new session of the slot came up (``new
session``). A client whose session failed in the open model does not come back (its
slot is not restarted): the outage ends there as ``lost``. Outages still open when the
run ends are *unrecovered* (:meth:`OutageTracker.finish`), and so is that of an
open-model client the plan stopped while it was down. (In the closed model a plan stop
leaves the outage open: the slot's next session may still recover it.)

**DTLS outages** are tracked alike, per client, on their own (``channel`` ``dtls``): the
client's tunnel is there but its DTLS channel, which it had, is not -- data goes over
CSTP (the fallback the seed problem is about). One begins when the DTLS channel is
declared dead (``dtls-down``: DPD, a UDP blackout) or when the client loses its tunnel
while DTLS was up; it ends (``dtls up``) when the client has DTLS again, in the same
session or a new one; otherwise lost or unrecovered like a tunnel outage.

Each outage is one :class:`Outage` record (client, slot, start, end, seconds, cause,
how it ended); the engine counts them in its :class:`~tunnelswarm.fleet.stats.RunStats`
(``outages[cause]``, ``outages_recovered``, ``outages_lost``, ``outages_unrecovered``,
the ``outage`` histogram of recovered outages' durations and the ``sessions_down``
gauge) and hands every record to ``on_outage`` (the report's ``outages.csv``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Final, Literal

from tunnelswarm.errors import ConfigError
from tunnelswarm.fleet.plan import parse_duration

__all__ = [
    "FAULT_KINDS",
    "OUTAGE_CSV_HEADER",
    "Fault",
    "Outage",
    "OutageTracker",
    "parse_fault",
]

FaultKind = Literal["udp-blackout", "tcp-cut", "headend-pause", "headend-restart"]
#: fault kind → what it does (``--fault`` help)
FAULT_KINDS: Final[dict[str, str]] = {
    "udp-blackout": "drop every datagram between clients and headend 'for D'",
    "tcp-cut": "reset every open TCP connection between clients and headend once",
    "headend-pause": "the headend neither sends nor receives 'for D'",
    "headend-restart": "stop the in-process mock ASA and start it again 'down D' later",
}
_KINDS: Final = ", ".join(FAULT_KINDS)
#: kinds that need a duration (``for``), and the one that may have ``down``
_NEEDS_FOR: Final = frozenset({"udp-blackout", "headend-pause"})
_FAULT_RE: Final = re.compile(
    r"\s*(?P<kind>[a-z-]+)\s+at\s+(?P<at>\S+)"
    r"(?:\s+(?P<word>for|down)\s+(?P<dur>\S+))?\s*"
)


@dataclass(frozen=True, slots=True)
class Fault:
    """One scheduled fault: ``kind`` at ``at`` seconds after the plan's start, lasting
    ``duration`` seconds (the blackout or pause; a restart's time down; 0 for a cut)."""

    kind: FaultKind
    at: float
    duration: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ConfigError(
                f"fault: unknown kind {self.kind!r} (one of {', '.join(FAULT_KINDS)})"
            )
        for what, v in (("at", self.at), ("duration", self.duration)):
            if not math.isfinite(v) or v < 0:
                raise ConfigError(f"fault {self.kind}: {what} must be zero or more, got {v!r}")
        if self.kind in _NEEDS_FOR and self.duration <= 0:
            raise ConfigError(f"fault {self.kind}: needs 'for D' with D more than zero")

    @property
    def needs_mock(self) -> bool:
        """Only the in-process mock ASA can be restarted by the engine."""
        return self.kind == "headend-restart"

    @property
    def end(self) -> float:
        return self.at + self.duration

    def describe(self) -> str:
        if self.kind in _NEEDS_FOR:
            return f"{self.kind} at {self.at:g}s for {self.duration:g}s"
        if self.kind == "headend-restart":
            return f"{self.kind} at {self.at:g}s down {self.duration:g}s"
        return f"{self.kind} at {self.at:g}s"


def parse_fault(text: str) -> Fault:
    """``"udp-blackout at 30s for 20s"``, ``"tcp-cut at 1m"``, ``"headend-pause at 10s
    for 5s"``, ``"headend-restart at 45s down 10s"`` → :class:`Fault`; anything else is a
    one-line ConfigError naming what was wrong."""
    m = _FAULT_RE.fullmatch(text)
    if m is None:
        raise ConfigError(
            f"--fault {text!r}: expected 'KIND at T [for D | down D]',"
            " e.g. 'udp-blackout at 30s for 20s'"
        )
    kind = m.group("kind")
    if kind not in FAULT_KINDS:
        raise ConfigError(
            f"--fault {text!r}: unknown kind {kind!r} (one of {', '.join(FAULT_KINDS)})"
        )
    at = parse_duration(m.group("at"), f"--fault {text!r}: 'at'")
    word, dur = m.group("word"), m.group("dur")
    duration = 0.0
    if word is not None:
        expected = "down" if kind == "headend-restart" else "for" if kind in _NEEDS_FOR else None
        if word != expected:
            allowed = f"'{expected} D'" if expected else "no duration"
            raise ConfigError(f"--fault {text!r}: {kind} takes {allowed}, not '{word}'")
        duration = parse_duration(dur, f"--fault {text!r}: '{word}'")
    try:
        return Fault(kind, at, duration)  # type: ignore[arg-type]
    except ConfigError as e:
        raise ConfigError(f"--fault {text!r}: {e}") from None


# ------------------------------------------------------------------ outages
Ending = Literal["reconnect", "new session", "dtls up", "lost", "unrecovered"]
Channel = Literal["tunnel", "dtls"]
OUTAGE_CSV_HEADER: Final = "slot,client,channel,start,end,seconds,cause,ended_by,detail"


@dataclass(frozen=True, slots=True)
class Outage:
    """One client's time without a tunnel (see the module docstring). ``start``/``end``:
    seconds since the plan's start; ``client``: the session number that lost the tunnel;
    ``ended_by``: ``reconnect``, ``new session`` (both recovered), ``lost`` or
    ``unrecovered`` (the run ended first, or the plan stopped the client while down)."""

    slot: int
    client: int
    start: float
    end: float
    cause: str
    ended_by: Ending
    detail: str = ""
    channel: Channel = "tunnel"

    @property
    def seconds(self) -> float:
        return max(0.0, self.end - self.start)

    @property
    def recovered(self) -> bool:
        return self.ended_by in ("reconnect", "new session", "dtls up")

    def csv_row(self) -> str:
        detail = self.detail.replace('"', "'")
        return (
            f"{self.slot},{self.client},{self.channel},{self.start:.3f},{self.end:.3f},"
            f'{self.seconds:.3f},{self.cause},{self.ended_by},"{detail}"'
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "slot": self.slot,
            "client": self.client,
            "channel": self.channel,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "seconds": round(self.seconds, 3),
            "cause": self.cause,
            "ended_by": self.ended_by,
            "detail": self.detail,
        }


@dataclass(slots=True)
class _Open:
    client: int
    start: float
    cause: str
    detail: str


class OutageTracker:
    """Outages per slot of one ``channel`` (module docstring). Pure: times are passed
    in. Every method that ends an outage returns its :class:`Outage` (None when the slot
    had none open)."""

    def __init__(self, channel: Channel = "tunnel") -> None:
        self.channel: Channel = channel
        self._open: dict[int, _Open] = {}

    @property
    def down(self) -> int:
        """Slots in an outage now."""
        return len(self._open)

    def is_down(self, slot: int) -> bool:
        return slot in self._open

    def open_outages(self) -> list[tuple[int, int, float, str]]:
        """``(slot, client, start, cause)`` of each open outage, longest first."""
        items = sorted(self._open.items(), key=lambda kv: (kv[1].start, kv[0]))
        return [(slot, o.client, o.start, o.cause) for slot, o in items]

    def lost_tunnel(self, slot: int, client: int, t: float, cause: str, detail: str = "") -> bool:
        """The client of ``slot`` lost its tunnel at ``t``; True when an outage began
        (False: one was open already -- the first cause stands)."""
        if slot in self._open:
            return False
        self._open[slot] = _Open(client, t, cause, detail)
        return True

    def end(self, slot: int, t: float, how: Ending) -> Outage | None:
        """End the slot's open outage at ``t`` as ``how``."""
        o = self._open.pop(slot, None)
        if o is None:
            return None
        return Outage(
            slot, o.client, o.start, max(t, o.start), o.cause, how, o.detail, self.channel
        )

    def tunnel_up(self, slot: int, t: float, *, new_session: bool) -> Outage | None:
        """The client of ``slot`` has a tunnel again at ``t``."""
        return self.end(slot, t, "new session" if new_session else "reconnect")

    def lost(self, slot: int, t: float) -> Outage | None:
        """The client will not come back (open model: a failed session's slot is gone)."""
        return self.end(slot, t, "lost")

    def gone(self, slot: int, t: float) -> Outage | None:
        """The client was stopped by the plan while down and will not come back (open
        model): unrecovered."""
        return self.end(slot, t, "unrecovered")

    def finish(self, t: float) -> list[Outage]:
        """The run ended at ``t``: every open outage, unrecovered, in slot order."""
        out = [o for slot in sorted(self._open) if (o := self.end(slot, t, "unrecovered"))]
        return out
