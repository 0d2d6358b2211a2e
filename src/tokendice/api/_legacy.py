"""Transitional helpers for the API modules being rewritten (removed when they are)."""

from __future__ import annotations

from typing import Any

from tokendice.api._common import engine_spec, load
from tokendice.engines.base import Engine
from tokendice.inputs import check_prompt as _check_prompt  # noqa: F401
from tokendice.params import SamplingParams


def get_engine(engine: Any = "hf", model: str | None = None, **options: Any) -> Engine:
    """Transitional: an engine by name (cached) or the engine given."""
    if isinstance(engine, str):
        from tokendice.engines.spec import EngineSpec

        return load(EngineSpec(engine, model, **options))
    return load(engine_spec(engine, None))


def make_params(params: SamplingParams | None = None, **overrides: Any) -> SamplingParams:
    base = params or SamplingParams()
    return base.with_(**overrides) if overrides else base
