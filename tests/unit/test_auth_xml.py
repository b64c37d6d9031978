"""Unit tests for tunnelswarm.http.auth (protocol.md §2.1, §2.3-§2.6)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from urllib.parse import parse_qsl

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tunnelswarm.errors import AuthXmlError, LocalProtocolError, RemoteProtocolError
from tunnelswarm.http.auth import (
    MAX_DOCUMENT_SIZE,
    AuthComplete,
    AuthForm,
    build_auth_reply,
    build_init,
    build_legacy_reply,
    classify_failure,
    parse_auth_response,
    x_pad,
)

# --- documents from protocol.md ---------------------------------------------------------

# §2.4 ocserv 1.1.6 step 1: username-only form.
OCSERV_STEP1 = b"""<?xml version="1.0" encoding="UTF-8"?>
<config-auth client="vpn" type="auth-request">
<version who="sg">0.1(1)</version>
<auth id="main">
<message>Please enter your username.</message>
<form method="post" action="/auth">
<input type="text" name="username" label="Username:" />
</form></auth>
</config-auth>
"""

# §2.4 step 2: password-only form.
OCSERV_STEP2 = b"""<config-auth client="vpn" type="auth-request">
<version who="sg">0.1(1)</version>
<auth id="main">
<message>Please enter your password.</message>
<form method="post" action="/auth">
<input type="password" name="password" label="Password:" />
</form></auth></config-auth>"""

# §2.4 newer ocserv: one form with username, password and a group list.
OCSERV_ONE_FORM = b"""<?xml version="1.0" encoding="UTF-8"?>
<config-auth client="vpn" type="auth-request">
<version who="sg">0.1(1)</version>
<auth id="main">
<banner>pre-login banner</banner>
<message>Please enter your username and password.</message>
<form method="post" action="/auth">
<input type="text" name="username" label="Username:" />
<input type="password" name="password" label="Password:" />
<select name="group_list" label="Group:">
<option>GROUP-A</option><option>GROUP-B</option>
</select>
</form></auth>
</config-auth>
"""

# §2.4 step 3: success.
OCSERV_SUCCESS = b"""<?xml version="1.0" encoding="UTF-8"?>
<config-auth client="vpn" type="complete">
<version who="sg">0.1(1)</version>
<auth id="success">
<title>SSL VPN Service</title><banner>Welcome</banner></auth>
<config client="vpn" type="private"><vpn-profile-manifest><vpn rev="1.0"><file type="profile" \
service-type="user"><uri>/profiles/profile.xml</uri><hash type="sha1">\
0123456789abcdef0123456789abcdef01234567</hash></file></vpn></vpn-profile-manifest>
</config></config-auth>"""

ASA_OPAQUE = b"""<opaque is-for="sg">
    <tunnel-group>VPN</tunnel-group>
    <aggauth-handle>864640002</aggauth-handle>
    <auth-method>multiple-cert</auth-method>
    <auth-method>single-sign-on</auth-method>
    <group-alias>TEST-VPN</group-alias>
    <config-hash>1517719014268</config-hash>
  </opaque>"""

# §2.3.2 real ASA auth-request.
ASA_AUTH_REQUEST = (
    b"""<?xml version="1.0" encoding="UTF-8"?>
<config-auth client="vpn" type="auth-request" aggregate-auth-version="2">
  <version who="sg">9.1(4)</version>
  """
    + ASA_OPAQUE
    + b"""
  <auth id="main">
    <title>Login</title>
    <message>Please enter your username and password.</message>
    <banner></banner>
    <form>
      <input type="text" name="username" label="Username:"></input>
      <input type="password" name="password" label="Password:"></input>
      <select name="group_list" label="GROUP:">
        <option selected="true">TEST-VPN</option>
        <option>OTHER</option>
      </select>
    </form>
  </auth>
</config-auth>
"""
)

# §2.3.4 ASA complete.
ASA_COMPLETE = b"""<?xml version="1.0" encoding="UTF-8"?>
<config-auth client="vpn" type="complete" aggregate-auth-version="2">
  <session-id>101111</session-id>
  <session-token>AA8E01@10240@7F3A@C1B2D3</session-token>
  <auth id="success">
    <message id="0" param1="" param2=""></message>
  </auth>
  <capabilities><crypto-supported>ssl-dhe</crypto-supported></capabilities>
  <config client="vpn" type="private">
    <vpn-base-config>
      <server-cert-hash>ABCDEF0123456789ABCDEF0123456789ABCDEF01</server-cert-hash>
    </vpn-base-config>
    <opaque is-for="vpn-client"><service-profile-manifest/></opaque>
    <vpn-profile-manifest><vpn rev="1.0"><file type="profile" service-type="user">
       <uri>/CACHE/stc/profiles/profile.xml</uri><hash type="sha1">00</hash></file></vpn>
    </vpn-profile-manifest>
  </config>
