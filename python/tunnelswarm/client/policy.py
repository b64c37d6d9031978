"""Client behaviour policies: the virtual adapter's MTU, the MTU reconnect, DTLS retries.

Theory of operation
-------------------
Pure policy: no Trio, no clock, no IO. The session feeds in what happened (a CONNECT
answer, DTLS up, DTLS down) with ``now`` (seconds on the session's monotonic timeline),
asks :meth:`MtuPolicy.next_deadline`, sleeps until then and calls
:meth:`MtuPolicy.on_timeout`; it acts on the returned decisions: :class:`ApplyMtu` (set
the adapter MTU) and :class:`Reconnect` (log the agent's lines, tear the tunnel down,
reconnect with the cookie). Two MTU policies exist, named by the profile's
``mtu_policy`` (:func:`make_mtu_policy`):

``openconnect`` (protocol.md §6.1, verified against openconnect 9.01)
    adapter MTU = max(X-CSTP-MTU, X-DTLS-MTU) from the CONNECT answer, kept whether DTLS
    comes up or not; with PSK-NEGOTIATE the DTLS data MTU computed after the handshake
    lowers it ("DTLS MTU reduced to N"). No deadline, never a reconnect for MTU.

``anyconnect`` (§6.3, Cisco tech note 116881; the decision rule is an UNCONFIRMED model
of the tech note's description)::

    CONNECT answered ──► DTLS expected and X-DTLS-MTU given?
        no  ──► adapter = X-CSTP-MTU; no deadline                       (TLS only)
        yes ──► adapter = X-DTLS-MTU; deadline = now + dtls_give_up      (waiting)
    waiting ──DTLS up──► no deadline                                     (DTLS)
    DTLS ──DTLS down──► deadline = now + dtls_give_up                    (waiting)
    waiting ──deadline──► X-CSTP-MTU < adapter?
        yes ──► Reconnect(cause "mtu", reason code 16, the agent's four lines)
        no  ──► ApplyMtu(adapter, kept) and TLS only                     (e.g. 1427 ≥ 1418)

  The give-up clock starts when the tunnel comes up (the tech note: the reconnect comes
  "exactly one minute" after connect) and restarts when an established DTLS channel is
  lost (the tech note: "if the DTLS tunnel cannot be established *or is dropped*, the
  client fails over to TLS and adjusts the VA MTU, which requires a reconnect"; the time
  a dropped channel is given is UNCONFIRMED — modelled as the same give-up time). After
  the reconnect the session calls :meth:`MtuPolicy.on_connect` with the new answer, and
  the cycle starts again: with UDP still blocked the client reconnects every
  ``dtls_give_up`` seconds — the behaviour the tech note documents. A ``dtls_give_up`` of
  0 disables the give-up.

:class:`DtlsRetryPolicy` holds the DTLS attempt decisions (§5.5): the handshake give-up
per attempt, and the delay before the next attempt — at once after a dead peer with
``rehandshake`` (openconnect), else the retry period.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Protocol

from tunnelswarm.config.params import TunnelParams
from tunnelswarm.errors import ConfigError

__all__ = [
    "MTU_REASON_CODE",
    "AnyConnectMtuPolicy",
    "ApplyMtu",
    "DtlsRetryPolicy",
    "MtuPolicy",
    "OpenconnectMtuPolicy",
    "Reconnect",
    "agent_mtu_lines",
    "make_mtu_policy",
]

#: AnyConnect's "Reconfigure reason code 16: New MTU configuration." [TN116881]
MTU_REASON_CODE: Final = 16


def agent_mtu_lines(headend: str) -> tuple[str, ...]:
    """The AnyConnect agent's and UI's lines of an MTU reconfiguration [TN116881], in order.

    ``headend`` is what the UI names ("Reconnecting to 10.1.1.2...").
    """
    return (
        f"Reconfigure reason code {MTU_REASON_CODE}: New MTU configuration.",
        "The entire VPN connection is being reconfigured.",
        f"Reconnecting to {headend}...",
        "A new MTU needs to be applied to the VPN network interface. Disabling and"
        " re-enabling the Virtual Adapter. Applications utilizing the private network may"
        " need to be restarted.",
    )


@dataclass(frozen=True, slots=True)
class ApplyMtu:
    """Set the virtual adapter's MTU to ``mtu`` (possibly the value it already has)."""

    mtu: int
    reason: str


@dataclass(frozen=True, slots=True)
class Reconnect:
    """Tear the tunnel down and reconnect with the cookie, for ``cause``."""

    cause: str
    reason_code: int | None
    #: what the client logs before it reconnects (exact strings)
    lines: tuple[str, ...]
    #: the MTU the reconnect is meant to apply (the next CONNECT answer decides)
    new_mtu: int


