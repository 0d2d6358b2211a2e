"""Turning an audit's condition results into a summary, a recipe, and stored rows.

The recipe lists, for every control the audit varied, the values that gave the
baseline's tokens in every repeat: "batch 1, float32, KV cache on, any thread
count". A control whose every tested value reproduced the output is "any".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Sequence

from tokendice.experiments.audit.providers import ATTENTION, BATCH, DTYPE, ENGINES, KV_CACHE, THREADS
from tokendice.params import RandomSpec, SamplingParams
from tokendice.store.records import SampleRecord

if TYPE_CHECKING:
    from tokendice.experiments.audit.audit import ConditionResult
    from tokendice.experiments.audit.conditions import Outcome
    from tokendice.experiments.audit.controls import Setup
    from tokendice.store.db import Store

RECIPE_ORDER = (BATCH, DTYPE, KV_CACHE, THREADS, ATTENTION, ENGINES)


def summarize(results: Sequence[ConditionResult]) -> dict[str, Any]:
    """Which conditions changed the output, which only drifted, which matched, which were not tested."""
    baseline = next((c for c in results if c.group == "baseline"), None)
    return {
        "baseline_reproducible": bool(baseline and baseline.identical),
        "changes_output": [c.label for c in results if c.changes_output],
        "drift_only": [c.label for c in results if c.identical and c.max_logprob_diff],
        "identical": [c.label for c in results if c.identical and not c.max_logprob_diff],
        "not_tested": {c.label: c.verdict for c in results if not c.ran},
    }


def recipe(results: Sequence[ConditionResult], baseline: Setup, params: SamplingParams, rng: RandomSpec) -> str:
    """The settings that reproduce this prompt's output here, in words."""
    base = next((c for c in results if c.group == "baseline"), None)
    if base is None or not base.identical:
        hint = "" if baseline.deterministic else "; try --deterministic"
        return f"none: the baseline itself changes between repeats ({base.verdict if base else 'not run'}){hint}"
    parts = ["greedy" if params.greedy else f"seed {rng.seed}, rng {rng.mode}"]
    for group in RECIPE_ORDER:
        tested = [c for c in results if c.group == group and c.ran]
        if not tested:
            continue
        good = [_value(group, baseline)] + [_value(group, c) for c in tested if c.identical]
        if len(good) == len(tested) + 1:
            parts.append(_any(group, [_value(group, baseline)] + [_value(group, c) for c in tested]))
        else:
            parts.append(_only(group, good))
    if baseline.deterministic:
        parts.append("deterministic algorithms on")
    return ", ".join(parts)


def _value(group: str, item: Any) -> Any:
    """The value of `group`'s control in a Setup or in a condition result's recorded setup."""
    setup = item.setup if hasattr(item, "group") else item.to_dict()
    key = {BATCH: "batch_size", DTYPE: "dtype", KV_CACHE: "kv_cache", THREADS: "threads", ATTENTION: "attention", ENGINES: "engine"}[group]
    return setup[key]


def _any(group: str, values: list[Any]) -> str:
    shown = ", ".join(str(v) for v in values)
    return {
        BATCH: f"any batch size ({shown})",
        DTYPE: f"any dtype ({shown})",
        KV_CACHE: "KV cache on or off",
        THREADS: f"any thread count ({shown})",
        ATTENTION: f"any attention ({shown})",
        ENGINES: f"any engine ({shown})",
    }[group]


def _only(group: str, values: list[Any]) -> str:
    shown = " or ".join(str(v) for v in values)
    if group == BATCH:
        return f"batch {shown}"
    if group == KV_CACHE:
        return "KV cache on" if values[0] else "KV cache off"
    if group == THREADS:
        return f"{shown} thread{'s' if values != [1] else ''}"
    if group == ATTENTION:
        return f"{shown} attention"
    if group == ENGINES:
        return f"engine {shown}"
    return shown


def sample_records(outcomes: Sequence[Outcome], decode: Callable[[list[int]], str], first_id: int, prompt_index: int = 0) -> list[SampleRecord]:
    """Store rows for runs, numbered from `first_id`."""
    return [
        SampleRecord(
            sample_id=first_id + i, tokens=list(o.tokens), token_texts=[decode([t]) for t in o.tokens],
            text=decode(o.tokens), model_logprobs=list(o.model_logprobs), sampling_logprobs=list(o.sampling_logprobs),
            finish_reason=o.finish_reason, prompt_index=prompt_index,
        )
        for i, o in enumerate(outcomes)
    ]


def save_report(
    store: Store, report: Any, manifest: dict[str, Any], prompt: str, engine: str, model: str,
    samples: Sequence[SampleRecord],
) -> str:
    """Store an audit as a run of kind 'audit': its runs as samples, the report under 'report'."""
    run_id = store.create_run("audit", manifest, prompt, engine, model, n_requested=len(samples))
    try:
        if samples:
            store.add_samples(run_id, samples)
        report.run_id = run_id
        store.save_result(run_id, "report", report.to_dict())
    except BaseException:
        store.set_status(run_id, "failed")
        raise
    store.set_status(run_id, "complete")
    return run_id


def store_report(report: Any, db: str | None = None, store: Store | None = None) -> str:
    """Store an AuditReport or AgreementReport as a run of kind 'audit'; returns the run id.

    The manifest records every control: sampler parameters, seed and RNG mode, the
    deterministic flag, and the baseline's dtype, batch size, attention, threads and
    KV cache (each condition's own setup is in the report).
    """
    from tokendice.store.db import Store
    from tokendice.store.manifest import build_manifest

    prompts = getattr(report, "prompts", None)
    if isinstance(prompts, list):  # a prompt set
        controls, engine_description = dict(report.setup), report.setup.get("engine_description", {})
        controls.pop("engine_description", None)
        extra = {"mode": "prompts", "answer_regex": report.answer_regex, "prompts": [p.prompt for p in prompts]}
        prompt = prompts[0].prompt if len(prompts) == 1 else f"({len(prompts)} prompts) {prompts[0].prompt}"
    else:
        controls, engine_description = report.baseline["setup"], report.baseline["engine"]
        extra = {"mode": "conditions", "prompt_ids": report.prompt_ids,
                 "conditions": [{"group": c.group, "label": c.label, "status": c.status, "setup": c.setup} for c in report.conditions]}
        prompt = report.prompt
    manifest = build_manifest("audit", report.params, engine_description, {
        "seed": report.seed, "rng": report.rng, "repeats": report.repeats,
        "deterministic": bool(controls.get("deterministic")), "controls": controls, **extra,
    })
    own = store is None
    store = store or Store(db)
    try:
        return save_report(store, report, manifest, prompt, report.engine, report.model, report.samples)
    finally:
        if own:
            store.close()
