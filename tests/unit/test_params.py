"""Unit tests for tunnelswarm.config.params: the CONNECT response headers (protocol.md §3.3)."""

from __future__ import annotations

import dataclasses

import pytest

from tunnelswarm.config.params import TunnelParams, parse_tunnel_headers
from tunnelswarm.errors import RemoteProtocolError

ASA_SESSION_ID = "5F3C" + "0123456789ABCDEF" * 3 + "FEDCBA987654"
OCSERV_SESSION_ID = "3b7a" + "00112233445566778899aabbccddeeff" + "0123456789abcdef0123456789ab"
POST_AUTH_XML = (
    '<?xml version="1.0" encoding="UTF-8"?><config-auth client="vpn" type="complete">'
    "<session-token>ABCDEF@123@4567</session-token></config-auth>"
)

# §3.3.3, the ASA example (status line left out: the parser gets header lines only).
ASA_RESPONSE = f"""\
Date: Tue, 17 Mar 2020 19:28:09 GMT
X-CSTP-Version: 1
X-CSTP-Address: 10.10.10.21
X-CSTP-Netmask: 255.255.255.0
X-CSTP-Hostname: laptop
X-CSTP-DNS: 10.0.0.53
X-CSTP-Lease-Duration: 43200
X-CSTP-Session-Timeout: 43200
X-CSTP-Idle-Timeout: 3600
X-CSTP-Disconnected-Timeout: 3600
X-CSTP-Default-Domain: corp.example.com
X-CSTP-Split-Include: 10.0.0.0/255.0.0.0
X-CSTP-Split-DNS: corp.example.com
X-CSTP-Keep: true
X-CSTP-Tunnel-All-DNS: false
X-CSTP-DPD: 30
X-CSTP-Keepalive: 20
X-CSTP-MSIE-Proxy-Lockdown: true
X-CSTP-Smartcard-Removal-Disconnect: true
X-DTLS-Session-ID: {ASA_SESSION_ID}
X-DTLS-Port: 443
X-DTLS-Keepalive: 20
X-DTLS-DPD: 30
X-CSTP-MTU: 1300
X-DTLS-MTU: 1300
X-DTLS-CipherSuite: DHE-RSA-AES256-SHA
X-CSTP-Routing-Filtering-Ignore: false
X-CSTP-Quarantine: false
X-CSTP-Disable-Always-On-VPN: false
X-CSTP-Client-Bypass-Protocol: false
X-CSTP-TCP-Keepalive: true
X-CSTP-Post-Auth-XML: {POST_AUTH_XML}
"""

# §3.3.4, the ocserv example, every optional line included, OWASP headers first.
OCSERV_RESPONSE = f"""\
X-Frame-Options: deny
X-Content-Type-Options: nosniff
X-CSTP-Version: 1
X-CSTP-Server-Name: ocserv 1.1.6
X-CSTP-Hostname: laptop
X-CSTP-DPD: 90
X-CSTP-Default-Domain: example.com
X-CSTP-Address: 192.168.100.23
X-CSTP-Netmask: 255.255.255.0
X-CSTP-Address-IP6: fda9:4efe:7e3b:3a3b::5/64
X-CSTP-DNS: 192.168.100.1
X-CSTP-Split-Include: 10.0.0.0/255.0.0.0
X-CSTP-Tunnel-All-DNS: false
X-CSTP-Client-Bypass-Protocol: false
X-CSTP-Keepalive: 32400
X-CSTP-Idle-Timeout: 1200
X-CSTP-Smartcard-Removal-Disconnect: true
X-CSTP-Rekey-Time: 172800
X-CSTP-Rekey-Method: ssl
X-CSTP-Session-Timeout: none
X-CSTP-Disconnected-Timeout: none
X-CSTP-Keep: true
X-CSTP-TCP-Keepalive: true
X-CSTP-License: accept
X-DTLS-DPD: 90
X-DTLS-Port: 443
X-DTLS-Rekey-Time: 172810
X-DTLS-Rekey-Method: ssl
X-DTLS-Keepalive: 32400
X-DTLS-Session-ID: {OCSERV_SESSION_ID}
X-DTLS-CipherSuite: AES256-SHA
X-DTLS-MTU: 1406
X-CSTP-Base-MTU: 1500
X-CSTP-MTU: 1406
X-DTLS-Content-Encoding: lzs
X-CSTP-Content-Encoding: lzs
"""


