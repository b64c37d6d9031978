"""The packet bindings of ``tunnelswarm._core`` (rust/proto/src/ip/, traffic/flow.rs):
known vectors computed by hand, round trips, refusals, and the flow receiver's API."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from tunnelswarm._core import (
    FlowReceiver,
    fragment_ipv4,
    icmp_frag_needed,
    internet_checksum,
    ipv4_inspect,
    parse_icmp,
    parse_tcp,
    tcp_segment,
    udp_datagram,
)
from tunnelswarm.errors import ConfigError, LocalProtocolError

CLIENT, SERVER, ASA = "10.10.10.10", "10.1.1.80", "10.1.1.1"

#: 10.10.10.10:40000 -> 10.1.1.80:80 SYN, seq 1000, MSS 1378, DF, TTL 64 (hand-computed:
#: IPv4 checksum !0xe497 = 0x1b68, TCP checksum !0x2764 = 0xd89b; see tcp.rs)
HAND_SYN = bytes.fromhex(
    "4500002c000040004006"
    "1b68"
    "0a0a0a0a0a010150"
    "9c40005000 0003e8 00000000 6002ffff"
    "d89b"
    "0000 02040562".replace(" ", "")
)


def test_rfc1071_example() -> None:
    # RFC 1071 §3: 0001 f203 f4f5 f6f7 sums to ddf2
    assert internet_checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D
    assert internet_checksum(b"") == 0xFFFF
    assert internet_checksum(b"\x12") == 0xFFFF ^ 0x1200


def test_hand_computed_syn() -> None:
    assert tcp_segment(CLIENT, SERVER, 40000, 80, 1000, 0, 0x02, mss=1378) == HAND_SYN
    s = parse_tcp(HAND_SYN)
    assert s is not None
    assert (s.src, s.dst) == (IPv4Address(CLIENT).packed, IPv4Address(SERVER).packed)
    assert (s.src_ip, s.dst_ip, s.sport, s.dport) == (CLIENT, SERVER, 40000, 80)
    assert (s.seq, s.ack, s.flags, s.window, s.mss) == (1000, 0, 0x02, 0xFFFF, 1378)
    assert (s.payload, s.df, s.ttl, s.ident, s.length) == (b"", True, 64, 0, 44)
    assert "seq=1000" in repr(s)


def test_addresses_in_every_form() -> None:
    a = tcp_segment(CLIENT, SERVER, 1, 2, 0, 0, 0x10)
    b = tcp_segment(IPv4Address(CLIENT), IPv4Address(SERVER).packed, 1, 2, 0, 0, 0x10)
    assert a == b
    with pytest.raises(ConfigError, match="not an IPv4 address"):
        tcp_segment("10.0.0.300", SERVER, 1, 2, 0, 0, 0)
    with pytest.raises(ConfigError, match="3 bytes is not a packed IPv4 address"):
        udp_datagram(b"\x01\x02\x03", SERVER, 1, 2, b"")
    with pytest.raises(LocalProtocolError, match="exceeds the 65535-byte maximum"):
        tcp_segment(CLIENT, SERVER, 1, 2, 0, 0, 0, bytes(65_516))


def test_sequence_numbers_wrap() -> None:
    s = parse_tcp(tcp_segment(CLIENT, SERVER, 1, 2, 2**32 + 5, 2**33 + 7, 0x10))
    assert s is not None
    assert (s.seq, s.ack) == (5, 7)


def test_ipv4_inspect() -> None:
    h = ipv4_inspect(HAND_SYN)
    assert h is not None
    assert (h.src_ip, h.dst_ip, h.protocol, h.ttl, h.ident) == (CLIENT, SERVER, 6, 64, 0)
    assert (h.total_len, h.header_len, h.df, h.mf, h.frag_offset, h.is_fragment) == (
        44,
        20,
        True,
        False,
        0,
        False,
    )
    assert h.src == IPv4Address(CLIENT).packed
    bad = HAND_SYN[:10] + b"\x00\x00" + HAND_SYN[12:]
    for junk in (b"", b"\x60" + bytes(39), HAND_SYN[:19], bad, HAND_SYN[:40]):
        assert ipv4_inspect(junk) is None
    assert ipv4_inspect(HAND_SYN + b"\xee\xee") is not None  # link padding is fine
    assert 'dst_ip="10.1.1.80"' in repr(h)
    assert "df=True" in repr(h)


def test_udp_datagram_vector() -> None:
    # 10.0.0.1:1000 -> 10.0.0.2:2000 "hi": UDP checksum 0x77b6 (see checksum.rs)
    p = udp_datagram("10.0.0.1", "10.0.0.2", 1000, 2000, b"hi", df=False, ttl=9, ident=7)
    assert p[20:] == bytes.fromhex("03e807d0000a77b6") + b"hi"
    h = ipv4_inspect(p)
    assert h is not None
    assert (h.protocol, h.df, h.ttl, h.ident, h.total_len) == (17, False, 9, 7, 30)


def test_fragment_ipv4() -> None:
    p = udp_datagram("10.0.0.1", "10.0.0.2", 1, 2, bytes(range(256)) * 6, df=False)
    frags = fragment_ipv4(p, 576)
    assert [len(f) for f in frags] == [572, 572, 460]  # 1544 = 552 + 552 + 440
    infos = [ipv4_inspect(f) for f in frags]
    assert all(i is not None for i in infos)
    assert [(i.mf, i.frag_offset) for i in infos if i] == [(True, 0), (True, 69), (False, 138)]
    assert b"".join(f[20:] for f in frags) == p[20:]
    assert fragment_ipv4(p, 1600) == [p]
    assert fragment_ipv4(b"junk", 576) == []
    assert fragment_ipv4(p, 27) == []


def test_icmp_frag_needed_and_parse() -> None:
    original = tcp_segment(SERVER, CLIENT, 80, 40000, 0xDEADBEEF, 9, 0x10, b"y" * 1378)
    msg = icmp_frag_needed(original, 1347, ASA)
    assert msg is not None
    assert len(msg) == 20 + 8 + 28
    assert msg[20:22] == b"\x03\x04"
    assert msg[26:28] == (1347).to_bytes(2, "big")
    assert msg[28:] == original[:28]
    assert internet_checksum(msg[20:]) == 0
    m = parse_icmp(msg)
    assert m is not None
    assert (m.src_ip, m.icmp_type, m.code, m.mtu, m.is_error) == (ASA, 3, 4, 1347, True)
    assert (m.quoted_src, m.quoted_dst) == (IPv4Address(SERVER).packed, IPv4Address(CLIENT).packed)
    assert (m.quoted_protocol, m.quoted_sport, m.quoted_dport, m.quoted_seq) == (
        6,
        80,
        40000,
        0xDEADBEEF,
    )
    assert "mtu=1347" in repr(m)
    assert icmp_frag_needed(msg, 1000, ASA) is None  # never about an ICMP error
    assert icmp_frag_needed(original, 1000, ASA, ttl=3) is not None
    assert parse_icmp(original) is None
    assert parse_icmp(msg[:-1] + bytes([msg[-1] ^ 1])) is None


def test_flow_receiver_api() -> None:
    rx = FlowReceiver(CLIENT, SERVER, 40000, 80, 1378, 2000, 77, syn_rto_us=500_000)
    assert (rx.state, rx.sport, rx.mss, rx.nbytes) == ("idle", 40000, 1378, 2000)
    syn = parse_tcp(rx.syn(10))
    assert syn is not None
    assert (syn.seq, syn.mss, syn.payload) == (77, 1378, b"GET /2000 HTTP/1.0\r\n\r\n")
    assert rx.next_deadline() == 500_010
    with pytest.raises(LocalProtocolError, match="already sent"):
        rx.syn(20)
    ack = 77 + 1 + len(syn.payload)
    v = rx.handle_packet(30, tcp_segment(SERVER, CLIENT, 80, 40000, 9, ack, 0x12, mss=1460))
    assert (v.kind, v.new_bytes, v.reason) == ("progress", 0, None)
    assert rx.state == "established"
    assert rx.next_deadline() is None
    data = bytes(i & 0xFF for i in range(2000))
    v = rx.handle_packet(40, tcp_segment(SERVER, CLIENT, 80, 40000, 10, ack, 0x19, data))
    assert (v.kind, v.new_bytes) == ("complete", 2000)
    out = parse_tcp(rx.poll_transmit() or b"")
    assert out is not None
    assert (out.flags, out.seq, out.ack) == (0x10, ack, 10 + 2000 + 1)
    assert rx.poll_transmit() is None
    stats = rx.stats()
    assert (stats["bytes"], stats["first_byte_at_us"], stats["completed_at_us"]) == (2000, 40, 40)
    bad = rx.handle_packet(50, b"\x45")
    assert bad.kind == "malformed"
    assert bad.reason is not None
    assert "malformed" in repr(bad)
    assert rx.handle_packet(50, b"\x60" + bytes(39)).kind == "not-ours"
    with pytest.raises(ConfigError, match="ports must be non-zero"):
        FlowReceiver(CLIENT, SERVER, 0, 80, 1378, 1)
    with pytest.raises(ConfigError, match="exceeds"):
        FlowReceiver(CLIENT, SERVER, 1, 80, 1378, 2**31)
    with pytest.raises(LocalProtocolError, match="now must be >= 0"):
        FlowReceiver(CLIENT, SERVER, 1, 80, 1378, 1).syn(-1)
