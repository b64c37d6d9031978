"""The real openconnect (Debian's 9.01) against the mock ASA on 127.0.0.1.

openconnect logs in with the XML dialogue (user test, password on stdin, the mock's
``pin-sha256:``), gets the CONNECT answer of the mock (``X-CSTP-MTU 1347`` /
``X-DTLS-MTU 1418``) and brings DTLS up with ``--dtls-ciphers=AES128-SHA``; the mock's
``show vpn-sessiondb anyconnect`` then lists the user, the address and the DTLS-Tunnel.
``--script-tun`` with a script that just drains ``$VPNFD`` replaces the tun device.
openconnect runs in its own process group, killed whatever happens.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import trio
from _support import reap_process_group

from tunnelswarm.asa.config import parse_config
from tunnelswarm.asa.server import MockAsaConfig, MockAsaInfo, serve_mock_asa

pytestmark = pytest.mark.interop

OPENCONNECT = shutil.which("openconnect")
STDBUF = shutil.which("stdbuf")
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "asa-9.1.cfg"


async def _read_all(stream: trio.abc.ReceiveStream, output: bytearray) -> None:
    with contextlib.suppress(trio.ClosedResourceError, trio.BrokenResourceError):
        while chunk := await stream.receive_some(65536):
            output += chunk


async def _poll(predicate: object, what: str, output: bytearray, timeout: float) -> None:
    assert callable(predicate)
    with trio.move_on_after(timeout):
        while not predicate():
            await trio.sleep(0.05)
        return
    tail = "\n".join(output.decode(errors="replace").splitlines()[-40:])
    pytest.fail(f"timed out waiting for {what}; openconnect output tail:\n{tail}")


@pytest.mark.skipif(OPENCONNECT is None, reason="openconnect is not installed")
async def test_openconnect_logs_in_and_establishes_dtls(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    assert OPENCONNECT is not None
    with trio.fail_after(60):
        info: MockAsaInfo = await nursery.start(
            serve_mock_asa,
            MockAsaConfig(
                asa=parse_config(EXAMPLE.read_text()), port=0, state_dir=tmp_path / "state"
            ),
        )
        asa = info.asa
        cmd = [
            OPENCONNECT,
            "--protocol=anyconnect",
            "--servercert",
            info.pin,
            "-u",
            "test",
            "--passwd-on-stdin",
            "--non-inter",
            "--script-tun",
            "--script",
            "exec cat <&$VPNFD >/dev/null",
            "-v",
            "--dtls-ciphers=AES128-SHA",
            info.url,
        ]
        if STDBUF is not None:  # openconnect block-buffers into a pipe
            cmd = [STDBUF, "-oL", "-eL", *cmd]
        proc = await trio.lowlevel.open_process(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group
        )
        assert proc.stdin is not None
        assert proc.stdout is not None
        output = bytearray()
        try:
            async with trio.open_nursery() as inner:
                inner.start_soon(_read_all, proc.stdout, output)
                await proc.stdin.send_all(b"test\n")
                await proc.stdin.aclose()

                def text() -> str:
                    return output.decode(errors="replace")

                await _poll(
                    lambda: "Established DTLS connection" in text() or proc.returncode is not None,
                    "Established DTLS connection",
                    output,
                    30,
                )
                assert proc.returncode is None, text()[-3000:]
                await _poll(
                    lambda: any(s.dtls is not None for s in asa.sessiondb),
                    "the mock's DTLS-Tunnel",
                    output,
                    10,
                )
                listing = asa.show("vpn-sessiondb anyconnect")
                assert "Username     : test" in listing
                assert "10.10.10.10" in listing
                assert "AnyConnect-Parent SSL-Tunnel DTLS-Tunnel" in listing
                assert "AES128" in listing
                out = text()
                assert "(DTLS0.9)-(RSA)-(AES-128-CBC)-(SHA1)" in out
                assert "X-CSTP-MTU: 1347" in out
                assert "X-DTLS-MTU: 1418" in out
                assert "X-DTLS-CipherSuite: AES128-SHA" in out
                assert f"X-DTLS-Port: {info.udp_port}" in out
                proc.send_signal(signal.SIGINT)
                await _poll(lambda: proc.returncode is not None, "openconnect to exit", output, 10)
                await _poll(lambda: len(asa.sessiondb) == 0, "the logout", output, 10)
                inner.cancel_scope.cancel()
        finally:
            await reap_process_group(proc)
            with trio.CancelScope(shield=True):
                await proc.stdout.aclose()
        lines = "\n".join(asa.syslog_buffer.lines())
        assert "-722033:" in lines
        assert "Client Type: Open AnyConnect VPN Agent" in lines
