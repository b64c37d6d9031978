"""The microsecond timeline the core sees (drive/stream.py ``now_us``)."""

from __future__ import annotations

import random

import trio
import trio.testing

from tunnelswarm.drive.stream import now_us


async def test_sleeping_until_a_deadline_reads_back_at_least_that_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A timer loop sleeps until ``deadline / 1e6`` and must then see the core's timer
    due; with truncation 32.26 s read back as 32259999 us and the loop spun."""
    await trio.sleep_until(32_260_000 / 1_000_000)
    assert now_us() == 32_260_000
    rng = random.Random(20261130)
    print("seed 20261130")
    deadline = 32_260_000
    for _ in range(20_000):
        deadline += rng.randrange(1, 3_000_000)
        await trio.sleep_until(deadline / 1_000_000)
        assert now_us() == deadline