def split_head(text: str) -> list[tuple[str, str]]:
    """Header lines → (name, value) as an HTTP parser hands them over (value unstripped)."""
    out = []
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        assert sep, line
        out.append((name, value))
    return out


MINIMAL = [("X-CSTP-Address", "10.0.0.2"), ("X-CSTP-MTU", "1399")]


def parse_with(*extra: tuple[str, str]) -> TunnelParams:
    return parse_tunnel_headers([*MINIMAL, *extra])


# --- the two examples, every field -------------------------------------------------------


def test_asa_example_every_field() -> None:
    p = parse_tunnel_headers(split_head(ASA_RESPONSE))
    expected = TunnelParams(
        address="10.10.10.21",
        netmask="255.255.255.0",
        address_ip6=None,
        dns=("10.0.0.53",),
        dns_ip6=(),
        nbns=(),
        default_domain="corp.example.com",
        split_dns=("corp.example.com",),
        split_include=("10.0.0.0/255.0.0.0",),
        split_exclude=(),
        split_include_ip6=(),
        split_exclude_ip6=(),
        banner=None,
        server_name=None,
        hostname="laptop",
        version="1",
        cstp_mtu=1300,
        base_mtu=None,
        dpd=30,
        keepalive=20,
        idle_timeout=3600,
        disconnected_timeout=3600,
        session_timeout=43200,
        session_timeout_remaining=None,
        lease_duration=43200,
        rekey_time=0,
        rekey_method="none",
        content_encoding=None,
        tunnel_all_dns=False,
        post_auth_xml=POST_AUTH_XML,
        dtls_session_id=ASA_SESSION_ID.lower(),
        dtls_app_id=None,
        dtls_port=443,
        dtls_keepalive=20,
        dtls_dpd=30,
        dtls_rekey_time=0,
        dtls_rekey_method="none",
        dtls_cipher_suite="DHE-RSA-AES256-SHA",
        dtls12_cipher_suite=None,
        dtls_mtu=1300,
        dtls_content_encoding=None,
        extra=(
            ("Date", "Tue, 17 Mar 2020 19:28:09 GMT"),
            ("X-CSTP-Keep", "true"),
            ("X-CSTP-MSIE-Proxy-Lockdown", "true"),
            ("X-CSTP-Smartcard-Removal-Disconnect", "true"),
            ("X-CSTP-Routing-Filtering-Ignore", "false"),
            ("X-CSTP-Quarantine", "false"),
            ("X-CSTP-Disable-Always-On-VPN", "false"),
            ("X-CSTP-Client-Bypass-Protocol", "false"),
            ("X-CSTP-TCP-Keepalive", "true"),
        ),
    )
    # field by field first, for a readable failure
    for f in dataclasses.fields(TunnelParams):
        assert getattr(p, f.name) == getattr(expected, f.name), f.name
    assert p == expected
    assert p.tunnel_mtu == 1300
    assert p.dtls_offered
    assert p.dtls_cipher == "DHE-RSA-AES256-SHA"
    assert p.auth_expiry == 43200


def test_ocserv_example_every_field() -> None:
    p = parse_tunnel_headers(split_head(OCSERV_RESPONSE))
    expected = TunnelParams(
        address="192.168.100.23",
        netmask="255.255.255.0",
        address_ip6="fda9:4efe:7e3b:3a3b::5/64",
        dns=("192.168.100.1",),
        dns_ip6=(),
        nbns=(),
        default_domain="example.com",
        split_dns=(),
        split_include=("10.0.0.0/255.0.0.0",),
        split_exclude=(),
        split_include_ip6=(),
        split_exclude_ip6=(),
        banner=None,
        server_name="ocserv 1.1.6",
        hostname="laptop",
        version="1",
        cstp_mtu=1406,
        base_mtu=1500,
        dpd=90,
        keepalive=32400,
        idle_timeout=1200,
        disconnected_timeout=None,
        session_timeout=None,
        session_timeout_remaining=None,
        lease_duration=None,
        rekey_time=172800,
        rekey_method="ssl",
        content_encoding="lzs",
        tunnel_all_dns=False,
        post_auth_xml=None,
        dtls_session_id=OCSERV_SESSION_ID,
        dtls_app_id=None,
        dtls_port=443,
        dtls_keepalive=32400,
        dtls_dpd=90,
        dtls_rekey_time=172810,
        dtls_rekey_method="ssl",
        dtls_cipher_suite="AES256-SHA",
        dtls12_cipher_suite=None,
        dtls_mtu=1406,
        dtls_content_encoding="lzs",
        extra=(
            ("X-Frame-Options", "deny"),
            ("X-Content-Type-Options", "nosniff"),
            ("X-CSTP-Client-Bypass-Protocol", "false"),
            ("X-CSTP-Smartcard-Removal-Disconnect", "true"),
            ("X-CSTP-Keep", "true"),
            ("X-CSTP-TCP-Keepalive", "true"),
            ("X-CSTP-License", "accept"),
        ),
    )
    for f in dataclasses.fields(TunnelParams):
        assert getattr(p, f.name) == getattr(expected, f.name), f.name
    assert p == expected
    assert p.tunnel_mtu == 1406
    assert p.auth_expiry is None
    assert p.dtls_cipher == "AES256-SHA"


