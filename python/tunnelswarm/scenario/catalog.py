"""Finding scenarios: the built-in ones by name, a user's file by path.

The built-in scenarios are the TOML files of :mod:`tunnelswarm.scenario.builtin`; the
``seed-matrix`` is the tech note's cases in the order :data:`SEED_MATRIX` gives.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Final

from tunnelswarm.errors import ConfigError
from tunnelswarm.scenario.model import Scenario, load_scenario, scenario_from_dict

__all__ = ["SEED_MATRIX", "builtin_names", "find_scenario", "list_builtin"]

#: the tech note's cases, in the order of the seed-matrix table
SEED_MATRIX: Final = (
    "dtls-blocked",
    "dtls-blocked-no-icmp",
    "fix-mtu-below-tls",
    "fix-df-bit-ignore",
    "fix-tcpmss-1460",
    "dtls-port-9x-bug",
    "dtls-port-9x-workaround",
    "dtls-port-8.4",
    "openconnect-dtls-blocked",
)


def _dir() -> resources.abc.Traversable:
    return resources.files("tunnelswarm.scenario.builtin")


def builtin_names() -> list[str]:
    return sorted(p.name[: -len(".toml")] for p in _dir().iterdir() if p.name.endswith(".toml"))


def _load_builtin(name: str) -> Scenario:
    import tomllib

    text = _dir().joinpath(f"{name}.toml").read_text(encoding="utf-8")
    return scenario_from_dict(tomllib.loads(text), f"<built-in {name}>")


def list_builtin() -> list[Scenario]:
    return [_load_builtin(n) for n in builtin_names()]


def find_scenario(name_or_path: str) -> Scenario:
    """A built-in scenario by name, or a scenario file (``.toml`` / ``.py``) by path."""
    if name_or_path in builtin_names():
        return _load_builtin(name_or_path)
    p = Path(name_or_path)
    if p.suffix in (".toml", ".py") or p.exists():
        return load_scenario(p)
    raise ConfigError(
        f"unknown scenario {name_or_path!r}: not a built-in one ({', '.join(builtin_names())},"
        " seed-matrix) and not a .toml/.py file"
    )
