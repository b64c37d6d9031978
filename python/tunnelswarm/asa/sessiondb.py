"""The mock ASA's VPN session database and its ``show vpn-sessiondb`` renderers.

Sans-IO: nothing here reads a clock, opens a socket or sleeps. Every operation takes
``now`` (float seconds on the caller's monotonic timeline); the renderers additionally
take ``wall`` (the :class:`~datetime.datetime` that corresponds to ``now``) where the ASA
shows wall-clock time.

Model (protocol.md §1 item 4, §7.2, §8.2, §8.3):

* A session is created after authentication. It always carries an **AnyConnect-Parent**
  tunnel (the authenticated object behind the cookie). An **SSL-Tunnel** and a
  **DTLS-Tunnel** attach to it and may come and go.
* Losing the SSL-Tunnel (DPD, TCP reset, reconnect) removes the DTLS-Tunnel too, but the
  Parent stays, keeps its index and its assigned address, and is now *inactive*: the
  ``Inactivity`` counter of ``show vpn-sessiondb`` runs from that moment. A cookie
  reconnect (:meth:`SessionDb.reconnect`) within the disconnected timeout returns the same
  session (same address); after it, ``None`` (the server answers the CONNECT with 401).
* Timers: idle timeout (no tunnelled traffic, reason ``Idle Timeout``), session timeout
  (max connect time, reason ``Max time exceeded``) and disconnected timeout (Parent alone
  too long). The ASA sends the same number for idle and disconnected timeouts (§7.2) and
  reports the Parent's removal as ``Idle Timeout``; that reason for the disconnected
  timeout is our reading (UNCONFIRMED).
* Whether DPD/keepalive frames reset the idle timer is UNCONFIRMED (§7.2); here only
  :meth:`SessionDb.touch` with a non-zero byte count does. Callers do not touch for DPD.
* ``vpn-simultaneous-logins N``: before a user's new session is created,
  :meth:`SessionDb.make_room` ends that user's sessions until fewer than ``N`` are left,
  as the ASA configuration guide describes it: "the session with the longest idle time is
  logged off. If all current sessions have been idle an equally long time, then the
  oldest session is logged off" (idle = since the last tunnelled byte, as for the idle
  timeout). The syslog 113019 reason is ``Port Preempted`` (the RADIUS
  Acct-Terminate-Cause wording the ASA's reasons follow; UNCONFIRMED for this case).

Scale: every per-packet or per-session operation is O(1) dict work; :meth:`SessionDb.expire`
pops a deadline heap with lazy invalidation (O(k log n) for k due entries), so 10,000+
sessions cost nothing between expiries. :meth:`SessionDb.summary` reads running counters.

Choices where Cisco publishes nothing (UNCONFIRMED):

* Cookie text ``<40 hex>@<n>@<4 hex>@<40 hex>`` (§2.3.4): the hex parts are random, ``n``
  is the session index (its meaning on a real ASA is unknown).
* ``Audt Sess ID`` = headend IPv4 as 8 hex + (index << 12) as 8 hex + login Unix time as 8
  hex: this decomposition fits the two real samples in ntc-templates (index 1018 →
  ``003fa000``, 55620 → ``0d944000``; the second one's time part equals its Login Time).
* Login Time prints the day of month without padding (``Mar 7``).
"""

from __future__ import annotations

import heapq
import ipaddress
import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import Final, Protocol

from tunnelswarm.errors import LocalProtocolError, TunnelswarmError

__all__ = [
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_LICENSE",
    "AddressAllocator",
    "EndReason",
    "EndedSession",
    "EndedTunnel",
    "NoAddressAvailable",
    "Session",
    "SessionDb",
    "SessionLimitReached",
    "SessionLimits",
    "SessionSummary",
    "Tunnel",
    "TunnelKind",
    "asa_cipher_names",
    "format_duration",
    "format_wall_time",
    "render_vpn_sessiondb",
    "render_vpn_sessiondb_anyconnect",
    "render_vpn_sessiondb_summary",
]

