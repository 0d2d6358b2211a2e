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

import math
import weakref
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, ClassVar, Sequence

import numpy as np

from tokendice.analysis.divergence import js_divergence, kl_divergence, total_variation_bounds
from tokendice.engines.base import Engine, require_logits
from tokendice.errors import EngineError, ParameterError
from tokendice.experiments.decoding.decode import decode
from tokendice.experiments.decoding.enumerate import Enumeration, enumerate_completions
from tokendice.experiments.decoding.forcing import forced_logprobs
from tokendice.experiments.decoding.prompting import encode_prompt
from tokendice.experiments.results import Result, clip, init_fields
from tokendice.jsonutil import finite_json
from tokendice.params import RandomSpec, SamplingParams

EXACT_WIDTH = 1e-6
"""TV bounds narrower than this are reported as the exact value."""

DISTRIBUTIONS = {
    "steps": "model (softmax of the raw logits), teacher-forced along the continuation",
    "completions": "sampling (after the sampler chain given by params), by exact enumeration",
}

Progress = Callable[..., None]
"""advance(units, label=None): told of the forward passes done (see `compare_work`)."""

LABEL_SETTINGS = ("dtype", "threads", "attention", "kv_cache", "n_ctx")
"""Engine settings that tell two sides on one engine and model apart in their labels."""


def _inf(value: Any, sign: float = 1.0) -> float:
    """A float read back from JSON, where an infinity was written as null."""
    return sign * math.inf if value is None else float(value)


@dataclass(frozen=True)
class CompletionBudget:
    """How far each engine's completions are enumerated for the total variation distance."""

    max_new_tokens: int = 2
    max_nodes: int = 50
    mass: float = 0.99

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ParameterError(f"completion_tokens must be >= 1, got {self.max_new_tokens}", param="completion_tokens")
        if self.max_nodes < 1:
            raise ParameterError(f"max_nodes must be >= 1, got {self.max_nodes}", param="max_nodes")
        if not 0 < self.mass <= 1:
            raise ParameterError(f"mass must be in (0, 1], got {self.mass}", param="mass")


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

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepComparison:
        return cls(**{
            **data, "logprob_a": _inf(data["logprob_a"], -1), "logprob_b": _inf(data["logprob_b"], -1),
            "kl_ab": _inf(data["kl_ab"]), "kl_ba": _inf(data["kl_ba"]), "max_logprob_diff": _inf(data["max_logprob_diff"]),
        })  # fmt: skip


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

    def describe(self) -> str:
        """"TV 0.1700" when exact, else "TV in [low, high]"."""
        return f"TV {self.tv:.4f}" if self.tv is not None else f"TV in [{self.tv_low:.4f}, {self.tv_high:.4f}]"


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

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PairComparison:
        c = data.get("completions")
        return cls(data["a"], data["b"], [StepComparison.from_dict(s) for s in data["steps"]],
                   CompletionOverlap(**c) if c is not None else None)  # fmt: skip


@dataclass(repr=False)
class CompareReport(Result):
    """Models or engines on one prompt: per-step divergences of their model distributions along
    a shared continuation, and the total variation distance between their completions."""

    kind: ClassVar[str] = "compare"
    COLUMNS: ClassVar[tuple[str, ...]] = (
        "a", "b", "step", "token", "logprob_a", "logprob_b", "kl_ab", "kl_ba", "js", "top1_a", "top1_b", "top1_agree",
        "max_logprob_diff",
    )  # fmt: skip

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
        data = {"kind": self.kind, **asdict(self)}
        data["distributions"] = dict(DISTRIBUTIONS)
        for pair, out in zip(self.pairs, data["pairs"]):
            out["summary"] = pair.summary()
        return finite_json(data)  # JSON has no inf: null

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CompareReport:
        """The inverse of `to_dict` (reports stored before `kind` existed read back too)."""
        return cls(**init_fields(cls, data, "pairs"), pairs=[PairComparison.from_dict(p) for p in data["pairs"]])

    def rows(self) -> list[dict[str, Any]]:
        """One row per (pair, step) of the continuation."""
        return [
            {"a": p.a, "b": p.b, "step": s.step, "token": s.text, "logprob_a": s.logprob_a, "logprob_b": s.logprob_b,
             "kl_ab": s.kl_ab, "kl_ba": s.kl_ba, "js": s.js, "top1_a": s.top1_a, "top1_b": s.top1_b,
             "top1_agree": s.top1_agree, "max_logprob_diff": s.max_logprob_diff}
            for p in self.pairs for s in p.steps
        ]  # fmt: skip

    def headline(self) -> str:
        parts = [clip(self.prompt, 40)]
        for p in self.pairs:
            summary = p.summary()
            numbers = [f"mean JS {summary['mean_js']:.4g}"] if summary["steps"] else ["no steps"]
            if p.completions is not None:
                numbers.append(p.completions.describe())
            parts.append(f"{p.a} vs {p.b}: {', '.join(numbers)}")
        parts.append(f"{len(self.continuation_ids)} steps")
        return " · ".join(parts)


