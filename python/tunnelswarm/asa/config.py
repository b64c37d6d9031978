"""The mock ASA's configuration: a typed model, the ASA CLI grammar, and ``show running-config``.

Theory of operation
-------------------
The whole configuration is one frozen :class:`AsaConfig`. Nothing mutates it: a command
produces a *new* ``AsaConfig`` (``dataclasses.replace``), so a session that took the
config at login keeps a consistent snapshot for free ("new sessions see changes").
Changes are reported as typed :class:`ConfigEvent` values computed by
:func:`diff_configs` between the old and the new snapshot, so the events are exact
whatever command (or file reload) caused them.

The CLI grammar lives here, in one table per configuration mode, and is shared by
:func:`parse_config` (a file, where indentation marks sub-modes as in ``show
running-config``) and by :class:`tunnelswarm.asa.console.AdminConsole` (typed live, with
ASA prompts). Matching works like the ASA's parser: keywords may be abbreviated to any
unambiguous prefix (``sh run``, ``conf t``, ``dtl po 444``); an input that matches no
command is rejected at the first token no command could accept, with the ASA's
``ERROR: % Invalid input detected at '^' marker.``; a missing argument puts the marker
just after the end of the line (a real ASA prints ``ERROR: % Incomplete command`` there
instead -- we keep the marker form for every syntax error, as the issue asks). A rejected
command changes nothing.

Defaults (ASA 9.x; "UNCONFIRMED" as in protocol.md when no Cisco source fixes them):

* ``webvpn``: ``port 443``, ``dtls port 443`` (§8.4), no interface enabled, ``anyconnect``
  disabled, ``tunnel-group-list`` disabled.
* interfaces ``GigabitEthernet0/0`` (``nameif outside``, ``security-level 0``) and
  ``GigabitEthernet0/1`` (``nameif inside``, ``security-level 100``), no addresses, not
  shut down (a real ASA ships its data interfaces shut down -- simplified here).
* ``sysopt connection tcpmss 1380`` (§6.3); ``ssl cipher <version> medium`` for every
  version (UNCONFIRMED).
* group policy ``DfltGrpPolicy`` (§6.3, §7.2): ``vpn-simultaneous-logins 3`` (the ASA
  configuration guide: 0–2147483647, default 3, 0 disables login), ``vpn-idle-timeout 30``,
  ``vpn-session-timeout none``, ``vpn-tunnel-protocol ikev1 ikev2 l2tp-ipsec
  ssl-clientless`` (UNCONFIRMED: AnyConnect needs an explicit ``ssl-client``),
  ``anyconnect mtu`` *not configured* (the ASA then uses 1406, :data:`DEFAULT_ANYCONNECT_MTU`;
  the MTU model treats "not configured" distinctly, so it stays ``None``),
  ``anyconnect ssl dtls enable``, ``anyconnect ssl df-bit-ignore disable``,
  ``anyconnect ssl keepalive 20``, ``anyconnect dpd-interval gateway 30`` and ``client 30``
  (UNCONFIRMED), ``anyconnect ssl rekey time none`` and ``method none``.
* tunnel groups ``DefaultRAGroup`` and ``DefaultWEBVPNGroup`` (remote-access,
  ``default-group-policy DfltGrpPolicy``).
* no ``aaa local authentication attempts max-fail`` (1–16): no lockout of local users
  (the lockout itself is runtime state, :mod:`tunnelswarm.asa.aaa`).
* ``username`` privilege 2; hostname ``ciscoasa``; ``asa-version 9.1(4)`` (our own
  personality knob; ``ASA Version x`` as printed atop a running-config is accepted too).
* ``icmp``: no rules (everything permitted). ``icmp {permit|deny} {any|host A|A MASK}
  [icmp-type] <nameif>`` rules are kept in order, first match wins; the mock uses them as
  its "ICMP blocked toward the inside server" knob (see :class:`IcmpRule`).
* ``logging``: no ``logging enable``, no ``logging timestamp``, no ``logging buffered``
  or ``logging trap`` level (each destination logs nothing until it has a level),
  ``logging facility 20``; ``logging host <nameif> <ip> [udp|tcp/<port>]`` (port 514).

Group-policy inheritance is the ASA's: an attribute a policy does not set is taken from
``DfltGrpPolicy`` (the :data:`INHERIT` sentinel); ``no <attribute>`` goes back to
inheriting (on ``DfltGrpPolicy`` itself: back to the default). ``vpn-idle-timeout none``
is an explicit "no timeout" and is *not* the same as inheriting.

Passwords are stored and rendered in clear (``username test password test``): a real ASA
prints a hash followed by ``encrypted``; the mock keeps the clear text so that a
running-config parses back to the same configuration.
"""

from __future__ import annotations

import enum
import heapq
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

from tunnelswarm.errors import ConfigError

__all__ = [
    "BUILTIN_TUNNEL_GROUPS",
    "DEFAULT_ANYCONNECT_MTU",
    "DEFAULT_ASA_VERSION",
    "DEFAULT_GROUP_POLICY",
    "DEFAULT_SIMULTANEOUS_LOGINS",
    "DEFAULT_TCPMSS",
    "DFLT_GRP_POLICY",
    "INHERIT",
    "INVALID_INPUT",
    "MAX_FAIL_RANGE",
    "AaaMaxFailChanged",
    "AddressLease",
    "AnyconnectEnabledChanged",
    "AnyconnectImage",
    "AnyconnectImagesChanged",
    "AsaConfig",
    "AsaConfigError",
    "AsaVersionChanged",
    "ConfigEvent",
    "ConfigStore",
    "DtlsPortChanged",
    "EffectivePolicy",
    "EnablePasswordChanged",
    "GroupAlias",
    "GroupPolicy",
    "GroupPolicyChanged",
    "GroupPolicyRemoved",
    "GroupUrl",
    "HostnameChanged",
    "IcmpRule",
    "IcmpRulesChanged",
    "Inherit",
    "Interface",
    "InterfaceChanged",
    "InterfaceDisabled",
    "InterfaceEnabled",
    "IpPool",
    "LoggingChanged",
    "LoggingConfig",
    "LoggingHost",
    "Mode",
    "ModeKind",
    "PoolAllocator",
    "PoolChanged",
    "PoolRemoved",
    "SslCipher",
    "SslCipherChanged",
    "TcpMssChanged",
    "TunnelGroup",
    "TunnelGroupChanged",
    "TunnelGroupListChanged",
    "TunnelGroupRemoved",
    "User",
    "UserChanged",
    "UserRemoved",
    "WebvpnConfig",
    "WebvpnPortChanged",
    "diff_configs",
    "parse_config",
    "render_running_config",
]

T = TypeVar("T")

# ===================================================================== defaults
DEFAULT_HOSTNAME: Final = "ciscoasa"
DEFAULT_ASA_VERSION: Final = "9.1(4)"
DEFAULT_WEBVPN_PORT: Final = 443
DEFAULT_DTLS_PORT: Final = 443
DEFAULT_ANYCONNECT_MTU: Final = 1406  # applies when `anyconnect mtu` is not configured (§6.3)
DEFAULT_TCPMSS: Final = 1380
#: ``vpn-simultaneous-logins`` of DfltGrpPolicy (ASA configuration guide: default 3)
DEFAULT_SIMULTANEOUS_LOGINS: Final = 3
MAX_SIMULTANEOUS_LOGINS: Final = 2147483647
#: ``aaa local authentication attempts max-fail <1-16>``
MAX_FAIL_RANGE: Final = (1, 16)
DEFAULT_USER_PRIVILEGE: Final = 2
DEFAULT_SSL_CIPHER_LEVEL: Final = "medium"  # UNCONFIRMED
DEFAULT_SYSLOG_PORT: Final = 514
DEFAULT_SYSLOG_FACILITY: Final = 20
DFLT_GRP_POLICY: Final = "DfltGrpPolicy"
DEFAULT_RA_GROUP: Final = "DefaultRAGroup"
DEFAULT_WEBVPN_GROUP: Final = "DefaultWEBVPNGroup"
BUILTIN_TUNNEL_GROUPS: Final = (DEFAULT_RA_GROUP, DEFAULT_WEBVPN_GROUP)

INVALID_INPUT: Final = "ERROR: % Invalid input detected at '^' marker."

TUNNEL_PROTOCOLS: Final = ("ikev1", "ikev2", "l2tp-ipsec", "ssl-client", "ssl-clientless")
SSL_CIPHER_VERSIONS: Final = ("default", "tlsv1", "tlsv1.1", "tlsv1.2", "dtlsv1", "dtlsv1.2")
SSL_CIPHER_LEVELS: Final = ("all", "low", "medium", "fips", "high")
#: ``icmp`` command type keywords → ICMP type numbers (the ASA's ICMP type list)
ICMP_TYPES: Final[dict[str, int]] = {
    "echo-reply": 0,
    "unreachable": 3,
    "source-quench": 4,
    "redirect": 5,
    "alternate-address": 6,
    "echo": 8,
    "router-advertisement": 9,
    "router-solicitation": 10,
    "time-exceeded": 11,
    "parameter-problem": 12,
    "timestamp-request": 13,
    "timestamp-reply": 14,
    "information-request": 15,
    "information-reply": 16,
    "mask-request": 17,
    "mask-reply": 18,
    "traceroute": 30,
    "conversion-error": 31,
    "mobile-redirect": 32,
}
LOG_LEVELS: Final = (
    "emergencies",
    "alerts",
    "critical",
    "errors",
    "warnings",
    "notifications",
    "informational",
    "debugging",
)


class Inherit(enum.Enum):
    """Sentinel: a group-policy attribute that is not set and comes from DfltGrpPolicy."""

    INHERIT = "inherit"

    def __repr__(self) -> str:
        return "INHERIT"


INHERIT: Final = Inherit.INHERIT


# ===================================================================== the model
@dataclass(frozen=True)
class Interface:
    """``interface <hardware-id>`` with the few sub-commands the mock needs."""

    hardware_id: str
    nameif: str | None = None
    security_level: int | None = None
    ip_address: IPv4Address | None = None
    netmask: IPv4Address | None = None
    shutdown: bool = False


DEFAULT_INTERFACES: Final = (
    Interface("GigabitEthernet0/0", nameif="outside", security_level=0),
    Interface("GigabitEthernet0/1", nameif="inside", security_level=100),
)


@dataclass(frozen=True)
class AnyconnectImage:
    """``anyconnect image <path> <order>`` (webvpn mode; shown in the tech note)."""

    path: str
    order: int


@dataclass(frozen=True)
class WebvpnConfig:
    """Global ``webvpn`` mode."""

    port: int = DEFAULT_WEBVPN_PORT
    dtls_port: int = DEFAULT_DTLS_PORT
    enabled_interfaces: tuple[str, ...] = ()  # nameifs, in the order enabled
    anyconnect_images: tuple[AnyconnectImage, ...] = ()
    anyconnect_enabled: bool = False
    tunnel_group_list_enabled: bool = False


