from __future__ import annotations

import math

import pytest

from tests.experiments.fake_models import flat_with_repeats, markov_chain, shallow_tree
from tokendice.errors import ParameterError
from tokendice.experiments.decoding.enumerate import enumerate_completions, next_token_distribution
from tokendice.params import SamplingParams


def test_exact_probabilities_of_a_known_tree():
    e = shallow_tree()
    result = enumerate_completions(e, [1], SamplingParams(max_new_tokens=5), mass=1.0)
    got = {c.text: c.prob for c in result.completions}
    expected = {"a<eos>": 0.25, "aab": 0.175 * 1.0, "aa<eos>": 0.075, "bc<eos>": 0.27, "b<eos>": 0.03, "c<eos>": 0.2}
    # "aab" continues: ("a","a","b") is not in the table, so it ends with <eos> at p=1
    expected["aab<eos>"] = expected.pop("aab")
    assert got == pytest.approx(expected, abs=1e-7)
    assert result.unexplored_mass == pytest.approx(0, abs=1e-9)


@pytest.mark.parametrize("engine_factory", [shallow_tree, markov_chain, flat_with_repeats])
@pytest.mark.parametrize(
    "params",
    [SamplingParams(max_new_tokens=4), SamplingParams(max_new_tokens=4, temperature=0.7, top_p=0.8), SamplingParams(max_new_tokens=5, repetition_penalty=1.5, top_k=3)],
)
def test_found_plus_unexplored_is_one(engine_factory, params):
    for mass, budget in ((1.0, 10_000), (0.9, 10_000), (1.0, 7)):
        r = enumerate_completions(engine_factory(), [1], params, mass=mass, max_nodes=budget, min_prob=1e-12)
        assert math.fsum([r.found_mass, r.frontier_mass, r.pruned_mass]) == pytest.approx(1.0, abs=1e-9)
        assert r.found_mass + r.unexplored_mass == pytest.approx(1.0, abs=1e-9)
        assert r.stopped_because


def test_budget_exhaustion_is_reported():
    r = enumerate_completions(markov_chain(), [1], SamplingParams(max_new_tokens=8), mass=0.999, max_nodes=5)
    assert r.expanded == 5 and "budget" in r.stopped_because and r.unexplored_mass > 0.1


def test_greedy_enumeration_is_one_path():
    r = enumerate_completions(markov_chain(), [1], SamplingParams(do_sample=False, max_new_tokens=6), mass=1.0)
    assert len(r.completions) == 1 and r.completions[0].prob == pytest.approx(1.0)


def test_next_token_distribution_applies_the_chain():
    sampling, model = next_token_distribution(shallow_tree(), [1], [], SamplingParams(top_k=2))
    assert sampling == pytest.approx({2: 0.625, 3: 0.375})
    assert model[4] == pytest.approx(0.2)


def test_bad_arguments():
    with pytest.raises(ParameterError):
        enumerate_completions(shallow_tree(), [1], SamplingParams(), mass=0)
    with pytest.raises(ParameterError):
        enumerate_completions(shallow_tree(), [1], SamplingParams(), max_nodes=0)
