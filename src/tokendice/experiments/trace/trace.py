"""Trace one generation: what the model believed, what was sampled, and which stage did what.

Every probability is labelled with its distribution: `model` is the softmax of the
raw logits; `sampling` is the distribution the token was drawn from, after the
whole sampler chain (for greedy decoding: the distribution argmax was taken over,
as transformers' `output_scores`); `stage_probs[i]` is the distribution after
stage i (the last stage of a greedy chain is the argmax itself, one-hot).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from tokendice.analysis import entropy
from tokendice.engines.base import Engine
from tokendice.experiments.decoding.decode import decode
from tokendice.experiments.decoding.prompting import encode_prompt
from tokendice.experiments.results import Result, clip, init_fields
from tokendice.jsonutil import finite_json
from tokendice.params import RandomSpec, SamplingParams
from tokendice.sampling.chain import SamplerChain
from tokendice.store import SampleRecord, Store


def _logprob(value: Any) -> float:
    """A log-probability read back from JSON, where -inf was written as null."""
    return -math.inf if value is None else float(value)


@dataclass
class Candidate:
    """A token at one step, with its probability under each distribution."""

    token_id: int
    text: str
    model_prob: float
    model_logprob: float
    sampling_prob: float
    sampling_logprob: float
    model_rank: int  # 1 = the model's most likely token
    stage_probs: list[float]  # probability after each stage of the chain, in order
    removed_by: str | None  # the stage that set its probability to zero, if one did

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Candidate:
        return cls(**{**data, "model_logprob": _logprob(data["model_logprob"]), "sampling_logprob": _logprob(data["sampling_logprob"])})


@dataclass
class TraceStep:
    step: int
    chosen: Candidate
    model_entropy: float  # nats, of the model distribution
    sampling_entropy: float  # nats, of the sampling distribution
    top: list[Candidate]  # the most likely tokens under the model distribution

    @property
    def token_id(self) -> int:
        return self.chosen.token_id

    @property
    def text(self) -> str:
        return self.chosen.text

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TraceStep:
        return cls(data["step"], Candidate.from_dict(data["chosen"]), data["model_entropy"], data["sampling_entropy"],
                   [Candidate.from_dict(c) for c in data["top"]])


@dataclass(repr=False)
class Trace(Result):
    """One generation, every step explained: what the model believed (p(model)), what the token
    was drawn from (p(sampling)), and what each stage of the sampler chain did."""

    kind: ClassVar[str] = "trace"
    COLUMNS: ClassVar[tuple[str, ...]] = (
        "step", "token_id", "token", "chosen", "model_rank", "model_prob", "model_logprob", "sampling_prob",
        "sampling_logprob", "removed_by", "model_entropy", "sampling_entropy",
    )

    prompt: str
    prompt_ids: list[int]
    engine: str
    model: str
    params: dict[str, Any]
    seed: int
    rng: str
    stages: list[str]
    steps: list[TraceStep] = field(default_factory=list)
    finish_reason: str = "length"
    text: str = ""
    run_id: str | None = None

    @property
    def model_logprob(self) -> float:
        """Log-probability of the whole completion under the model distribution."""
        return float(sum(s.chosen.model_logprob for s in self.steps))

    @property
    def sampling_logprob(self) -> float:
        """Log-probability of the whole completion under the sampling distribution."""
        return float(sum(s.chosen.sampling_logprob for s in self.steps))

    @property
    def model_perplexity(self) -> float:
        return math.exp(-self.model_logprob / len(self.steps)) if self.steps else float("nan")

    @property
    def sampling_perplexity(self) -> float:
        return math.exp(-self.sampling_logprob / len(self.steps)) if self.steps else float("nan")

    @property
    def token_ids(self) -> list[int]:
        return [s.token_id for s in self.steps]

    def to_dict(self) -> dict[str, Any]:
        data = {"kind": self.kind, **asdict(self)}
        data["summary"] = {
            "n_tokens": len(self.steps),
            "model_logprob": self.model_logprob,
            "sampling_logprob": self.sampling_logprob,
            "model_perplexity": self.model_perplexity,
            "sampling_perplexity": self.sampling_perplexity,
        }
        return finite_json(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trace:
        return cls(**init_fields(cls, data, "steps"), steps=[TraceStep.from_dict(s) for s in data["steps"]])

    def columns(self) -> list[str]:
        return [*self.COLUMNS, *(f"p_after[{label}]" for label in self.stages)]

    def rows(self) -> list[dict[str, Any]]:
        """One row per (step, token): the chosen token and each top alternative (under the model)."""
        rows = []
        for s in self.steps:
            listed = [s.chosen] + [c for c in s.top if c.token_id != s.chosen.token_id]
            for c in listed:
                row = {
                    "step": s.step, "token_id": c.token_id, "token": c.text, "chosen": c is s.chosen,
                    "model_rank": c.model_rank, "model_prob": c.model_prob, "model_logprob": c.model_logprob,
                    "sampling_prob": c.sampling_prob, "sampling_logprob": c.sampling_logprob, "removed_by": c.removed_by,
                    "model_entropy": s.model_entropy, "sampling_entropy": s.sampling_entropy,
                }
                row.update({f"p_after[{label}]": p for label, p in zip(self.stages, c.stage_probs)})
                rows.append(row)
        return rows

    def headline(self) -> str:
        return (f"{clip(self.prompt, 40)} → {clip(self.text, 50)} · {len(self.steps)} tokens · "
                f"log p(model) {self.model_logprob:.3f} · log p(sampling) {self.sampling_logprob:.3f} · "
                f"{self.model} ({self.engine}) seed {self.seed}")


def run_trace(
    engine: Engine,
    prompt: str,
    params: SamplingParams,
    seed: int = 0,
    rng_mode: str = "per-sample",
    top: int = 5,
    chat: bool = False,
) -> Trace:
    """Generate one completion and record every step (batch of one, sample id 0)."""
    rng = RandomSpec(seed, rng_mode)
    prompt_ids = encode_prompt(engine.tokenizer, prompt, chat)
    chain = SamplerChain.from_params(params)
    trace = Trace(
        prompt=prompt,
        prompt_ids=prompt_ids,
        engine=engine.name,
        model=engine.model_id,
        params=params.to_dict(),
        seed=seed,
        rng=rng_mode,
        stages=chain.labels,
    )
    decode_fn = engine.tokenizer.decode

    def observe(step: int, raw: torch.Tensor, stages: list[torch.Tensor], chosen: torch.Tensor, ids: np.ndarray) -> None:
        scores = chain.scores_from_stages(raw, stages)[0]
        trace.steps.append(build_step(step, raw[0], scores, [s[0] for s in stages], int(chosen[0]), chain.labels, top, decode_fn))

    if rng_mode == "torch":
        torch.manual_seed(seed)
    completion = decode(engine, prompt_ids, params, rng, [0], observer=observe)[0]
    trace.finish_reason = completion.finish_reason
    trace.text = engine.tokenizer.decode(completion.tokens)
    return trace


def build_step(
    step: int, raw: torch.Tensor, scores: torch.Tensor, stages: list[torch.Tensor], chosen: int, labels: list[str], top: int, decode_fn: Any
) -> TraceStep:
    model_logp = torch.log_softmax(raw.double(), dim=-1)
    stage_logp = [torch.log_softmax(s.double(), dim=-1) for s in stages]
    sampling_logp = torch.log_softmax(scores.double(), dim=-1)
    # rank = 1 + number of tokens strictly more likely under the model
    ranks_of = lambda tid: int((model_logp > model_logp[tid]).sum()) + 1  # noqa: E731

    def candidate(tid: int) -> Candidate:
        probs = [float(lp[tid].exp()) for lp in stage_logp]
        removed_by = None
        before = float(model_logp[tid].exp())
        for label, p in zip(labels, probs):
            if before > 0 and p == 0:
                removed_by = label
                break
            before = p
        return Candidate(
            token_id=tid,
            text=decode_fn([tid]),
            model_prob=float(model_logp[tid].exp()),
            model_logprob=float(model_logp[tid]),
            sampling_prob=float(sampling_logp[tid].exp()),
            sampling_logprob=float(sampling_logp[tid]),
            model_rank=ranks_of(tid),
            stage_probs=probs,
            removed_by=removed_by,
        )

    top_ids = torch.topk(model_logp, min(top, model_logp.shape[-1])).indices.tolist() if top > 0 else []
    return TraceStep(
        step=step,
        chosen=candidate(chosen),
        model_entropy=_entropy(model_logp),
        sampling_entropy=_entropy(sampling_logp),
        top=[candidate(t) for t in top_ids],
    )


def _entropy(logp: torch.Tensor) -> float:
    return float(entropy(logp.exp().numpy()))


def store_trace(store: Store, engine: Engine, trace: Trace, chat: bool) -> str:
    """Keep a trace as a run of kind 'trace': its completion as sample 0 (what `diff` reads) and the
    trace itself as result 'trace'. Sets and returns `trace.run_id`."""
    extra = {"trace": {"prompt": trace.prompt, "seed": trace.seed, "rng": trace.rng, "chat": chat,
                       "top": len(trace.steps[0].top) if trace.steps else 0}}
    run_id = store.start_run("trace", trace.prompt, engine.describe(), trace.params, extra, n_requested=1)
    with store.recording(run_id):
        steps = trace.steps
        store.add_samples(run_id, [SampleRecord(
            0, trace.token_ids, [s.text for s in steps], trace.text, [s.chosen.model_logprob for s in steps],
            [s.chosen.sampling_logprob for s in steps], trace.finish_reason,
        )])  # fmt: skip
        trace.run_id = run_id
        store.save_result(run_id, "trace", trace.to_dict())
    return run_id
