"""Unit tests for tunnelswarm.http.client over a real TLS pair (rustls on both ends).

The client side is the production stack: ``HttpConnection`` → ``TlsStream`` →
``_core.CstpConnection.client``. The server side is a ``_core.CstpConnection.server``
driven by a tiny script that reads the request and writes raw response bytes, so every
malformation is under the test's control. Transport: ``trio.testing.memory_stream_pair``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable

import pytest
import trio
import trio.testing
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tunnelswarm._core import CstpConnection, encode_frame, pin_sha256
from tunnelswarm.drive.stream import TlsStream, now_us
from tunnelswarm.errors import (
    CertificateError,
    ConnectionLost,
    HttpProtocolError,
    RemoteProtocolError,
    TlsError,
    TunnelswarmError,
)
from tunnelswarm.http.client import (
    MAX_BODY_BYTES,
    MAX_HEADER_BYTES,
    CookieJar,
    HttpConnection,
    HttpResponse,
)

HOST = "vpn.example.com"
TIMEOUT = 10
CHUNK = 16 * 1024  # one TLS record of plaintext per write

CA = trustme.CA()
LEAF = CA.issue_cert(HOST)
CHAIN_PEM = b"".join(b.bytes() for b in LEAF.cert_chain_pems)
KEY_PEM = LEAF.private_key_pem.bytes()
SERVER_PIN = pin_sha256(
    x509.load_pem_x509_certificate(LEAF.cert_chain_pems[0].bytes()).public_bytes(Encoding.DER)
)
OTHER_CA = trustme.CA()


def _client_conn(*, ca_pem: bytes | None = None, pins: tuple[str, ...] = ()) -> CstpConnection:
    return CstpConnection.client(HOST, wall_time=int(time.time()), ca_pem=ca_pem, pins=list(pins))


def _server_conn() -> CstpConnection:
    return CstpConnection.server(CHAIN_PEM, KEY_PEM, wall_time=int(time.time()))


class Server:
    """The server end: a TlsStream whose bytes the test scripts by hand."""

    def __init__(self, stream: TlsStream, raw: trio.abc.Stream) -> None:
        self.tls = stream
        self.raw = raw
        self.requests: list[bytes] = []

    async def read_request(self) -> bytes:
        """One request (head + Content-Length body), as raw bytes."""
        buf = b""
        while b"\r\n\r\n" not in buf:
            assert await self.tls.receive(), "client hung up"
            buf += self.tls.conn.read_http()
        head, _, body = buf.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            assert await self.tls.receive()
            body += self.tls.conn.read_http()
        req = head + b"\r\n\r\n" + body
        self.requests.append(req)
        return req

    async def write(self, data: bytes) -> None:
        for i in range(0, len(data), CHUNK):
            self.tls.conn.write_http(data[i : i + CHUNK])
            await self.tls.flush()

    async def close_notify_and_hang_up(self) -> None:
        self.tls.conn.close()
        await self.tls.flush()
        await self.raw.aclose()

    async def hang_up(self) -> None:
        """TCP close without close_notify."""
        await self.raw.aclose()

    async def send_alert(self, after: bytes = b"") -> None:
        """Make the server's TLS fail (a corrupt record) so it sends a fatal alert.

        ``after``: plaintext queued just before, so that it and the alert leave in one
        write and reach the client in one read.
        """
        if after:
            self.tls.conn.write_http(after)
        with pytest.raises(TlsError):
            self.tls.conn.handle_input(now_us(), b"\x17\x03\x03\x00\x20" + bytes(32))
        await self.tls.flush()


async def _handshake_quietly(stream: TlsStream) -> None:
    with contextlib.suppress(TunnelswarmError):
        await stream.handshake()


async def tls_pair(
    *, ca_pem: bytes | None = CA.cert_pem.bytes(), pins: tuple[str, ...] = ()
) -> tuple[TlsStream, Server]:
    client_raw, server_raw = trio.testing.memory_stream_pair()
    client = TlsStream(client_raw, _client_conn(ca_pem=ca_pem, pins=pins))
    server = TlsStream(server_raw, _server_conn())
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_handshake_quietly, server)
        await client.handshake()
    return client, Server(server, server_raw)


Script = Callable[[Server], Awaitable[None]]


async def exchange(
    script: Script,
    method: str = "GET",
    target: str = "/",
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
) -> tuple[HttpResponse, Server, HttpConnection]:
    """One request through HttpConnection while `script` plays the server."""
    client, server = await tls_pair()
    http = HttpConnection(client)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(script, server)
        resp = await http.request(method, target, headers or [("Host", HOST)], body)
    return resp, server, http


async def expect_error(
    exc: type[Exception] | tuple[type[Exception], ...], script: Script, method: str = "GET"
) -> Exception:
    client, server = await tls_pair()
    http = HttpConnection(client)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(script, server)
        with pytest.raises(exc) as info:
            await http.request(method, "/", [("Host", HOST)])
    err = info.value
    assert isinstance(err, TunnelswarmError)
    assert str(err)
    assert "\n" not in str(err)
    assert not http.usable
    with pytest.raises(HttpProtocolError, match="no longer usable"):
        await http.request("GET", "/", [("Host", HOST)])
    return err


# --- normal responses --------------------------------------------------------------------


async def test_200_with_content_length() -> None:
    async def script(s: Server) -> None:
        await s.read_request()
        await s.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n"
            b"Set-Cookie: webvpncontext=abc; path=/\r\nSet-Cookie: other=1\r\n"
            b"Content-Length: 11\r\n\r\nhello world"
        )

    with trio.fail_after(TIMEOUT):
        resp, server, http = await exchange(
            script, "POST", "/auth", [("Host", HOST), ("X-Aggregate-Auth", "1")], b"<xml/>"
        )
    assert (resp.status, resp.reason, resp.body) == (200, "OK", b"hello world")
    assert resp.header("content-type") == "text/xml"
    assert resp.header_all("SET-COOKIE") == ["webvpncontext=abc; path=/", "other=1"]
    assert resp.header("X-Missing") is None
    assert resp.headers[0] == ("Content-Type", "text/xml")  # original spelling and order
    assert resp.trailing == b""
    assert not resp.closed
    assert http.usable
    req = server.requests[0]
    assert req.startswith(b"POST /auth HTTP/1.1\r\n")
    assert b"\r\nX-Aggregate-Auth: 1\r\n" in req
    assert b"\r\nContent-Length: 6\r\n" in req
    assert req.endswith(b"\r\n\r\n<xml/>")


async def test_200_with_chunked_body() -> None:
    async def script(s: Server) -> None:
        await s.read_request()
        await s.write(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n1;ext=1\r\n \r\n"
            b"5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n"
        )

    with trio.fail_after(TIMEOUT):
        resp, _, http = await exchange(script)
    assert resp.status == 200
    assert resp.body == b"hello world"
    assert not resp.closed
    assert http.usable


async def test_keep_alive_two_requests_on_one_connection() -> None:
    async def script(s: Server) -> None:
        for i in range(2):
            await s.read_request()
            await s.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n" + str(i).encode())

    with trio.fail_after(TIMEOUT):
        client, server = await tls_pair()
        http = HttpConnection(client)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(script, server)
            first = await http.request("GET", "/", [("Host", HOST)])
            second = await http.request("POST", "/auth", [("Host", HOST)], b"x=1")
    assert (first.body, second.body) == (b"0", b"1")
    assert server.requests[1].startswith(b"POST /auth HTTP/1.1\r\n")
    assert b"Content-Length: 3" in server.requests[1]


async def test_informational_response_is_skipped() -> None:
    async def script(s: Server) -> None:
        await s.read_request()
        await s.write(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        )

    with trio.fail_after(TIMEOUT):
        resp, _, _ = await exchange(script)
    assert (resp.status, resp.body) == (200, b"ok")


async def test_connection_close_marks_the_response_closed() -> None:
    async def script(s: Server) -> None:
        await s.read_request()
        await s.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
        await s.close_notify_and_hang_up()

    with trio.fail_after(TIMEOUT):
        resp, _, http = await exchange(script)
    assert (resp.status, resp.body) == (200, b"ok")
    assert resp.closed
    assert not http.usable


async def test_body_delimited_by_close_notify() -> None:
    async def script(s: Server) -> None:
        await s.read_request()
        await s.write(b"HTTP/1.1 200 OK\r\n\r\n<config-auth/>")
        await s.close_notify_and_hang_up()

    with trio.fail_after(TIMEOUT):
        resp, _, http = await exchange(script)
    assert (resp.status, resp.body) == (200, b"<config-auth/>")
    assert resp.closed
    assert not http.usable


# --- CONNECT -------------------------------------------------------------------------------


async def test_connect_200_keeps_trailing_cstp_bytes() -> None:
    first_frames = encode_frame(0x07, b"") + encode_frame(0x03, b"\x01\x02")

    async def script(s: Server) -> None:
        await s.read_request()
        # head and the first CSTP frames in one TLS record
        await s.write(
            b"HTTP/1.1 200 CONNECTED\r\nX-CSTP-Version: 1\r\nX-CSTP-Address: 192.168.100.23\r\n"
            b"X-CSTP-MTU: 1406\r\n\r\n" + first_frames
        )

    with trio.fail_after(TIMEOUT):
        resp, server, http = await exchange(
            script, "CONNECT", "/CSCOSSLC/tunnel", [("Host", HOST), ("Cookie", "webvpn=abc")]
        )
    assert (resp.status, resp.reason) == (200, "CONNECTED")
    assert resp.header("X-CSTP-MTU") == "1406"
    assert resp.body == b""
    assert resp.trailing == first_frames
    assert not http.usable  # the connection now speaks CSTP
    assert server.requests[0].startswith(b"CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\n")


async def test_connect_200_without_trailing_bytes() -> None:
    async def script(s: Server) -> None:
        await s.read_request()
        await s.write(b"HTTP/1.1 200 OK\r\nX-CSTP-MTU: 1300\r\n\r\n")

    with trio.fail_after(TIMEOUT):
        resp, _, _ = await exchange(script, "CONNECT", "/CSCOSSLC/tunnel")
    assert resp.status == 200
    assert resp.trailing == b""


async def test_connect_401_from_ocserv_then_hang_up() -> None:
    """ocserv: status line and no header lines, then the connection drops (§3.3.1)."""

    async def script(s: Server) -> None:
        await s.read_request()
        await s.write(b"HTTP/1.1 401 Cookie is not acceptable\r\n\r\n")
        await s.hang_up()

    with trio.fail_after(TIMEOUT):
        resp, _, http = await exchange(script, "CONNECT", "/CSCOSSLC/tunnel")
    assert (resp.status, resp.reason) == (401, "Cookie is not acceptable")
    assert resp.headers == ()
    assert resp.closed
    assert not http.usable


# --- error statuses followed by a hang-up --------------------------------------------------


async def test_401_then_close_without_close_notify_is_a_response() -> None:
    async def script(s: Server) -> None:
        await s.read_request()
        await s.write(
            b"HTTP/1.1 401 Unauthorized\r\nContent-Type: text/html\r\n\r\n<html>no</html>"
        )
        await s.hang_up()

    with trio.fail_after(TIMEOUT):
        resp, _, http = await exchange(script, "POST", "/auth", body=b"<xml/>")
    assert resp.status == 401
    assert resp.body == b"<html>no</html>"
    assert resp.closed
    assert not http.usable


async def test_401_then_tls_alert_is_a_response() -> None:
    async def script(s: Server) -> None:
        await s.read_request()
        await s.write(b"HTTP/1.1 401 Unauthorized\r\n\r\n")
        await s.send_alert()

    with trio.fail_after(TIMEOUT):
        resp, _, http = await exchange(script)
    assert resp.status == 401
    assert resp.closed
    assert not http.usable


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 401 Unauthorized\r\n\r\n",
        b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 5\r\n\r\nno",
        b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 2\r\n\r\nno",
    ],
)
async def test_401_and_tls_alert_in_one_read_is_a_response(answer: bytes) -> None:
    """ocserv §2.4: the answer and the alert can arrive together; the answer still counts."""

    async def script(s: Server) -> None:
        await s.read_request()
        await s.send_alert(after=answer)

    with trio.fail_after(TIMEOUT):
        resp, _, http = await exchange(script, "POST", "/auth", body=b"<xml/>")
    assert (resp.status, resp.reason) == (401, "Unauthorized")
    assert resp.body in (b"", b"no")
    assert not http.usable


# --- malformed, oversized, lost -----------------------------------------------------------


@pytest.mark.parametrize(
    "head",
    [
        b"GARBAGE\r\n\r\n",
        b"HTTP/1.1 2OO OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"\x16\x03\x01\x00\x05hello\r\n\r\n",
    ],
)
async def test_malformed_response_is_one_line_http_error(head: bytes) -> None:
    async def script(s: Server) -> None:
        await s.read_request()
        await s.write(head)

    with trio.fail_after(TIMEOUT):
        err = await expect_error(HttpProtocolError, script)
    assert "HTTP" in str(err)


async def test_oversized_header_block() -> None:
    async def script(s: Server) -> None:
        await s.read_request()
        line = b"X-Pad: " + b"a" * 1000 + b"\r\n"
        await s.write(b"HTTP/1.1 200 OK\r\n" + line * (MAX_HEADER_BYTES // len(line) + 8) + b"\r\n")

    with trio.fail_after(TIMEOUT):
        await expect_error(HttpProtocolError, script)


async def test_endless_header_block() -> None:
    """Never terminated: h11's limit on an incomplete head trips."""

    async def script(s: Server) -> None:
        await s.read_request()
        await s.write(b"HTTP/1.1 200 OK\r\n")
        for _ in range(2 * MAX_HEADER_BYTES // CHUNK + 2):
            await s.write(b"X-Pad: " + b"a" * (CHUNK - 9) + b"\r\n")

    with trio.fail_after(TIMEOUT):
        await expect_error(HttpProtocolError, script)


async def test_header_block_just_under_the_limit_is_fine() -> None:
    async def script(s: Server) -> None:
        await s.read_request()
        line = b"X-Pad: " + b"a" * 1000 + b"\r\n"
        await s.write(b"HTTP/1.1 200 OK\r\n" + line * 60 + b"Content-Length: 0\r\n\r\n")

    with trio.fail_after(TIMEOUT):
        resp, _, _ = await exchange(script)
    assert len(resp.header_all("X-Pad")) == 60


@pytest.mark.parametrize("chunked", [False, True])
async def test_oversized_body(chunked: bool) -> None:
    async def script(s: Server) -> None:
        await s.read_request()
        if chunked:
            await s.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            piece = b"%x\r\n" % CHUNK + b"b" * CHUNK + b"\r\n"
            for _ in range(MAX_BODY_BYTES // CHUNK + 2):
                await s.write(piece)
        else:
            total = 2 * MAX_BODY_BYTES
            await s.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % total)
            await s.write(b"b" * (MAX_BODY_BYTES + 2 * CHUNK))

    with trio.fail_after(TIMEOUT):
        err = await expect_error(HttpProtocolError, script)
    assert str(MAX_BODY_BYTES) in str(err)


async def test_body_of_exactly_the_limit_is_fine() -> None:
    async def script(s: Server) -> None:
        await s.read_request()
        await s.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % MAX_BODY_BYTES)
        await s.write(b"c" * MAX_BODY_BYTES)

    with trio.fail_after(TIMEOUT):
        resp, _, _ = await exchange(script)
    assert len(resp.body) == MAX_BODY_BYTES


