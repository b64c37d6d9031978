"""AnyConnect authentication documents: parse the headend's forms, build the client's replies.

Theory of operation
-------------------
This module is sans-IO: it turns response *bytes* into frozen dataclasses and request
dataclasses back into *bytes*; the HTTP exchange, cookies and the decision "retry, pick
another group, give up" belong to the session layer.

Login (protocol.md §2) is a short dialogue of XML "aggregate auth" documents rooted at
``<config-auth client="vpn" type=…>`` (§2.3):

1. the client POSTs an ``init`` document (:func:`build_init`, §2.3.1, exact bytes of §2.6);
2. the headend answers with an ``auth-request`` form (:class:`AuthForm`, §2.3.2) -- ocserv
   1.1.6 asks for the username and the password in two separate rounds, newer ocserv and
   the ASA in one (§2.4);
3. the client POSTs an ``auth-reply`` (:func:`build_auth_reply`, §2.3.3) that echoes the
   server's ``<opaque>`` element byte for byte;
4. the headend answers with another ``auth-request`` (next factor, or the same form with
   an ``<error>`` after a failed login) or with ``complete`` (:class:`AuthComplete`,
   §2.3.4). ocserv signals a failed login with ``401`` instead (§2.4), which never reaches
   this module.

Old headends speak the legacy form protocol (§2.5): a bare ``<auth id="main">`` element,
possibly inside an HTML page, answered with an urlencoded POST
(:func:`build_legacy_reply`). :func:`parse_auth_response` recognises both dialects and
marks legacy forms with ``legacy=True``.

Every document from the headend is untrusted. It is parsed only with ``defusedxml``
(DTDs, entity declarations and external references refused), limited to
:data:`MAX_DOCUMENT_SIZE` bytes and required to be UTF-8; whatever is wrong with it
raises :class:`~tunnelswarm.errors.AuthXmlError` with a one-line reason. The ``<opaque>``
element is cut out of the original bytes using the parser's byte offsets, so it is
echoed exactly as received (protocol.md §2.3.2: "saved verbatim and echoed back
unchanged", line breaks included).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, cast

from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.ElementTree import DefusedXMLParser

from tunnelswarm.errors import AuthXmlError, LocalProtocolError

__all__ = [
    "DEFAULT_CAPABILITIES",
    "MAX_DOCUMENT_SIZE",
    "AuthComplete",
    "AuthForm",
    "AuthResponse",
    "FormInput",
    "FormSelect",
    "SelectOption",
    "build_auth_reply",
    "build_init",
    "build_legacy_reply",
    "classify_failure",
    "parse_auth_response",
    "x_pad",
]

#: Documents larger than this are refused before parsing (1 MiB).
MAX_DOCUMENT_SIZE: Final = 1024 * 1024

#: openconnect 9's ``<capabilities>`` without STRAP/HPKE support (protocol.md §2.3.1, §2.6).
DEFAULT_CAPABILITIES: Final[tuple[str, ...]] = ("single-sign-on-v2",)

_XML_DECLARATION: Final = '<?xml version="1.0" encoding="UTF-8"?>\n'

#: Input names openconnect renames to ``<password>`` in an auth-reply (protocol.md §2.3.3).
_PASSWORD_ALIASES: Final = frozenset({"answer", "whichpin", "new_password"})
#: Input types whose value goes into a reply; ``submit``, ``sso``, ``reset``… do not.
_REPLY_INPUT_TYPES: Final = frozenset({"text", "password", "hidden"})
_GROUP_LIST: Final = "group_list"

# Characters XML 1.0 can carry at all (everything else cannot even be escaped).
_NOT_XML_CHAR: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# Element names we are willing to emit for form inputs (ASCII subset of XML Name, no ':').
_ELEMENT_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9._-]*")
# The start of a legacy <auth …> element inside an HTML-ish page (protocol.md §2.5).
_LEGACY_AUTH_START: Final = re.compile(r"<auth[\s/>]")
_FALSE_WORDS: Final = frozenset({"false", "0", "no", "off"})


# --------------------------------------------------------------------------------------
# Data model
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FormInput:
    """One ``<input>`` of a form (protocol.md §2.3.2).

    ``type`` is lower-cased (``text``, ``password``, ``hidden``, ``submit``, ``sso``…);
    ``value`` is the ``value`` attribute (hidden inputs echo it), ``None`` when absent.
    """

    name: str
    type: str
    label: str
    value: str | None


@dataclass(frozen=True, slots=True)
class SelectOption:
    """One ``<option>``: ``value`` is the ``value`` attribute or else the option text."""

    value: str
    label: str
    selected: bool


@dataclass(frozen=True, slots=True)
class FormSelect:
    """A ``<select>``; ``name="group_list"`` is the tunnel-group choice (protocol.md §2.3.2)."""

    name: str
    label: str
    options: tuple[SelectOption, ...]

    def default(self) -> str | None:
        """The value of the ``selected`` option, else of the first option, else ``None``."""
        for option in self.options:
            if option.selected:
                return option.value
        return self.options[0].value if self.options else None

    def values(self) -> tuple[str, ...]:
        """All option values, in document order."""
        return tuple(option.value for option in self.options)


@dataclass(frozen=True, slots=True)
class AuthForm:
    """A login form from the headend: an XML ``auth-request`` (§2.3.2) or a legacy form (§2.5).

    ``opaque`` is the server's ``<opaque …>…</opaque>`` element exactly as it appeared in
    the response bytes, to be echoed unchanged (§2.3.2/§2.3.3). ``error`` is set when the
    server re-prompts after a failed login; see :func:`classify_failure`.
    """

    auth_id: str
    title: str | None
    message: str | None
    banner: str | None
    error: str | None
    method: str
    action: str
    inputs: tuple[FormInput, ...]
    selects: tuple[FormSelect, ...]
    opaque: str | None
    server_version: str | None
    tunnel_group: str | None
    group_alias: str | None
    legacy: bool

    def has_input(self, name: str) -> bool:
        """True if the form has an ``<input>`` called ``name``."""
        return any(item.name == name for item in self.inputs)

    def group_select(self) -> FormSelect | None:
        """The ``group_list`` select (tunnel-group choice), if the form has one."""
        for select in self.selects:
            if select.name == _GROUP_LIST:
                return select
        return None

    def password_inputs(self) -> tuple[FormInput, ...]:
        """The ``type="password"`` inputs, in document order."""
        return tuple(item for item in self.inputs if item.type == "password")


@dataclass(frozen=True, slots=True)
class AuthComplete:
    """Successful login: ``config-auth type="complete"`` (§2.3.4, §2.4 step 3) or legacy success.

    ``session_token`` is the ASA's ``<session-token>``; ocserv sends none and delivers the
    cookie only as ``Set-Cookie: webvpn=`` (which wins anyway, §2.3.4).
    """

    session_token: str | None
    session_id: str | None
    message: str | None
    banner: str | None
    server_version: str | None
    profile_uri: str | None
    server_cert_hash: str | None


AuthResponse = AuthForm | AuthComplete


# --------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------


class _SpanTarget:
    """ElementTree parser target that also records where each ``<opaque>`` sits in the bytes.

    expat's ``CurrentByteIndex`` is the offset of ``<`` in a start event and of ``</`` in
    an end event (for ``<x/>`` it is the offset just past the tag).
    """

    def __init__(self, raw: bytes) -> None:
        self._raw = raw
        self._builder = ET.TreeBuilder()
        self._open: list[tuple[ET.Element, int] | None] = []
        self.expat: Any = None
        self.spans: dict[ET.Element, tuple[int, int]] = {}

    def start(self, tag: str, attrs: dict[str, str]) -> ET.Element:
        element = self._builder.start(tag, attrs)
        if _local(tag) == "opaque":
            self._open.append((element, int(self.expat.CurrentByteIndex)))
        else:
            self._open.append(None)
        return element

    def end(self, tag: str) -> ET.Element:
        element = self._builder.end(tag)
        opened = self._open.pop()
        if opened is not None:
            begin = opened[1]
            tag_end = _start_tag_end(self._raw, begin)
            if self._raw[tag_end - 2 : tag_end] == b"/>":
                self.spans[opened[0]] = (begin, tag_end)
            else:
                close_at = int(self.expat.CurrentByteIndex)
                self.spans[opened[0]] = (begin, self._raw.index(b">", close_at) + 1)
        return element

    def data(self, text: str) -> None:
        self._builder.data(text)

    def close(self) -> ET.Element:
        return self._builder.close()


def _start_tag_end(raw: bytes, begin: int) -> int:
    """Offset just past the start tag at ``begin`` (quote-aware: ``>`` may sit in a value)."""
    quote = 0
    for index in range(begin + 1, len(raw)):
        byte = raw[index]
        if quote:
            if byte == quote:
                quote = 0
        elif byte in (0x22, 0x27):  # " '
            quote = byte
        elif byte == 0x3E:  # >
            return index + 1
    return len(raw)  # unreachable for a document expat accepted


class _Refused(Exception):
    """Internal: one parse attempt failed; ``reason`` is the one-line explanation."""

    def __init__(self, reason: str, *, hostile: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.hostile = hostile


#: a whole tag: ``</``? name, then anything up to the first ``>`` outside quotes
_TAG = re.compile(rb"<(/?)([^\s/>]+)(?:[^\"'>]++|\"[^\"]*+\"|'[^']*+')*+>")


def _parse_xml_fast(raw: bytes) -> tuple[ET.Element, dict[ET.Element, tuple[int, int]]] | None:
    """The common case, ~5x cheaper: a document with no ``<!`` (so no DTD, no entity
    declarations, no comments or CDATA: nothing defusedxml guards against) and no
    processing instruction but a leading XML declaration. Parsed by the C parser and
    tree builder; the ``<opaque>`` spans come from its tags, which are then the only
    ``<`` in the bytes. ``None`` (take the defusedxml path, which also words every
    error) for anything else, a parse error included."""
    if b"<!" in raw:
        return None
    body_at = 0
    if raw.startswith(b"<?"):
        body_at = raw.find(b"?>") + 2
        if body_at < 2:
            return None
    if raw.find(b"<?", body_at) >= 0:
        return None
    parser = ET.XMLParser(target=ET.TreeBuilder(), encoding="utf-8")
    try:
        parser.feed(raw)
        root = parser.close()
    except ET.ParseError:
        return None
    spans: dict[ET.Element, tuple[int, int]] = {}
    if b"opaque" not in raw:
        return root, spans
    opaque = [e for e in root.iter() if _is(e.tag, "opaque")]
    found: list[list[int]] = []  # [begin, end] of each <opaque>, in start (document) order
    open_: list[list[int] | None] = []  # per open element: its span if an <opaque>
    tags = 0
    for tag in _TAG.finditer(raw, body_at):
        tags += 1
        if tag[1]:  # an end tag: the span ends at its '>'
            if not open_:
                return None
            span = open_.pop()
            if span is not None:
                span[1] = tag.end()
            continue
        tag_end = tag.end()
        span = None
        if tag[2].rsplit(b":", 1)[-1] == b"opaque":
            span = [tag.start(), tag_end]
            found.append(span)
        if raw[tag_end - 2] != 0x2F:  # not <x/>
            open_.append(span)
    if open_ or len(found) != len(opaque) or tags != raw.count(b"<", body_at):
        return None  # cannot happen in a document expat accepted; be safe
    for element, (begin, end) in zip(opaque, found, strict=True):
        spans[element] = (begin, end)
    return root, spans


def _parse_xml(raw: bytes) -> tuple[ET.Element, dict[ET.Element, tuple[int, int]]]:
    """Parse ``raw`` (already known to be UTF-8) with defusedxml; raise :class:`_Refused`."""
    fast = _parse_xml_fast(raw)
    if fast is not None:
        return fast
    target = _SpanTarget(raw)
    # encoding="utf-8" overrides whatever the XML declaration claims, so byte offsets and
    # text always agree with the UTF-8 check done by the caller.
    parser: Any = DefusedXMLParser(
        target=target,
        encoding="utf-8",
        forbid_dtd=True,
        forbid_entities=True,
        forbid_external=True,
    )
    target.expat = parser.parser
    try:
        parser.feed(raw)
        root = cast(ET.Element, parser.close())
    except DTDForbidden:
        raise _Refused(
            "auth document refused: DTD (DOCTYPE) and entity declarations are not allowed",
            hostile=False,
        ) from None
    except EntitiesForbidden:
        raise _Refused(
            "auth document refused: entity declarations are not allowed", hostile=True
        ) from None
    except ExternalReferenceForbidden:
        raise _Refused(
            "auth document refused: external entity references are not allowed", hostile=True
        ) from None
    except ET.ParseError as exc:
        raise _Refused(f"auth document is not well-formed XML: {exc}", hostile=False) from None
    return root, target.spans


def _local(tag: object) -> str:
    """Local name of an element tag (``{ns}name`` → ``name``); comments/PIs give ``""``."""
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1]


def _is(tag: object, name: str) -> bool:
    """``_local(tag) == name`` for a ``name`` without ``}``, without splitting the tag."""
    return tag == name or (isinstance(tag, str) and tag.endswith(name) and tag.endswith("}" + name))


def _children(element: ET.Element, name: str) -> Iterator[ET.Element]:
    return (child for child in element if _is(child.tag, name))


def _child(element: ET.Element, name: str) -> ET.Element | None:
    return next(_children(element, name), None)


def _descendant(element: ET.Element, name: str) -> ET.Element | None:
    return next((node for node in element.iter() if _is(node.tag, name)), None)


def _text(element: ET.Element | None) -> str | None:
    """Stripped text content of ``element``; ``None`` if absent or empty."""
    if element is None:
        return None
    text = "".join(element.itertext()).strip()
    return text or None


def _child_text(element: ET.Element, name: str) -> str | None:
    return _text(_child(element, name))


def _describe(element: ET.Element) -> str:
    """``<name a="b">`` for error messages (attributes cut short)."""
    attrs = "".join(f' {_local(key)}="{value[:40]}"' for key, value in element.attrib.items())
    return f"<{_local(element.tag)[:40]}{attrs[:120]}>"


def parse_auth_response(body: bytes, *, content_type: str | None = None) -> AuthResponse:
    """Parse the body of an auth response from the headend.

    Returns an :class:`AuthForm` for an ``auth-request`` (protocol.md §2.3.2) or a legacy
    form (§2.5, ``legacy=True``) and an :class:`AuthComplete` for ``complete`` (§2.3.4) or
    any ``<auth id="success">``. A re-prompt after a failed login is still an
    :class:`AuthForm` (with ``error`` set): the session layer decides what to do.

    ``content_type`` is only quoted in error messages: real ASAs label XML as
    ``text/html`` (§2.1), so the body alone decides the dialect, as in ocserv (§2.4).

    Raises :class:`AuthXmlError` (one line) for anything else: oversized, not UTF-8, not
    well-formed, hostile (DTD/entities), wrong root element, unknown ``type``, no form.
    """
    where = f" (Content-Type {' '.join(content_type.split())[:80]})" if content_type else ""
    if len(body) > MAX_DOCUMENT_SIZE:
        raise AuthXmlError(
            f"auth document too large: {len(body)} bytes (limit {MAX_DOCUMENT_SIZE}){where}"
        )
    if not body.strip():
        raise AuthXmlError(f"auth document is empty{where}")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AuthXmlError(
            f"auth document is not valid UTF-8 (byte 0x{body[exc.start]:02x} at offset "
            f"{exc.start}){where}"
        ) from None

    try:
        root, spans = _parse_xml(body)
    except _Refused as refused:
        if refused.hostile:
            raise AuthXmlError(refused.reason) from None
        # Legacy pages (§2.5) wrap <auth> in HTML that need not be well-formed XML.
        embedded = _extract_legacy_auth(text)
        if embedded is None:
            raise AuthXmlError(refused.reason + where) from None
        try:
            root, spans = _parse_xml(embedded)
        except _Refused:
            raise AuthXmlError(refused.reason + where) from None
    return _interpret(root, spans, body)


def _extract_legacy_auth(text: str) -> bytes | None:
    """The ``<auth …>…</auth>`` substring of an HTML-ish page, or ``None`` (§2.5)."""
    found = _LEGACY_AUTH_START.search(text)
    if found is None:
        return None
    close = text.find("</auth>", found.start())
    if close < 0:
        return None
    return text[found.start() : close + len("</auth>")].encode("utf-8")


def _interpret(
    root: ET.Element, spans: Mapping[ET.Element, tuple[int, int]], raw: bytes
) -> AuthResponse:
    tag = _local(root.tag)
    if tag == "config-auth":
        return _interpret_config_auth(root, spans, raw)
    if tag == "auth":
        return _interpret_legacy(root)
    auth = _descendant(root, "auth")  # a well-formed (X)HTML page around a legacy form
    if auth is not None:
        return _interpret_legacy(auth)
    raise AuthXmlError(
        f"unexpected root element {_describe(root)}: expected <config-auth> or <auth>"
    )


def _interpret_config_auth(
    root: ET.Element, spans: Mapping[ET.Element, tuple[int, int]], raw: bytes
) -> AuthResponse:
    """``<config-auth>`` from the headend (protocol.md §2.3.2, §2.3.4, §2.4)."""
    doc_type = root.get("type")
    if doc_type is None:
        raise AuthXmlError("config-auth has no type attribute: expected auth-request or complete")
    if doc_type not in ("auth-request", "complete"):
        raise AuthXmlError(
            f"config-auth type {doc_type[:40]!r} is not understood: "
            "expected auth-request or complete"
        )
    server_version = _server_version(root)
    auth = _child(root, "auth")
    # openconnect treats <auth id="success"> as success whatever the type says (§2.3.2).
    if doc_type == "complete" or (auth is not None and auth.get("id") == "success"):
        return _complete(root, auth, server_version)

    if auth is None:
        found = ", ".join(f"<{_local(child.tag)[:40]}>" for child in root if _local(child.tag))
        raise AuthXmlError(f"auth-request has no <auth> element (found: {found or 'nothing'})")
    opaque_element = _child(root, "opaque")
    opaque: str | None = None
    if opaque_element is not None and opaque_element in spans:
        begin, end = spans[opaque_element]
        opaque = raw[begin:end].decode("utf-8")
    group_source = opaque_element if opaque_element is not None else root
    return _form(
        auth,
        fallback_error=_child_text(root, "error"),
        opaque=opaque,
        server_version=server_version,
        tunnel_group=_text(_descendant(group_source, "tunnel-group")),
        group_alias=_text(_descendant(group_source, "group-alias")),
        legacy=False,
    )


def _server_version(root: ET.Element) -> str | None:
    for version in _children(root, "version"):
        if version.get("who") == "sg":
            return _text(version)
    return None


def _complete(
    root: ET.Element, auth: ET.Element | None, server_version: str | None
) -> AuthComplete:
    """Success document (§2.3.4 ASA, §2.4 step 3 ocserv)."""
    session_token = _child_text(root, "session-token")
    if session_token is None and (auth is None or auth.get("id") != "success"):
        found = _describe(auth) if auth is not None else "no <auth>"
        raise AuthXmlError(
            f'complete document has neither <auth id="success"> nor <session-token> (found {found})'
        )
    manifest = _descendant(root, "vpn-profile-manifest")
    return AuthComplete(
        session_token=session_token,
        session_id=_child_text(root, "session-id"),
        message=_child_text(auth, "message") if auth is not None else None,
        banner=_child_text(auth, "banner") if auth is not None else None,
        server_version=server_version,
        profile_uri=_text(_descendant(manifest, "uri")) if manifest is not None else None,
        server_cert_hash=_text(_descendant(root, "server-cert-hash")),
    )


def _interpret_legacy(auth: ET.Element) -> AuthResponse:
    """A bare ``<auth>`` element: legacy form or legacy success (protocol.md §2.5)."""
    if auth.get("id") == "success":
        return AuthComplete(
            session_token=None,
            session_id=None,
            message=_child_text(auth, "message"),
            banner=_child_text(auth, "banner"),
            server_version=None,
            profile_uri=None,
            server_cert_hash=None,
        )
    return _form(
        auth,
        fallback_error=None,
        opaque=None,
        server_version=None,
        tunnel_group=None,
        group_alias=None,
        legacy=True,
    )


def _form(
    auth: ET.Element,
    *,
    fallback_error: str | None,
    opaque: str | None,
    server_version: str | None,
    tunnel_group: str | None,
    group_alias: str | None,
    legacy: bool,
) -> AuthForm:
    """Build an :class:`AuthForm` from an ``<auth>`` element (protocol.md §2.3.2)."""
    auth_id = auth.get("id", "")
    message = _child_text(auth, "message")
    error = _child_text(auth, "error") or fallback_error
    form = _child(auth, "form")
    if form is None:
        # openconnect reports a form-less <auth> as a login failure: keep that case
        # parseable when the server said why; anything else is not a form at all.
        if error is None and auth_id != "error":
            said = f", message {message[:80]!r}" if message else ""
            raise AuthXmlError(f"auth-request has no <form> in {_describe(auth)}{said}")
        method, action = "POST", "/"
        inputs: tuple[FormInput, ...] = ()
        selects: tuple[FormSelect, ...] = ()
    else:
        # Defaults when absent: method POST, action "/" (§2.3.2).
        method = (form.get("method") or "POST").strip().upper() or "POST"
        action = (form.get("action") or "/").strip() or "/"
        inputs = tuple(_inputs(form))
        selects = tuple(_selects(form))
    return AuthForm(
        auth_id=auth_id,
        title=_child_text(auth, "title"),
        message=message,
        banner=_child_text(auth, "banner"),
        error=error,
        method=method,
        action=action,
        inputs=inputs,
        selects=selects,
        opaque=opaque,
        server_version=server_version,
        tunnel_group=tunnel_group,
        group_alias=group_alias,
        legacy=legacy,
    )


def _inputs(form: ET.Element) -> Iterator[FormInput]:
    for element in _children(form, "input"):
        name = element.get("name")
        if not name:
            continue  # cannot be answered; openconnect skips it too
        yield FormInput(
            name=name,
            type=(element.get("type") or "text").strip().lower(),
            label=element.get("label", ""),
            value=element.get("value"),
        )


def _selects(form: ET.Element) -> Iterator[FormSelect]:
    for element in _children(form, "select"):
        name = element.get("name")
        if not name:
            continue
        options = []
        for option in _children(element, "option"):
            label = "".join(option.itertext()).strip()
            selected = option.get("selected")
            options.append(
                SelectOption(
                    value=option.get("value", label),
                    label=label,
                    selected=selected is not None and selected.strip().lower() not in _FALSE_WORDS,
                )
            )
        yield FormSelect(name=name, label=element.get("label", ""), options=tuple(options))


def classify_failure(form: AuthForm) -> str | None:
    """The server's reason if ``form`` is a re-prompt after a failed login, else ``None``.

    A failed login comes back as another ``auth-request`` carrying ``<error>`` or as
    ``<auth id="error">`` (protocol.md §2.3.2). ocserv answers ``401`` instead (§2.4).
    """
    if form.error is not None:
        return form.error
    if form.auth_id == "error":
        return form.message or form.title or "login failed (the server gave no reason)"
    return None


# --------------------------------------------------------------------------------------
# Building requests
# --------------------------------------------------------------------------------------


def x_pad(body_len: int) -> str:
    """The ``X-Pad`` header value: ``64 - (body_len mod 64)`` zeros, 1..64 (protocol.md §2.1)."""
    if body_len < 0:
        raise LocalProtocolError(f"x_pad: body length must not be negative, got {body_len}")
    return "0" * (64 - body_len % 64)


def _check_xml_chars(value: str, what: str) -> None:
    bad = _NOT_XML_CHAR.search(value)
    if bad is not None:
        raise LocalProtocolError(
            f"{what} contains U+{ord(bad.group()):04X}, which XML cannot carry"
        )


def _escape_text(value: str, what: str) -> str:
    """Escape character data the way libxml2 serialises it (``&<>`` and CR)."""
    _check_xml_chars(value, what)
    return (
        value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")
    )


def _escape_attr(value: str, what: str) -> str:
    """Escape an attribute value for double quotes the way libxml2 does."""
    return (
        _escape_text(value, what)
        .replace('"', "&quot;")
        .replace("\n", "&#10;")
        .replace("\t", "&#9;")
    )


def _element(name: str, value: str, what: str) -> str:
    return f"<{name}>{_escape_text(value, what)}</{name}>"


def _query_head(
    doc_type: str,
    *,
    version: str,
    device_id: str,
    capabilities: tuple[str, ...],
    aggregate_auth_version: bool,
    device_attrs: Mapping[str, str] | None,
) -> list[str]:
    """Root start tag, ``<version>``, ``<device-id>``, ``<capabilities>`` (§2.3.1).

    With ``aggregate_auth_version=False`` the document follows the 2021 openconnect tree:
    no ``aggregate-auth-version`` attribute and no ``<capabilities>`` (§2.3.1, §2.6).
    """
    root = f'<config-auth client="vpn" type="{doc_type}"'
    if aggregate_auth_version:
        root += ' aggregate-auth-version="2"'
    parts = [root + ">", f'<version who="vpn">{_escape_text(version, "version")}</version>']
    attrs = ""
    for key, value in (device_attrs or {}).items():
        if _ELEMENT_NAME.fullmatch(key) is None:
            raise LocalProtocolError(f"device attribute name {key!r} is not an XML name")
        attrs += f' {key}="{_escape_attr(value, f"device attribute {key}")}"'
    parts.append(f"<device-id{attrs}>{_escape_text(device_id, 'device id')}</device-id>")
    if aggregate_auth_version:
        if capabilities:
            methods = "".join(
                _element("auth-method", method, "capability") for method in capabilities
            )
            parts.append(f"<capabilities>{methods}</capabilities>")
        else:
            parts.append("<capabilities/>")  # always present in openconnect 9 (§2.3.1)
    return parts


def _document(parts: list[str]) -> bytes:
    return (_XML_DECLARATION + "".join(parts) + "</config-auth>\n").encode("utf-8")


def build_init(
    *,
    version: str,
    device_id: str,
    group_access: str,
    group_select: str | None = None,
    aggregate_auth_version: bool = True,
    capabilities: tuple[str, ...] = DEFAULT_CAPABILITIES,
    device_attrs: Mapping[str, str] | None = None,
) -> bytes:
    """The openconnect 9 ``init`` body (protocol.md §2.3.1; byte-exact example in §2.6).

    XML declaration line, newline, the document on one line, newline. Element order:
    ``version``, ``device-id`` (``device_attrs`` become its attributes, mobile mode),
    ``capabilities``, ``group-access``, [``group-select``].
    """
    parts = _query_head(
        "init",
        version=version,
        device_id=device_id,
        capabilities=capabilities,
        aggregate_auth_version=aggregate_auth_version,
        device_attrs=device_attrs,
    )
    parts.append(_element("group-access", group_access, "group access URL"))
    if group_select is not None:
        parts.append(_element("group-select", group_select, "group"))
    return _document(parts)


def _value_for(item: FormInput, values: Mapping[str, str]) -> str:
    """The value to send for ``item``; hidden inputs echo theirs (§2.3.2)."""
    if item.type == "hidden":
        return values.get(item.name, item.value or "")
    value = values.get(item.name, item.value)
    if value is None:
        raise LocalProtocolError(f"no value for the required form input {item.name!r}")
    return value


def _select_value(
    select: FormSelect, values: Mapping[str, str], override: str | None
) -> str | None:
    if override is not None:
        return override
    return values.get(select.name, select.default())


def build_auth_reply(
    form: AuthForm,
    values: Mapping[str, str],
    *,
    version: str,
    device_id: str,
    group_select: str | None,
    capabilities: tuple[str, ...] = DEFAULT_CAPABILITIES,
    aggregate_auth_version: bool = True,
    device_attrs: Mapping[str, str] | None = None,
) -> bytes:
    """The ``auth-reply`` body answering ``form`` (protocol.md §2.3.3).

    Order: ``version``, ``device-id``, ``capabilities``, the server's ``opaque`` (verbatim),
    ``<auth>`` with one child per text/password/hidden input named after the input
    (``answer``/``whichpin``/``new_password`` → ``<password>``, ``verify_*`` dropped;
    other selects follow the inputs), then the ``group_list`` select as a top-level
    ``<group-select>`` (``group_select``, else ``values["group_list"]``, else the selected
    option). A ``group_select`` is only sent when the form offers ``group_list``.

    Raises :class:`LocalProtocolError` when a text/password input has no value in
    ``values`` (and no ``value`` attribute), and :class:`AuthXmlError` when the server
    named an input in a way that cannot become an XML element name.
    """
    parts = _query_head(
        "auth-reply",
        version=version,
        device_id=device_id,
        capabilities=capabilities,
        aggregate_auth_version=aggregate_auth_version,
        device_attrs=device_attrs,
    )
    if form.opaque is not None:
        parts.append(form.opaque)
    auth: list[str] = []
    for item in form.inputs:
        if item.type not in _REPLY_INPUT_TYPES or item.name.startswith("verify_"):
            continue
        name = "password" if item.name in _PASSWORD_ALIASES else item.name
        if _ELEMENT_NAME.fullmatch(name) is None:
            raise AuthXmlError(f"form input name {name[:60]!r} cannot be an XML element name")
        auth.append(_element(name, _value_for(item, values), f"value of {item.name!r}"))
    trailer: list[str] = []
    for select in form.selects:
        if select.name == _GROUP_LIST:
            chosen = _select_value(select, values, group_select)
            if chosen is not None:
                trailer.append(_element("group-select", chosen, "group"))
            continue
        if _ELEMENT_NAME.fullmatch(select.name) is None:
            raise AuthXmlError(
                f"form select name {select.name[:60]!r} cannot be an XML element name"
            )
        chosen = _select_value(select, values, None)
        if chosen is None:
            raise LocalProtocolError(f"no value for the form select {select.name!r}")
        auth.append(_element(select.name, chosen, f"value of {select.name!r}"))
    parts.append(f"<auth>{''.join(auth)}</auth>" if auth else "<auth/>")
    parts.extend(trailer)
    return _document(parts)


def _urlencode(value: str) -> str:
    """openconnect's URL encoding: keep ``[A-Za-z0-9-_.~]``, ``%xx`` (lower-case hex) the rest."""
    out: list[str] = []
    for byte in value.encode("utf-8"):
        char = chr(byte)
        if byte < 0x80 and (char.isalnum() or char in "-_.~"):
            out.append(char)
        else:
            out.append(f"%{byte:02x}")
    return "".join(out)


def build_legacy_reply(
    form: AuthForm, values: Mapping[str, str], group_select: str | None = None
) -> bytes:
    """The urlencoded POST body answering a legacy form (protocol.md §2.5).

    ``username=…&password=…[&group_list=…]``: the text/password/hidden inputs in form
    order, then the selects (``group_list`` takes ``group_select`` when given). Raises
    :class:`LocalProtocolError` when a text/password input has no value.
    """
    pairs: list[tuple[str, str]] = []
    for item in form.inputs:
        if item.type in _REPLY_INPUT_TYPES:
            pairs.append((item.name, _value_for(item, values)))
    for select in form.selects:
        chosen = _select_value(select, values, group_select if select.name == _GROUP_LIST else None)
        if chosen is None:
            raise LocalProtocolError(f"no value for the form select {select.name!r}")
        pairs.append((select.name, chosen))
    return "&".join(f"{_urlencode(key)}={_urlencode(value)}" for key, value in pairs).encode(
        "ascii"
    )
