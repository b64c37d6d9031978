"""The IPv4 reassembler binding (``tunnelswarm._core.Reassembler``,
rust/proto/src/ip/reassembly.rs): outcomes, the drops and their counters, limits, time."""

from __future__ import annotations

import pytest

from tunnelswarm._core import (
    Reassembler,
    fragment_ipv4,
    internet_checksum,
    ipv4_inspect,
    udp_datagram,
)
from tunnelswarm.errors import ConfigError, LocalProtocolError

A, B = "10.1.1.80", "10.10.10.10"
SEC = 1_000_000


def datagram(size: int = 1400, ident: int = 0x1234, *, df: bool = True) -> bytes:
    return udp_datagram(
        A, B, 80, 40000, bytes(i * 7 & 0xFF for i in range(size)), ident=ident, df=df
    )


def patched(p: bytes, *, offset: int | None = None, mf: bool | None = None, cut: int = 0) -> bytes:
    """``p`` (20-byte header) with its fragment fields and/or length changed and the
    header checksum fixed (a test-side helper for refused shapes)."""
    b = bytearray(p[: len(p) - cut])
    ff = int.from_bytes(b[6:8], "big")
    if offset is not None:
        ff = (ff & ~0x1FFF) | offset
    if mf is not None:
        ff = (ff | 0x2000) if mf else (ff & ~0x2000)
    b[6:8] = ff.to_bytes(2, "big")
    b[2:4] = len(b).to_bytes(2, "big")
    b[10:12] = b"\0\0"
    b[10:12] = internet_checksum(bytes(b[:20])).to_bytes(2, "big")
    return bytes(b)


def test_defaults_and_limits() -> None:
    r = Reassembler()
    assert (r.timeout_us, r.max_datagrams, r.max_fragments, r.pending) == (30 * SEC, 64, 128, 0)
    assert r.next_deadline() is None
    assert r.stats() == dict.fromkeys(
        [
            "fragments_in",
            "reassembled",
            "timeouts",
            "overlaps",
            "too_big",
            "too_many_fragments",
            "evicted",
            "malformed",
            "duplicates",
            "discarded",
        ],
        0,
    )
    custom = Reassembler(timeout_us=5, max_datagrams=2, max_fragments=3)
    assert (custom.timeout_us, custom.max_datagrams, custom.max_fragments) == (5, 2, 3)
    with pytest.raises(ConfigError, match="timeout must be above 0"):
        Reassembler(timeout_us=0)
    with pytest.raises(ConfigError, match="max_datagrams must be at least 1"):
        Reassembler(max_datagrams=0)
    with pytest.raises(ConfigError, match="max_fragments 1 is below 2"):
        Reassembler(max_fragments=1)
    with pytest.raises(OverflowError):
        Reassembler(max_datagrams=-1)
    with pytest.raises(LocalProtocolError, match="now must be >= 0"):
        r.handle(-1, datagram())
    with pytest.raises(LocalProtocolError, match="now must be >= 0"):
        r.handle_timeout(-1)


def test_whole_packets_pass_as_the_same_object() -> None:
    r = Reassembler()
    for p in (datagram(), b"\x60" + bytes(39), b""):
        out = r.handle(0, p)
        assert (out.kind, out.reason) == ("pass", None)
        assert out.packet is p
    bad = b"\x45junk"
    out = r.handle(0, bad)
    assert out.kind == "malformed"
    assert out.packet is bad
    assert out.reason == "5 bytes is shorter than the 20-byte IPv4 header"
    assert r.stats()["malformed"] == 1
    assert r.stats()["fragments_in"] == 0
    assert repr(out) == (
        'ReassemblyOutcome(kind="malformed", packet_len=5, '
        'reason="5 bytes is shorter than the 20-byte IPv4 header")'
    )


@pytest.mark.parametrize("order", ["forward", "reverse", "middle-first"])
def test_fragments_give_back_the_original(order: str) -> None:
    p = datagram(1400)
    frags = fragment_ipv4(p, 576)
    assert len(frags) == 3
    if order == "reverse":
        frags.reverse()
    elif order == "middle-first":
        frags = [frags[1], frags[2], frags[0]]
    r = Reassembler()
    outs = [r.handle(10, f) for f in frags]
    assert [o.kind for o in outs] == ["held", "held", "reassembled"]
    assert [o.packet for o in outs[:2]] == [None, None]
    assert outs[2].packet == p
    assert r.pending == 0
    s = r.stats()
    assert (s["fragments_in"], s["reassembled"], s["duplicates"]) == (3, 1, 0)
    assert repr(r) == "Reassembler(pending=0, fragments_in=3, reassembled=1)"


