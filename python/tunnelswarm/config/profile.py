"""Client profiles: what an emulated client says about itself on the wire.

A profile fixes the User-Agent, the ``<version who="vpn">`` of the XML documents, the
device id, the address families it asks for and the DTLS cipher offers of CONNECT
(protocol.md §2.2, §3.2). The default is openconnect 9.01 as Debian 12 ships it, the
client every wire fact marked "verified against openconnect 9.01" was checked with.
Behaviour differences between real clients (MTU reaction, DTLS retry policy) are a
later issue's profiles; here a profile is the identity and the header set.

Not emulated (documented, not hidden): openconnect's STRAP headers
(``X-AnyConnect-STRAP-*``, SSO only) and the compression offers (tunnelswarm does not
compress, so it sends no ``X-CSTP-Accept-Encoding``, like ``--compression=off``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["OPENCONNECT_9_01", "PROFILES", "ClientProfile"]


@dataclass(frozen=True, slots=True)
class ClientProfile:
    """Identity and header set of one client implementation."""

    name: str
    user_agent: str
    #: text of ``<version who="vpn">`` in init / auth-reply
    xml_version: str
    device_id: str = "linux-64"
    aggregate_auth_version: bool = True
    capabilities: tuple[str, ...] = ("single-sign-on-v2",)
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
    #: send ``X-CSTP-Protocol: Copyright (c) 2004 Cisco Systems, Inc.`` (openconnect > 9.12)
    cstp_protocol_blurb: bool = False
    #: ``X-Support-HTTP-Auth: true`` on auth POSTs (openconnect 9.01 does)
    support_http_auth: bool = False


#: openconnect 9.01 (Debian 12 package, GnuTLS build) — protocol.md §3.2, §10.10
OPENCONNECT_9_01 = ClientProfile(
    name="openconnect-9.01",
    user_agent="Open AnyConnect VPN Agent v9.01-3",
    xml_version="v9.01-3",
)

#: AnyConnect 4.10 on Linux, as far as the headers are known (User-Agent per §2.2)
ANYCONNECT_4_10_LINUX = ClientProfile(
    name="anyconnect-4.10-linux",
    user_agent="AnyConnect Linux_64 4.10.07061",
    xml_version="4.10.07061",
    capabilities=(),
    cstp_protocol_blurb=True,
)

PROFILES: dict[str, ClientProfile] = {p.name: p for p in (OPENCONNECT_9_01, ANYCONNECT_4_10_LINUX)}
