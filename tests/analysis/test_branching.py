"""First divergence and per-step token counts, checked by hand and by pairwise brute force."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest
import torch

from tokendice.analysis import ENDED, first_divergence, first_divergence_step, next_token_counts_after, step_token_distribution
from tokendice.errors import ParameterError


def test_first_divergence() -> None:
    assert first_divergence([1, 2, 3], [1, 2, 3]) is None
    assert first_divergence([1, 2, 3], [1, 5, 3]) == 1
    assert first_divergence([7], [8]) == 0
    assert first_divergence([1, 2], [1, 2, 3]) == 2  # one run stopped, the other went on
    assert first_divergence([1, 2, 3], [1, 2]) == 2
    assert first_divergence([], []) is None
    assert first_divergence([], [4]) == 0
    assert first_divergence(np.array([1, 2, 3]), torch.tensor([1, 2, 4])) == 2


def test_first_divergence_step() -> None:
    assert first_divergence_step([[1, 2, 3], [1, 2, 3], [1, 2, 3]]) is None
    assert first_divergence_step([[1, 2, 3], [1, 2, 3], [1, 2, 9]]) == 2
    assert first_divergence_step([[1, 2, 3], [1, 2]]) == 2
    assert first_divergence_step([[1, 2, 3]]) is None
    assert first_divergence_step([]) is None


def test_first_divergence_step_is_min_pairwise() -> None:
    rng = np.random.default_rng(5)
    for _ in range(300):
        # Shared prefix, then few symbols so that ties and prefixes are common.
        prefix = list(rng.integers(0, 3, size=rng.integers(0, 4)))
        sequences = [prefix + list(rng.integers(0, 2, size=rng.integers(0, 4))) for _ in range(rng.integers(2, 5))]
        pairwise = [first_divergence(a, b) for a, b in itertools.combinations(sequences, 2)]
        known = [d for d in pairwise if d is not None]
        assert first_divergence_step(sequences) == (min(known) if known else None)


SEQUENCES = [[5, 1, 2], [5, 1, 3], [5, 1], [5, 4, 2], [6], []]


def test_step_token_distribution() -> None:
    assert step_token_distribution(SEQUENCES, 0) == Counter({5: 4, 6: 1})
    assert step_token_distribution(SEQUENCES, 1) == Counter({1: 3, 4: 1})
    assert step_token_distribution(SEQUENCES, 2) == Counter({2: 2, 3: 1})
    assert step_token_distribution(SEQUENCES, 3) == Counter()
    with pytest.raises(ParameterError):
        step_token_distribution(SEQUENCES, -1)


def test_next_token_counts_after() -> None:
    assert next_token_counts_after(SEQUENCES, [5, 1]) == Counter({2: 1, 3: 1, ENDED: 1})
    assert next_token_counts_after(SEQUENCES, [5]) == Counter({1: 3, 4: 1})
    assert next_token_counts_after(SEQUENCES, [6]) == Counter({ENDED: 1})
    assert next_token_counts_after(SEQUENCES, []) == Counter({5: 4, 6: 1, ENDED: 1})
    assert next_token_counts_after(SEQUENCES, [9]) == Counter()
    tensors = [torch.tensor(s, dtype=torch.long) for s in SEQUENCES]
    assert next_token_counts_after(tensors, torch.tensor([5, 1])) == Counter({2: 1, 3: 1, ENDED: 1})
