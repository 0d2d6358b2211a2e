"""Divergences, entropy and total-variation bounds, by hand and by brute force."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy.optimize import linprog
from scipy.stats import entropy as scipy_entropy

from tokendice.analysis import TVBound, entropy, js_divergence, kl_divergence, total_variation, total_variation_bounds
from tokendice.errors import ParameterError

LN2 = math.log(2)


def test_kl_by_hand() -> None:
    # 0.5 ln(0.5/0.25) + 0.5 ln(0.5/0.75) = 0.5 ln 2 + 0.5 ln(2/3) = 0.5 ln(4/3).
    assert kl_divergence({"a": 0.5, "b": 0.5}, {"a": 0.25, "b": 0.75}) == pytest.approx(0.5 * math.log(4 / 3))
    assert kl_divergence([0.5, 0.5], [0.25, 0.75], base=2) == pytest.approx(0.5 * math.log2(4 / 3))


def test_kl_infinite_where_q_misses_mass_of_p() -> None:
    assert kl_divergence({"a": 0.5, "b": 0.5}, {"a": 1.0}) == math.inf
    # The reverse is finite: p = 0 terms contribute nothing.
    assert kl_divergence({"a": 1.0}, {"a": 0.5, "b": 0.5}) == pytest.approx(math.log(2))


def test_js_by_hand_and_range() -> None:
    # Disjoint supports: JS = ln 2 exactly (1 bit).
    assert js_divergence({"a": 1.0}, {"b": 1.0}) == pytest.approx(LN2)
    assert js_divergence({"a": 1.0}, {"b": 1.0}, base=2) == pytest.approx(1.0)
    assert js_divergence({"a": 0.3, "b": 0.7}, {"a": 0.3, "b": 0.7}) == 0.0
    # p = (1, 0), q = (½, ½), m = (¾, ¼): KL(p||m) = ln(4/3), KL(q||m) = ½ ln(2/3) + ½ ln 2 = ½ ln(4/3),
    # so JS = ½ (ln(4/3) + ½ ln(4/3)) = ¾ ln(4/3).
    assert js_divergence([1.0, 0.0], [0.5, 0.5]) == pytest.approx(0.75 * math.log(4 / 3))
    rng = np.random.default_rng(3)
    for _ in range(50):
        p, q = rng.dirichlet(np.full(6, 0.3), size=2)
        js = js_divergence(p, q)
        assert 0.0 <= js <= LN2
        assert js == pytest.approx(js_divergence(q, p))


def test_total_variation_and_entropy_by_hand() -> None:
    assert total_variation({"a": 0.5, "b": 0.5}, {"a": 0.2, "c": 0.8}) == pytest.approx(0.8)
    assert total_variation([0.1, 0.9], [0.1, 0.9]) == 0.0
    assert entropy({"a": 0.5, "b": 0.25, "c": 0.25}) == pytest.approx(1.5 * LN2)
    assert entropy([0.5, 0.25, 0.25], base=2) == pytest.approx(1.5)
    assert entropy([1.0, 0.0]) == 0.0


def test_agrees_with_scipy_and_accepts_torch_and_batches() -> None:
    rng = np.random.default_rng(11)
    p, q = rng.dirichlet(np.ones(50), size=2)
    assert kl_divergence(p, q) == pytest.approx(scipy_entropy(p, q))
    assert entropy(p) == pytest.approx(scipy_entropy(p))
    tp, tq = torch.tensor(p, dtype=torch.float32), torch.tensor(q, dtype=torch.float32)
    assert kl_divergence(tp, tq) == pytest.approx(scipy_entropy(p, q), rel=1e-5)
    assert isinstance(kl_divergence(tp, tq), float)
    batch_p, batch_q = rng.dirichlet(np.ones(8), size=(2, 3))
    tv = total_variation(batch_p, batch_q)
    assert isinstance(tv, np.ndarray) and tv.shape == (3,)
    for row in range(3):
        assert tv[row] == pytest.approx(total_variation(batch_p[row], batch_q[row]))
        assert js_divergence(batch_p, batch_q)[row] == pytest.approx(js_divergence(batch_p[row], batch_q[row]))
        assert entropy(batch_p)[row] == pytest.approx(entropy(batch_p[row]))


def test_rejects_bad_input() -> None:
    with pytest.raises(ParameterError):
        kl_divergence([0.5, 0.5], [1.0])
    with pytest.raises(ParameterError):
        total_variation({"a": 1.0}, [1.0])
    with pytest.raises(ParameterError):
        entropy([-0.1, 1.1])
    with pytest.raises(ParameterError):
        entropy([0.5, 0.5], base=1)
    with pytest.raises(ParameterError):
        total_variation_bounds({"a": 0.5}, {"a": 0.5}, rest_p=-0.1)


def test_tv_bounds_by_hand() -> None:
    # Same known part, same rest: the rests may coincide (TV 0) or not overlap at all (TV 0.5).
    assert total_variation_bounds({"a": 0.5}, {"a": 0.5}) == TVBound(0.0, 0.5)
    # Each side's rest can fill the key only the other side lists:
    # P = (a .6, b .4), Q = (a .4, b .6) is the closest completion, TV 0.2.
    bound = total_variation_bounds({"a": 0.6}, {"b": 0.6})
    assert bound.low == pytest.approx(0.2) and bound.high == pytest.approx(1.0)
    # Nothing unexplored: the bounds collapse to the exact value.
    exact = total_variation_bounds({"a": 0.3, "b": 0.7}, {"a": 0.6, "c": 0.4})
    assert exact.low == pytest.approx(0.7) and exact.high == pytest.approx(0.7)
    assert exact.width == pytest.approx(0.0)
    assert 0.7 in exact


def _random_completion(
    known: dict[str, float], rest: float, open_keys: list[str], rng: np.random.Generator
) -> dict[str, float]:
    """Spread `rest` over `open_keys` at random, sometimes piling it on one key."""
    full = dict(known)
    if rng.random() < 0.3:
        weights = np.zeros(len(open_keys))
        weights[rng.integers(len(open_keys))] = 1.0
    else:
        weights = rng.dirichlet(np.full(len(open_keys), rng.choice([0.1, 1.0, 10.0])))
    for key, w in zip(open_keys, weights):
        full[key] = full.get(key, 0.0) + rest * w
    return full


def _tv(p: dict[str, float], q: dict[str, float]) -> float:
    return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in set(p) | set(q))


def _exact_bounds(
    p: dict[str, float], q: dict[str, float], rp: float, rq: float, fresh: list[str]
) -> tuple[float, float]:
    """Brute force over every completion on a finite universe (listed keys plus `fresh`).

    max TV: TV is convex in the allocations, so its maximum is at a vertex, where
    each rest sits on a single key: enumerate all pairs. min TV: a linear program
    maximising Σ t_k with t_k <= P_k, t_k <= Q_k.
    """
    universe = sorted(set(p) | set(q)) + fresh
    open_p = [k for k in universe if k not in p]
    open_q = [k for k in universe if k not in q]
    high = max(
        _tv({**p, kp: rp + p.get(kp, 0.0)}, {**q, kq: rq + q.get(kq, 0.0)})
        for kp, kq in itertools.product(open_p, open_q)
    )
    # Variables: x (P's rest on open_p), y (Q's rest on open_q), t (overlap per key).
    nx, ny, nk = len(open_p), len(open_q), len(universe)
    c = np.concatenate([np.zeros(nx + ny), -np.ones(nk)])
    a_ub, b_ub = [], []
    for i, key in enumerate(universe):
        for side, opened, offset in ((p, open_p, 0), (q, open_q, nx)):
            row = np.zeros(nx + ny + nk)
            row[nx + ny + i] = 1.0
            if key in opened:
                row[offset + opened.index(key)] = -1.0
            a_ub.append(row)
            b_ub.append(side.get(key, 0.0))
    a_eq = np.zeros((2, nx + ny + nk))
    a_eq[0, :nx] = 1.0
    a_eq[1, nx : nx + ny] = 1.0
    solution = linprog(c, A_ub=np.array(a_ub), b_ub=b_ub, A_eq=a_eq, b_eq=[rp, rq], bounds=(0, None))
    assert solution.success
    half_mass = (sum(p.values()) + rp + sum(q.values()) + rq) / 2
    return half_mass + solution.fun, high


def test_tv_bounds_against_brute_force() -> None:
    rng = np.random.default_rng(2024)
    keys = ["a", "b", "c", "d", "e"]
    fresh = ["new1", "new2"]
    for _ in range(60):
        # Random listed keys per side, then a random split between listed and unexplored.
        p_keys = [k for k in keys if rng.random() < 0.6] or ["a"]
        q_keys = [k for k in keys if rng.random() < 0.6] or ["b"]
        p_full = rng.dirichlet(np.ones(len(p_keys) + 1))
        q_full = rng.dirichlet(np.ones(len(q_keys) + 1))
        p = dict(zip(p_keys, p_full[:-1]))
        q = dict(zip(q_keys, q_full[:-1]))
        rp, rq = float(p_full[-1]), float(q_full[-1])
        bound = total_variation_bounds(p, q, rp, rq)
        low, high = _exact_bounds(p, q, rp, rq, fresh)
        assert bound.low == pytest.approx(low, abs=1e-9)
        assert bound.high == pytest.approx(high, abs=1e-9)
        universe = sorted(set(p) | set(q)) + fresh
        for _ in range(30):
            full_p = _random_completion(p, rp, [k for k in universe if k not in p], rng)
            full_q = _random_completion(q, rq, [k for k in universe if k not in q], rng)
            tv = _tv(full_p, full_q)
            assert bound.low - 1e-12 <= tv <= bound.high + 1e-12


def test_tv_bounds_default_rest_is_the_missing_mass() -> None:
    explicit = total_variation_bounds({"a": 0.7, "b": 0.1}, {"a": 0.5}, rest_p=0.2, rest_q=0.5)
    assert total_variation_bounds({"a": 0.7, "b": 0.1}, {"a": 0.5}) == explicit
