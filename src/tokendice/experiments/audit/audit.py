"""The determinism audit: one request under a matrix of conditions, against a baseline.

The baseline (by default batch 1, float32, torch's default thread count, KV cache on,
sdpa) runs R times; its first run is the reference. Every condition runs R times too
and is compared with the reference: identical tokens or not, distinct outputs over
its repeats (TARr@R), the first step where it chose differently, how far its model
log-probabilities drifted along the reference's tokens, and the reference's
top-1/top-2 margin at the divergence step (a near-tie explains a flip). A summary
names the conditions that change the output on this machine and the recipe that
reproduces it. The result is an `AuditReport` (report.py).
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Sequence

from tokendice.analysis.agreement import tarr_at_n, unique_outputs
from tokendice.analysis.branching import first_divergence
from tokendice.engines.base import Engine
from tokendice.errors import EngineError, TokendiceError
from tokendice.experiments.audit.conditions import (
    BASELINE,
    BATCH_SIZES,
    GROUPS,
    Condition,
    Outcome,
    applicable,
    build_conditions,
    forced_logprobs_of,
    run_once,
)
from tokendice.experiments.audit.controls import ENGINES, Setup, applied
from tokendice.experiments.audit.providers import EngineProvider
from tokendice.experiments.audit.report import AuditReport, ConditionResult
from tokendice.experiments.audit.summary import recipe, sample_records, store_report, summarize
from tokendice.experiments.decoding.prompting import encode_prompt
from tokendice.params import RandomSpec, SamplingParams
from tokendice.store import Store
from tokendice.store.records import SampleRecord

Advance = Callable[..., None]
"""advance(runs done since the last call, label=None): how the audit reports progress."""


def plan(provider: EngineProvider, groups: Sequence[str], baseline: Setup, batch_sizes: Sequence[int] = BATCH_SIZES) -> list[Condition]:
    """The conditions that will run, the baseline first (each runs `repeats` times)."""
    others = provider.others() if ENGINES in groups and ENGINES in provider.controls else []
    return [v for v in build_conditions(groups, baseline, batch_sizes, others) if applicable(v, provider)]


def run_audit(
    provider: EngineProvider,
    prompt: str,
    params: SamplingParams,
    rng: RandomSpec | None = None,
    repeats: int = 5,
    groups: Sequence[str] = GROUPS,
    baseline: Setup | None = None,
    batch_sizes: Sequence[int] = BATCH_SIZES,
    chat: bool = False,
    advance: Advance | None = None,
) -> AuditReport:
    """Run the audit over condition `groups` (see GROUPS; checked by the caller)."""
    rng = rng or RandomSpec()
    baseline = baseline or Setup(engine=provider.name)
    step: Advance = advance or (lambda units, label=None: None)
    started = time.perf_counter()
    base_engine = provider.engine(baseline)
    if not base_engine.kind.white_box:
        raise EngineError(f"the audit needs a white-box engine (logits); {base_engine.name} is black-box")
    prompt_ids = encode_prompt(base_engine.tokenizer, prompt, chat)
    planned = plan(provider, groups, baseline, batch_sizes)
    results = [
        ConditionResult(g, g.replace("_", " "), "not applicable", f"not applicable for engine {provider.name}")
        for g in groups if g != BASELINE and g not in provider.controls
    ]
    ref: Outcome | None = None
    samples: list[SampleRecord] = []
    with applied(baseline, base_engine):
        base_description = base_engine.describe()
    for condition in planned:
        step(0, condition.label)
        try:
            engine = _engine_for(provider, condition)
        except (TokendiceError, RuntimeError, OSError) as exc:  # e.g. a dtype this model cannot load in
            if condition.group == BASELINE:
                raise
            engine = ConditionResult(condition.group, condition.label, "failed", f"failed to load: {_first_line(exc)}")
        if isinstance(engine, ConditionResult):
            results.append(engine)
            step(repeats)
            continue
        if not engine.kind.white_box:
            assert ref is not None
            results.append(_black_box(condition, engine, prompt, params, rng, repeats, ref, base_engine, step))
            provider.release_other(condition.label, engine)
            continue
        ids = prompt_ids if engine is base_engine else encode_prompt(engine.tokenizer, prompt, chat)
        if condition.group == ENGINES and getattr(engine, "threads", None):  # another engine keeps its own threads
            condition = Condition(condition.group, condition.label, condition.setup.with_(threads=engine.threads))
        outcomes: list[Outcome] = []
        try:
            with applied(condition.setup, engine):
                description = engine.describe()
                for r in range(repeats):
                    step(0, f"{condition.label} ({r + 1}/{repeats})")
                    if hasattr(engine, "forget"):  # engines that memoise logits: make each repeat a real run
                        engine.forget()
                    outcome = run_once(engine, ids, params, rng, condition.setup.batch_size, ref.tokens if ref else None)
                    if ref is None:  # the first baseline run is the reference
                        ref = outcome
                        outcome.ref_logprobs = list(outcome.model_logprobs)
                    outcomes.append(outcome)
                    step(1)
                assert ref is not None
                result = compare(condition, outcomes, ref, engine.tokenizer.decode)
                result.setup, result.engine = condition.setup.to_dict(), description
                if result.changes_output and ref.tokens:
                    forced = forced_logprobs_of(engine, ids, ref.tokens, condition.setup.batch_size)
                    result.max_logprob_diff_forced = _max_diff(forced, ref.model_logprobs, len(ref.tokens))
        except (TokendiceError, RuntimeError, ValueError) as exc:
            if condition.group == BASELINE:
                raise
            result = ConditionResult(condition.group, condition.label, "failed", f"failed: {_first_line(exc)}")
            step(repeats - len(outcomes))
        if ids != prompt_ids:
            result.notes.append(f"the prompt tokenizes differently on {condition.label} ({len(ids)} tokens)")
        first_id = len(samples)
        samples += sample_records(outcomes, engine.tokenizer.decode, first_id)
        result.sample_ids = list(range(first_id, len(samples)))
        results.append(result)
        _release(provider, condition, engine, base_engine)
    assert ref is not None
    order = {g: i for i, g in enumerate(GROUPS)}
    results.sort(key=lambda c: order.get(c.group, len(order)))  # stable: planned keep their order
    decode = base_engine.tokenizer.decode
    report = AuditReport(
        prompt=prompt, prompt_ids=list(prompt_ids), engine=provider.name, model=provider.model_id,
        params=params.to_dict(), seed=rng.seed, rng=rng.mode, repeats=repeats, deterministic=baseline.deterministic,
        baseline={
            "setup": baseline.to_dict(), "engine": base_description, "text": decode(ref.tokens), "tokens": ref.tokens,
            "token_texts": [decode([t]) for t in ref.tokens], "model_logprobs": ref.model_logprobs,
            "finish_reason": ref.finish_reason,
        },
        conditions=results, samples=samples,
    )
    report.summary = summarize(results)
    report.summary["recipe"] = recipe(results, baseline, params, rng)
    report.wall_seconds = time.perf_counter() - started
    return report


def store_audit(store: Store, report: AuditReport, others: Sequence[dict[str, Any]] = ()) -> str:
    """Keep an audit as a run of kind 'audit' (manifest mode 'conditions'); sets `report.run_id`.
    `others`: the engines given for the "engines" condition, as their specs' dicts."""
    extra: dict[str, Any] = {
        "mode": "conditions", "prompt_ids": report.prompt_ids,
        "conditions": [{"group": c.group, "label": c.label, "status": c.status, "setup": c.setup} for c in report.conditions],
    }
    if others:
        extra["others"] = list(others)
    return store_report(store, report, report.prompt, report.baseline["engine"], report.baseline["setup"], extra)


