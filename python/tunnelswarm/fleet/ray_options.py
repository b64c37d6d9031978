"""The ``--ray*`` options of ``tunnelswarm run`` and the per-node source pools, without
Ray (the CLI checks the flags before it imports :mod:`tunnelswarm.fleet.ray_workers`,
which imports Ray). See :mod:`tunnelswarm.fleet.ray_workers` and ``docs/ray.md``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from tunnelswarm.errors import ConfigError
from tunnelswarm.fleet.plan import SourcePool, _item_range
from tunnelswarm.fleet.workers import LostPolicy

__all__ = ["DRAIN_WAIT", "NodeSourcePool", "Placement", "RayOptions", "parse_ray_source"]

Placement = Literal["spread", "pack"]

#: how long an actor's ``drain`` waits for a message before it answers with none
DRAIN_WAIT: Final = 0.25


# ------------------------------------------------------------------ options
@dataclass(frozen=True)
class RayOptions:
    """The ``--ray*`` flags."""

    #: ``auto`` or a cluster address (``HOST:6379``)
    address: str = "auto"
    #: None: one per node (spread) or per CPU (pack)
    workers: int | None = None
    placement: Placement = "spread"
    on_lost: LostPolicy = "count"
    #: (selector, pool) in the order given
    sources: tuple[tuple[str, SourcePool], ...] = ()


def parse_ray_source(text: str) -> tuple[str, SourcePool]:
    """``SELECTOR=POOL`` of ``--ray-source`` (the pool is checked on its node)."""
    selector, sep, pool = text.partition("=")
    selector, pool = selector.strip(), pool.strip()
    if not sep or not selector or not pool:
        raise ConfigError(
            f"--ray-source {text!r}: expected SELECTOR=POOL, e.g. 10.0.0.2=10.0.0.100-10.0.0.199"
        )
    ranges = []
    for raw in pool.split(","):
        item = raw.strip()
        if not item:
            raise ConfigError(f"--ray-source {text!r}: empty item in the list")
        ranges.append(_item_range(item, "--ray-source"))
    return selector, SourcePool(ranges, pool)


class NodeSourcePool(SourcePool):
    """One worker's view of its node's pool: the node's ``spread`` workers take turns
    through it (worker ``position``'s ``i``-th session gets address
    ``position + spread * i``), so the node's sessions use all of its addresses."""

    __slots__ = ("base", "position", "spread", "stride")

    def __init__(
        self, pool: SourcePool, *, base: int, stride: int, position: int, spread: int
    ) -> None:
        super().__init__(pool._ranges, pool.text)
        self.base = base
        self.stride = stride
        self.position = position
        self.spread = spread

    def get(self, index: int) -> str:
        """The source address of the global session ``index`` (one of this worker's)."""
        i = max(0, index - self.base) // self.stride
        return super().get(self.position + self.spread * i)
