"""The one exception hierarchy of tunnelswarm.

Every error a user can meet is a subclass of :class:`TunnelswarmError` and carries a
one-line reason (``str(exc)``) that names what was wrong. The Rust core raises the
classes defined here (the binding imports them), so Python code catches one
hierarchy whatever layer detected the problem.

Two families mirror h11's split:

* :class:`RemoteProtocolError` -- the peer (or the network) sent something we cannot
  accept: corrupt CSTP framing, a TLS alert, malformed HTTP, hostile XML.
* :class:`LocalProtocolError` -- the caller misused an API (wrong state, bad argument).

On top of those, the headend can *refuse* us politely: :class:`AuthError`,
:class:`CookieRejected`, :class:`ServiceUnavailable`.
"""

from __future__ import annotations


class TunnelswarmError(Exception):
    """Base class. ``str(exc)`` is a one-line reason fit for a CLI error line."""

    #: short machine-readable cause, used to count failures by cause in reports
    cause: str = "error"

    def __init__(self, reason: str) -> None:
        reason = " ".join(str(reason).split())  # always one line
        super().__init__(reason)
        self.reason = reason


class LocalProtocolError(TunnelswarmError):
    """The caller used an API wrongly (a bug in the caller, not the peer)."""

    cause = "local-misuse"


class InternalError(TunnelswarmError):
    """An impossible state was reached. Please report it."""

    cause = "internal"

    def __init__(self, reason: str) -> None:
        super().__init__(f"internal error (please report): {reason}")


class ConfigError(TunnelswarmError):
    """Bad user input: a flag, a URL, a file."""

    cause = "config"


class RemoteProtocolError(TunnelswarmError):
    """The peer sent bytes we cannot accept."""

    cause = "protocol"


class TlsError(RemoteProtocolError):
    """The TLS layer failed: a received alert, a handshake or record error."""

    cause = "tls"


class CertificateError(TlsError):
    """The server certificate was refused (untrusted, wrong pin, wrong name)."""

    cause = "certificate"


class CstpFramingError(RemoteProtocolError):
    """A CSTP frame broke the rules of protocol.md section 4.1 (magic, byte 7, length)."""

    cause = "cstp-framing"


class HttpProtocolError(RemoteProtocolError):
    """Malformed or oversized HTTP from the headend."""

    cause = "http"


class AuthXmlError(RemoteProtocolError):
    """The headend's auth document was malformed, hostile or not understood."""

    cause = "auth-xml"


class ConnectionLost(RemoteProtocolError):
    """The TCP/TLS connection ended (EOF, reset, timeout) where the protocol did not allow it."""

    cause = "connection-lost"


class AuthError(TunnelswarmError):
    """The headend refused the credentials (wrong password, unknown user, locked out)."""

    cause = "auth-failed"


class CookieRejected(TunnelswarmError):
    """The headend answered 401 to CONNECT: the session cookie is no longer valid."""

    cause = "cookie-rejected"


class ServiceUnavailable(TunnelswarmError):
    """The headend answered CONNECT with an error status (e.g. 503 with X-Reason)."""

    cause = "service-unavailable"


class SessionTerminated(TunnelswarmError):
    """The headend ended the session (CSTP DISCONNECT or TERMINATE)."""

    cause = "server-terminated"


class ReconnectTimeout(TunnelswarmError):
    """Reconnect attempts did not succeed within --reconnect-timeout."""

    cause = "reconnect-timeout"


class AddressChanged(TunnelswarmError):
    """A reconnect returned a different tunnel address; openconnect ends the session (§3.3.2)."""

    cause = "address-changed"