@dataclass(frozen=True)
class IpPool:
    """``ip local pool <name> <first>-<last> mask <mask>``."""

    name: str
    first: IPv4Address
    last: IPv4Address
    mask: IPv4Address

    @property
    def size(self) -> int:
        return int(self.last) - int(self.first) + 1

    def addresses(self) -> Iterator[IPv4Address]:
        """Every address of the pool, lowest first."""
        for n in range(int(self.first), int(self.last) + 1):
            yield IPv4Address(n)

    def __contains__(self, addr: object) -> bool:
        return isinstance(addr, IPv4Address) and self.first <= addr <= self.last


@dataclass(frozen=True)
class User:
    """``username <name> password <password> [privilege <n>]`` (local database)."""

    name: str
    password: str
    privilege: int = DEFAULT_USER_PRIVILEGE


@dataclass(frozen=True)
class GroupAlias:
    alias: str
    enabled: bool = True


@dataclass(frozen=True)
class GroupUrl:
    url: str
    enabled: bool = True


@dataclass(frozen=True)
class TunnelGroup:
    """``tunnel-group <name> type remote-access`` and its general/webvpn attributes."""

    name: str
    type: str = "remote-access"
    address_pools: tuple[str, ...] = ()
    default_group_policy: str = DFLT_GRP_POLICY
    group_aliases: tuple[GroupAlias, ...] = ()
    group_urls: tuple[GroupUrl, ...] = ()


@dataclass(frozen=True)
class GroupPolicy:
    """``group-policy <name> internal`` + ``attributes``. Unset attributes are :data:`INHERIT`.

    Timeouts are in minutes (``None`` = ``none``); DPD/keepalive in seconds (``None`` =
    ``none``); ``rekey_time`` in minutes; ``anyconnect_mtu`` ``None`` = not configured.
    """

    name: str
    vpn_tunnel_protocol: tuple[str, ...] | Inherit = INHERIT
    #: the most sessions one user may hold; a login beyond it ends that user's session
    #: idle longest (0: nobody logs in), see :meth:`SessionDb.make_room`
    vpn_simultaneous_logins: int | Inherit = INHERIT
    vpn_idle_timeout: int | Inherit | None = INHERIT
    vpn_session_timeout: int | Inherit | None = INHERIT
    anyconnect_mtu: int | Inherit | None = INHERIT
    dtls: bool | Inherit = INHERIT
    df_bit_ignore: bool | Inherit = INHERIT
    keepalive: int | Inherit | None = INHERIT
    dpd_gateway: int | Inherit | None = INHERIT
    dpd_client: int | Inherit | None = INHERIT
    rekey_time: int | Inherit | None = INHERIT
    rekey_method: str | Inherit | None = INHERIT


DEFAULT_GROUP_POLICY: Final = GroupPolicy(
    DFLT_GRP_POLICY,
    vpn_tunnel_protocol=("ikev1", "ikev2", "l2tp-ipsec", "ssl-clientless"),  # UNCONFIRMED
    vpn_simultaneous_logins=DEFAULT_SIMULTANEOUS_LOGINS,
    vpn_idle_timeout=30,
    vpn_session_timeout=None,
    anyconnect_mtu=None,
    dtls=True,
    df_bit_ignore=False,
    keepalive=20,
    dpd_gateway=30,  # UNCONFIRMED (§7.2)
    dpd_client=30,  # UNCONFIRMED (§7.2)
    rekey_time=None,
    rekey_method=None,
)


@dataclass(frozen=True)
class EffectivePolicy:
    """A group policy with inheritance from DfltGrpPolicy resolved: what a session gets."""

    name: str
    vpn_tunnel_protocol: tuple[str, ...]
    vpn_idle_timeout: int | None
    vpn_session_timeout: int | None
    anyconnect_mtu: int | None
    dtls: bool
    df_bit_ignore: bool
    keepalive: int | None
    dpd_gateway: int | None
    dpd_client: int | None
    rekey_time: int | None
    rekey_method: str | None
    vpn_simultaneous_logins: int = DEFAULT_SIMULTANEOUS_LOGINS

    @property
    def ssl_client_allowed(self) -> bool:
        """Whether AnyConnect (``ssl-client``) may connect with this policy."""
        return "ssl-client" in self.vpn_tunnel_protocol

    @property
    def mtu_or_default(self) -> int:
        return DEFAULT_ANYCONNECT_MTU if self.anyconnect_mtu is None else self.anyconnect_mtu

    @property
    def idle_timeout_seconds(self) -> int | None:
        return None if self.vpn_idle_timeout is None else self.vpn_idle_timeout * 60

    @property
    def session_timeout_seconds(self) -> int | None:
        return None if self.vpn_session_timeout is None else self.vpn_session_timeout * 60

    @property
    def rekey_time_seconds(self) -> int | None:
        return None if self.rekey_time is None else self.rekey_time * 60


@dataclass(frozen=True)
class SslCipher:
    """``ssl cipher <version> <level>`` or ``ssl cipher <version> custom "<list>"``."""

    version: str
    level: str
    custom: str | None = None


@dataclass(frozen=True)
class LoggingHost:
    interface: str
    address: IPv4Address
    protocol: str = "udp"
    port: int = DEFAULT_SYSLOG_PORT


@dataclass(frozen=True)
class LoggingConfig:
    enabled: bool = False
    timestamp: bool = False
    buffered_level: int | None = None  # 0 (emergencies) .. 7 (debugging)
    #: ``logging trap <level>``: what the ``logging host`` destinations get (None: nothing)
    trap_level: int | None = None
    #: ``logging facility <16-23>`` of the syslog datagrams (20 = local4)
    facility: int = DEFAULT_SYSLOG_FACILITY
    hosts: tuple[LoggingHost, ...] = ()


_ANY: Final = IPv4Address(0)
_HOST_MASK: Final = IPv4Address(0xFFFFFFFF)


@dataclass(frozen=True)
class IcmpRule:
    """``icmp {permit|deny} {any|host A|A MASK} [icmp-type] <nameif>``.

    On a real ASA these rules govern ICMP addressed *to the ASA's interface*. The mock
    also uses them as its knob for "ICMP blocked between the ASA and the inside server"
    (a model, documented in docs/mock-asa-mtu.md): before it sends an ICMP 3/4 toward an
    inside host it asks :meth:`AsaConfig.icmp_permits` with type ``unreachable`` on
    ``inside``. ``any`` is stored as ``0.0.0.0 0.0.0.0``, ``host A`` as ``A
    255.255.255.255``; ``icmp_type`` is a keyword of :data:`ICMP_TYPES` or a number
    without a keyword (None: every type).
    """

    action: str  # "permit" | "deny"
    address: IPv4Address
    mask: IPv4Address
    icmp_type: str | None
    interface: str

    def matches(self, address: IPv4Address, icmp_type: str, interface: str) -> bool:
        """Whether the rule applies to ICMP of ``icmp_type`` with peer ``address`` on
        ``interface``."""
        mask = int(self.mask)
        return (
            self.interface == interface
            and (self.icmp_type is None or self.icmp_type == icmp_type)
            and int(address) & mask == int(self.address) & mask
        )

    def render(self) -> str:
        """The running-config line."""
        if self.mask == _ANY and self.address == _ANY:
            where = "any"
        elif self.mask == _HOST_MASK:
            where = f"host {self.address}"
        else:
            where = f"{self.address} {self.mask}"
        kind = "" if self.icmp_type is None else f" {self.icmp_type}"
        return f"icmp {self.action} {where}{kind} {self.interface}"


def _by(items: Iterable[T], key: Callable[[T], str], name: str) -> T | None:
    return next((it for it in items if key(it) == name), None)


@dataclass(frozen=True)
class AsaConfig:
    """The whole configuration; immutable, so a session can keep its snapshot."""

    hostname: str = DEFAULT_HOSTNAME
    asa_version: str = DEFAULT_ASA_VERSION
    enable_password: str | None = None
    interfaces: tuple[Interface, ...] = DEFAULT_INTERFACES
    webvpn: WebvpnConfig = field(default_factory=WebvpnConfig)
    pools: tuple[IpPool, ...] = ()
    users: tuple[User, ...] = ()
    group_policies: tuple[GroupPolicy, ...] = (DEFAULT_GROUP_POLICY,)
    tunnel_groups: tuple[TunnelGroup, ...] = tuple(TunnelGroup(n) for n in BUILTIN_TUNNEL_GROUPS)
    tcpmss: int = DEFAULT_TCPMSS  # 0 = disabled
    ssl_ciphers: tuple[SslCipher, ...] = ()  # only the non-default ones
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    icmp_rules: tuple[IcmpRule, ...] = ()  # in order: the first match decides
    #: ``aaa local authentication attempts max-fail N`` (None: not configured, no lockout)
    aaa_local_max_fail: int | None = None

    # ----------------------------------------------------------------- look-ups
    def interface(self, hardware_id: str) -> Interface | None:
        return _by(self.interfaces, lambda i: i.hardware_id, hardware_id)

    def interface_by_nameif(self, nameif: str) -> Interface | None:
        return next((i for i in self.interfaces if i.nameif == nameif), None)

    def pool(self, name: str) -> IpPool | None:
        return _by(self.pools, lambda p: p.name, name)

    def user(self, name: str) -> User | None:
        return _by(self.users, lambda u: u.name, name)

    def authenticate(self, name: str, password: str) -> User | None:
        """The local user if ``password`` is right, else ``None``."""
        u = self.user(name)
        return u if u is not None and u.password == password else None

    def group_policy(self, name: str) -> GroupPolicy | None:
        return _by(self.group_policies, lambda g: g.name, name)

    def tunnel_group(self, name: str) -> TunnelGroup | None:
        return _by(self.tunnel_groups, lambda t: t.name, name)

    def icmp_permits(self, address: IPv4Address | str, icmp_type: str, interface: str) -> bool:
        """``icmp`` rules: the first rule matching decides; no match permits (model: the
        ASA adds an implicit deny once any rule exists, which the mock does not, so that
        an unrelated ``icmp permit … echo`` cannot silently black-hole PMTUD)."""
        addr = IPv4Address(address)
        for rule in self.icmp_rules:
            if rule.matches(addr, icmp_type, interface):
                return rule.action == "permit"
        return True

    def ssl_cipher(self, version: str) -> SslCipher:
        """The effective ``ssl cipher`` setting of ``version`` (default ``medium``)."""
        found = _by(self.ssl_ciphers, lambda c: c.version, version)
        return found or SslCipher(version, DEFAULT_SSL_CIPHER_LEVEL)

    # ----------------------------------------------------------------- resolution
    def effective_policy(self, tunnel_group: str) -> EffectivePolicy:
        """The group policy a session of ``tunnel_group`` gets, inheritance resolved.

        The tunnel group's ``default-group-policy`` (``DfltGrpPolicy`` by default); every
        attribute it does not set comes from ``DfltGrpPolicy``.
        """
        tg = self.tunnel_group(tunnel_group)
        if tg is None:
            raise KeyError(f"no tunnel-group {tunnel_group!r}")
        return self.resolve_policy(tg.default_group_policy)

    def resolve_policy(self, name: str) -> EffectivePolicy:
        gp = self.group_policy(name)
        if gp is None:
            raise KeyError(f"no group-policy {name!r}")
        base = self.group_policy(DFLT_GRP_POLICY) or DEFAULT_GROUP_POLICY
        return EffectivePolicy(
            name=gp.name,
            vpn_tunnel_protocol=_pick(gp.vpn_tunnel_protocol, base.vpn_tunnel_protocol, ()),
            vpn_idle_timeout=_pick(gp.vpn_idle_timeout, base.vpn_idle_timeout, None),
            vpn_session_timeout=_pick(gp.vpn_session_timeout, base.vpn_session_timeout, None),
            anyconnect_mtu=_pick(gp.anyconnect_mtu, base.anyconnect_mtu, None),
            dtls=_pick(gp.dtls, base.dtls, True),
            df_bit_ignore=_pick(gp.df_bit_ignore, base.df_bit_ignore, False),
            keepalive=_pick(gp.keepalive, base.keepalive, None),
            dpd_gateway=_pick(gp.dpd_gateway, base.dpd_gateway, None),
            dpd_client=_pick(gp.dpd_client, base.dpd_client, None),
            rekey_time=_pick(gp.rekey_time, base.rekey_time, None),
            rekey_method=_pick(gp.rekey_method, base.rekey_method, None),
            vpn_simultaneous_logins=_pick(
                gp.vpn_simultaneous_logins,
                base.vpn_simultaneous_logins,
                DEFAULT_SIMULTANEOUS_LOGINS,
            ),
        )

    def tunnel_group_for_url(self, url: str) -> TunnelGroup | None:
        """The tunnel group with an enabled ``group-url`` equal to ``url``.

        Scheme and host compare case-insensitively, a trailing ``/`` is ignored, the path
        compares exactly (ASA matching rules beyond this are UNCONFIRMED).
        """
        want = _norm_url(url)
        for tg in self.tunnel_groups:
            if any(u.enabled and _norm_url(u.url) == want for u in tg.group_urls):
                return tg
        return None

    def tunnel_group_for_alias(self, alias: str) -> TunnelGroup | None:
        """The tunnel group with an enabled ``group-alias`` ``alias`` (case-sensitive)."""
        for tg in self.tunnel_groups:
            if any(a.enabled and a.alias == alias for a in tg.group_aliases):
                return tg
        return None

    def select_tunnel_group(self, url: str | None = None, alias: str | None = None) -> TunnelGroup:
        """group-url first, then group-alias, else ``DefaultWEBVPNGroup`` (as the ASA)."""
        for found in (
            self.tunnel_group_for_url(url) if url else None,
            self.tunnel_group_for_alias(alias) if alias else None,
        ):
            if found is not None:
                return found
        return self.tunnel_group(DEFAULT_WEBVPN_GROUP) or TunnelGroup(DEFAULT_WEBVPN_GROUP)

    def group_list(self) -> list[str]:
        """The aliases offered in the login form's group list (``tunnel-group-list enable``)."""
        if not self.webvpn.tunnel_group_list_enabled:
            return []
        return [a.alias for tg in self.tunnel_groups for a in tg.group_aliases if a.enabled]

    def tunnel_group_pools(self, tunnel_group: str) -> tuple[IpPool, ...]:
        """The configured pools of a tunnel group's ``address-pool``, in order."""
        tg = self.tunnel_group(tunnel_group)
        if tg is None:
            return ()
        return tuple(p for n in tg.address_pools if (p := self.pool(n)) is not None)

    # ----------------------------------------------------------------- personality
    @property
    def version_tuple(self) -> tuple[int, int, int]:
        """``9.1(4)`` -> ``(9, 1, 4)``; ``9.1`` -> ``(9, 1, 0)``."""
        m = re.fullmatch(r"(\d+)\.(\d+)(?:\((\d+)\))?", self.asa_version)
        if m is None:  # the grammar only accepts that form; API users may set anything
            return (0, 0, 0)
        return (int(m[1]), int(m[2]), int(m[3] or 0))

    @property
    def separate_tls_dtls_mtu(self) -> bool:
        """ASA 9.0+ negotiates distinct TLS and DTLS MTUs (§6.3)."""
        return self.version_tuple >= (9, 0, 0)


