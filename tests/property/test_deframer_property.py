"""Property tests of the CSTP deframer through the binding (protocol.md §4.1).

The Rust core has its own proptests; these check the same promises from Python, through
``tunnelswarm._core``: the frames do not depend on how the stream was split, any bytes
at all only ever raise :class:`CstpFramingError`, and ``encode_frame`` round-trips.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tunnelswarm._core import Deframer, encode_frame
from tunnelswarm.errors import CstpFramingError, LocalProtocolError

MAX_SEND_PAYLOAD = 16384 - 8
MAGIC = b"STF\x01"

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

packet_types = st.one_of(
    st.sampled_from([0x00, 0x03, 0x04, 0x05, 0x07, 0x08, 0x09]), st.integers(0, 255)
)
frames_st = st.lists(st.tuples(packet_types, st.binary(max_size=400)), max_size=12)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def feed(chunks: list[bytes], max_payload: int = 16384) -> list[tuple[int, bytes]]:
    d = Deframer(max_payload)
    out: list[tuple[int, bytes]] = []
    for c in chunks:
        d.push(c)
        out += d.frames()
    d.finish()
    assert d.buffered == 0
    return out


@SETTINGS
@given(frames=frames_st, cuts=st.lists(st.integers(min_value=0), max_size=30))
def test_same_frames_however_split(frames: list[tuple[int, bytes]], cuts: list[int]) -> None:
    stream = b"".join(encode_frame(t, p) for t, p in frames)
    assert feed(split(stream, cuts)) == frames
    assert feed([stream]) == frames


@SETTINGS
@given(frames=st.lists(st.tuples(packet_types, st.binary(max_size=40)), max_size=6))
def test_byte_by_byte(frames: list[tuple[int, bytes]]) -> None:
    stream = b"".join(encode_frame(t, p) for t, p in frames)
    assert feed([stream[i : i + 1] for i in range(len(stream))]) == frames


@SETTINGS
@given(ptype=packet_types, payload=st.binary(max_size=2000))
def test_encode_deframe_round_trip(ptype: int, payload: bytes) -> None:
    frame = encode_frame(ptype, payload)
    assert frame[:4] == MAGIC
    assert int.from_bytes(frame[4:6], "big") == len(payload)
    assert frame[6] == ptype
    assert frame[7] == 0
    assert frame[8:] == payload
    assert feed([frame]) == [(ptype, payload)]


def test_round_trip_at_the_size_limit() -> None:
    payload = bytes(range(256)) * (MAX_SEND_PAYLOAD // 256) + b"\x01" * (MAX_SEND_PAYLOAD % 256)
    assert len(payload) == MAX_SEND_PAYLOAD
    frame = encode_frame(0x00, payload)
    assert len(frame) == 16384
    assert feed([frame[:5000], frame[5000:]]) == [(0, payload)]


def test_encode_refuses_a_payload_over_one_record() -> None:
    with pytest.raises(LocalProtocolError) as info:
        encode_frame(0x00, bytes(MAX_SEND_PAYLOAD + 1))
    assert str(info.value.reason) == str(info.value)
    assert "\n" not in str(info.value)


def _drive(
    chunks: list[bytes], max_payload: int
) -> tuple[list[tuple[int, bytes]], Exception | None]:
    d = Deframer(max_payload)
    out: list[tuple[int, bytes]] = []
    try:
        for c in chunks:
            d.push(c)
            out += d.frames()
        d.finish()
    except CstpFramingError as e:
        err: Exception | None = e
    else:
        err = None
    if err is not None:
        assert str(err)
        assert "\n" not in str(err)
    return out, err


@SETTINGS
@given(
    data=st.binary(max_size=3000),
    cuts=st.lists(st.integers(min_value=0), max_size=10),
    max_payload=st.sampled_from([0, 1, 100, 512, 16384, 65535]),
)
def test_arbitrary_bytes_only_raise_framing_errors(
    data: bytes, cuts: list[int], max_payload: int
) -> None:
    # anything other than CstpFramingError propagates and fails the test
    _drive(split(data, cuts), max_payload)


@SETTINGS
@given(
    frames=frames_st,
    garbage=st.binary(min_size=1, max_size=200),
    cuts=st.lists(st.integers(min_value=0), max_size=10),
)
def test_good_frames_then_garbage(
    frames: list[tuple[int, bytes]], garbage: bytes, cuts: list[int]
) -> None:
    """Frames before the damage come out in order; the damage is a CstpFramingError.

    (``Deframer.frames()`` returns nothing when it raises, so frames decoded in the same
    call as the damage are not delivered: only a prefix is guaranteed.)
    """
    good = b"".join(encode_frame(t, p) for t, p in frames)
    out, err = _drive(split(good + garbage, cuts), 16384)
    n = min(len(out), len(frames))
    assert out[:n] == frames[:n]
    if err is None:
        assert out[: len(frames)] == frames
    # pushed separately, every good frame is delivered before the damage is seen
    d = Deframer()
    d.push(good)
    assert d.frames() == frames
    if not garbage.startswith(MAGIC[: len(garbage)]) or len(garbage) < 4:
        # either refused at once or cut short at EOF
        assert err is not None


@SETTINGS
@given(data=st.binary(min_size=1, max_size=64), first=st.integers(0, 255))
def test_errors_are_sticky(data: bytes, first: int) -> None:
    assume(first != MAGIC[0])
    d = Deframer()
    d.push(bytes([first]) + data)
    for call in (d.frames, d.finish, lambda: d.push(encode_frame(7, b""))):
        try:
            call()
        except CstpFramingError:
            continue
        raise AssertionError("a broken CSTP stream must stay broken")


@SETTINGS
@given(payload_len=st.integers(0, 65535), limit=st.integers(0, 20000))
def test_length_limit(payload_len: int, limit: int) -> None:
    header = MAGIC + payload_len.to_bytes(2, "big") + b"\x00\x00"
    d = Deframer(limit)
    d.push(header)
    if payload_len > limit:
        with pytest.raises(
            CstpFramingError, match=f"{payload_len}-byte payload, limit is {limit}$"
        ):
            d.frames()
    else:
        assert d.frames() == ([(0, b"")] if payload_len == 0 else [])