#: ``vpn-idle-timeout`` default, 30 minutes (ASA documentation default)
DEFAULT_IDLE_TIMEOUT: Final = 1800.0
#: the ``License`` line of ``show vpn-sessiondb anyconnect`` (§8.2)
DEFAULT_LICENSE: Final = "AnyConnect Premium"

_ENC_NONE: Final = "none"


class NoAddressAvailable(TunnelswarmError):
    """The address pool has nothing left for this user (ASA syslog 737013-ish)."""

    cause = "asa-pool-exhausted"


class SessionLimitReached(TunnelswarmError):
    """The device's VPN capacity is reached; the ASA refuses the login."""

    cause = "asa-session-limit"


class AddressAllocator(Protocol):
    """What the session database needs from an address pool (the config module owns it)."""

    def allocate(self, user: str) -> str | None:
        """An address for ``user``, or ``None`` if the pool is exhausted."""
        ...

    def release(self, ip: str) -> None:
        """Give ``ip`` back to the pool."""
        ...


class TunnelKind(Enum):
    """The three session objects of §1 item 4, valued by their ``show`` spelling."""

    PARENT = "AnyConnect-Parent"
    SSL = "SSL-Tunnel"
    DTLS = "DTLS-Tunnel"


class EndReason(Enum):
    """Syslog 113019 ``Reason:`` strings (§8.3)."""

    USER_REQUESTED = "User Requested"
    IDLE_TIMEOUT = "Idle Timeout"
    MAX_TIME = "Max time exceeded"
    ADMIN_RESET = "Administrator Reset"
    PORT_PREEMPTED = "Port Preempted"


@dataclass(frozen=True, slots=True)
class SessionLimits:
    """Per-session timers in seconds; ``None`` = unlimited.

    ``disconnected_timeout=None`` means "same as the idle timeout", which is what a real ASA
    advertises (§7.2: ``X-CSTP-Idle-Timeout`` = ``X-CSTP-Disconnected-Timeout``).
    """

    idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT
    session_timeout: float | None = None
    disconnected_timeout: float | None = None

    @property
    def effective_disconnected_timeout(self) -> float | None:
        if self.disconnected_timeout is not None:
            return self.disconnected_timeout
        return self.idle_timeout


@dataclass(slots=True)
class Tunnel:
    """One of the Parent / SSL / DTLS objects of a session (``Tunnel ID`` ``<index>.<n>``)."""

    kind: TunnelKind
    tunnel_id: str
    started_at: float
    encryption: str = _ENC_NONE
    hashing: str = _ENC_NONE
    public_ip: str = ""
    src_port: int = 0
    dst_port: int = 0
    encapsulation: str = ""
    bytes_tx: int = 0
    bytes_rx: int = 0


@dataclass(frozen=True, slots=True)
class EndedTunnel:
    """A tunnel that went away (for 722023 / 722037 syslogs)."""

    session: Session
    tunnel: Tunnel
    ended_at: float
    reason: str


@dataclass(frozen=True, slots=True)
class EndedSession:
    """A session removed from the database (for 113019 / 716002 syslogs)."""

    session: Session
    reason: EndReason
    ended_at: float
    tunnels: tuple[EndedTunnel, ...] = ()

    @property
    def duration(self) -> float:
        return self.ended_at - self.session.created_at


