"""Helpers shared by the mock ASA sim tests that talk to it over loopback.

The mock runs ``examples/asa-9.1.cfg`` (user test/test, group ``ac_users``, pool
10.10.10.10-250, inside host 10.1.1.1, ``logging enable``, ``logging timestamp``,
``logging buffered informational``) on 127.0.0.1 with kernel-chosen ports. Besides our
own client (:func:`options`) there is a raw TLS client (:class:`RawTls`) that sends
whatever bytes a test wants, and a client of the TCP admin console (:class:`Admin`).
"""

from __future__ import annotations

import re
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import trio

from tunnelswarm.asa.config import parse_config
from tunnelswarm.asa.server import MockAsaConfig, MockAsaInfo, serve_mock_asa
from tunnelswarm.client.session import ClientOptions, ClientSession
from tunnelswarm.config.profile import OPENCONNECT_9_01

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "asa-9.1.cfg"
INSIDE = "10.1.1.1"
GUARD = 30.0


async def start_asa(
    nursery: trio.Nursery, tmp_path: Path, text: str | None = None, **kw: Any
) -> MockAsaInfo:
    cfg = MockAsaConfig(
        asa=parse_config(EXAMPLE.read_text() if text is None else text),
        port=0,
        state_dir=tmp_path / "state",
        admin=("127.0.0.1", 0),
        **kw,
    )
    info: MockAsaInfo = await nursery.start(serve_mock_asa, cfg)
    return info


def options(
    info: MockAsaInfo, dtls: str = "AES128-SHA", dtls12: str = "", **kw: Any
) -> ClientOptions:
    base: dict[str, Any] = {
        "url": info.url,
        "user": "test",
        "password": "test",
        "servercert": (info.pin,),
        "profile": replace(OPENCONNECT_9_01, dtls_ciphers=dtls, dtls12_ciphers=dtls12),
        "reconnect_timeout": 5.0,
        "dtls_handshake_timeout": 2.0,
        "hostname": "laptop",
    }
    base.update(kw)
    return ClientOptions(**base)


async def wait_dtls(
    session: ClientSession, timeout: float = 5.0, *, fail_fast: bool = False
) -> bool:
    """True once DTLS is up; False after ``timeout`` (or, with ``fail_fast``, as soon as
    an attempt has failed)."""
    with trio.move_on_after(timeout):
        while True:
            ch = session.dtls
            if ch is not None and ch.up:
                return True
            if fail_fast and ch is not None and ch.last_failure is not None:
                return False
            await trio.sleep(0.02)
    return False


async def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.02)


