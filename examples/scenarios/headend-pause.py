"""A scripted scenario: the headend freezes for 100 s (a VM pause, a failover) and comes back.

Run it: ``tunnelswarm run examples/scenarios/headend-pause.py --virtual-time``.

With DPD 30 s, openconnect-style clients declare the headend dead about 75 s after the
last thing they heard (§7.1: DPD at +30, +45, +60, dead at +75 s), reconnect with their
cookie once it answers again, and the mock ASA resumes the same session (same address)
because its disconnected timeout has not run out. The script reads the mock's session
table before and after, and says what it saw in the timeline.
"""

from __future__ import annotations

from tunnelswarm.scenario.expect import parse_check
from tunnelswarm.scenario.model import ClientsSpec, PingSpec, Scenario, TrafficSpec
from tunnelswarm.scenario.run import ScriptContext

scenario = Scenario(
    name="headend-pause",
    description=(
        "the headend freezes for 100 s: DPD declares it dead, the cookie reconnect"
        " resumes the session"
    ),
    duration=300,
    clients=ClientsSpec(profile="openconnect-9", count=3, stagger=1),
    traffic=TrafficSpec(ping=PingSpec(target="10.1.1.1", interval=10)),
    expect=(
        parse_check("reconnects[dpd] >= 3", "every client's DPD notices the frozen headend"),
        parse_check("reconnects[mtu] == 0", "openconnect never reconnects for MTU"),
        parse_check("clients_failed == 0", "the cookie reconnect is accepted (same session)"),
        parse_check("dtls_up_ratio == 1", "DTLS comes back after the reconnect"),
        parse_check("script_failed == 0", "the script's own checks held"),
    ),
)


async def script(ctx: ScriptContext) -> None:
    await ctx.sleep_until(30)
    asa = ctx.asa
    assert asa is not None
    before = {s.username + "@" + s.assigned_ip for s in asa.sessiondb}
    ctx.say(f"{len(before)} sessions; freezing the headend for 100 s")
    ctx.impair(pause_headend=100)
    await ctx.sleep_until(200)
    after = {s.username + "@" + s.assigned_ip for s in asa.sessiondb}
    if after != before:
        raise AssertionError(f"sessions changed across the pause: {before} -> {after}")
    ctx.say("every session resumed with its address")
    ctx.admin("show vpn-sessiondb summary")
