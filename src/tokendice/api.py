"""The public Python API. Every function validates its parameters before loading a model.

Engines are loaded once per (engine, model, options) and reused, so a notebook can
call `trace` repeatedly without reloading.
"""

from __future__ import annotations

from typing import Any

from tokendice.engines.base import Engine
from tokendice.params import SamplingParams

_ENGINE_CACHE: dict[tuple, Engine] = {}


def get_engine(engine: str | Engine = "hf", model: str | None = None, **options: Any) -> Engine:
    """An engine instance: pass one through, or load (and cache) one by name."""
    if not isinstance(engine, str):
        return engine
    key = (engine, model, tuple(sorted(options.items())))
    if key not in _ENGINE_CACHE:
        from tokendice.engines import load_engine

        _ENGINE_CACHE[key] = load_engine(engine, model, **options)
    return _ENGINE_CACHE[key]


def make_params(params: SamplingParams | None = None, **overrides: Any) -> SamplingParams:
    """SamplingParams from keyword arguments (validated here, before any model loads)."""
    base = params or SamplingParams()
    return base.with_(**overrides) if overrides else base


def trace(
    prompt: str,
    *,
    model: str | None = None,
    engine: str | Engine = "hf",
    seed: int = 0,
    rng: str = "per-sample",
    top: int = 5,
    chat: bool = False,
    params: SamplingParams | None = None,
    engine_options: dict[str, Any] | None = None,
    **sampling: Any,
):
    """Generate one completion and return a `Trace` of every step.

    `sampling` takes SamplingParams fields: temperature, top_k, top_p, min_p,
    repetition_penalty, no_repeat_ngram_size, max_new_tokens, do_sample, order.
    """
    from tokendice.experiments.prompting import encode_prompt  # noqa: F401  (validates early below)
    from tokendice.experiments.trace import run_trace
    from tokendice.params import RandomSpec

    chosen = make_params(params, **sampling)
    RandomSpec(seed, rng)
    _check_prompt(prompt)
    eng = get_engine(engine, model, **(engine_options or {}))
    return run_trace(eng, prompt, chosen, seed=seed, rng_mode=rng, top=top, chat=chat)


def _check_prompt(prompt: str) -> None:
    from tokendice.errors import ParameterError

    if not isinstance(prompt, str) or not prompt.strip():
        raise ParameterError("prompt must be a non-empty string")
