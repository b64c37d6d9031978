"""The cheap paths of the login exchange agree with the reference implementations.

``tunnelswarm.http.client`` formats request heads itself and parses ordinary responses
itself (falling back to h11 for anything else); ``tunnelswarm.http.auth`` parses ordinary
documents with the C XML parser (falling back to defusedxml with a span-recording
target). These tests hold each fast path to its reference: the same bytes, the same
parse, the same ``<opaque>`` spans, and a fallback wherever the reference must judge.
"""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET
from typing import Any

import h11
import pytest
from defusedxml.ElementTree import DefusedXMLParser

from tunnelswarm.http import auth
from tunnelswarm.http.client import _encode_request, _Fallback, _parse_head

SEED = 20261130

REQUESTS: list[tuple[str, str, list[tuple[str, str]]]] = [
    (
        "POST",
        "/",
        [
            ("Host", "vpn.example.com"),
            ("User-Agent", "Open AnyConnect VPN Agent v9.01-3"),
            ("Cookie", "webvpnlogin=1"),
            ("Accept", "*/*"),
            ("Accept-Encoding", "identity"),
            ("X-Transcend-Version", "1"),
            ("X-Aggregate-Auth", "1"),
            ("X-Pad", "0000000000"),
            ("Content-Type", "application/xml; charset=utf-8"),
            ("Content-Length", "312"),
        ],
    ),
    (
        "CONNECT",
        "/CSCOSSLC/tunnel",
        [
            ("User-Agent", "AnyConnect Windows 4.10.07061"),  # Host not first: h11 moves it
            ("Host", "[2001:db8::1]:8443"),
            ("Cookie", "webvpn=ABCDEF@12345@abcd"),
            ("X-CSTP-Version", "1"),
            ("X-CSTP-Hostname", "tunnelswarm-7"),
            ("X-CSTP-Base-MTU", "1500"),
            ("X-DTLS-Master-Secret", "00" * 48),
            ("X-DTLS12-CipherSuite", "ECDHE-RSA-AES256-GCM-SHA384:AES128-SHA"),
        ],
    ),
    ("GET", "/+webvpn+/index.html?a=b&c=%20", [("Host", "h"), ("x-lower", "v  w")]),
]


def _h11_bytes(method: str, target: str, headers: list[tuple[str, str]]) -> bytes:
    conn = h11.Connection(h11.CLIENT)
    return conn.send(h11.Request(method=method, target=target, headers=headers))


@pytest.mark.parametrize(("method", "target", "headers"), REQUESTS)
def test_request_head_is_byte_for_byte_h11s(
    method: str, target: str, headers: list[tuple[str, str]]
) -> None:
    assert _encode_request(method, target, headers) == _h11_bytes(method, target, headers)


@pytest.mark.parametrize(
    "headers",
    [
        [("Host", "a"), ("Bad Name", "v")],
        [("Host", "a"), ("X", "line\r\nbreak")],
        [("Host", "a"), ("X", " leading space")],
    ],
)
def test_request_h11_refuses_is_refused_too(headers: list[tuple[str, str]]) -> None:
    from tunnelswarm.errors import HttpProtocolError

    with pytest.raises(h11.LocalProtocolError):
        _h11_bytes("GET", "/", headers)
    with pytest.raises(HttpProtocolError, match="cannot send HTTP request"):
        _encode_request("GET", "/", headers)


@pytest.mark.parametrize(
    "headers",
    [
        [("X", "no host")],
        [("Host", "a"), ("Host", "b")],
        [("Host", "a"), ("Content-Length", "1, 1")],
        [("Host", "a"), ("Transfer-Encoding", "chunked")],
    ],
)
def test_request_h11_normalises_is_left_to_h11(headers: list[tuple[str, str]]) -> None:
    with pytest.raises(_Fallback):
        _encode_request("POST", "/", headers)


def _h11_head(raw: bytes) -> tuple[int, str, tuple[tuple[str, str], ...]]:
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(raw)
    event = conn.next_event()
    assert isinstance(event, h11.Response)
    headers = tuple(
        (n.decode("latin-1"), v.decode("latin-1")) for n, v in event.headers.raw_items()
    )
    return event.status_code, event.reason.decode("latin-1"), headers


ORDINARY_HEADS = [
    b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 721\r\n"
    b"Cache-Control: no-store\r\nConnection: Keep-Alive\r\nSet-Cookie: webvpnlogin=1; secure",
    b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0",
    b"HTTP/1.1 200 CONNECTED\r\nX-CSTP-Version: 1\r\nX-CSTP-Address: 10.0.0.2\r\n"
    b"X-DTLS-Session-ID: 00FF\r\nX-Empty:\r\nX-Spaces:   padded value \t",
    b"HTTP/1.1 200 \r\nContent-Length: 3",
    b"HTTP/1.1 302\r\nLocation: /+webvpn+/index.html\r\nContent-Length: 0",
    b"HTTP/1.1 200 OK\r\nX-Latin1: caf\xe9\r\nContent-Length: 7",
]


