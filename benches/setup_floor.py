"""The Trio floor of a session set-up: the same wire exchange as a tunnelswarm client with
as little Python as possible. Used by ``bench_setup_cost.py``; not a client to use.

Why it exists: the setup-cost benchmark compares tunnelswarm's client CPU per session
with one openconnect process per session. This program answers a different question:
what does the *architecture* (Python drives every socket and timer on a Trio loop, the
Rust core owns the bytes) cost per session when none of tunnelswarm's own logic runs —
no load engine, no statistics, no session object, no policy, no HTTP or XML parsing
beyond finding a length, a cookie and a token. Its CPU per session is a lower bound for
any client built that way on this machine.

What it does: one real login with :func:`tunnelswarm.client.session.open_client`
records every HTTP request the client sends (method, target, headers, body). Then
``N`` sessions start at ``RATE`` per second; each one, on the same building blocks the
client uses (``tcp_opener``'s direct socket, ``TlsStream`` with a Rust
``CstpConnection``, ``udp_opener``, a Rust ``DtlsConnection``):

1. connects TCP and completes TLS (certificate pinned);
2. replays the recorded requests in order, with its own cookies (``Set-Cookie``), the
   ``<opaque>`` block of the previous answer in each XML body (the ASA's aggregate-auth
   handle) and ``Cookie: webvpn=<session-token>`` on the CONNECT;
3. after ``200`` to CONNECT starts CSTP and, if DTLS is offered, completes the DTLS
   handshake the client would (``plan_dtls``: PSK-NEGOTIATE, DTLS 1.2 or 0.9);
4. holds ``HOLD`` seconds, then sends the BYE and closes.

Every session re-uses the recorded ``X-DTLS-Master-Secret``; the headend gives each
CONNECT its own session, so this is harmless. It prints one JSON line: sessions up, with
DTLS, failed (the first errors go to stderr).

Run: ``python benches/setup_floor.py URL PIN USER PASSWORD N RATE HOLD``
"""

from __future__ import annotations

import json
import re
import secrets
import sys
from dataclasses import dataclass
from typing import Any

import trio

from tunnelswarm._core import CstpConnection, DtlsConnection
from tunnelswarm.client.dtls import plan_dtls
from tunnelswarm.client.session import ClientOptions, open_client, parse_url
from tunnelswarm.config.params import parse_tunnel_headers
from tunnelswarm.drive.datagram import udp_opener
from tunnelswarm.drive.stream import TlsStream, now_us, tcp_opener, wall_time
from tunnelswarm.http import client as http_client

OPAQUE = re.compile(rb'<opaque is-for="sg">.*?</opaque>', re.S)
TOKEN = re.compile(rb"<session-token>([^<]+)</session-token>")
BYE_USER = 0xB0


@dataclass
class Recorded:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes


async def record_login(options: ClientOptions) -> tuple[list[Recorded], str]:
    """The requests of one real login and CONNECT, and the client's master secret."""
    requests: list[Recorded] = []
    real = http_client.HttpConnection.request

    async def recording(
        self: http_client.HttpConnection,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes = b"",
    ) -> http_client.HttpResponse:
        requests.append(Recorded(method, target, list(headers), body))
        return await real(self, method, target, headers, body)

    http_client.HttpConnection.request = recording  # type: ignore[method-assign]
    try:
        async with open_client(options) as session:
            master = session.master_secret
    finally:
        http_client.HttpConnection.request = real  # type: ignore[method-assign]
    return requests, master


async def read_response(
    stream: TlsStream,
) -> tuple[str, list[tuple[str, str]], bytes, bytes]:
    """(status, headers, body, bytes after the head of a 200 to CONNECT)."""
    conn = stream.conn
    buf = b""
    while (end := buf.find(b"\r\n\r\n")) < 0:
        if not await stream.receive():
            raise ConnectionError("the headend closed the connection")
        buf += conn.read_http()
    lines = buf[:end].decode("latin-1").split("\r\n")
    status = lines[0].split(" ", 2)[1]
    headers = [(k, v) for k, _, v in (line.partition(": ") for line in lines[1:])]
    if status == "200" and any(k.lower() == "x-cstp-address" for k, _ in headers):
        return status, headers, b"", buf[end + 4 :]
    length = next((int(v) for k, v in headers if k.lower() == "content-length"), 0)
    while len(buf) < end + 4 + length:
        if not await stream.receive():
            raise ConnectionError("the headend closed the connection")
        buf += conn.read_http()
    return status, headers, buf[end + 4 : end + 4 + length], b""


