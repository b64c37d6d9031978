"""Unit tests for tunnelswarm.asa.config and tunnelswarm.asa.console: the mock ASA's
configuration model, its CLI grammar, ``show running-config`` and the admin console."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from tunnelswarm.asa.config import (
    DEFAULT_GROUP_POLICY,
    DEFAULT_SIMULTANEOUS_LOGINS,
    DFLT_GRP_POLICY,
    INHERIT,
    INVALID_INPUT,
    AaaMaxFailChanged,
    AnyconnectImage,
    Args,
    AsaConfig,
    AsaConfigError,
    CommandContext,
    ConfigStore,
    DtlsPortChanged,
    GroupPolicyChanged,
    HostnameChanged,
    InterfaceChanged,
    InterfaceDisabled,
    InterfaceEnabled,
    IpPool,
    PoolAllocator,
    TunnelGroupChanged,
    TunnelGroupRemoved,
    WebvpnConfig,
    WebvpnPortChanged,
    Word,
    cmd,
    diff_configs,
    parse_config,
    render_running_config,
)
from tunnelswarm.asa.console import AdminConsole, ShowRegistry
from tunnelswarm.errors import ConfigError, LocalProtocolError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "asa-9.1.cfg"


def example() -> AsaConfig:
    return parse_config(EXAMPLE.read_text())


def console(cfg: AsaConfig | None = None, *lines: str) -> AdminConsole:
    """A privileged console in ``configure terminal``, after ``lines`` (all must succeed)."""
    con = AdminConsole(cfg, privileged=True)
    for line in ("configure terminal", *lines):
        assert con.feed(line) == [], line
    con.drain_events()
    return con


def roundtrip(cfg: AsaConfig) -> None:
    text = "\n".join(render_running_config(cfg))
    assert parse_config(text) == cfg, text


# ===================================================================== the example file
def test_example_parses_to_the_demo_setup() -> None:
    cfg = example()
    assert cfg.asa_version == "9.1(4)"
    assert cfg.interface_by_nameif("outside") is not None
    assert cfg.interface_by_nameif("outside").ip_address == IPv4Address("172.16.11.1")  # type: ignore[union-attr]
    assert cfg.webvpn.enabled_interfaces == ("outside",)
    assert (cfg.webvpn.port, cfg.webvpn.dtls_port) == (443, 443)
    assert cfg.webvpn.anyconnect_enabled
    assert cfg.webvpn.tunnel_group_list_enabled
    assert cfg.authenticate("test", "test") is not None
    assert cfg.authenticate("test", "wrong") is None
    pool = cfg.pool("ac_pool")
    assert pool is not None
    assert (str(pool.first), str(pool.last), pool.size) == ("10.10.10.10", "10.10.10.250", 241)
    assert cfg.tcpmss == 1380
    eff = cfg.effective_policy("ac_users")
    assert eff.name == "ac_users_group"
    assert eff.ssl_client_allowed
    assert eff.dtls
    assert eff.anyconnect_mtu is None  # not configured: the tech note's 1418/1347 case
    assert eff.mtu_or_default == 1406
    assert (eff.keepalive, eff.dpd_gateway, eff.dpd_client) == (20, 30, 30)
    assert eff.idle_timeout_seconds == 3600
    assert eff.session_timeout_seconds is None
    assert eff.vpn_simultaneous_logins == 100  # set for the many `test` clients of demos
    assert cfg.aaa_local_max_fail is None


def test_example_group_selection() -> None:
    cfg = example()
    assert cfg.tunnel_group_for_alias("ac_users") is cfg.tunnel_group("ac_users")
    assert cfg.tunnel_group_for_alias("nope") is None
    tg = cfg.tunnel_group_for_url("HTTPS://172.16.11.1/ac_users/")
    assert tg is not None
    assert tg.name == "ac_users"
    assert cfg.tunnel_group_for_url("https://172.16.11.1/other") is None
    assert cfg.select_tunnel_group(url="https://172.16.11.1/ac_users").name == "ac_users"
    assert cfg.select_tunnel_group(alias="ac_users").name == "ac_users"
    assert cfg.select_tunnel_group().name == "DefaultWEBVPNGroup"
    assert cfg.group_list() == ["ac_users"]
    assert [p.name for p in cfg.tunnel_group_pools("ac_users")] == ["ac_pool"]


def test_example_roundtrips() -> None:
    roundtrip(example())
    roundtrip(AsaConfig())


# ===================================================================== the tech note
TECH_NOTE_START = AsaConfig(
    interfaces=(
        dataclasses.replace(AsaConfig().interfaces[0], ip_address=IPv4Address("172.16.11.1")),
    ),
    webvpn=WebvpnConfig(
        anyconnect_images=(AnyconnectImage("disk0:/anyconnect-win-3.1.04066-k9.pkg", 1),),
        anyconnect_enabled=True,
    ),
)


def test_tech_note_sequence_prompts_events_and_show_run() -> None:
    con = AdminConsole(TECH_NOTE_START)
    steps: list[tuple[str, str, list[object]]] = [
        ("ciscoasa>", "enable", []),
        ("Password:", "", []),
        ("ciscoasa#", "configure terminal", []),
        ("ciscoasa(config)#", "webvpn", []),
        ("ciscoasa(config-webvpn)#", "port 444", [WebvpnPortChanged(443, 444)]),
        ("ciscoasa(config-webvpn)#", "enable outside", [InterfaceEnabled("outside")]),
        ("ciscoasa(config-webvpn)#", "dtls port 444", [DtlsPortChanged(443, 444)]),
        ("ciscoasa(config-webvpn)#", "anyconnect enable", []),  # already enabled: no change
    ]
    for prompt, line, events in steps:
        assert con.prompt == prompt
        assert con.feed(line) == []
        assert con.drain_events() == events, line
    assert con.feed("show run webvpn") == [
        "webvpn",
        " port 444",
        " enable outside",
        " dtls port 444",
        " anyconnect image disk0:/anyconnect-win-3.1.04066-k9.pkg 1",
        " anyconnect enable",
    ]
    # CSCuh61321 workaround (§8.1): re-enable the interface to re-bind the listeners
    assert con.feed("no enable outside") == []
    assert con.feed("enable outside") == []
    assert con.drain_events() == [InterfaceDisabled("outside"), InterfaceEnabled("outside")]
    assert con.feed("end") == []
    assert con.prompt == "ciscoasa#"


def test_every_sub_mode_prompt_and_exit_end() -> None:
    con = console(example())
    chain = [
        ("interface GigabitEthernet0/0", "ciscoasa(config-if)#"),
        ("webvpn", "ciscoasa(config-webvpn)#"),
        ("group-policy ac_users_group attributes", "ciscoasa(config-group-policy)#"),
        ("webvpn", "ciscoasa(config-group-webvpn)#"),
        ("exit", "ciscoasa(config-group-policy)#"),
        ("exit", "ciscoasa(config)#"),
        ("tunnel-group ac_users general-attributes", "ciscoasa(config-tunnel-general)#"),
        ("tunnel-group ac_users webvpn-attributes", "ciscoasa(config-tunnel-webvpn)#"),
        ("end", "ciscoasa#"),
        ("conf t", "ciscoasa(config)#"),
        ("exit", "ciscoasa#"),
        ("disable", "ciscoasa>"),
    ]
    for line, prompt in chain:
        assert con.feed(line) == [], line
        assert con.prompt == prompt, line


# ===================================================================== every command + no form
Get = Callable[[AsaConfig], object]


def _gp(attr: str) -> Get:
    return lambda c: getattr(c.group_policy("GP"), attr)


def _tg(attr: str) -> Get:
    return lambda c: getattr(c.tunnel_group("TG"), attr)


_GP = ("group-policy GP internal", "group-policy GP attributes")
_GPW = (*_GP, "webvpn")
_TGG = ("tunnel-group TG type remote-access", "tunnel-group TG general-attributes")
_TGW = ("tunnel-group TG type remote-access", "tunnel-group TG webvpn-attributes")
_WEB = ("webvpn",)
_IF = ("interface GigabitEthernet0/2",)
_POOLS = ("ip local pool P1 10.0.0.1-10.0.0.9 mask 255.255.255.0", "group-policy GP internal")

# (setup lines, command, getter, value after command, no-form, value after no-form)
COMMANDS: list[tuple[tuple[str, ...], str, Get, object, str, object]] = [
    ((), "hostname fw1", lambda c: c.hostname, "fw1", "no hostname", "ciscoasa"),
    ((), "asa-version 8.4(6)", lambda c: c.asa_version, "8.4(6)", "no asa-version", "9.1(4)"),
    (
        (),
        "enable password s3cret",
        lambda c: c.enable_password,
        "s3cret",
        "no enable password",
        None,
    ),
    (
        (),
        "ip local pool P 10.1.0.1-10.1.0.3 mask 255.255.255.0",
        lambda c: c.pool("P"),
        IpPool("P", IPv4Address("10.1.0.1"), IPv4Address("10.1.0.3"), IPv4Address("255.255.255.0")),
        "no ip local pool P",
        None,
    ),
    (
        (),
        "username bob password pw",
        lambda c: c.user("bob") and c.user("bob").privilege,
        2,
        "no username bob",
        None,
    ),  # type: ignore[union-attr]
    (
        (),
        "username bob password pw privilege 15",
        lambda c: c.user("bob") and c.user("bob").privilege,
        15,
        "no username bob",
        None,
    ),  # type: ignore[union-attr]
    (
        (),
        "sysopt connection tcpmss 1460",
        lambda c: c.tcpmss,
        1460,
        "no sysopt connection tcpmss",
        1380,
    ),
    ((), "sysopt connection tcpmss 0", lambda c: c.tcpmss, 0, "no sysopt connection tcpmss", 1380),
    (
        (),
        "aaa local authentication attempts max-fail 3",
        lambda c: c.aaa_local_max_fail,
        3,
        "no aaa local authentication attempts max-fail",
        None,
    ),
    (
        (),
        "aaa local authentication attempts max-fail 16",
        lambda c: c.aaa_local_max_fail,
        16,
        "no aaa local authentication attempts max-fail 16",
        None,
    ),
    (
        (),
        "ssl cipher tlsv1.2 high",
        lambda c: c.ssl_cipher("tlsv1.2").level,
        "high",
        "no ssl cipher tlsv1.2",
        "medium",
    ),
    (
        (),
        'ssl cipher tlsv1 custom "RC4-SHA:AES128-SHA"',
        lambda c: c.ssl_cipher("tlsv1").custom,
        "RC4-SHA:AES128-SHA",
        "no ssl cipher tlsv1",
        None,
    ),
    ((), "logging enable", lambda c: c.logging.enabled, True, "no logging enable", False),
    ((), "logging timestamp", lambda c: c.logging.timestamp, True, "no logging timestamp", False),
    (
        (),
        "logging buffered informational",
        lambda c: c.logging.buffered_level,
        6,
        "no logging buffered",
        None,
    ),
    ((), "logging buffered 3", lambda c: c.logging.buffered_level, 3, "no logging buffered", None),
    (
        (),
        "logging trap informational",
        lambda c: c.logging.trap_level,
        6,
        "no logging trap",
        None,
    ),
    ((), "logging trap 4", lambda c: c.logging.trap_level, 4, "no logging trap", None),
    ((), "logging facility 23", lambda c: c.logging.facility, 23, "no logging facility", 20),
    (
        (),
        "logging host inside 10.1.1.50 udp/1514",
        lambda c: [(h.interface, str(h.address), h.protocol, h.port) for h in c.logging.hosts],
        [("inside", "10.1.1.50", "udp", 1514)],
        "no logging host inside 10.1.1.50",
        [],
    ),
    (
        (),
        "group-policy GP internal",
        lambda c: c.group_policy("GP") is not None,
        True,
        "no group-policy GP",
        False,
    ),
    (
        (),
        "tunnel-group TG type remote-access",
        lambda c: c.tunnel_group("TG") is not None,
        True,
        "no tunnel-group TG",
        False,
    ),
    (
        _IF,
        "nameif dmz",
        lambda c: c.interface("GigabitEthernet0/2").nameif,
        "dmz",
        "no nameif",
        None,
    ),  # type: ignore[union-attr]
    (
        _IF,
        "security-level 50",
        lambda c: c.interface("GigabitEthernet0/2").security_level,
        50,
        "no security-level",
        None,
    ),  # type: ignore[union-attr]
    (
        _IF,
        "ip address 192.0.2.1 255.255.255.0",
        lambda c: str(c.interface("GigabitEthernet0/2").ip_address),  # type: ignore[union-attr]
        "192.0.2.1",
        "no ip address",
        "None",
    ),
    (
        _IF,
        "shutdown",
        lambda c: c.interface("GigabitEthernet0/2").shutdown,
        True,
        "no shutdown",
        False,
    ),  # type: ignore[union-attr]
    (_WEB, "port 8443", lambda c: c.webvpn.port, 8443, "no port", 443),
    (
        _WEB,
        "enable inside",
        lambda c: c.webvpn.enabled_interfaces,
        ("inside",),
        "no enable inside",
        (),
    ),
    (_WEB, "dtls port 4443", lambda c: c.webvpn.dtls_port, 4443, "no dtls port", 443),
    (
        _WEB,
        "anyconnect enable",
        lambda c: c.webvpn.anyconnect_enabled,
        True,
        "no anyconnect enable",
        False,
    ),
    (
        _WEB,
        "anyconnect image disk0:/ac.pkg 2",
        lambda c: c.webvpn.anyconnect_images,
        (AnyconnectImage("disk0:/ac.pkg", 2),),
        "no anyconnect image disk0:/ac.pkg",
        (),
    ),
    (
        _WEB,
        "tunnel-group-list enable",
        lambda c: c.webvpn.tunnel_group_list_enabled,
        True,
        "no tunnel-group-list enable",
        False,
    ),
    (
        _GP,
        "vpn-tunnel-protocol ssl-clientless ssl-client",
        _gp("vpn_tunnel_protocol"),
        ("ssl-client", "ssl-clientless"),
        "no vpn-tunnel-protocol",
        INHERIT,
    ),
    (_GP, "vpn-idle-timeout 45", _gp("vpn_idle_timeout"), 45, "no vpn-idle-timeout", INHERIT),
    (
        _GP,
        "vpn-simultaneous-logins 2",
        _gp("vpn_simultaneous_logins"),
        2,
        "no vpn-simultaneous-logins",
        INHERIT,
    ),
    (
        _GP,
        "vpn-simultaneous-logins 0",
        _gp("vpn_simultaneous_logins"),
        0,
        "no vpn-simultaneous-logins 0",
        INHERIT,
    ),
    (
        _GP,
        "vpn-simultaneous-logins 2147483647",
        _gp("vpn_simultaneous_logins"),
        2147483647,
        "no vpn-simultaneous-logins",
        INHERIT,
    ),
    (_GP, "vpn-idle-timeout none", _gp("vpn_idle_timeout"), None, "no vpn-idle-timeout", INHERIT),
    (
        _GP,
        "vpn-session-timeout 720",
        _gp("vpn_session_timeout"),
        720,
        "no vpn-session-timeout",
        INHERIT,
    ),
    (
        _GP,
        "vpn-session-timeout none",
        _gp("vpn_session_timeout"),
        None,
        "no vpn-session-timeout",
        INHERIT,
    ),
    (_GPW, "anyconnect mtu 1300", _gp("anyconnect_mtu"), 1300, "no anyconnect mtu", INHERIT),
    (_GPW, "anyconnect ssl dtls none", _gp("dtls"), False, "no anyconnect ssl dtls", INHERIT),
    (
        _GPW,
        "anyconnect ssl dtls enable",
        _gp("dtls"),
        True,
        "no anyconnect ssl dtls enable",
        INHERIT,
    ),
    (
        _GPW,
        "anyconnect ssl df-bit-ignore enable",
        _gp("df_bit_ignore"),
        True,
        "no anyconnect ssl df-bit-ignore",
        INHERIT,
    ),
    (
        _GPW,
        "anyconnect ssl df-bit-ignore disable",
        _gp("df_bit_ignore"),
        False,
        "no anyconnect ssl df-bit-ignore",
        INHERIT,
    ),
    (
        _GPW,
        "anyconnect ssl keepalive 300",
        _gp("keepalive"),
        300,
        "no anyconnect ssl keepalive",
        INHERIT,
    ),
    (
        _GPW,
        "anyconnect ssl keepalive none",
        _gp("keepalive"),
        None,
        "no anyconnect ssl keepalive",
        INHERIT,
    ),
    (
        _GPW,
        "anyconnect dpd-interval gateway 60",
        _gp("dpd_gateway"),
        60,
        "no anyconnect dpd-interval gateway",
        INHERIT,
    ),
    (
        _GPW,
        "anyconnect dpd-interval client none",
        _gp("dpd_client"),
        None,
        "no anyconnect dpd-interval client",
        INHERIT,
    ),
    (
        _GPW,
        "anyconnect ssl rekey time 240",
        _gp("rekey_time"),
        240,
        "no anyconnect ssl rekey time",
        INHERIT,
    ),
    (
        _GPW,
        "anyconnect ssl rekey time none",
        _gp("rekey_time"),
        None,
        "no anyconnect ssl rekey time",
        INHERIT,
    ),
    (
        _GPW,
        "anyconnect ssl rekey method new-tunnel",
        _gp("rekey_method"),
        "new-tunnel",
        "no anyconnect ssl rekey method",
        INHERIT,
    ),
    (
        _GPW,
        "anyconnect ssl rekey method ssl",
        _gp("rekey_method"),
        "ssl",
        "no anyconnect ssl rekey method",
        INHERIT,
    ),
    (
        _GPW,
        "anyconnect ssl rekey method none",
        _gp("rekey_method"),
        None,
        "no anyconnect ssl rekey method",
        INHERIT,
    ),
    ((*_POOLS, *_TGG), "address-pool P1", _tg("address_pools"), ("P1",), "no address-pool", ()),
    (
        (*_POOLS, *_TGG),
        "default-group-policy GP",
        _tg("default_group_policy"),
        "GP",
        "no default-group-policy",
        DFLT_GRP_POLICY,
    ),
    (
        _TGW,
        "group-alias Sales enable",
        lambda c: [(a.alias, a.enabled) for a in c.tunnel_group("TG").group_aliases],  # type: ignore[union-attr]
        [("Sales", True)],
        "no group-alias Sales",
        [],
    ),
    (
        _TGW,
        "group-url https://vpn.example.com/sales disable",
        lambda c: [(u.url, u.enabled) for u in c.tunnel_group("TG").group_urls],  # type: ignore[union-attr]
        [("https://vpn.example.com/sales", False)],
        "no group-url https://vpn.example.com/sales",
        [],
    ),
]


@pytest.mark.parametrize(
    ("setup", "command", "get", "value", "no_form", "after_no"),
    COMMANDS,
    ids=[c[1] for c in COMMANDS],
)
def test_command_and_its_no_form(
    setup: tuple[str, ...], command: str, get: Get, value: object, no_form: str, after_no: object
) -> None:
    con = console(None, *setup)
    mode = con.mode
    assert con.feed(command) == []
    assert get(con.config) == value
    assert con.drain_events() != []
    assert con.mode == mode
    roundtrip(con.config)
    assert con.feed(no_form) == []
    assert get(con.config) == after_no
    roundtrip(con.config)


def test_no_forms_on_builtin_objects_restore_defaults() -> None:
    con = console(None, "group-policy DfltGrpPolicy attributes", "vpn-idle-timeout 5")
    assert con.config.resolve_policy(DFLT_GRP_POLICY).vpn_idle_timeout == 5
    assert con.feed("no vpn-idle-timeout") == []
    assert con.config.group_policy(DFLT_GRP_POLICY) == DEFAULT_GROUP_POLICY
    con.feed("vpn-idle-timeout 5")
    con.feed("no group-policy DfltGrpPolicy")
    assert con.config.group_policy(DFLT_GRP_POLICY) == DEFAULT_GROUP_POLICY
    con.feed("tunnel-group DefaultWEBVPNGroup webvpn-attributes")
    con.feed("group-alias web enable")
    con.drain_events()
    assert con.feed("no tunnel-group DefaultWEBVPNGroup") == []
    assert con.config.tunnel_group("DefaultWEBVPNGroup") == AsaConfig().tunnel_group(
        "DefaultWEBVPNGroup"
    )
    assert con.drain_events() == [TunnelGroupChanged("DefaultWEBVPNGroup")]


def test_removed_nameif_disables_webvpn_on_it() -> None:
    con = console(None, "webvpn", "enable outside", "interface GigabitEthernet0/0")
    assert con.feed("no nameif") == []
    assert con.config.webvpn.enabled_interfaces == ()
    assert con.drain_events() == [
        InterfaceChanged("GigabitEthernet0/0"),
        InterfaceDisabled("outside"),
    ]
    assert con.feed("nameif inside") == ['ERROR: Name "inside" is already in use']


# ===================================================================== errors
@pytest.mark.parametrize(
    ("setup", "line", "column"),
    [
        ((), "frobnicate now", 0),  # unknown word
        (("webvpn",), "dtls port 99999", 10),  # number out of range
        (("webvpn",), "dtls port abc", 10),  # not a number
        (("webvpn",), "dtls port", 10),  # missing argument: marker after the line
        (("webvpn",), "dtls prot 444", 5),  # misspelt keyword
        (("webvpn",), "enable dmz", 7),  # no such nameif
        (("webvpn",), "port 444 extra", 9),  # trailing garbage
        ((), "ip local pool P 10.0.0.9-10.0.0.1 mask 255.255.255.0", 16),  # reversed range
        ((), "ip local pool P 10.0.0.1-10.0.0.9 mask 255.0.255.0", 39),  # not a netmask
        ((), "username bob password pw privilege 16", 35),
        ((), "e x", 0),  # ambiguous abbreviation (enable / end / exit)
        (_GPW, "anyconnect mtu 100", 15),
        (_GPW, "anyconnect dpd-interval both 30", 24),
        ((), "logging trap loud", 13),  # not a level
        ((), "logging facility 24", 17),  # local0-local7 only
        ((), "aaa local authentication attempts max-fail 17", 43),  # 1-16
        ((), "aaa local authentication attempts max-fail 0", 43),
        ((), "aaa local authentication attempts", 34),  # incomplete
        (_GP, "vpn-simultaneous-logins 2147483648", 24),  # 0-2147483647
        (_GP, "vpn-simultaneous-logins -1", 24),
    ],
)
def test_invalid_input_marker_and_nothing_changes(
    setup: tuple[str, ...], line: str, column: int
) -> None:
    con = console(None, *setup)
    before, prompt = con.config, con.prompt
    out = con.feed(line)
    assert out == [" " * (len(prompt) + 1 + column) + "^", INVALID_INPUT]
    assert con.config is before
    assert con.prompt == prompt
    assert con.drain_events() == []


def test_marker_aligns_under_the_echoed_input() -> None:
    con = console(None, "webvpn")
    echoed = f"{con.prompt} dtls port 99999"
    marker, error = con.feed("dtls port 99999")
    assert echoed[marker.index("^") :].startswith("99999")
    assert error == "ERROR: % Invalid input detected at '^' marker."


def test_semantic_errors_change_nothing() -> None:
    con = console()
    before = con.config
    assert con.feed("group-policy NOPE attributes") == ["ERROR: group-policy NOPE does not exist"]
    assert con.feed("tunnel-group NOPE general-attributes") == [
        "ERROR: tunnel-group NOPE does not exist"
    ]
    assert con.feed("sysopt connection tcpmss 20")[-1] == INVALID_INPUT
    assert con.config is before
    assert con.prompt == "ciscoasa(config)#"


def test_bad_file_line_names_line_number_and_asa_text() -> None:
    text = "hostname fw\nwebvpn\n enable outside\n dtls port 70000\n"
    with pytest.raises(AsaConfigError) as info:
        parse_config(text)
    err = info.value
    assert isinstance(err, ConfigError)
    assert err.lineno == 4
    assert err.asa_lines == [" dtls port 70000", "           ^", INVALID_INPUT]
    assert "line 4" in str(err)
    assert "Invalid input" in str(err)


def test_file_indentation_selects_the_mode() -> None:
    # unindented: `dtls port` is not a global command
    with pytest.raises(AsaConfigError) as info:
        parse_config("webvpn\ndtls port 444\n")
    assert info.value.lineno == 2
    cfg = parse_config("webvpn\n dtls port 444\n exit\nhostname x\n")
    assert (cfg.webvpn.dtls_port, cfg.hostname) == (444, "x")


# ===================================================================== running-config
def test_full_roundtrip_with_everything_set() -> None:
    con = console(
        example(),
        "hostname fw",
        "asa-version 8.4(6)",
        "enable password pw",
        "sysopt connection tcpmss 1460",
        'ssl cipher tlsv1.2 custom "AES256-SHA"',
        "ssl cipher dtlsv1 high",
        "logging host inside 10.1.1.50",
        "logging host inside 10.1.1.51 tcp/1470",
        "logging trap warnings",
        "logging facility 17",
        "interface GigabitEthernet0/2",
        "shutdown",
        "webvpn",
        "port 8443",
        "dtls port 8443",
        "group-policy DfltGrpPolicy attributes",
        "vpn-tunnel-protocol ssl-client",
        "webvpn",
        "anyconnect ssl keepalive none",
        "group-policy GP2 internal",
        "group-policy GP2 attributes",
        "vpn-idle-timeout none",
        "webvpn",
        "anyconnect mtu 1300",
        "anyconnect ssl df-bit-ignore enable",
        "anyconnect ssl rekey time 60",
        "anyconnect ssl rekey method ssl",
        "tunnel-group TG2 type remote-access",
        "tunnel-group TG2 general-attributes",
        "default-group-policy GP2",
        "tunnel-group DefaultWEBVPNGroup general-attributes",
        "address-pool ac_pool",
    )
    roundtrip(con.config)
    text = render_running_config(con.config)
    assert text[:3] == [": Saved", ":", "ASA Version 8.4(6)"]
    assert text[-1] == ": end"
    assert render_running_config(con.config, "group-policy", "GP2") == [
        "group-policy GP2 internal",
        "group-policy GP2 attributes",
        " vpn-idle-timeout none",
        " webvpn",
        "  anyconnect mtu 1300",
        "  anyconnect ssl rekey time 60",
        "  anyconnect ssl rekey method ssl",
        "  anyconnect ssl df-bit-ignore enable",
    ]
    assert render_running_config(con.config, "tunnel-group", "DefaultWEBVPNGroup") == [
        "tunnel-group DefaultWEBVPNGroup general-attributes",
        " address-pool ac_pool",
    ]
    assert render_running_config(con.config, "sysopt") == ["sysopt connection tcpmss 1460"]
    assert render_running_config(con.config, "ssl") == [
        'ssl cipher tlsv1.2 custom "AES256-SHA"',
        "ssl cipher dtlsv1 high",
    ]
    assert con.feed("show running-config logging") == render_running_config(con.config, "logging")
    assert con.feed("sh run tunnel-group TG2") == [
        "tunnel-group TG2 type remote-access",
        "tunnel-group TG2 general-attributes",
        " default-group-policy GP2",
    ]


def test_default_config_hides_defaults() -> None:
    cfg = AsaConfig()
    assert render_running_config(cfg, "webvpn") == []
    assert render_running_config(cfg, "group-policy") == []
    assert render_running_config(cfg, "tunnel-group") == []
    assert render_running_config(cfg, "sysopt") == []
    with pytest.raises(ValueError, match="section"):
        render_running_config(cfg, "bogus")


# ===================================================================== pools
def _pool(name: str, first: str, last: str) -> IpPool:
    return IpPool(name, IPv4Address(first), IPv4Address(last), IPv4Address("255.255.255.0"))


def test_pool_allocation_order_exhaustion_and_reuse() -> None:
    alloc = PoolAllocator([_pool("A", "10.0.0.1", "10.0.0.3"), _pool("B", "10.0.1.1", "10.0.1.1")])
    got = [alloc.allocate(f"u{i}") for i in range(4)]
    assert got == ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.1.1"]
    assert alloc.allocate("u5") is None
    assert alloc.free_count() == 0
    alloc.release("10.0.0.2")
    alloc.release("10.0.0.2")  # twice is harmless
    lease = alloc.lease("u6")
    assert lease is not None
    assert (str(lease.address), str(lease.netmask), lease.pool) == (
        "10.0.0.2",
        "255.255.255.0",
        "A",
    )
    assert alloc.lease("u7") is None


def test_pool_allocation_limited_to_named_pools() -> None:
    cfg = example()
    alloc = PoolAllocator(cfg.pools)
    names = [p.name for p in cfg.tunnel_group_pools("ac_users")]
    addrs = [alloc.allocate("u", names) for _ in range(241)]
    assert addrs[0] == "10.10.10.10"
    assert addrs[-1] == "10.10.10.250"
    assert len(set(addrs)) == 241
    assert alloc.allocate("u", names) is None
    assert alloc.allocate("u", ["missing"]) is None


def test_pool_change_keeps_leases() -> None:
    alloc = PoolAllocator([_pool("A", "10.0.0.1", "10.0.0.2")])
    assert alloc.allocate() == "10.0.0.1"
    alloc.update_pools([_pool("A", "10.0.0.1", "10.0.0.3")])
    assert [alloc.allocate(), alloc.allocate(), alloc.allocate()] == ["10.0.0.2", "10.0.0.3", None]


# ===================================================================== inheritance
def test_policy_inheritance_from_dfltgrppolicy() -> None:
    con = console(example())
    # the default tunnel group uses DfltGrpPolicy, which does not allow AnyConnect by default
    assert not con.config.effective_policy("DefaultWEBVPNGroup").ssl_client_allowed
    for line in (
        "group-policy DfltGrpPolicy attributes",
        "webvpn",
        "anyconnect ssl keepalive 45",
        "anyconnect mtu 1200",
        "anyconnect ssl dtls none",
    ):
        assert con.feed(line) == []
    assert con.drain_events() == [GroupPolicyChanged(DFLT_GRP_POLICY)] * 3
    eff = con.config.effective_policy("ac_users")
    assert eff.keepalive == 20  # set in ac_users_group: not inherited
    assert eff.anyconnect_mtu == 1200  # inherited
    assert eff.dtls  # set in ac_users_group
    assert con.feed("group-policy ac_users_group attributes") == []
    assert con.feed("webvpn") == []
    assert con.feed("no anyconnect ssl dtls") == []
    assert not con.config.effective_policy("ac_users").dtls  # now inherited: none
    assert con.feed("no anyconnect ssl keepalive") == []
    assert con.config.effective_policy("ac_users").keepalive == 45
    assert con.config.group_policy("ac_users_group").keepalive is INHERIT  # type: ignore[union-attr]


def test_unknown_tunnel_group_has_no_policy() -> None:
    with pytest.raises(KeyError):
        AsaConfig().effective_policy("nope")


# ===================================================================== console
def test_enable_password() -> None:
    con = AdminConsole(parse_config("enable password Secr3t\n"))
    assert con.feed("en") == []
    assert con.prompt == "Password:"
    assert con.feed("wrong") == ["Invalid password"]
    assert con.feed("wrong") == ["Invalid password"]
    assert con.feed("wrong") == ["Access denied."]
    assert con.prompt == "ciscoasa>"
    assert con.feed("enable") == []
    assert con.feed("Secr3t") == []
    assert con.prompt == "ciscoasa#"


def test_user_mode_is_limited_and_exit_logs_off() -> None:
    con = AdminConsole()
    assert con.feed("configure terminal")[-1] == INVALID_INPUT
    assert con.feed("show version") == ["Cisco Adaptive Security Appliance Software Version 9.1(4)"]
    assert con.feed("exit") == []
    assert con.closed
    with pytest.raises(LocalProtocolError):
        con.feed("enable")


def test_abbreviations_and_fall_through_to_parent_modes() -> None:
    con = AdminConsole(privileged=True)
    assert con.feed("conf t") == []
    assert con.feed("webv") == []
    assert con.feed("dtl po 444") == []
    # a global command typed in a sub-mode runs there and leaves the sub-mode, as on the ASA
    assert con.feed("asa-ver 8.4(6)") == []
    assert con.prompt == "ciscoasa(config)#"
    assert con.feed("sh ver") == ["Cisco Adaptive Security Appliance Software Version 8.4(6)"]
    assert con.feed("wr mem") == ["Building configuration...", "[OK]"]
    assert con.saved_config == con.config
    assert con.feed("   ") == []
    assert con.feed("! a comment") == []


def test_register_show_hook_with_abbreviation() -> None:
    seen: list[tuple[str, ...]] = []

    def handler(cfg: AsaConfig, extra: tuple[str, ...]) -> list[str]:
        seen.append(extra)
        return [f"dtls port {cfg.webvpn.dtls_port}"]

    shows = ShowRegistry()
    con = AdminConsole(privileged=True, shows=shows)
    other = AdminConsole(privileged=True, shows=shows)
    con.register_show("asp table socket", handler)
    assert con.feed("show asp tabl socket") == ["dtls port 443"]
    assert other.feed("sh asp table sock detail") == ["dtls port 443"]
    assert seen == [(), ("detail",)]
    with pytest.raises(LocalProtocolError):
        con.register_show("running-config", handler)


def test_shared_store_between_consoles() -> None:
    store = ConfigStore(example())
    a = AdminConsole(store, privileged=True)
    b = AdminConsole(store, privileged=True)
    a.feed("conf t")
    a.feed("hostname fw")
    assert b.prompt == "fw#"
    assert b.drain_events() == [HostnameChanged("ciscoasa", "fw")]
    assert a.drain_events() == []


def test_diff_configs_reports_removals() -> None:
    old = example()
    new = parse_config("no tunnel-group ac_users\n", base=old)
    assert diff_configs(old, new) == [TunnelGroupRemoved("ac_users")]
    assert diff_configs(new, new) == []


def test_version_personality() -> None:
    assert AsaConfig().version_tuple == (9, 1, 4)
    assert AsaConfig().separate_tls_dtls_mtu
    old = parse_config("ASA Version 8.4(6)\n")
    assert old.version_tuple == (8, 4, 6)
    assert not old.separate_tls_dtls_mtu
    assert parse_config("asa-version 9.1\n").version_tuple == (9, 1, 0)


# ===================================================================== logins: lockout, sessions
def test_simultaneous_logins_default_inheritance_and_order() -> None:
    assert AsaConfig().resolve_policy(DFLT_GRP_POLICY).vpn_simultaneous_logins == 3
    assert DEFAULT_SIMULTANEOUS_LOGINS == 3
    con = console(
        example(),
        "group-policy GP internal",
        "tunnel-group TG type remote-access",
        "tunnel-group TG general-attributes",
        "default-group-policy GP",
    )
    assert con.config.effective_policy("TG").vpn_simultaneous_logins == 3
    assert con.feed("group-policy DfltGrpPolicy attributes") == []
    assert con.feed("vpn-simul 5") == []
    assert con.drain_events() == [GroupPolicyChanged(DFLT_GRP_POLICY)]
    assert con.config.effective_policy("TG").vpn_simultaneous_logins == 5  # inherited
    assert con.config.effective_policy("ac_users").vpn_simultaneous_logins == 100  # its own
    assert render_running_config(con.config, "group-policy", DFLT_GRP_POLICY) == [
        "group-policy DfltGrpPolicy attributes",
        " vpn-simultaneous-logins 5",
    ]
    # running-config order of a real ASA: vpn-simultaneous-logins before vpn-idle-timeout
    assert render_running_config(con.config, "group-policy", "ac_users_group")[2:4] == [
        " vpn-simultaneous-logins 100",
        " vpn-idle-timeout 60",
    ]
    roundtrip(con.config)
    assert con.feed("no vpn-simultaneous-logins") == []
    assert con.config.group_policy(DFLT_GRP_POLICY) == DEFAULT_GROUP_POLICY
    assert con.config.effective_policy("TG").vpn_simultaneous_logins == 3


def test_aaa_max_fail_show_run_section_and_events() -> None:
    con = console(example())
    assert con.feed("show running-config aaa") == []
    assert con.feed("aaa local auth att max 4") == []  # abbreviated keywords
    assert con.drain_events() == [AaaMaxFailChanged(None, 4)]
    assert con.feed("sh run aaa") == ["aaa local authentication attempts max-fail 4"]
    full = render_running_config(con.config)
    assert full.index("aaa local authentication attempts max-fail 4") < full.index("webvpn")
    roundtrip(con.config)
    assert con.feed("aaa local authentication attempts max-fail 4") == []
    assert con.drain_events() == []  # unchanged
    assert con.feed("no aaa local authentication attempts max-fail") == []
    assert con.drain_events() == [AaaMaxFailChanged(4, None)]
    assert con.feed("sh run aaa") == []


def test_register_command_is_privileged_and_has_its_grammar() -> None:
    seen: list[str] = []

    def handler(ctx: CommandContext, a: Args) -> None:
        seen.append(a.text(0))
        ctx.out.append(f"cleared {a.text(0)}")

    shows = ShowRegistry()
    shows.register_command(cmd(handler, "clear widget username", Word()))
    con = AdminConsole(privileged=True, shows=shows)
    assert con.feed("cl widg user bob") == ["cleared bob"]
    assert con.feed("clear widget username")[-1] == INVALID_INPUT
    assert con.feed("clear widget everybody")[-1] == INVALID_INPUT
    assert con.feed("conf t") == []
    assert con.feed("clear widget username amy") == ["cleared amy"]  # configuration modes too
    user = AdminConsole(shows=shows)
    assert user.feed("clear widget username eve")[-1] == INVALID_INPUT
    assert seen == ["bob", "amy"]
