"""Deterministic SampleRecords for the store tests."""

from __future__ import annotations

from tokendice.store import SampleRecord


def make_sample(sample_id: int, n_steps: int = 3, prompt_index: int = 0) -> SampleRecord:
    """A deterministic sample whose values depend on its ids."""
    tokens = [(sample_id * 7 + i) % 50 for i in range(n_steps)]
    return SampleRecord(
        sample_id=sample_id,
        tokens=tokens,
        token_texts=[f"t{t}" if t % 5 else f'q"{t},\n' for t in tokens],
        text="".join(f"t{t}" for t in tokens),
        model_logprobs=[-0.1 * (i + 1) - 0.01 * sample_id for i in range(n_steps)],
        sampling_logprobs=[-0.05 * (i + 1) for i in range(n_steps)],
        finish_reason="length" if n_steps % 2 else "stop",
        prompt_index=prompt_index,
    )