async def test_tls_alert_from_server() -> None:
    async def script(s: Server) -> None:
        await s.read_request()
        await s.send_alert()

    with trio.fail_after(TIMEOUT):
        err = await expect_error(TlsError, script)
    assert not isinstance(err, CertificateError)
    assert "alert" in str(err).lower()


@pytest.mark.parametrize("one_read", [False, True])
async def test_tls_alert_in_the_middle_of_a_200_body(one_read: bool) -> None:
    partial = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial"

    async def script(s: Server) -> None:
        await s.read_request()
        if one_read:
            await s.send_alert(after=partial)
        else:
            await s.write(partial)
            await s.send_alert()

    with trio.fail_after(TIMEOUT):
        err = await expect_error(TlsError, script)
    assert "alert" in str(err).lower()


async def test_tls_alert_in_the_middle_of_the_head() -> None:
    async def script(s: Server) -> None:
        await s.read_request()
        await s.send_alert(after=b"HTTP/1.1 200 OK\r\nContent-Le")

    with trio.fail_after(TIMEOUT):
        await expect_error(TlsError, script)


@pytest.mark.parametrize(
    "sent",
    [
        b"",
        b"HTTP/1.1 200 OK\r\nContent-",
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
    ],
)
@pytest.mark.parametrize("close_notify", [False, True])
async def test_eof_mid_response(sent: bytes, close_notify: bool) -> None:
    async def script(s: Server) -> None:
        await s.read_request()
        if sent:
            await s.write(sent)
        if close_notify:
            await s.close_notify_and_hang_up()
        else:
            await s.hang_up()

    with trio.fail_after(TIMEOUT):
        err = await expect_error((ConnectionLost, HttpProtocolError), script)
    if not close_notify:
        # the TLS layer saw the truncation first
        assert isinstance(err, ConnectionLost)
        assert "close_notify" in str(err)
    else:
        assert isinstance(err, HttpProtocolError)


