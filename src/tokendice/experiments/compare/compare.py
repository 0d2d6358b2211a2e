"""Compare models or engines on one prompt.

Two measurements, both over one shared vocabulary (engines whose tokenizers differ are
refused: their steps would not line up):

- per step, along a shared continuation fed to every engine (teacher forcing; default:
  the first engine's greedy continuation), the two *model* distributions (softmax of
  the raw logits): KL both ways, Jensen-Shannon, top-1 agreement, the largest
  |log-prob difference| over the union of both top-k tokens, the continuation token's
  log-prob under each;
- the overlap of their completion distributions under the sampler chain: the total
  variation distance between exact enumerations, or bounds on it when an enumeration
  stops before it holds all the mass (`total_variation_bounds`).

Pairs are the first engine against each other one.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from tokendice.analysis.divergence import js_divergence, kl_divergence, total_variation_bounds
from tokendice.engines.base import Engine
from tokendice.errors import EngineError, ParameterError
from tokendice.engines.base import require_logits
from tokendice.experiments.decoding.decode import decode
from tokendice.experiments.decoding.forcing import forced_logprobs
from tokendice.experiments.decoding.enumerate import Enumeration, enumerate_completions
from tokendice.experiments.decoding.prompting import encode_prompt
from tokendice.experiments.distribution.sample import TokenText
from tokendice.jsonutil import finite_json
from tokendice.params import RandomSpec, SamplingParams

EXACT_WIDTH = 1e-6
"""TV bounds narrower than this are reported as the exact value."""


@dataclass(frozen=True)
class CompletionBudget:
    """How far each engine's completions are enumerated for the total variation distance."""

    max_new_tokens: int = 2
    max_nodes: int = 50
    mass: float = 0.99

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ParameterError(f"completion_tokens must be >= 1, got {self.max_new_tokens}")
        if self.max_nodes < 1:
            raise ParameterError(f"max_nodes must be >= 1, got {self.max_nodes}")
        if not 0 < self.mass <= 1:
            raise ParameterError(f"mass must be in (0, 1], got {self.mass}")


@dataclass
class StepComparison:
    """One step of the continuation: the two model distributions before its token."""

    step: int
    token_id: int
    text: str
    logprob_a: float  # of the continuation token, under A's model distribution
    logprob_b: float
    kl_ab: float  # KL(A || B), nats
    kl_ba: float  # KL(B || A)
    js: float  # Jensen-Shannon divergence, nats (at most ln 2)
    top1_a: str
    top1_b: str
    top1_agree: bool
    max_logprob_diff: float  # max |log p_A - log p_B| over both top-k token sets
    max_diff_token: str


@dataclass
class CompletionOverlap:
    """Total variation distance between the two completion distributions (sampling distribution)."""

    max_new_tokens: int
    max_nodes: int
    found_mass_a: float
    found_mass_b: float
    completions_a: int
    completions_b: int
    tv: float | None  # exact when both enumerations hold (almost) all the mass
    tv_low: float
    tv_high: float
    top: list[dict[str, Any]] = field(default_factory=list)  # most likely completions: text, prob_a, prob_b


@dataclass
class PairComparison:
    a: str
    b: str
    steps: list[StepComparison]
    completions: CompletionOverlap | None = None

    def summary(self) -> dict[str, Any]:
        """Means and extremes over the steps; `first_greedy_difference` is the first step
        whose most likely tokens differ (None: the greedy choices agree throughout)."""
        s = self.steps
        if not s:
            return {"steps": 0}
        js = [x.js for x in s]
        worst = max(s, key=lambda x: x.max_logprob_diff)
        return {
            "steps": len(s),
            "mean_js": math.fsum(js) / len(js),
            "max_js": max(js),
            "max_js_step": int(np.argmax(js)),
            "mean_kl_ab": math.fsum(x.kl_ab for x in s) / len(s),
            "mean_kl_ba": math.fsum(x.kl_ba for x in s) / len(s),
            "top1_agreement": sum(x.top1_agree for x in s) / len(s),
            "max_logprob_diff": worst.max_logprob_diff,
            "max_logprob_diff_step": worst.step,
            "max_logprob_diff_token": worst.max_diff_token,
            "first_greedy_difference": next((x.step for x in s if not x.top1_agree), None),
            "continuation_logprob_a": math.fsum(x.logprob_a for x in s),
            "continuation_logprob_b": math.fsum(x.logprob_b for x in s),
        }


@dataclass
class CompareReport:
    prompt: str
    chat: bool
    params: dict[str, Any]
    engines: list[dict[str, Any]]  # label, engine, model
    prompt_ids: list[int]
    continuation: str
    continuation_ids: list[int]
    continuation_source: str
    top_k: int
    pairs: list[PairComparison]
    run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["distributions"] = {
            "steps": "model (softmax of the raw logits), teacher-forced along the continuation",
            "completions": "sampling (after the sampler chain given by params), by exact enumeration",
        }
        for pair, out in zip(self.pairs, data["pairs"]):
            out["summary"] = pair.summary()
        return finite_json(data)  # JSON has no inf: null

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)


