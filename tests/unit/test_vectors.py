"""The shared vectors in ``tests/vectors/`` (protocol.md §10.1, §4.1, §6.1, §10.7).

``cstp_frames.json`` is also checked from Rust (``rust/proto/tests/vectors.rs``), so the
binding and the core are held to the same bytes. ``mtu.json`` is Python-only (the MTU
*policy* — TCP_INFO, flags — lives in :mod:`tunnelswarm.client.mtu`); ``record_mtu.json``
(the record-overhead arithmetic of §6.1–§6.3 and §10.7) is checked from Rust and here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tunnelswarm import _core
from tunnelswarm._core import Deframer, encode_frame
from tunnelswarm.client.mtu import TcpInfo, choose_base_mtu, request_mtu
from tunnelswarm.config.params import TunnelParams, parse_tunnel_headers
from tunnelswarm.errors import ConfigError, CstpFramingError

VECTORS = Path(__file__).resolve().parent.parent / "vectors"


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / name).read_text(encoding="utf-8"))
    return data


CSTP = _load("cstp_frames.json")
MTU = _load("mtu.json")


def _ids(vectors: list[dict[str, Any]]) -> list[str]:
    return [v["name"] for v in vectors]


# --- CSTP frames ------------------------------------------------------------------------


def test_frame_vectors_cover_section_10_1() -> None:
    codes = {v["type"] for v in CSTP["frames"]}
    assert {0x00, 0x03, 0x04, 0x05, 0x07, 0x09} <= codes
    kinds = {v["error"]["kind"] for v in CSTP["negative"]}
    assert kinds == {"bad_magic", "bad_byte7", "oversized", "eof_mid_frame"}


@pytest.mark.parametrize("vec", CSTP["frames"], ids=_ids(CSTP["frames"]))
def test_encode_frame_matches_vector(vec: dict[str, Any]) -> None:
    frame = encode_frame(vec["type"], bytes.fromhex(vec["payload"]))
    assert frame.hex() == vec["frame"]


@pytest.mark.parametrize("vec", CSTP["frames"], ids=_ids(CSTP["frames"]))
def test_deframer_decodes_vector(vec: dict[str, Any]) -> None:
    frame = bytes.fromhex(vec["frame"])
    want = [(vec["type"], bytes.fromhex(vec["payload"]))]

    d = Deframer()
    d.push(frame)
    assert d.frames() == want
    assert d.buffered == 0
    d.finish()

    d = Deframer()
    got = []
    for i in range(len(frame)):
        d.push(frame[i : i + 1])
        got += d.frames()
    assert got == want
    d.finish()


def test_all_frame_vectors_back_to_back() -> None:
    stream = b"".join(bytes.fromhex(v["frame"]) for v in CSTP["frames"])
    d = Deframer()
    d.push(stream)
    got = d.frames()
    assert got == [(v["type"], bytes.fromhex(v["payload"])) for v in CSTP["frames"]]
    d.finish()


@pytest.mark.parametrize("vec", CSTP["negative"], ids=_ids(CSTP["negative"]))
def test_negative_vector(vec: dict[str, Any]) -> None:
    d = Deframer(vec["max_payload"])
    d.push(bytes.fromhex(vec["stream"]))
    if vec["at"] == "frames":
        # frames_before good frames are lost with the batch: frames() raises
        with pytest.raises(CstpFramingError) as info:
            d.frames()
    else:
        assert len(d.frames()) == vec["frames_before"]
        with pytest.raises(CstpFramingError) as info:
            d.finish()
    assert str(info.value) == vec["message"]
    assert "\n" not in str(info.value)
    # sticky: a CSTP stream cannot be resynchronised
    with pytest.raises(CstpFramingError, match="^" + re.escape(vec["message"]) + "$"):
        d.push(b"STF\x01")
    with pytest.raises(CstpFramingError):
        d.frames()
    with pytest.raises(CstpFramingError):
        d.finish()


@pytest.mark.parametrize(
    "vec",
    [v for v in CSTP["negative"] if v["at"] == "frames" and v["frames_before"]],
    ids=lambda v: v["name"],
)
def test_good_frames_before_a_bad_header_come_out_first(vec: dict[str, Any]) -> None:
    """Pushed one good frame at a time, the frames before the damage are delivered."""
    stream = bytes.fromhex(vec["stream"])
    d = Deframer(vec["max_payload"])
    got: list[tuple[int, bytes]] = []
    failed = False
    for i in range(len(stream)):
        try:
            d.push(stream[i : i + 1])
            got += d.frames()
        except CstpFramingError:
            failed = True
            break
    assert failed
    assert len(got) == vec["frames_before"]


# --- MTU --------------------------------------------------------------------------------


@pytest.mark.parametrize("vec", MTU["request"], ids=_ids(MTU["request"]))
def test_request_side_mtu(vec: dict[str, Any]) -> None:
    info = None if vec["tcp_info"] is None else TcpInfo(**vec["tcp_info"])
    base = choose_base_mtu(vec["user_base"], info)
    assert base == vec["base"]
    assert request_mtu(base, ipv6=vec["ipv6"], user_mtu=vec["user_mtu"]) == vec["mtu"]


@pytest.mark.parametrize("vec", MTU["tunnel"], ids=_ids(MTU["tunnel"]))
def test_tunnel_mtu_is_max_of_cstp_and_dtls(vec: dict[str, Any]) -> None:
    assert (
        TunnelParams(cstp_mtu=vec["cstp_mtu"], dtls_mtu=vec["dtls_mtu"]).tunnel_mtu
        == (vec["tunnel_mtu"])
    )
    headers = [("X-CSTP-Address", "10.0.0.2"), ("X-CSTP-MTU", str(vec["cstp_mtu"]))]
    if vec["dtls_mtu"] is not None:
        headers.append(("X-DTLS-MTU", str(vec["dtls_mtu"])))
    assert parse_tunnel_headers(headers).tunnel_mtu == vec["tunnel_mtu"]


def test_mtu_vectors_include_the_spec_worked_examples() -> None:
    pairs = {(v["base"], v["mtu"], v["ipv6"]) for v in MTU["request"]}
    assert {(1500, 1390, False), (1500, 1370, True), (1406, 1296, False), (1447, 1337, False)} <= (
        pairs
    )
    assert any(v["base"] == 1280 for v in MTU["request"])
    tunnel = {(v["cstp_mtu"], v["dtls_mtu"], v["tunnel_mtu"]) for v in MTU["tunnel"]}
    assert {(1347, 1418, 1418), (1347, None, 1347)} <= tunnel


# --- record-overhead MTU arithmetic (§6.1-§6.3, §10.7), shared with Rust -------------------

RECORD_MTU = _load("record_mtu.json")


@pytest.mark.parametrize(
    "v", RECORD_MTU["openconnect_request"], ids=_ids(RECORD_MTU["openconnect_request"])
)
def test_record_mtu_openconnect_request(v: dict[str, Any]) -> None:
    assert _core.openconnect_request_mtu(v["base"], ipv6=v["ipv6"]) == v["mtu"]
    assert request_mtu(v["base"], ipv6=v["ipv6"]) == v["mtu"]


@pytest.mark.parametrize(
    "v", RECORD_MTU["dtls_tunnel_exact"], ids=_ids(RECORD_MTU["dtls_tunnel_exact"])
)
def test_record_mtu_dtls_exact(v: dict[str, Any]) -> None:
    assert _core.dtls_tunnel_mtu(v["link"], v["cipher"], ipv6=v["ipv6"]) == v["mtu"]


@pytest.mark.parametrize(
    "v", RECORD_MTU["ocserv_data_mtu"], ids=_ids(RECORD_MTU["ocserv_data_mtu"])
)
def test_record_mtu_ocserv(v: dict[str, Any]) -> None:
    assert _core.ocserv_data_mtu(v["link"], v["cipher"], ipv6=v["ipv6"]) == v["mtu"]


@pytest.mark.parametrize(
    "v", RECORD_MTU["asa_tls_threshold"], ids=_ids(RECORD_MTU["asa_tls_threshold"])
)
def test_record_mtu_asa_tls_threshold(v: dict[str, Any]) -> None:
    assert _core.asa_tls_threshold(v["mss"], v["cipher"]) == v["mtu"]


def test_record_mtu_unknown_cipher_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match='unknown record cipher "rot13"'):
        _core.dtls_tunnel_mtu(1500, "rot13")