# --- TLS level: certificates ---------------------------------------------------------------


async def _failed_handshake(ca_pem: bytes | None, pins: tuple[str, ...]) -> CertificateError:
    client_raw, server_raw = trio.testing.memory_stream_pair()
    client = TlsStream(client_raw, _client_conn(ca_pem=ca_pem, pins=pins))
    server = TlsStream(server_raw, _server_conn())
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_handshake_quietly, server)
        with pytest.raises(CertificateError) as info:
            await client.handshake()
        await client.aclose()
    assert client.conn.peer_pin == SERVER_PIN
    return info.value


async def test_untrusted_ca_names_the_pin() -> None:
    with trio.fail_after(TIMEOUT):
        err = await _failed_handshake(OTHER_CA.cert_pem.bytes(), ())
    msg = str(err)
    assert "\n" not in msg
    assert SERVER_PIN in msg
    assert f"--servercert {SERVER_PIN}" in msg


async def test_no_roots_names_the_pin() -> None:
    with trio.fail_after(TIMEOUT):
        err = await _failed_handshake(None, ())
    assert SERVER_PIN in str(err)


async def test_wrong_pin_names_the_real_pin() -> None:
    wrong = "pin-sha256:" + "A" * 43 + "="
    with trio.fail_after(TIMEOUT):
        err = await _failed_handshake(CA.cert_pem.bytes(), (wrong,))
    assert SERVER_PIN in str(err)
    assert "matches no --servercert pin" in str(err)