def _pick(own: T | Inherit, base: T | Inherit, fallback: T) -> T:
    if not isinstance(own, Inherit):
        return own
    if not isinstance(base, Inherit):
        return base
    return fallback


def _norm_url(url: str) -> tuple[str, str, str]:
    parts = urlsplit(url.strip())
    return (parts.scheme.lower(), parts.netloc.lower(), parts.path.rstrip("/"))


# ===================================================================== pools
@dataclass(frozen=True)
class AddressLease:
    address: IPv4Address
    netmask: IPv4Address
    pool: str


class PoolAllocator:
    """Hands out pool addresses to sessions (runtime state, not configuration).

    Pools are tried in the order given (a tunnel group's ``address-pool`` list); inside a
    pool, a released address is reused (lowest first) before a never-used one, and
    never-used ones go lowest first. The ASA's own order is UNCONFIRMED. Fits the
    ``AddressAllocator`` protocol of :mod:`tunnelswarm.asa.sessiondb`.
    """

    def __init__(self, pools: Iterable[IpPool]) -> None:
        self._pools: tuple[IpPool, ...] = tuple(pools)
        self._leased: dict[IPv4Address, str] = {}
        self._cursor: dict[str, int] = {}
        self._released: dict[str, list[int]] = {}

    @property
    def leased(self) -> frozenset[IPv4Address]:
        return frozenset(self._leased)

    def update_pools(self, pools: Iterable[IpPool]) -> None:
        """Follow a configuration change; leases stay valid (the ASA keeps sessions)."""
        new = tuple(pools)
        old = {p.name: p for p in self._pools}
        for p in new:
            if old.get(p.name) != p:
                self._cursor.pop(p.name, None)
                self._released.pop(p.name, None)
        self._pools = new

    def free_count(self, pool_names: Sequence[str] | None = None) -> int:
        return sum(
            sum(1 for a in p.addresses() if a not in self._leased) for p in self._select(pool_names)
        )

    def _select(self, pool_names: Sequence[str] | None) -> list[IpPool]:
        if pool_names is None:
            return list(self._pools)
        by_name = {p.name: p for p in self._pools}
        return [by_name[n] for n in pool_names if n in by_name]

    def lease(self, user: str = "", pool_names: Sequence[str] | None = None) -> AddressLease | None:
        """A free address from the first pool that has one, or ``None`` (all exhausted)."""
        for pool in self._select(pool_names):
            addr = self._take(pool)
            if addr is not None:
                self._leased[addr] = user
                return AddressLease(addr, pool.mask, pool.name)
        return None

    def _take(self, pool: IpPool) -> IPv4Address | None:
        released = self._released.setdefault(pool.name, [])
        while released:
            addr = pool.first + heapq.heappop(released)
            if addr not in self._leased:
                return addr
        cursor = self._cursor.get(pool.name, 0)
        while cursor < pool.size:
            addr = pool.first + cursor
            cursor += 1
            if addr not in self._leased:
                self._cursor[pool.name] = cursor
                return addr
        self._cursor[pool.name] = cursor
        return None

    def allocate(self, user: str = "", pool_names: Sequence[str] | None = None) -> str | None:
        """Like :meth:`lease`, the address as a string (sessiondb's protocol)."""
        got = self.lease(user, pool_names)
        return None if got is None else str(got.address)

    def release(self, ip: str | IPv4Address) -> None:
        addr = IPv4Address(ip)
        if self._leased.pop(addr, None) is None:
            return
        for pool in self._pools:
            if addr in pool:
                heapq.heappush(
                    self._released.setdefault(pool.name, []), int(addr) - int(pool.first)
                )


# ===================================================================== change events
@dataclass(frozen=True)
class ConfigEvent:
    """Base of every change event."""


@dataclass(frozen=True)
class HostnameChanged(ConfigEvent):
    old: str
    new: str


@dataclass(frozen=True)
class AsaVersionChanged(ConfigEvent):
    old: str
    new: str


@dataclass(frozen=True)
class EnablePasswordChanged(ConfigEvent):
    pass


@dataclass(frozen=True)
class InterfaceChanged(ConfigEvent):
    """``interface`` sub-commands (nameif, address, shutdown …) of ``hardware_id``."""

    hardware_id: str


@dataclass(frozen=True)
class WebvpnPortChanged(ConfigEvent):
    old: int
    new: int


@dataclass(frozen=True)
class DtlsPortChanged(ConfigEvent):
    old: int
    new: int


@dataclass(frozen=True)
class InterfaceEnabled(ConfigEvent):
    """webvpn ``enable <nameif>``: the listeners on that interface are (re)bound."""

    name: str


@dataclass(frozen=True)
class InterfaceDisabled(ConfigEvent):
    """webvpn ``no enable <nameif>``: the listeners close, sessions there drop."""

    name: str


@dataclass(frozen=True)
class AnyconnectEnabledChanged(ConfigEvent):
    enabled: bool


@dataclass(frozen=True)
class AnyconnectImagesChanged(ConfigEvent):
    pass


@dataclass(frozen=True)
class TunnelGroupListChanged(ConfigEvent):
    enabled: bool


@dataclass(frozen=True)
class PoolChanged(ConfigEvent):
    """Added or changed."""

    name: str


@dataclass(frozen=True)
class PoolRemoved(ConfigEvent):
    name: str


@dataclass(frozen=True)
class UserChanged(ConfigEvent):
    """Added or changed."""

    name: str


@dataclass(frozen=True)
class UserRemoved(ConfigEvent):
    name: str


@dataclass(frozen=True)
class GroupPolicyChanged(ConfigEvent):
    """Added or changed. A change of DfltGrpPolicy affects every inheriting policy."""

    name: str


@dataclass(frozen=True)
class GroupPolicyRemoved(ConfigEvent):
    name: str


@dataclass(frozen=True)
class TunnelGroupChanged(ConfigEvent):
    """Added or changed."""

    name: str


@dataclass(frozen=True)
class TunnelGroupRemoved(ConfigEvent):
    name: str


@dataclass(frozen=True)
class TcpMssChanged(ConfigEvent):
    old: int
    new: int


@dataclass(frozen=True)
class SslCipherChanged(ConfigEvent):
    version: str


@dataclass(frozen=True)
class LoggingChanged(ConfigEvent):
    pass


@dataclass(frozen=True)
class IcmpRulesChanged(ConfigEvent):
    """``icmp`` rules added, removed or reordered."""


@dataclass(frozen=True)
class AaaMaxFailChanged(ConfigEvent):
    """``[no] aaa local authentication attempts max-fail`` (None: not configured)."""

    old: int | None
    new: int | None


def _diff_named(
    old: Sequence[T],
    new: Sequence[T],
    key: Callable[[T], str],
    changed: Callable[[str], ConfigEvent],
    removed: Callable[[str], ConfigEvent] | None,
) -> list[ConfigEvent]:
    before = {key(x): x for x in old}
    after = {key(x): x for x in new}
    out: list[ConfigEvent] = []
    if removed is not None:
        out += [removed(k) for k in before if k not in after]
    out += [changed(k) for k, v in after.items() if before.get(k) != v]
    return out


