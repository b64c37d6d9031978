"""Property tests of the reassembler binding (``tunnelswarm._core.Reassembler``): the
fragments of any datagram, at any MTUs, in any order and with duplicates, give back the
datagram's bytes; arbitrary bytes never raise."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from tunnelswarm._core import Reassembler, fragment_ipv4, internet_checksum, udp_datagram

A, B = "10.1.1.80", "10.10.10.10"
SETTINGS = settings(max_examples=200, deadline=None)


@SETTINGS
@given(
    st.integers(0, 8000),
    st.integers(28, 2000),
    st.integers(28, 1500),
    st.booleans(),
    st.integers(0, 65535),
    st.randoms(use_true_random=False),
    st.integers(0, 8),
)
def test_fragments_reassemble_in_any_order(
    size: int,
    mtu: int,
    refrag: int,
    df: bool,
    ident: int,
    rnd: random.Random,
    dups: int,
) -> None:
    p = udp_datagram(A, B, 5, 6, bytes(i * 13 & 0xFF for i in range(size)), df=df, ident=ident)
    frags: list[bytes] = []
    for i, f in enumerate(fragment_ipv4(p, mtu)):
        frags.extend(fragment_ipv4(f, refrag) if i % 2 else [f])
    frags.extend(rnd.choice(frags) for _ in range(dups))
    rnd.shuffle(frags)
    r = Reassembler(max_fragments=4096)
    whole = []
    for f in frags:
        out = r.handle(0, f)
        assert out.kind in {"pass", "held", "reassembled"}, out
        if out.packet is not None:
            whole.append(out.packet)
    assert whole
    assert all(w == p for w in whole)
    assert r.stats()["overlaps"] == 0


def _fragment_header(data: bytearray, offset: int, mf: bool) -> bytes:
    """A sound 20-byte IPv4 header around damaged bytes, with the given fragment fields."""
    if len(data) < 20:
        return bytes(data)
    data[0] = 0x45
    data[2:4] = len(data).to_bytes(2, "big")
    data[6:8] = ((0x2000 if mf else 0) | offset).to_bytes(2, "big")
    data[10:12] = b"\0\0"
    data[10:12] = internet_checksum(bytes(data[:20])).to_bytes(2, "big")
    return bytes(data)


@SETTINGS
@given(
    st.lists(
        st.tuples(st.binary(max_size=120), st.integers(0, 8191), st.booleans()),
        max_size=30,
    ),
    st.integers(0, 10_000_000),
)
def test_arbitrary_packets_never_raise(packets: list[tuple[bytes, int, bool]], step: int) -> None:
    r = Reassembler(timeout_us=3_000_000, max_datagrams=4, max_fragments=6)
    for i, (data, offset, mf) in enumerate(packets):
        for p in (data, _fragment_header(bytearray(data), offset, mf)):
            out = r.handle(i * step, p)
            assert out.kind in {"pass", "malformed", "held", "reassembled", "dropped"}
            assert r.pending <= 4
    r.handle_timeout(len(packets) * step + 3_000_000)
    assert r.pending == 0
    assert r.next_deadline() is None
