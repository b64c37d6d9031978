"""The DTLS vectors of protocol.md §10.4-§10.6 (``tests/vectors/dtls.json``) from Python.

The same JSON is checked from Rust by ``rust/proto/tests/dtls_vectors.rs``; here every
value goes through the binding's known-answer functions (``_core.dtls_*``): cipher-name
resolution, PRF, key block and its slices, Finished ``verify_data``, record MACs, AADs,
sealing with the vector IV, opening, and whole core-to-core handshakes with the fixed
randoms injected, compared byte for byte. ``test_every_value_is_checked`` keeps the list
of checked values in step with the file.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any, TypedDict

import pytest

from tunnelswarm import _core
from tunnelswarm.errors import ConfigError, RemoteProtocolError

DOC: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parent.parent / "vectors" / "dtls.json").read_text("utf-8")
)
INPUTS = DOC["inputs"]
V09 = DOC["dtls09_resumption_aes128_sha"]
V12 = DOC["dtls12_resumption_aes256_gcm_sha384"]
PSK = DOC["psk_exporter"]

MS = bytes.fromhex(INPUTS["master_secret"])
CR = bytes.fromhex(INPUTS["client_random"])
SR = bytes.fromhex(INPUTS["server_random"])
SID = bytes.fromhex(INPUTS["session_id"])
CBC_IV = bytes.fromhex(INPUTS["cbc_iv"])

CT_HANDSHAKE, CT_APPLICATION_DATA = 22, 23
KEEPALIVE, DPD_REQ = 0x07, 0x03
HEADER_LEN, HS_HEADER_LEN = 13, 12


def h(v: dict[str, Any], key: str) -> bytes:
    return bytes.fromhex(v[key])


def records(datagram: bytes) -> list[bytes]:
    """Split a datagram into whole records (13-byte header + fragment)."""
    out = []
    while datagram:
        (length,) = struct.unpack_from(">H", datagram, 11)
        out.append(datagram[: HEADER_LEN + length])
        datagram = datagram[HEADER_LEN + length :]
    return out


def finished(message_seq: int, verify_data: bytes) -> bytes:
    """An unfragmented Finished handshake message (12-byte DTLS header + body)."""
    n = len(verify_data).to_bytes(3, "big")
    return bytes([20]) + n + struct.pack(">H", message_seq) + bytes(3) + n + verify_data


class Keys(TypedDict):
    mac_key: bytes
    key: bytes
    iv: bytes


def keys(suite_id: int, version: str, who: str) -> Keys:
    """``mac_key``/``key``/``iv`` of one direction, from the vector inputs."""
    k = _core.dtls_session_keys(suite_id, version, MS, CR, SR)
    return Keys(mac_key=k[f"{who}_mac_key"], key=k[f"{who}_key"], iv=k[f"{who}_iv"])


# Every leaf of dtls.json: a value added to the file fails test_every_value_is_checked
# until a test here checks it.
CHECKED = {
    "_comment",
    *(
        f"inputs/{k}"
        for k in ("master_secret", "client_random", "server_random", "session_id", "cbc_iv")
    ),
    *(
        f"dtls09_resumption_aes128_sha/{k}"
        for k in (
            *("cipher_name", "header", "suite_id", "version", "key_block"),
            *("client_mac_key", "server_mac_key", "client_key", "server_key"),
            *("client_hello_record", "server_hello_record", "server_ccs_record"),
            *("server_verify_data", "client_verify_data", "server_finished_plaintext"),
            *("server_finished_mac", "server_finished_record", "client_ccs_record"),
            *("client_finished_record", "client_finished_mac", "client_keepalive_mac"),
            *("client_keepalive_padded_plaintext", "client_keepalive_record"),
            "client_dpd_record",
        )
    ),
    *(
        f"dtls12_resumption_aes256_gcm_sha384/{k}"
        for k in (
            *("cipher_name", "header", "also_named/header", "also_named/cipher_name"),
            *("suite_id", "version", "key_block", "client_key", "server_key"),
            *("client_salt", "server_salt", "client_hello_message", "server_hello_message"),
            *("server_verify_data", "client_verify_data", "server_finished_record"),
            *("client_dpd_record", "client_dpd_ciphertext", "client_dpd_tag", "client_dpd_aad"),
        )
    ),
    *(f"psk_exporter/{k}" for k in ("label", "length", "sha256", "sha384")),
}


def _leaves(node: Any, prefix: str = "") -> set[str]:
    if isinstance(node, dict):
        return set().union(*(_leaves(v, f"{prefix}{k}/") for k, v in node.items()))
    return {prefix.rstrip("/")}


def test_every_value_is_checked() -> None:
    assert _leaves(DOC) == CHECKED


# --- §10.4: DTLS 0.9 resumption, AES128-SHA -------------------------------------------


def test_dtls09_cipher_name_and_key_schedule() -> None:
    suite_id, version, prf = _core.dtls_resolve_cipher(V09["header"], V09["cipher_name"])
    assert (f"{suite_id:04x}", version, prf) == (V09["suite_id"], V09["version"], "tls10")
    kb = _core.dtls_key_block(prf, MS, CR, SR, 104)
    assert kb == h(V09, "key_block")
    assert _core.dtls_prf(prf, MS, b"key expansion", SR + CR, 104) == kb
    k = _core.dtls_session_keys(suite_id, version, MS, CR, SR)
    for name in ("client_mac_key", "server_mac_key", "client_key", "server_key"):
        assert k[name] == h(V09, name), name
    assert k["client_iv"] == k["server_iv"] == b""  # CBC IVs are explicit


def test_dtls09_verify_data() -> None:
    # DTLS 0.9 hashes message bodies only, without the 12-byte headers (§5.2.4)
    skip = HEADER_LEN + HS_HEADER_LEN
    t = h(V09, "client_hello_record")[skip:] + h(V09, "server_hello_record")[skip:]
    svd = _core.dtls_verify_data("tls10", MS, "server", t)
    assert svd == h(V09, "server_verify_data")
    cvd = _core.dtls_verify_data("tls10", MS, "client", t + svd)
    assert cvd == h(V09, "client_verify_data")
    assert finished(2, svd) == h(V09, "server_finished_plaintext")


def test_dtls09_record_macs_and_padding() -> None:
    srv, cli = keys(0x002F, "DTLS0.9", "server"), keys(0x002F, "DTLS0.9", "client")

    def mac(k: Keys, content_type: int, seq: int, pt: bytes) -> str:
        return _core.dtls_record_mac(
            0x002F,
            "DTLS0.9",
            mac_key=k["mac_key"],
            key=k["key"],
            content_type=content_type,
            epoch=1,
            seq=seq,
            plaintext=pt,
        ).hex()

    cfin = finished(2, h(V09, "client_verify_data"))
    assert (
        mac(srv, CT_HANDSHAKE, 0, h(V09, "server_finished_plaintext")) == V09["server_finished_mac"]
    )
    assert mac(cli, CT_HANDSHAKE, 0, cfin) == V09["client_finished_mac"]
    assert mac(cli, CT_APPLICATION_DATA, 1, bytes([KEEPALIVE])) == V09["client_keepalive_mac"]
    padded = _core.dtls_open_record(
        0x002F, **cli, record=h(V09, "client_keepalive_record"), raw=True
    )
    assert padded == h(V09, "client_keepalive_padded_plaintext")
    # pt ‖ MAC ‖ 11 bytes of 0x0a (minimal padding to 32 bytes)
    assert padded == bytes([KEEPALIVE]) + h(V09, "client_keepalive_mac") + bytes([10] * 11)


@pytest.mark.parametrize(
    ("record", "who", "content_type", "seq", "plaintext"),
    [
        ("server_finished_record", "server", CT_HANDSHAKE, 0, None),
        ("client_finished_record", "client", CT_HANDSHAKE, 0, None),
        ("client_keepalive_record", "client", CT_APPLICATION_DATA, 1, bytes([KEEPALIVE])),
        ("client_dpd_record", "client", CT_APPLICATION_DATA, 2, bytes([DPD_REQ])),
    ],
)
def test_dtls09_records_seal_and_open(
    record: str, who: str, content_type: int, seq: int, plaintext: bytes | None
) -> None:
    if plaintext is None:
        plaintext = finished(2, h(V09, f"{who}_verify_data"))
    if record == "server_finished_record":
        assert plaintext == h(V09, "server_finished_plaintext")
    k = keys(0x002F, "DTLS0.9", who)
    sealed = _core.dtls_seal_record(
        0x002F,
        "DTLS0.9",
        **k,
        content_type=content_type,
        epoch=1,
        seq=seq,
        plaintext=plaintext,
        cbc_iv=CBC_IV,
    )
    assert sealed.hex() == V09[record]
    assert _core.dtls_open_record(0x002F, **k, record=h(V09, record)) == plaintext
    # the other direction's keys, or one flipped bit, are refused
    other = keys(0x002F, "DTLS0.9", "client" if who == "server" else "server")
    with pytest.raises(RemoteProtocolError):
        _core.dtls_open_record(0x002F, **other, record=h(V09, record))
    bad = bytearray(h(V09, record))
    bad[-1] ^= 0x01
    with pytest.raises(RemoteProtocolError):
        _core.dtls_open_record(0x002F, **k, record=bytes(bad))


def test_dtls09_whole_handshake_byte_for_byte() -> None:
    wire = _core.dtls_scripted_handshake(
        mode="legacy",
        cipher=V09["cipher_name"],
        server_mode="legacy",
        server_cipher=V09["cipher_name"],
        master_secret=MS,
        session_id=SID,
        client_random=CR,
        server_random=SR,
        cbc_iv=CBC_IV,
        client_control=[KEEPALIVE, DPD_REQ],
    )
    assert [(who, records(d)) for who, d in wire] == [
        ("client", [h(V09, "client_hello_record")]),
        (
            "server",
            [
                h(V09, "server_hello_record"),
                h(V09, "server_ccs_record"),
                h(V09, "server_finished_record"),
            ],
        ),
        ("client", [h(V09, "client_ccs_record"), h(V09, "client_finished_record")]),
        ("client", [h(V09, "client_keepalive_record")]),
        ("client", [h(V09, "client_dpd_record")]),
    ]


# --- §10.5: DTLS 1.2 resumption, AES256-GCM-SHA384 -------------------------------------


def test_dtls12_cipher_names_and_key_schedule() -> None:
    sel = _core.dtls_resolve_cipher(V12["header"], V12["cipher_name"])
    alias = V12["also_named"]
    assert _core.dtls_resolve_cipher(alias["header"], alias["cipher_name"]) == sel
    suite_id, version, prf = sel
    assert (f"{suite_id:04x}", version, prf) == (V12["suite_id"], V12["version"], "sha384")
    kb = _core.dtls_key_block(prf, MS, CR, SR, 72)
    assert kb == h(V12, "key_block")
    k = _core.dtls_session_keys(suite_id, version, MS, CR, SR)
    assert (k["client_key"], k["server_key"]) == (h(V12, "client_key"), h(V12, "server_key"))
    assert (k["client_iv"], k["server_iv"]) == (h(V12, "client_salt"), h(V12, "server_salt"))
    assert k["client_mac_key"] == k["server_mac_key"] == b""


def test_dtls12_verify_data() -> None:
    # DTLS 1.2 hashes whole messages, 12-byte headers included (§5.3)
    t = h(V12, "client_hello_message") + h(V12, "server_hello_message")
    svd = _core.dtls_verify_data("sha384", MS, "server", t)
    assert svd == h(V12, "server_verify_data")
    cvd = _core.dtls_verify_data("sha384", MS, "client", t + finished(1, svd))
    assert cvd == h(V12, "client_verify_data")


def test_dtls12_gcm_records() -> None:
    srv, cli = keys(0x009D, "DTLS1.2", "server"), keys(0x009D, "DTLS1.2", "client")
    fin = finished(1, h(V12, "server_verify_data"))
    sealed = _core.dtls_seal_record(
        0x009D, "DTLS1.2", **srv, content_type=CT_HANDSHAKE, epoch=1, seq=0, plaintext=fin
    )
    assert sealed == h(V12, "server_finished_record")
    dpd = _core.dtls_seal_record(
        0x009D,
        "DTLS1.2",
        **cli,
        content_type=CT_APPLICATION_DATA,
        epoch=1,
        seq=1,
        plaintext=bytes([DPD_REQ]),
    )
    assert dpd == h(V12, "client_dpd_record")
    # fragment = explicit nonce (epoch ‖ seq) ‖ ciphertext ‖ tag
    assert dpd[HEADER_LEN : HEADER_LEN + 8] == dpd[3:11]
    assert dpd[HEADER_LEN + 8 : HEADER_LEN + 9] == h(V12, "client_dpd_ciphertext")
    assert dpd[HEADER_LEN + 9 :] == h(V12, "client_dpd_tag")
    aad = _core.dtls_additional_data(CT_APPLICATION_DATA, "DTLS1.2", 1, 1, 1)
    assert aad == h(V12, "client_dpd_aad")
    assert _core.dtls_open_record(0x009D, **cli, record=dpd) == bytes([DPD_REQ])
    assert _core.dtls_open_record(0x009D, **srv, record=sealed) == fin
    with pytest.raises(RemoteProtocolError):
        _core.dtls_open_record(0x009D, **srv, record=dpd)
    with pytest.raises(ConfigError):
        _core.dtls_open_record(0x009D, **cli, record=dpd, raw=True)


def test_dtls12_whole_handshake_byte_for_byte() -> None:
    wire = _core.dtls_scripted_handshake(
        mode="dtls12",
        cipher=V12["cipher_name"],
        server_mode="legacy",
        server_cipher=V12["also_named"]["cipher_name"],
        master_secret=MS,
        session_id=SID,
        client_random=CR,
        server_random=SR,
        hello_style="bare",  # suites [009d], no extensions: the §10.5 transcript
        client_control=[DPD_REQ],
    )
    who = [w for w, _ in wire]
    assert who == ["client", "server", "client", "client"]
    (ch,) = records(wire[0][1])
    assert ch[HEADER_LEN:] == h(V12, "client_hello_message")
    sh, _ccs, sfin = records(wire[1][1])
    assert sh[HEADER_LEN:] == h(V12, "server_hello_message")
    assert sfin == h(V12, "server_finished_record")
    assert wire[3][1] == h(V12, "client_dpd_record")


# --- §10.6: the PSK exporter ------------------------------------------------------------


@pytest.mark.parametrize("prf", ["sha256", "sha384"])
def test_psk_exporter(prf: str) -> None:
    # RFC 5705 without context: PRF(master, label, client_random ‖ server_random)
    out = _core.dtls_prf(prf, MS, PSK["label"].encode(), CR + SR, PSK["length"])
    assert out.hex() == PSK[prf]


def test_bad_arguments_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        _core.dtls_prf("md5", MS, b"x", b"", 1)
    with pytest.raises(ConfigError):
        _core.dtls_resolve_cipher("X-DTLS-CipherSuite", "AES128-GCM-SHA256")
    with pytest.raises(ConfigError):
        _core.dtls_session_keys(0x002F, "DTLS1.0", MS, CR, SR)
    with pytest.raises(ConfigError):
        _core.dtls_key_block("tls10", MS, CR[:31], SR, 8)