class Admin:
    """A client of the mock's TCP admin console (prompt-terminated answers)."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buf = b""

    @classmethod
    @asynccontextmanager
    async def connect(cls, port: int, *, enable: bool = True) -> AsyncIterator[Admin]:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            admin = cls(stream)
            await admin._until_prompt()
            if enable:
                await admin.cmd("enable")
                await admin.cmd("")  # the example has no enable password
            yield admin

    async def _until_prompt(self) -> str:
        while not re.search(rb"(?:[>#]|Password:) $", self.buf):
            data = await self.stream.receive_some(65536)
            assert data, "admin console closed"
            self.buf += data
        text, self.buf = self.buf.decode(), b""
        return text

    async def cmd(self, line: str) -> str:
        await self.stream.send_all(line.encode() + b"\n")
        out = await self._until_prompt()
        return out.rsplit("\n", 1)[0] if "\n" in out else ""

    async def config(self, *lines: str) -> None:
        """``configure terminal``, the lines (each must be accepted silently), ``end``."""
        for line in ("configure terminal", *lines, "end"):
            out = await self.cmd(line)
            assert out == "", (line, out)


class RawTls:
    """A TLS connection to the mock that sends whatever a test asks (Python's ssl, no
    certificate check: the mock's certificate is self-signed)."""

    def __init__(self, stream: trio.SSLStream[trio.SocketStream]) -> None:
        self.stream = stream
        self.buf = b""

    @classmethod
    @asynccontextmanager
    async def connect(cls, port: int) -> AsyncIterator[RawTls]:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        tcp = await trio.open_tcp_stream("127.0.0.1", port)
        stream = trio.SSLStream(tcp, ctx, server_hostname="ciscoasa")
        async with stream:
            await stream.do_handshake()
            yield cls(stream)

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def response(self) -> tuple[int, bytes]:
        """The next HTTP response: status and body (by Content-Length)."""
        while b"\r\n\r\n" not in self.buf:
            data = await self.stream.receive_some(65536)
            assert data, f"EOF before a response: {self.buf!r}"
            self.buf += data
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        status = int(head.split(b" ", 2)[1])
        m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        length = int(m.group(1)) if m else 0
        while len(self.buf) < length:
            data = await self.stream.receive_some(65536)
            assert data, "EOF inside a response body"
            self.buf += data
        body, self.buf = self.buf[:length], self.buf[length:]
        return status, body

    async def closed_by_peer(self, timeout: float = 5.0) -> bool:
        """True when the mock ends the connection (EOF, or a reset) within ``timeout``."""
        with trio.move_on_after(timeout):
            try:
                while await self.stream.receive_some(65536):
                    pass
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            return True
        return False

    async def post(self, body: bytes) -> tuple[int, bytes]:
        await self.send(
            b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: Open AnyConnect VPN Agent\r\n"
            b"Content-Type: application/xml\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        )
        return await self.response()

    async def login(self) -> str:
        """The XML login of user test/test; the ``webvpn`` cookie."""
        status, body = await self.post(
            b'<?xml version="1.0" encoding="UTF-8"?>\n<config-auth client="vpn" type="init" '
            b'aggregate-auth-version="2"><version who="vpn">9.01</version></config-auth>'
        )
        assert status == 200, body
        m = re.search(rb"<aggauth-handle>(\d+)</aggauth-handle>", body)
        assert m is not None, body
        status, body = await self.post(
            b'<?xml version="1.0" encoding="UTF-8"?>\n<config-auth client="vpn" '
            b'type="auth-reply" aggregate-auth-version="2"><opaque is-for="sg"><aggauth-handle>'
            + m.group(1)
            + b"</aggauth-handle></opaque><auth><username>test</username>"
            b"<password>test</password></auth></config-auth>"
        )
        assert status == 200, body
        token = re.search(rb"<session-token>([^<]+)</session-token>", body)
        assert token is not None, body
        return token.group(1).decode()

    async def connect_tunnel(self, cookie: str) -> int:
        """CONNECT with ``cookie``; the status (the headers are read, nothing else)."""
        await self.send(
            b"CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"User-Agent: Open AnyConnect VPN Agent\r\nCookie: webvpn=%s\r\n"
            b"X-CSTP-Version: 1\r\nX-CSTP-Hostname: raw\r\nX-CSTP-MTU: 1399\r\n\r\n"
            % cookie.encode()
        )
        while b"\r\n\r\n" not in self.buf:
            data = await self.stream.receive_some(65536)
            assert data, f"EOF before the CONNECT answer: {self.buf!r}"
            self.buf += data
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        return int(head.split(b" ", 2)[1])


@asynccontextmanager
async def udp_socket() -> AsyncIterator[trio.socket.SocketType]:
    """A UDP socket bound to 127.0.0.1 (any port), closed at the end."""
    with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as sock:
        await sock.bind(("127.0.0.1", 0))
        yield sock


async def receive_all(sock: trio.socket.SocketType, quiet: float = 0.2) -> list[bytes]:
    """Every datagram waiting on ``sock``, until none arrives for ``quiet`` seconds."""
    out = []
    while True:
        with trio.move_on_after(quiet):
            out.append(await sock.recv(65536))
            continue
        return out
