"""Engines: where logits (white-box) or sampled tokens (black-box) come from.

`EngineSpec` (engines/spec.py) says which engine runs which model with which
options; `load_engine` is a shortcut for `EngineSpec(...).load()`. The protocol
(`Engine`, `EngineState`, `Tokenizer`) is in engines/base.py, which imports torch;
this package imports nothing heavy.
"""

from __future__ import annotations

from typing import Any

from tokendice.engines.spec import ENGINE_KINDS, ENGINES, EngineKind, EngineSpec


def load_engine(engine: str = "hf", model: str | None = None, **options: Any) -> Any:
    """Load an engine by name (options validated first). Heavy libraries are imported here."""
    return EngineSpec(engine, model, **options).load()


__all__ = ["ENGINES", "ENGINE_KINDS", "EngineKind", "EngineSpec", "load_engine"]