class MtuPolicy(Protocol):
    """What the session asks of an MTU policy. Times are seconds on one timeline."""

    @property
    def adapter_mtu(self) -> int:
        """The MTU the policy has decided for the virtual adapter (0 before CONNECT)."""

    def on_connect(self, params: TunnelParams, now: float, *, dtls_expected: bool) -> ApplyMtu:
        """A CONNECT answer (first or after a reconnect). ``dtls_expected``: a DTLS
        channel will be attempted for it (offered by the headend, not disabled here)."""

    def on_dtls_up(self, now: float, *, data_mtu: int | None = None) -> ApplyMtu | None:
        """DTLS came up; ``data_mtu``: the tunnel MTU the DTLS session can carry, if the
        client computes one (PSK-NEGOTIATE, §6.1)."""

    def on_dtls_down(self, now: float) -> None:
        """An established DTLS channel was lost (dead peer)."""

    def next_deadline(self) -> float | None:
        """When :meth:`on_timeout` has something to decide, or None."""

    def on_timeout(self, now: float) -> ApplyMtu | Reconnect | None:
        """Decide what the deadline means; an early call decides nothing."""


class OpenconnectMtuPolicy:
    """openconnect: one MTU, max(X-CSTP-MTU, X-DTLS-MTU), never a reconnect (§6.1)."""

    def __init__(self) -> None:
        self._mtu = 0

    @property
    def adapter_mtu(self) -> int:
        return self._mtu

    def on_connect(self, params: TunnelParams, now: float, *, dtls_expected: bool) -> ApplyMtu:
        self._mtu = params.tunnel_mtu
        return ApplyMtu(self._mtu, "max(X-CSTP-MTU, X-DTLS-MTU)")

    def on_dtls_up(self, now: float, *, data_mtu: int | None = None) -> ApplyMtu | None:
        if data_mtu is not None and 0 < data_mtu < self._mtu:
            self._mtu = data_mtu
            return ApplyMtu(data_mtu, f"DTLS MTU reduced to {data_mtu}")
        return None

    def on_dtls_down(self, now: float) -> None:
        """Nothing: the MTU stays and DTLS is simply retried (§5.5)."""

    def next_deadline(self) -> float | None:
        return None

    def on_timeout(self, now: float) -> ApplyMtu | Reconnect | None:
        return None


class AnyConnectMtuPolicy:
    """AnyConnect 3.x+: the adapter sized for DTLS, reason code 16 when DTLS does not
    come (module docstring; UNCONFIRMED model of [TN116881])."""

    def __init__(self, *, give_up: float, headend: str) -> None:
        self.give_up = give_up
        self.headend = headend
        self._mtu = 0
        self._cstp_mtu = 0
        self._dtls_up = False
        self._deadline: float | None = None

    @property
    def adapter_mtu(self) -> int:
        return self._mtu

    def _arm(self, now: float) -> None:
        self._deadline = now + self.give_up if self.give_up > 0 else None

    def on_connect(self, params: TunnelParams, now: float, *, dtls_expected: bool) -> ApplyMtu:
        self._cstp_mtu = params.cstp_mtu or 0
        self._dtls_up = False
        if dtls_expected and params.dtls_mtu is not None:
            self._mtu = params.dtls_mtu
            self._arm(now)
            return ApplyMtu(self._mtu, "X-DTLS-MTU (DTLS expected)")
        self._mtu = self._cstp_mtu
        self._deadline = None
        return ApplyMtu(self._mtu, "X-CSTP-MTU (no DTLS)")

    def on_dtls_up(self, now: float, *, data_mtu: int | None = None) -> ApplyMtu | None:
        """DTLS is up: no give-up. ``data_mtu`` is ignored (AnyConnect offers no PSK)."""
        self._dtls_up = True
        self._deadline = None
        return None

    def on_dtls_down(self, now: float) -> None:
        if self._dtls_up:
            self._dtls_up = False
            self._arm(now)

    def next_deadline(self) -> float | None:
        return self._deadline

    def on_timeout(self, now: float) -> ApplyMtu | Reconnect | None:
        if self._deadline is None or now < self._deadline:
            return None
        self._deadline = None
        if self._cstp_mtu < self._mtu:
            return Reconnect(
                cause="mtu",
                reason_code=MTU_REASON_CODE,
                lines=agent_mtu_lines(self.headend),
                new_mtu=self._cstp_mtu,
            )
        return ApplyMtu(
            self._mtu,
            f"DTLS not up after {self.give_up:g} s: TLS only; X-CSTP-MTU {self._cstp_mtu}"
            f" >= adapter MTU {self._mtu}, MTU kept",
        )


def make_mtu_policy(name: str, *, give_up: float, headend: str) -> MtuPolicy:
    """The MTU policy a profile names (``mtu_policy``)."""
    if name == "anyconnect":
        return AnyConnectMtuPolicy(give_up=give_up, headend=headend)
    if name == "openconnect":
        return OpenconnectMtuPolicy()
    raise ConfigError(f"mtu_policy: unknown policy {name!r} (known: anyconnect, openconnect)")


@dataclass(frozen=True, slots=True)
class DtlsRetryPolicy:
    """When DTLS attempts give up and when the next one starts (§5.5)."""

    #: one handshake attempt gives up after this long
    handshake_timeout: float = 12.0
    #: the pause after a failed attempt
    retry_period: float = 60.0
    #: after a dead peer: "rehandshake" (at once) or "retry-period"
    dead_peer: str = "rehandshake"

    def delay_after(self, *, dead_peer: bool) -> float:
        """Seconds to wait before the next attempt: 0 = a new handshake at once."""
        if dead_peer and self.dead_peer == "rehandshake":
            return 0.0
        return self.retry_period
