"""Client profiles: what an emulated client says on the wire and how it behaves.

Theory of operation
-------------------
A profile is data. Each emulated client implementation has one TOML file in
``tunnelswarm/config/profiles/`` (``anyconnect-3.1``, ``anyconnect-4.10``,
``secure-client-5``, ``openconnect-9``); :func:`load_profile` reads one into the frozen
:class:`ClientProfile`, and a user's own file loads the same way. A profile fixes:

* the identity and request headers: User-Agent (protocol.md §2.2), ``<version
  who="vpn">`` and ``<device-id>`` of the XML documents (§2.3.1), ``X-AnyConnect-Platform``
  on the auth requests, the CONNECT header set and the DTLS offers (§3.2);
* the DTLS timers: handshake give-up per attempt, retry period, what a DTLS dead peer
  does (§5.5);
* the MTU policy by name (``anyconnect`` or ``openconnect``, :mod:`tunnelswarm.client.policy`,
  §6.1/§6.3) with the AnyConnect "DTLS give-up → TLS-only" time;
* the reconnect schedule parameters (§7.4).

File layout (every key is a :class:`ClientProfile` field; the tables only group them)::

    name = "my-client"                  # required
    description = "one line"           # optional
    extends = "anyconnect-4.10"         # optional: a built-in profile to start from
    [identity]   user_agent, xml_version, device_id, aggregate_auth_version,
                 capabilities, platform_header, support_http_auth
    [connect]    cstp_protocol_blurb, address_type, full_ipv6_capability,
                 dtls_ciphers, dtls12_ciphers
    [dtls]       dtls_handshake_timeout, dtls_retry_period, dtls_dead_peer
    [mtu]        mtu_policy, dtls_give_up
    [reconnect]  reconnect_interval, reconnect_max_interval

Without ``extends`` every key must be given (a profile is complete or refused); with it,
the file names only what differs from the built-in. Unknown tables or keys, a key in
the wrong table, wrong types and bad values are refused with a one-line
:class:`~tunnelswarm.errors.ConfigError` naming the file and the key.
:meth:`ClientProfile.with_overrides` applies flat ``field = value`` overrides (scenario
``[clients.overrides]``, shortened timers in tests) with the same checks.

Not emulated (documented, not hidden): openconnect's STRAP headers
(``X-AnyConnect-STRAP-*``, SSO only), the compression offers (tunnelswarm does not
compress, so it sends no ``X-CSTP-Accept-Encoding``, like ``--compression=off``), the
``<mac-address-list>`` and device attributes of a real AnyConnect ``init`` (§2.3.1), and
the capitalisation of header names a real client uses (we send §3.2's spelling).
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Final

from tunnelswarm.errors import ConfigError

__all__ = [
    "ALIASES",
    "BUILTIN_NAMES",
    "DTLS_DEAD_PEER_ACTIONS",
    "MTU_POLICIES",
    "OPENCONNECT_9_01",
    "PROFILES",
    "ClientProfile",
    "load_profile",
    "profile_from_dict",
]

#: ``mtu_policy`` values (tunnelswarm.client.policy)
MTU_POLICIES: Final = ("anyconnect", "openconnect")
#: ``dtls_dead_peer`` values: a new handshake at once, or after ``dtls_retry_period``
DTLS_DEAD_PEER_ACTIONS: Final = ("rehandshake", "retry-period")
_ADDRESS_TYPES: Final = ("IPv6,IPv4", "IPv4", "IPv6")


@dataclass(frozen=True, slots=True)
class ClientProfile:
    """Identity, header set and behaviour of one client implementation.

    The defaults are openconnect 9.01's, so that ``ClientProfile(name=…, user_agent=…,
    xml_version=…)`` in Python code is a complete openconnect-like profile.
    Times are seconds.
    """

    name: str
    user_agent: str
    #: text of ``<version who="vpn">`` in init / auth-reply
    xml_version: str
    description: str = ""
    device_id: str = "linux-64"
    aggregate_auth_version: bool = True
    capabilities: tuple[str, ...] = ("single-sign-on-v2",)
    #: send ``X-AnyConnect-Platform: <device_id>`` on the auth requests (Cisco clients, §2.1)
    platform_header: bool = False
    #: ``X-Support-HTTP-Auth: true`` on auth POSTs (openconnect 9.01 does)
    support_http_auth: bool = False
    #: send ``X-CSTP-Protocol: Copyright (c) 2004 Cisco Systems, Inc.`` (openconnect > 9.12)
    cstp_protocol_blurb: bool = False
    address_type: str = "IPv6,IPv4"
    full_ipv6_capability: bool = True
    #: ``X-DTLS-CipherSuite`` offer (empty = header not sent)
    dtls_ciphers: str = (
        "PSK-NEGOTIATE:OC-DTLS1_2-AES256-GCM:OC2-DTLS1_2-CHACHA20-POLY1305:"
        "OC-DTLS1_2-AES128-GCM:DHE-RSA-AES256-SHA:DHE-RSA-AES128-SHA:AES256-SHA:AES128-SHA"
    )
    #: ``X-DTLS12-CipherSuite`` offer (empty = header not sent)
    dtls12_ciphers: str = (
        "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256:AES256-GCM-SHA384:"
        "AES128-GCM-SHA256:DHE-RSA-AES256-SHA:DHE-RSA-AES128-SHA:AES256-SHA:AES128-SHA"
    )
    #: one DTLS handshake attempt gives up after this long
    dtls_handshake_timeout: float = 12.0
    #: a failed attempt is followed by the next one after this long
    dtls_retry_period: float = 60.0
    #: after DTLS dead-peer detection: "rehandshake" at once or wait "retry-period"
    dtls_dead_peer: str = "rehandshake"
    #: "anyconnect" | "openconnect" (tunnelswarm.client.policy)
    mtu_policy: str = "openconnect"
    #: anyconnect policy: DTLS not up this long after the tunnel came up → TLS only
    #: (reason-code-16 reconnect when X-CSTP-MTU is smaller); 0 = never give up
    dtls_give_up: float = 0.0
    #: reconnect schedule: first retry after this, +this per attempt (§7.4)
    reconnect_interval: float = 10.0
    reconnect_max_interval: float = 100.0
    #: where the profile came from (a file path, or "<python>")
    source: str = "<python>"

    def __post_init__(self) -> None:
        _check_values(self)

    def with_overrides(
        self, overrides: Mapping[str, object], *, source: str = "overrides"
    ) -> ClientProfile:
        """A copy with flat ``field = value`` overrides, type-checked like a file's keys."""
        values: dict[str, object] = {}
        for key, value in overrides.items():
            if key not in _FIELD_TYPES or key in _NOT_SETTABLE:
                raise ConfigError(f"{source}: unknown profile field {key!r}")
            values[key] = _coerce(source, key, value)
        try:
            return replace(self, **values)  # type: ignore[arg-type]
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None


