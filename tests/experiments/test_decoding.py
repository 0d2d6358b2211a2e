"""Samples of one prompt share the model's rows while their prefixes agree, and draw exactly
what they would draw alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.experiments.fake_models import flat_with_repeats, markov_chain, shallow_tree
from tokendice.experiments.decoding.decode import decode, decode_batch
from tokendice.params import RandomSpec, SamplingParams

PARAMS = [
    SamplingParams(max_new_tokens=6),
    SamplingParams(max_new_tokens=6, temperature=0.7, top_k=3, repetition_penalty=1.3, no_repeat_ngram_size=2),
    SamplingParams(max_new_tokens=6, top_p=0.8),
    SamplingParams(max_new_tokens=6, do_sample=False),
]


def _one_row_per_sample(engine, prompt, params, rng, ids):
    """The reference: every sample its own row from the start, never merged."""
    state = engine.prefill([prompt] * len(ids))
    history = torch.as_tensor([prompt] * len(ids), dtype=torch.long)
    return decode_batch(engine, state, history, ids, params, rng)


@pytest.mark.parametrize("make", [shallow_tree, markov_chain, flat_with_repeats])
@pytest.mark.parametrize("params", PARAMS, ids=lambda p: p.label() if hasattr(p, "label") else repr(p)[:40])
def test_shared_rows_give_the_samples_of_one_row_per_sample(make, params):
    engine = make()
    prompt = engine.tokenizer.encode("x")
    ids = np.arange(300, dtype=np.int64)
    shared = decode(engine, prompt, params, RandomSpec(9), ids, batch_size=300)
    alone = _one_row_per_sample(engine, prompt, params, RandomSpec(9), ids)
    assert [(c.tokens, c.finish_reason) for c in shared] == [(c.tokens, c.finish_reason) for c in alone]
    for a, b in zip(shared, alone):
        assert a.model_logprobs == pytest.approx(b.model_logprobs, abs=1e-6)
        assert a.sampling_logprobs == pytest.approx(b.sampling_logprobs, abs=1e-6)


def test_the_model_runs_once_per_distinct_prefix():
    engine = markov_chain()
    rows_per_step: list[int] = []
    extend = engine.extend

    def counting_extend(state, tokens):
        rows_per_step.append(state.batch_size)
        return extend(state, tokens)

    engine.extend = counting_extend  # type: ignore[method-assign]
    prompt = engine.tokenizer.encode("x")
    out = decode(engine, prompt, SamplingParams(max_new_tokens=4), RandomSpec(3), range(500), batch_size=500)
    for step, rows in enumerate(rows_per_step):
        live = {tuple(c.tokens[: step + 1]) for c in out if len(c.tokens) > step + 1}
        assert rows == len(live)  # one row per distinct prefix still decoding, not one per sample
    assert max(rows_per_step) < 100 < 500
