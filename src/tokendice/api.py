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
    provider, baseline = _audit_provider(engine, model, dtype, threads, deterministic, base_url, engine_options, parse_groups(conditions))
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
    provider, setup = _audit_provider(engine, model, dtype, threads, deterministic, None, engine_options, ())
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


def _audit_provider(engine, model, dtype, threads, deterministic, base_url, engine_options, groups):
    from tokendice.experiments.audit_controls import Setup
    from tokendice.experiments.audit_engines import provider_for

    name = engine if isinstance(engine, str) else engine.name
    baseline = Setup(engine=name, dtype=dtype, threads=threads, deterministic=deterministic)
    options = dict(engine_options or {})
    if name == "hf":
        options["dtype"] = dtype
    loaded = get_engine(engine, model, **options) if isinstance(engine, str) else None
    return provider_for(engine, model, baseline, base_url, loaded, **options), baseline