def _no_controls(key: str, text: str) -> None:
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise ConfigError(f"{key}: control characters are not allowed in {text!r}")


def _check_values(p: ClientProfile) -> None:
    """Range and choice checks (types are the loader's): ConfigError naming the field."""
    if not p.name.strip():
        raise ConfigError("name: must not be empty")
    for key in ("name", "user_agent", "xml_version", "device_id", "dtls_ciphers"):
        _no_controls(key, getattr(p, key))
    _no_controls("dtls12_ciphers", p.dtls12_ciphers)
    for cap in p.capabilities:
        _no_controls("capabilities", cap)
    choices = (
        ("address_type", p.address_type, _ADDRESS_TYPES),
        ("mtu_policy", p.mtu_policy, MTU_POLICIES),
        ("dtls_dead_peer", p.dtls_dead_peer, DTLS_DEAD_PEER_ACTIONS),
    )
    for key, value, allowed in choices:
        if value not in allowed:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(allowed)}")
    positive = (
        ("dtls_handshake_timeout", p.dtls_handshake_timeout),
        ("dtls_retry_period", p.dtls_retry_period),
        ("reconnect_interval", p.reconnect_interval),
    )
    for key, seconds in positive:
        if not seconds > 0 or not math.isfinite(seconds):
            raise ConfigError(f"{key}: must be a positive number of seconds, not {seconds!r}")
    if not p.dtls_give_up >= 0 or not math.isfinite(p.dtls_give_up):
        raise ConfigError(f"dtls_give_up: must be 0 (never) or seconds, not {p.dtls_give_up!r}")
    if not p.reconnect_interval <= p.reconnect_max_interval < math.inf:
        raise ConfigError(
            f"reconnect_max_interval: must be at least reconnect_interval"
            f" ({p.reconnect_interval:g}), not {p.reconnect_max_interval!r}"
        )


# ------------------------------------------------------------------ loading
#: table → the fields it holds (each field in exactly one table)
SECTIONS: Final[dict[str, tuple[str, ...]]] = {
    "identity": (
        "user_agent",
        "xml_version",
        "device_id",
        "aggregate_auth_version",
        "capabilities",
        "platform_header",
        "support_http_auth",
    ),
    "connect": (
        "cstp_protocol_blurb",
        "address_type",
        "full_ipv6_capability",
        "dtls_ciphers",
        "dtls12_ciphers",
    ),
    "dtls": ("dtls_handshake_timeout", "dtls_retry_period", "dtls_dead_peer"),
    "mtu": ("mtu_policy", "dtls_give_up"),
    "reconnect": ("reconnect_interval", "reconnect_max_interval"),
}
_TOP: Final = ("name", "description", "extends")
_FIELD_TYPES: Final[dict[str, str]] = {f.name: str(f.type) for f in fields(ClientProfile)}
_NOT_SETTABLE: Final = frozenset({"source"})
_SECTION_OF: Final[dict[str, str]] = {k: t for t, keys in SECTIONS.items() for k in keys}