def test_ocserv_116_session_timeout_zero_means_no_expiry() -> None:
    """ocserv 1.1.6 without a session limit: Session-Timeout 0 + Remaining 0 (§3.3.2)."""
    text = OCSERV_RESPONSE.replace(
        "X-CSTP-Session-Timeout: none\n",
        "X-CSTP-Session-Timeout: 0\nX-CSTP-Session-Timeout-Remaining: 0\n",
    )
    p = parse_tunnel_headers(split_head(text))
    assert p.session_timeout == 0
    assert p.session_timeout_remaining == 0
    assert p.auth_expiry is None


def test_ocserv_psk_negotiate_block() -> None:
    app_id = "46696d88" + "ab" * 28
    text = (
        OCSERV_RESPONSE.replace(
            f"X-DTLS-Session-ID: {OCSERV_SESSION_ID}", f"X-DTLS-App-ID: {app_id}"
        )
        .replace("X-DTLS-CipherSuite: AES256-SHA", "X-DTLS-CipherSuite: PSK-NEGOTIATE")
        .replace("X-DTLS-MTU: 1406\n", "")
        .replace("X-CSTP-Base-MTU: 1500", "X-CSTP-Base-MTU: 1406")
        .replace("X-CSTP-MTU: 1406", "X-CSTP-MTU: 1340")
    )
    p = parse_tunnel_headers(split_head(text))
    assert p.dtls_session_id is None
    assert p.dtls_app_id == app_id
    assert p.dtls_offered
    assert p.dtls_cipher == "PSK-NEGOTIATE"
    assert p.dtls_mtu is None
    assert p.base_mtu == 1406
    assert p.tunnel_mtu == 1340


# --- repeated, none, unknown, case ---------------------------------------------------------


def test_repeated_headers_become_tuples_in_order() -> None:
    p = parse_with(
        ("X-CSTP-DNS", "10.0.0.53"),
        ("X-CSTP-Split-Include", "10.0.0.0/255.0.0.0"),
        ("X-CSTP-DNS", "10.0.0.54"),
        ("X-CSTP-DNS-IP6", "fd00::53"),
        ("X-CSTP-NBNS", "10.0.0.60"),
        ("X-CSTP-NBNS", "10.0.0.61"),
        ("X-CSTP-Split-Include", "172.16.0.0/255.240.0.0"),
        ("X-CSTP-Split-Exclude", "10.9.0.0/255.255.0.0"),
        ("X-CSTP-Split-Include-IP6", "2001:db8::/32"),
        ("X-CSTP-Split-Include-IP6", "2001:db9::/32"),
        ("X-CSTP-Split-Exclude-IP6", "2001:db8:1::/48"),
        ("X-CSTP-Split-DNS", "corp.example.com"),
        ("X-CSTP-Split-DNS", "lab.example.com"),
        ("X-CSTP-DNS", "10.0.0.55"),
    )
    assert p.dns == ("10.0.0.53", "10.0.0.54", "10.0.0.55")
    assert p.dns_ip6 == ("fd00::53",)
    assert p.nbns == ("10.0.0.60", "10.0.0.61")
    assert p.split_include == ("10.0.0.0/255.0.0.0", "172.16.0.0/255.240.0.0")
    assert p.split_exclude == ("10.9.0.0/255.255.0.0",)
    assert p.split_include_ip6 == ("2001:db8::/32", "2001:db9::/32")
    assert p.split_exclude_ip6 == ("2001:db8:1::/48",)
    assert p.split_dns == ("corp.example.com", "lab.example.com")
    assert p.extra == ()