def _diff_webvpn(old: WebvpnConfig, new: WebvpnConfig) -> list[ConfigEvent]:
    out: list[ConfigEvent] = []
    if old.port != new.port:
        out.append(WebvpnPortChanged(old.port, new.port))
    out += [InterfaceDisabled(n) for n in old.enabled_interfaces if n not in new.enabled_interfaces]
    out += [InterfaceEnabled(n) for n in new.enabled_interfaces if n not in old.enabled_interfaces]
    if old.dtls_port != new.dtls_port:
        out.append(DtlsPortChanged(old.dtls_port, new.dtls_port))
    if old.anyconnect_images != new.anyconnect_images:
        out.append(AnyconnectImagesChanged())
    if old.anyconnect_enabled != new.anyconnect_enabled:
        out.append(AnyconnectEnabledChanged(new.anyconnect_enabled))
    if old.tunnel_group_list_enabled != new.tunnel_group_list_enabled:
        out.append(TunnelGroupListChanged(new.tunnel_group_list_enabled))
    return out


def diff_configs(old: AsaConfig, new: AsaConfig) -> list[ConfigEvent]:
    """The change events that turn ``old`` into ``new``, in a stable order."""
    out: list[ConfigEvent] = []
    if old.hostname != new.hostname:
        out.append(HostnameChanged(old.hostname, new.hostname))
    if old.asa_version != new.asa_version:
        out.append(AsaVersionChanged(old.asa_version, new.asa_version))
    if old.enable_password != new.enable_password:
        out.append(EnablePasswordChanged())
    out += _diff_named(
        old.interfaces, new.interfaces, lambda i: i.hardware_id, InterfaceChanged, InterfaceChanged
    )
    out += _diff_webvpn(old.webvpn, new.webvpn)
    out += _diff_named(old.pools, new.pools, lambda p: p.name, PoolChanged, PoolRemoved)
    out += _diff_named(old.users, new.users, lambda u: u.name, UserChanged, UserRemoved)
    out += _diff_named(
        old.group_policies,
        new.group_policies,
        lambda g: g.name,
        GroupPolicyChanged,
        GroupPolicyRemoved,
    )
    out += _diff_named(
        old.tunnel_groups,
        new.tunnel_groups,
        lambda t: t.name,
        TunnelGroupChanged,
        TunnelGroupRemoved,
    )
    if old.tcpmss != new.tcpmss:
        out.append(TcpMssChanged(old.tcpmss, new.tcpmss))
    out += [
        SslCipherChanged(v) for v in SSL_CIPHER_VERSIONS if old.ssl_cipher(v) != new.ssl_cipher(v)
    ]
    if old.logging != new.logging:
        out.append(LoggingChanged())
    if old.icmp_rules != new.icmp_rules:
        out.append(IcmpRulesChanged())
    if old.aaa_local_max_fail != new.aaa_local_max_fail:
        out.append(AaaMaxFailChanged(old.aaa_local_max_fail, new.aaa_local_max_fail))
    return out


class ConfigStore:
    """The one current configuration of a device, shared by its admin consoles.

    :meth:`commit` swaps in a new snapshot and queues its change events for the server.
    """

    def __init__(self, config: AsaConfig | None = None) -> None:
        self._config = config if config is not None else AsaConfig()
        self._events: list[ConfigEvent] = []

    @property
    def config(self) -> AsaConfig:
        return self._config

    def commit(self, new: AsaConfig) -> list[ConfigEvent]:
        events = diff_configs(self._config, new)
        self._config = new
        self._events += events
        return events

    def drain_events(self) -> list[ConfigEvent]:
        out, self._events = self._events, []
        return out


# ===================================================================== modes
class ModeKind(enum.Enum):
    """CLI modes; the value is what the prompt shows in parentheses."""

    USER = "user"
    EXEC = "exec"
    CONFIG = "config"
    INTERFACE = "config-if"
    WEBVPN = "config-webvpn"
    GROUP_POLICY = "config-group-policy"
    GROUP_WEBVPN = "config-group-webvpn"
    TUNNEL_GENERAL = "config-tunnel-general"
    TUNNEL_WEBVPN = "config-tunnel-webvpn"


@dataclass(frozen=True)
class Mode:
    """A CLI mode; ``target`` names the object of a sub-mode (policy, group, interface)."""

    kind: ModeKind
    target: str = ""

    def parent(self) -> Mode | None:
        if self.kind is ModeKind.GROUP_WEBVPN:
            return Mode(ModeKind.GROUP_POLICY, self.target)
        if self.kind in (ModeKind.USER, ModeKind.EXEC):
            return None
        if self.kind is ModeKind.CONFIG:
            return Mode(ModeKind.EXEC)
        return Mode(ModeKind.CONFIG)

    def prompt(self, hostname: str) -> str:
        if self.kind is ModeKind.USER:
            return f"{hostname}>"
        if self.kind is ModeKind.EXEC:
            return f"{hostname}#"
        return f"{hostname}({self.kind.value})#"


# ===================================================================== tokens and grammar
@dataclass(frozen=True)
class Token:
    text: str
    start: int
    end: int
    quoted: bool = False


def tokenize(line: str) -> list[Token]:
    """Whitespace-separated tokens; ``"..."`` is one token (quotes dropped)."""
    out: list[Token] = []
    i, n = 0, len(line)
    while i < n:
        if line[i].isspace():
            i += 1
            continue
        if line[i] == '"':
            j = line.find('"', i + 1)
            end = n if j < 0 else j + 1
            out.append(Token(line[i + 1 : j if j >= 0 else n], i, end, quoted=True))
            i = end
            continue
        j = i
        while j < n and not line[j].isspace():
            j += 1
        out.append(Token(line[i:j], i, j))
        i = j
    return out


class CliError(Exception):
    """A rejected command: ``column`` set = syntax error at that column (marker form)."""

    def __init__(self, lines: list[str], column: int | None = None) -> None:
        super().__init__(" ".join(lines))
        self.lines = lines
        self.column = column


class _NoMatch(Exception):
    pass


_NAME = re.compile(r"[^\s\"?]{1,64}")
_DIGITS = re.compile(r"[0-9]{1,10}")


class Elem:
    """One position of a command pattern."""

    keywords: tuple[str, ...] = ()
    variadic = False  # consumes every remaining token (must be last)
    min_count = 1

    def match(self, tok: Token, kw: str | None, cfg: AsaConfig) -> object:
        """The value for ``tok`` (``kw`` = the keyword it abbreviates, if any)."""
        raise NotImplementedError


class Kw(Elem):
    def __init__(self, word: str) -> None:
        self.word = word
        self.keywords = (word,)

    def match(self, tok: Token, kw: str | None, cfg: AsaConfig) -> object:
        if kw != self.word:
            raise _NoMatch
        return None


class Choice(Elem):
    def __init__(self, *words: str) -> None:
        self.keywords = words

    def match(self, tok: Token, kw: str | None, cfg: AsaConfig) -> object:
        if kw is None or kw not in self.keywords:
            raise _NoMatch
        return kw


class Int(Elem):
    def __init__(self, lo: int, hi: int, *, none: bool = False) -> None:
        self.lo, self.hi, self.none = lo, hi, none
        self.keywords = ("none",) if none else ()

    def match(self, tok: Token, kw: str | None, cfg: AsaConfig) -> object:
        if self.none and kw == "none":
            return None
        if not _DIGITS.fullmatch(tok.text) or not self.lo <= int(tok.text) <= self.hi:
            raise _NoMatch
        return int(tok.text)


class Word(Elem):
    def __init__(self, pattern: re.Pattern[str] = _NAME) -> None:
        self.pattern = pattern

    def match(self, tok: Token, kw: str | None, cfg: AsaConfig) -> object:
        if tok.quoted or not self.pattern.fullmatch(tok.text):
            raise _NoMatch
        return tok.text


class Text(Elem):
    """Any token, quoted or not (the ``custom`` cipher list, …)."""

    def match(self, tok: Token, kw: str | None, cfg: AsaConfig) -> object:
        return tok.text


class Exists(Elem):
    """The name of an existing object (``enable outside`` needs a nameif)."""

    def __init__(self, lookup: Callable[[AsaConfig, str], object | None]) -> None:
        self.lookup = lookup

    def match(self, tok: Token, kw: str | None, cfg: AsaConfig) -> object:
        if tok.quoted or self.lookup(cfg, tok.text) is None:
            raise _NoMatch
        return tok.text


class Addr(Elem):
    def __init__(self, *, netmask: bool = False) -> None:
        self.netmask = netmask

    def match(self, tok: Token, kw: str | None, cfg: AsaConfig) -> object:
        try:
            a = IPv4Address(tok.text)
        except ValueError:
            raise _NoMatch from None
        inv = ~int(a) & 0xFFFFFFFF
        if self.netmask and inv & (inv + 1):
            raise _NoMatch
        return a


class AddrRange(Elem):
    def match(self, tok: Token, kw: str | None, cfg: AsaConfig) -> object:
        first, sep, last = tok.text.partition("-")
        try:
            a, b = IPv4Address(first), IPv4Address(last)
        except ValueError:
            raise _NoMatch from None
        if not sep or a > b:
            raise _NoMatch
        return (a, b)


class Level(Elem):
    keywords = LOG_LEVELS

    def match(self, tok: Token, kw: str | None, cfg: AsaConfig) -> object:
        if kw in LOG_LEVELS:
            return LOG_LEVELS.index(kw)
        if tok.text in ("0", "1", "2", "3", "4", "5", "6", "7"):
            return int(tok.text)
        raise _NoMatch


_HOSTPORT = re.compile(r"(udp|tcp|17|6)/([0-9]{1,5})", re.IGNORECASE)


class HostPort(Elem):
    def match(self, tok: Token, kw: str | None, cfg: AsaConfig) -> object:
        m = _HOSTPORT.fullmatch(tok.text)
        if m is None or not 1 <= int(m[2]) <= 65535:
            raise _NoMatch
        proto = {"17": "udp", "6": "tcp"}.get(m[1], m[1].lower())
        return (proto, int(m[2]))


class IcmpType(Elem):
    """An ``icmp`` type: a keyword of :data:`ICMP_TYPES` or a number 0–255 (stored as the
    keyword when there is one)."""

    keywords = tuple(ICMP_TYPES)

    def match(self, tok: Token, kw: str | None, cfg: AsaConfig) -> object:
        if kw in ICMP_TYPES:
            return kw
        if _DIGITS.fullmatch(tok.text) and int(tok.text) <= 255:
            n = int(tok.text)
            return next((k for k, v in ICMP_TYPES.items() if v == n), str(n))
        raise _NoMatch


class Many(Elem):
    variadic = True

    def __init__(self, inner: Elem, min_count: int = 1) -> None:
        self.inner = inner
        self.min_count = min_count
        self.keywords = inner.keywords

    def match(self, tok: Token, kw: str | None, cfg: AsaConfig) -> object:
        return self.inner.match(tok, kw, cfg)


def Rest() -> Many:
    """Zero or more arbitrary tokens (ignored trailing arguments of ``no`` forms)."""
    return Many(Text(), 0)


class Args:
    """The argument values of a matched command (keywords excluded), typed getters."""

    def __init__(self, values: list[object]) -> None:
        self.values = values

    def num(self, i: int) -> int:
        v = self.values[i]
        assert isinstance(v, int)
        return v

    def opt_num(self, i: int) -> int | None:
        v = self.values[i]
        assert v is None or isinstance(v, int)
        return v

    def text(self, i: int) -> str:
        v = self.values[i]
        assert isinstance(v, str)
        return v

    def addr(self, i: int) -> IPv4Address:
        v = self.values[i]
        assert isinstance(v, IPv4Address)
        return v

    def words(self, i: int) -> tuple[str, ...]:
        v = self.values[i] if i < len(self.values) else ()
        assert isinstance(v, tuple)
        return tuple(str(x) for x in v)

    def pair(self, i: int) -> tuple[object, object]:
        v = self.values[i]
        assert isinstance(v, tuple)
        return (v[0], v[1])