def compare_work(engines: Sequence[Engine], params: SamplingParams, continuation_given: bool, completions: CompletionBudget | None) -> int:
    """The units `run_compare` reports to its progress callback: max_new_tokens for the greedy
    continuation and for each engine's teacher forcing, max_nodes for each enumeration."""
    distinct = len({id(e) for e in engines})
    work = (0 if continuation_given else params.max_new_tokens) + distinct * params.max_new_tokens
    return work + (distinct * completions.max_nodes if completions is not None else 0)


def run_compare(
    engines: Sequence[Engine],
    prompt: str,
    params: SamplingParams,
    continuation: str | None = None,
    top: int = 10,
    completions: CompletionBudget | None = CompletionBudget(),
    chat: bool = False,
    progress: Progress | None = None,
) -> CompareReport:
    """Compare the first engine with each other one (see the module docstring).

    Without `continuation`, the shared continuation is the first engine's greedy one
    (argmax of its raw logits), `params.max_new_tokens` long or up to its end of sequence.
    The same engine object given twice is run once.
    """
    if len(engines) < 2:
        raise ParameterError("compare needs at least two engines or models")
    if top < 1:
        raise ParameterError(f"top must be >= 1, got {top}", param="top")
    for engine in engines:
        require_logits(engine, "compare (whole next-token distributions)")
    advance = progress or (lambda units, label=None: None)
    labels = engine_labels(engines)
    first = engines[0]
    prompt_ids = encode_prompt(first.tokenizer, prompt, chat)
    for engine, label in zip(engines[1:], labels[1:]):
        if engine is not first:
            check_shared_vocabulary(first, engine, labels[0], label, prompt_ids, encode_prompt(engine.tokenizer, prompt, chat))
    if continuation is None:
        advance(0, f"greedy continuation of {labels[0]}")
        greedy = SamplingParams(do_sample=False, max_new_tokens=params.max_new_tokens, stop_at_eos=params.stop_at_eos)
        cont_ids = decode(first, prompt_ids, greedy, RandomSpec(), [0])[0].tokens
        source = f"greedy continuation of {labels[0]} (argmax of its raw logits)"
        advance(params.max_new_tokens)
    else:
        cont_ids = continuation_ids(first.tokenizer, prompt, continuation, prompt_ids, chat)
        source = "given (--continuation)"
    logprobs: dict[int, np.ndarray] = {}
    for engine, label in zip(engines, labels):
        if id(engine) not in logprobs:
            advance(0, f"teacher forcing {label}")
            logprobs[id(engine)] = forced_logprobs(engine, [prompt_ids], 0, cont_ids)
            advance(params.max_new_tokens)
    text = _token_text(first)
    enumerations: dict[int, Enumeration] = {}

    def enumeration(engine: Engine, label: str) -> Enumeration:
        if id(engine) not in enumerations:
            assert completions is not None
            advance(0, f"completions of {label}")
            done = [0]

            def expanded(n: int) -> None:
                done[0] += n
                advance(n)

            enum_params = params.with_(max_new_tokens=completions.max_new_tokens)
            enumerations[id(engine)] = enumerate_completions(
                engine, prompt_ids, enum_params, mass=completions.mass, max_nodes=completions.max_nodes, progress=expanded
            )
            advance(max(completions.max_nodes - done[0], 0))  # stopped early: the rest of its budget is done too
        return enumerations[id(engine)]

    pairs = []
    lp_first = logprobs[id(first)]
    for j in range(1, len(engines)):
        lp_j = logprobs[id(engines[j])]
        if lp_first.shape != lp_j.shape:
            raise EngineError(f"{labels[0]} gives {lp_first.shape[-1]} logits per step and {labels[j]} {lp_j.shape[-1]}")
        pair = PairComparison(labels[0], labels[j], compare_steps(lp_first, lp_j, cont_ids, top, text))
        if completions is not None:
            pair.completions = completion_overlap(
                enumeration(first, labels[0]), enumeration(engines[j], labels[j]), completions, first.tokenizer.decode
            )
        pairs.append(pair)
    return CompareReport(
        prompt=prompt, chat=chat, params=params.to_dict(),
        engines=[{"label": lab, "engine": e.name, "model": e.model_id} for lab, e in zip(labels, engines)],
        prompt_ids=list(prompt_ids), continuation=first.tokenizer.decode(cont_ids), continuation_ids=list(cont_ids),
        continuation_source=source, top_k=top, pairs=pairs,
    )  # fmt: skip


