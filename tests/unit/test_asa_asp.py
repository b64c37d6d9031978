"""Mock ASA ``show asp table socket`` / CSCuh61321 and ``show asp drop`` (asa/asp.py).

The seed tech note (TN116881, /work/shared/seed/000_2cbf4a68626ab354.txt) lost the
column whitespace of its ``show asp table socket`` captures, so the seed comparisons
collapse runs of whitespace on both sides; everything else (column order, header words,
handles, addresses, states) must match verbatim. The exact padding is checked separately
against the protocol.md §8.1 sketch.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tunnelswarm.asa.asp import (
    FRAME_DROP_REASONS,
    AsaVersion,
    AspDropCounters,
    SocketTable,
    render_asp_table_socket,
)
from tunnelswarm.errors import ConfigError, LocalProtocolError

# ---- verbatim from the seed (9.1, steps 1-3 of "the sequence that opens the issue")
SEED_91_EMPTY = """\
Protocol Socket State Local Address Foreign Address
"""
SEED_91_ENABLED = """\
Protocol Socket State Local Address Foreign Address
SSL 0001fc08 LISTEN 172.16.11.1:444 0.0.0.0:*
DTLS 00020dc8 LISTEN 172.16.11.1:443 0.0.0.0:*
"""
# step 3 ("dtls port 444") prints exactly the same table: the bug
SEED_91_AFTER_DTLS_PORT = SEED_91_ENABLED
# the seed's first rendering of the same table (an HTML table: tab separated)
SEED_91_TABBED = (
    "Protocol\tSocket\tState\tLocal Address\tForeign Address\n"
    "SSL\t0001fc08\tLISTEN\t172.16.11.1:444\t0.0.0.0:*\n"
    "DTLS\t00020dc8\tLISTEN\t172.16.11.1:443\t0.0.0.0:*\n"
)

# ---- verbatim from the seed (ASA 8.4.6)
SEED_846_ENABLED = """\
Protocol Socket Local Address Foreign Address State
SSL 0000bf2f 172.16.11.1:444 0.0.0.0:* LISTEN
DTLS 0000d5df 172.16.11.1:443 0.0.0.0:* LISTEN
"""
SEED_846_AFTER_DTLS_PORT = """\
Protocol Socket Local Address Foreign Address State
SSL 0000bf2f 172.16.11.1:444 0.0.0.0:* LISTEN
DTLS 0000eb5f 172.16.11.1:444 0.0.0.0:* LISTEN << changed immediately
"""


def _norm(text: str, addr: str = "172.16.11.1") -> str:
    """Collapse whitespace, drop the tech note's ``<<`` annotations, parameterise the address."""
    out = []
    for line in text.splitlines():
        line = line.split("<<", 1)[0]
        out.append(" ".join(line.split()).replace("172.16.11.1", addr))
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("addr", ["172.16.11.1", "203.0.113.1"])
def test_seed_sequence_91_reproduces_cscuh61321(addr: str) -> None:
    t = SocketTable("9.1(2)", interfaces={"outside": addr})
    # 1. webvpn not enabled on any interface
    assert _norm(t.render(), addr) == _norm(SEED_91_EMPTY, addr)
    # 2. port 444 + enable outside (default handles equal the seed's capture)
    t.set_ssl_port(444)
    t.enable("outside")
    before = t.render()
    assert _norm(before, addr) == _norm(SEED_91_ENABLED, addr)
    assert _norm(before, addr) == _norm(SEED_91_TABBED, addr)
    # 3. dtls port 444: advertised, but the socket stays on 443
    assert t.set_dtls_port(444) == []
    after = t.render()
    assert after == before
    assert _norm(after, addr) == _norm(SEED_91_AFTER_DTLS_PORT, addr)
    assert t.advertised_dtls_port == 444
    assert t.listening_dtls_port("outside") == 443
    assert not t.accepts("DTLS", addr, 444)  # clients' ClientHellos go unanswered
    assert t.accepts("DTLS", addr, 443)
    assert t.accepts("SSL", addr, 444)


