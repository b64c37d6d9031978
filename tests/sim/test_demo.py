"""``make demo``'s job: emulated clients against the in-process mock ASA."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from tunnelswarm.demo import EXAMPLE, main, run_demo


async def test_demo_brings_clients_up_over_dtls(capsys: pytest.CaptureFixture[str]) -> None:
    with trio.fail_after(90):
        rc = await run_demo(3, 2, EXAMPLE)
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "3/3 clients had DTLS up and every ping answered" in out
    assert "1347/1418" in out  # the tech note's TLS and DTLS MTUs on defaults
    assert "DTLS0.9 AES128-SHA" in out
    assert "DTLS1.2 AES256-GCM-SHA384" in out


def test_demo_refuses_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--clients", "0"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "demo: error: --clients and --pings must be at least 1"


async def test_demo_without_the_example_file_uses_the_builtin_config(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with trio.fail_after(90):
        rc = await run_demo(1, 1, tmp_path / "missing.cfg")
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "the built-in default configuration" in out