def run_compare(
    engines: Sequence[Engine],
    prompt: str,
    params: SamplingParams,
    continuation: str | None = None,
    top: int = 10,
    completions: CompletionBudget | None = CompletionBudget(),
    chat: bool = False,
) -> CompareReport:
    """Compare the first engine with each other one (see the module docstring).

    Without `continuation`, the shared continuation is the first engine's greedy one
    (argmax of its raw logits), `params.max_new_tokens` long or up to its end of sequence.
    """
    if len(engines) < 2:
        raise ParameterError("compare needs at least two engines or models")
    if top < 1:
        raise ParameterError(f"top must be >= 1, got {top}")
    for engine in engines:
        require_logits(engine, "compare (whole next-token distributions)")
    labels = engine_labels(engines)
    first = engines[0]
    prompt_ids = encode_prompt(first.tokenizer, prompt, chat)
    for engine, label in zip(engines[1:], labels[1:]):
        check_shared_vocabulary(first, engine, labels[0], label, prompt_ids, encode_prompt(engine.tokenizer, prompt, chat))
    if continuation is None:
        greedy = SamplingParams(do_sample=False, max_new_tokens=params.max_new_tokens, stop_at_eos=params.stop_at_eos)
        cont_ids = decode(first, prompt_ids, greedy, RandomSpec(), [0])[0].tokens
        source = f"greedy continuation of {labels[0]} (argmax of its raw logits)"
    else:
        cont_ids = continuation_ids(first.tokenizer, prompt, continuation, prompt_ids, chat)
        source = "given (--continuation)"
    logprobs = [forced_logprobs(e, [prompt_ids], 0, cont_ids) for e in engines]
    decode_one = TokenText(first)
    enumerations: dict[int, Enumeration] = {}
    pairs = []
    for j in range(1, len(engines)):
        if logprobs[0].shape != logprobs[j].shape:
            raise EngineError(f"{labels[0]} gives {logprobs[0].shape[-1]} logits per step and {labels[j]} {logprobs[j].shape[-1]}")
        pair = PairComparison(labels[0], labels[j], compare_steps(logprobs[0], logprobs[j], cont_ids, top, decode_one))
        if completions is not None:
            enum_params = params.with_(max_new_tokens=completions.max_new_tokens)
            for k in (0, j):
                if k not in enumerations:
                    enumerations[k] = enumerate_completions(engines[k], prompt_ids, enum_params, mass=completions.mass, max_nodes=completions.max_nodes)
            pair.completions = completion_overlap(enumerations[0], enumerations[j], completions, first.tokenizer.decode)
        pairs.append(pair)
    return CompareReport(
        prompt=prompt, chat=chat, params=params.to_dict(),
        engines=[{"label": lab, "engine": e.name, "model": e.model_id} for lab, e in zip(labels, engines)],
        prompt_ids=list(prompt_ids), continuation=first.tokenizer.decode(cont_ids), continuation_ids=list(cont_ids),
        continuation_source=source, top_k=top, pairs=pairs,
    )  # fmt: skip


def engine_specs(engines: Sequence[Any], models: Sequence[str | None]) -> list[tuple[Any, str | None]]:
    """(engine, model) for each side: two engines on one model, one engine on two models,
    or as many engines as models, paired in order."""
    engines, models = list(engines) or ["hf"], list(models) or [None]
    if len(engines) == len(models):
        specs = list(zip(engines, models))
    elif len(engines) == 1:
        specs = [(engines[0], m) for m in models]
    elif len(models) == 1:
        specs = [(e, models[0]) for e in engines]
    else:
        raise ParameterError(f"give one engine, one model, or as many engines as models (got {len(engines)} engines, {len(models)} models)")
    if len(specs) < 2:
        raise ParameterError("compare needs two models or two engines: --model A --model B, or --engine hf --engine llamacpp")
    return specs


def engine_labels(engines: Sequence[Engine]) -> list[str]:
    """"engine:model" for each, numbered where two would read the same."""
    labels = [f"{e.name}:{e.model_id}" for e in engines]
    return [f"{lab}#{i + 1}" if labels.count(lab) > 1 else lab for i, lab in enumerate(labels)]


def check_shared_vocabulary(a: Engine, b: Engine, label_a: str, label_b: str, ids_a: Sequence[int], ids_b: Sequence[int]) -> None:
    """Refuse engines whose token ids do not mean the same strings (the whole vocabulary is decoded)."""
    ta, tb = a.tokenizer, b.tokenizer
    problem = None
    if ta.vocab_size != tb.vocab_size:
        problem = f"vocabulary sizes {ta.vocab_size} and {tb.vocab_size}"
    elif list(ids_a) != list(ids_b):
        problem = "the prompt encodes to different token ids"
    else:
        for i in range(ta.vocab_size):
            if ta.decode([i]) != tb.decode([i]):
                problem = f"token {i} is {ta.decode([i])!r} in one and {tb.decode([i])!r} in the other"
                break
    if problem:
        raise EngineError(
            f"{label_a} and {label_b} do not share a vocabulary ({problem}): next-token distributions "
            "can only be compared token by token over one vocabulary; compare models with the same tokenizer"
        )