@dataclass
class CommandContext:
    """What a command handler works on; committed only if the handler returns."""

    cfg: AsaConfig
    mode: Mode
    out: list[str] = field(default_factory=list)
    action: str | None = None  # console-level actions: "enable", "logout", "write"


Handler = Callable[[CommandContext, Args], None]


@dataclass(frozen=True)
class Command:
    elems: tuple[Elem, ...]
    handler: Handler

    def elem_at(self, i: int) -> Elem | None:
        if i < len(self.elems):
            return self.elems[i]
        if self.elems and self.elems[-1].variadic:
            return self.elems[-1]
        return None

    def complete(self, n: int) -> bool:
        if self.elems and self.elems[-1].variadic:
            return n >= len(self.elems) - 1 + self.elems[-1].min_count
        return n == len(self.elems)


def cmd(handler: Handler, *parts: str | Elem) -> Command:
    """A command; string parts are keywords (``"no dtls port"`` = three keywords)."""
    elems: list[Elem] = []
    for p in parts:
        if isinstance(p, str):
            elems += [Kw(w) for w in p.split()]
        else:
            elems.append(p)
    return Command(tuple(elems), handler)


def _resolve(text: str, keywords: set[str]) -> str | None:
    low = text.lower()
    if low in keywords:
        return low
    hits = [k for k in keywords if k.startswith(low)]
    return hits[0] if len(hits) == 1 else None


def match_command(
    commands: Sequence[Command], tokens: Sequence[Token], cfg: AsaConfig
) -> tuple[Command, Args] | int:
    """The first command matching ``tokens`` with its arguments, or the failing token index."""
    alive = list(commands)
    values: dict[int, list[object]] = {id(c): [] for c in alive}
    tails: dict[int, list[object]] = {id(c): [] for c in alive}
    worst = 0
    for i, tok in enumerate(tokens):
        kws = {k for c in alive if (e := c.elem_at(i)) is not None for k in e.keywords}
        kw = _resolve(tok.text, kws) if not tok.quoted else None
        survivors: list[Command] = []
        for c in alive:
            e = c.elem_at(i)
            try:
                if e is None:
                    raise _NoMatch
                v = e.match(tok, kw, cfg)
            except _NoMatch:
                continue
            if e.variadic:
                tails[id(c)].append(v)
            elif not isinstance(e, Kw):
                values[id(c)].append(v)
            survivors.append(c)
        if not survivors:
            return i
        alive = survivors
        worst = i + 1
    for c in alive:
        if c.complete(len(tokens)):
            vals = values[id(c)]
            if c.elems and c.elems[-1].variadic:
                vals = [*vals, tuple(tails[id(c)])]
            return c, Args(vals)
    return worst


def run_line(
    tokens: Sequence[Token], attempts: Sequence[tuple[Mode, Sequence[Command]]], cfg: AsaConfig
) -> CommandContext:
    """Run the first matching command of the first mode that has one (ASA mode fall-through).

    Raises :class:`CliError` (marker at the furthest token any mode accepted) if none.
    """
    best = 0
    for mode, commands in attempts:
        got = match_command(commands, tokens, cfg)
        if isinstance(got, int):
            best = max(best, got)
            continue
        command, args = got
        ctx = CommandContext(cfg, mode)
        command.handler(ctx, args)
        return ctx
    column = tokens[best].start if best < len(tokens) else tokens[-1].end + 1
    raise CliError([INVALID_INPUT], column)


# ===================================================================== handlers: helpers
def _upsert(items: tuple[T, ...], new: T, key: Callable[[T], str]) -> tuple[T, ...]:
    k = key(new)
    if any(key(x) == k for x in items):
        return tuple(new if key(x) == k else x for x in items)
    return (*items, new)


def _kw(name: str, value: object) -> dict[str, Any]:
    return {name: value}


def _without(items: tuple[T, ...], name: str, key: Callable[[T], str]) -> tuple[T, ...]:
    return tuple(x for x in items if key(x) != name)


def _enter(kind: ModeKind) -> Handler:
    def h(ctx: CommandContext, a: Args) -> None:
        ctx.mode = Mode(kind)

    return h


def _exit(ctx: CommandContext, a: Args) -> None:
    ctx.mode = ctx.mode.parent() or ctx.mode


def _end(ctx: CommandContext, a: Args) -> None:
    ctx.mode = Mode(ModeKind.EXEC)


def _set_web(**fixed: Any) -> Handler:
    def h(ctx: CommandContext, a: Args) -> None:
        ctx.cfg = replace(ctx.cfg, webvpn=replace(ctx.cfg.webvpn, **fixed))

    return h


def _set_web_port(name: str) -> Handler:
    def h(ctx: CommandContext, a: Args) -> None:
        ctx.cfg = replace(ctx.cfg, webvpn=replace(ctx.cfg.webvpn, **_kw(name, a.num(0))))

    return h


# ----------------------------------------------------------------- global config
def _h_hostname(ctx: CommandContext, a: Args) -> None:
    ctx.cfg = replace(ctx.cfg, hostname=a.text(0))


def _h_no_hostname(ctx: CommandContext, a: Args) -> None:
    ctx.cfg = replace(ctx.cfg, hostname=DEFAULT_HOSTNAME)


def _h_version(ctx: CommandContext, a: Args) -> None:
    ctx.cfg = replace(ctx.cfg, asa_version=a.text(0))


def _h_no_version(ctx: CommandContext, a: Args) -> None:
    ctx.cfg = replace(ctx.cfg, asa_version=DEFAULT_ASA_VERSION)


def _h_enable_password(ctx: CommandContext, a: Args) -> None:
    ctx.cfg = replace(ctx.cfg, enable_password=a.text(0))


def _h_no_enable_password(ctx: CommandContext, a: Args) -> None:
    ctx.cfg = replace(ctx.cfg, enable_password=None)


def _h_interface(ctx: CommandContext, a: Args) -> None:
    name = a.text(0)
    if ctx.cfg.interface(name) is None:
        ctx.cfg = replace(ctx.cfg, interfaces=(*ctx.cfg.interfaces, Interface(name)))
    ctx.mode = Mode(ModeKind.INTERFACE, name)


def _h_pool(ctx: CommandContext, a: Args) -> None:
    first, last = a.pair(1)
    assert isinstance(first, IPv4Address)
    assert isinstance(last, IPv4Address)
    pool = IpPool(a.text(0), first, last, a.addr(2))
    ctx.cfg = replace(ctx.cfg, pools=_upsert(ctx.cfg.pools, pool, lambda p: p.name))


def _h_no_pool(ctx: CommandContext, a: Args) -> None:
    ctx.cfg = replace(ctx.cfg, pools=_without(ctx.cfg.pools, a.text(0), lambda p: p.name))


def _h_username(ctx: CommandContext, a: Args) -> None:
    priv = a.num(2) if len(a.values) > 2 else DEFAULT_USER_PRIVILEGE
    user = User(a.text(0), a.text(1), priv)
    ctx.cfg = replace(ctx.cfg, users=_upsert(ctx.cfg.users, user, lambda u: u.name))


def _h_no_username(ctx: CommandContext, a: Args) -> None:
    ctx.cfg = replace(ctx.cfg, users=_without(ctx.cfg.users, a.text(0), lambda u: u.name))


def _h_tcpmss(ctx: CommandContext, a: Args) -> None:
    n = a.num(0)
    if 0 < n < 48:  # 0 disables; otherwise 48-65535
        raise CliError([INVALID_INPUT])
    ctx.cfg = replace(ctx.cfg, tcpmss=n)


def _h_no_tcpmss(ctx: CommandContext, a: Args) -> None:
    ctx.cfg = replace(ctx.cfg, tcpmss=DEFAULT_TCPMSS)


def _h_max_fail(ctx: CommandContext, a: Args) -> None:
    ctx.cfg = replace(ctx.cfg, aaa_local_max_fail=a.num(0))


def _h_no_max_fail(ctx: CommandContext, a: Args) -> None:
    ctx.cfg = replace(ctx.cfg, aaa_local_max_fail=None)


def _set_cipher(ctx: CommandContext, c: SslCipher) -> None:
    rest = _without(ctx.cfg.ssl_ciphers, c.version, lambda x: x.version)
    if c != SslCipher(c.version, DEFAULT_SSL_CIPHER_LEVEL):
        rest = _upsert(ctx.cfg.ssl_ciphers, c, lambda x: x.version)
    ctx.cfg = replace(ctx.cfg, ssl_ciphers=rest)


def _h_ssl_cipher(ctx: CommandContext, a: Args) -> None:
    _set_cipher(ctx, SslCipher(a.text(0), a.text(1)))


def _h_ssl_cipher_custom(ctx: CommandContext, a: Args) -> None:
    _set_cipher(ctx, SslCipher(a.text(0), "custom", a.text(1)))


def _h_no_ssl_cipher(ctx: CommandContext, a: Args) -> None:
    _set_cipher(ctx, SslCipher(a.text(0), DEFAULT_SSL_CIPHER_LEVEL))


def _set_log(**fixed: Any) -> Handler:
    def h(ctx: CommandContext, a: Args) -> None:
        ctx.cfg = replace(ctx.cfg, logging=replace(ctx.cfg.logging, **fixed))

    return h


def _h_log_buffered(ctx: CommandContext, a: Args) -> None:
    ctx.cfg = replace(ctx.cfg, logging=replace(ctx.cfg.logging, buffered_level=a.num(0)))


def _h_log_trap(ctx: CommandContext, a: Args) -> None:
    ctx.cfg = replace(ctx.cfg, logging=replace(ctx.cfg.logging, trap_level=a.num(0)))


def _h_log_facility(ctx: CommandContext, a: Args) -> None:
    ctx.cfg = replace(ctx.cfg, logging=replace(ctx.cfg.logging, facility=a.num(0)))


def _log_key(h: LoggingHost) -> str:
    return f"{h.interface} {h.address}"


def _h_log_host(ctx: CommandContext, a: Args) -> None:
    proto, port = a.pair(2) if len(a.values) > 2 else ("udp", DEFAULT_SYSLOG_PORT)
    assert isinstance(proto, str)
    assert isinstance(port, int)
    host = LoggingHost(a.text(0), a.addr(1), proto, port)
    hosts = _upsert(ctx.cfg.logging.hosts, host, _log_key)
    ctx.cfg = replace(ctx.cfg, logging=replace(ctx.cfg.logging, hosts=hosts))


def _h_no_log_host(ctx: CommandContext, a: Args) -> None:
    hosts = _without(ctx.cfg.logging.hosts, f"{a.text(0)} {a.addr(1)}", _log_key)
    ctx.cfg = replace(ctx.cfg, logging=replace(ctx.cfg.logging, hosts=hosts))


