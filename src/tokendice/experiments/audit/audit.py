"""The determinism audit: one request under a matrix of conditions, against a baseline.

The baseline (batch 1, float32, all threads, KV cache on, sdpa) runs R times; its
first run is the reference. Every condition runs R times too and is compared with
the reference: identical tokens or not, distinct outputs over its repeats (TARr@R),
the first step where it chose differently, how far its model log-probabilities
drifted along the reference's tokens, and the reference's top-1/top-2 margin at
the divergence step (a near-tie explains a flip). A summary names the conditions
that change the output on this machine and the recipe that reproduces it.
"""

from __future__ import annotations

import gc
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

from tokendice.analysis.agreement import tarr_at_n, unique_outputs
from tokendice.analysis.branching import first_divergence
from tokendice.engines.base import Engine
from tokendice.jsonutil import finite_json
from tokendice.errors import EngineError, ParameterError, TokendiceError
from tokendice.experiments.audit.conditions import (
    BASELINE, BATCH_SIZES, GROUPS, Outcome, Condition, applicable, build_conditions, forced_logprobs_of, parse_groups, run_once,
)
from tokendice.engines.threads import default_threads
from tokendice.experiments.audit.controls import Setup, applied
from tokendice.experiments.audit.providers import ENGINES, EngineProvider
from tokendice.experiments.audit.summary import recipe, sample_records, summarize
from tokendice.experiments.decoding.prompting import encode_prompt
from tokendice.params import RandomSpec, SamplingParams
from tokendice.store.records import SampleRecord

Progress = Callable[[int, int, str], None]
"""(runs done, runs in all, what is running) -> None."""


@dataclass
class ConditionResult:
    """How one condition compared with the baseline's reference run."""

    group: str
    label: str
    status: str  # "ran", "not applicable", "unavailable", "failed"
    verdict: str = ""
    setup: dict[str, Any] | None = None
    engine: dict[str, Any] | None = None  # what the engine reported about itself
    repeats: int = 0
    n_identical: int = 0  # repeats whose tokens equal the reference's
    unique_outputs: int = 0  # distinct token sequences over the repeats
    tarr: float | None = None  # TARr@R of this condition's repeats: 1 if all agree, else 0
    first_divergence: int | None = None  # earliest step where a repeat chose differently from the reference
    divergent_repeats: int = 0
    divergent_repeat: int | None = None  # the repeat that forked first (index into sample_ids)
    baseline_token: str | None = None  # at the divergence step ("(end)" where one run stopped)
    condition_token: str | None = None
    margin: float | None = None  # reference's top-1 minus top-2 model log-prob at the divergence step
    condition_margin: float | None = None  # the same under this condition
    max_logprob_diff: float | None = None  # max |Δ model log-prob| of the reference tokens over the common steps
    max_logprob_diff_forced: float | None = None  # the same along all reference tokens (teacher-forced)
    outputs: list[str] = field(default_factory=list)  # the distinct completions
    sample_ids: list[int] = field(default_factory=list)  # where its runs are stored
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def ran(self) -> bool:
        return self.status == "ran"

    @property
    def identical(self) -> bool:
        """Every repeat chose the reference's tokens."""
        return self.ran and self.n_identical == self.repeats

    @property
    def changes_output(self) -> bool:
        return self.ran and self.first_divergence is not None


@dataclass
class AuditReport:
    """Everything an audit found; `to_dict` is what `--json` prints and the store keeps."""

    prompt: str
    prompt_ids: list[int]
    engine: str
    model: str
    params: dict[str, Any]
    seed: int
    rng: str
    repeats: int
    deterministic: bool
    baseline: dict[str, Any]
    conditions: list[ConditionResult] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    wall_seconds: float = 0.0
    run_id: str | None = None
    samples: list[SampleRecord] = field(default_factory=list, repr=False)

    def condition(self, label: str) -> ConditionResult:
        for c in self.conditions:
            if c.label == label:
                return c
        raise KeyError(label)

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k != "samples"}
        data["kind"] = "audit"
        return finite_json(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuditReport:
        """A report as `to_dict` wrote it (a stored run's 'report'), without its samples."""
        known = {f for f in ConditionResult.__dataclass_fields__}
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k != "conditions"}
        conditions = [ConditionResult(**{k: v for k, v in c.items() if k in known}) for c in data.get("conditions", [])]
        return cls(**fields, conditions=conditions)


