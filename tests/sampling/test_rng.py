from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from tokendice.sampling.rng import draw, inverse_cdf, uniforms


def test_uniforms_depend_only_on_seed_sample_and_step():
    alone = uniforms(7, np.array([42]), 3)
    in_batch = uniforms(7, np.arange(100), 3)
    assert alone[0] == in_batch[42]
    assert uniforms(8, np.array([42]), 3)[0] != alone[0]
    assert uniforms(7, np.array([42]), 4)[0] != alone[0]
    u = uniforms(0, np.arange(10_000), 0)
    assert u.min() >= 0 and u.max() < 1


def test_inverse_cdf_never_picks_a_zero_probability_token():
    probs = torch.tensor([[0.0, 0.5, 0.0, 0.5, 0.0]] * 3, dtype=torch.float32)
    idx = inverse_cdf(probs, np.array([0.0, 0.4999999, 0.999999999999]))
    assert idx.tolist() == [1, 1, 3]


def test_per_sample_draws_follow_the_distribution():
    # 20,000 draws from a known distribution: chi-square at alpha = 1e-3 (false alarm 0.1%).
    p = torch.tensor([0.5, 0.3, 0.15, 0.05])
    n = 20_000
    logits = torch.log(p).repeat(n, 1)
    chosen = draw(logits, greedy=False, mode="per-sample", seed=123, sample_ids=np.arange(n), step=0)
    counts = np.bincount(chosen.numpy(), minlength=4)
    assert stats.chisquare(counts, p.numpy() * n).pvalue > 1e-3


@pytest.mark.parametrize("mode", ["per-sample", "torch"])
def test_greedy_ignores_randomness(mode):
    logits = torch.tensor([[0.1, 2.0, 1.9]])
    assert draw(logits, greedy=True, mode=mode, seed=1, sample_ids=np.array([0])).tolist() == [1]


def test_sparse_and_dense_inverse_cdf_agree_bit_for_bit():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 1000, generator=g)
    logits[:, 40:] = float("-inf")  # 40 tokens with mass: the sparse path
    probs = torch.softmax(logits, -1)
    u = uniforms(3, np.arange(64), 0)
    from tokendice.sampling.rng import _inverse_cdf_dense

    assert torch.equal(inverse_cdf(probs, u), _inverse_cdf_dense(probs, u))
    shuffled = torch.randperm(1000, generator=g)  # mass spread over arbitrary token ids
    assert torch.equal(inverse_cdf(probs[:, shuffled], u), _inverse_cdf_dense(probs[:, shuffled], u))


def test_per_sample_draws_are_the_same_over_candidates_or_the_whole_vocabulary():
    from tokendice.params import SamplingParams
    from tokendice.sampling.chain import SamplerChain

    g = torch.Generator().manual_seed(5)
    logits = torch.randn(500, 2000, generator=g) * 4
    history = torch.randint(0, 2000, (500, 9), generator=g)
    chain = SamplerChain.from_params(SamplingParams(temperature=0.8, top_k=40, top_p=0.95, repetition_penalty=1.2))
    dense = chain.candidates(logits, history, restrict=False)
    restricted = chain.candidates(logits, history)
    assert restricted.ids.shape[1] < dense.ids.shape[1]
    for step in range(3):
        a = dense.ids[torch.arange(500), draw(dense.logits, False, "per-sample", 11, np.arange(500), step)]
        b = restricted.ids[torch.arange(500), draw(restricted.logits, False, "per-sample", 11, np.arange(500), step)]
        assert torch.equal(a, b)