def _icmp_rule(form: str, typed: bool) -> Handler:
    """``[no] icmp {permit|deny} {any|host A|A MASK} [type] <nameif>``; ``form`` is
    ``add`` or ``remove``, a dash, and ``any``, ``host`` or ``net``."""
    op, where = form.split("-")

    def h(ctx: CommandContext, a: Args) -> None:
        i = 1
        if where == "any":
            addr, mask = _ANY, _ANY
        elif where == "host":
            addr, mask, i = a.addr(1), _HOST_MASK, 2
        else:
            addr, mask, i = a.addr(1), a.addr(2), 3
        icmp_type = a.text(i) if typed else None
        rule = IcmpRule(a.text(0), addr, mask, icmp_type, a.text(i + 1 if typed else i))
        rules = ctx.cfg.icmp_rules
        if op == "remove":
            rules = tuple(r for r in rules if r != rule)
        elif rule not in rules:
            rules = (*rules, rule)
        ctx.cfg = replace(ctx.cfg, icmp_rules=rules)

    return h


def _icmp_commands() -> tuple[Command, ...]:
    out: list[Command] = []
    action = Choice("permit", "deny")
    nameifs: tuple[tuple[str, str, Elem], ...] = (
        ("add", "icmp", _NAMEIF),
        ("remove", "no icmp", Word()),  # the interface may be gone
    )
    for op, prefix, nameif in nameifs:
        wheres: tuple[tuple[str, tuple[str | Elem, ...]], ...] = (
            ("any", ("any",)),
            ("host", ("host", Addr())),
            ("net", (Addr(), Addr(netmask=True))),
        )
        for where, elems in wheres:
            out.append(cmd(_icmp_rule(f"{op}-{where}", False), prefix, action, *elems, nameif))
            out.append(
                cmd(_icmp_rule(f"{op}-{where}", True), prefix, action, *elems, IcmpType(), nameif)
            )
    return tuple(out)


# ----------------------------------------------------------------- interface mode
def _if_update(ctx: CommandContext, **changes: Any) -> None:
    cur = ctx.cfg.interface(ctx.mode.target) or Interface(ctx.mode.target)
    new = replace(cur, **changes)
    ctx.cfg = replace(ctx.cfg, interfaces=_upsert(ctx.cfg.interfaces, new, lambda i: i.hardware_id))


def _drop_nameif_refs(ctx: CommandContext, nameif: str | None) -> None:
    if nameif is None or not any(i.nameif == nameif for i in ctx.cfg.interfaces):
        return
    enabled = tuple(n for n in ctx.cfg.webvpn.enabled_interfaces if n != nameif)
    ctx.cfg = replace(ctx.cfg, webvpn=replace(ctx.cfg.webvpn, enabled_interfaces=enabled))


def _h_nameif(ctx: CommandContext, a: Args) -> None:
    name = a.text(0)
    other = ctx.cfg.interface_by_nameif(name)
    if other is not None and other.hardware_id != ctx.mode.target:
        raise CliError([f'ERROR: Name "{name}" is already in use'])  # text UNCONFIRMED
    cur = ctx.cfg.interface(ctx.mode.target)
    if cur is not None and cur.nameif != name:
        _drop_nameif_refs(ctx, cur.nameif)
    _if_update(ctx, nameif=name)


def _h_no_nameif(ctx: CommandContext, a: Args) -> None:
    cur = ctx.cfg.interface(ctx.mode.target)
    if cur is not None:
        _drop_nameif_refs(ctx, cur.nameif)
    _if_update(ctx, nameif=None)


def _h_ip_address(ctx: CommandContext, a: Args) -> None:
    _if_update(ctx, ip_address=a.addr(0), netmask=a.addr(1))


def _if_set(**fixed: Any) -> Handler:
    def h(ctx: CommandContext, a: Args) -> None:
        _if_update(ctx, **fixed)

    return h


def _h_security_level(ctx: CommandContext, a: Args) -> None:
    _if_update(ctx, security_level=a.num(0))


# ----------------------------------------------------------------- webvpn mode
def _h_web_enable(ctx: CommandContext, a: Args) -> None:
    name = a.text(0)
    if name not in ctx.cfg.webvpn.enabled_interfaces:
        enabled = (*ctx.cfg.webvpn.enabled_interfaces, name)
        ctx.cfg = replace(ctx.cfg, webvpn=replace(ctx.cfg.webvpn, enabled_interfaces=enabled))


def _h_web_no_enable(ctx: CommandContext, a: Args) -> None:
    enabled = tuple(n for n in ctx.cfg.webvpn.enabled_interfaces if n != a.text(0))
    ctx.cfg = replace(ctx.cfg, webvpn=replace(ctx.cfg.webvpn, enabled_interfaces=enabled))


def _h_image(ctx: CommandContext, a: Args) -> None:
    images = ctx.cfg.webvpn.anyconnect_images
    order = a.num(1) if len(a.values) > 1 else max((i.order for i in images), default=0) + 1
    new = AnyconnectImage(a.text(0), order)
    images = tuple(sorted(_upsert(images, new, lambda i: i.path), key=lambda i: i.order))
    ctx.cfg = replace(ctx.cfg, webvpn=replace(ctx.cfg.webvpn, anyconnect_images=images))


def _h_no_image(ctx: CommandContext, a: Args) -> None:
    images = _without(ctx.cfg.webvpn.anyconnect_images, a.text(0), lambda i: i.path)
    ctx.cfg = replace(ctx.cfg, webvpn=replace(ctx.cfg.webvpn, anyconnect_images=images))


# ----------------------------------------------------------------- group policies
def _h_gp_internal(ctx: CommandContext, a: Args) -> None:
    name = a.text(0)
    if ctx.cfg.group_policy(name) is None:
        ctx.cfg = replace(ctx.cfg, group_policies=(*ctx.cfg.group_policies, GroupPolicy(name)))


def _h_gp_attributes(ctx: CommandContext, a: Args) -> None:
    name = a.text(0)
    if ctx.cfg.group_policy(name) is None:
        raise CliError([f"ERROR: group-policy {name} does not exist"])  # text UNCONFIRMED
    ctx.mode = Mode(ModeKind.GROUP_POLICY, name)


def _h_no_gp(ctx: CommandContext, a: Args) -> None:
    name = a.text(0)
    if name == DFLT_GRP_POLICY:
        new = _upsert(ctx.cfg.group_policies, DEFAULT_GROUP_POLICY, lambda g: g.name)
    else:
        new = _without(ctx.cfg.group_policies, name, lambda g: g.name)
    ctx.cfg = replace(ctx.cfg, group_policies=new)


def _gp_update(ctx: CommandContext, **changes: Any) -> None:
    gp = ctx.cfg.group_policy(ctx.mode.target)
    if gp is None:
        raise CliError([f"ERROR: group-policy {ctx.mode.target} does not exist"])
    new = replace(gp, **changes)
    ctx.cfg = replace(
        ctx.cfg, group_policies=_upsert(ctx.cfg.group_policies, new, lambda g: g.name)
    )


def _gp_set(attr: str, conv: Callable[[Args], object]) -> Handler:
    def h(ctx: CommandContext, a: Args) -> None:
        _gp_update(ctx, **_kw(attr, conv(a)))

    return h


def _gp_unset(attr: str) -> Handler:
    def h(ctx: CommandContext, a: Args) -> None:
        default = getattr(DEFAULT_GROUP_POLICY, attr)
        _gp_update(ctx, **_kw(attr, default if ctx.mode.target == DFLT_GRP_POLICY else INHERIT))

    return h


def _protocols(a: Args) -> tuple[str, ...]:
    chosen = set(a.words(0))
    return tuple(p for p in TUNNEL_PROTOCOLS if p in chosen)


def _h_dpd(ctx: CommandContext, a: Args) -> None:
    _gp_update(ctx, **_kw(f"dpd_{a.text(0)}", a.opt_num(1)))


def _h_no_dpd(ctx: CommandContext, a: Args) -> None:
    _gp_unset(f"dpd_{a.text(0)}")(ctx, a)


def _opt0(a: Args) -> int | None:
    return a.opt_num(0)


def _h_rekey_method(ctx: CommandContext, a: Args) -> None:
    method = a.text(0)
    _gp_update(ctx, rekey_method=None if method == "none" else method)


# ----------------------------------------------------------------- tunnel groups
def _h_tg_type(ctx: CommandContext, a: Args) -> None:
    name = a.text(0)
    if ctx.cfg.tunnel_group(name) is None:
        ctx.cfg = replace(ctx.cfg, tunnel_groups=(*ctx.cfg.tunnel_groups, TunnelGroup(name)))


def _enter_tg(kind: ModeKind) -> Handler:
    def h(ctx: CommandContext, a: Args) -> None:
        name = a.text(0)
        if ctx.cfg.tunnel_group(name) is None:
            raise CliError([f"ERROR: tunnel-group {name} does not exist"])  # text UNCONFIRMED
        ctx.mode = Mode(kind, name)

    return h


def _h_no_tg(ctx: CommandContext, a: Args) -> None:
    name = a.text(0)
    if name in BUILTIN_TUNNEL_GROUPS:
        new = _upsert(ctx.cfg.tunnel_groups, TunnelGroup(name), lambda t: t.name)
    else:
        new = _without(ctx.cfg.tunnel_groups, name, lambda t: t.name)
    ctx.cfg = replace(ctx.cfg, tunnel_groups=new)


def _tg_update(ctx: CommandContext, fn: Callable[[TunnelGroup], TunnelGroup]) -> None:
    tg = ctx.cfg.tunnel_group(ctx.mode.target)
    if tg is None:
        raise CliError([f"ERROR: tunnel-group {ctx.mode.target} does not exist"])
    new = fn(tg)
    ctx.cfg = replace(ctx.cfg, tunnel_groups=_upsert(ctx.cfg.tunnel_groups, new, lambda t: t.name))


def _tg_set(**fixed: Any) -> Handler:
    def h(ctx: CommandContext, a: Args) -> None:
        _tg_update(ctx, lambda tg: replace(tg, **fixed))

    return h


def _h_address_pool(ctx: CommandContext, a: Args) -> None:
    pools = tuple(dict.fromkeys(a.words(0)))
    if len(pools) > 6:
        raise CliError([INVALID_INPUT])
    _tg_update(ctx, lambda tg: replace(tg, address_pools=pools))


def _h_default_gp(ctx: CommandContext, a: Args) -> None:
    name = a.text(0)
    _tg_update(ctx, lambda tg: replace(tg, default_group_policy=name))


def _h_alias(ctx: CommandContext, a: Args) -> None:
    new = GroupAlias(a.text(0), a.text(1) == "enable")
    _tg_update(
        ctx, lambda tg: replace(tg, group_aliases=_upsert(tg.group_aliases, new, lambda x: x.alias))
    )


def _h_no_alias(ctx: CommandContext, a: Args) -> None:
    name = a.text(0)
    _tg_update(
        ctx,
        lambda tg: replace(tg, group_aliases=_without(tg.group_aliases, name, lambda x: x.alias)),
    )


def _h_url(ctx: CommandContext, a: Args) -> None:
    new = GroupUrl(a.text(0), a.text(1) == "enable")
    _tg_update(ctx, lambda tg: replace(tg, group_urls=_upsert(tg.group_urls, new, lambda x: x.url)))


