"""Turning an audit's condition results into a summary, a recipe, and a stored run.

The recipe lists, for every control the audit varied, the values that gave the
baseline's tokens in every repeat: "batch 1, float32, KV cache on, any thread
count". A control whose every tested value reproduced the output is "any".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Sequence

from tokendice.experiments.audit.controls import ATTENTION, BATCH, DTYPE, ENGINES, KV_CACHE, THREADS
from tokendice.params import RandomSpec, SamplingParams
from tokendice.store.records import SampleRecord

if TYPE_CHECKING:
    from tokendice.experiments.audit.conditions import Outcome
    from tokendice.experiments.audit.controls import Setup
    from tokendice.experiments.audit.report import ConditionResult
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
        hint = "" if baseline.deterministic else "; try deterministic algorithms (deterministic=True, --deterministic)"
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


def store_report(
    store: Store, report: Any, prompt: str, engine_description: dict[str, Any], controls: dict[str, Any],
    extra: dict[str, Any],
) -> str:
    """Keep an audit or a prompt-set agreement as a run of kind 'audit': its runs as samples, the
    report as result 'report', in one transaction. The manifest records every control: the
    sampler, seed and RNG mode, the deterministic flag, and the baseline's dtype, batch size,
    attention, threads and KV cache (`controls`; each condition's own setup is in the report).
    Sets and returns `report.run_id`."""
    manifest_extra = {
        "seed": report.seed, "rng": report.rng, "repeats": report.repeats,
        "deterministic": bool(controls.get("deterministic")), "controls": controls, **extra,
    }
    run_id = store.start_run("audit", prompt, engine_description, report.params, manifest_extra, n_requested=len(report.samples))
    with store.recording(run_id):
        report.run_id = run_id
        store.add_samples(run_id, report.samples, results={"report": report.to_dict()})
    return run_id
