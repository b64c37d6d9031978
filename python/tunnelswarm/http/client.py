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

Cost (the load engine makes four exchanges per session): the request head is formatted
here, byte for byte as h11 writes it (request line, ``Host`` first, the other headers
in order), after the same validation h11 does; and a response that is plainly ordinary
— HTTP/1.1, every header line matching h11's own grammar, one numeric
``Content-Length`` (or a ``2xx`` to ``CONNECT``), the body fully read and nothing after
it — is parsed here in one pass. Anything else (1xx, chunked, ``Connection: close``,
a body delimited by the end of the connection, odd framing, bare LF, a read that fails
or ends, a head past the limit) hands the bytes read so far to h11, which then drives
the rest of the connection exactly as before: the fast path only ever accepts what h11
accepts, and answers the same.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import h11
from h11._abnf import field_name as _FIELD_NAME
from h11._abnf import field_value as _FIELD_VALUE
from h11._abnf import header_field as _HEADER_FIELD
from h11._abnf import method as _METHOD
from h11._abnf import request_target as _REQUEST_TARGET
from h11._abnf import status_line as _STATUS_LINE

from tunnelswarm.drive.stream import TlsStream
from tunnelswarm.errors import ConnectionLost, HttpProtocolError, TlsError

__all__ = ["MAX_BODY_BYTES", "MAX_HEADER_BYTES", "CookieJar", "HttpConnection", "HttpResponse"]

MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 1024 * 1024

# h11's grammar (the same ABNF strings h11 compiles), for the fast path
_field_name_re = re.compile(_FIELD_NAME.encode("ascii"))
_field_value_re = re.compile(_FIELD_VALUE.encode("ascii"))
_method_re = re.compile(_METHOD.encode("ascii"))
_target_re = re.compile(_REQUEST_TARGET.encode("ascii"))
_header_field_re = re.compile(_HEADER_FIELD.encode("ascii"))
_status_line_re = re.compile(_STATUS_LINE.encode("ascii"))
_digits_re = re.compile(rb"[0-9]{1,20}")  # h11 allows at most 20 digits


class _Fallback(Exception):
    """Internal: the fast path hands this response over to h11."""


def _encode_request(method: str, target: str, headers: list[tuple[str, str]]) -> bytes:
    """The request head exactly as h11 0.16 writes it, after h11's checks (same messages)."""
    m = method.encode("ascii")
    t = target.encode("ascii")
    if _method_re.fullmatch(m) is None:
        raise HttpProtocolError(f"cannot send HTTP request: Illegal method characters {m!r}")
    if _target_re.fullmatch(t) is None:
        raise HttpProtocolError(f"cannot send HTTP request: Illegal target characters {t!r}")
    host: list[bytes] = []
    rest: list[bytes] = []
    length = False
    for name, value in headers:
        n = name.encode("ascii")
        v = value.encode("ascii")
        if _field_name_re.fullmatch(n) is None:
            raise HttpProtocolError(f"cannot send HTTP request: Illegal header name {n!r}")
        if _field_value_re.fullmatch(v) is None:
            raise HttpProtocolError(f"cannot send HTTP request: Illegal header value {v!r}")
        low = n.lower()
        if low == b"host":
            host.append(b"%s: %s\r\n" % (n, v))
        elif low == b"content-length" and not length and _digits_re.fullmatch(v) is not None:
            length = True  # plain digits, once: h11 writes it as given
            rest.append(b"%s: %s\r\n" % (n, v))
        elif low in (b"content-length", b"transfer-encoding"):
            raise _Fallback  # h11 normalises (or refuses) these: let it write them
        else:
            rest.append(b"%s: %s\r\n" % (n, v))
    if len(host) != 1:
        raise _Fallback  # h11 refuses (none or several): let it say so
    return b"".join([b"%s %s HTTP/1.1\r\n" % (m, t), *host, *rest, b"\r\n"])


def _bare_lf(data: bytearray) -> bool:
    """A LF not after a CR: h11 ends lines (and heads) there too, so it must judge."""
    return data.count(b"\n") != data.count(b"\r\n")