def test_91_workaround_disable_enable_moves_dtls_socket() -> None:
    t = SocketTable("9.1(2)", interfaces={"outside": "172.16.11.1"})
    t.set_ssl_port(444)
    t.enable("outside")
    t.set_dtls_port(444)
    closed = t.disable("outside")  # no enable outside
    assert {s.protocol for s in closed} == {"SSL", "DTLS"}
    assert t.listening_dtls_port("outside") is None
    assert _norm(t.render()) == _norm(SEED_91_EMPTY)
    t.enable("outside")  # enable outside
    assert t.listening_dtls_port("outside") == 444 == t.advertised_dtls_port
    assert t.accepts("DTLS", "172.16.11.1", 444)
    assert "DTLS 00023148 LISTEN 172.16.11.1:444 0.0.0.0:*" in _norm(t.render())


def test_91_dtls_port_before_enable_is_used_at_enable() -> None:
    t = SocketTable("9.1(2)", interfaces={"outside": "172.16.11.1"})
    t.set_dtls_port(444)
    t.enable("outside")
    assert t.listening_dtls_port("outside") == 444


def test_seed_846_moves_dtls_socket_at_once() -> None:
    t = SocketTable(
        "8.4(6)",
        interfaces={"outside": "172.16.11.1"},
        handles=[0x0000BF2F, 0x0000D5DF, 0x0000EB5F],
    )
    t.set_ssl_port(444)
    t.enable("outside")
    assert _norm(t.render()) == _norm(SEED_846_ENABLED)
    closed = t.set_dtls_port(444)
    assert [s.handle for s in closed] == [0x0000D5DF]
    assert _norm(t.render()) == _norm(SEED_846_AFTER_DTLS_PORT)
    assert t.listening_dtls_port("outside") == 444 == t.advertised_dtls_port


def test_846_default_handles_match_seed_first_two() -> None:
    t = SocketTable("8.4(6)", interfaces={"outside": "172.16.11.1"})
    t.set_ssl_port(444)
    t.enable("outside")
    assert _norm(t.render()) == _norm(SEED_846_ENABLED)


def test_91_exact_padding_matches_spec_sketch() -> None:
    # protocol.md §8.1 sketch (its "<- bug" annotation removed)
    expected = (
        "Protocol  Socket    State      Local Address                  Foreign Address\n"
        "SSL       00012bc8  LISTEN     203.0.113.1:443                0.0.0.0:*\n"
        "DTLS      0001a5f8  LISTEN     203.0.113.1:443                0.0.0.0:*\n"
        "SSL       00023d98  ESTAB      203.0.113.1:443                198.51.100.7:52044\n"
        "DTLS      0002f4b8  ESTAB      203.0.113.1:443                198.51.100.7:61001\n"
    )
    t = SocketTable(
        "9.1(2)",
        interfaces={"outside": "203.0.113.1"},
        handles=[0x12BC8, 0x1A5F8, 0x23D98, 0x2F4B8],
    )
    t.enable("outside")
    t.set_dtls_port(8443)
    t.open_established("SSL", "outside", 443, "198.51.100.7:52044")
    dtls = t.open_established("DTLS", "outside", 443, "198.51.100.7:61001")
    assert t.render() == expected
    t.close(dtls.handle)
    assert t.render() == "".join(expected.splitlines(keepends=True)[:4])


def test_render_for_other_version_and_8x_padding() -> None:
    t = SocketTable("9.1(2)", interfaces={"outside": "172.16.11.1"}, handles=[1, 2])
    t.enable("outside")
    text = t.render("8.4(6)")
    assert text.splitlines()[0] == (
        "Protocol  Socket    Local Address                  Foreign Address         State"
    )
    assert text.splitlines()[1] == (
        "SSL       00000001  172.16.11.1:443                0.0.0.0:*               LISTEN"
    )
    assert render_asp_table_socket([], AsaVersion.parse("9.2(4)")).startswith("Protocol  Socket")


def test_override_bug_and_errors() -> None:
    t = SocketTable("9.1(2)", interfaces={"outside": "10.0.0.1"}, cscuh61321=False)
    t.enable("outside")
    t.set_dtls_port(444)
    assert t.listening_dtls_port("outside") == 444
    with pytest.raises(ConfigError):
        t.set_dtls_port(0)
    with pytest.raises(LocalProtocolError):
        t.enable("inside")
    with pytest.raises(ConfigError):
        AsaVersion.parse("latest")
    assert t.enable("outside") == []  # already enabled


