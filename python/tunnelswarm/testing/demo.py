"""``make demo``: one emulated client against a throwaway real ocserv.

Until the mock ASA exists (a later issue makes it the demo's embedded default), the
demo starts ocserv inside a private network namespace with the project's own fixture
(:mod:`tunnelswarm.testing.ocserv`), runs ``tunnelswarm connect`` against it — login,
CSTP tunnel, five pings to ocserv's tunnel-side address — prints the client's report
and tears everything down. Where a real ocserv cannot be started (not root, package
missing) it says so in one line and exits non-zero.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from tunnelswarm.cli import main as cli_main
from tunnelswarm.testing.ocserv import OcservConfig, PeerUnavailable, peers_available, start_ocserv

__all__ = ["main"]


def main() -> int:
    reason = peers_available()
    if reason is not None:
        print(f"demo: cannot start a real ocserv here: {reason}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="tunnelswarm-demo-") as tmp:
        try:
            server = start_ocserv(Path(tmp), OcservConfig(port=4443))
        except (PeerUnavailable, RuntimeError) as e:
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            print(f"demo: cannot start a real ocserv here: {first}", file=sys.stderr)
            return 2
        with server:
            print(
                f"demo: ocserv 1.x running in network namespace {server.namespace} at {server.url}"
            )
            print(f"demo: its certificate pin is {server.pin}\n")
            os.environ["TUNNELSWARM_DEMO_PASSWORD"] = server.password
            argv = [
                "connect",
                server.url,
                "-u",
                server.user,
                "--password-env",
                "TUNNELSWARM_DEMO_PASSWORD",
                "--servercert",
                server.pin,
                "--ping",
                server.gateway,
                "--ping-count",
                "5",
                "--ping-interval",
                "0.2",
            ]
            print("demo: $ tunnelswarm " + " ".join(argv) + "\n", flush=True)
            rc = cli_main(argv)
            users = server.show_users()
            print(f"\ndemo: sessions left on ocserv after disconnect: {len(users)}")
        print("demo: ocserv stopped, namespace removed")
    return rc


if __name__ == "__main__":
    sys.exit(main())