def compare(condition: Condition, outcomes: Sequence[Outcome], ref: Outcome, decode: Callable[[list[int]], str]) -> ConditionResult:
    """Compare one condition's repeats with the reference run."""
    divergences = [first_divergence(ref.tokens, o.tokens) for o in outcomes]
    outputs = [tuple(o.tokens) for o in outcomes]
    result = ConditionResult(
        condition.group, condition.label, "ran", repeats=len(outcomes),
        n_identical=sum(d is None for d in divergences), unique_outputs=unique_outputs(outputs),
        tarr=tarr_at_n([outputs]), divergent_repeats=sum(d is not None for d in divergences),
        outputs=list(dict.fromkeys(decode(o.tokens) for o in outcomes)),
        seconds=sum(o.seconds for o in outcomes),
    )
    drifts = []
    for o, d in zip(outcomes, divergences):
        common = len(ref.tokens) if d is None else d + 1  # the divergence step's logits still follow the shared prefix
        drifts.append(_max_diff(o.ref_logprobs, ref.model_logprobs, common))
    result.max_logprob_diff = max(drifts, default=0.0)
    diverged = [(d, i) for i, d in enumerate(divergences) if d is not None]
    if diverged:
        step, i = min(diverged)
        other = outcomes[i]
        result.first_divergence, result.divergent_repeat = step, i
        result.baseline_token = decode([ref.tokens[step]]) if step < len(ref.tokens) else "(end)"
        result.condition_token = decode([other.tokens[step]]) if step < len(other.tokens) else "(end)"
        result.margin, result.condition_margin = ref.margin(step), other.margin(step)
    result.verdict = verdict(result)
    return result


