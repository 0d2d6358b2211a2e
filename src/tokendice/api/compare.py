"""`compare` (models and engines on one prompt) and `diff` (two generations)."""

from __future__ import annotations

from typing import Any

from tokendice.api._legacy import _check_prompt, get_engine, make_params  # noqa: F401
from tokendice.engines.base import Engine  # noqa: F401
from tokendice.params import SamplingParams  # noqa: F401


def compare(
    prompt: str,
    *,
    models: list[str | None] | None = None,
    engines: list[str | Engine] | None = None,
    continuation: str | None = None,
    top: int = 10,
    completions: bool = True,
    completion_tokens: int = 2,
    max_nodes: int = 50,
    mass: float = 0.99,
    chat: bool = False,
    params: SamplingParams | None = None,
    engine_options: dict[str, dict[str, Any]] | None = None,
    save: bool = True,
    db: str | None = None,
    **sampling: Any,
):
    """Compare models or engines on one prompt; returns a `CompareReport`.

    Sides: `engines=["hf", "llamacpp"]` (one model, default the embedded one),
    `models=["a", "b"]` (one engine), or as many engines as models. The first side is
    compared with each other one: per-step model distributions along a shared
    continuation (default: the first side's greedy one, `max_new_tokens` long) and,
    with `completions`, the total variation distance between their completion
    distributions (`completion_tokens` long, enumerated up to `max_nodes` prefixes).
    `engine_options` maps an engine name to its load options. With `save`, the report
    is stored as a run of kind 'compare' (result 'report').
    """
    from tokendice.experiments.compare.compare import CompletionBudget, engine_specs, run_compare, store_compare

    chosen = make_params(params, **sampling)
    _check_prompt(prompt)
    budget = CompletionBudget(completion_tokens, max_nodes, mass) if completions else None
    specs = engine_specs(engines or [], models or [])
    for name, _ in specs:
        if name == "openai":
            from tokendice.errors import EngineError

            raise EngineError("compare needs whole next-token distributions, and the openai engine (a server) "
                              "reports at most 20 logprobs per token: compare hf and llamacpp engines")
    options = engine_options or {}
    loaded = [get_engine(e, m, **options.get(e, {})) if isinstance(e, str) else e for e, m in specs]
    report = run_compare(loaded, prompt, chosen, continuation=continuation, top=top, completions=budget, chat=chat)
    if save:
        from tokendice.store import Store

        with Store(db) as store:
            store_compare(store, loaded, report, budget)
    return report


def diff(a: str, b: str, *, db: str | None = None):
    """Compare two generations (run ids, `ID:SAMPLE`, or trace JSON files); returns a `DiffReport`."""
    from tokendice.experiments.compare.diff import diff as run_diff
    from tokendice.store.db import Store

    with Store(db) as store:
        return run_diff(a, b, store)