@pytest.mark.parametrize(
    "name",
    [
        "X-CSTP-Idle-Timeout",
        "X-CSTP-Disconnected-Timeout",
        "X-CSTP-Session-Timeout",
        "X-CSTP-Session-Timeout-Remaining",
        "X-CSTP-Lease-Duration",
    ],
)
@pytest.mark.parametrize("none", ["none", "None", "NONE", " none "])
def test_none_timeout_is_none(name: str, none: str) -> None:
    field = {
        "X-CSTP-Idle-Timeout": "idle_timeout",
        "X-CSTP-Disconnected-Timeout": "disconnected_timeout",
        "X-CSTP-Session-Timeout": "session_timeout",
        "X-CSTP-Session-Timeout-Remaining": "session_timeout_remaining",
        "X-CSTP-Lease-Duration": "lease_duration",
    }[name]
    assert getattr(parse_with((name, none)), field) is None
    assert getattr(parse_with((name, "1800")), field) == 1800


def test_none_is_refused_where_a_number_is_required() -> None:
    with pytest.raises(RemoteProtocolError, match="X-CSTP-DPD"):
        parse_with(("X-CSTP-DPD", "none"))


def test_unknown_headers_kept_in_order_with_original_spelling() -> None:
    p = parse_with(
        ("x-cstp-custom-thing", " first "),
        ("Server", "Apache"),
        ("X-CSTP-MSIE-Proxy-Pac-URL", "http://wpad/proxy.pac"),
        ("X-CSTP-Custom-Thing", "second"),
        ("X-DTLS-Something-New", "1"),
        ("Set-Cookie", "webvpn=; path=/"),
    )
    assert p.extra == (
        ("x-cstp-custom-thing", "first"),
        ("Server", "Apache"),
        ("X-CSTP-MSIE-Proxy-Pac-URL", "http://wpad/proxy.pac"),
        ("X-CSTP-Custom-Thing", "second"),
        ("X-DTLS-Something-New", "1"),
        ("Set-Cookie", "webvpn=; path=/"),
    )
    assert p.get_extra("X-CSTP-CUSTOM-THING") == ["first", "second"]
    assert p.get_extra("x-cstp-msie-proxy-pac-url") == ["http://wpad/proxy.pac"]
    assert p.get_extra("X-Not-There") == []


@pytest.mark.parametrize(
    ("addr_name", "mtu_name"),
    [
        ("X-CSTP-Address", "X-CSTP-MTU"),
        ("x-cstp-address", "x-cstp-mtu"),
        ("X-CSTP-ADDRESS", "X-CSTP-MTU"),
        ("x-Cstp-aDDress", "x-CsTp-MtU"),
    ],
)
def test_header_names_are_case_insensitive(addr_name: str, mtu_name: str) -> None:
    p = parse_tunnel_headers(
        [
            (addr_name, "10.1.2.3"),
            (mtu_name, "1300"),
            ("x-dtls-mtu", "1418"),
            ("X-CSTP-KEEPALIVE", "20"),
            ("x-cstp-dns", "10.0.0.1"),
            ("X-cstp-DNS", "10.0.0.2"),
            ("x-dtls-session-id", ASA_SESSION_ID),
            ("X-DTLS12-CIPHERSUITE", "AES256-GCM-SHA384"),
            ("X-CSTP-REKEY-METHOD", "SSL"),
            ("x-cstp-content-encoding", "Deflate"),
        ]
    )
    assert p.address == "10.1.2.3"
    assert p.tunnel_mtu == 1418
    assert p.keepalive == 20
    assert p.dns == ("10.0.0.1", "10.0.0.2")
    assert p.dtls_session_id == ASA_SESSION_ID.lower()
    assert p.dtls12_cipher_suite == "AES256-GCM-SHA384"
    assert p.rekey_method == "ssl"
    assert p.content_encoding == "deflate"
    assert p.extra == ()


def test_value_whitespace_is_stripped() -> None:
    p = parse_tunnel_headers([("X-CSTP-Address", "  10.1.2.3\t"), ("X-CSTP-MTU", " 1300 ")])
    assert (p.address, p.cstp_mtu) == ("10.1.2.3", 1300)


# --- addresses ----------------------------------------------------------------------------


def test_ipv6_in_x_cstp_address_goes_to_address_ip6() -> None:
    p = parse_tunnel_headers(
        [
            ("X-CSTP-Address", "fd00:1::23"),
            ("X-CSTP-Netmask", "fd00:1::23/64"),
            ("X-CSTP-MTU", "1300"),
        ]
    )
    assert p.address is None
    assert p.address_ip6 == "fd00:1::23"


