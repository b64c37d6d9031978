"""HTTP/1.1 over a :class:`TlsStream`, with h11: the login exchange and CONNECT.

Theory of operation: one :class:`HttpConnection` per TLS connection. ``request`` sends
one request and reads its response; keep-alive cycles are started when both sides are
done, so the auth POSTs and CONNECT can share a connection as openconnect does
(protocol.md §3.1). For ``CONNECT`` a 2xx response switches h11 to "switched
protocol" and :attr:`HttpResponse.trailing` holds the bytes read past the header —
the first CSTP bytes — which the caller hands to ``start_cstp``.

Limits: response heads over :data:`MAX_HEADER_BYTES` and bodies over
:data:`MAX_BODY_BYTES` are refused (:class:`HttpProtocolError`). A headend that
answers an error status and then drops the connection (ocserv: ``401`` + TLS alert,
§2.4) still yields its response: the body read stops at the connection loss.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import h11

from tunnelswarm.drive.stream import TlsStream
from tunnelswarm.errors import ConnectionLost, HttpProtocolError, TlsError

__all__ = ["MAX_BODY_BYTES", "MAX_HEADER_BYTES", "CookieJar", "HttpConnection", "HttpResponse"]

MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    reason: str
    #: (name, value) with the server's original spelling, in order
    headers: tuple[tuple[str, str], ...]
    body: bytes
    #: bytes after the head of a successful CONNECT
    trailing: bytes = b""
    #: the connection cannot carry another request
    closed: bool = False

    def header(self, name: str) -> str | None:
        low = name.lower()
        for n, v in self.headers:
            if n.lower() == low:
                return v
        return None

    def header_all(self, name: str) -> list[str]:
        low = name.lower()
        return [v for n, v in self.headers if n.lower() == low]


class CookieJar:
    """Just enough cookies for AnyConnect: name=value, cleared by an empty value or expiry."""

    def __init__(self) -> None:
        self._cookies: dict[str, str] = {}

    def update(self, set_cookie_values: Iterable[str]) -> None:
        for raw in set_cookie_values:
            first, _, attrs = raw.partition(";")
            name, eq, value = first.partition("=")
            name = name.strip()
            if not name or not eq:
                continue
            value = value.strip()
            expired = any(
                a.strip().lower().startswith("expires=") and "1970" in a for a in attrs.split(";")
            ) or any(a.strip().lower() == "max-age=0" for a in attrs.split(";"))
            if not value or expired:
                self._cookies.pop(name, None)
            else:
                self._cookies[name] = value

    def get(self, name: str) -> str | None:
        return self._cookies.get(name)

    def set(self, name: str, value: str) -> None:
        self._cookies[name] = value

    def header(self) -> str | None:
        if not self._cookies:
            return None
        return "; ".join(f"{k}={v}" for k, v in self._cookies.items())


class HttpConnection:
    """One HTTP/1.1 client connection over TLS."""

    def __init__(self, stream: TlsStream) -> None:
        self.stream = stream
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEADER_BYTES)
        self.usable = True
        self._pending_error: ConnectionLost | TlsError | None = None

    async def _send(self, event: h11.Event) -> None:
        try:
            data = self._h11.send(event)
        except h11.LocalProtocolError as e:
            raise HttpProtocolError(f"cannot send HTTP request: {e}") from None
        if data:
            self.stream.conn.write_http(data)
        await self.stream.flush()

    async def _next_event(self) -> h11.Event:
        while True:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as e:
                self.usable = False
                if self._pending_error is not None:
                    # cut short by the TLS failure: that is the cause to report
                    raise self._pending_error from None
                raise HttpProtocolError(f"malformed HTTP from headend: {e}") from None
            if event is not h11.NEED_DATA:
                return event  # type: ignore[return-value]
            if self._pending_error is not None:
                raise self._pending_error
            try:
                more = await self.stream.receive()
            except (ConnectionLost, TlsError) as e:
                # the headend may answer and hang up at once (ocserv: "401" then an
                # access_denied alert, protocol.md §2.4): parse what arrived first
                self.usable = False
                data = self.stream.conn.read_http()
                if not data:
                    raise
                self._pending_error = e
                self._h11.receive_data(data)
                self._h11.receive_data(b"")
                continue
            data = self.stream.conn.read_http()
            if data:
                self._h11.receive_data(data)
            if not more:
                self._h11.receive_data(b"")

    def _check_head_size(self, event: h11.Response) -> None:
        # h11 bounds only an *incomplete* head; one that completes within the last read
        # can be larger, so check the head's size (as h11 kept it) here too
        size = 15 + len(event.reason)
        size += sum(len(n) + len(v) + 4 for n, v in event.headers.raw_items())
        if size > MAX_HEADER_BYTES:
            self.usable = False
            raise HttpProtocolError(f"HTTP response header block exceeds {MAX_HEADER_BYTES} bytes")

    def _after_response(self, closed: bool) -> bool:
        """Mark the connection unusable unless it can carry another request."""
        # a body delimited by the end of the connection leaves h11 DONE/DONE, but the
        # TLS stream is finished: no further request can go on it
        eof = self.stream.eof or self.stream.conn.peer_closed
        cycle_done = self._h11.their_state is h11.DONE and self._h11.our_state is h11.DONE
        if closed or eof or not cycle_done:
            self.usable = False
        return not self.usable

    async def request(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes = b"",
    ) -> HttpResponse:
        """Send one request, return its response."""
        if not self.usable:
            raise HttpProtocolError("HTTP connection is no longer usable")
        if self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE:
            self._h11.start_next_cycle()
        hdrs = list(headers)
        if body or method == "POST":
            hdrs.append(("Content-Length", str(len(body))))
        await self._send(h11.Request(method=method, target=target, headers=hdrs))
        if body:
            await self._send(h11.Data(data=body))
        await self._send(h11.EndOfMessage())

        event = await self._next_event()
        while isinstance(event, h11.InformationalResponse):
            event = await self._next_event()
        if not isinstance(event, h11.Response):
            raise HttpProtocolError(f"expected an HTTP response, got {type(event).__name__}")
        status = event.status_code
        reason = event.reason.decode("latin-1")
        resp_headers = tuple(
            (n.decode("latin-1"), v.decode("latin-1")) for n, v in event.headers.raw_items()
        )
        self._check_head_size(event)
        if method == "CONNECT" and 200 <= status < 300:
            trailing, _closed = self._h11.trailing_data
            self.usable = False
            return HttpResponse(status, reason, resp_headers, b"", trailing=bytes(trailing))

        chunks: list[bytes] = []
        size = 0
        closed = False
        while True:
            try:
                event = await self._next_event()
            except (ConnectionLost, TlsError):
                if status >= 300:  # an error answer followed by a hang-up (ocserv 401)
                    closed = True
                    break
                raise
            if isinstance(event, h11.Data):
                size += len(event.data)
                if size > MAX_BODY_BYTES:
                    self.usable = False
                    raise HttpProtocolError(f"HTTP response body exceeds {MAX_BODY_BYTES} bytes")
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                closed = True
                break
        closed = self._after_response(closed)
        return HttpResponse(status, reason, resp_headers, b"".join(chunks), closed=closed)
