"""JSON encoding for values the store keeps: manifests, results, token lists."""

from __future__ import annotations

import dataclasses
import json
from pathlib import PurePath
from typing import Any

from tokendice.errors import StoreError


def _default(obj: Any) -> Any:
    # numpy arrays and scalars, torch tensors: all have tolist().
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, PurePath):
        return str(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=repr)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def dumps(value: Any, what: str = "value") -> str:
    """Compact JSON; NaN and infinities are kept (as Python's json writes them)."""
    try:
        return json.dumps(value, default=_default, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise StoreError(f"cannot store {what} as JSON: {exc}") from exc


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)