def test_ipv6_only_via_address_ip6_is_enough() -> None:
    p = parse_tunnel_headers([("X-CSTP-Address-IP6", "fd00::5/64"), ("X-CSTP-MTU", "1300")])
    assert p.address is None
    assert p.address_ip6 == "fd00::5/64"


def test_malformed_ipv4_address_refused() -> None:
    with pytest.raises(RemoteProtocolError, match="X-CSTP-Address") as info:
        parse_tunnel_headers([("X-CSTP-Address", "10.1.2"), ("X-CSTP-MTU", "1300")])
    assert "\n" not in str(info.value)


# --- derived properties ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lease", "session", "remaining", "expiry"),
    [
        (None, None, None, None),
        ("43200", "43200", None, 43200),
        ("1209600", "43200", "3600", 3600),
        ("0", "0", "0", None),
        ("0", "none", "900", 900),
        ("43200", "0", None, 43200),
        (None, "none", None, None),
        ("86400", "7200", "0", 7200),
    ],
)
def test_auth_expiry_is_lowest_non_zero(
    lease: str | None, session: str | None, remaining: str | None, expiry: int | None
) -> None:
    hdrs = []
    if lease is not None:
        hdrs.append(("X-CSTP-Lease-Duration", lease))
    if session is not None:
        hdrs.append(("X-CSTP-Session-Timeout", session))
    if remaining is not None:
        hdrs.append(("X-CSTP-Session-Timeout-Remaining", remaining))
    assert parse_with(*hdrs).auth_expiry == expiry


@pytest.mark.parametrize(
    ("dtls", "dtls12", "cipher"),
    [
        (None, None, None),
        ("AES256-SHA", None, "AES256-SHA"),
        (None, "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384"),
        ("AES256-SHA", "AES128-GCM-SHA256", "AES128-GCM-SHA256"),
        ("OC-DTLS1_2-AES256-GCM", "AES256-GCM-SHA384", "AES256-GCM-SHA384"),
    ],
)
def test_dtls_cipher_precedence(dtls: str | None, dtls12: str | None, cipher: str | None) -> None:
    hdrs = []
    if dtls12 is not None:  # order must not matter
        hdrs.append(("X-DTLS12-CipherSuite", dtls12))
    if dtls is not None:
        hdrs.append(("X-DTLS-CipherSuite", dtls))
    p = parse_with(*hdrs)
    assert p.dtls_cipher == cipher
    assert parse_with(*reversed(hdrs)).dtls_cipher == cipher


def test_dtls_not_offered_without_session_or_app_id() -> None:
    p = parse_with(("X-DTLS-Port", "443"), ("X-DTLS-DPD", "30"), ("X-DTLS-Keepalive", "20"))
    assert not p.dtls_offered
    assert p.tunnel_mtu == 1399


@pytest.mark.parametrize(
    ("value", "method"),
    [
        ("ssl", "ssl"),
        ("new-tunnel", "new-tunnel"),
        ("none", "none"),
        ("SSL", "ssl"),
        ("bogus", "none"),
    ],
)
def test_rekey_method_anything_else_is_none(value: str, method: str) -> None:
    p = parse_with(("X-CSTP-Rekey-Method", value), ("X-DTLS-Rekey-Method", value))
    assert p.rekey_method == method
    assert p.dtls_rekey_method == method


def test_defaults_without_optional_headers() -> None:
    p = parse_tunnel_headers(MINIMAL)
    assert p == TunnelParams(address="10.0.0.2", cstp_mtu=1399)
    assert (p.dpd, p.keepalive, p.rekey_time, p.rekey_method) == (0, 0, 0, "none")
    assert p.tunnel_all_dns is None
    assert p.auth_expiry is None


@pytest.mark.parametrize(
    ("value", "flag"), [("true", True), ("TRUE", True), ("false", False), ("x", False)]
)
def test_tunnel_all_dns(value: str, flag: bool) -> None:
    assert parse_with(("X-CSTP-Tunnel-All-DNS", value)).tunnel_all_dns is flag


def test_params_are_frozen() -> None:
    p = parse_tunnel_headers(MINIMAL)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.cstp_mtu = 1500  # type: ignore[misc]


# --- errors --------------------------------------------------------------------------------


def _error(headers: list[tuple[str, str]]) -> str:
    with pytest.raises(RemoteProtocolError) as info:
        parse_tunnel_headers(headers)
    msg = str(info.value)
    assert msg
    assert "\n" not in msg
    assert msg == info.value.reason
    return msg


