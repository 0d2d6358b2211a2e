"""Wilson intervals checked against hand-computed values and scipy's own implementation."""

from __future__ import annotations

import math

import pytest
from scipy.stats import binomtest

from tokendice.analysis import Frequency, frequencies, wilson_interval
from tokendice.errors import ParameterError


def test_600_of_1000_matches_hand_computation() -> None:
    # z = 1.959964, z²/n = 0.0038415: centre = 0.6019207 / 1.0038415 = 0.5996173,
    # half = z / 1.0038415 · sqrt(0.24/1000 + z²/4e6) = 0.0303079.
    low, high = wilson_interval(600, 1000)
    assert low == pytest.approx(0.5693094, abs=1e-7)
    assert high == pytest.approx(0.6299252, abs=1e-7)


@pytest.mark.parametrize(
    ("successes", "n", "confidence"),
    [(600, 1000, 0.95), (3, 7, 0.9), (1, 2, 0.99), (17, 400, 0.95), (999, 1000, 0.8)],
)
def test_agrees_with_scipy(successes: int, n: int, confidence: float) -> None:
    ci = binomtest(successes, n).proportion_ci(confidence, method="wilson")
    low, high = wilson_interval(successes, n, confidence)
    assert low == pytest.approx(ci.low, abs=1e-12)
    assert high == pytest.approx(ci.high, abs=1e-12)


def test_edges_are_exact() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval(0, 10)
    assert low == 0.0
    # At 0 successes the upper bound is z²/(n + z²).
    z2 = 1.959963984540054**2
    assert high == pytest.approx(z2 / (10 + z2), abs=1e-12)
    low, high = wilson_interval(10, 10)
    assert (low, high) == (pytest.approx(10 / (10 + z2), abs=1e-12), 1.0)


def test_interval_contains_share_and_narrows_with_n() -> None:
    widths = []
    for n in (10, 100, 1000, 10000):
        low, high = wilson_interval(3 * n // 10, n)
        assert low < 0.3 < high
        widths.append(high - low)
    assert widths == sorted(widths, reverse=True)
    # Width shrinks like 1/sqrt(n).
    assert widths[2] / widths[3] == pytest.approx(math.sqrt(10), rel=0.01)


@pytest.mark.parametrize(
    ("successes", "n", "confidence"),
    [(-1, 10, 0.95), (11, 10, 0.95), (1, 10, 0.0), (1, 10, 1.0), (1.5, 10, 0.95), (True, 10, 0.95)],
)
def test_rejects_bad_input(successes: int, n: int, confidence: float) -> None:
    with pytest.raises(ParameterError):
        wilson_interval(successes, n, confidence)


def test_frequency_and_frequencies() -> None:
    f = Frequency.of(600, 1000)
    assert (f.count, f.n, f.share) == (600, 1000, 0.6)
    assert (f.low, f.high) == wilson_interval(600, 1000)
    table = frequencies({"b": 1, "a": 3, "c": 1})
    assert list(table) == ["a", "b", "c"]
    assert table["a"] == Frequency.of(3, 5)
    assert Frequency.of(0, 0) == Frequency(0, 0, 0.0, 0.0, 1.0)


def test_accepts_numpy_integers() -> None:
    import numpy as np

    assert wilson_interval(np.int64(600), np.int64(1000)) == wilson_interval(600, 1000)