@dataclass(slots=True, eq=False)
class Session:
    """One row of ``show vpn-sessiondb anyconnect``. Mutated only through :class:`SessionDb`."""

    index: int
    username: str
    group_policy: str
    tunnel_group: str
    assigned_ip: str
    public_ip: str
    created_at: float
    limits: SessionLimits
    cookie: str
    audit_id: str
    parent: Tunnel
    login_wall: datetime | None = None
    license: str = DEFAULT_LICENSE
    ssl: Tunnel | None = None
    dtls: Tunnel | None = None
    bytes_tx: int = 0
    bytes_rx: int = 0
    last_activity: float = 0.0
    disconnected_since: float | None = None
    ended: EndReason | None = None
    ip_from_pool: bool = False
    _tunnel_seq: int = 1
    _sched_seq: int = field(default=-1, repr=False)

    @property
    def is_active(self) -> bool:
        """ASA "active": an SSL-Tunnel exists. Otherwise the Parent is alone (inactive)."""
        return self.ssl is not None

    @property
    def tunnels(self) -> tuple[Tunnel, ...]:
        return tuple(t for t in (self.parent, self.ssl, self.dtls) if t is not None)

    @property
    def protocol(self) -> str:
        """The ``Protocol`` line: ``AnyConnect-Parent SSL-Tunnel DTLS-Tunnel``."""
        return " ".join(t.kind.value for t in self.tunnels)

    def inactivity(self, now: float) -> float:
        """Seconds since only the Parent is left (0 while an SSL-Tunnel exists)."""
        if self.disconnected_since is None:
            return 0.0
        return max(0.0, now - self.disconnected_since)

    def duration(self, now: float) -> float:
        return max(0.0, now - self.created_at)

    def next_deadline(self) -> tuple[float, EndReason] | None:
        """The earliest timer that will end this session, with its reason."""
        best: tuple[float, EndReason] | None = None
        lim = self.limits
        if lim.session_timeout is not None:
            best = (self.created_at + lim.session_timeout, EndReason.MAX_TIME)
        cands: list[float] = []
        if lim.idle_timeout is not None:
            cands.append(self.last_activity + lim.idle_timeout)
        disc = lim.effective_disconnected_timeout
        if self.disconnected_since is not None and disc is not None:
            cands.append(self.disconnected_since + disc)
        if cands:
            idle = min(cands)
            # ties go to Max time exceeded (it was set first)
            if best is None or idle < best[0]:
                best = (idle, EndReason.IDLE_TIMEOUT)
        return best


@dataclass(frozen=True, slots=True)
class SessionSummary:
    """Running counters behind ``show vpn-sessiondb [summary]``."""

    active: int
    inactive: int
    cumulative: int
    peak_concurrent: int
    capacity: int | None
    parent_active: int
    parent_cumulative: int
    parent_peak: int
    ssl_active: int
    ssl_cumulative: int
    ssl_peak: int
    dtls_active: int
    dtls_cumulative: int
    dtls_peak: int

    @property
    def total(self) -> int:
        return self.active + self.inactive


@dataclass(slots=True)
class _Counter:
    active: int = 0
    cumulative: int = 0
    peak: int = 0

    def up(self) -> None:
        self.active += 1
        self.cumulative += 1
        self.peak = max(self.peak, self.active)

    def down(self) -> None:
        self.active -= 1


def asa_cipher_names(openssl_name: str) -> tuple[str, str]:
    """Map an OpenSSL / IANA cipher-suite name to the ASA's ``Encryption``/``Hashing`` words.

    ``AES256-SHA`` → ``("AES256", "SHA1")``; ``ECDHE-RSA-AES256-GCM-SHA384`` →
    ``("AES-GCM-256", "SHA384")`` (both spellings appear in real output, §8.2);
    ``RC4-SHA`` → ``("RC4", "SHA1")``; ``DES-CBC3-SHA`` → ``("3DES", "SHA1")``.
    """
    parts = openssl_name.upper().replace("_", "-").split("-")
    gcm = "GCM" in parts
    enc = "unknown"
    for i, p in enumerate(parts):
        bits = ""
        if p in ("AES128", "AES256"):
            bits = p[3:]
        elif p == "AES" and i + 1 < len(parts) and parts[i + 1] in ("128", "256"):
            bits = parts[i + 1]
        if bits:
            enc = f"AES-GCM-{bits}" if gcm else f"AES{bits}"
            break
        if p in ("RC4", "3DES", "CBC3"):
            enc = "3DES" if p == "CBC3" else p
            break
        if p == "NULL":
            enc = _ENC_NONE
            break
    hashing = {"SHA": "SHA1", "SHA256": "SHA256", "SHA384": "SHA384", "MD5": "MD5"}.get(
        parts[-1], "unknown"
    )
    return enc, hashing


