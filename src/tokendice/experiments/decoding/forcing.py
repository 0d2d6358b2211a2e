"""Teacher forcing: the model's distributions along a given continuation, not a sampled one."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from tokendice.engines.base import Engine


def forced_logprobs(engine: Engine, prompts: Sequence[Sequence[int]], row: int, tokens: Sequence[int]) -> np.ndarray:
    """Model log-probabilities (float64, [len(tokens), vocab]) of batch row `row` before each of
    `tokens`, every row of the batch being fed `tokens` one by one (prompts left-padded together,
    so the row shares every kernel call with the others, as in a batch of requests)."""
    state = engine.prefill([list(p) for p in prompts])
    out = []
    for t, token in enumerate(tokens):
        out.append(torch.log_softmax(engine.logits(state)[row].double(), dim=-1).numpy())
        if t + 1 < len(tokens):
            state = engine.extend(state, torch.full((state.batch_size,), int(token), dtype=torch.long))
    return np.stack(out) if out else np.zeros((0, engine.tokenizer.vocab_size))