def continuation_ids(tokenizer: Any, prompt: str, text: str, prompt_ids: Sequence[int], chat: bool) -> list[int]:
    """Token ids of `text` following the prompt: as the tokenizer splits prompt + text when
    the prompt's tokens survive that (raw prompts), else `text` encoded alone."""
    if not text:
        raise ParameterError("--continuation must not be empty")
    if not chat:
        whole = tokenizer.encode(prompt + text)
        if whole[: len(prompt_ids)] == list(prompt_ids) and len(whole) > len(prompt_ids):
            return list(whole[len(prompt_ids) :])
    alone, lead = tokenizer.encode(text), tokenizer.encode("")
    ids = alone[len(lead) :] if lead and alone[: len(lead)] == lead else alone  # no BOS in the middle
    if not ids:
        raise ParameterError("--continuation encodes to zero tokens")
    return list(ids)


def compare_steps(lp_a: np.ndarray, lp_b: np.ndarray, continuation: Sequence[int], top: int, text: Any) -> list[StepComparison]:
    """Per-step divergences between two [T, vocab] log-prob arrays."""
    pa, pb = np.exp(lp_a), np.exp(lp_b)
    kl_ab = np.atleast_1d(kl_divergence(pa, pb))
    kl_ba = np.atleast_1d(kl_divergence(pb, pa))
    js = np.atleast_1d(js_divergence(pa, pb))
    k = min(top, lp_a.shape[-1])
    steps = []
    for t, token in enumerate(continuation):
        a, b = lp_a[t], lp_b[t]
        union = np.union1d(np.argpartition(-a, k - 1)[:k], np.argpartition(-b, k - 1)[:k])
        with np.errstate(invalid="ignore"):
            diff = np.abs(a[union] - b[union])
        diff = np.where(np.isnan(diff), 0.0, diff)  # -inf in both: no difference
        worst = int(union[int(np.argmax(diff))])
        top_a, top_b = int(np.argmax(a)), int(np.argmax(b))
        steps.append(StepComparison(
            step=t, token_id=int(token), text=text(int(token)), logprob_a=float(a[token]), logprob_b=float(b[token]),
            kl_ab=float(kl_ab[t]), kl_ba=float(kl_ba[t]), js=float(js[t]), top1_a=text(top_a), top1_b=text(top_b),
            top1_agree=top_a == top_b, max_logprob_diff=float(diff.max()), max_diff_token=text(worst),
        ))  # fmt: skip
    return steps


def completion_overlap(ea: Enumeration, eb: Enumeration, budget: CompletionBudget, decode_fn: Any, top: int = 5) -> CompletionOverlap:
    """TV between two enumerations: exact if both hold all their mass, else bounds."""
    pa, pb = ea.distribution(), eb.distribution()
    bounds = total_variation_bounds(pa, pb)
    exact = bounds.width < EXACT_WIDTH
    likely = sorted(set(pa) | set(pb), key=lambda key: -max(pa.get(key, 0.0), pb.get(key, 0.0)))[:top]
    return CompletionOverlap(
        max_new_tokens=budget.max_new_tokens, max_nodes=budget.max_nodes,
        found_mass_a=ea.found_mass, found_mass_b=eb.found_mass, completions_a=len(pa), completions_b=len(pb),
        tv=(bounds.low + bounds.high) / 2 if exact else None, tv_low=bounds.low, tv_high=bounds.high,
        top=[{"text": decode_fn(list(key)), "prob_a": pa.get(key), "prob_b": pb.get(key)} for key in likely],
    )  # fmt: skip


def store_compare(store: Any, engines: Sequence[Engine], report: CompareReport, completions: CompletionBudget | None) -> str:
    """Keep the report as a run of kind 'compare' (result 'report'); sets `report.run_id`."""
    from tokendice.store import build_manifest

    extra = {"compare": {
        "prompt": report.prompt, "chat": report.chat, "engines": report.engines, "continuation": report.continuation,
        "continuation_source": report.continuation_source, "top": report.top_k,
        "completions": asdict(completions) if completions is not None else None,
    }}  # fmt: skip
    manifest = build_manifest("compare", report.params, {"engines": [e.describe() for e in engines]}, extra)
    names = ",".join(dict.fromkeys(e.name for e in engines))
    models = ",".join(dict.fromkeys(e.model_id for e in engines))
    run_id = store.create_run("compare", manifest, report.prompt, names, models)
    report.run_id = run_id
    store.save_result(run_id, "report", report.to_dict())
    store.set_status(run_id, "complete")
    return run_id