def test_missing_address() -> None:
    msg = _error([("X-CSTP-MTU", "1300"), ("X-CSTP-Netmask", "255.255.255.0")])
    assert msg.startswith("No IP address received")
    assert "X-CSTP-Address" in msg


def test_missing_mtu() -> None:
    msg = _error([("X-CSTP-Address", "10.0.0.2"), ("X-DTLS-MTU", "1418")])
    assert msg.startswith("No MTU received")
    assert "X-CSTP-MTU" in msg


def test_empty_response_reports_the_address_first() -> None:
    assert _error([]).startswith("No IP address received")


@pytest.mark.parametrize(
    "value", ["thirty", "", "30s", "3.5", "0x1e", "1_000", "+30", "\uff13\uff10"]
)
def test_non_numeric_dpd(value: str) -> None:
    msg = _error([*MINIMAL, ("X-CSTP-DPD", value)])
    assert "X-CSTP-DPD" in msg
    assert "not a number" in msg


def test_negative_number() -> None:
    msg = _error([*MINIMAL, ("X-DTLS-Port", "-1")])
    assert "X-DTLS-Port" in msg
    assert "negative" in msg


@pytest.mark.parametrize(
    "name",
    ["X-CSTP-MTU", "X-CSTP-Base-MTU", "X-CSTP-Keepalive", "X-CSTP-Rekey-Time", "X-DTLS-MTU",
     "X-DTLS-DPD", "X-DTLS-Keepalive", "X-DTLS-Rekey-Time", "X-CSTP-Idle-Timeout",
     "X-CSTP-Lease-Duration"],
)  # fmt: skip
def test_every_numeric_header_is_checked(name: str) -> None:
    msg = _error([("X-CSTP-Address", "10.0.0.2"), ("X-CSTP-MTU", "1300"), (name, "many")])
    assert name in msg


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (ASA_SESSION_ID[:-2], "62 hex characters, must be 64"),
        (ASA_SESSION_ID[:-1], "63 hex characters, must be 64"),
        (ASA_SESSION_ID + "00", "66 hex characters, must be 64"),
        ("", "0 hex characters, must be 64"),
        ("Z" + ASA_SESSION_ID[1:], "not hex"),
        (ASA_SESSION_ID[:30] + " " + ASA_SESSION_ID[31:], "not hex"),
    ],
)
def test_dtls_session_id_must_be_64_hex(value: str, why: str) -> None:
    msg = _error([*MINIMAL, ("X-DTLS-Session-ID", value)])
    assert "X-DTLS-Session-ID" in msg
    assert why in msg


@pytest.mark.parametrize("value", [ASA_SESSION_ID, ASA_SESSION_ID.lower()])
def test_dtls_session_id_either_case(value: str) -> None:
    assert parse_with(("X-DTLS-Session-ID", value)).dtls_session_id == ASA_SESSION_ID.lower()


@pytest.mark.parametrize("value", ["ab cd", "abc", "", "00" * 33, "xyz0"])
def test_bad_dtls_app_id(value: str) -> None:
    assert "X-DTLS-App-ID" in _error([*MINIMAL, ("X-DTLS-App-ID", value)])


@pytest.mark.parametrize("value", ["ab", "00" * 32, "46696D88"])
def test_good_dtls_app_id(value: str) -> None:
    assert parse_with(("X-DTLS-App-ID", value)).dtls_app_id == value.lower()


@pytest.mark.parametrize("name", ["X-CSTP-Content-Encoding", "X-DTLS-Content-Encoding"])
@pytest.mark.parametrize("value", ["gzip", "lz4", "", "identity"])
def test_unknown_content_encoding(name: str, value: str) -> None:
    msg = _error([*MINIMAL, (name, value)])
    assert name in msg
    assert "unknown encoding" in msg


@pytest.mark.parametrize("value", ["deflate", "lzs", "oc-lz4", "LZS"])
def test_known_content_encodings(value: str) -> None:
    p = parse_with(("X-CSTP-Content-Encoding", value), ("X-DTLS-Content-Encoding", value))
    assert p.content_encoding == value.lower()
    assert p.dtls_content_encoding == value.lower()


def test_error_names_the_header_as_the_server_spelled_it() -> None:
    msg = _error([*MINIMAL, ("x-cstp-dpd", "soon")])
    assert "x-cstp-dpd" in msg
