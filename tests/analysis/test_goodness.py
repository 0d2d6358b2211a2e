"""Goodness of fit: exact statistics, pooling rules, and the false-alarm rate under H0.

The Monte-Carlo tests use fixed seeds, so they are deterministic; their stated
tolerance is what a correct test would satisfy for most seeds (400 datasets:
the share of p < 0.05 has standard deviation about 0.011 around 0.05).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import chi2, power_divergence

from tokendice.analysis import OTHER, goodness_of_fit
from tokendice.errors import ParameterError


def test_g_statistic_by_hand() -> None:
    # G = 2 (30 ln(30/25) + 20 ln(20/25)) = 2 (5.469647 - 4.462871) = 2.013551, 1 dof.
    result = goodness_of_fit({"a": 30, "b": 20}, {"a": 0.5, "b": 0.5})
    assert result.statistic == pytest.approx(2.0135514, abs=1e-7)
    assert result.dof == 1
    assert result.p_value == pytest.approx(0.1559000, abs=1e-7)
    assert (result.n, result.categories, result.method) == (50, 2, "g")
    assert not result.impossible_observed
    assert not result.rejects(0.05)


def test_pearson_statistic_by_hand() -> None:
    # (30-25)²/25 + (20-25)²/25 = 2; P(chi2_1 > 2) = 0.157299.
    result = goodness_of_fit({"a": 30, "b": 20}, {"a": 0.5, "b": 0.5}, method="chi2")
    assert result.statistic == pytest.approx(2.0)
    assert result.p_value == pytest.approx(0.1572992, abs=1e-7)


def test_matches_scipy_power_divergence() -> None:
    probs = {"x": 0.2, "y": 0.3, "z": 0.5}
    observed = {"x": 25, "y": 35, "z": 40}
    expected = [20.0, 30.0, 50.0]
    for method, lambda_ in (("g", "log-likelihood"), ("chi2", "pearson")):
        result = goodness_of_fit(observed, probs, method=method)
        reference = power_divergence([25, 35, 40], expected, lambda_=lambda_)
        assert result.statistic == pytest.approx(reference.statistic, rel=1e-12)
        assert result.p_value == pytest.approx(reference.pvalue, rel=1e-10)
        assert result.dof == 2


def test_rare_categories_and_unexplored_mass_are_pooled() -> None:
    # n = 100: c (2) and d (1) expect < 5 and join the unexplored mass (3) -> other expects 6.
    probs = {"a": 0.6, "b": 0.34, "c": 0.02, "d": 0.01}
    observed = {"a": 55, "b": 36, "c": 3, "d": 0, "new": 6}
    result = goodness_of_fit(observed, probs, unexplored_mass=0.03)
    assert result.pooled == ("c", "d")
    assert result.unlisted == ("new",)
    assert result.merged_into is None
    assert result.cells == (("a", 55, pytest.approx(60.0)), ("b", 36, pytest.approx(34.0)), (OTHER, 9, pytest.approx(6.0)))
    g = 2 * (55 * math.log(55 / 60) + 36 * math.log(36 / 34) + 9 * math.log(9 / 6))
    assert result.statistic == pytest.approx(g)
    assert result.dof == 2
    assert result.p_value == pytest.approx(chi2.sf(g, 2))


def test_small_pool_is_merged_into_smallest_category() -> None:
    # n = 100: pool = c (2) + unexplored (1) expects 3 < 5 -> merged into b (30), the smallest kept.
    probs = {"a": 0.67, "b": 0.30, "c": 0.02}
    observed = {"a": 64, "b": 31, "c": 4, "zzz": 1}
    result = goodness_of_fit(observed, probs, unexplored_mass=0.01)
    assert result.pooled == ("c",)
    assert result.merged_into == "b"
    assert result.cells == (("a", 64, pytest.approx(67.0)), ("b", 36, pytest.approx(33.0)))
    assert result.categories == 2 and result.dof == 1


def test_everything_pooled_leaves_nothing_to_test() -> None:
    result = goodness_of_fit({"a": 2, "b": 1}, {"a": 0.5, "b": 0.5})
    assert (result.categories, result.dof, result.statistic, result.p_value) == (1, 0, 0.0, 1.0)
    empty = goodness_of_fit({}, {"a": 0.5, "b": 0.5})
    assert (empty.n, empty.p_value) == (0, 1.0)


def test_impossible_observation_gives_p_zero() -> None:
    result = goodness_of_fit({"a": 50, "b": 49, "c": 1}, {"a": 0.5, "b": 0.5, "c": 0.0})
    assert result.impossible_observed and result.impossible == ("c",)
    assert result.p_value == 0.0 and result.statistic == math.inf
    assert result.rejects(1e-12)
    # An unlisted key is impossible only when nothing is left unexplored.
    unlisted = goodness_of_fit({"a": 50, "b": 49, "new": 1}, {"a": 0.5, "b": 0.5})
    assert unlisted.impossible == ("new",) and unlisted.p_value == 0.0
    allowed = goodness_of_fit({"a": 50, "b": 49, "new": 1}, {"a": 0.49, "b": 0.49}, unexplored_mass=0.02)
    assert not allowed.impossible_observed and allowed.p_value > 0.05


def test_zero_probability_key_not_observed_is_ignored() -> None:
    result = goodness_of_fit({"a": 30, "b": 20}, {"a": 0.5, "b": 0.5, "c": 0.0})
    assert result.pooled == () and result.categories == 2
    assert result.statistic == pytest.approx(2.0135514, abs=1e-7)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"observed": {"a": -1}, "expected_probs": {"a": 1.0}},
        {"observed": {"a": 1.5}, "expected_probs": {"a": 1.0}},
        {"observed": {"a": 1}, "expected_probs": {"a": 0.5}},
        {"observed": {"a": 1}, "expected_probs": {"a": 1.2}},
        {"observed": {"a": 1}, "expected_probs": {"a": 1.0}, "method": "ks"},
        {"observed": {"a": 1}, "expected_probs": {"a": 1.0}, "min_expected": -1},
        {"observed": {"a": 1}, "expected_probs": {"a": 0.5}, "unexplored_mass": 1.5},
    ],
)
def test_rejects_bad_input(kwargs: dict) -> None:
    with pytest.raises(ParameterError):
        goodness_of_fit(**kwargs)


def _simulate_p_values(
    probs: dict[str, float], unexplored: float, n: int, datasets: int, seed: int, method: str
) -> np.ndarray:
    rng = np.random.default_rng(seed)
    keys = list(probs)
    weights = np.array([*probs.values(), unexplored])
    p_values = []
    for counts in rng.multinomial(n, weights, size=datasets):
        observed = {k: int(c) for k, c in zip(keys, counts[:-1])}
        # Unexplored mass lands on completions nobody listed.
        observed.update({f"unseen{i}": 1 for i in range(int(counts[-1]))})
        result = goodness_of_fit(observed, probs, unexplored_mass=unexplored, method=method)  # type: ignore[arg-type]
        p_values.append(result.p_value)
    return np.array(p_values)


@pytest.mark.parametrize("method", ["g", "chi2"])
def test_false_alarm_rate_under_h0_is_about_alpha(method: str) -> None:
    # Probabilities spanning pooled, merged and kept categories.
    probs = {"a": 0.45, "b": 0.25, "c": 0.15, "d": 0.08, "e": 0.03, "f": 0.01, "g": 0.005}
    p_values = _simulate_p_values(probs, 0.025, n=300, datasets=400, seed=20240601, method=method)
    assert 0.02 <= np.mean(p_values < 0.05) <= 0.09
    assert 0.0 <= np.mean(p_values < 0.01) <= 0.035
    # Roughly uniform overall: each decile holds about 40 of the 400.
    deciles = np.histogram(p_values, bins=10, range=(0, 1))[0]
    assert deciles.min() >= 20 and deciles.max() <= 62


def test_detects_a_wrong_distribution() -> None:
    truth = {"a": 0.5, "b": 0.3, "c": 0.2}
    claimed = {"a": 0.45, "b": 0.35, "c": 0.2}
    rng = np.random.default_rng(7)
    rejections = 0
    for counts in rng.multinomial(2000, list(truth.values()), size=100):
        result = goodness_of_fit(dict(zip(truth, map(int, counts))), claimed)
        rejections += result.rejects(0.01)
    assert rejections >= 90


def test_accepts_numpy_scalars() -> None:
    observed = {"a": np.int64(30), "b": np.int64(20)}
    probs = {"a": np.float32(0.5), "b": np.float32(0.5)}
    result = goodness_of_fit(observed, probs)
    assert result.statistic == pytest.approx(2.0135514, abs=1e-7)
    assert all(type(count) is int for _, count, _ in result.cells)
