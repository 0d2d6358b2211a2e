"""Both samplers draw from the exact distribution that enumeration computes.

Each goodness-of-fit test rejects at alpha = 1e-3: with fixed seeds the outcome is
deterministic, and under a correct sampler a false alarm has probability 1e-3.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from tests.experiments.fake_models import flat_with_repeats, markov_chain, shallow_tree
from tokendice.analysis import goodness_of_fit
from tokendice.experiments.decoding.branching import BranchStats, branch_sample
from tokendice.experiments.decoding.decode import decode
from tokendice.experiments.decoding.enumerate import enumerate_completions
from tokendice.params import RandomSpec, SamplingParams

ALPHA = 1e-3
N = 4000
CASES = [
    (shallow_tree, SamplingParams(max_new_tokens=5)),
    (markov_chain, SamplingParams(max_new_tokens=4, temperature=0.8, top_p=0.9)),
    (flat_with_repeats, SamplingParams(max_new_tokens=4, repetition_penalty=1.4, no_repeat_ngram_size=2, top_k=4)),
]


def _exact(engine, params):
    r = enumerate_completions(engine, [1], params, mass=1.0, max_nodes=100_000, min_prob=1e-15)
    return r.distribution(), r.unexplored_mass


@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("method", ["independent", "branching"])
def test_sampler_matches_exact_enumeration(case, method):
    factory, params = CASES[case]
    expected, rest = _exact(factory(), params)
    if method == "independent":
        completions = decode(factory(), [1], params, RandomSpec(seed=2024 + case), range(N), batch_size=500)
    else:
        completions = branch_sample(factory(), [1], params, N, seed=2024 + case)
    observed = Counter(tuple(c.tokens) for c in completions)
    fit = goodness_of_fit(observed, expected, unexplored_mass=rest)
    assert not fit.impossible_observed
    assert fit.p_value > ALPHA, fit


def test_sample_i_is_the_same_alone_in_a_batch_and_in_another_order():
    params = SamplingParams(max_new_tokens=4, temperature=0.9)
    batch = decode(markov_chain(), [1], params, RandomSpec(5), range(50), batch_size=7)
    alone = decode(markov_chain(), [1], params, RandomSpec(5), [37], batch_size=1)[0]
    shuffled = decode(markov_chain(), [1], params, RandomSpec(5), list(reversed(range(50))), batch_size=16)
    assert alone.tokens == batch[37].tokens
    assert {c.sample_id: c.tokens for c in shuffled} == {c.sample_id: c.tokens for c in batch}


def test_branching_cost_grows_with_distinct_prefixes_not_n():
    params = SamplingParams(max_new_tokens=5)
    small, large = BranchStats(), BranchStats()
    branch_sample(shallow_tree(), [1], params, 100, seed=1, stats=small)
    engine = shallow_tree()
    branch_sample(engine, [1], params, 100_000, seed=1, stats=large)
    distinct_prefixes = 1 + 3 + 2 + 1  # root; a, b, c; aa, bc; aab
    assert large.forward_rows <= distinct_prefixes
    assert engine.forward_rows == large.forward_rows


def test_branching_is_deterministic_for_a_seed():
    params = SamplingParams(max_new_tokens=4, temperature=0.9)
    a = branch_sample(markov_chain(), [1], params, 500, seed=3)
    b = branch_sample(markov_chain(), [1], params, 500, seed=3)
    c = branch_sample(markov_chain(), [1], params, 500, seed=4)
    assert [x.tokens for x in a] == [x.tokens for x in b]
    assert [x.tokens for x in a] != [x.tokens for x in c]
    assert sorted(x.sample_id for x in a) == list(range(500))


def test_counts_split_exactly():
    out = branch_sample(shallow_tree(), [1], SamplingParams(max_new_tokens=5), 1234, seed=0)
    assert len(out) == 1234
    assert np.all([c.finish_reason in ("eos", "length") for c in out])
