"""Strict JSON for the report files and the JSON-lines feed (no NaN, no Infinity)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import PurePath


def jsonable(value: object) -> object:
    """``value`` as plain JSON data: NaN and infinities as None, tuples and sets as lists,
    mapping keys as strings, paths and anything else unknown as ``str``."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((jsonable(v) for v in value), key=repr)
    if isinstance(value, PurePath):
        return str(value)
    return str(value)


def dumps(value: object, *, indent: int | None = None) -> str:
    """Strict JSON text of :func:`jsonable` ``(value)``."""
    return json.dumps(jsonable(value), indent=indent, allow_nan=False)