def pair_sides(engines: Sequence[Any], models: Sequence[Any]) -> list[tuple[Any, Any]]:
    """(engine, model) for each side: two engines on one model, one engine on two models,
    or as many engines as models, paired in order."""
    engines, models = list(engines) or ["hf"], list(models) or [None]
    if len(engines) == len(models):
        sides = list(zip(engines, models))
    elif len(engines) == 1:
        sides = [(engines[0], m) for m in models]
    elif len(models) == 1:
        sides = [(e, models[0]) for e in engines]
    else:
        raise ParameterError(f"give one engine, one model, or as many engines as models (got {len(engines)} engines, {len(models)} models)")
    if len(sides) < 2:
        raise ParameterError("compare needs two models or two engines (two models on one engine, or two engines on one model)")
    return sides


def engine_labels(engines: Sequence[Engine]) -> list[str]:
    """"engine:model" for each; where two read the same, the settings that differ between them
    (dtype=bfloat16) are added, or else a number (#1, #2)."""
    labels = [f"{e.name}:{e.model_id}" for e in engines]
    out = []
    for i, (label, engine) in enumerate(zip(labels, engines)):
        twins = [e for lab, e in zip(labels, engines) if lab == label]
        if len(twins) == 1:
            out.append(label)
            continue
        settings = [_settings(e) for e in twins]
        differ = [k for k in LABEL_SETTINGS if len({repr(s.get(k)) for s in settings}) > 1]
        mine = _settings(engine)
        out.append(f"{label} ({', '.join(f'{k}={mine.get(k)}' for k in differ)})" if differ else f"{label}#{i + 1}")
    return out if len(set(out)) == len(out) else [f"{lab}#{i + 1}" if labels.count(lab) > 1 else lab for i, lab in enumerate(labels)]


def _settings(engine: Engine) -> dict[str, Any]:
    describe = getattr(engine, "describe", None)
    return describe() if callable(describe) else {}


def _token_text(engine: Engine) -> Callable[[int], str]:
    """Decoded text of single tokens, memoised."""
    cache: dict[int, str] = {}

    def text(token: int) -> str:
        if token not in cache:
            cache[token] = engine.tokenizer.decode([token])
        return cache[token]

    return text


_SHARED: weakref.WeakKeyDictionary[Any, weakref.WeakSet[Any]] = weakref.WeakKeyDictionary()
"""Tokenizers whose whole vocabularies were found equal (decoding one takes about a second)."""


def check_shared_vocabulary(a: Engine, b: Engine, label_a: str, label_b: str, ids_a: Sequence[int], ids_b: Sequence[int]) -> None:
    """Refuse engines whose token ids do not mean the same strings (the whole vocabulary is
    decoded, once per pair of tokenizers)."""
    ta, tb = a.tokenizer, b.tokenizer
    problem = None
    if ta.vocab_size != tb.vocab_size:
        problem = f"vocabulary sizes {ta.vocab_size} and {tb.vocab_size}"
    elif list(ids_a) != list(ids_b):
        problem = "the prompt encodes to different token ids"
    elif _known_shared(ta, tb):
        return
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
    try:
        _SHARED.setdefault(ta, weakref.WeakSet()).add(tb)
    except TypeError:  # a tokenizer that cannot be weakly referenced: checked again next time
        pass


def _known_shared(ta: Any, tb: Any) -> bool:
    try:
        return tb in _SHARED.get(ta, ())
    except TypeError:
        return False


def continuation_ids(tokenizer: Any, prompt: str, text: str, prompt_ids: Sequence[int], chat: bool) -> list[int]:
    """Token ids of `text` following the prompt: as the tokenizer splits prompt + text when
    the prompt's tokens survive that (raw prompts), else `text` encoded alone."""
    if not text:
        raise ParameterError("continuation must not be empty", param="continuation")
    if not chat:
        whole = tokenizer.encode(prompt + text)
        if whole[: len(prompt_ids)] == list(prompt_ids) and len(whole) > len(prompt_ids):
            return list(whole[len(prompt_ids) :])
    alone, lead = tokenizer.encode(text), tokenizer.encode("")
    ids = alone[len(lead) :] if lead and alone[: len(lead)] == lead else alone  # no BOS in the middle
    if not ids:
        raise ParameterError("continuation encodes to zero tokens", param="continuation")
    return list(ids)


def compare_steps(lp_a: np.ndarray, lp_b: np.ndarray, continuation: Sequence[int], top: int, text: Callable[[int], str]) -> list[StepComparison]:
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
    with store.recording(run_id):
        report.run_id = run_id
        store.save_result(run_id, "report", report.to_dict())
    return run_id