def _h_no_url(ctx: CommandContext, a: Args) -> None:
    url = a.text(0)
    _tg_update(
        ctx, lambda tg: replace(tg, group_urls=_without(tg.group_urls, url, lambda x: x.url))
    )


# ===================================================================== grammar tables
_PORT = Int(1, 65535)
_NAMEIF = Exists(lambda cfg, n: cfg.interface_by_nameif(n))
_POOL = Exists(lambda cfg, n: cfg.pool(n))
_POLICY = Exists(lambda cfg, n: cfg.group_policy(n))
_VERSION = Word(re.compile(r"\d+\.\d+(?:\(\d+\))?"))
_HWID = Word(re.compile(r"[A-Za-z][A-Za-z0-9/.:-]{0,63}"))
_URL = Word(re.compile(r"https?://[^\s\"]+", re.IGNORECASE))
_MINUTES = Int(1, 35791394, none=True)

COMMON_CONFIG: Final = (cmd(_exit, "exit"), cmd(_end, "end"))

CONFIG_COMMANDS: Final = (
    cmd(_h_hostname, "hostname", Word()),
    cmd(_h_no_hostname, "no hostname", Rest()),
    cmd(_h_version, "asa-version", _VERSION),
    cmd(_h_version, "asa version", _VERSION),  # the "ASA Version 9.1(4)" header line
    cmd(_h_no_version, "no asa-version", Rest()),
    cmd(_h_enable_password, "enable password", Word()),
    cmd(_h_no_enable_password, "no enable password", Rest()),
    cmd(_h_interface, "interface", _HWID),
    cmd(_enter(ModeKind.WEBVPN), "webvpn"),
    cmd(_h_pool, "ip local pool", Word(), AddrRange(), "mask", Addr(netmask=True)),
    cmd(_h_no_pool, "no ip local pool", Word(), Rest()),
    cmd(_h_username, "username", Word(), "password", Word()),
    cmd(_h_username, "username", Word(), "password", Word(), "privilege", Int(0, 15)),
    cmd(_h_no_username, "no username", Word(), Rest()),
    cmd(_h_gp_internal, "group-policy", Word(), "internal"),
    cmd(_h_gp_attributes, "group-policy", Word(), "attributes"),
    cmd(_h_no_gp, "no group-policy", Word(), Rest()),
    cmd(_h_tg_type, "tunnel-group", Word(), "type", Choice("remote-access")),
    cmd(_enter_tg(ModeKind.TUNNEL_GENERAL), "tunnel-group", Word(), "general-attributes"),
    cmd(_enter_tg(ModeKind.TUNNEL_WEBVPN), "tunnel-group", Word(), "webvpn-attributes"),
    cmd(_h_no_tg, "no tunnel-group", Word(), Rest()),
    cmd(_h_tcpmss, "sysopt connection tcpmss", Int(0, 65535)),
    cmd(_h_no_tcpmss, "no sysopt connection tcpmss", Rest()),
    cmd(_h_max_fail, "aaa local authentication attempts max-fail", Int(*MAX_FAIL_RANGE)),
    cmd(_h_no_max_fail, "no aaa local authentication attempts max-fail", Rest()),
    cmd(_h_ssl_cipher, "ssl cipher", Choice(*SSL_CIPHER_VERSIONS), Choice(*SSL_CIPHER_LEVELS)),
    cmd(_h_ssl_cipher_custom, "ssl cipher", Choice(*SSL_CIPHER_VERSIONS), "custom", Text()),
    cmd(_h_no_ssl_cipher, "no ssl cipher", Choice(*SSL_CIPHER_VERSIONS), Rest()),
    cmd(_set_log(enabled=True), "logging enable"),
    cmd(_set_log(enabled=False), "no logging enable"),
    cmd(_set_log(timestamp=True), "logging timestamp"),
    cmd(_set_log(timestamp=False), "no logging timestamp"),
    cmd(_h_log_buffered, "logging buffered", Level()),
    cmd(_set_log(buffered_level=None), "no logging buffered", Rest()),
    cmd(_h_log_host, "logging host", _NAMEIF, Addr()),
    cmd(_h_log_host, "logging host", _NAMEIF, Addr(), HostPort()),
    cmd(_h_no_log_host, "no logging host", Word(), Addr(), Rest()),
    *_icmp_commands(),
    cmd(_h_log_trap, "logging trap", Level()),
    cmd(_set_log(trap_level=None), "no logging trap", Rest()),
    cmd(_h_log_facility, "logging facility", Int(16, 23)),
    cmd(_set_log(facility=DEFAULT_SYSLOG_FACILITY), "no logging facility", Rest()),
)

INTERFACE_COMMANDS: Final = (
    cmd(_h_nameif, "nameif", Word()),
    cmd(_h_no_nameif, "no nameif", Rest()),
    cmd(_h_security_level, "security-level", Int(0, 100)),
    cmd(_if_set(security_level=None), "no security-level", Rest()),
    cmd(_h_ip_address, "ip address", Addr(), Addr(netmask=True)),
    cmd(_if_set(ip_address=None, netmask=None), "no ip address", Rest()),
    cmd(_if_set(shutdown=True), "shutdown"),
    cmd(_if_set(shutdown=False), "no shutdown"),
)

WEBVPN_COMMANDS: Final = (
    cmd(_set_web_port("port"), "port", _PORT),
    cmd(_set_web(port=DEFAULT_WEBVPN_PORT), "no port", Rest()),
    cmd(_h_web_enable, "enable", _NAMEIF),
    cmd(_h_web_no_enable, "no enable", Word()),
    cmd(_set_web_port("dtls_port"), "dtls port", _PORT),
    cmd(_set_web(dtls_port=DEFAULT_DTLS_PORT), "no dtls port", Rest()),
    cmd(_h_image, "anyconnect image", Word(), Int(1, 65535)),
    cmd(_h_image, "anyconnect image", Word()),
    cmd(_h_no_image, "no anyconnect image", Word(), Rest()),
    cmd(_set_web(anyconnect_enabled=True), "anyconnect enable"),
    cmd(_set_web(anyconnect_enabled=False), "no anyconnect enable"),
    cmd(_set_web(tunnel_group_list_enabled=True), "tunnel-group-list enable"),
    cmd(_set_web(tunnel_group_list_enabled=False), "no tunnel-group-list enable"),
)


def _enter_gp_webvpn(ctx: CommandContext, a: Args) -> None:
    ctx.mode = Mode(ModeKind.GROUP_WEBVPN, ctx.mode.target)


GROUP_POLICY_COMMANDS: Final = (
    cmd(
        _gp_set("vpn_tunnel_protocol", _protocols),
        "vpn-tunnel-protocol",
        Many(Choice(*TUNNEL_PROTOCOLS)),
    ),
    cmd(_gp_unset("vpn_tunnel_protocol"), "no vpn-tunnel-protocol", Rest()),
    cmd(
        _gp_set("vpn_simultaneous_logins", lambda a: a.num(0)),
        "vpn-simultaneous-logins",
        Int(0, MAX_SIMULTANEOUS_LOGINS),
    ),
    cmd(_gp_unset("vpn_simultaneous_logins"), "no vpn-simultaneous-logins", Rest()),
    cmd(_gp_set("vpn_idle_timeout", _opt0), "vpn-idle-timeout", _MINUTES),
    cmd(_gp_unset("vpn_idle_timeout"), "no vpn-idle-timeout", Rest()),
    cmd(_gp_set("vpn_session_timeout", _opt0), "vpn-session-timeout", _MINUTES),
    cmd(_gp_unset("vpn_session_timeout"), "no vpn-session-timeout", Rest()),
    cmd(_enter_gp_webvpn, "webvpn"),
)

GROUP_WEBVPN_COMMANDS: Final = (
    cmd(_gp_set("anyconnect_mtu", _opt0), "anyconnect mtu", Int(576, 1462)),  # range UNCONFIRMED
    cmd(_gp_unset("anyconnect_mtu"), "no anyconnect mtu", Rest()),
    cmd(
        _gp_set("dtls", lambda a: a.text(0) == "enable"),
        "anyconnect ssl dtls",
        Choice("enable", "none"),
    ),
    cmd(_gp_unset("dtls"), "no anyconnect ssl dtls", Rest()),
    cmd(
        _gp_set("df_bit_ignore", lambda a: a.text(0) == "enable"),
        "anyconnect ssl df-bit-ignore",
        Choice("enable", "disable"),
    ),
    cmd(_gp_unset("df_bit_ignore"), "no anyconnect ssl df-bit-ignore", Rest()),
    cmd(_gp_set("keepalive", _opt0), "anyconnect ssl keepalive", Int(15, 600, none=True)),
    cmd(_gp_unset("keepalive"), "no anyconnect ssl keepalive", Rest()),
    cmd(_h_dpd, "anyconnect dpd-interval", Choice("gateway", "client"), Int(5, 3600, none=True)),
    cmd(_h_no_dpd, "no anyconnect dpd-interval", Choice("gateway", "client"), Rest()),
    cmd(_gp_set("rekey_time", _opt0), "anyconnect ssl rekey time", Int(1, 10080, none=True)),
    cmd(_gp_unset("rekey_time"), "no anyconnect ssl rekey time", Rest()),
    cmd(_h_rekey_method, "anyconnect ssl rekey method", Choice("ssl", "new-tunnel", "none")),
    cmd(_gp_unset("rekey_method"), "no anyconnect ssl rekey method", Rest()),
)

TUNNEL_GENERAL_COMMANDS: Final = (
    cmd(_h_address_pool, "address-pool", Many(_POOL)),
    cmd(_tg_set(address_pools=()), "no address-pool", Rest()),
    cmd(_h_default_gp, "default-group-policy", _POLICY),
    cmd(_tg_set(default_group_policy=DFLT_GRP_POLICY), "no default-group-policy", Rest()),
)

TUNNEL_WEBVPN_COMMANDS: Final = (
    cmd(_h_alias, "group-alias", Word(), Choice("enable", "disable")),
    cmd(_h_no_alias, "no group-alias", Word(), Rest()),
    cmd(_h_url, "group-url", _URL, Choice("enable", "disable")),
    cmd(_h_no_url, "no group-url", _URL, Rest()),
)

MODE_COMMANDS: Final[dict[ModeKind, tuple[Command, ...]]] = {
    ModeKind.CONFIG: CONFIG_COMMANDS,
    ModeKind.INTERFACE: INTERFACE_COMMANDS,
    ModeKind.WEBVPN: WEBVPN_COMMANDS,
    ModeKind.GROUP_POLICY: GROUP_POLICY_COMMANDS,
    ModeKind.GROUP_WEBVPN: GROUP_WEBVPN_COMMANDS,
    ModeKind.TUNNEL_GENERAL: TUNNEL_GENERAL_COMMANDS,
    ModeKind.TUNNEL_WEBVPN: TUNNEL_WEBVPN_COMMANDS,
}


def config_attempts(
    mode: Mode, extra: Sequence[Command] = ()
) -> list[tuple[Mode, Sequence[Command]]]:
    """The (mode, commands) chain to try for a line typed in ``mode``: itself, then parents.

    ``extra`` (``show …``, ``write``) is offered in the first attempt only.
    """
    out: list[tuple[Mode, Sequence[Command]]] = []
    cur: Mode | None = mode
    first = True
    while cur is not None and cur.kind in MODE_COMMANDS:
        cmds = MODE_COMMANDS[cur.kind] + COMMON_CONFIG + (tuple(extra) if first else ())
        out.append((cur, cmds))
        first = False
        cur = cur.parent()
    return out