async def one_session(
    url: str, pin: str, requests: list[Recorded], master: str, hold: float
) -> bool:
    """One session as module docstring says; True if DTLS came up."""
    target = parse_url(url)
    conn = CstpConnection.client(target.host, wall_time=wall_time(), pins=[pin])
    stream = TlsStream(await tcp_opener(target.host, target.port), conn)
    try:
        await stream.handshake()
        cookies: dict[str, str] = {}
        opaque: bytes | None = None
        token: str | None = None
        headers: list[tuple[str, str]] = []
        leftover = b""
        for r in requests:
            body = OPAQUE.sub(opaque.replace(b"\\", b"\\\\"), r.body) if opaque else r.body
            head = [(k, v) for k, v in r.headers if k.lower() != "cookie"]
            if r.method == "CONNECT":
                head.append(("Cookie", f"webvpn={token}"))
            elif cookies:
                head.append(("Cookie", "; ".join(f"{k}={v}" for k, v in cookies.items())))
            if body or r.method == "POST":
                head.append(("Content-Length", str(len(body))))
            text = "".join(f"{k}: {v}\r\n" for k, v in head)
            conn.write_http(f"{r.method} {r.target} HTTP/1.1\r\n{text}\r\n".encode() + body)
            await stream.flush()
            status, headers, answer, leftover = await read_response(stream)
            if status != "200":
                raise ConnectionError(f"{r.method} {r.target} answered {status}")
            for k, v in headers:
                if k.lower() == "set-cookie":
                    name, _, value = v.split(";", 1)[0].partition("=")
                    cookies[name] = value
            found = OPAQUE.search(answer)
            opaque = found.group(0) if found else None
            if m := TOKEN.search(answer):
                token = m.group(1).decode()
        params = parse_tunnel_headers(headers)
        conn.start_cstp(
            now_us(), dpd=params.dpd, keepalive=params.keepalive, rekey=0, leftover=leftover
        )
        plan = plan_dtls(
            params, host=target.host, default_port=target.port, master_secret_hex=master, cstp=conn
        )
        dtls = False
        if plan is not None:
            d = DtlsConnection.client(
                now_us(),
                mode=plan.mode,
                cipher=plan.cipher,
                session_id=plan.session_id,
                master_secret=plan.master_secret,
                psk=plan.psk,
                seed=secrets.token_bytes(32),
                dpd=plan.dpd,
                keepalive=plan.keepalive,
            )
            udp = await udp_opener(plan.host, plan.port)
            try:
                while True:
                    while (datagram := d.poll_transmit(now_us())) is not None:
                        await udp.send(datagram)
                    if d.is_established:
                        dtls = True
                        break
                    deadline = d.next_deadline()
                    if deadline is None:
                        break
                    with trio.move_on_at(deadline / 1_000_000):
                        d.handle_datagram(now_us(), await udp.recv())
                        continue
                    d.handle_timeout(now_us())
                d.poll_events()
                await trio.sleep(hold)
            finally:
                udp.close()
        else:
            await trio.sleep(hold)
        conn.send_disconnect(now_us(), BYE_USER, "Client disconnected")
        await stream.flush()
        return dtls
    finally:
        await stream.aclose()


def main() -> int:
    url, pin, user, password, n_text, rate_text, hold_text = sys.argv[1:8]
    n, rate, hold = int(n_text), float(rate_text), float(hold_text)
    counts = {"up": 0, "dtls": 0, "failed": 0}

    async def run() -> None:
        options = ClientOptions(url=url, user=user, password=password, servercert=[pin])
        requests, master = await record_login(options)
        t0 = trio.current_time()

        async def slot(i: int) -> None:
            await trio.sleep_until(t0 + i / rate)
            try:
                dtls = await one_session(url, pin, requests, master, hold)
            except Exception as e:  # counted; the first few are shown
                counts["failed"] += 1
                if counts["failed"] <= 3:
                    print(f"session {i} failed: {e!r}", file=sys.stderr)
                return
            counts["up"] += 1
            counts["dtls"] += dtls

        async with trio.open_nursery() as nursery:
            for i in range(n):
                nursery.start_soon(slot, i)

    trio.run(run)
    result: dict[str, Any] = dict(counts)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