def verdict(c: ConditionResult) -> str:
    """'identical', 'same tokens, log-probs drift X' or 'DIVERGES at step k (margin m)'."""
    if c.first_divergence is not None:
        why = f"margin {c.margin:.3g}" if c.margin is not None else "one run ended there"
        share = f" in {c.divergent_repeats}/{c.repeats} repeats" if c.divergent_repeats < c.repeats else ""
        return f"DIVERGES at step {c.first_divergence} ({why}){share}"
    if c.max_logprob_diff:
        return f"same tokens, log-probs drift {c.max_logprob_diff:.2g}"
    return "identical"


def _engine_for(provider: EngineProvider, condition: Condition) -> Engine | ConditionResult:
    if condition.group != ENGINES:
        return provider.engine(condition.setup)
    other = provider.other(condition.label)
    if isinstance(other, str):
        return ConditionResult(ENGINES, condition.label, "unavailable", other)
    return other


def _black_box(condition: Condition, engine: Any, prompt: str, params: SamplingParams, rng: RandomSpec, repeats: int,
               ref: Outcome, base_engine: Engine, step: Advance) -> ConditionResult:
    """Run a server R times and compare by text (see blackbox.py)."""
    from tokendice.experiments.audit.blackbox import black_box_fields

    step(0, f"{condition.label} (server)")
    done = [0]

    def one(finished: int) -> None:
        done[0] = finished
        step(1)

    try:
        fields = black_box_fields(engine, prompt, params, rng, repeats, ref, base_engine.tokenizer.decode, one)
    except TokendiceError as exc:
        step(repeats - done[0])
        return ConditionResult(ENGINES, condition.label, "failed", f"failed: {_first_line(exc)}")
    result = ConditionResult(ENGINES, condition.label, "ran", setup=condition.setup.to_dict(), **fields)
    result.verdict = verdict(result)
    return result


def _release(provider: EngineProvider, condition: Condition, engine: Engine, base_engine: Engine) -> None:
    if condition.group == ENGINES:
        provider.release_other(condition.label, engine)
    elif engine is not base_engine:
        provider.release(condition.setup)


def _max_diff(values: Sequence[float], reference: Sequence[float], steps: int) -> float:
    """max |values[t] - reference[t]| over the first `steps` steps where both are known."""
    worst = 0.0
    for a, b in zip(values[:steps], reference[:steps]):
        if math.isnan(a) or math.isnan(b) or a == b:
            continue
        worst = max(worst, abs(a - b))
    return worst


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
