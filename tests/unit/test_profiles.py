"""Client profiles as data (tunnelswarm.config.profile, tunnelswarm/config/profiles/*.toml).

Every built-in file must load, document its sources and say what the profile is; a
user's own file loads the same way, and every mistake in it is one line that names the
file and the key. The header facts checked here are protocol.md §2.1, §2.2 and §3.2.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from importlib import resources
from pathlib import Path

import pytest

from tunnelswarm.client.session import ClientOptions, ClientSession
from tunnelswarm.config.profile import (
    ALIASES,
    BUILTIN_NAMES,
    OPENCONNECT_9_01,
    PROFILES,
    SECTIONS,
    ClientProfile,
    load_profile,
    profile_from_dict,
)
from tunnelswarm.errors import ConfigError

PROFILE_DIR = resources.files("tunnelswarm.config.profiles")


def builtin_file(name: str) -> Path:
    path = Path(str(PROFILE_DIR.joinpath(f"{name}.toml")))
    assert path.is_file()
    return path


def one_line_error(exc: pytest.ExceptionInfo[ConfigError]) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


# --- the built-in files --------------------------------------------------------------------
def test_every_file_in_the_folder_is_a_listed_valid_profile() -> None:
    files = sorted(p.name for p in PROFILE_DIR.iterdir() if p.name.endswith(".toml"))
    assert files == sorted(f"{n}.toml" for n in BUILTIN_NAMES)
    for name in BUILTIN_NAMES:
        loaded = load_profile(builtin_file(name))
        assert loaded.name == name
        assert loaded == replace(PROFILES[name], source=loaded.source)
        assert loaded.description


@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_builtin_files_are_complete_and_document_their_sources(name: str) -> None:
    text = builtin_file(name).read_text(encoding="utf-8")
    for section, keys in SECTIONS.items():
        assert f"[{section}]" in text
        for key in keys:
            assert f"\n{key} = " in text, f"{name}: {key} not given explicitly"
    assert "§" in text  # protocol.md sections cited
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("[") and line.endswith("]"):
            assert lines[i + 1].startswith("#"), f"{name}: {line} has no source comment"
    if name != "openconnect-9":
        assert "UNCONFIRMED" in text
        assert "TN116881" in text


def test_names_and_aliases() -> None:
    assert BUILTIN_NAMES == (
        "anyconnect-3.1",
        "anyconnect-4.10",
        "secure-client-5",
        "openconnect-9",
    )
    assert OPENCONNECT_9_01 is PROFILES["openconnect-9"]
    for alias, target in ALIASES.items():
        assert PROFILES[alias] is PROFILES[target]
        assert load_profile(alias) is PROFILES[target]
    assert PROFILES["openconnect-9.01"] is OPENCONNECT_9_01
    assert PROFILES["anyconnect-4.10-linux"].name == "anyconnect-4.10"


def test_openconnect_9_is_the_verified_client() -> None:
    p = PROFILES["openconnect-9"]
    assert p.user_agent == "Open AnyConnect VPN Agent v9.01-3"  # §2.2
    assert p.xml_version == "v9.01-3"
    assert p.dtls_ciphers.split(":")[0] == "PSK-NEGOTIATE"  # §3.2
    assert p.dtls12_ciphers
    assert not p.cstp_protocol_blurb  # 9.01 sends none (§3.2)
    assert not p.platform_header
    assert (p.dtls_handshake_timeout, p.dtls_retry_period) == (12.0, 60.0)  # Appendix A
    assert p.dtls_dead_peer == "rehandshake"  # §5.5
    assert (p.mtu_policy, p.dtls_give_up) == ("openconnect", 0.0)  # §6.1
    assert (p.reconnect_interval, p.reconnect_max_interval) == (10.0, 100.0)  # §7.4


def test_anyconnect_3_1_offers_legacy_dtls_only() -> None:
    p = PROFILES["anyconnect-3.1"]
    assert p.user_agent == "AnyConnect Darwin_i386 3.1.05160"  # §2.2 [NMAP]
    assert p.xml_version == "3.1.05160"
    assert p.device_id == "mac-intel"
    assert p.dtls12_ciphers == ""  # no X-DTLS12-CipherSuite (§3.2: 4.7+ era)
    names = p.dtls_ciphers.split(":")
    assert "PSK-NEGOTIATE" not in names  # openconnect/ocserv only (§5.4)
    assert not [n for n in names if n.startswith(("OC-", "OC2-"))]
    assert (p.mtu_policy, p.dtls_give_up) == ("anyconnect", 60.0)  # §6.3 [TN116881]


@pytest.mark.parametrize("name", ["anyconnect-4.10", "secure-client-5"])
def test_later_cisco_clients(name: str) -> None:
    p = PROFILES[name]
    assert p.user_agent.startswith("AnyConnect Linux_64 ")  # §2.2 form
    assert "PSK-NEGOTIATE" not in p.dtls_ciphers
    assert p.dtls12_ciphers.startswith("ECDHE-RSA-AES256-GCM-SHA384:")  # [SSLCON]
    assert (p.mtu_policy, p.dtls_give_up) == ("anyconnect", 60.0)  # [TN116881 (2022)]


# --- headers the profile fixes ------------------------------------------------------------
def session_for(profile: ClientProfile) -> ClientSession:
    return ClientSession(
        ClientOptions(url="https://vpn.example.com", insecure=True, profile=profile, hostname="h")
    )


def test_anyconnect_3_1_request_headers() -> None:
    s = session_for(PROFILES["anyconnect-3.1"])
    s.cookie = "C"
    s.base_mtu, s.requested_mtu = 1500, 1390
    auth = dict(s._auth_headers(b"", None, True))
    assert auth["User-Agent"] == "AnyConnect Darwin_i386 3.1.05160"
    assert auth["X-AnyConnect-Platform"] == "mac-intel"
    assert "X-Support-HTTP-Auth" not in auth
    connect = s._connect_headers(False)
    names = [n for n, _ in connect]
    assert "X-CSTP-Protocol" in names
    assert ("X-DTLS-CipherSuite", "AES256-SHA:AES128-SHA:DES-CBC3-SHA") in connect
    assert "X-DTLS12-CipherSuite" not in names


def test_openconnect_9_request_headers() -> None:
    s = session_for(OPENCONNECT_9_01)
    s.cookie = "C"
    auth = dict(s._auth_headers(b"", None, True))
    assert "X-AnyConnect-Platform" not in auth
    names = [n for n, _ in s._connect_headers(False)]
    assert "X-CSTP-Protocol" not in names
    assert names[-2:] == ["X-DTLS-CipherSuite", "X-DTLS12-CipherSuite"]


def test_session_timers_come_from_the_profile_unless_overridden() -> None:
    prof = PROFILES["anyconnect-3.1"]
    s = session_for(prof)
    assert (s.dtls_retry.handshake_timeout, s.dtls_retry.retry_period) == (60.0, 60.0)
    assert type(s.mtu_policy).__name__ == "AnyConnectMtuPolicy"
    o = ClientOptions(
        url="https://vpn.example.com",
        insecure=True,
        profile=prof,
        dtls_handshake_timeout=2.0,
        dtls_attempt_period=4.0,
    )
    t = ClientSession(o)
    assert (t.dtls_retry.handshake_timeout, t.dtls_retry.retry_period) == (2.0, 4.0)
    assert session_for(OPENCONNECT_9_01).dtls_retry.handshake_timeout == 12.0


# --- a user's own file ---------------------------------------------------------------------
def write(tmp_path: Path, text: str, name: str = "mine.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_user_file_extending_a_builtin(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'name = "ac31-fast"\nextends = "anyconnect-3.1"\n[mtu]\ndtls_give_up = 5\n'
        '[identity]\nuser_agent = "AnyConnect Windows 3.1.04066"\n',
    )
    p = load_profile(path)
    assert p.name == "ac31-fast"
    assert p.dtls_give_up == 5.0
    assert isinstance(p.dtls_give_up, float)
    assert p.user_agent == "AnyConnect Windows 3.1.04066"
    assert p.mtu_policy == "anyconnect"
    assert p.dtls_ciphers == PROFILES["anyconnect-3.1"].dtls_ciphers
    assert p.source == str(path)
    assert p.description == ""
    assert load_profile(str(path)) == p  # a str with "/" is a path too


def test_user_file_complete_without_extends(tmp_path: Path) -> None:
    text = builtin_file("openconnect-9").read_text(encoding="utf-8")
    text = text.replace('name = "openconnect-9"', 'name = "my-oc"')
    p = load_profile(write(tmp_path, text))
    assert replace(p, name="openconnect-9", source="") == replace(OPENCONNECT_9_01, source="")


def test_a_relative_toml_name_is_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, 'name = "x"\nextends = "openconnect-9"\n', "x.toml")
    monkeypatch.chdir(tmp_path)
    assert load_profile("x.toml").name == "x"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'name = "x"\nextends = "anyconnect-3.1"\n[mtu]\ndtls_giveup = 5\n',
            "mine.toml: unknown key mtu.dtls_giveup (known in [mtu]: mtu_policy, dtls_give_up)",
        ),
        (
            'name = "x"\nextends = "anyconnect-3.1"\n[dtls]\ndtls_give_up = 5\n',
            "mine.toml: dtls.dtls_give_up: dtls_give_up belongs in [mtu]",
        ),
        (
            'name = "x"\nextends = "anyconnect-3.1"\n[timers]\ndtls_give_up = 5\n',
            "mine.toml: unknown key timers (known: name, description, extends, [identity],"
            " [connect], [dtls], [mtu], [reconnect])",
        ),
        (
            'name = "x"\nextends = "anyconnect-3.1"\nmtu = 5\n',
            "mine.toml: mtu: expected a table [mtu]",
        ),
        (
            'name = "x"\nextends = "anyconnect-3.1"\n[mtu]\ndtls_give_up = "60s"\n',
            "mine.toml: mtu.dtls_give_up: expected a number of seconds, got '60s'",
        ),
        (
            'name = "x"\nextends = "anyconnect-3.1"\n[mtu]\ndtls_give_up = true\n',
            "mine.toml: mtu.dtls_give_up: expected a number of seconds, got True",
        ),
        (
            'name = "x"\nextends = "anyconnect-3.1"\n[connect]\ncstp_protocol_blurb = "yes"\n',
            "mine.toml: connect.cstp_protocol_blurb: expected true or false, got 'yes'",
        ),
        (
            'name = "x"\nextends = "anyconnect-3.1"\n[identity]\ncapabilities = "sso"\n',
            "mine.toml: identity.capabilities: expected a list of strings, got 'sso'",
        ),
        (
            'name = "x"\nextends = "anyconnect-3.1"\n[identity]\ncapabilities = [1]\n',
            "mine.toml: identity.capabilities: expected a list of strings, got [1]",
        ),
        (
            'name = "x"\nextends = "anyconnect-3.1"\n[identity]\nuser_agent = 3\n',
            "mine.toml: identity.user_agent: expected a string, got 3",
        ),
        (
            'name = "x"\nextends = "anyconnect-3.1"\n[mtu]\nmtu_policy = "cisco"\n',
            "mine.toml: mtu_policy: 'cisco' is not one of anyconnect, openconnect",
        ),
        (
            'name = "x"\nextends = "anyconnect-3.1"\n[dtls]\ndtls_dead_peer = "x"\n',
            "mine.toml: dtls_dead_peer: 'x' is not one of rehandshake, retry-period",
        ),
        (
            'name = "x"\nextends = "anyconnect-3.1"\n[connect]\naddress_type = "IPv5"\n',
            "mine.toml: address_type: 'IPv5' is not one of IPv6,IPv4, IPv4, IPv6",
        ),
        (
            'name = "x"\nextends = "anyconnect-3.1"\n[dtls]\ndtls_retry_period = 0\n',
            "mine.toml: dtls_retry_period: must be a positive number of seconds, not 0.0",
        ),
        (
            'name = "x"\nextends = "anyconnect-3.1"\n[dtls]\ndtls_handshake_timeout = inf\n',
            "mine.toml: dtls_handshake_timeout: must be a positive number of seconds, not inf",
        ),
        (
            'name = "x"\nextends = "anyconnect-3.1"\n[mtu]\ndtls_give_up = -1\n',
            "mine.toml: dtls_give_up: must be 0 (never) or seconds, not -1.0",
        ),
        (
            'name = "x"\nextends = "anyconnect-3.1"\n[mtu]\ndtls_give_up = nan\n',
            "mine.toml: dtls_give_up: must be 0 (never) or seconds, not nan",
        ),
        (
            'name = "x"\nextends = "anyconnect-3.1"\n[reconnect]\nreconnect_max_interval = 5\n',
            "mine.toml: reconnect_max_interval: must be at least reconnect_interval (10), not 5.0",
        ),
        (
            'name = "x"\nextends = "anyconnect-3.1"\n[identity]\nuser_agent = "a\\r\\nX: y"\n',
            "mine.toml: user_agent: control characters are not allowed in 'a\\r\\nX: y'",
        ),
        (
            'name = "x"\nextends = "anyconnect-3.1"\n[connect]\ndtls12_ciphers = "A\\nB"\n',
            "mine.toml: dtls12_ciphers: control characters are not allowed in 'A\\nB'",
        ),
        (
            'name = "x"\nextends = "anyconnect-3.1"\n[identity]\ncapabilities = ["a\\u007f"]\n',
            "mine.toml: capabilities: control characters are not allowed in 'a\\x7f'",
        ),
        (
            'name = " "\nextends = "anyconnect-3.1"\n',
            "mine.toml: name: must not be empty",
        ),
        (
            'extends = "anyconnect-3.1"\n',
            "mine.toml: missing key name",
        ),
        (
            'name = "x"\nextends = "anyconnect-9"\n',
            "mine.toml: extends: 'anyconnect-9' is not a built-in profile (anyconnect-3.1,"
            " anyconnect-4.10, secure-client-5, openconnect-9)",
        ),
        (
            'name = "x"\nextends = 3\n',
            "mine.toml: extends: 3 is not a built-in profile",
        ),
        (
            'name = "x"\n[identity]\nuser_agent = "u"\n',
            "mine.toml: missing key identity.xml_version (give every key, or extends = a built-in)",
        ),
        (
            'name = "x"\nextends = "anyconnect-3.1"\n[mtu\n',
            "mine.toml: not valid TOML: ",
        ),
    ],
)
def test_user_file_mistakes_are_one_line_naming_file_and_key(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_profile(path)
    line = one_line_error(exc)
    assert line.startswith(str(tmp_path))
    assert line[len(str(tmp_path)) + 1 :].startswith(message)


def test_unreadable_or_binary_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^cannot read profile .*nope\.toml: "):
        load_profile(tmp_path / "nope.toml")
    bad = tmp_path / "bin.toml"
    bad.write_bytes(b'name = "\xff"\n')
    with pytest.raises(ConfigError, match=r"bin\.toml: not UTF-8 text$"):
        load_profile(bad)


def test_unknown_name() -> None:
    with pytest.raises(ConfigError) as exc:
        load_profile("anyconnect-3")
    assert one_line_error(exc) == (
        "unknown profile 'anyconnect-3': not a built-in (anyconnect-3.1, anyconnect-4.10,"
        " secure-client-5, openconnect-9) and not a .toml file"
    )


def test_profile_from_dict_with_a_base() -> None:
    p = profile_from_dict({"name": "y", "mtu": {"dtls_give_up": 2}}, "<t>", base=OPENCONNECT_9_01)
    assert (p.name, p.dtls_give_up, p.source) == ("y", 2.0, "<t>")


# --- overrides (scenarios, tests) ----------------------------------------------------------
def test_overrides() -> None:
    base = PROFILES["anyconnect-3.1"]
    fast = base.with_overrides({"dtls_give_up": 1, "dtls_handshake_timeout": 0.5})
    assert (fast.dtls_give_up, fast.dtls_handshake_timeout) == (1.0, 0.5)
    assert fast.mtu_policy == "anyconnect"
    assert base.dtls_give_up == 60.0  # frozen: the built-in is untouched
    with pytest.raises(ConfigError, match=r"^overrides: unknown profile field 'give_up'$"):
        base.with_overrides({"give_up": 1})
    with pytest.raises(ConfigError, match=r"^overrides: unknown profile field 'source'$"):
        base.with_overrides({"source": "x"})
    with pytest.raises(ConfigError, match=r"^scn\.toml: dtls_give_up: expected a number"):
        base.with_overrides({"dtls_give_up": "1s"}, source="scn.toml")
    with pytest.raises(ConfigError, match=r"^overrides: dtls_give_up: must be 0 \(never\)"):
        base.with_overrides({"dtls_give_up": -2})


def test_python_constructed_profiles_are_checked() -> None:
    p = ClientProfile(name="p", user_agent="UA", xml_version="1")
    assert (p.mtu_policy, p.source) == ("openconnect", "<python>")
    with pytest.raises(ConfigError, match=r"^mtu_policy: "):
        replace(p, mtu_policy="nope")


# --- the CLI takes a name or a file -------------------------------------------------------
def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tunnelswarm", "connect", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def test_cli_profile_errors_are_one_line_with_status_2(tmp_path: Path) -> None:
    path = write(tmp_path, 'name = "x"\nextends = "openconnect-9"\n[mtu]\nmtu_polcy = "a"\n')
    r = run_cli("--profile", str(path), "--insecure", "https://127.0.0.1:9")
    assert r.returncode == 2, r.stderr
    assert r.stderr.splitlines() == [
        f"tunnelswarm: error: {path}: unknown key mtu.mtu_polcy"
        " (known in [mtu]: mtu_policy, dtls_give_up)"
    ]
    r = run_cli("--profile", "anyconnect-5", "--insecure", "https://127.0.0.1:9")
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("tunnelswarm: error: unknown profile 'anyconnect-5'")


def test_cli_help_names_the_builtins() -> None:
    r = run_cli("--help")
    assert r.returncode == 0
    flat = " ".join(r.stdout.split())
    for name in BUILTIN_NAMES:
        assert name in flat


def test_a_misnamed_builtin_file_is_refused(tmp_path: Path) -> None:
    from tunnelswarm.config import profile as module

    for name in BUILTIN_NAMES:
        write(tmp_path, builtin_file(name).read_text(encoding="utf-8"), f"{name}.toml")
    assert module._load_builtins(tmp_path)["secure-client-5"].name == "secure-client-5"
    text = builtin_file("openconnect-9").read_text(encoding="utf-8")
    write(tmp_path, text.replace('name = "openconnect-9"', 'name = "oc"'), "openconnect-9.toml")
    with pytest.raises(ConfigError, match=r"^built-in profile file openconnect-9\.toml is named"):
        module._load_builtins(tmp_path)
