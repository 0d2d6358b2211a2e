"""`audit` and `agreement`: is it deterministic here, and where do runs fork?"""

from __future__ import annotations

from typing import Any

from tokendice.api._legacy import _check_prompt, get_engine, make_params  # noqa: F401
from tokendice.engines.base import Engine  # noqa: F401
from tokendice.params import SamplingParams  # noqa: F401


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
    from tokendice.experiments.audit.audit import run_audit
    from tokendice.experiments.audit.conditions import parse_groups
    from tokendice.experiments.audit.summary import store_report
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
    from tokendice.experiments.audit.agreement import compile_regex, run_agreement
    from tokendice.experiments.audit.summary import store_report
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


def _audit_provider(engine, model, dtype, threads, deterministic, base_url, engine_options):
    from tokendice.experiments.audit.controls import Setup
    from tokendice.experiments.audit.providers import provider_for

    name = engine if isinstance(engine, str) else engine.name
    baseline = Setup(engine=name, dtype=dtype, threads=threads, deterministic=deterministic)
    options = dict(engine_options or {})
    if name == "hf":
        options["dtype"] = dtype
    if True:
        loaded = get_engine(engine, model, **options) if isinstance(engine, str) else None
    return provider_for(engine, model, baseline, base_url, loaded, **options), baseline