def test_refragmented_and_duplicated_pieces() -> None:
    p = datagram(3000, ident=9)
    first = fragment_ipv4(p, 1500)
    pieces = [first[0], *fragment_ipv4(first[1], 300), *fragment_ipv4(first[2], 600)]
    pieces.insert(2, pieces[1])  # a duplicate
    r = Reassembler()
    kinds = [r.handle(0, f).kind for f in pieces[:-1]]
    assert set(kinds) == {"held"}
    out = r.handle(0, pieces[-1])
    assert (out.kind, out.packet) == ("reassembled", p)
    assert r.stats()["duplicates"] == 1


def test_overlap_with_other_bytes_drops_the_datagram() -> None:
    p = datagram(1400, ident=3)
    a = fragment_ipv4(p, 576)
    b = fragment_ipv4(p, 1000)
    evil = bytearray(b[0])
    evil[20 + 100] ^= 0xFF  # same header; data byte 100, which a[0] also carries, changed
    r = Reassembler()
    assert r.handle(0, a[0]).kind == "held"
    out = r.handle(SEC, bytes(evil))
    assert (out.kind, out.reason, out.packet) == ("dropped", "overlap", None)
    assert r.pending == 0
    # the rest of that datagram is discarded until its deadline (first fragment + 30 s)
    out = r.handle(2 * SEC, a[1])
    assert (out.kind, out.reason) == ("dropped", "datagram-dropped")
    assert r.next_deadline() == 30 * SEC
    s = r.stats()
    assert (s["overlaps"], s["discarded"], s["fragments_in"]) == (1, 1, 3)
    r.handle_timeout(30 * SEC)
    assert r.next_deadline() is None
    assert r.stats()["timeouts"] == 0  # a dropped datagram does not time out again
    outs = [r.handle(31 * SEC, f) for f in a]
    assert outs[-1].packet == p


def test_identical_overlaps_are_fine() -> None:
    p = datagram(1400, ident=4)
    a, b = fragment_ipv4(p, 576), fragment_ipv4(p, 1000)
    r = Reassembler()
    assert [r.handle(0, f).kind for f in (a[0], b[0], a[2])] == ["held", "held", "held"]
    # b[0] covered 0..976: a[1] (552..1104) overlaps it with the same bytes and completes
    out = r.handle(0, a[1])
    assert (out.kind, out.packet) == ("reassembled", p)
    assert r.stats()["overlaps"] == 0


def test_bad_length_too_big_and_too_many() -> None:
    frags = fragment_ipv4(datagram(1400, ident=5), 576)
    r = Reassembler(max_fragments=2)
    out = r.handle(0, patched(frags[0], cut=3))  # MF set, 549 data bytes
    assert (out.kind, out.reason) == ("dropped", "bad-length")
    assert r.stats()["malformed"] == 1
    assert r.pending == 0  # only the fragment was dropped
    # offset 8189 x 8 + 28 bytes + 20 > 65535
    big = patched(datagram(20, ident=6), offset=8189, mf=False)
    out = r.handle(0, big)
    assert (out.kind, out.reason) == ("dropped", "too-big")
    assert r.stats()["too_big"] == 1
    kinds = [r.handle(0, f).reason for f in frags]
    assert kinds == [None, None, "too-many-fragments"]
    assert r.stats()["too_many_fragments"] == 1


def test_timeout_and_eviction() -> None:
    r = Reassembler(timeout_us=5 * SEC, max_datagrams=2)
    firsts = [fragment_ipv4(datagram(1400, ident=i), 576)[0] for i in range(3)]
    assert r.handle(1, firsts[0]).kind == "held"
    assert r.handle(2, firsts[1]).kind == "held"
    assert r.next_deadline() == 5 * SEC + 1
    assert r.handle(3, firsts[2]).kind == "held"  # ident 0 makes room
    assert (r.pending, r.stats()["evicted"]) == (2, 1)
    assert r.next_deadline() == 5 * SEC + 2
    r.handle_timeout(5 * SEC + 1)  # early: nothing
    assert r.pending == 2
    r.handle_timeout(5 * SEC + 2)
    assert (r.pending, r.stats()["timeouts"]) == (1, 1)
    # handle() expires what is due before it looks at the packet
    out = r.handle(5 * SEC + 3, datagram())
    assert out.kind == "pass"
    assert (r.pending, r.stats()["timeouts"]) == (0, 2)


def test_reassembled_header() -> None:
    p = datagram(3000, ident=0xBEEF, df=True)
    frags = fragment_ipv4(p, 1280)
    r = Reassembler()
    out = [r.handle(0, f) for f in frags][-1]
    assert out.packet is not None
    h = ipv4_inspect(out.packet)
    assert h is not None
    assert (h.total_len, h.df, h.mf, h.frag_offset, h.ident) == (3028, True, False, 0, 0xBEEF)