</config-auth>
"""

# §2.5 legacy form.
LEGACY_FORM = (
    b'<auth id="main"><title>SSL VPN</title><message>Please log in</message>'
    b'<form method="post" action="/+webvpn+/index.html">'
    b'<input type="text" name="username" label="Username:"/>'
    b'<input type="password" name="password" label="Password:"/>'
    b'<select name="group_list" label="Group:"><option value="g1">Group One</option>'
    b'<option value="g2" selected="selected">Group Two</option></select></form></auth>'
)

# §2.6: the exact openconnect 9 init body.
INIT_309 = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<config-auth client="vpn" type="init" aggregate-auth-version="2">'
    b'<version who="vpn">v9.12</version><device-id>linux-64</device-id>'
    b"<capabilities><auth-method>single-sign-on-v2</auth-method></capabilities>"
    b"<group-access>https://vpn.example.com</group-access></config-auth>\n"
)

VERSION = "v9.12"
DEVICE = "linux-64"


def _form(body: bytes) -> AuthForm:
    result = parse_auth_response(body)
    assert isinstance(result, AuthForm)
    return result


def _one_line_auth_error(body: bytes) -> str:
    with pytest.raises(AuthXmlError) as info:
        parse_auth_response(body)
    message = str(info.value)
    assert message
    assert "\n" not in message
    return message


# --- ocserv (§2.4) ---------------------------------------------------------------------


def test_ocserv_step1_username_only() -> None:
    form = _form(OCSERV_STEP1)
    assert form.auth_id == "main"
    assert form.message == "Please enter your username."
    assert form.server_version == "0.1(1)"
    assert form.method == "POST"
    assert form.action == "/auth"
    assert [(i.name, i.type, i.label) for i in form.inputs] == [("username", "text", "Username:")]
    assert form.has_input("username")
    assert not form.has_input("password")
    assert form.password_inputs() == ()
    assert form.group_select() is None
    assert form.opaque is None
    assert not form.legacy
    assert classify_failure(form) is None

    reply = build_auth_reply(
        form,
        {"username": "alice", "password": "pw"},
        group_select=None,
        version=VERSION,
        device_id=DEVICE,
    )
    root = ET.fromstring(reply)
    auth = root.find("auth")
    assert auth is not None
    assert [(c.tag, c.text) for c in auth] == [("username", "alice")]
    assert root.find("group-select") is None


def test_ocserv_step2_password_only() -> None:
    form = _form(OCSERV_STEP2)
    assert form.message == "Please enter your password."
    assert [i.name for i in form.password_inputs()] == ["password"]
    reply = build_auth_reply(
        form,
        {"username": "alice", "password": "s3cr&t<"},
        group_select=None,
        version=VERSION,
        device_id=DEVICE,
    )
    assert b"<auth><password>s3cr&amp;t&lt;</password></auth>" in reply
    auth = ET.fromstring(reply).find("auth")
    assert auth is not None
    assert [(c.tag, c.text) for c in auth] == [("password", "s3cr&t<")]


def test_ocserv_success() -> None:
    done = parse_auth_response(OCSERV_SUCCESS, content_type="text/xml")
    assert isinstance(done, AuthComplete)
    assert done.session_token is None
    assert done.server_version == "0.1(1)"
    assert done.banner == "Welcome"
    assert done.profile_uri == "/profiles/profile.xml"
    assert done.server_cert_hash is None


def test_ocserv_one_form_with_groups() -> None:
    form = _form(OCSERV_ONE_FORM)
    assert form.banner == "pre-login banner"
    select = form.group_select()
    assert select is not None
    assert select.label == "Group:"
    assert [(o.value, o.label, o.selected) for o in select.options] == [
        ("GROUP-A", "GROUP-A", False),
        ("GROUP-B", "GROUP-B", False),
    ]
    reply = build_auth_reply(
        form,
        {"username": "u", "password": "p"},
        group_select="GROUP-B",
        version=VERSION,
        device_id=DEVICE,
    )
    root = ET.fromstring(reply)
    assert [c.tag for c in root] == ["version", "device-id", "capabilities", "auth", "group-select"]
    assert root.findtext("group-select") == "GROUP-B"


# --- ASA (§2.3.2-§2.3.4, §2.7) ---------------------------------------------------------


def test_asa_auth_request() -> None:
    form = _form(ASA_AUTH_REQUEST)
    assert form.auth_id == "main"
    assert form.title == "Login"
    assert form.message == "Please enter your username and password."
    assert form.banner is None
    assert form.method == "POST"  # default (§2.3.2)
    assert form.action == "/"  # default (§2.3.2)
    assert form.server_version == "9.1(4)"
    assert form.tunnel_group == "VPN"
    assert form.group_alias == "TEST-VPN"
    assert form.opaque == ASA_OPAQUE.decode()
    assert "<aggauth-handle>864640002</aggauth-handle>" in form.opaque
    select = form.group_select()
    assert select is not None
    assert select.default() == "TEST-VPN"
    assert [o.selected for o in select.options] == [True, False]


def test_asa_auth_reply_structure_and_opaque_echo() -> None:
    form = _form(ASA_AUTH_REQUEST)
    reply = build_auth_reply(
        form,
        {"username": "alice", "password": "secret"},
        group_select=None,
        version=VERSION,
        device_id=DEVICE,
    )
    assert reply.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<config-auth client="vpn" ')
    assert reply.endswith(b"</config-auth>\n")
    assert ASA_OPAQUE in reply  # byte for byte, line breaks included
    root = ET.fromstring(reply)
    assert root.attrib == {"client": "vpn", "type": "auth-reply", "aggregate-auth-version": "2"}
    assert [c.tag for c in root] == [
        "version",
        "device-id",
        "capabilities",
        "opaque",
        "auth",
        "group-select",
    ]
    assert root.findtext("opaque/aggauth-handle") == "864640002"
    auth = root.find("auth")
    assert auth is not None
    assert [(c.tag, c.text) for c in auth] == [("username", "alice"), ("password", "secret")]
    assert root.findtext("group-select") == "TEST-VPN"  # the selected option
    assert root.find("auth/group_list") is None


def test_asa_complete() -> None:
    done = parse_auth_response(ASA_COMPLETE, content_type="text/html; charset=utf-8")
    assert isinstance(done, AuthComplete)
    assert done.session_token == "AA8E01@10240@7F3A@C1B2D3"
    assert done.session_id == "101111"
    assert done.message is None
    assert done.profile_uri == "/CACHE/stc/profiles/profile.xml"
    assert done.server_cert_hash == "ABCDEF0123456789ABCDEF0123456789ABCDEF01"


def test_opaque_echo_is_raw_text_not_reserialised() -> None:
    opaque = (
        "<opaque  is-for='sg' x=\"a&gt;b\">\r\n\t<tunnel-group>V&amp;P</tunnel-group>"
        "<!-- c --><empty/><x><![CDATA[<raw>]]></x>\u00e9</opaque>"
    )
    body = (
        '<config-auth client="vpn" type="auth-request">' + opaque + '<auth id="main"><form>'
        '<input type="password" name="password"/></form></auth></config-auth>'
    ).encode()
    form = _form(body)
    assert form.opaque == opaque
    assert form.tunnel_group == "V&P"
    reply = build_auth_reply(
        form, {"password": "p"}, group_select=None, version=VERSION, device_id=DEVICE
    )
    assert opaque.encode() in reply


def test_self_closing_opaque_and_bom() -> None:
    body = (
        b'\xef\xbb\xbf<config-auth client="vpn" type="auth-request"><opaque is-for="sg"/>'
        b'<auth id="main"><form><input type="text" name="username"/></form></auth></config-auth>'
    )
    assert _form(body).opaque == '<opaque is-for="sg"/>'


def test_login_failure_reprompt() -> None:
    body = ASA_AUTH_REQUEST.replace(
        b"<title>Login</title>", b'<title>Login</title><error id="88">Login failed.</error>'
    )
    form = _form(body)
    assert form.error == "Login failed."
    assert classify_failure(form) == "Login failed."


def test_auth_id_error_without_form() -> None:
    body = (
        b'<config-auth client="vpn" type="auth-request"><auth id="error">'
        b"<message>Authentication failed</message></auth></config-auth>"
    )
    form = _form(body)
    assert form.inputs == ()
    assert classify_failure(form) == "Authentication failed"


def test_answer_whichpin_new_password_map_to_password_and_verify_dropped() -> None:
    body = (
        b'<config-auth client="vpn" type="auth-request"><auth id="challenge"><form>'
        b'<input type="text" name="answer"/><input type="password" name="new_password"/>'
        b'<input type="password" name="verify_password"/>'
        b'<input type="hidden" name="state" value="xyz"/>'
        b'<input type="submit" name="go" value="Go"/>'
        b"</form></auth></config-auth>"
    )
    form = _form(body)
    reply = build_auth_reply(
        form,
        {"answer": "123456", "new_password": "n"},
        group_select=None,
        version=VERSION,
        device_id=DEVICE,
    )
    auth = ET.fromstring(reply).find("auth")
    assert auth is not None
    assert [(c.tag, c.text) for c in auth] == [
        ("password", "123456"),
        ("password", "n"),
        ("state", "xyz"),
    ]


def test_missing_required_value() -> None:
    form = _form(OCSERV_ONE_FORM)
    with pytest.raises(LocalProtocolError, match="'password'"):
        build_auth_reply(
            form, {"username": "u"}, group_select=None, version=VERSION, device_id=DEVICE
        )
    with pytest.raises(LocalProtocolError, match="'password'"):
        build_legacy_reply(form, {"username": "u"}, None)


def test_hostile_input_name_refused() -> None:
    body = (
        b'<config-auth client="vpn" type="auth-request"><auth id="main"><form>'
        b'<input type="text" name="a&gt;&lt;b"/></form></auth></config-auth>'
    )
    with pytest.raises(AuthXmlError, match="XML element name"):
        build_auth_reply(
            _form(body), {"a><b": "x"}, group_select=None, version=VERSION, device_id=DEVICE
        )


def test_reply_without_aggregate_auth_version() -> None:
    form = _form(OCSERV_STEP1)
    reply = build_auth_reply(
        form,
        {"username": "u"},
        group_select=None,
        aggregate_auth_version=False,
        version=VERSION,
        device_id=DEVICE,
    )
    root = ET.fromstring(reply)
    assert "aggregate-auth-version" not in root.attrib
    assert root.find("capabilities") is None


# --- legacy (§2.5) ---------------------------------------------------------------------


def test_legacy_form_and_reply() -> None:
    form = _form(LEGACY_FORM)
    assert form.legacy
    assert form.auth_id == "main"
    assert form.title == "SSL VPN"
    assert form.action == "/+webvpn+/index.html"
    select = form.group_select()
    assert select is not None
    assert select.default() == "g2"
    body = build_legacy_reply(form, {"username": "alice", "password": "p&ss w=rd"}, None)
    assert body == b"username=alice&password=p%26ss%20w%3drd&group_list=g2"
    assert parse_qsl(body.decode()) == [
        ("username", "alice"),
        ("password", "p&ss w=rd"),
        ("group_list", "g2"),
    ]
    assert build_legacy_reply(form, {"username": "a", "password": "b"}, "g1").endswith(
        b"&group_list=g1"
    )


def test_legacy_form_embedded_in_html_page() -> None:
    page = (
        b"<html><head><title>SSL VPN</title><script>if (a < b && c) {}</script></head>"
        b"<body><br>" + LEGACY_FORM + b"<p>&nbsp;</body></html>"
    )
    form = _form(page)
    assert form.legacy
    assert [i.name for i in form.inputs] == ["username", "password"]


def test_legacy_form_in_wellformed_xhtml() -> None:
    page = b"<html><body><div>" + LEGACY_FORM + b"</div></body></html>"
    assert _form(page).legacy


def test_legacy_success() -> None:
    done = parse_auth_response(b'<html><auth id="success"><title>ok</title></auth></html>')
    assert isinstance(done, AuthComplete)
    assert done.session_token is None


# --- building the init (§2.3.1, §2.6) and X-Pad (§2.1) ----------------------------------


def test_init_exact_309_bytes() -> None:
    body = build_init(version="v9.12", device_id="linux-64", group_access="https://vpn.example.com")
    assert body == INIT_309
    assert len(body) == 309
    assert x_pad(len(body)) == "0" * 11


def test_init_group_select_and_escaping() -> None:
    body = build_init(
        version="v9.01-3",
        device_id="android",
        group_access="https://h:8443/a&b",
        group_select="G<1>",
        device_attrs={"platform-version": '1"2', "device-type": "Pixel", "unique-id": "ab"},
        capabilities=(),
    )
    root = ET.fromstring(body)
    assert [c.tag for c in root] == [
        "version",
        "device-id",
        "capabilities",
        "group-access",
        "group-select",
    ]
    assert root.findtext("group-access") == "https://h:8443/a&b"
    assert root.findtext("group-select") == "G<1>"
    device = root.find("device-id")
    assert device is not None
    assert device.attrib == {"platform-version": '1"2', "device-type": "Pixel", "unique-id": "ab"}
    assert b"<capabilities/>" in body


def test_init_refuses_unrepresentable_characters() -> None:
    with pytest.raises(LocalProtocolError):
        build_init(version="v9", device_id="linux-64", group_access="x\x01")


def test_x_pad() -> None:
    assert x_pad(0) == "0" * 64
    assert x_pad(64) == "0" * 64
    assert x_pad(63) == "0"
    assert x_pad(65) == "0" * 63
    for n in range(300):
        assert 1 <= len(x_pad(n)) <= 64
        assert (n + len(x_pad(n))) % 64 == 0


# --- refusals ---------------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
]>
<config-auth client="vpn" type="auth-request"><auth id="main"><message>&lol2;</message>
</auth></config-auth>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<config-auth client="vpn" type="auth-request"><auth id="main"><message>&xxe;</message>
</auth></config-auth>"""

