"""JSON for results: strict JSON has no NaN or infinity (a log-probability of an impossible
token is -inf), so results write them as null."""

from __future__ import annotations

import math
from typing import Any


def finite_or_none(x: float | None) -> float | None:
    """A float for strict JSON: NaN and infinities become None (null)."""
    return x if x is None or math.isfinite(x) else None


def finite_json(value: Any) -> Any:
    """A copy of nested dicts/lists/tuples where NaN and infinities become None (null)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    return value
