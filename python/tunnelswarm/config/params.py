"""The tunnel parameters a headend returns in its ``200`` to ``CONNECT`` (protocol.md §3.3).

Theory of operation: the response headers are parsed exactly once, into one frozen,
typed :class:`TunnelParams`. Every header of the §3.3.2 catalogue has a field; repeated
headers (``X-CSTP-DNS``, ``X-CSTP-Split-Include`` …) become tuples; ``none`` timeouts
become ``None``; headers we do not know are kept, in order and with their original
spelling, in :attr:`TunnelParams.extra`. Header names are compared case-insensitively
(real clients and headends differ in capitalisation, §3.2). Values that a client must
act on are validated, and a bad value raises :class:`RemoteProtocolError` naming the
header, as openconnect refuses such responses ("No IP address received", "No MTU
received", "X-DTLS-Session-ID not 64 characters").
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from tunnelswarm.errors import RemoteProtocolError

__all__ = ["TunnelParams", "parse_tunnel_headers"]


_DECIMAL = re.compile(r"-?[0-9]+")
_HEX = re.compile(r"[0-9A-Fa-f]*")


def _int(name: str, value: str, *, allow_none: bool = False) -> int | None:
    v = value.strip()
    if allow_none and v.lower() == "none":
        return None
    # plain ASCII decimal only: int() would also take "1_400", "+1400" and non-ASCII digits
    if not _DECIMAL.fullmatch(v):
        raise RemoteProtocolError(f"CONNECT response header {name}: {value!r} is not a number")
    n = int(v, 10)
    if n < 0:
        raise RemoteProtocolError(f"CONNECT response header {name}: {value!r} is negative")
    return n


def _bool(value: str) -> bool:
    return value.strip().lower() == "true"


@dataclass(frozen=True, slots=True)
class TunnelParams:
    """Everything the headend said about the tunnel. Times are seconds."""

    address: str | None = None
    netmask: str | None = None
    address_ip6: str | None = None
    dns: tuple[str, ...] = ()
    dns_ip6: tuple[str, ...] = ()
    nbns: tuple[str, ...] = ()
    default_domain: str | None = None
    split_dns: tuple[str, ...] = ()
    split_include: tuple[str, ...] = ()
    split_exclude: tuple[str, ...] = ()
    split_include_ip6: tuple[str, ...] = ()
    split_exclude_ip6: tuple[str, ...] = ()
    banner: str | None = None
    server_name: str | None = None
    hostname: str | None = None
    version: str | None = None
    cstp_mtu: int | None = None
    base_mtu: int | None = None
    dpd: int = 0
    keepalive: int = 0
    idle_timeout: int | None = None
    disconnected_timeout: int | None = None
    session_timeout: int | None = None
    session_timeout_remaining: int | None = None
    lease_duration: int | None = None
    rekey_time: int = 0
    rekey_method: str = "none"
    content_encoding: str | None = None
    tunnel_all_dns: bool | None = None
    post_auth_xml: str | None = None
    dtls_session_id: str | None = None
    dtls_app_id: str | None = None
    dtls_port: int | None = None
    dtls_keepalive: int = 0
    dtls_dpd: int = 0
    dtls_rekey_time: int = 0
    dtls_rekey_method: str = "none"
    dtls_cipher_suite: str | None = None
    dtls12_cipher_suite: str | None = None
    dtls_mtu: int | None = None
    dtls_content_encoding: str | None = None
    #: every header not in the catalogue above, in order, original spelling
    extra: tuple[tuple[str, str], ...] = ()

    @property
    def tunnel_mtu(self) -> int:
        """max(X-CSTP-MTU, X-DTLS-MTU): openconnect's one MTU for both channels (§6.1)."""
        return max(self.cstp_mtu or 0, self.dtls_mtu or 0)

    @property
    def dtls_offered(self) -> bool:
        """The headend offered DTLS (a session id or a PSK app id, §3.3.2)."""
        return self.dtls_session_id is not None or self.dtls_app_id is not None

    @property
    def dtls_cipher(self) -> str | None:
        """The chosen DTLS cipher (X-DTLS12-CipherSuite wins: it also selects DTLS 1.2)."""
        return self.dtls12_cipher_suite or self.dtls_cipher_suite

    @property
    def auth_expiry(self) -> int | None:
        """Lowest non-zero of Lease-Duration, Session-Timeout, Session-Timeout-Remaining."""
        vals = [
            v
            for v in (self.lease_duration, self.session_timeout, self.session_timeout_remaining)
            if v
        ]
        return min(vals) if vals else None

    def get_extra(self, name: str) -> list[str]:
        """All values of an unrecognised header, case-insensitively."""
        low = name.lower()
        return [v for n, v in self.extra if n.lower() == low]