@pytest.mark.parametrize("head", ORDINARY_HEADS)
def test_ordinary_response_head_parses_as_h11_does(head: bytes) -> None:
    status, reason, headers, _length = _parse_head(bytearray(head))
    assert (status, reason, headers) == _h11_head(head + b"\r\n\r\n")


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.0 200 OK\r\nContent-Length: 0",  # keep-alive rules differ
        b"HTTP/1.1 100 Continue",
        b"HTTP/1.1 204 No Content",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1",
        b"HTTP/1.1 200 OK\r\nContent-Length: ten",
        b"HTTP/1.1 200 OK\r\nX: a\r\n folded",
        b"HTTP/1.1 200 OK\r\nno colon here",
        b"GARBAGE",
        b"HTTP/1.1 2OO OK",
    ],
)
def test_unusual_response_head_is_left_to_h11(head: bytes) -> None:
    with pytest.raises(_Fallback):
        _parse_head(bytearray(head))


# ------------------------------------------------------------------------------ XML


def _reference_parse(raw: bytes) -> tuple[ET.Element, dict[ET.Element, tuple[int, int]]]:
    target = auth._SpanTarget(raw)
    parser: Any = DefusedXMLParser(
        target=target, encoding="utf-8", forbid_dtd=True, forbid_entities=True
    )
    target.expat = parser.parser
    parser.feed(raw)
    return parser.close(), target.spans


def _spans_in_order(
    root: ET.Element, spans: dict[ET.Element, tuple[int, int]]
) -> list[tuple[str, tuple[int, int]]]:
    return [(str(e.tag), spans[e]) for e in root.iter() if e in spans]


ASA_FORM = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<config-auth client="vpn" type="auth-request" aggregate-auth-version="2">\n'
    b'<opaque is-for="sg">\n<tunnel-group>ac_users</tunnel-group>\n'
    b"<config-hash>1517719014268</config-hash>\n</opaque>\n"
    b'<auth id="main">\n<title>Login</title>\n<form>\n'
    b'<input type="text" name="username" label="Username:"></input>\n'
    b'<select name="group_list" label="GROUP:"><option selected="true">a</option></select>\n'
    b"</form>\n</auth>\n</config-auth>\n"
)

DOCUMENTS = [
    ASA_FORM,
    b'<config-auth type="complete"><session-token>abc</session-token><opaque/></config-auth>',
    b'<?xml version="1.0"?>\n<config-auth xmlns:x="urn:a" type="auth-request">'
    b'<x:opaque a="&gt;" b=\'"/>\'><b/><opaque/>t</x:opaque><auth id="main"><form/></auth>'
    b'<opaque is-for="x" >\n<q>1</q></opaque ></config-auth>',
    b"<auth id='main'><form method='post' action='/auth'><input type='text' name='username'/>"
    b"</form></auth>",
]


@pytest.mark.parametrize("raw", DOCUMENTS)
def test_fast_xml_parse_matches_defusedxml(raw: bytes) -> None:
    fast = auth._parse_xml_fast(raw)
    assert fast is not None
    root, spans = _reference_parse(raw)
    assert ET.tostring(fast[0]) == ET.tostring(root)
    assert _spans_in_order(*fast) == _spans_in_order(root, spans)


@pytest.mark.parametrize(
    "raw",
    [
        b"<!DOCTYPE x><config-auth/>",
        b"<config-auth><!-- <opaque> --></config-auth>",
        b"<config-auth><![CDATA[<opaque>]]></config-auth>",
        b"<config-auth><?pi <opaque>?></config-auth>",
        b"<config-auth><unclosed></config-auth>",
    ],
)
def test_fast_xml_parse_leaves_the_rest_to_defusedxml(raw: bytes) -> None:
    assert auth._parse_xml_fast(raw) is None


def test_fast_xml_parse_spans_over_random_documents() -> None:
    rng = random.Random(SEED)
    print(f"seed {SEED}")
    names = ["opaque", "a", "b", "x:opaque", "x:c"]
    for _ in range(300):
        parts: list[str] = ['<config-auth xmlns:x="urn:x">']
        _random_element(rng, names, parts, 0)
        parts.append("</config-auth>")
        raw = "".join(parts).encode()
        fast = auth._parse_xml_fast(raw)
        assert fast is not None, raw
        root, spans = _reference_parse(raw)
        assert ET.tostring(fast[0]) == ET.tostring(root), raw
        assert _spans_in_order(*fast) == _spans_in_order(root, spans), raw


def _random_element(rng: random.Random, names: list[str], parts: list[str], depth: int) -> None:
    name = rng.choice(names)
    attrs = "".join(
        f' k{i}="{rng.choice(["", "v", "&gt;", "/>", "a b"])}"' for i in range(rng.randrange(3))
    )
    if depth > 3 or rng.random() < 0.3:
        parts.append(f"<{name}{attrs}{rng.choice(['', ' '])}/>")
        return
    parts.append(f"<{name}{attrs}>")
    for _ in range(rng.randrange(4)):
        if rng.random() < 0.3:
            parts.append(rng.choice(["text", "\n", "&amp;", " "]))
        else:
            _random_element(rng, names, parts, depth + 1)
    parts.append(f"</{name}>")
