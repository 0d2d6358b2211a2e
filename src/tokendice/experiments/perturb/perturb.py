"""Prompt sensitivity of one prompt: how far each variant moves the output.

For every variant against the original prompt:

- the first step: JS divergence between the next-token distributions (model and
  sampling), whether the model's top-1 token changed, and the probability the
  variant gives the original's top-1 token;
- the greedy output: the same or not, and the first step where it differs;
- the completion distribution: total variation distance (see `perturb_tv`), and the
  probability every prompt gives the original's most likely completions (`top_completions`);
- POSIX (Chatterjee et al. 2024) over the whole set, from the model
  log-likelihood of each prompt's greedy response under every other prompt.

All prompts are prefilled once, in one batch; greedy decoding runs them
together; every teacher-forced score comes from one pass over a prefix trie.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from tokendice.analysis import first_divergence, js_divergence, posix_index
from tokendice.analysis.extract import AnswerSpec
from tokendice.engines.base import Engine
from tokendice.errors import ParameterError
from tokendice.experiments.decoding.branching import branch_sample
from tokendice.experiments.decoding.decode import decode_batch
from tokendice.experiments.decoding.enumerate import enumerate_completions
from tokendice.experiments.decoding.prompting import encode_prompt
from tokendice.experiments.perturb.score import PromptBatch, score_completions
from tokendice.experiments.perturb.tv import TVEstimate, tv_answers, tv_exact, tv_samples
from tokendice.experiments.perturb.variants import Variant, VariantSet
from tokendice.params import RandomSpec, SamplingParams, require_bool, require_int, require_number
from tokendice.sampling.chain import SamplerChain

Progress = Callable[[int, str], None]
"""Called with work units just finished (UNITS_PER_PROMPT per prompt) and a label of what runs next."""

UNITS_PER_PROMPT = 100
TOP_COMPLETIONS = 8
"""How many of the original's most likely completions a report keeps, with every prompt's probability of them."""
OWN_COMPLETIONS = 256
"""With an answer spec, each variant's most probable enumerated completions added to the original's (scored under the
original): they hold most of the variant's mass; the rest widens the answer TV's bounds, as any unlisted mass does."""
ENUMERATE_IF_UNSEEN = 0.5
"""Enumerate the original only when at most this share of its samples are singletons."""


@dataclass(frozen=True)
class PerturbSettings:
    """How much work each measurement may take. `params` is the sampler chain measured."""

    params: SamplingParams = field(default_factory=lambda: SamplingParams(max_new_tokens=8))
    seed: int = 0
    samples: int = 200
    mass: float = 0.95
    max_nodes: int = 300
    distribution: bool = True
    max_rows: int = 256
    answer: str | None = None  # an answer spec: also the TV between answer distributions (None: not measured)

    def __post_init__(self) -> None:
        if not isinstance(self.params, SamplingParams):
            raise ParameterError(f"params must be a SamplingParams, got {type(self.params).__name__}", param="params")
        require_int("samples", self.samples, 2)
        require_number("mass", self.mass, 0.0, 1.0, low_open=True)
        require_int("max_nodes", self.max_nodes, 1)
        require_bool("distribution", self.distribution)
        require_int("max_rows", self.max_rows, 1)
        RandomSpec(self.seed)
        if self.answer is not None:
            object.__setattr__(self, "answer", answer_spec(self.answer))
            if not self.distribution:
                raise ParameterError("answer= compares answer distributions, which distribution=False skips", param="answer")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["params"] = self.params.to_dict()
        if self.answer is None:  # as runs without answers were always stored
            del data["answer"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PerturbSettings:
        """The inverse of `to_dict`, validated again: a resumed suite measures with the stored settings."""
        return cls(**{**data, "params": SamplingParams.from_dict(data["params"])})


@dataclass
class VariantResult:
    """One variant measured against the original."""

    variant: Variant
    prompt_tokens: int
    top1: dict[str, Any]  # the variant's own top-1 token under the model: id, text, prob
    js_model: float  # nats, first step, model distributions
    js_sampling: float  # nats, first step, sampling distributions
    top1_changed: bool
    orig_top1_model_prob: float  # probability the variant gives the original's top-1 token
    orig_top1_sampling_prob: float
    greedy_tokens: list[int]
    greedy_text: str
    greedy_same: bool
    greedy_divergence: int | None  # first step where the greedy outputs differ
    orig_response_delta: float  # per-token change of log p(original's greedy response) under this prompt
    tv: TVEstimate | None = None
    rank: int = 0
    # with an answer spec: TV between the answer distributions (hard bounds, see `tv_answers`), and the
    # variant's p(sampling) of the completions it was computed from
    answer_tv: TVEstimate | None = None
    answer_listed_mass: float | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["variant"] = self.variant.to_dict()
        data["tv"] = self.tv.to_dict() if self.tv else None
        if self.answer_tv is None:  # as runs without answers were always stored
            del data["answer_tv"], data["answer_listed_mass"]
        else:
            data["answer_tv"] = self.answer_tv.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VariantResult:
        """The inverse of `to_dict`; nested dicts and lists are copied, as `asdict` copies them."""
        fields = copy.deepcopy(data)
        fields["variant"] = Variant.from_dict(fields["variant"])
        fields["tv"] = None if fields["tv"] is None else TVEstimate.from_dict(fields["tv"])
        fields["answer_tv"] = None if fields.get("answer_tv") is None else TVEstimate.from_dict(fields["answer_tv"])
        fields["orig_response_delta"] = _or(fields["orig_response_delta"], -math.inf)  # JSON wrote -inf as null
        return cls(**fields)


@dataclass
class PromptReport:
    """Every variant of one prompt, ranked most disruptive first, with the POSIX matrix."""

    prompt: str
    chat: bool
    original: dict[str, Any]  # top1, greedy text and tokens, prompt tokens
    variants: list[VariantResult]
    skipped: list[dict[str, str]]
    posix: dict[str, Any]  # psi, names, loglik matrix [prompt][response], response lengths
    distribution: dict[str, Any]  # how TV was measured: method, enumeration mass, samples
    seconds: dict[str, float] = field(default_factory=dict)  # wall time of each stage
    # the original's most likely completions and every prompt's p(sampling) of them (see `_top_completions`);
    # empty when the distributions were not measured, and in runs stored before it was kept
    top_completions: dict[str, Any] = field(default_factory=dict)
    # with an answer spec: the original's most probable answers and every prompt's p(sampling) of them (see `_answers`)
    answers: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["variants"] = [v.to_dict() for v in self.variants]
        if not self.answers:  # as runs without answers were always stored
            del data["answers"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PromptReport:
        """The inverse of `to_dict`: a resumed suite reads back the prompts it already finished,
        so the summary can be recomputed over every prompt."""
        fields = copy.deepcopy({k: v for k, v in data.items() if k != "variants"})
        posix = fields["posix"]  # JSON wrote -inf log-likelihoods (and so an infinite psi) as null
        posix["loglik"] = [[_or(x, -math.inf) for x in row] for row in posix["loglik"]]
        posix["psi"] = _or(posix["psi"], math.inf)
        return cls(**fields, variants=[VariantResult.from_dict(v) for v in data["variants"]])


def answer_spec(spec: Any) -> str:
    """An answer spec, checked, as its canonical string (the keyword is `answer`)."""
    try:
        return str(AnswerSpec.parse(spec))
    except ParameterError as exc:
        raise ParameterError(str(exc), param="answer") from None


def _or(value: float | None, non_finite: float) -> float:
    return non_finite if value is None else value


def analyse_prompt(
    engine: Engine, vset: VariantSet, settings: PerturbSettings, progress: Progress | None = None
) -> PromptReport:
    """Measure every variant of `vset` against its original on `engine`."""
    meter = _Meter(progress, settings.distribution, settings.answer is not None)
    variants, skipped, ids = _encode(engine, vset)
    if not variants:
        raise ParameterError(f"no variant of {vset.original.prompt!r} is left to measure (all were skipped)", param="variants")
    everyone = [vset.original] + variants
    params = settings.params
    meter.stage("first", "first step and greedy outputs")
    batch = PromptBatch.prefill(engine, ids)
    raw = engine.logits(batch.state)
    model_p = torch.softmax(raw.double(), dim=-1)
    sampling_p = torch.softmax(SamplerChain.from_params(params).distribution(raw, batch.history).double(), dim=-1)
    greedy = decode_batch(engine, batch.state, batch.history, np.arange(len(ids)), params.with_(do_sample=False), RandomSpec(settings.seed))
    meter.stage("posix", "greedy responses under every prompt (POSIX)")
    responses = [tuple(c.tokens) for c in greedy]
    distinct = list(dict.fromkeys(responses))
    scores = score_completions(engine, batch, distinct, params, settings.max_rows, meter.pairs(len(ids) * len(distinct)))
    column = [distinct.index(r) for r in responses]
    loglik = scores.model[:, column]  # [prompt i, response j] = log P(y_j | x_i)
    lengths = [max(1, len(r)) for r in responses]
    names = [v.name for v in everyone]
    top: dict[str, Any] = {}
    answered: dict[str, Any] = {}
    answer_tvs: list[TVEstimate | None] = [None] * len(variants)
    if settings.distribution:
        tvs, dist_info, top, answered, answer_tvs = _distributions(engine, batch, settings, meter, names)
    else:
        tvs, dist_info = [None] * len(variants), {"method": "skipped"}
    meter.finish()
    top1 = model_p.argmax(dim=-1)
    o = int(top1[0])
    decode = engine.tokenizer.decode
    results = []
    for i, v in enumerate(variants, 1):
        results.append(
            VariantResult(
                variant=v,
                prompt_tokens=len(ids[i]),
                top1={"id": int(top1[i]), "text": decode([int(top1[i])]), "model_prob": float(model_p[i, top1[i]])},
                js_model=float(js_divergence(model_p[0].numpy(), model_p[i].numpy())),
                js_sampling=float(js_divergence(sampling_p[0].numpy(), sampling_p[i].numpy())),
                top1_changed=int(top1[i]) != o,
                orig_top1_model_prob=float(model_p[i, o]),
                orig_top1_sampling_prob=float(sampling_p[i, o]),
                greedy_tokens=list(responses[i]),
                greedy_text=decode(list(responses[i])),
                greedy_same=responses[i] == responses[0],
                greedy_divergence=first_divergence(responses[0], responses[i]),
                orig_response_delta=float((loglik[i, 0] - loglik[0, 0]) / lengths[0]),
                tv=tvs[i - 1],
                answer_tv=answer_tvs[i - 1],
                answer_listed_mass=answered["listed_mass"][i] if answered else None,
            )
        )
    _rank(results)
    posix = {
        "psi": posix_index(loglik, lengths),
        "names": names,
        "loglik": loglik.tolist(),
        "response_lengths": lengths,
        "responses": [decode(list(r)) for r in responses],
        "note": "loglik[i][j] = log P(greedy response of j | prompt i), model distribution, natural log",
    }
    original = {
        "prompt_tokens": len(ids[0]),
        "top1": {"id": o, "text": decode([o]), "model_prob": float(model_p[0, o]), "sampling_prob": float(sampling_p[0, o])},
        "greedy_tokens": list(responses[0]),
        "greedy_text": decode(list(responses[0])),
    }
    return PromptReport(vset.original.prompt, vset.original.chat, original, results, vset.skipped + skipped, posix, dist_info, meter.seconds,
                        top, answered)


def _encode(engine: Engine, vset: VariantSet) -> tuple[list[Variant], list[dict[str, str]], list[list[int]]]:
    """Token ids of the original and of each variant; a variant that cannot be encoded, or
    encodes to the same tokens as an earlier prompt, is skipped with a note."""
    ids = [encode_prompt(engine.tokenizer, vset.original.prompt, vset.original.chat)]
    seen = {tuple(ids[0]): "the original"}
    kept, skipped = [], []
    for v in vset.variants:
        try:
            encoded = encode_prompt(engine.tokenizer, v.prompt, v.chat)
        except ParameterError as exc:
            skipped.append({"name": v.name, "prompt": v.prompt, "note": f"cannot encode: {exc}"})
            continue
        if tuple(encoded) in seen:
            skipped.append({"name": v.name, "prompt": v.prompt, "note": f"same tokens as {seen[tuple(encoded)]}"})
            continue
        seen[tuple(encoded)] = v.name
        kept.append(v)
        ids.append(encoded)
    return kept, skipped, ids


def _distributions(
    engine: Engine, batch: PromptBatch, settings: PerturbSettings, meter: _Meter, names: list[str]
) -> tuple[list[TVEstimate], dict[str, Any], dict[str, Any], dict[str, Any], list[TVEstimate | None]]:
    """TV of each variant's completion distribution to the original's.

    The original is sampled first (branching sampler). When the samples say its
    distribution is concentrated (Good-Turing estimate of the mass outside the
    sampled completions, singletons / N, at most ENUMERATE_IF_UNSEEN), it is also
    enumerated; if the enumeration reaches the target mass, TV is exact (hard
    bounds), else it comes from the samples. Diffuse distributions skip the
    enumeration, which could not reach the mass within its budget anyway.
    Also returns the original's top completions with every prompt's probability of them, and
    with an answer spec the answers (see `_answers`) and each variant's answer TV.
    """
    params = settings.params
    meter.stage("sample", f"sampling {settings.samples} completions of the original")
    tally: dict[tuple[int, ...], int] = {}
    for c in branch_sample(engine, batch.ids[0], params, settings.samples, settings.seed):
        tally[tuple(c.tokens)] = tally.get(tuple(c.tokens), 0) + 1
    unseen = sum(1 for n in tally.values() if n == 1) / settings.samples
    info: dict[str, Any] = {"samples": settings.samples, "distinct": len(tally), "seed": settings.seed,
                            "good_turing_unseen": unseen, "target_mass": settings.mass, "enumeration": None}
    completions: list[tuple[int, ...]] = list(tally)
    counts: np.ndarray | None = np.asarray(list(tally.values()), dtype=np.float64)
    meter.stage("enumerate", "enumerating the original's completions")
    enumeration = None
    if unseen <= ENUMERATE_IF_UNSEEN:
        enumeration = enumerate_completions(engine, batch.ids[0], params, mass=settings.mass, max_nodes=settings.max_nodes)
        info["enumeration"] = {"found_mass": enumeration.found_mass, "expanded": enumeration.expanded,
                               "stopped_because": enumeration.stopped_because}
        if enumeration.found_mass >= settings.mass:
            completions, counts = [c.tokens for c in enumeration.completions], None
    info["method"] = "exact" if counts is None else "samples"
    info["completions"] = len(completions)
    meter.stage("score", "the original's completions under every variant")
    scores = score_completions(engine, batch, completions, params, settings.max_rows, meter.pairs(len(batch.ids) * len(completions)))
    p, q = scores.sampling[0], scores.sampling[1:]
    top = _top_completions(engine, completions, scores.sampling, names, info["method"])
    short = enumeration if counts is not None else None  # an enumeration that missed the mass: its completions help answers
    answered, answer_tvs = _answers(engine, batch, completions, scores.sampling, names, info["method"], settings, meter, short)
    if counts is None:
        info["scored_mass"] = float(np.exp(p).sum())
        return tv_exact(p, q), info, top, answered, answer_tvs
    return tv_samples(p, q, counts), info, top, answered, answer_tvs


def _top_completions(
    engine: Engine, completions: list[tuple[int, ...]], sampling: np.ndarray, names: list[str], method: str
) -> dict[str, Any]:
    """The original's TOP_COMPLETIONS most likely completions (of those scored) and every prompt's
    probability of each, under the sampling distribution: probs[i][k] = exp(sampling[i, k]),
    prompt i in the order of `names` (the original first). Ties go to the smaller token ids."""
    order = sorted(range(len(completions)), key=lambda k: (-sampling[0, k], tuple(completions[k])))[:TOP_COMPLETIONS]
    among = "enumerated" if method == "exact" else "sampled"
    return {
        "names": list(names),
        "tokens": [list(completions[k]) for k in order],
        "texts": [engine.tokenizer.decode(list(completions[k])) for k in order],
        "probs": np.exp(sampling[:, order]).tolist(),
        "note": f"the original's {len(order)} most likely completions ({among}); probs[i][k] = p(sampling) of completion k "
                "given prompt i (names[i], the original first), exact: the completion scored token by token",
    }


def _answers(
    engine: Engine, batch: PromptBatch, completions: list[tuple[int, ...]], sampling: np.ndarray, names: list[str], method: str,
    settings: PerturbSettings, meter: _Meter, enumeration: Any = None,
) -> tuple[dict[str, Any], list[TVEstimate | None]]:
    """With an answer spec: every variant's answer TV, hard bounds (`tv_answers`) over the original's
    listed completions (scored under every prompt) and the variant's own completions, enumerated
    with the same budget and scored under the original: a variant may say the original's answers
    in words the original never uses (" 12" after "is", "12" after "is "), which the original's
    completions alone cannot see. When the original's completions are its samples, the most probable
    of its `enumeration` (one that missed the target mass) join them, scored under every prompt.
    Answers are read without the end-of-sequence token. Also the original's TOP_COMPLETIONS most
    probable answers with every prompt's p(sampling) of them over the completions listed for it:
    probs[i][k] for prompt i in the order of `names` (the original first)."""
    if settings.answer is None:
        return {}, [None] * (len(names) - 1)
    read = AnswerSpec.parse(settings.answer)
    eos = set(engine.tokenizer.eos_token_ids)
    said: dict[tuple[int, ...], str] = {}

    def answer(c: tuple[int, ...]) -> str:
        if c not in said:
            said[c] = read(engine.tokenizer.decode(list(c[:-1] if c and c[-1] in eos else c)))
        return said[c]

    meter.stage("answers", "enumerating each variant's own completions (answers)")
    probs = np.exp(sampling)
    among = "enumerated" if method == "exact" else "sampled"
    if enumeration is not None:
        seen = set(completions)
        more = [c.tokens for c in enumeration.completions[:OWN_COMPLETIONS] if c.tokens not in seen]
        if more:
            scored = score_completions(engine, batch, more, settings.params, settings.max_rows, meter.pairs(len(batch.ids) * len(more)))
            completions, probs = list(completions) + more, np.hstack([probs, np.exp(scored.sampling)])
            among = "sampled and enumerated"
    own = [enumerate_completions(engine, batch.ids[i], settings.params, mass=settings.mass, max_nodes=settings.max_nodes)
           for i in range(1, len(names))]  # fmt: skip
    index = {c: k for k, c in enumerate(completions)}
    own_listed = [[c for c in e.completions[:OWN_COMPLETIONS] if c.tokens not in index] for e in own]  # most probable first
    extra = list(dict.fromkeys(c.tokens for theirs in own_listed for c in theirs))
    p_extra: dict[tuple[int, ...], float] = {}
    if extra:  # the variants' own completions under the original prompt
        scored = score_completions(engine, PromptBatch.prefill(engine, [batch.ids[0]]), extra, settings.params, settings.max_rows,
                                   meter.pairs(len(extra)))  # fmt: skip
        p_extra = dict(zip(extra, np.exp(scored.sampling[0]).tolist()))
    tvs, rows, listed = [], [], []
    _, original, _ = tv_answers(probs[0], probs[0], [answer(c) for c in completions])
    rows.append(original)
    listed.append({"completions": len(completions), "original_mass": float(probs[0].sum()), "variant_mass": None})
    for i, (e, theirs) in enumerate(zip(own, own_listed), 1):
        keys = completions + [c.tokens for c in theirs]
        p = probs[0].tolist() + [p_extra[c.tokens] for c in theirs]
        q = probs[i].tolist() + [c.prob for c in theirs]
        tv, _, q_answers = tv_answers(p, q, [answer(c) for c in keys])
        tvs.append(tv)
        rows.append(q_answers)
        listed.append({"completions": len(keys), "original_mass": math.fsum(p), "variant_mass": math.fsum(q),
                       "variant_enumeration": {"found_mass": e.found_mass, "expanded": e.expanded}})  # fmt: skip
    top = sorted(original, key=lambda a: (-original[a], a))[:TOP_COMPLETIONS]
    return {
        "extract": settings.answer,
        "names": list(names),
        "answers": top,
        "probs": [[row.get(a, 0.0) for a in top] for row in rows],
        "distinct": len(original),
        "listed_from": among,
        "listed": listed,
        "listed_mass": [d["original_mass"] if i == 0 else d["variant_mass"] for i, d in enumerate(listed)],
        "note": f"the original's {len(top)} most probable answers ({settings.answer}) among its {len(completions)} {among} "
                "completions; probs[i][k] = p(sampling), given prompt i (names[i], the original first), of the listed completions "
                "giving answer k: the original's, and for a variant also its own enumerated ones (listed[i]); listed_mass[i] = "
                "p(sampling) of them all under prompt i",
    }, tvs  # fmt: skip


def _rank(results: list[VariantResult]) -> None:
    """Most disruptive first: by TV (when measured), then by the first-step JS divergence of the model."""
    results.sort(key=lambda r: (-(r.tv.value if r.tv else 0.0), -r.js_model, r.variant.name))
    for i, r in enumerate(results, 1):
        r.rank = i


class _Meter:
    """Turns stages and scored pairs into progress units, UNITS_PER_PROMPT per prompt in all."""

    def __init__(self, progress: Progress | None, distribution: bool, answers: bool = False) -> None:
        self.progress = progress
        if distribution and answers:
            self.weights = {"first": 5, "posix": 10, "sample": 15, "enumerate": 10, "score": 35, "answers": 25}
        elif distribution:
            self.weights = {"first": 5, "posix": 10, "sample": 20, "enumerate": 10, "score": 55}
        else:
            self.weights = {"first": 30, "posix": 70}
        self.done = 0
        self.seconds: dict[str, float] = {}
        self.started = time.perf_counter()
        self.current: str | None = None
        self.credited = 0
        self.label = ""

    def stage(self, key: str, label: str) -> None:
        self._close()
        self.current, self.credited, self.label = key, 0, label
        self._emit(0)

    def pairs(self, total: int) -> Callable[[int], None]:
        """A callback for `score_completions`: spreads the current stage's weight over `total` pairs."""
        finished = [0]

        def advance(k: int) -> None:
            finished[0] += k
            target = self.weights[self.current or "score"] * finished[0] // max(1, total)
            self._emit(target - self.credited)
            self.credited = max(self.credited, target)

        return advance

    def finish(self) -> None:
        self._close()
        self._emit(UNITS_PER_PROMPT - self.done)

    def _close(self) -> None:
        if self.current is not None:
            now = time.perf_counter()
            self.seconds[self.current] = round(now - self.started, 3)
            self.started = now
            self._emit(self.weights[self.current] - self.credited)
            self.current = None

    def _emit(self, units: int) -> None:
        units = max(0, min(units, UNITS_PER_PROMPT - self.done))
        self.done += units
        if self.progress is not None:
            self.progress(units, self.label)