_SINGLE_STR = {
    "x-cstp-netmask": "netmask",
    "x-cstp-address-ip6": "address_ip6",
    "x-cstp-default-domain": "default_domain",
    "x-cstp-banner": "banner",
    "x-cstp-server-name": "server_name",
    "x-cstp-hostname": "hostname",
    "x-cstp-version": "version",
    "x-cstp-post-auth-xml": "post_auth_xml",
    "x-dtls-cipher-suite": "dtls_cipher_suite",
    "x-dtls-ciphersuite": "dtls_cipher_suite",
    "x-dtls12-ciphersuite": "dtls12_cipher_suite",
}
_MULTI = {
    "x-cstp-dns": "dns",
    "x-cstp-dns-ip6": "dns_ip6",
    "x-cstp-nbns": "nbns",
    "x-cstp-split-dns": "split_dns",
    "x-cstp-split-include": "split_include",
    "x-cstp-split-exclude": "split_exclude",
    "x-cstp-split-include-ip6": "split_include_ip6",
    "x-cstp-split-exclude-ip6": "split_exclude_ip6",
}
_INT = {
    "x-cstp-mtu": "cstp_mtu",
    "x-cstp-base-mtu": "base_mtu",
    "x-cstp-dpd": "dpd",
    "x-cstp-keepalive": "keepalive",
    "x-cstp-rekey-time": "rekey_time",
    "x-dtls-port": "dtls_port",
    "x-dtls-keepalive": "dtls_keepalive",
    "x-dtls-dpd": "dtls_dpd",
    "x-dtls-rekey-time": "dtls_rekey_time",
    "x-dtls-mtu": "dtls_mtu",
}
_TIMEOUT = {
    "x-cstp-idle-timeout": "idle_timeout",
    "x-cstp-disconnected-timeout": "disconnected_timeout",
    "x-cstp-session-timeout": "session_timeout",
    "x-cstp-session-timeout-remaining": "session_timeout_remaining",
    "x-cstp-lease-duration": "lease_duration",
}
_REKEY_METHODS = {"ssl", "new-tunnel", "none"}
_ENCODINGS = {"deflate", "lzs", "oc-lz4"}


def _hex_id(name: str, value: str, *, exact: int | None) -> str:
    v = value.strip()
    # bytes.fromhex alone would accept embedded spaces; check the characters first
    if not _HEX.fullmatch(v):
        raise RemoteProtocolError(f"CONNECT response header {name} is not hex: {v[:80]!r}")
    if exact is not None and len(v) != 2 * exact:
        raise RemoteProtocolError(
            f"CONNECT response header {name} is {len(v)} hex characters, must be {2 * exact}"
        )
    if len(v) % 2:
        raise RemoteProtocolError(f"CONNECT response header {name} is an odd number of hex digits")
    raw = bytes.fromhex(v)
    if not 0 < len(raw) <= 32:
        raise RemoteProtocolError(f"CONNECT response header {name} must hold 1-32 bytes")
    return v.lower()


def _single_field(name: str, low: str, value: str) -> tuple[str, object] | None:
    """(field, parsed value) for a single-valued catalogue header, None if not one."""
    if low == "x-cstp-address":
        # IPv4 if no ':', else IPv6 (openconnect, §3.3.2)
        if ":" in value:
            return "address_ip6", value
        try:
            ipaddress.IPv4Address(value)
        except ValueError:
            raise RemoteProtocolError(
                f"CONNECT response header X-CSTP-Address: {value!r} is not an address"
            ) from None
        return "address", value
    if low in _SINGLE_STR:
        return _SINGLE_STR[low], value
    if low in _INT:
        return _INT[low], _int(name, value)
    if low in _TIMEOUT:
        return _TIMEOUT[low], _int(name, value, allow_none=True)
    if low in ("x-cstp-rekey-method", "x-dtls-rekey-method"):
        # anything but ssl/new-tunnel means no rekey (§7.3)
        method = value.lower() if value.lower() in _REKEY_METHODS else "none"
        return ("rekey_method" if low.startswith("x-cstp") else "dtls_rekey_method"), method
    if low in ("x-cstp-content-encoding", "x-dtls-content-encoding"):
        if value.lower() not in _ENCODINGS:
            raise RemoteProtocolError(f"CONNECT response header {name}: unknown encoding {value!r}")
        key = "content_encoding" if low.startswith("x-cstp") else "dtls_content_encoding"
        return key, value.lower()
    if low == "x-cstp-tunnel-all-dns":
        return "tunnel_all_dns", _bool(value)
    if low == "x-dtls-session-id":
        return "dtls_session_id", _hex_id(name, value, exact=32)
    if low == "x-dtls-app-id":
        return "dtls_app_id", _hex_id(name, value, exact=None)
    return None


def parse_tunnel_headers(headers: Iterable[tuple[str, str]]) -> TunnelParams:
    """Parse CONNECT response headers (name, value) into :class:`TunnelParams`.

    Raises :class:`RemoteProtocolError` for a missing address or MTU, a malformed number,
    a DTLS session id that is not 32 bytes or an unknown content encoding. An unknown
    rekey method means no rekey (§7.3), as in openconnect.
    """
    single: dict[str, object] = {}
    multi: dict[str, list[str]] = {v: [] for v in _MULTI.values()}
    extra: list[tuple[str, str]] = []
    for raw_name, raw_value in headers:
        name = raw_name.strip()
        low = name.lower()
        value = raw_value.strip()
        if low in _MULTI:
            multi[_MULTI[low]].append(value)
        elif (field_value := _single_field(name, low, value)) is not None:
            single[field_value[0]] = field_value[1]
        else:
            extra.append((name, value))
    if "address" not in single and "address_ip6" not in single:
        raise RemoteProtocolError(
            "No IP address received (no X-CSTP-Address in the CONNECT response)"
        )
    if "cstp_mtu" not in single:
        raise RemoteProtocolError("No MTU received (no X-CSTP-MTU in the CONNECT response)")
    kwargs: dict[str, object] = dict(single)
    kwargs.update({k: tuple(v) for k, v in multi.items()})
    kwargs["extra"] = tuple(extra)
    return TunnelParams(**kwargs)  # type: ignore[arg-type]
