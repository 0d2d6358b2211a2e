"""Parity with transformers' `generate`: same seed, same tokens; same log-probabilities.

With `--rng torch` and `torch.manual_seed(s)`, tokendice's own decode loop and
sampler chain must reproduce `model.generate(do_sample=True, ...)` exactly.
"""

from __future__ import annotations

import pytest
import torch

from tokendice.experiments.decoding.decode import decode
from tokendice.params import RandomSpec, SamplingParams

pytestmark = pytest.mark.model

PROMPTS = ["The capital of France is", "def fibonacci(n):"]
CASES = {
    "notebook": (SamplingParams(temperature=0.7, top_p=0.9, top_k=50, repetition_penalty=1.2, no_repeat_ngram_size=2), 42),
    "greedy": (SamplingParams(do_sample=False), 0),
    "greedy-penalised": (SamplingParams(do_sample=False, repetition_penalty=1.3, no_repeat_ngram_size=3), 0),
    "pure-sampling": (SamplingParams(), 11),
    "hot-top-k": (SamplingParams(temperature=1.3, top_k=10), 1),
    "top-p": (SamplingParams(top_p=0.8), 7),
    "min-p": (SamplingParams(temperature=0.9, min_p=0.1), 3),
}


def _generate(engine, ids, params: SamplingParams, seed: int):
    torch.manual_seed(seed)
    inp = torch.tensor([ids])
    out = engine.model.generate(
        inp,
        attention_mask=torch.ones_like(inp),
        do_sample=not params.greedy,
        temperature=params.temperature if not params.greedy else None,
        top_k=params.top_k if not params.greedy else None,
        top_p=params.top_p if not params.greedy else None,
        min_p=params.min_p if params.min_p > 0 else None,
        repetition_penalty=params.repetition_penalty,
        no_repeat_ngram_size=params.no_repeat_ngram_size,
        max_new_tokens=params.max_new_tokens,
        eos_token_id=list(engine.tokenizer.eos_token_ids),
        pad_token_id=engine.pad_id,
        return_dict_in_generate=True,
        output_scores=True,
        output_logits=True,
    )
    tokens = out.sequences[0, len(ids) :].tolist()
    # float64 log-softmax as the reference: float32's own rounding is near 1e-5 on this vocabulary
    sampling = [torch.log_softmax(s.double(), -1)[0, t].item() for s, t in zip(out.scores, tokens)]
    model = [torch.log_softmax(s.double(), -1)[0, t].item() for s, t in zip(out.logits, tokens)]
    return tokens, sampling, model


@pytest.mark.parametrize("prompt", PROMPTS)
@pytest.mark.parametrize("case", list(CASES))
def test_same_tokens_and_logprobs_as_generate(hf_engine, case, prompt):
    params, seed = CASES[case]
    ids = hf_engine.tokenizer.encode(prompt)
    expected_tokens, expected_sampling, expected_model = _generate(hf_engine, ids, params, seed)
    torch.manual_seed(seed)
    got = decode(hf_engine, ids, params, RandomSpec(seed, "torch"), [0])[0]
    assert got.tokens == expected_tokens
    assert got.sampling_logprobs == pytest.approx(expected_sampling, abs=1e-5)
    assert got.model_logprobs == pytest.approx(expected_model, abs=1e-5)