async def test_right_pin_accepted_without_roots() -> None:
    assert SERVER_PIN is not None
    assert SERVER_PIN.startswith("pin-sha256:")
    with trio.fail_after(TIMEOUT):
        client, server = await tls_pair(ca_pem=None, pins=(SERVER_PIN,))

        async def script(s: Server) -> None:
            await s.read_request()
            await s.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(script, server)
            resp = await HttpConnection(client).request("GET", "/", [("Host", HOST)])
    assert resp.status == 200
    assert client.conn.peer_pin == SERVER_PIN


def test_error_hierarchy() -> None:
    assert issubclass(CertificateError, TlsError)
    assert issubclass(TlsError, RemoteProtocolError)
    assert issubclass(HttpProtocolError, RemoteProtocolError)
    assert issubclass(ConnectionLost, RemoteProtocolError)


# --- CookieJar ---------------------------------------------------------------------------


def test_cookie_jar_set_and_header_order() -> None:
    jar = CookieJar()
    assert jar.header() is None
    jar.update(["webvpncontext=ctx; path=/; Secure", "webvpnlogin=1"])
    jar.update(["webvpn=ABC@123@DEF; path=/; Secure; HttpOnly"])
    assert jar.get("webvpn") == "ABC@123@DEF"
    assert jar.header() == "webvpncontext=ctx; webvpnlogin=1; webvpn=ABC@123@DEF"
    # replacing a value keeps the cookie's place
    jar.update(["webvpnlogin=2"])
    assert jar.header() == "webvpncontext=ctx; webvpnlogin=2; webvpn=ABC@123@DEF"
    jar.set("extra", "x")
    assert jar.header() == "webvpncontext=ctx; webvpnlogin=2; webvpn=ABC@123@DEF; extra=x"
    assert jar.get("missing") is None


