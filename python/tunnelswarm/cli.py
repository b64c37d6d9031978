"""``tunnelswarm`` command line.

``tunnelswarm connect URL`` — one emulated client with openconnect's flag names where
the meaning is the same. Every error is one line on stderr (``tunnelswarm: error: …``)
and a non-zero exit status; tracebacks only with ``-vv``.

``tunnelswarm mock-asa [--config FILE] [--state-dir DIR] [--listen ADDR] [--port N]
[--admin ADDR:PORT] [--syslog FILE] [--syslog-udp ADDR:PORT] [-v]`` — a mock Cisco ASA
(:mod:`tunnelswarm.asa.server`); prints its URL and ``pin-sha256:`` and runs until
Ctrl-C (exit 0; 1 a socket error, 2 a bad configuration).

``tunnelswarm run SCENARIO …`` — a scenario (:mod:`tunnelswarm.scenario.cli`);
``tunnelswarm run -n N …`` / ``tunnelswarm run --open RATE --duration D …`` — a load
run of many emulated clients (:mod:`tunnelswarm.fleet.cli` says how the two forms are
told apart, and the exit status: 0 thresholds held, 1 one failed or interrupted, 2 the
run could not be made).

Exit status of ``connect``: 0 only when the tunnel carried traffic (with ``--ping``:
at least one echo reply; without: a DPD round trip over CSTP); 1 a failure of the
tunnel or headend; 2 bad usage or configuration; 3 login refused; 130 interrupted
before the tunnel carried traffic.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import TextIO

import trio

from tunnelswarm.config.profile import BUILTIN_NAMES, load_profile
from tunnelswarm.errors import AuthError, ConfigError, TunnelswarmError

__all__ = ["main"]

PROG = "tunnelswarm"


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be positive")
    return v


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must not be negative")
    return v


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Protocol-accurate Cisco AnyConnect client emulator and load tester.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    c = sub.add_parser(
        "connect",
        help="connect one emulated client and ping through the tunnel",
        description=(
            "Log in to an AnyConnect headend, bring up the CSTP tunnel and ping through it."
        ),
    )
    c.add_argument("url", metavar="URL", help="headend URL, https://host[:port][/group-path]")
    c.add_argument("-u", "--user", help="username")
    pw = c.add_mutually_exclusive_group()
    pw.add_argument("--passwd-on-stdin", action="store_true", help="read the password from stdin")
    pw.add_argument("--password-env", metavar="VAR", help="take the password from environment VAR")
    c.add_argument(
        "--servercert",
        action="append",
        default=[],
        metavar="pin-sha256:B64",
        help="accept the server certificate whose public key has this pin (repeatable)",
    )
    c.add_argument("--cafile", help="PEM file of CA certificates to trust instead of the system's")
    c.add_argument("--insecure", action="store_true", help="accept any server certificate (unsafe)")
    c.add_argument("--authgroup", help="tunnel group to select at login")
    c.add_argument("--useragent", help="User-Agent to send (only this header changes)")
    c.add_argument(
        "--profile",
        default="openconnect-9",
        metavar="NAME|FILE.toml",
        help="client to emulate: a built-in profile ("
        + ", ".join(BUILTIN_NAMES)
        + ") or a profile TOML file (default openconnect-9)",
    )
    c.add_argument("--base-mtu", type=_positive_int, help="link MTU to announce (X-CSTP-Base-MTU)")
    c.add_argument("--mtu", type=_positive_int, help="tunnel MTU to request (X-CSTP-MTU)")
    c.add_argument("--no-dtls", action="store_true", help="do not offer DTLS")
    c.add_argument(
        "--dtls-ciphers",
        metavar="LIST",
        help="offer only these X-DTLS-CipherSuite names (e.g. AES128-SHA, OC-DTLS1_2-AES128-GCM,"
        " PSK-NEGOTIATE)",
    )
    c.add_argument(
        "--dtls12-ciphers",
        metavar="LIST",
        help="offer only these X-DTLS12-CipherSuite names (e.g. AES128-GCM-SHA256)",
    )
    c.add_argument(
        "--reconnect-timeout",
        type=_positive_float,
        default=300.0,
        metavar="S",
        help="give up reconnecting after S seconds (default 300)",
    )
    c.add_argument("--ping", metavar="TARGET", help="IPv4 address to ping through the tunnel")
    c.add_argument(
        "--ping-count", type=_positive_int, default=5, metavar="N", help="probes (default 5)"
    )
    c.add_argument(
        "--ping-interval",
        type=_positive_float,
        default=1.0,
        metavar="S",
        help="seconds between probes",
    )
    c.add_argument(
        "--duration",
        type=_positive_float,
        default=0.0,
        metavar="S",
        help="keep the tunnel up at least S seconds (default: until the pings are done)",
    )
    c.add_argument("-v", "--verbose", action="count", default=0, help="protocol log (-vv: debug)")
    _add_mock_asa_parser(sub)
    from tunnelswarm.fleet.cli import extend_run_parser
    from tunnelswarm.scenario.cli import add_parsers

    add_parsers(sub)
    # `run` is one subcommand for both forms: SCENARIO, or a load model (fleet/cli.py)
    extend_run_parser(sub.choices["run"])
    return parser


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise argparse.ArgumentTypeError(f"{text!r} is not ADDR:PORT")
    try:
        n = int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: port is not a number") from None
    if not 0 <= n <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: port out of range")
    return host.strip("[]"), n


def _port(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= n <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: port out of range 0-65535")
    return n


def _add_mock_asa_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    m = sub.add_parser(
        "mock-asa",
        help="run a mock Cisco ASA headend (TLS, DTLS, XML login, admin console)",
        description=(
            "Serve AnyConnect clients like a Cisco ASA configured by an ASA config file. "
            "Ports in the config are ASA ports: the SSL port lands on --port, the others "
            "keep their distance to it."
        ),
    )
    m.add_argument("--config", metavar="FILE", help="ASA configuration (running-config syntax)")
    m.add_argument(
        "--state-dir", metavar="DIR", help="keep the server certificate here (stable pin)"
    )
    m.add_argument(
        "--listen", default="127.0.0.1", metavar="ADDR", help="address to bind (127.0.0.1)"
    )
    m.add_argument(
        "--port", type=_port, default=8443, metavar="N", help="TCP/UDP port (8443; 0 = any)"
    )
    m.add_argument(
        "--admin", type=_host_port, metavar="ADDR:PORT", help="admin console (line protocol)"
    )
    m.add_argument("--syslog", metavar="FILE", help="append syslog messages to FILE")
    m.add_argument(
        "--syslog-udp", type=_host_port, metavar="ADDR:PORT", help="send syslog to a receiver"
    )
    m.add_argument("-v", "--verbose", action="count", default=0, help="more output")


def _leaf_error(e: BaseException) -> BaseException:
    """The first non-group exception inside (nested) exception groups."""
    while isinstance(e, BaseExceptionGroup) and e.exceptions:
        e = e.exceptions[0]
    return e


async def _mock_asa(args: argparse.Namespace, out: TextIO) -> int:
    from pathlib import Path

    from tunnelswarm.asa.config import parse_config
    from tunnelswarm.asa.server import MockAsaConfig, MockAsaInfo, serve_mock_asa

    kw: dict[str, object] = {}
    if args.config:
        try:
            text = Path(args.config).read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"cannot read --config {args.config}: {e.strerror}") from None
        kw["asa"] = parse_config(text)
    config = MockAsaConfig(
        listen=args.listen,
        port=args.port,
        state_dir=Path(args.state_dir) if args.state_dir else None,
        admin=args.admin,
        syslog_stdout=True,
        syslog_file=Path(args.syslog) if args.syslog else None,
        syslog_udp=args.syslog_udp,
        **kw,  # type: ignore[arg-type]
    )
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            info: MockAsaInfo = await nursery.start(serve_mock_asa, config)
            cfg = info.asa.asa_config
            out.write(f"mock ASA {cfg.hostname} (ASA Version {cfg.asa_version})\n")
            if info.tcp_port is None:
                out.write("no interface is enabled for webvpn: not listening\n")
            else:
                out.write(f"URL: {info.url}\n")
                out.write(f"ASA ports + {info.port_offset} = real ports\n")
                if info.udp_port is not None:
                    out.write(f"DTLS: udp {info.host}:{info.udp_port}\n")
            out.write(f"server certificate: {info.pin}\n")
            if info.admin_port is not None:
                out.write(f"admin console: {args.admin[0]}:{info.admin_port}\n")
            for err in info.asa.errors:
                out.write(f"warning: {err}\n")
            out.flush()
            async for _ in signals:
                nursery.cancel_scope.cancel()
                break
    out.write("mock ASA stopped\n")
    out.flush()
    return 0


def _run_mock_asa(args: argparse.Namespace) -> int:
    try:
        return trio.run(_mock_asa, args, sys.stdout)
    except KeyboardInterrupt:
        return 130
    except BaseException as group:
        e = _leaf_error(group)
        if isinstance(e, (ConfigError, OSError, TunnelswarmError)):
            if args.verbose >= 2:
                raise
            print(f"{PROG}: error: {' '.join(str(e).split())}", file=sys.stderr)
            return 2 if isinstance(e, ConfigError) else 1
        raise


def _password(args: argparse.Namespace, stdin: TextIO) -> str | None:
    if args.passwd_on_stdin:
        line = stdin.readline()
        if not line:
            raise ConfigError("--passwd-on-stdin given but stdin is empty")
        return line.rstrip("\r\n")
    if args.password_env:
        value = os.environ.get(args.password_env)
        if value is None:
            raise ConfigError(f"--password-env {args.password_env}: variable is not set")
        return value
    return None


def _print_params(session: object, out: TextIO) -> None:
    from tunnelswarm.client.session import ClientSession

    assert isinstance(session, ClientSession)
    p = session.params
    assert p is not None
    w = out.write
    w(f"Connected to {session.target.url} ({session.tls_version}, {session.tls_cipher})\n")
    w(f"  server certificate  {session.server_pin}\n")
    if p.server_name:
        w(f"  server              {p.server_name}\n")
    w(f"  address             {p.address or '-'}/{p.netmask or '-'}")
    if p.address_ip6:
        w(f"  {p.address_ip6}")
    w("\n")
    if p.dns:
        w(f"  DNS                 {', '.join(p.dns)}\n")
    if p.split_include:
        w(f"  split-include       {', '.join(p.split_include)}\n")
    dtls_mtu = p.dtls_mtu if p.dtls_mtu is not None else "-"
    w(
        f"  MTU                 tunnel {p.tunnel_mtu} (X-CSTP-MTU {p.cstp_mtu},"
        f" X-DTLS-MTU {dtls_mtu}); requested base {session.base_mtu},"
        f" mtu {session.requested_mtu}\n"
    )
    w(f"  DPD                 {p.dpd} s   keepalive {p.keepalive} s\n")
    rekey = f"{p.rekey_method} every {p.rekey_time} s" if p.rekey_method != "none" else "none"
    w(f"  rekey               {rekey}\n")

    def t(v: int | None) -> str:
        return "none" if not v else f"{v} s"

    w(
        f"  timeouts            idle {t(p.idle_timeout)}, session {t(p.session_timeout)},"
        f" disconnected {t(p.disconnected_timeout)}\n"
    )
    if session.options.no_dtls:
        w("  DTLS                not offered (--no-dtls)\n")
    elif p.dtls_offered:
        w(
            f"  DTLS offered        cipher {p.dtls_cipher}, port {p.dtls_port},"
            f" DPD {p.dtls_dpd} s, keepalive {p.dtls_keepalive} s\n"
        )
    else:
        w("  DTLS                not offered by the headend\n")
    out.flush()


async def _report_dtls(session: object, out: TextIO) -> None:
    """Wait for the first DTLS attempt to finish (up or failed) and say how it went."""
    from tunnelswarm.client.session import ClientSession

    assert isinstance(session, ClientSession)
    dtls = session.dtls
    if dtls is None:
        return
    with trio.move_on_after(session.dtls_retry.handshake_timeout + 2):
        while not dtls.up and dtls.last_failure is None:
            await dtls.state_changed.wait()
    if dtls.up:
        c = dtls.conn
        detail = f"{c.version}, {c.suite}" if c is not None else dtls.plan.cipher
        out.write(
            f"  DTLS                up ({detail}) to port {dtls.plan.port};"
            f" tunnel MTU {session.adapter.mtu}; data goes over DTLS\n"
        )
    else:
        out.write(
            f"  DTLS                not up ({dtls.last_failure or 'still trying'});"
            " data goes over CSTP, retry every"
            f" {session.dtls_retry.retry_period:g} s\n"
        )
    out.flush()


async def _connect(args: argparse.Namespace, password: str | None, out: TextIO) -> int:
    from dataclasses import replace

    from tunnelswarm.client.session import ClientOptions, open_client

    profile = load_profile(args.profile)
    if args.useragent:
        profile = replace(profile, user_agent=args.useragent)
    if args.dtls_ciphers is not None or args.dtls12_ciphers is not None:
        # as openconnect: each flag sends only its own header (protocol.md §3.2)
        profile = replace(
            profile,
            dtls_ciphers=args.dtls_ciphers or "",
            dtls12_ciphers=args.dtls12_ciphers or "",
        )
    options = ClientOptions(
        url=args.url,
        user=args.user,
        password=password,
        authgroup=args.authgroup,
        servercert=tuple(args.servercert),
        cafile=args.cafile,
        insecure=args.insecure,
        profile=profile,
        base_mtu=args.base_mtu,
        mtu=args.mtu,
        no_dtls=args.no_dtls,
        reconnect_timeout=args.reconnect_timeout,
        keylog_file=os.environ.get("SSLKEYLOGFILE") or None,
    )
    carried = False
    interrupted = False
    failures: list[TunnelswarmError] = []
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def watch_signals() -> None:
                nonlocal interrupted
                async for _ in signals:
                    interrupted = True
                    nursery.cancel_scope.cancel()
                    return

            nursery.start_soon(watch_signals)

            async def job() -> None:
                try:
                    await run_session()
                except TunnelswarmError as e:
                    failures.append(e)
                nursery.cancel_scope.cancel()

            async def run_session() -> None:
                nonlocal carried
                async with open_client(options, bye_text="Aborted by caller") as session:
                    _print_params(session, out)
                    start = trio.current_time()
                    await _report_dtls(session, out)
                    if args.ping:
                        p = session.params
                        assert p is not None
                        out.write(
                            f"PING {args.ping} through the tunnel from {p.address}: 56 data bytes\n"
                        )
                        report = await session.adapter.ping(
                            args.ping,
                            count=args.ping_count,
                            interval=args.ping_interval,
                            on_reply=lambda r: out.write(
                                f"{r.size - 20} bytes from {args.ping}: icmp_seq={r.seq} "
                                f"ttl={r.ttl} time={r.rtt_ms:.3f} ms\n"
                            ),
                            on_error=lambda e: out.write(f"{e}\n"),
                        )
                        s = report.stats
                        loss = 100.0 * float(s["loss_ratio"])  # type: ignore[arg-type]
                        out.write(f"--- {args.ping} tunnel ping statistics ---\n")
                        out.write(
                            f"{s['sent']} packets transmitted, {s['received']} received, "
                            f"{loss:.0f}% packet loss\n"
                        )
                        if s["rtt_min_us"] is not None:
                            vals = [
                                float(s[k]) / 1000.0  # type: ignore[arg-type]
                                for k in ("rtt_min_us", "rtt_avg_us", "rtt_max_us", "rtt_mdev_us")
                            ]
                            out.write(
                                "rtt min/avg/max/mdev = {:.3f}/{:.3f}/{:.3f}/{:.3f} ms\n".format(
                                    *vals
                                )
                            )
                        carried = report.received > 0
                    else:
                        carried = await session.check_round_trip()
                    rest = args.duration - (trio.current_time() - start)
                    if rest > 0:
                        await trio.sleep(rest)
                    dtls = session.dtls
                    out.write(
                        f"Data packets: {session.tx_cstp_packets} sent / {session.rx_cstp_packets}"
                        " received over CSTP"
                        + (
                            f", {dtls.counters.tx_packets} sent / {dtls.counters.rx_packets}"
                            " received over DTLS"
                            if dtls is not None
                            else ""
                        )
                        + "\n"
                    )
                    out.write(
                        f"Disconnecting: {session.reconnects} reconnect(s); "
                        f"tunnel {'carried traffic' if carried else 'carried NO traffic'}\n"
                    )
                    out.flush()

            nursery.start_soon(job)
    if failures:
        raise failures[0]
    if interrupted and not carried:
        out.write("Interrupted.\n")
        return 130
    return 0 if carried else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING
    if args.verbose == 1:
        level = logging.INFO
    elif args.verbose >= 2:
        level = logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    if args.command == "mock-asa":
        return _run_mock_asa(args)
    if args.command == "run":
        from tunnelswarm.fleet.cli import run_command

        return run_command(args)
    if args.command == "scenarios":
        from tunnelswarm.scenario.cli import scenarios_command

        return scenarios_command()
    try:
        password = _password(args, sys.stdin)
        return trio.run(_connect, args, password, sys.stdout)
    except AuthError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 3
    except ConfigError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except TunnelswarmError as e:
        if args.verbose >= 2:
            raise
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