def test_live_version_change_switches_rules_and_applies_pending_port() -> None:
    t = SocketTable("9.1(2)", interfaces={"outside": "172.16.11.1"})
    t.enable("outside")
    t.set_dtls_port(444)  # pending under 9.x (CSCuh61321)
    assert t.listening_dtls_port("outside") == 443
    closed = t.set_version("8.4(6)")
    assert [(s.protocol, s.local_port) for s in closed] == [("DTLS", 443)]
    assert t.listening_dtls_port("outside") == 444 == t.advertised_dtls_port
    assert t.render().splitlines()[0].split() == [
        "Protocol",
        "Socket",
        "Local",
        "Address",
        "Foreign",
        "Address",
        "State",
    ]
    # 8.4 rule from now on: the socket follows at once
    t.set_dtls_port(445)
    assert t.listening_dtls_port("outside") == 445
    # back to 9.x: nothing pending, the socket stays; later changes stay pending again
    assert t.set_version("9.1(4)") == []
    assert t.listening_dtls_port("outside") == 445
    t.set_dtls_port(446)
    assert t.listening_dtls_port("outside") == 445
    assert t.render().splitlines()[0].split()[2] == "State"
    with pytest.raises(ConfigError):
        t.set_version("latest")


def test_version_change_keeps_an_explicit_bug_override() -> None:
    t = SocketTable("8.4(6)", interfaces={"outside": "10.0.0.1"}, cscuh61321=True)
    t.enable("outside")
    t.set_dtls_port(444)
    assert t.listening_dtls_port("outside") == 443
    t.set_version("8.2(5)")
    assert t.affected
    assert t.listening_dtls_port("outside") == 443


# ------------------------------------------------------------------ show asp drop
def test_asp_drop_lines_match_real_output() -> None:
    c = AspDropCounters()
    c.drop("mp-svc-no-fragment", 113)
    c.drop("mp-svc-no-session", 115)
    c.drop("mp-svc-bad-framing", 2)
    c.drop_flow("svc-replacement-conn", 203)
    text = c.render_show_asp_drop()
    lines = text.splitlines()
    # these two lines are verbatim real ASA output (ntc-templates "show asp drop" sample)
    assert (
        "  SVC Module unable to fragment packet (mp-svc-no-fragment)                  113" in lines
    )
    assert (
        "  SVC Module does not have a session (mp-svc-no-session)                     115" in lines
    )
    assert (
        "  SVC replacement connection established (svc-replacement-conn)              203" in lines
    )
    assert text == (
        "Frame drop:\n"
        "  SVC Module received badly framed data (mp-svc-bad-framing)                   2\n"
        "  SVC Module unable to fragment packet (mp-svc-no-fragment)                  113\n"
        "  SVC Module does not have a session (mp-svc-no-session)                     115\n"
        "\n"
        "Last clearing: Never\n"
        "\n"
        "Flow drop:\n"
        "  SVC replacement connection established (svc-replacement-conn)              203\n"
        "\n"
        "Last clearing: Never\n"
    )
    assert c["mp-svc-no-fragment"] == 113
    assert all(len(line) == 80 for line in lines if line.startswith("  "))


def test_asp_drop_clear() -> None:
    c = AspDropCounters()
    c.drop("mp-svc-no-fragment")
    wall = datetime(2012, 3, 7, 10, 43, 33, tzinfo=timezone(timedelta(hours=-5), "EDT"))
    c.clear(wall)
    assert c["mp-svc-no-fragment"] == 0
    assert c.render_show_asp_drop() == (
        "Frame drop:\n\n"
        "Last clearing: 10:43:33 EDT Mar 7 2012 by enable_15\n\n"
        "Flow drop:\n\n"
        "Last clearing: 10:43:33 EDT Mar 7 2012 by enable_15\n"
    )
    with pytest.raises(LocalProtocolError):
        c.drop("mp-svc-typo")
    with pytest.raises(KeyError):
        c["nope"]
    assert {"mp-svc-no-fragment", "mp-svc-no-session", "mp-svc-bad-framing"} <= set(
        FRAME_DROP_REASONS
    )