PLAIN_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE config-auth SYSTEM "http://example.com/x.dtd">
<config-auth client="vpn" type="complete"><auth id="success"/></config-auth>"""


@pytest.mark.parametrize("body", [BILLION_LAUGHS, EXTERNAL_ENTITY, PLAIN_DTD])
def test_hostile_xml_refused(body: bytes) -> None:
    message = _one_line_auth_error(body)
    assert message.startswith("auth document refused")


def test_hostile_dtd_around_legacy_auth_refused() -> None:
    body = b'<!DOCTYPE x [<!ENTITY a "aaaa">]><auth id="main"><message>&a;</message></auth>'
    assert "refused" in _one_line_auth_error(body)


def test_oversized_refused() -> None:
    body = b"<config-auth>" + b" " * MAX_DOCUMENT_SIZE + b"</config-auth>"
    assert "too large" in _one_line_auth_error(body)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"", "empty"),
        (b"\x00\xff\xfe garbage", "UTF-8"),
        (b"<config-auth>\xe9</config-auth>", "UTF-8"),
        (b"not xml at all", "well-formed"),
        (b"<config-auth", "well-formed"),
        (b"<html><body>hello</body></html>", "<html>"),
        (b'<config-auth type="init"/>', "'init'"),
        (b"<config-auth/>", "no type"),
        (b'<config-auth type="auth-request"><opaque/></config-auth>', "<opaque>"),
        (b'<config-auth type="auth-request"><auth id="main"/></config-auth>', "no <form>"),
        (b'<config-auth type="complete"><auth id="main"/></config-auth>', "success"),
        (b'<auth id="main"><message>hi</message></auth>', "no <form>"),
    ],
)
def test_bad_documents(body: bytes, needle: str) -> None:
    message = _one_line_auth_error(body)
    assert needle in message


def test_error_mentions_content_type() -> None:
    with pytest.raises(AuthXmlError, match="text/html"):
        parse_auth_response(b"<<<", content_type="text/html")


def test_auth_xml_error_is_remote_protocol_error() -> None:
    with pytest.raises(RemoteProtocolError):
        parse_auth_response(b"<x/>")


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=512),
        st.text(alphabet="<>/=\"' &;!?[]-auth id=config-formnput", max_size=300).map(str.encode),
        st.sampled_from([OCSERV_STEP1, ASA_AUTH_REQUEST, LEGACY_FORM, ASA_COMPLETE]).flatmap(
            lambda doc: st.integers(0, len(doc)).map(lambda n: doc[:n])
        ),
    )
)
def test_parse_never_raises_anything_else(body: bytes) -> None:
    reason: str | None = None
    try:
        result: object = parse_auth_response(body)
    except AuthXmlError as exc:
        reason = str(exc)
        result = None
    if reason is None:
        assert isinstance(result, AuthForm | AuthComplete)
    else:
        assert reason
        assert "\n" not in reason
