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


def _candidate_chains() -> list[SamplingParams]:
    base = SamplingParams(temperature=0.7, top_k=20, top_p=0.9, repetition_penalty=1.3, no_repeat_ngram_size=2)
    return [
        base,
        base.with_(repetition_penalty=0.8),  # a penalty that raises logits
        base.with_(top_p=1.0, min_p=0.05),
        base.with_(order="llamacpp"),
        base.with_(temperature=1.0, repetition_penalty=1.0, no_repeat_ngram_size=0),
    ]


@pytest.mark.parametrize("params", _candidate_chains(), ids=lambda p: f"{p.order}-rp{p.repetition_penalty}-minp{p.min_p}-t{p.temperature}")
@pytest.mark.parametrize("seed", range(4))
def test_restricted_candidates_equal_the_whole_vocabulary_chain(params, seed):
    chain = SamplerChain.from_params(params)
    logits, history = _logits(seed, rows=16), _history(seed, rows=16)
    history[:3, :4] = -1  # left padding
    dense = chain.process(logits, history)
    restricted = chain.candidates(logits, history)
    assert restricted.ids.shape[1] == params.top_k + 8  # the restricted path was taken
    assert (restricted.ids.diff(dim=1) > 0).all()  # ascending token ids
    assert torch.equal(restricted.logits, dense.gather(1, restricted.ids))
    outside = torch.ones_like(dense, dtype=torch.bool).scatter(1, restricted.ids, False)
    assert torch.isinf(dense[outside]).all()


def test_ties_beyond_the_margin_fall_back_to_the_whole_vocabulary():
    chain = SamplerChain.from_params(SamplingParams(top_k=5))
    logits = torch.zeros(2, V)
    logits[0, :3] = 5.0  # the 5th largest logit is tied with hundreds of others
    out = chain.candidates(logits, torch.zeros(2, 1, dtype=torch.long))
    assert out.ids.shape[1] == V
    assert torch.equal(out.logits, chain.process(logits, torch.zeros(2, 1, dtype=torch.long)))


def test_restricting_is_off_for_chains_without_top_k_and_on_request():
    history = _history(1)
    no_top_k = SamplerChain.from_params(SamplingParams(top_p=0.9))
    assert no_top_k.candidates(_logits(1), history).ids.shape[1] == V
    top_k = SamplerChain.from_params(SamplingParams(top_k=10))
    assert top_k.candidates(_logits(1), history, restrict=False).ids.shape[1] == V
