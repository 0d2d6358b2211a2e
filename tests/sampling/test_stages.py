"""Each stage equals the transformers logits processor of the same name, bit for bit."""

from __future__ import annotations

import pytest
import torch
from transformers.generation import logits_process as lp

from tokendice.params import SamplingParams
from tokendice.sampling.chain import SamplerChain
from tokendice.sampling.stages import Greedy, MinP, NoRepeatNGram, RepetitionPenalty, Temperature, TopK, TopP

V = 300


def _logits(seed: int, rows: int = 6) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(rows, V, generator=g) * 3


def _history(seed: int, rows: int = 6, length: int = 12) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed + 1)
    return torch.randint(0, 20, (rows, length), generator=g)  # small alphabet: many repeats


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize(
    "ours,theirs",
    [
        (RepetitionPenalty(1.3), lp.RepetitionPenaltyLogitsProcessor(1.3)),
        (RepetitionPenalty(0.8), lp.RepetitionPenaltyLogitsProcessor(0.8)),
        (NoRepeatNGram(2), lp.NoRepeatNGramLogitsProcessor(2)),
        (NoRepeatNGram(3), lp.NoRepeatNGramLogitsProcessor(3)),
        (Temperature(0.7), lp.TemperatureLogitsWarper(0.7)),
        (TopK(50), lp.TopKLogitsWarper(50)),
        (TopP(0.9), lp.TopPLogitsWarper(0.9)),
        (TopP(0.3), lp.TopPLogitsWarper(0.3)),
        (MinP(0.1), lp.MinPLogitsWarper(0.1)),
    ],
    ids=lambda x: getattr(x, "label", type(x).__name__),
)
def test_stage_equals_transformers(ours, theirs, seed):
    logits, history = _logits(seed), _history(seed)
    assert torch.equal(ours(logits.clone(), history), theirs(history, logits.clone()))


def test_top_p_fast_path_after_top_k_equals_transformers():
    logits, history = _logits(9, rows=8), _history(9, rows=8)
    after_k = TopK(20)(logits, history)
    ours = TopP(0.85)(after_k, history)  # few finite entries: the top-k based path
    theirs = lp.TopPLogitsWarper(0.85)(history, after_k.clone())
    assert torch.equal(torch.isfinite(ours), torch.isfinite(theirs))
    assert torch.allclose(ours[torch.isfinite(ours)], theirs[torch.isfinite(theirs)])


def test_padding_is_ignored_by_penalties():
    logits = _logits(3, rows=1)
    history = torch.tensor([[-1, -1, 5, 6, 5]])
    unpadded = torch.tensor([[5, 6, 5]])
    for stage in (RepetitionPenalty(1.5), NoRepeatNGram(2)):
        assert torch.equal(stage(logits, history), stage(logits, unpadded))
    # with padding, the n-gram (5, 6) bans 6 after the trailing 5, and nothing else
    banned = torch.isinf(NoRepeatNGram(2)(logits, history))
    assert banned[0].nonzero().flatten().tolist() == [6]


def test_greedy_keeps_only_argmax():
    logits = _logits(4)
    out = Greedy()(logits, _history(4))
    assert torch.equal(out.argmax(-1), logits.argmax(-1))
    assert (torch.isfinite(out).sum(-1) == 1).all()


def test_chain_order_follows_transformers_and_llamacpp():
    p = SamplingParams(temperature=0.7, top_k=50, top_p=0.9, min_p=0.05, repetition_penalty=1.2, no_repeat_ngram_size=2)
    hf = [s.name for s in SamplerChain.from_params(p).stages]
    assert hf == ["repetition_penalty", "no_repeat_ngram_size", "temperature", "top_k", "top_p", "min_p"]
    llama = [s.name for s in SamplerChain.from_params(p.with_(order="llamacpp")).stages]
    assert llama == ["repetition_penalty", "no_repeat_ngram_size", "top_k", "top_p", "min_p", "temperature"]
    greedy = [s.name for s in SamplerChain.from_params(p.with_(temperature=0)).stages]
    assert greedy == ["repetition_penalty", "no_repeat_ngram_size", "greedy"]
    assert SamplerChain.from_params(SamplingParams()).stages == ()
