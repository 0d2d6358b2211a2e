"""tokendice's own decoding loop: engine logits -> sampler chain -> draw, batched.

One prefill serves every sample; samples share a row of the model's batch while their
prefixes agree, and rows that finish are dropped from the batch at once, so no work
is spent on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Protocol, Sequence

import numpy as np
import torch

from tokendice.engines.base import Engine, EngineState
from tokendice.params import RandomSpec, SamplingParams
from tokendice.sampling.chain import Candidates, SamplerChain
from tokendice.sampling.rng import draw


@dataclass
class Completion:
    """One generated continuation, with the log-probability of each chosen token
    under the model distribution (raw logits) and the sampling distribution (after
    the chain; for greedy decoding, the scores argmax was taken over)."""

    sample_id: int
    tokens: list[int] = field(default_factory=list)
    model_logprobs: list[float] = field(default_factory=list)
    sampling_logprobs: list[float] = field(default_factory=list)
    finish_reason: str = "length"  # "eos" or "length"


class StepObserver(Protocol):
    """Sees every step of a decode: raw logits, logits after each stage, chosen tokens."""

    def __call__(
        self, step: int, raw: torch.Tensor, stages: list[torch.Tensor], chosen: torch.Tensor, sample_ids: np.ndarray
    ) -> None: ...


def decode(
    engine: Engine,
    prompt_ids: Sequence[int],
    params: SamplingParams,
    rng: RandomSpec,
    sample_ids: Sequence[int],
    batch_size: int = 256,
    observer: StepObserver | None = None,
) -> list[Completion]:
    """Generate one completion per sample id for a single prompt."""
    return [c for chunk in decode_chunks(engine, prompt_ids, params, rng, sample_ids, batch_size, observer) for c in chunk]


def decode_chunks(
    engine: Engine,
    prompt_ids: Sequence[int],
    params: SamplingParams,
    rng: RandomSpec,
    sample_ids: Sequence[int],
    batch_size: int = 256,
    observer: StepObserver | None = None,
) -> Iterator[list[Completion]]:
    """Like `decode`, yielding each batch of completions as soon as it is done."""
    base = engine.prefill([list(prompt_ids)])
    prompt = torch.as_tensor([list(prompt_ids)], dtype=torch.long)
    ids = np.asarray(list(sample_ids), dtype=np.int64)
    for start in range(0, len(ids), batch_size):
        chunk = ids[start : start + batch_size]
        yield decode_batch(engine, base, prompt, chunk, params, rng, observer, sample_rows=np.zeros(len(chunk), dtype=np.int64))


def decode_batch(
    engine: Engine,
    state: EngineState,
    history: torch.Tensor,
    sample_ids: np.ndarray,
    params: SamplingParams,
    rng: RandomSpec,
    observer: StepObserver | None = None,
    sample_rows: np.ndarray | None = None,
) -> list[Completion]:
    """Decode one completion per sample id from the rows of `state` (already prefilled).
    `history` holds each row's prompt, left-padded with -1, for the penalties.

    Sample j continues row `sample_rows[j]` (by default row j, one row per sample).
    Samples given the same row share one row of the model's batch for as long as they
    choose the same tokens, so the model runs once per distinct prefix rather than once
    per sample; each sample still draws from its own stream.
    """
    chain = SamplerChain.from_params(params)
    eos = torch.as_tensor(engine.tokenizer.eos_token_ids or (-1,), dtype=torch.long)
    completions = [Completion(int(i)) for i in sample_ids]
    active = torch.arange(len(completions))
    shared = sample_rows is not None
    row_of = torch.as_tensor(sample_rows, dtype=torch.long) if shared else active  # each active sample's row
    for step in range(params.max_new_tokens):
        raw = engine.logits(state)
        if observer is not None:
            stages = chain.process_stages(raw, history)
            scores = Candidates.dense(chain.scores_from_stages(raw, stages))
        else:  # torch mode draws as `generate` does, over the whole vocabulary
            stages, scores = [], chain.candidates(raw, history, restrict=rng.mode != "torch")
        active_ids = sample_ids[active.numpy()]
        per_sample = scores.logits[row_of] if shared else scores.logits
        columns = draw(per_sample, chain.greedy, rng.mode, rng.seed, active_ids, step)
        chosen = scores.ids[row_of, columns]
        if observer is not None:
            observer(step, raw[row_of], [s[row_of] for s in stages], chosen, active_ids)
        model_lp = logprobs_at(raw, row_of, chosen)
        sampling_lp = logprobs_at(scores.logits, row_of, columns)
        finished = torch.isin(chosen, eos) if params.stop_at_eos else torch.zeros_like(chosen, dtype=torch.bool)
        rows = zip(active.tolist(), chosen.tolist(), model_lp.tolist(), sampling_lp.tolist(), finished.tolist())
        for row, token, model_logprob, sampling_logprob, is_finished in rows:
            c = completions[row]
            c.tokens.append(token)
            c.model_logprobs.append(model_logprob)
            c.sampling_logprobs.append(sampling_logprob)
            if is_finished:
                c.finish_reason = "eos"
        if step == params.max_new_tokens - 1 or bool(finished.all()):
            break
        keep = torch.nonzero(~finished).squeeze(1)
        active, chosen, row_of = active[keep], chosen[keep], row_of[keep]
        if shared:  # one row per distinct (row, token): the prefixes still shared
            prefixes, row_of = torch.unique(torch.stack([row_of, chosen], dim=1), dim=0, return_inverse=True)
            parents, tokens = prefixes[:, 0], prefixes[:, 1]
        else:
            parents, tokens, row_of = row_of, chosen, torch.arange(len(keep))
        if len(parents) != state.batch_size or not torch.equal(parents, torch.arange(len(parents))):
            state = engine.select(state, parents)
        state = engine.extend(state, tokens)
        history = torch.cat([history[parents], tokens.unsqueeze(1)], dim=1)
    return completions


def logprobs_at(logits: torch.Tensor, rows: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[rows, columns] (broadcast as in indexing), without a [batch, vocab] output."""
    logits = logits.float()
    return logits[rows, columns] - torch.logsumexp(logits, dim=-1)[rows]
