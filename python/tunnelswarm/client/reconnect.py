"""Reconnect schedule after a lost CSTP connection (protocol.md §7.4, openconnect
``ssl_reconnect``). Pure policy: the session asks, sleeps and acts.

The first attempt follows at once. After each failed attempt: give up if the remaining
budget is ≤ 0, else sleep ``interval`` (10 s, then +10 s per attempt, at most 100 s)
and subtract it from the budget (``--reconnect-timeout``, default 300 s). A 401 (or a
different address) ends the session at once, whatever the budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ReconnectPolicy", "ReconnectSchedule"]


@dataclass(frozen=True, slots=True)
class ReconnectPolicy:
    """openconnect's defaults (Appendix A)."""

    timeout: float = 300.0
    interval: float = 10.0
    max_interval: float = 100.0

    def schedule(self) -> ReconnectSchedule:
        return ReconnectSchedule(self)


@dataclass(slots=True)
class ReconnectSchedule:
    """State of one reconnect episode."""

    policy: ReconnectPolicy
    remaining: float = field(init=False)
    interval: float = field(init=False)
    attempts: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.remaining = self.policy.timeout
        self.interval = self.policy.interval

    def after_failure(self) -> float | None:
        """Seconds to sleep before the next attempt, or None to give up."""
        self.attempts += 1
        if self.remaining <= 0:
            return None
        delay = self.interval
        self.remaining -= delay
        self.interval = min(self.interval + self.policy.interval, self.policy.max_interval)
        return delay