def _parse_head(head: bytearray) -> tuple[int, str, tuple[tuple[str, str], ...], int | None]:
    """(status, reason, headers, Content-Length) of an ordinary response head (without
    its blank line), or :class:`_Fallback` for anything h11 must judge."""
    lines = head.split(b"\r\n")
    status = _status_line_re.fullmatch(lines[0])
    if status is None or status["http_version"] != b"1.1":
        raise _Fallback
    code = int(status["status_code"])
    if code < 200 or code in (204, 304):
        raise _Fallback
    length: int | None = None
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        match = _header_field_re.fullmatch(line)
        if match is None or line.startswith((b" ", b"\t")):
            raise _Fallback  # malformed, or an obs-fold continuation
        name, value = match["field_name"], match["field_value"]
        low = name.lower()
        if low == b"content-length":
            if length is not None or _digits_re.fullmatch(value) is None:
                raise _Fallback
            length = int(value)
        elif low == b"transfer-encoding" or (low == b"connection" and b"close" in value.lower()):
            raise _Fallback
        headers.append((name.decode("latin-1"), value.decode("latin-1")))
    reason = (status["reason"] or b"").decode("latin-1")
    return code, reason, tuple(headers), length


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
        #: h11 takes over the connection at the first response the fast path hands over
        self._h11: h11.Connection | None = None
        self.usable = True
        self._pending_error: ConnectionLost | TlsError | None = None
        #: what the fast path saw before handing over: a failed read, or the end
        self._handover_error: ConnectionLost | TlsError | None = None
        self._handover_eof = False
        self._fast_buf = bytearray()

    def _new_h11(self) -> h11.Connection:
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEADER_BYTES)
        return self._h11

    def _write(self, event: h11.Event) -> None:
        """Hand ``event``'s bytes to the core: one TLS record per event, as always; the
        caller flushes once for the whole request (one send, the same records)."""
        assert self._h11 is not None
        try:
            data = self._h11.send(event)
        except h11.LocalProtocolError as e:
            raise HttpProtocolError(f"cannot send HTTP request: {e}") from None
        if data:
            self.stream.conn.write_http(data)

    async def _next_event(self) -> h11.Event:
        assert self._h11 is not None
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
                if self._handover_error is not None:  # what the fast path's read met
                    error, self._handover_error = self._handover_error, None
                    raise error
                if self._handover_eof:
                    self._handover_eof = False
                    self._h11.receive_data(b"")
                    continue
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
        assert self._h11 is not None
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
        hdrs = list(headers)
        if body or method == "POST":
            hdrs.append(("Content-Length", str(len(body))))
        if self._h11 is None:
            try:
                head = _encode_request(method, target, hdrs)
            except _Fallback:
                pass
            else:
                conn = self.stream.conn
                conn.write_http(head)  # the same TLS records as h11's writes: head, body
                if body:
                    conn.write_http(body)
                await self.stream.flush()
                try:
                    return await self._receive_fast(method)
                except _Fallback:
                    pass
                # h11 takes the connection over, with this request already sent
                h = self._new_h11()
                h.send(h11.Request(method=method, target=target, headers=hdrs))
                if body:
                    h.send(h11.Data(data=body))
                h.send(h11.EndOfMessage())
                if self._fast_buf:  # (an empty receive_data would mean EOF to h11)
                    h.receive_data(bytes(self._fast_buf))
                self._fast_buf = bytearray()
                return await self._receive_h11(method)
        h = self._h11 or self._new_h11()
        if h.our_state is h11.DONE and h.their_state is h11.DONE:
            h.start_next_cycle()
        self._write(h11.Request(method=method, target=target, headers=hdrs))
        if body:
            self._write(h11.Data(data=body))
        self._write(h11.EndOfMessage())
        await self.stream.flush()
        return await self._receive_h11(method)

    async def _receive_fast(self, method: str) -> HttpResponse:
        """Read an ordinary response (module docstring) or raise :class:`_Fallback` with
        the bytes read so far in ``_fast_buf`` (and a failed read or the end noted)."""
        buf = self._fast_buf = bytearray()
        head: tuple[int, str, tuple[tuple[str, str], ...], int | None] | None = None
        need = body_at = 0
        stream = self.stream
        while True:
            try:
                more = await stream.receive()
            except (ConnectionLost, TlsError) as e:
                self._handover_error = e
                raise _Fallback from None
            buf += stream.conn.read_http()
            if not more:
                self._handover_eof = True
                raise _Fallback
            if head is None:
                if buf and buf[0] < 0x21:
                    raise _Fallback  # h11's early refusal, or its leading blank line
                end = buf.find(b"\r\n\r\n")
                if _bare_lf(buf if end < 0 else buf[:end]):
                    raise _Fallback
                if end < 0:
                    if len(buf) > MAX_HEADER_BYTES:
                        raise _Fallback  # h11's limit on an incomplete head
                    continue
                if end > MAX_HEADER_BYTES // 2:
                    raise _Fallback  # a big head: h11 and the size check judge it
                head = _parse_head(buf[:end])
                status = head[0]
                if method == "CONNECT" and 200 <= status < 300:
                    self.usable = False
                    trailing = bytes(buf[end + 4 :])
                    return HttpResponse(status, head[1], head[2], b"", trailing=trailing)
                length = head[3]
                if length is None or length > MAX_BODY_BYTES:
                    raise _Fallback
                body_at = end + 4
                need = body_at + length
            if len(buf) < need:
                continue
            if len(buf) > need:
                raise _Fallback  # bytes past the body: h11 keeps them, as it always did
            if stream.eof or stream.conn.peer_closed:
                self.usable = False
            status, reason, headers, _length = head
            body = bytes(buf[body_at:])
            return HttpResponse(status, reason, headers, body, closed=not self.usable)

    async def _receive_h11(self, method: str) -> HttpResponse:
        """The response, read by h11 (the original path)."""
        assert self._h11 is not None

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