def _coerce(source: str, key: str, value: object, *, shown: str | None = None) -> object:
    """The value of field ``key`` with its type, or a one-line ConfigError naming
    ``shown`` (the key as the file spells it, e.g. ``mtu.dtls_give_up``)."""
    kind = _FIELD_TYPES[key]
    where = f"{source}: {shown or key}"
    if kind == "bool":
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if kind == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where}: expected a number of seconds, got {value!r}")
    if kind == "tuple[str, ...]":
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise ConfigError(f"{where}: expected a list of strings, got {value!r}")
    if isinstance(value, str):
        return value
    raise ConfigError(f"{where}: expected a string, got {value!r}")


def profile_from_dict(
    data: Mapping[str, object], source: str = "<dict>", *, base: ClientProfile | None = None
) -> ClientProfile:
    """A profile from parsed TOML (module docstring layout). ``extends`` names a built-in.

    ``base`` (or the profile named by ``extends``) supplies the keys the data omits;
    without one every key is required.
    """
    values: dict[str, object] = {}
    for key, raw in data.items():
        if key in SECTIONS:
            if not isinstance(raw, dict):
                raise ConfigError(f"{source}: {key}: expected a table [{key}]")
            for sub, value in raw.items():
                home = _SECTION_OF.get(sub)
                if home is None:
                    raise ConfigError(
                        f"{source}: unknown key {key}.{sub}"
                        f" (known in [{key}]: {', '.join(SECTIONS[key])})"
                    )
                if home != key:
                    raise ConfigError(f"{source}: {key}.{sub}: {sub} belongs in [{home}]")
                values[sub] = _coerce(source, sub, value, shown=f"{key}.{sub}")
        elif key in ("name", "description"):
            values[key] = _coerce(source, key, raw)
        elif key != "extends":
            known = ", ".join([*_TOP, *(f"[{s}]" for s in SECTIONS)])
            raise ConfigError(f"{source}: unknown key {key} (known: {known})")
    if "extends" in data:
        parent = data["extends"]
        if not isinstance(parent, str) or parent not in PROFILES:
            raise ConfigError(
                f"{source}: extends: {parent!r} is not a built-in profile"
                f" ({', '.join(BUILTIN_NAMES)})"
            )
        base = PROFILES[parent]
    if "name" not in values:
        raise ConfigError(f"{source}: missing key name")
    values["source"] = source
    try:
        if base is None:
            missing = [f"{_SECTION_OF[k]}.{k}" for k in _SECTION_OF if k not in values]
            if missing:
                raise ConfigError(
                    f"missing key {missing[0]} (give every key, or extends = a built-in)"
                )
            values.setdefault("description", "")
            return ClientProfile(**values)  # type: ignore[arg-type]
        values.setdefault("description", "")
        return replace(base, **values)  # type: ignore[arg-type]
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None


def _read(path: Path, source: str, *, base: ClientProfile | None = None) -> ClientProfile:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read profile {source}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{source}: not UTF-8 text") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source}: not valid TOML: {e}") from None
    return profile_from_dict(data, source, base=base)


def load_profile(path_or_name: str | Path) -> ClientProfile:
    """A built-in profile by name (``anyconnect-3.1`` …, or an old alias), or a TOML file.

    A :class:`~pathlib.Path`, or text containing ``/`` or ending in ``.toml``, is a file;
    anything else is a built-in name.
    """
    if isinstance(path_or_name, Path):
        return _read(path_or_name, str(path_or_name))
    text = str(path_or_name)
    if "/" in text or text.endswith(".toml"):
        return _read(Path(text), text)
    if text in PROFILES:
        return PROFILES[text]
    raise ConfigError(
        f"unknown profile {text!r}: not a built-in ({', '.join(BUILTIN_NAMES)}) and not a"
        " .toml file"
    )


def _load_builtins(folder: Traversable | None = None) -> dict[str, ClientProfile]:
    """The built-in profiles from ``folder`` (default: the package's profiles/)."""
    out: dict[str, ClientProfile] = {}
    if folder is None:
        folder = resources.files("tunnelswarm.config.profiles")
    for name in BUILTIN_NAMES:
        entry = folder.joinpath(f"{name}.toml")
        with resources.as_file(entry) as path:
            profile = _read(path, f"tunnelswarm/config/profiles/{name}.toml")
        if profile.name != name:
            raise ConfigError(f"built-in profile file {name}.toml is named {profile.name!r}")
        out[name] = profile
    return out


#: the built-in profiles, one TOML file each in tunnelswarm/config/profiles/
BUILTIN_NAMES: Final = ("anyconnect-3.1", "anyconnect-4.10", "secure-client-5", "openconnect-9")
#: names earlier releases used (CLI ``--profile``, code) → the built-in they mean now
ALIASES: Final[dict[str, str]] = {
    "openconnect-9.01": "openconnect-9",
    "anyconnect-4.10-linux": "anyconnect-4.10",
}
PROFILES: dict[str, ClientProfile] = _load_builtins()
PROFILES.update({alias: PROFILES[target] for alias, target in ALIASES.items()})

#: openconnect 9.01 (Debian 12 package, GnuTLS build) — protocol.md §3.2, §10.10
OPENCONNECT_9_01: Final = PROFILES["openconnect-9"]