def run_audit(
    provider: EngineProvider,
    prompt: str,
    params: SamplingParams,
    rng: RandomSpec | None = None,
    repeats: int = 5,
    conditions: str | Sequence[str] | None = None,
    baseline: Setup | None = None,
    batch_sizes: Sequence[int] = BATCH_SIZES,
    chat: bool = False,
    progress: Progress | None = None,
) -> AuditReport:
    """Run the audit; `conditions` picks groups (see GROUPS; default all)."""
    if not isinstance(repeats, int) or repeats < 1:
        raise ParameterError(f"repeats must be an integer >= 1, got {repeats!r}")
    if any(not isinstance(b, int) or b < 1 for b in batch_sizes):
        raise ParameterError(f"batch sizes must be integers >= 1, got {list(batch_sizes)}")
    default_threads()  # torch's default, recorded before any engine changes it
    rng = rng or RandomSpec()
    baseline = baseline or Setup(engine=provider.name)
    groups = parse_groups(conditions)
    started = time.perf_counter()
    base_engine = provider.engine(baseline)
    if not base_engine.kind.white_box:
        raise EngineError(f"the audit needs a white-box engine (logits); {base_engine.name} is black-box")
    prompt_ids = encode_prompt(base_engine.tokenizer, prompt, chat)
    others = provider.others() if ENGINES in groups and ENGINES in provider.controls else []
    planned = [v for v in build_conditions(groups, baseline, batch_sizes, others) if applicable(v, provider)]
    results = [
        ConditionResult(g, g.replace("_", " "), "not applicable", f"not applicable for engine {provider.name}")
        for g in groups if g != BASELINE and g not in provider.controls
    ]
    total, done = len(planned) * repeats, 0
    ref: Outcome | None = None
    samples: list[SampleRecord] = []
    with applied(baseline):
        base_description = base_engine.describe()
    for condition in planned:
        if progress is not None:
            progress(done, total, f"loading {condition.label}")
        try:
            engine = _engine_for(provider, condition)
        except (TokendiceError, RuntimeError, OSError) as exc:  # e.g. a dtype this model cannot load in
            if condition.group == BASELINE:
                raise
            engine = ConditionResult(condition.group, condition.label, "failed", f"failed to load: {_first_line(exc)}")
        if isinstance(engine, ConditionResult):
            results.append(engine)
            total -= repeats
            continue
        if not engine.kind.white_box:
            results.append(_black_box(condition, engine, prompt, params, rng, repeats, ref, base_engine))
            done += repeats
            continue
        ids = prompt_ids if engine is base_engine else encode_prompt(engine.tokenizer, prompt, chat)
        outcomes: list[Outcome] = []
        try:
            with applied(condition.setup):
                description = engine.describe()
                for r in range(repeats):
                    if progress is not None:
                        progress(done, total, f"{condition.label} ({r + 1}/{repeats})")
                    if hasattr(engine, "forget"):  # engines that memoise logits: make each repeat a real run
                        engine.forget()
                    outcome = run_once(engine, ids, params, rng, condition.setup.batch_size, ref.tokens if ref else None)
                    if ref is None:  # the first baseline run is the reference
                        ref = outcome
                        outcome.ref_logprobs = list(outcome.model_logprobs)
                    outcomes.append(outcome)
                    done += 1
                result = compare(condition, outcomes, ref, engine.tokenizer.decode)
                result.setup, result.engine = condition.setup.to_dict(), description
                if result.changes_output and ref is not None and ref.tokens:
                    forced = forced_logprobs_of(engine, ids, ref.tokens, condition.setup.batch_size)
                    result.max_logprob_diff_forced = _max_diff(forced, ref.model_logprobs, len(ref.tokens))
        except (TokendiceError, RuntimeError, ValueError) as exc:
            if condition.group == BASELINE:
                raise
            result = ConditionResult(condition.group, condition.label, "failed", f"failed: {_first_line(exc)}")
            done += repeats - len(outcomes)
        if ids != prompt_ids:
            result.notes.append(f"the prompt tokenizes differently on {condition.label} ({len(ids)} tokens)")
        first_id = len(samples)
        samples += sample_records(outcomes, engine.tokenizer.decode, first_id)
        result.sample_ids = list(range(first_id, len(samples)))
        results.append(result)
        _release(provider, condition, engine, base_engine)
    if progress is not None:
        progress(done, total, "done")
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
               ref: Outcome | None, base_engine: Engine) -> ConditionResult:
    """Run a server R times and compare by text (see audit_blackbox)."""
    from tokendice.experiments.audit.blackbox import black_box_fields

    assert ref is not None
    try:
        fields = black_box_fields(engine, prompt, params, rng, repeats, ref, base_engine.tokenizer.decode)
    except TokendiceError as exc:
        return ConditionResult(ENGINES, condition.label, "failed", f"failed: {_first_line(exc)}")
    finally:
        _close(engine)
    result = ConditionResult(ENGINES, condition.label, "ran", setup=condition.setup.to_dict(), **fields)
    result.verdict = verdict(result)
    return result


def _release(provider: EngineProvider, condition: Condition, engine: Engine, base_engine: Engine) -> None:
    if condition.group == ENGINES:
        _close(engine)
        del engine
        gc.collect()
    elif engine is not base_engine:
        provider.release(condition.setup)


def _close(engine: Any) -> None:
    close = getattr(engine, "close", None)
    if callable(close):
        close()


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
