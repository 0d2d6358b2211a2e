"""Engines: where logits (white-box) or sampled tokens (black-box) come from."""

from __future__ import annotations

from typing import Any

from tokendice.engines.base import Engine, EngineState, Tokenizer
from tokendice.errors import ParameterError

ENGINES = ("hf", "llamacpp", "openai")


def load_engine(engine: str = "hf", model: str | None = None, **options: Any) -> Engine:
    """Load an engine by name. Heavy libraries are imported here, not at package import.

    "hf" and "llamacpp" are white-box; "openai" (needs base_url=...) returns a
    black-box `OpenAIEngine` (`white_box` False), which has `generate`, not `logits`.
    """
    if engine == "hf":
        from tokendice.engines.hf import HFEngine

        return HFEngine(model, **options)
    if engine == "llamacpp":
        from tokendice.engines.llamacpp import LlamaCppEngine

        return LlamaCppEngine(model, **options)
    if engine == "openai":
        from tokendice.engines.openai import OpenAIEngine

        if not options.get("base_url"):
            raise ParameterError("the openai engine needs base_url (e.g. http://127.0.0.1:8000/v1)")
        if not model:
            raise ParameterError("the openai engine needs a model name (the one the server serves)")
        return OpenAIEngine(model=model, **options)  # type: ignore[return-value]
    raise ParameterError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")


__all__ = ["ENGINES", "Engine", "EngineState", "Tokenizer", "load_engine"]
