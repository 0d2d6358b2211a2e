"""The branching sampler: N samples split among distinct prefixes by multinomial counts.

At every distinct prefix holding c samples, one multinomial draw splits the c
samples among the next tokens. Recursively this gives exactly the distribution of
N independent samples, while the model runs once per distinct prefix rather than
once per sample: the cost grows with the number of distinct prefixes, not with N.
Each prefix draws from its own stream, seeded by (seed, prefix), so the result does
not depend on batching.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from tokendice.engines.base import Engine, EngineState
from tokendice.experiments.decoding.decode import Completion, logprobs_at
from tokendice.hashing import stream_hash
from tokendice.params import SamplingParams
from tokendice.sampling.chain import SamplerChain


@dataclass
class _Branch:
    tokens: list[int]
    model_logprobs: list[float]
    sampling_logprobs: list[float]
    count: int
    key: int  # hash of (seed, prefix): the branch's random stream
    finish_reason: str = "length"


@dataclass
class BranchStats:
    """What the branching sampler computed: model rows per step (distinct prefixes)."""

    rows_per_step: list[int] = field(default_factory=list)

    @property
    def forward_rows(self) -> int:
        return sum(self.rows_per_step)


def branch_sample(
    engine: Engine,
    prompt_ids: Sequence[int],
    params: SamplingParams,
    n: int,
    seed: int,
    progress: Callable[[int], None] | None = None,
    stats: BranchStats | None = None,
    start: tuple[EngineState, torch.Tensor] | None = None,
) -> list[Completion]:
    """N completions (sample ids 0..N-1, in sorted token order) from the branching sampler.
    `start`: a state of one row already holding the prompt (and its history), used instead of
    prefilling `prompt_ids` (the explorer samples from a node's cached state)."""
    chain = SamplerChain.from_params(params)
    eos = set(engine.tokenizer.eos_token_ids) if params.stop_at_eos else set()
    if start is None:
        state = engine.prefill([list(prompt_ids)])
        history = torch.as_tensor([list(prompt_ids)], dtype=torch.long)
    else:
        state, history = start
    live = [_Branch([], [], [], n, int(stream_hash(seed)[0]))]
    done: list[_Branch] = []
    last = params.max_new_tokens - 1
    for step in range(params.max_new_tokens):
        if stats is not None:
            stats.rows_per_step.append(len(live))
        raw = engine.logits(state)
        scores = chain.candidates(raw, history)
        probs = torch.softmax(chain.finalize(scores.logits, history).double(), dim=-1)
        columns, values = _support(probs)
        ids = scores.ids.gather(1, columns)
        each_row = torch.arange(len(live)).unsqueeze(1)
        model_lp = logprobs_at(raw, each_row, ids).tolist()
        sampling_lp = logprobs_at(scores.logits, each_row, columns).tolist()
        ids_list, values_np = ids.tolist(), values.numpy()
        finished_before = sum(b.count for b in done)
        parents: list[int] = []
        tokens: list[int] = []
        next_live: list[_Branch] = []
        for r, branch in enumerate(live):
            p = values_np[r]
            counts = np.random.default_rng(branch.key).multinomial(branch.count, p / p.sum())
            chosen = np.nonzero(counts)[0]
            child_keys = stream_hash(branch.key, np.asarray([ids_list[r][j] for j in chosen], dtype=np.int64))
            for j, idx in enumerate(chosen.tolist()):
                token = ids_list[r][idx]
                child = _Branch(
                    branch.tokens + [token],
                    branch.model_logprobs + [model_lp[r][idx]],
                    branch.sampling_logprobs + [sampling_lp[r][idx]],
                    int(counts[idx]),
                    int(child_keys[j]),
                )
                if token in eos:
                    child.finish_reason = "eos"
                    done.append(child)
                elif step == last:
                    done.append(child)
                else:
                    parents.append(r)
                    tokens.append(token)
                    next_live.append(child)
        if progress is not None:
            progress(sum(b.count for b in done) - finished_before)
        if not next_live:
            break
        rows = torch.as_tensor(parents, dtype=torch.long)
        chosen_tokens = torch.as_tensor(tokens, dtype=torch.long)
        state = engine.extend(engine.select(state, rows), chosen_tokens)
        history = torch.cat([history[rows], chosen_tokens.unsqueeze(1)], dim=1)
        live = next_live
    return _expand(done, n)


def _support(probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Columns (ascending) and probabilities of each row's tokens with mass; rows with
    fewer such tokens are padded with zero-probability entries, which are never drawn."""
    width = int((probs > 0).sum(dim=-1).max())
    if width * 4 >= probs.shape[-1]:
        return torch.arange(probs.shape[-1]).expand(probs.shape[0], -1), probs
    values, ids = torch.topk(probs, width, dim=-1)
    order = ids.argsort(dim=-1)
    return ids.gather(1, order), values.gather(1, order)


def _expand(done: list[_Branch], n: int) -> list[Completion]:
    done.sort(key=lambda b: b.tokens)
    out: list[Completion] = []
    for b in done:
        for _ in range(b.count):
            out.append(Completion(len(out), list(b.tokens), list(b.model_logprobs), list(b.sampling_logprobs), b.finish_reason))
    assert len(out) == n, f"branching lost samples: {len(out)} != {n}"
    return out
