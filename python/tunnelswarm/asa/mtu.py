"""The mock ASA's MTU model (protocol.md §6.3, §6.4; docs/mock-asa-mtu.md).

Pure functions and frozen dataclasses, no IO. The arithmetic lives in the Rust core
(``rust/proto/src/ip/mtu.rs``) and is reached through :mod:`tunnelswarm._core`; this module
only decides *which* link, MSS and record cipher go into it, and applies the caps.

* ``X-DTLS-MTU`` = exact DTLS model (:func:`tunnelswarm._core.dtls_tunnel_mtu`) of the
  path MTU with the negotiated DTLS cipher — 1418 for AES-CBC-SHA1 on a 1500-byte path
  (confirmed by Cisco, [TN116881]).
* TLS threshold = :func:`tunnelswarm._core.asa_tls_threshold` of the effective TCP MSS
  with the configured ``ssl cipher`` — 1347 for ``sysopt connection tcpmss 1380`` and
  RC4-SHA1 (confirmed), 1427 at MSS 1460 (confirmed by the tech note); the formula is an
  UNCONFIRMED model.
* ``X-CSTP-MTU`` = the TLS threshold. An explicit ``anyconnect mtu N`` caps both values.

Choices this model makes where Cisco publishes nothing (UNCONFIRMED, documented in
docs/mock-asa-mtu.md):

* ``anyconnect mtu`` unset (``None``) applies no cap, although the command's documented
  default is 1406 (:data:`DEFAULT_ANYCONNECT_MTU`): with a 1406 cap the DTLS MTU could not
  be the 1418 of the tech note.
* The client's ``X-CSTP-Base-MTU`` (if ≥ :data:`MIN_CLIENT_BASE_MTU`) lowers the path MTU
  used for both channels: ``path = min(interface MTU, base)``.
* The client's ``X-CSTP-MTU`` is ignored by default (policy ``"ignore"``): openconnect asks
  for 1390 on a 1500-byte link and is answered 1418/1347 (protocol.md §3.3.3). Policy
  ``"cap"`` makes it a further upper bound on both advertised values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from tunnelswarm import _core
from tunnelswarm.errors import ConfigError, LocalProtocolError

__all__ = [
    "ASP_DROP_NO_FRAGMENT",
    "DEFAULT_ANYCONNECT_MTU",
    "DEFAULT_INTERFACE_MTU",
    "DEFAULT_TCPMSS",
    "DEFAULT_TLS_CIPHER",
    "MIN_CLIENT_BASE_MTU",
    "AsaMtu",
    "Channel",
    "ClientMtuPolicy",
    "Decision",
    "DropTooBig",
    "Forward",
    "Fragment",
    "MtuConfig",
    "dtls_record_cipher",
    "effective_mss",
    "negotiate",
    "tls_record_cipher",
]

#: ``mtu outside 1500``
DEFAULT_INTERFACE_MTU: Final = 1500
#: ``sysopt connection tcpmss 1380`` (0 disables the clamp)
DEFAULT_TCPMSS: Final = 1380
#: documented default of the group-policy ``anyconnect mtu`` [ACMTU]; see the module doc
DEFAULT_ANYCONNECT_MTU: Final = 1406
#: the tech-note era's default SSL-tunnel cipher (``SSL-Tunnel: (1)RC4``, [FAQ116312])
DEFAULT_TLS_CIPHER: Final = "rc4-sha1"
#: smaller client ``X-CSTP-Base-MTU`` values are ignored as bogus (model choice)
MIN_CLIENT_BASE_MTU: Final = 576
#: ``show asp drop`` reason for a tunnelled DF packet over the tunnel MTU (§6.4)
ASP_DROP_NO_FRAGMENT: Final = "mp-svc-no-fragment"

#: ``anyconnect mtu`` range accepted by the mock (UNCONFIRMED recollection, §6.3)
_ANYCONNECT_MTU_RANGE: Final = (576, 1462)
#: ``mtu <if> <n>`` range of ASA interfaces
_INTERFACE_MTU_RANGE: Final = (64, 9198)
#: ``sysopt connection tcpmss`` range (0 = disabled)
_TCPMSS_RANGE: Final = (48, 65535)

_TCP_HEADER: Final = 20

Channel = Literal["tls", "dtls"]
ClientMtuPolicy = Literal["ignore", "cap"]

# AnyConnect / OpenSSL DTLS cipher names (X-DTLS-CipherSuite, X-DTLS12-CipherSuite) → the
# core's record-cipher names. The key-exchange part (DHE-RSA-, ECDHE-RSA-, ...) does not
# change the record layer.
_DTLS_CIPHERS: Final[dict[str, str]] = {
    "AES128-SHA": "aes-cbc-sha1",
    "AES256-SHA": "aes-cbc-sha1",
    "DHE-RSA-AES128-SHA": "aes-cbc-sha1",
    "DHE-RSA-AES256-SHA": "aes-cbc-sha1",
    "DES-CBC3-SHA": "3des-cbc-sha1",
    "AES128-GCM-SHA256": "aes-gcm",
    "AES256-GCM-SHA384": "aes-gcm",
    "ECDHE-RSA-AES128-GCM-SHA256": "aes-gcm",
    "ECDHE-RSA-AES256-GCM-SHA384": "aes-gcm",
    "ECDHE-ECDSA-AES128-GCM-SHA256": "aes-gcm",
    "ECDHE-ECDSA-AES256-GCM-SHA384": "aes-gcm",
    "OC-DTLS1_2-AES128-GCM": "aes-gcm",
    "OC-DTLS1_2-AES256-GCM": "aes-gcm",
    "OC2-DTLS1_2-CHACHA20-POLY1305": "chacha20-poly1305",
}

# The core's names, accepted as they are for both channels.
_CORE_CIPHERS: Final = frozenset(
    {
        "aes-cbc-sha1",
        "aes-cbc-sha256",
        "3des-cbc-sha1",
        "aes-cbc-sha1-tls10",
        "aes-gcm",
        "chacha20-poly1305",
        "tls13-aead",
        "rc4-sha1",
    }
)


# Core names that can protect a DTLS record (no RC4, no TLS 1.0 implicit IV, no TLS 1.3).
_DTLS_CORE_CIPHERS: Final = frozenset(
    {"aes-cbc-sha1", "aes-cbc-sha256", "3des-cbc-sha1", "aes-gcm", "chacha20-poly1305"}
)


def dtls_record_cipher(name: str) -> str:
    """The core record-cipher name of a DTLS cipher the headend selected.

    Accepts the AnyConnect/OpenSSL names (``AES128-SHA``, ``AES256-SHA``,
    ``DES-CBC3-SHA``, ``AES128-GCM-SHA256``, ``AES256-GCM-SHA384``, the ``ECDHE-*`` /
    ``DHE-RSA-*`` twins, ``OC-DTLS1_2-AES128-GCM``, ``OC-DTLS1_2-AES256-GCM``,
    ``OC2-DTLS1_2-CHACHA20-POLY1305``) case-insensitively, and the core names of DTLS
    record ciphers (``aes-cbc-sha1``, ``3des-cbc-sha1``, ``aes-gcm`` …).
    DTLS 0.9 and DTLS 1.2 CBC records both carry an explicit IV, so both are
    ``aes-cbc-sha1``.

    Raises:
        ConfigError: unknown name, or ``PSK-NEGOTIATE`` (an ocserv mode an ASA never selects;
            its record cipher is the TLS session's).
    """
    if name in _DTLS_CORE_CIPHERS:
        return name
    core = _DTLS_CIPHERS.get(name.strip().upper())
    if core is None:
        raise ConfigError(f"unknown DTLS cipher {name!r} for the ASA MTU model")
    return core


def tls_record_cipher(suite: str, version: str = "TLSv1.2") -> str:
    """The core record-cipher name of an ``ssl cipher`` choice (the TLS overhead model).

    ``suite`` is an OpenSSL name (``RC4-SHA``, ``AES128-SHA``, ``AES256-SHA256``,
    ``ECDHE-RSA-AES256-GCM-SHA384``, ``TLS_AES_128_GCM_SHA256`` …) or a core name;
    ``version`` (``TLSv1``, ``TLSv1.1``, ``TLSv1.2``, ``TLSv1.3``) decides between the
    implicit IV of TLS 1.0 (``aes-cbc-sha1-tls10``) and the explicit IV of 1.1+.

    Raises:
        ConfigError: a suite or version the model does not know.
    """
    if suite in _CORE_CIPHERS:
        return suite
    name = suite.strip().upper()
    ver = version.strip().upper().replace("V", "").replace("_", ".")
    if ver not in {"TLS1", "TLS1.0", "TLS1.1", "TLS1.2", "TLS1.3"}:
        raise ConfigError(f"unknown TLS version {version!r} for the ASA MTU model")
    if ver == "TLS1.3" or name.startswith("TLS_AES_") or name.startswith("TLS_CHACHA20_"):
        return "tls13-aead"
    if "RC4" in name:
        return "rc4-sha1"
    if "CHACHA20" in name:
        return "chacha20-poly1305"
    if "GCM" in name:
        return "aes-gcm"
    if name.endswith("-SHA256") and ("AES" in name):
        return "aes-cbc-sha256"
    if name.endswith("-SHA") and ("AES" in name or "DES-CBC3" in name):
        if "DES-CBC3" in name:
            if ver in {"TLS1", "TLS1.0"}:
                raise ConfigError("3DES under TLS 1.0 (implicit IV) is not in the core's model")
            return "3des-cbc-sha1"
        return "aes-cbc-sha1-tls10" if ver in {"TLS1", "TLS1.0"} else "aes-cbc-sha1"
    raise ConfigError(f"unknown TLS cipher {suite!r} for the ASA MTU model")


def _check_range(what: str, value: int, bounds: tuple[int, int]) -> None:
    low, high = bounds
    if not low <= value <= high:
        raise ConfigError(f"{what} {value} out of range {low}-{high}")


@dataclass(frozen=True, slots=True)
class MtuConfig:
    """The ASA configuration that shapes the tunnel MTUs.

    Attributes:
        interface_mtu: ``mtu outside <n>``, the path MTU towards the clients (64–9198).
        tcpmss: ``sysopt connection tcpmss <n>`` (48–65535), 0 = ``no`` clamp.
        tls_cipher: the TLS overhead model chosen by ``ssl cipher`` (a core name, e.g.
            ``rc4-sha1``, ``aes-cbc-sha1-tls10``, ``aes-cbc-sha1``, ``aes-gcm``; see
            :func:`tls_record_cipher` for OpenSSL names).
        anyconnect_mtu: group-policy ``anyconnect mtu <n>`` if configured (576–1462,
            range UNCONFIRMED); ``None`` = not configured, no cap.
        client_mtu_policy: what the client's ``X-CSTP-MTU`` does: ``ignore`` (default) or
            ``cap`` (UNCONFIRMED either way).

    Raises:
        ConfigError: a value out of range or an unknown cipher.
    """

    interface_mtu: int = DEFAULT_INTERFACE_MTU
    tcpmss: int = DEFAULT_TCPMSS
    tls_cipher: str = DEFAULT_TLS_CIPHER
    anyconnect_mtu: int | None = None
    client_mtu_policy: ClientMtuPolicy = "ignore"

    def __post_init__(self) -> None:
        _check_range("interface mtu", self.interface_mtu, _INTERFACE_MTU_RANGE)
        if self.tcpmss != 0:
            _check_range("sysopt connection tcpmss", self.tcpmss, _TCPMSS_RANGE)
        if self.anyconnect_mtu is not None:
            _check_range("anyconnect mtu", self.anyconnect_mtu, _ANYCONNECT_MTU_RANGE)
        if self.tls_cipher not in _CORE_CIPHERS:
            raise ConfigError(f"unknown TLS record cipher {self.tls_cipher!r}")
        if self.client_mtu_policy not in ("ignore", "cap"):
            raise ConfigError(f"unknown client MTU policy {self.client_mtu_policy!r}")


def effective_mss(interface_mtu: int, tcpmss: int, *, ipv6: bool = False) -> int:
    """The TCP MSS of the client's TLS connection: the ``tcpmss`` clamp, never more than
    the path allows (``path − IP header − 20``); ``tcpmss 0`` = no clamp. Model."""
    path_mss = max(interface_mtu - (40 if ipv6 else 20) - _TCP_HEADER, 0)
    return path_mss if tcpmss == 0 else min(tcpmss, path_mss)


@dataclass(frozen=True, slots=True)
class Forward:
    """The packet fits the channel: tunnel it."""


@dataclass(frozen=True, slots=True)
class DropTooBig:
    """Too big and DF set (or IPv6): drop (``show asp drop`` :data:`ASP_DROP_NO_FRAGMENT`),
    log 722036/722035, and answer the sender with ICMP 3/4 (IPv4, next-hop MTU in bytes
    6–7) or ICMPv6 Packet Too Big carrying ``icmp_mtu`` (that the ASA does this for inner
    packets is UNCONFIRMED, §6.4; the tech note says it sends "fragmentation needed")."""

    threshold: int
    icmp_mtu: int
    asp_drop: str = ASP_DROP_NO_FRAGMENT


@dataclass(frozen=True, slots=True)
class Fragment:
    """Too big but fragmentable (DF clear, or ``anyconnect ssl df-bit-ignore enable``):
    split into IPv4 fragments of at most ``mtu`` bytes and tunnel them."""

    mtu: int


Decision = Forward | DropTooBig | Fragment


@dataclass(frozen=True, slots=True)
class AsaMtu:
    """What the mock ASA advertises for one CONNECT, and what it enforces afterwards.

    Attributes:
        dtls_mtu: ``X-DTLS-MTU`` (None when DTLS is off for the session).
        cstp_mtu: ``X-CSTP-MTU``, also the threshold of the TLS channel.
        tls_threshold: the uncapped TLS model value (MSS − record overhead − 8).
        path_mtu: the link MTU the model used (interface MTU, lowered by the client's base).
        mss: the effective TCP MSS used for the TLS channel.
        dtls_cipher: core record-cipher name of the DTLS channel, or None.
        tls_cipher: core record-cipher name of the TLS channel.
    """

    dtls_mtu: int | None
    cstp_mtu: int
    tls_threshold: int
    path_mtu: int
    mss: int
    dtls_cipher: str | None
    tls_cipher: str

    def headers(self) -> dict[str, str]:
        """The MTU headers of the CONNECT response (no ``X-CSTP-Base-MTU``: whether the
        ASA sends one is UNCONFIRMED, §6.3)."""
        out = {"X-CSTP-MTU": str(self.cstp_mtu)}
        if self.dtls_mtu is not None:
            out["X-DTLS-MTU"] = str(self.dtls_mtu)
        return out

    def threshold(self, channel: Channel) -> int:
        """The largest inner packet the channel carries whole; the ``threshold`` of
        722035/722036. LocalProtocolError for ``dtls`` when DTLS is off."""
        if channel == "tls":
            return self.cstp_mtu
        if channel == "dtls":
            if self.dtls_mtu is None:
                raise LocalProtocolError("no DTLS channel in this session")
            return self.dtls_mtu
        raise LocalProtocolError(f"unknown channel {channel!r}")

    def decide(
        self,
        packet_len: int,
        df: bool,
        channel: Channel,
        df_bit_ignore: bool = False,
        *,
        ipv6_inner: bool = False,
    ) -> Decision:
        """What the ASA does with an inner packet of ``packet_len`` bytes (whole IP
        packet) on ``channel`` (§6.4).

        * fits the channel's threshold → :class:`Forward`;
        * too big, DF set, ``df_bit_ignore`` off → :class:`DropTooBig` (ICMP MTU = threshold);
        * too big otherwise → :class:`Fragment` (``df_bit_ignore`` = ``anyconnect ssl
          df-bit-ignore enable`` fragments DF packets too).

        ``ipv6_inner``: an IPv6 packet is never fragmented on the way, whatever ``df`` and
        ``df_bit_ignore`` say: too big → :class:`DropTooBig` (ICMPv6 Packet Too Big).
        """
        if packet_len < 0:
            raise LocalProtocolError(f"negative packet length {packet_len}")
        limit = self.threshold(channel)
        if packet_len <= limit:
            return Forward()
        if ipv6_inner or (df and not df_bit_ignore):
            return DropTooBig(threshold=limit, icmp_mtu=limit)
        return Fragment(mtu=limit)


def negotiate(
    config: MtuConfig,
    dtls_cipher: str | None,
    *,
    client_base_mtu: int | None = None,
    client_mtu: int | None = None,
    ipv6: bool = False,
) -> AsaMtu:
    """The MTUs the ASA answers a CONNECT with.

    Arguments:
        config: the ASA configuration.
        dtls_cipher: the DTLS cipher selected for the session (any name
            :func:`dtls_record_cipher` knows), or None when DTLS is off.
        client_base_mtu: the client's ``X-CSTP-Base-MTU`` (lowers the path MTU when
            ≥ :data:`MIN_CLIENT_BASE_MTU`).
        client_mtu: the client's ``X-CSTP-MTU`` (see :class:`MtuConfig`.client_mtu_policy).
        ipv6: the client reaches the ASA over IPv6 (40-byte IP header).

    Raises:
        ConfigError: unknown DTLS cipher.
    """
    path = config.interface_mtu
    if client_base_mtu is not None and client_base_mtu >= MIN_CLIENT_BASE_MTU:
        path = min(path, client_base_mtu)
    mss = effective_mss(path, config.tcpmss, ipv6=ipv6)
    tls_threshold = _core.asa_tls_threshold(mss, config.tls_cipher)
    dtls_core = None if dtls_cipher is None else dtls_record_cipher(dtls_cipher)
    dtls = None if dtls_core is None else _core.dtls_tunnel_mtu(path, dtls_core, ipv6=ipv6)

    caps: list[int] = []
    if config.anyconnect_mtu is not None:
        caps.append(config.anyconnect_mtu)
    if config.client_mtu_policy == "cap" and client_mtu is not None and client_mtu > 0:
        caps.append(client_mtu)
    cstp = min([tls_threshold, *caps])
    if dtls is not None:
        dtls = min([dtls, *caps])
    return AsaMtu(
        dtls_mtu=dtls,
        cstp_mtu=cstp,
        tls_threshold=tls_threshold,
        path_mtu=path,
        mss=mss,
        dtls_cipher=dtls_core,
        tls_cipher=config.tls_cipher,
    )