# ===================================================================== file parser
class AsaConfigError(ConfigError):
    """A bad line in a configuration file: ``lineno``, ``line`` and the ASA's error text.

    ``asa_lines`` is the console rendering (the line, the ``^`` marker, the ERROR line).
    """

    def __init__(self, lineno: int, line: str, error: CliError) -> None:
        self.lineno = lineno
        self.line = line
        self.column = error.column
        self.asa_lines = [line]
        if error.column is not None:
            self.asa_lines.append(" " * error.column + "^")
        self.asa_lines += error.lines
        where = "" if error.column is None else f" (column {error.column + 1})"
        super().__init__(f"line {lineno}: {line.strip()!r}{where}: {' '.join(error.lines)}")


def parse_config(text: str, base: AsaConfig | None = None) -> AsaConfig:
    """Apply a configuration file (ASA CLI syntax) to ``base`` (default: factory defaults).

    ``!`` and ``:`` lines are comments; a line indented deeper than the line that opened a
    sub-mode belongs to that sub-mode (as ``show running-config`` prints it); ``exit``
    leaves a sub-mode. A bad line raises :class:`AsaConfigError`.
    """
    cfg = base if base is not None else AsaConfig()
    root = Mode(ModeKind.CONFIG)
    stack: list[tuple[int, Mode]] = [(-1, root)]
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip().expandtabs(1)
        body = line.lstrip()
        if not body or body[0] in "!:":
            continue
        indent = len(line) - len(body)
        while stack[-1][0] >= indent:
            stack.pop()
        mode = stack[-1][1]
        try:
            ctx = run_line(tokenize(line), [(mode, MODE_COMMANDS[mode.kind] + COMMON_CONFIG)], cfg)
        except CliError as e:
            raise AsaConfigError(lineno, line, e) from None
        cfg = ctx.cfg
        if ctx.mode == mode:
            continue
        if ctx.mode.parent() == mode:
            stack.append((indent, ctx.mode))
        else:  # exit / end
            while len(stack) > 1 and stack[-1][1] != ctx.mode:
                stack.pop()
    return cfg


# ===================================================================== running-config
def _minutes(v: object) -> str:
    return "none" if v is None else str(v)


# (attribute, in the webvpn sub-mode?, render)
_GP_ATTRS: Final[tuple[tuple[str, bool, Callable[[object], str]], ...]] = (
    ("vpn_simultaneous_logins", False, lambda v: f"vpn-simultaneous-logins {v}"),
    ("vpn_idle_timeout", False, lambda v: f"vpn-idle-timeout {_minutes(v)}"),
    ("vpn_session_timeout", False, lambda v: f"vpn-session-timeout {_minutes(v)}"),
    (
        "vpn_tunnel_protocol",
        False,
        lambda v: "vpn-tunnel-protocol " + " ".join(v) if isinstance(v, tuple) else "",
    ),
    ("dtls", True, lambda v: f"anyconnect ssl dtls {'enable' if v else 'none'}"),
    ("anyconnect_mtu", True, lambda v: "" if v is None else f"anyconnect mtu {v}"),
    ("keepalive", True, lambda v: f"anyconnect ssl keepalive {_minutes(v)}"),
    ("rekey_time", True, lambda v: f"anyconnect ssl rekey time {_minutes(v)}"),
    ("rekey_method", True, lambda v: f"anyconnect ssl rekey method {_minutes(v)}"),
    ("dpd_gateway", True, lambda v: f"anyconnect dpd-interval gateway {_minutes(v)}"),
    ("dpd_client", True, lambda v: f"anyconnect dpd-interval client {_minutes(v)}"),
    (
        "df_bit_ignore",
        True,
        lambda v: f"anyconnect ssl df-bit-ignore {'enable' if v else 'disable'}",
    ),
)


def _render_group_policy(gp: GroupPolicy) -> list[str]:
    dflt = gp.name == DFLT_GRP_POLICY
    attrs: list[str] = []
    web: list[str] = []
    for attr, in_web, fmt in _GP_ATTRS:
        v = getattr(gp, attr)
        if isinstance(v, Inherit) or (dflt and v == getattr(DEFAULT_GROUP_POLICY, attr)):
            continue
        text = fmt(v)
        if text:
            (web if in_web else attrs).append(text)
    out = [] if dflt else [f"group-policy {gp.name} internal"]
    if attrs or web:
        out.append(f"group-policy {gp.name} attributes")
        out += [f" {x}" for x in attrs]
        if web:
            out += [" webvpn"] + [f"  {x}" for x in web]
    return out


def _render_tunnel_group(tg: TunnelGroup) -> list[str]:
    out = [] if tg.name in BUILTIN_TUNNEL_GROUPS else [f"tunnel-group {tg.name} type {tg.type}"]
    general: list[str] = []
    if tg.address_pools:
        general.append(" address-pool " + " ".join(tg.address_pools))
    if tg.default_group_policy != DFLT_GRP_POLICY:
        general.append(f" default-group-policy {tg.default_group_policy}")
    if general:
        out += [f"tunnel-group {tg.name} general-attributes", *general]
    web = [
        f" group-alias {a.alias} {'enable' if a.enabled else 'disable'}" for a in tg.group_aliases
    ]
    web += [f" group-url {u.url} {'enable' if u.enabled else 'disable'}" for u in tg.group_urls]
    if web:
        out += [f"tunnel-group {tg.name} webvpn-attributes", *web]
    return out


def _render_webvpn(cfg: AsaConfig) -> list[str]:
    w = cfg.webvpn
    body: list[str] = []
    if w.port != DEFAULT_WEBVPN_PORT:
        body.append(f" port {w.port}")
    body += [f" enable {n}" for n in w.enabled_interfaces]
    if w.dtls_port != DEFAULT_DTLS_PORT:
        body.append(f" dtls port {w.dtls_port}")
    body += [f" anyconnect image {i.path} {i.order}" for i in w.anyconnect_images]
    if w.anyconnect_enabled:
        body.append(" anyconnect enable")
    if w.tunnel_group_list_enabled:
        body.append(" tunnel-group-list enable")
    return ["webvpn", *body] if body else []


def _render_interfaces(cfg: AsaConfig) -> list[str]:
    out: list[str] = []
    for i in cfg.interfaces:
        out.append(f"interface {i.hardware_id}")
        if i.shutdown:
            out.append(" shutdown")
        out.append(f" nameif {i.nameif}" if i.nameif else " no nameif")
        out.append(
            " no security-level"
            if i.security_level is None
            else f" security-level {i.security_level}"
        )
        if i.ip_address is not None and i.netmask is not None:
            out.append(f" ip address {i.ip_address} {i.netmask}")
        else:
            out.append(" no ip address")
        out.append("!")
    return out


def _render_logging(cfg: AsaConfig) -> list[str]:
    lg = cfg.logging
    out = ["logging enable"] if lg.enabled else []
    if lg.timestamp:
        out.append("logging timestamp")
    if lg.buffered_level is not None:
        out.append(f"logging buffered {LOG_LEVELS[lg.buffered_level]}")
    if lg.trap_level is not None:
        out.append(f"logging trap {LOG_LEVELS[lg.trap_level]}")
    if lg.facility != DEFAULT_SYSLOG_FACILITY:
        out.append(f"logging facility {lg.facility}")
    for h in lg.hosts:
        port = (
            ""
            if (h.protocol, h.port) == ("udp", DEFAULT_SYSLOG_PORT)
            else f" {h.protocol}/{h.port}"
        )
        out.append(f"logging host {h.interface} {h.address}{port}")
    return out


def _render_icmp(cfg: AsaConfig) -> list[str]:
    return [r.render() for r in cfg.icmp_rules]


def _render_pools(cfg: AsaConfig) -> list[str]:
    return [f"ip local pool {p.name} {p.first}-{p.last} mask {p.mask}" for p in cfg.pools]


def _render_users(cfg: AsaConfig) -> list[str]:
    return [
        f"username {u.name} password {u.password}"
        + ("" if u.privilege == DEFAULT_USER_PRIVILEGE else f" privilege {u.privilege}")
        for u in cfg.users
    ]


def _render_ssl(cfg: AsaConfig) -> list[str]:
    return [
        f'ssl cipher {c.version} custom "{c.custom}"'
        if c.level == "custom"
        else f"ssl cipher {c.version} {c.level}"
        for c in cfg.ssl_ciphers
    ]


def _render_aaa(cfg: AsaConfig) -> list[str]:
    n = cfg.aaa_local_max_fail
    return [] if n is None else [f"aaa local authentication attempts max-fail {n}"]


def _render_sysopt(cfg: AsaConfig) -> list[str]:
    return [] if cfg.tcpmss == DEFAULT_TCPMSS else [f"sysopt connection tcpmss {cfg.tcpmss}"]


def _render_head(cfg: AsaConfig) -> list[str]:
    out = [f"hostname {cfg.hostname}"]
    if cfg.enable_password is not None:
        out.append(f"enable password {cfg.enable_password}")
    return out


SECTIONS: Final[dict[str, Callable[[AsaConfig], list[str]]]] = {
    "hostname": _render_head,
    "interface": _render_interfaces,
    "logging": _render_logging,
    "ip local pool": _render_pools,
    "icmp": _render_icmp,
    "aaa": _render_aaa,
    "sysopt": _render_sysopt,
    "ssl": _render_ssl,
    "webvpn": _render_webvpn,
    "group-policy": lambda cfg: [x for gp in cfg.group_policies for x in _render_group_policy(gp)],
    "username": _render_users,
    "tunnel-group": lambda cfg: [x for tg in cfg.tunnel_groups for x in _render_tunnel_group(tg)],
}


def render_running_config(
    cfg: AsaConfig, section: str | None = None, name: str | None = None
) -> list[str]:
    """``show running-config [section [name]]`` as lines.

    ``section`` is one of :data:`SECTIONS` (``webvpn``, ``group-policy``, ``tunnel-group``,
    ``interface``, ``username``, ``ip local pool``, ``icmp``, ``aaa``, ``logging``,
    ``sysopt``, ``ssl``);
    ``name`` narrows ``group-policy``/``tunnel-group`` to one object.
    ``parse_config("\\n".join(render_running_config(cfg))) == cfg``.
    """
    if section == "group-policy" and name is not None:
        return [x for gp in cfg.group_policies if gp.name == name for x in _render_group_policy(gp)]
    if section == "tunnel-group" and name is not None:
        return [x for tg in cfg.tunnel_groups if tg.name == name for x in _render_tunnel_group(tg)]
    if section is not None:
        try:
            return SECTIONS[section](cfg)
        except KeyError:
            raise ValueError(f"unknown running-config section {section!r}") from None
    out = [": Saved", ":", f"ASA Version {cfg.asa_version}", "!"]
    for render in SECTIONS.values():
        block = render(cfg)
        out += block
        if block and block[-1] != "!":
            out.append("!")
    out.append(": end")
    return out


def iter_sections() -> Iterator[str]:
    """The section names ``show running-config <section>`` accepts."""
    yield from SECTIONS
