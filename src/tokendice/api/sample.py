"""`sample` and `enumerate_completions`: the distribution of completions, sampled and exact."""

from __future__ import annotations

from typing import Any

from tokendice.api._legacy import _check_prompt, get_engine, make_params  # noqa: F401
from tokendice.engines.base import Engine  # noqa: F401
from tokendice.params import SamplingParams  # noqa: F401


def sample(
    prompt: str | list[str],
    n: int = 100,
    *,
    model: str | None = None,
    engine: str | Engine = "hf",
    seed: int = 0,
    rng: str = "per-sample",
    method: str = "independent",
    chat: bool = False,
    batch_size: int = 250,
    db: str | None = None,
    params: SamplingParams | None = None,
    engine_options: dict[str, Any] | None = None,
    **sampling: Any,
):
    """Draw n completions per prompt, store them as a run, and return (run id, analyses).

    Each analysis (one per prompt) lists the distinct completions with counts, 95%
    Wilson intervals, their exact probabilities under the sampling distribution, and
    a goodness-of-fit test.
    """
    from tokendice.experiments.distribution.sample import SampleSpec, fill_sample_run, start_sample_run
    from tokendice.experiments.distribution.analysis import analyze_samples
    from tokendice.store import Store

    prompts = (prompt,) if isinstance(prompt, str) else tuple(prompt)
    spec = SampleSpec(prompts, make_params(params, **sampling), n, seed, rng, method, chat, batch_size)
    eng = get_engine(engine, model, **(engine_options or {}))
    with Store(db) as store:
        run_id = start_sample_run(store, eng, spec)
        fill_sample_run(store, eng, run_id)
        analyses = [analyze_samples(store.samples(run_id, prompt_index=i), greedy=spec.params.greedy) for i in range(len(prompts))]
    return run_id, analyses


def enumerate_completions(
    prompt: str,
    *,
    model: str | None = None,
    engine: str | Engine = "hf",
    mass: float = 0.99,
    max_nodes: int = 2000,
    chat: bool = False,
    params: SamplingParams | None = None,
    engine_options: dict[str, Any] | None = None,
    **sampling: Any,
):
    """Exact best-first enumeration of completions under the sampling distribution
    (`tokendice.enumerate`; named so here to leave the builtin alone)."""
    from tokendice.engines.base import require_logits
    from tokendice.experiments.decoding.enumerate import enumerate_completions as best_first
    from tokendice.experiments.decoding.prompting import encode_prompt

    chosen = make_params(params, **sampling)
    _check_prompt(prompt)
    eng = get_engine(engine, model, **(engine_options or {}))
    require_logits(eng, "exact enumeration")
    return best_first(eng, encode_prompt(eng.tokenizer, prompt, chat), chosen, mass=mass, max_nodes=max_nodes)
