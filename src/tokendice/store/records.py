"""The rows the run store hands out: one sampled completion, one run."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from tokendice.errors import StoreError

RUN_STATUSES = ("running", "complete", "failed", "interrupted")
"""Every status a run can have; a new run starts as 'running'."""


@dataclass(frozen=True)
class SampleRecord:
    """One sampled completion with its per-step tokens and log-probabilities.

    `model_logprobs` are under the raw model distribution, `sampling_logprobs`
    under the distribution actually sampled from (after the sampler chain).
    """

    sample_id: int
    tokens: list[int]
    token_texts: list[str]
    text: str
    model_logprobs: list[float]
    sampling_logprobs: list[float]
    finish_reason: str
    prompt_index: int = 0

    def __post_init__(self) -> None:
        lengths = {
            "tokens": len(self.tokens),
            "token_texts": len(self.token_texts),
            "model_logprobs": len(self.model_logprobs),
            "sampling_logprobs": len(self.sampling_logprobs),
        }
        if len(set(lengths.values())) != 1:
            raise StoreError(f"sample {self.sample_id}: per-step lists differ in length {lengths}")

    @property
    def n_tokens(self) -> int:
        return len(self.tokens)

    @property
    def model_logprob(self) -> float:
        """Log-probability of the whole completion under the model."""
        return math.fsum(self.model_logprobs)

    @property
    def sampling_logprob(self) -> float:
        """Log-probability of the whole completion under the sampler."""
        return math.fsum(self.sampling_logprobs)


@dataclass(frozen=True)
class RunRecord:
    """One run: what was asked (manifest) and how far it got (status, n_samples)."""

    id: str
    kind: str
    created_at: str
    status: str
    prompt: str
    engine: str
    model: str
    manifest: dict[str, Any] = field(repr=False)
    n_requested: int | None
    n_samples: int