def test_cookie_jar_clear_on_empty_value() -> None:
    jar = CookieJar()
    jar.update(["webvpncontext=ctx", "webvpn=tok"])
    jar.update(["webvpncontext=; path=/; Secure"])
    assert jar.get("webvpncontext") is None
    assert jar.header() == "webvpn=tok"
    jar.update(["webvpn="])
    assert jar.header() is None


def test_cookie_jar_clear_on_1970_expiry() -> None:
    jar = CookieJar()
    jar.update(["webvpncontext=ctx", "webvpn=tok"])
    # ocserv / ASA style: a value, but expired in 1970
    jar.update(["webvpncontext=00; expires=Thu, 01 Jan 1970 22:00:00 GMT; path=/; Secure"])
    assert jar.get("webvpncontext") is None
    jar.update(["webvpn=tok; Max-Age=0"])
    assert jar.header() is None


def test_cookie_jar_future_expiry_and_junk() -> None:
    jar = CookieJar()
    jar.update(
        [
            "a=1; expires=Fri, 01 Jan 2038 00:00:00 GMT",
            "no-equals-sign",
            "=nameless",
            " spaced = value ; path=/",
        ]
    )
    assert jar.get("a") == "1"
    assert jar.get("spaced") == "value"
    assert jar.header() == "a=1; spaced=value"


def test_cookie_jar_clearing_an_unknown_cookie_is_harmless() -> None:
    jar = CookieJar()
    jar.update(["ghost=; expires=Thu, 01 Jan 1970 00:00:00 GMT"])
    assert jar.header() is None