def format_duration(seconds: float) -> str:
    """ASA duration: ``2h:21m:21s``, ``1d 12h:33m:07s`` (§8.2; also syslog 113019)."""
    s = max(0, int(seconds))
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    body = f"{hours}h:{minutes:02d}m:{s:02d}s"
    return f"{days}d {body}" if days else body


def format_wall_time(wall: datetime, *, weekday: bool = True) -> str:
    """ASA wall time: ``14:28:09 CDT Tue Mar 17 2020`` (``weekday=False`` drops ``Tue``)."""
    tz = wall.tzname() or "UTC"
    day = f"{wall:%a} " if weekday else ""
    return f"{wall:%H:%M:%S} {tz} {day}{wall:%b} {wall.day} {wall.year}"


def _audit_id(headend_ip: str, index: int, login_unix: int) -> str:
    try:
        ip_hex = int(ipaddress.IPv4Address(headend_ip))
    except ValueError:
        ip_hex = 0
    return f"{ip_hex:08x}{(index << 12) & 0xFFFFFFFF:08x}{login_unix & 0xFFFFFFFF:08x}"


class SessionDb:
    """All AnyConnect sessions of one mock ASA, indexed by session index and by cookie."""

    def __init__(
        self,
        *,
        headend_ip: str = "0.0.0.0",
        allocator: AddressAllocator | None = None,
        capacity: int | None = None,
        first_index: int = 1,
        random_bytes: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        self.headend_ip = headend_ip
        self.capacity = capacity
        self._allocator = allocator
        self._random = random_bytes
        self._next_index = first_index
        self._by_index: dict[int, Session] = {}
        self._by_cookie: dict[str, Session] = {}
        self._by_user: dict[str, dict[int, Session]] = {}  # user -> index -> session
        self._heap: list[tuple[float, int, int]] = []  # (deadline, seq, index)
        self._seq = 0
        self._pending: list[EndedSession] = []  # ended lazily (reconnect), not yet reported
        self._sessions = _Counter()
        self._parent = _Counter()
        self._ssl = _Counter()
        self._dtls = _Counter()
        self._inactive = 0

    # ---------------------------------------------------------------- queries
    def __len__(self) -> int:
        return len(self._by_index)

    def __iter__(self) -> Iterator[Session]:
        """Sessions in index order (creation order)."""
        return iter(list(self._by_index.values()))

    def get(self, index: int) -> Session | None:
        return self._by_index.get(index)

    def lookup_cookie(self, cookie: str) -> Session | None:
        """The live session a cookie names, without any timer check."""
        return self._by_cookie.get(cookie)

    def user_sessions(self, user: str) -> list[Session]:
        """The live sessions of ``user``, oldest first."""
        return list(self._by_user.get(user, {}).values())

    def count_user(self, user: str) -> int:
        """How many sessions ``user`` holds (O(1))."""
        return len(self._by_user.get(user, ()))

    # ---------------------------------------------------------------- lifecycle
    def create(
        self,
        user: str,
        group_policy: str,
        tunnel_group: str,
        assigned_ip: str | None,
        public_ip: str,
        now: float,
        limits: SessionLimits | None = None,
        *,
        wall: datetime | None = None,
        license: str = DEFAULT_LICENSE,
    ) -> Session:
        """A new authenticated session with its AnyConnect-Parent and a fresh cookie.

        ``assigned_ip=None`` takes an address from the allocator (raises
        :class:`NoAddressAvailable` if it has none). ``wall`` (the wall time at ``now``)
        fixes Login Time and the audit id; without it both are derived at render time.
        """
        if self.capacity is not None and len(self._by_index) >= self.capacity:
            raise SessionLimitReached(f"VPN capacity {self.capacity} reached")
        from_pool = False
        if assigned_ip is None:
            if self._allocator is None:
                raise LocalProtocolError("no assigned_ip and no address allocator")
            assigned_ip = self._allocator.allocate(user)
            if assigned_ip is None:
                raise NoAddressAvailable(f"no address available for {user}")
            from_pool = True
        index = self._next_index
        self._next_index += 1
        login_unix = int(wall.timestamp()) if wall is not None else int(now)
        session = Session(
            index=index,
            username=user,
            group_policy=group_policy,
            tunnel_group=tunnel_group,
            assigned_ip=assigned_ip,
            public_ip=public_ip,
            created_at=now,
            limits=limits if limits is not None else SessionLimits(),
            cookie="",
            audit_id=_audit_id(self.headend_ip, index, login_unix),
            parent=Tunnel(TunnelKind.PARENT, f"{index}.1", now, public_ip=public_ip),
            login_wall=wall,
            license=license,
            last_activity=now,
            # no tunnel yet: the Parent alone, inactive until the first CONNECT
            disconnected_since=now,
            ip_from_pool=from_pool,
        )
        self._by_index[index] = session
        self._by_user.setdefault(user, {})[index] = session
        self.issue_cookie(session)
        self._sessions.up()
        self._parent.up()
        self._inactive += 1
        self._schedule(session)
        return session

    def issue_cookie(self, session: Session) -> str:
        """(Re)issue the session's cookie; the previous one stops working."""
        self._by_cookie.pop(session.cookie, None)
        r = self._random
        while True:
            head, mid, tail = r(20).hex().upper(), r(2).hex().upper(), r(20).hex().upper()
            cookie = f"{head}@{session.index}@{mid}@{tail}"
            if cookie not in self._by_cookie:
                break
        session.cookie = cookie
        self._by_cookie[cookie] = session
        return cookie

    def reconnect(self, cookie: str, now: float) -> Session | None:
        """CONNECT with a cookie: the same session (same address) while its timers run.

        ``None`` → answer 401. A session whose timer has run out is ended here and
        reported by the next :meth:`expire`.
        """
        session = self._by_cookie.get(cookie)
        if session is None:
            return None
        due = session.next_deadline()
        if due is not None and due[0] <= now:
            self._pending.append(self._end(session, due[1], now, due[1].value))
            return None
        return session

    def attach_ssl(
        self,
        session: Session,
        now: float,
        encryption: str,
        hashing: str,
        *,
        src_port: int = 0,
        dst_port: int = 443,
        encapsulation: str = "TLSv1.2",
        public_ip: str | None = None,
    ) -> list[EndedTunnel]:
        """The CONNECT succeeded: an SSL-Tunnel is up.

        Returns the tunnels it replaced (an old SSL-Tunnel and its DTLS-Tunnel: syslog
        722032 "New TCP SVC connection replacing old connection").
        """
        self._require_live(session)
        replaced = self.detach_ssl(session, now, "Replaced") if session.ssl else []
        session.ssl = self._tunnel(
            session,
            TunnelKind.SSL,
            now,
            (encryption, hashing),
            (src_port, dst_port),
            encapsulation,
            public_ip,
        )
        self._ssl.up()
        if session.disconnected_since is not None:
            session.disconnected_since = None
            self._inactive -= 1
        if public_ip is not None:
            session.public_ip = public_ip
        return replaced

    def attach_dtls(
        self,
        session: Session,
        now: float,
        encryption: str,
        hashing: str,
        *,
        src_port: int = 0,
        dst_port: int = 443,
        encapsulation: str = "DTLSv1.0",
    ) -> list[EndedTunnel]:
        """The DTLS handshake finished. Requires an SSL-Tunnel (the DTLS keys come from it)."""
        self._require_live(session)
        if session.ssl is None:
            raise LocalProtocolError(f"session {session.index}: DTLS without an SSL-Tunnel")
        replaced = self.detach_dtls(session, now, "Replaced") if session.dtls else []
        session.dtls = self._tunnel(
            session,
            TunnelKind.DTLS,
            now,
            (encryption, hashing),
            (src_port, dst_port),
            encapsulation,
            None,
        )
        self._dtls.up()
        return replaced

    def detach_dtls(self, session: Session, now: float, reason: str) -> list[EndedTunnel]:
        """The DTLS-Tunnel went away (DPD, rekey); the session keeps running over SSL."""
        tun = session.dtls
        if tun is None:
            return []
        session.dtls = None
        self._dtls.down()
        return [EndedTunnel(session, tun, now, reason)]

    def detach_ssl(self, session: Session, now: float, reason: str) -> list[EndedTunnel]:
        """The SSL-Tunnel went away; the DTLS-Tunnel goes with it, the Parent stays.

        From ``now`` the session is inactive, its Inactivity counter runs and the
        disconnected timeout starts.
        """
        ended = self.detach_dtls(session, now, reason)
        tun = session.ssl
        if tun is None:
            return ended
        session.ssl = None
        self._ssl.down()
        ended.append(EndedTunnel(session, tun, now, reason))
        if session.disconnected_since is None and session.ended is None:
            session.disconnected_since = now
            self._inactive += 1
            self._schedule(session)
        return ended

    def touch(
        self,
        session: Session,
        now: float,
        bytes_in: int = 0,
        bytes_out: int = 0,
        *,
        tunnel: TunnelKind | None = None,
    ) -> None:
        """Count tunnelled traffic. ``bytes_in`` = from the client (``Bytes Rx``),
        ``bytes_out`` = to the client (``Bytes Tx``). Non-zero traffic resets the idle timer.
        O(1): the deadline heap is fixed up lazily by :meth:`expire`."""
        session.bytes_rx += bytes_in
        session.bytes_tx += bytes_out
        if tunnel is TunnelKind.SSL and session.ssl is not None:
            session.ssl.bytes_rx += bytes_in
            session.ssl.bytes_tx += bytes_out
        elif tunnel is TunnelKind.DTLS and session.dtls is not None:
            session.dtls.bytes_rx += bytes_in
            session.dtls.bytes_tx += bytes_out
        if bytes_in or bytes_out:
            session.last_activity = max(session.last_activity, now)

    def logout(
        self, session: Session, now: float, reason: EndReason = EndReason.USER_REQUESTED
    ) -> EndedSession:
        """End a session now (user logout, ``vpn-sessiondb logoff``, preemption)."""
        self._require_live(session)
        return self._end(session, reason, now, reason.value)

    def make_room(self, user: str, max_logins: int, now: float) -> list[EndedSession]:
        """``vpn-simultaneous-logins``: end ``user``'s sessions, longest idle first (ties:
        the oldest), until fewer than ``max_logins`` are left, so that one more may log
        in. Reason ``Port Preempted``. ``max_logins`` < 1 is the caller's business (the
        login is refused): LocalProtocolError."""
        if max_logins < 1:
            raise LocalProtocolError(f"make_room with max_logins {max_logins}")
        out: list[EndedSession] = []
        reason = EndReason.PORT_PREEMPTED
        while (mine := self._by_user.get(user)) and len(mine) >= max_logins:
            victim = min(mine.values(), key=lambda s: (s.last_activity, s.index))
            out.append(self._end(victim, reason, now, reason.value))
        return out

    def expire(self, now: float) -> list[EndedSession]:
        """End every session whose timer ran out by ``now``; return them with reasons."""
        out, self._pending = self._pending, []
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, seq, index = heapq.heappop(heap)
            session = self._by_index.get(index)
            if session is None or session._sched_seq != seq:
                continue  # stale entry
            due = session.next_deadline()
            if due is None:
                session._sched_seq = -1
                continue
            if due[0] <= now:
                out.append(self._end(session, due[1], now, due[1].value))
            else:
                self._push(session, due[0])
        return out

    def summary(self) -> SessionSummary:
        return SessionSummary(
            active=len(self._by_index) - self._inactive,
            inactive=self._inactive,
            cumulative=self._sessions.cumulative,
            peak_concurrent=self._sessions.peak,
            capacity=self.capacity,
            parent_active=self._parent.active,
            parent_cumulative=self._parent.cumulative,
            parent_peak=self._parent.peak,
            ssl_active=self._ssl.active,
            ssl_cumulative=self._ssl.cumulative,
            ssl_peak=self._ssl.peak,
            dtls_active=self._dtls.active,
            dtls_cumulative=self._dtls.cumulative,
            dtls_peak=self._dtls.peak,
        )

    # ---------------------------------------------------------------- internals
    def _require_live(self, session: Session) -> None:
        if self._by_index.get(session.index) is not session:
            raise LocalProtocolError(f"session {session.index} is not in the database")

    def _tunnel(
        self,
        session: Session,
        kind: TunnelKind,
        now: float,
        crypto: tuple[str, str],
        ports: tuple[int, int],
        encapsulation: str,
        public_ip: str | None,
    ) -> Tunnel:
        encryption, hashing = crypto
        src_port, dst_port = ports
        session._tunnel_seq += 1
        return Tunnel(
            kind,
            f"{session.index}.{session._tunnel_seq}",
            now,
            encryption=encryption,
            hashing=hashing,
            public_ip=public_ip if public_ip is not None else session.public_ip,
            src_port=src_port,
            dst_port=dst_port,
            encapsulation=encapsulation,
        )

    def _push(self, session: Session, deadline: float) -> None:
        self._seq += 1
        session._sched_seq = self._seq
        heapq.heappush(self._heap, (deadline, self._seq, session.index))

    def _schedule(self, session: Session) -> None:
        """Make sure the heap holds an entry no later than the session's next deadline."""
        due = session.next_deadline()
        if due is not None:
            self._push(session, due[0])

    def _end(self, session: Session, reason: EndReason, now: float, why: str) -> EndedSession:
        session.ended = reason  # first: detach_ssl must not mark it disconnected
        tunnels = self.detach_ssl(session, now, why)
        del self._by_index[session.index]
        self._by_cookie.pop(session.cookie, None)
        mine = self._by_user.get(session.username)
        if mine is not None:
            mine.pop(session.index, None)
            if not mine:
                del self._by_user[session.username]
        session._sched_seq = -1
        if session.disconnected_since is not None:
            self._inactive -= 1
        self._parent.down()
        self._sessions.down()
        tunnels.append(EndedTunnel(session, session.parent, now, why))
        if session.ip_from_pool and self._allocator is not None:
            self._allocator.release(session.assigned_ip)
        return EndedSession(session, reason, now, tuple(tunnels))


# ==================================================================== renderers
_LABEL_W: Final = 13
_LEFT_W: Final = 22


def _line(label: str, value: str) -> str:
    return f"{label:<{_LABEL_W}}: {value}"


def _pair(l1: str, v1: str, l2: str, v2: str) -> list[str]:
    """Two fields on one line; a left value too long pushes the right one to its own line
    (ntc-templates ``long_usernames`` sample)."""
    if len(v1) > _LEFT_W:
        return [_line(l1, v1), _line(l2, v2)]
    return [f"{l1:<{_LABEL_W}}: {v1:<{_LEFT_W}} {l2:<{_LABEL_W}}: {v2}"]


def _login_wall(session: Session, now: float, wall: datetime) -> datetime:
    if session.login_wall is not None:
        return session.login_wall
    return wall - timedelta(seconds=int(now - session.created_at))


def _session_block(session: Session, now: float, wall: datetime) -> list[str]:
    tunnels = session.tunnels
    enc = "  ".join(f"{t.kind.value}: (1){t.encryption}" for t in tunnels)
    hsh = "  ".join(f"{t.kind.value}: (1){t.hashing}" for t in tunnels)
    lines: list[str] = []
    lines += _pair("Username", session.username, "Index", str(session.index))
    lines += _pair("Assigned IP", session.assigned_ip, "Public IP", session.public_ip)
    lines.append(_line("Protocol", session.protocol))
    lines.append(_line("License", session.license))
    lines.append(_line("Encryption", enc))
    lines.append(_line("Hashing", hsh))
    lines += _pair("Bytes Tx", str(session.bytes_tx), "Bytes Rx", str(session.bytes_rx))
    lines += _pair("Group Policy", session.group_policy, "Tunnel Group", session.tunnel_group)
    lines.append(_line("Login Time", format_wall_time(_login_wall(session, now, wall))))
    lines.append(_line("Duration", format_duration(session.duration(now))))
    lines.append(_line("Inactivity", format_duration(session.inactivity(now))))
    lines += _pair("VLAN Mapping", "N/A", "VLAN", "none")
    lines.append(_line("Audt Sess ID", session.audit_id))
    lines.append(_line("Security Grp", "none"))
    return lines


def render_vpn_sessiondb_anyconnect(sessions: Iterable[Session], now: float, wall: datetime) -> str:
    """``show vpn-sessiondb anyconnect`` (§8.2). ``wall`` is the wall time at ``now``.

    The ``Inactivity`` line is always present (real output shows ``0h:00m:00s`` for
    sessions with tunnels); it counts only while the Parent is alone."""
    blocks = [_session_block(s, now, wall) for s in sessions]
    if not blocks:
        return "INFO: There are presently no active sessions\n"
    lines = ["Session Type: AnyConnect", ""]
    for i, block in enumerate(blocks):
        if i:
            lines.append("")
        lines += block
    return "\n".join(lines) + "\n"


_RULE: Final = "-" * 75
_SUBRULE: Final = " " * 29 + "-" * 46


def _row(label: str, *cols: tuple[int | str, int]) -> str:
    return f"{label:<29}:" + " :".join(f"{v!s:>{w}}" for v, w in cols)


def _session_summary_lines(s: SessionSummary) -> list[str]:
    cap = s.capacity
    lines = [
        _RULE,
        "VPN Session Summary",
        _RULE,
        "                               Active : Cumulative : Peak Concur : Inactive",
        _SUBRULE,
    ]
    for label in ("AnyConnect Client", "  SSL/TLS/DTLS"):
        lines.append(
            _row(label, (s.active, 7), (s.cumulative, 11), (s.peak_concurrent, 12), (s.inactive, 9))
        )
    lines.append(_RULE)
    lines.append(
        f"{'Total Active and Inactive':<29}:{s.total:>7}{'':13}Total Cumulative : {s.cumulative:>6}"
    )
    if cap is not None:
        load = (s.total * 100 + cap // 2) // cap if cap > 0 else 0
        lines.append(_row("Device Total VPN Capacity", (cap, 7)))
        lines.append(_row("Device Load", (f"{load}%", 7)))
    lines.append(_RULE)
    return lines


def render_vpn_sessiondb_summary(summary: SessionSummary) -> str:
    """``show vpn-sessiondb summary``: the "VPN Session Summary" block (ntc-templates).

    Device Load rounds half up (UNCONFIRMED; the only sample, 38/5000, shows ``1%``)."""
    return "\n".join(_session_summary_lines(summary)) + "\n"


def render_vpn_sessiondb(summary: SessionSummary) -> str:
    """``show vpn-sessiondb``: session summary plus "Tunnels Summary" (ntc-templates)."""
    s = summary
    lines = _session_summary_lines(s)
    lines += [
        _RULE,
        "Tunnels Summary",
        _RULE,
        "                               Active : Cumulative : Peak Concurrent",
        _SUBRULE,
    ]
    rows = (
        ("AnyConnect-Parent", s.parent_active, s.parent_cumulative, s.parent_peak),
        ("SSL-Tunnel", s.ssl_active, s.ssl_cumulative, s.ssl_peak),
        ("DTLS-Tunnel", s.dtls_active, s.dtls_cumulative, s.dtls_peak),
    )
    for label, act, cum, peak in rows:
        lines.append(_row(label, (act, 7), (cum, 11), (peak, 16)))
    lines.append(_RULE)
    total_active = sum(r[1] for r in rows)
    total_cum = sum(r[2] for r in rows)
    lines.append(_row("Totals", (total_active, 7), (total_cum, 11)))
    lines.append(_RULE)
    return "\n".join(lines) + "\n"
