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
    """Generate one completion and return a `Trace` of every step (on a black-box engine,
    `engine="openai"` with engine_options={"base_url": ...}, a `BlackBoxTrace` of what the server reported).

    `sampling` takes SamplingParams fields: temperature, top_k, top_p, min_p,
    repetition_penalty, no_repeat_ngram_size, max_new_tokens, do_sample, order.
    """
    from tokendice.experiments.trace import run_trace
    from tokendice.params import RandomSpec

    chosen = make_params(params, **sampling)
    RandomSpec(seed, rng)
    _check_prompt(prompt)
    eng = get_engine(engine, model, **(engine_options or {}))
    if not getattr(eng, "white_box", True):  # a server: a BlackBoxTrace of what it reported
        from tokendice.experiments.blackbox_runs import run_blackbox_trace

        return run_blackbox_trace(eng, prompt, chosen, seed=seed, rng_mode=rng, top=top, chat=chat)  # type: ignore[arg-type]
    return run_trace(eng, prompt, chosen, seed=seed, rng_mode=rng, top=top, chat=chat)


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
    from tokendice.experiments.sample import SampleSpec, fill_sample_run, start_sample_run
    from tokendice.experiments.sample_analysis import analyze_samples
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
    from tokendice.experiments.blackbox_runs import require_white_box
    from tokendice.experiments.enumerate import enumerate_completions as best_first
    from tokendice.experiments.prompting import encode_prompt

    chosen = make_params(params, **sampling)
    _check_prompt(prompt)
    eng = get_engine(engine, model, **(engine_options or {}))
    require_white_box(eng, "exact enumeration")
    return best_first(eng, encode_prompt(eng.tokenizer, prompt, chat), chosen, mass=mass, max_nodes=max_nodes)


def _check_prompt(prompt: str) -> None:
    from tokendice.errors import ParameterError

    if not isinstance(prompt, str) or not prompt.strip():
        raise ParameterError("prompt must be a non-empty string")


def audit(
    prompt: str,
    *,
    model: str | None = None,
    engine: str | Engine = "hf",
    repeats: int = 5,
    conditions: str | list[str] | None = None,
    batch_sizes: tuple[int, ...] = (1, 2, 8, 32),
    seed: int = 0,
    rng: str = "per-sample",
    deterministic: bool = False,
    dtype: str = "float32",
    threads: int | None = None,
    chat: bool = False,
    params: SamplingParams | None = None,
    engine_options: dict[str, Any] | None = None,
    base_url: str | None = None,
    save: bool = True,
    db: str | None = None,
    progress: Any = None,
    **sampling: Any,
):
    """Run one request under a matrix of conditions and return an `AuditReport`.

    The baseline is batch 1, `dtype` (float32), all threads (or `threads`), KV cache
    on, sdpa attention; `conditions` picks groups among baseline, batch, dtype,
    threads, kv_cache, attention, engines (default: all). With `save`, the audit is
    stored as a run of kind 'audit' (result 'report') and `report.run_id` is set.
    """
    from tokendice.experiments.audit import run_audit
    from tokendice.experiments.audit_conditions import parse_groups
    from tokendice.experiments.audit_report import store_report
    from tokendice.params import RandomSpec

    chosen = make_params(params, **sampling)
    spec = RandomSpec(seed, rng)
    _check_prompt(prompt)
    parse_groups(conditions)  # a bad condition name fails before any model loads
    provider, baseline = _audit_provider(engine, model, dtype, threads, deterministic, base_url, engine_options)
    report = run_audit(provider, prompt, chosen, spec, repeats, conditions, baseline, batch_sizes, chat, progress)
    if save:
        store_report(report, db)
    return report


