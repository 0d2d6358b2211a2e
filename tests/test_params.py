from __future__ import annotations

import math

import pytest

from tokendice.errors import ParameterError
from tokendice.params import RandomSpec, SamplingParams


@pytest.mark.parametrize(
    "field,value",
    [
        ("temperature", -0.1),
        ("temperature", math.nan),
        ("top_p", 0.0),
        ("top_p", 1.5),
        ("top_k", -1),
        ("top_k", 2.5),
        ("min_p", 1.1),
        ("repetition_penalty", 0.0),
        ("no_repeat_ngram_size", -2),
        ("max_new_tokens", 0),
        ("order", "vllm"),
    ],
)
def test_bad_values_name_the_parameter(field, value):
    with pytest.raises(ParameterError, match=field):
        SamplingParams(**{field: value})


def test_greedy_and_round_trip():
    assert SamplingParams(temperature=0).greedy
    assert SamplingParams(do_sample=False).greedy
    p = SamplingParams(top_k=5, top_p=0.5)
    assert SamplingParams.from_dict(p.to_dict()) == p
    with pytest.raises(ParameterError, match="unknown"):
        SamplingParams.from_dict({"topk": 3})


def test_random_spec_validates():
    with pytest.raises(ParameterError, match="rng"):
        RandomSpec(0, "cuda")
    with pytest.raises(ParameterError, match="seed"):
        RandomSpec(-1)
