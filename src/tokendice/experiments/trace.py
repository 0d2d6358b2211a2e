"""Trace one generation: what the model believed, what was sampled, and which stage did what.

Every probability is labelled with its distribution: `model` is the softmax of the
raw logits; `sampling` is the distribution the token was drawn from, after the
whole sampler chain (for greedy decoding: the distribution argmax was taken over,
as transformers' `output_scores`); `stage_probs[i]` is the distribution after
stage i (the last stage of a greedy chain is the argmax itself, one-hot).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from tokendice.engines.base import Engine
from tokendice.experiments.decoding import decode
from tokendice.experiments.prompting import encode_prompt
from tokendice.params import RandomSpec, SamplingParams
from tokendice.sampling.chain import SamplerChain
from tokendice.store.jsonutil import finite_json


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


@dataclass
class Trace:
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
        data = asdict(self)
        data["summary"] = {
            "n_tokens": len(self.steps),
            "model_logprob": self.model_logprob,
            "sampling_logprob": self.sampling_logprob,
            "model_perplexity": self.model_perplexity,
            "sampling_perplexity": self.sampling_perplexity,
        }
        return finite_json(data)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def to_dataframe(self) -> Any:
        """One row per step (pandas is imported here, only when asked for)."""
        import pandas as pd

        rows = []
        for s in self.steps:
            c = s.chosen
            row = {
                "step": s.step,
                "token": c.text,
                "token_id": c.token_id,
                "model_prob": c.model_prob,
                "model_logprob": c.model_logprob,
                "sampling_prob": c.sampling_prob,
                "sampling_logprob": c.sampling_logprob,
                "model_rank": c.model_rank,
                "model_entropy": s.model_entropy,
                "sampling_entropy": s.sampling_entropy,
                "removed_by": c.removed_by,
            }
            for label, p in zip(self.stages, c.stage_probs):
                row[f"p_after[{label}]"] = p
            rows.append(row)
        return pd.DataFrame(rows)

    def _repr_html_(self) -> str:
        from tokendice.render.html import trace_html

        return trace_html(self)


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
        trace.steps.append(_build_step(step, raw[0], scores, [s[0] for s in stages], int(chosen[0]), chain.labels, top, decode_fn))

    if rng_mode == "torch":
        torch.manual_seed(seed)
    completion = decode(engine, prompt_ids, params, rng, [0], observer=observe)[0]
    trace.finish_reason = completion.finish_reason
    trace.text = engine.tokenizer.decode(completion.tokens)
    return trace


def _build_step(
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
    p = logp.exp()
    return float(-(p * torch.where(p > 0, logp, torch.zeros_like(logp))).sum())