def agreement(
    prompts: list[str],
    *,
    model: str | None = None,
    engine: str | Engine = "hf",
    repeats: int = 5,
    answer_regex: str | None = None,
    batch_size: int = 1,
    seed: int = 0,
    rng: str = "per-sample",
    deterministic: bool = False,
    dtype: str = "float32",
    threads: int | None = None,
    chat: bool = False,
    params: SamplingParams | None = None,
    engine_options: dict[str, Any] | None = None,
    save: bool = True,
    db: str | None = None,
    progress: Any = None,
    **sampling: Any,
):
    """Run every prompt `repeats` times; return an `AgreementReport` with TARr@N and TARa@N."""
    from tokendice.experiments.audit_prompts import compile_regex, run_agreement
    from tokendice.experiments.audit_report import store_report
    from tokendice.params import RandomSpec

    chosen = make_params(params, **sampling)
    spec = RandomSpec(seed, rng)
    compile_regex(answer_regex)
    for p in prompts:
        _check_prompt(p)
    provider, setup = _audit_provider(engine, model, dtype, threads, deterministic, None, engine_options)
    report = run_agreement(provider, prompts, chosen, spec, repeats, answer_regex, setup.with_(batch_size=batch_size), chat, progress)
    if save:
        store_report(report, db)
    return report


def diff(a: str, b: str, *, db: str | None = None):
    """Compare two generations (run ids, `ID:SAMPLE`, or trace JSON files); returns a `DiffReport`."""
    from tokendice.experiments.diff import diff as run_diff
    from tokendice.store.db import Store

    with Store(db) as store:
        return run_diff(a, b, store)


def _audit_provider(engine, model, dtype, threads, deterministic, base_url, engine_options):
    from tokendice.experiments.audit_controls import Setup
    from tokendice.experiments.audit_engines import provider_for, quiet_loading

    name = engine if isinstance(engine, str) else engine.name
    baseline = Setup(engine=name, dtype=dtype, threads=threads, deterministic=deterministic)
    options = dict(engine_options or {})
    if name == "hf":
        options["dtype"] = dtype
    with quiet_loading():
        loaded = get_engine(engine, model, **options) if isinstance(engine, str) else None
    return provider_for(engine, model, baseline, base_url, loaded, **options), baseline


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
    from tokendice.experiments.compare import CompletionBudget, engine_specs, run_compare, store_compare

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


def perturb(
    prompt: str | None = None,
    *,
    prompts: list[str] | None = None,
    variants: str | list[str] | None = None,
    kinds: str | list[str] | None = None,
    user_variants: Any = (),
    model: str | None = None,
    engine: str | Engine = "hf",
    chat: bool = False,
    samples: int = 200,
    mass: float = 0.95,
    max_nodes: int = 300,
    distribution: bool = True,
    seed: int = 0,
    params: SamplingParams | None = None,
    engine_options: dict[str, Any] | None = None,
    save: bool = True,
    db: str | None = None,
    progress: Any = None,
    **sampling: Any,
):
    """How far small, meaning-preserving edits of the prompt move the output; returns a `PerturbReport`.

    Give `prompt`, or `prompts` for a suite. `variants` picks variant names (a list
    or a comma-separated string; `+` composes), `kinds` variant kinds; `user_variants`
    adds `UserVariant`s (or a path to a variants file). `max_new_tokens` defaults to 8
    here. `progress(units, label)` hears of 100 units per prompt. With `save`, the
    report is stored as a run of kind 'perturb' (result 'report') and `report.run_id` set.
    """
    from tokendice.errors import ParameterError
    from tokendice.experiments.perturb import PerturbSettings
    from tokendice.experiments.perturb_suite import run_perturb
    from tokendice.experiments.variants import build_variant_sets, parse_names, read_variants_file

    if (prompt is None) == (prompts is None):
        raise ParameterError("give a prompt or prompts (one of the two)")
    if params is None:
        sampling.setdefault("max_new_tokens", 8)
    settings = PerturbSettings(make_params(params, **sampling), seed, samples, mass, max_nodes, distribution)
    texts = [prompt] if prompt is not None else list(prompts or [])
    for p in texts:
        _check_prompt(p)
    user = read_variants_file(user_variants) if isinstance(user_variants, str) else list(user_variants)
    names = parse_names(variants) if isinstance(variants, str) else variants
    kind_list = parse_names(kinds) if isinstance(kinds, str) else kinds
    vsets = build_variant_sets(texts, chat, names, kind_list, user)
    eng = get_engine(engine, model, **(engine_options or {}))
    if not save:
        return run_perturb(eng, vsets, settings, progress, None, chat)
    from tokendice.store.db import Store

    with Store(db) as store:
        return run_perturb(eng, vsets, settings, progress, store, chat)
