"""Teacher forcing: the log-probability of given completions after each of several prompts.

The Engine protocol gives next-token logits at the last position only, so a
completion is scored one token at a time. Completions that share a prefix share
the work: they are laid out as a prefix trie, and step t computes one row per
distinct prefix of length t, for every prompt at once (one prefill of all
prompts, then `select` + `extend` per step). Both distributions are scored: the
model's (raw logits) and the sampling distribution (after the sampler chain,
whose penalties see the prompt and the prefix).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from tokendice.engines.base import Engine, EngineState, left_pad
from tokendice.experiments.decoding.decode import logprobs_at
from tokendice.params import SamplingParams
from tokendice.sampling.chain import SamplerChain


@dataclass
class PromptBatch:
    """Every prompt prefilled once, in one batch; `history` holds them left-padded with -1."""

    ids: list[list[int]]
    state: EngineState
    history: torch.Tensor

    @classmethod
    def prefill(cls, engine: Engine, prompts: Sequence[Sequence[int]]) -> PromptBatch:
        ids = [list(p) for p in prompts]
        return cls(ids, engine.prefill(ids), left_pad(ids)[0])

    def rows(self, engine: Engine, prompt_rows: Sequence[int]) -> tuple[EngineState, torch.Tensor]:
        rows = torch.as_tensor(list(prompt_rows), dtype=torch.long)
        return engine.select(self.state, rows), self.history[rows]


@dataclass
class Scores:
    """Summed log-probabilities, shape [prompts, completions]: model (raw) and sampling distribution."""

    model: np.ndarray
    sampling: np.ndarray


@dataclass
class _Level:
    parents: torch.Tensor  # for each prefix of length t: its parent prefix's index at level t - 1
    last: torch.Tensor  # the prefix's last token (unused at t = 0)
    completions: np.ndarray  # completions longer than t
    nodes: torch.Tensor  # their prefix of length t, as an index into this level
    tokens: torch.Tensor  # their token at position t


def _levels(completions: Sequence[Sequence[int]], members: Sequence[int]) -> list[_Level]:
    levels: list[_Level] = []
    previous: dict[tuple[int, ...], int] = {(): 0}
    depth = max(len(completions[c]) for c in members)
    for t in range(depth):
        index: dict[tuple[int, ...], int] = {}
        active, nodes, tokens = [], [], []
        for c in members:
            seq = completions[c]
            if len(seq) > t:
                key = tuple(seq[:t])
                nodes.append(index.setdefault(key, len(index)))
                active.append(c)
                tokens.append(seq[t])
        keys = list(index)
        levels.append(
            _Level(
                parents=torch.as_tensor([previous[k[:-1]] if k else 0 for k in keys], dtype=torch.long),
                last=torch.as_tensor([k[-1] if k else 0 for k in keys], dtype=torch.long),
                completions=np.asarray(active, dtype=np.int64),
                nodes=torch.as_tensor(nodes, dtype=torch.long),
                tokens=torch.as_tensor(tokens, dtype=torch.long),
            )
        )
        previous = index
    return levels


def score_completions(
    engine: Engine,
    batch: PromptBatch,
    completions: Sequence[Sequence[int]],
    params: SamplingParams,
    max_rows: int = 256,
    progress: Callable[[int], None] | None = None,
) -> Scores:
    """log P(completion | prompt) for every prompt of `batch` and every completion.

    Completions are sorted and cut into blocks of at most `max_rows`, so a step
    never computes more than `max_rows` rows; within a block, as many prompts
    as fit run together. `progress` is called with the (prompt, completion)
    pairs finished. An empty completion has log-probability 0.
    """
    chain = SamplerChain.from_params(params)
    k_total, n = len(batch.ids), len(completions)
    model = np.zeros((k_total, n))
    sampling = np.zeros((k_total, n))
    order = sorted((c for c in range(n) if len(completions[c])), key=lambda c: tuple(completions[c]))
    for start in range(0, len(order), max_rows):
        members = order[start : start + max_rows]
        levels = _levels(completions, members)
        width = max(len(level.parents) for level in levels)
        group = max(1, max_rows // width)
        for first in range(0, k_total, group):
            prompts = list(range(first, min(first + group, k_total)))
            _score_block(engine, batch, prompts, levels, chain, model, sampling)
            if progress is not None:
                progress(len(prompts) * len(members))
    return Scores(model, sampling)


def _score_block(
    engine: Engine,
    batch: PromptBatch,
    prompts: list[int],
    levels: list[_Level],
    chain: SamplerChain,
    model: np.ndarray,
    sampling: np.ndarray,
) -> None:
    g = len(prompts)
    state, history = batch.rows(engine, prompts)
    width_before = 1
    for t, level in enumerate(levels):
        width = len(level.parents)
        if t > 0:
            rows = (torch.arange(g).unsqueeze(1) * width_before + level.parents.unsqueeze(0)).reshape(-1)
            last = level.last.repeat(g)
            state = engine.extend(engine.select(state, rows), last)
            history = torch.cat([history[rows], last.unsqueeze(1)], dim=1)
        raw = engine.logits(state).float()
        rows = (torch.arange(g).unsqueeze(1) * width + level.nodes.unsqueeze(0)).reshape(-1)
        tokens = level.tokens.repeat(g)
        shape = (g, len(level.completions))
        target = (np.asarray(prompts)[:, None], level.completions[None, :])
        model_lp = logprobs_at(raw, rows, tokens).double()
        model[target] += model_lp.reshape(shape).numpy()
        # an empty chain (the default sampler) leaves the model's distribution as it is
        sampling_lp = logprobs_at(chain.distribution(raw, history), rows, tokens).double() if chain.stages else model_lp
        sampling[target] += sampling_lp.reshape(shape).numpy()
        width_before = width
