"""Property tests of the packet bindings (``tunnelswarm._core``): no parser raises on any
bytes, builders round-trip through the parsers, fragments reassemble, and a flow
receiver fed arbitrary packets never raises."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

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

A, B, ASA = "10.10.10.10", "10.1.1.80", "10.1.1.1"
SETTINGS = settings(max_examples=200, deadline=None)


def _fix_ip(p: bytearray) -> bytes:
    """Valid IPv4 header around damaged bytes (test-side helper)."""
    if len(p) >= 20:
        p[0] = 0x45
        p[2:4] = len(p).to_bytes(2, "big")
        p[10:12] = b"\0\0"
        p[10:12] = internet_checksum(bytes(p[:20])).to_bytes(2, "big")
    return bytes(p)


@SETTINGS
@given(st.binary(max_size=300), st.integers(0, 2000), st.integers(0, 65535))
def test_parsers_never_raise(data: bytes, mtu: int, icmp_mtu: int) -> None:
    for p in (data, _fix_ip(bytearray(data))):
        ipv4_inspect(p)
        parse_tcp(p)
        m = parse_icmp(p)
        if m is not None:
            _ = (m.mtu, m.quoted_seq, m.quoted_sport)
        fragment_ipv4(p, mtu)
        icmp_frag_needed(p, icmp_mtu, ASA)
        rx = FlowReceiver(A, B, 40000, 80, 1378, 1000, 1)
        rx.syn(0)
        assert rx.handle_packet(1, p).kind in {"not-ours", "malformed", "progress"}


@SETTINGS
@given(
    st.integers(0, 65535),
    st.integers(0, 65535),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.integers(0, 255),
    st.binary(max_size=200),
    st.one_of(st.none(), st.integers(0, 65535)),
    st.booleans(),
)
def test_tcp_round_trip(
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    payload: bytes,
    mss: int | None,
    df: bool,
) -> None:
    p = tcp_segment(A, B, sport, dport, seq, ack, flags, payload, mss=mss, df=df)
    assert internet_checksum(p[:20]) == 0
    s = parse_tcp(p)
    assert s is not None
    assert (s.sport, s.dport, s.seq, s.ack, s.flags, s.mss, s.payload, s.df) == (
        sport,
        dport,
        seq,
        ack,
        flags,
        mss,
        payload,
        df,
    )


@SETTINGS
@given(st.integers(0, 4000), st.integers(28, 2000), st.booleans())
def test_fragments_reassemble(size: int, mtu: int, df: bool) -> None:
    p = udp_datagram(A, B, 5, 6, bytes(i & 0xFF for i in range(size)), df=df)
    frags = fragment_ipv4(p, mtu)
    if len(p) <= mtu:
        assert frags == [p]
    assert all(len(f) <= mtu for f in frags)
    data = b""
    for i, f in enumerate(frags):
        h = ipv4_inspect(f)
        assert h is not None
        assert h.frag_offset * 8 == len(data)
        assert h.mf == (i + 1 < len(frags))
        assert h.df == df
        data += f[h.header_len :]
    assert data == p[20:]


@SETTINGS
@given(st.integers(0, 3000), st.integers(0, 65535), st.integers(0, 2**32 - 1))
def test_frag_needed_quotes_the_tcp_header(payload: int, mtu: int, seq: int) -> None:
    original = tcp_segment(B, A, 80, 40000, seq, 0, 0x10, bytes(payload))
    msg = icmp_frag_needed(original, mtu, ASA)
    assert msg is not None
    m = parse_icmp(msg)
    assert m is not None
    assert (m.mtu, m.quoted_seq, m.quoted_sport, m.quoted_dport) == (mtu, seq, 80, 40000)
    assert msg[28:] == original[:28]
