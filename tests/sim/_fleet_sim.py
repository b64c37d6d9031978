"""Helpers shared by the load-run tests."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tunnelswarm.cli import main


def run_json(
    capsys: pytest.CaptureFixture[str], *argv: str
) -> tuple[int, list[dict[str, Any]], dict[str, Any], str]:
    """``tunnelswarm run … --json-lines`` in this process: (status, the ``progress``
    objects, the ``summary`` object, stderr). Every stdout line must be one JSON object,
    the last one the summary."""
    rc = main(["run", *argv, "--json-lines"])
    cap = capsys.readouterr()
    objs = [json.loads(line) for line in cap.out.splitlines()]
    assert objs, cap.err
    *progress, summary = objs
    assert summary["type"] == "summary"
    assert all(p["type"] == "progress" for p in progress)
    return rc, progress, summary, cap.err
