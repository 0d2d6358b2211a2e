"""Distances between probability distributions, and entropy.

Used to say how far apart two distributions are: one model's next-token
distribution on two engines, the sampled and the exact completion
distribution, the answers before and after a prompt perturbation.

Every function takes either two mappings key -> probability (a missing key
has probability 0; the union of keys is used) or two array-likes of the same
shape (numpy, torch, lists), reduced over the last axis: a 1-D pair gives a
float, a [batch, vocab] pair gives one value per row as a numpy array.
Inputs are taken as given, not renormalised. Logarithms are natural (nats)
unless `base` is given.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from numbers import Real
from typing import Any, Union

import numpy as np

from tokendice.errors import ParameterError

Distribution = Union[Mapping[Hashable, float], Any]
"""A mapping key -> probability, or an array-like of probabilities (numpy, torch, list)."""


def kl_divergence(p: Distribution, q: Distribution, base: float = math.e) -> float | np.ndarray:
    """Kullback-Leibler divergence KL(p || q) = Σ p ln(p/q); inf where p > 0 and q = 0.

    Not symmetric: it is the cost of using q where p is the truth.
    """
    a, b = _pair(p, q)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(a > 0, a * (np.log(a) - np.log(b)), 0.0)
    return _result(terms.sum(axis=-1) / _log_base(base))


def js_divergence(p: Distribution, q: Distribution, base: float = math.e) -> float | np.ndarray:
    """Jensen-Shannon divergence: mean KL of p and q to their mixture m = (p + q)/2.

    Symmetric, always finite, in [0, ln 2] nats ([0, 1] with base=2).
    """
    a, b = _pair(p, q)
    m = (a + b) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.where(a > 0, a * (np.log(a) - np.log(m)), 0.0)
        right = np.where(b > 0, b * (np.log(b) - np.log(m)), 0.0)
    js = (left + right).sum(axis=-1) / 2
    # Rounding can leave -1e-17 for identical inputs; the true value is >= 0.
    return _result(np.maximum(js, 0.0) / _log_base(base))


def total_variation(p: Distribution, q: Distribution) -> float | np.ndarray:
    """Total variation distance 0.5 Σ |p - q|: the largest difference in probability of any event."""
    a, b = _pair(p, q)
    return _result(0.5 * np.abs(a - b).sum(axis=-1))


def entropy(p: Distribution, base: float = math.e) -> float | np.ndarray:
    """Shannon entropy -Σ p ln p, in nats (bits with base=2)."""
    a = _array(p)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(a > 0, -a * np.log(a), 0.0)
    return _result(terms.sum(axis=-1) / _log_base(base))


@dataclass(frozen=True)
class TVBound:
    """Total variation known only to lie in [low, high] (part of both distributions is unexplored)."""

    low: float
    high: float

    @property
    def width(self) -> float:
        return self.high - self.low

    def __contains__(self, value: float) -> bool:
        return self.low <= value <= self.high


def total_variation_bounds(
    p: Mapping[Hashable, float],
    q: Mapping[Hashable, float],
    rest_p: float | None = None,
    rest_q: float | None = None,
) -> TVBound:
    """Bounds on the total variation between two partly enumerated distributions.

    P is known exactly on the keys of `p` and puts its remaining mass `rest_p`
    (default 1 - Σp) somewhere outside them, in an unknown way; likewise Q.
    Derivation, with TV = ½(M_P + M_Q) - Σ_k min(P_k, Q_k) (|x-y| = x + y - 2min(x, y),
    M = total mass, normally 1): only the overlap Σ min is unknown. Split keys into
    A∩B (both known), A\\B (P known, Q's rest may land there), B\\A (the reverse)
    and U (neither listed).

    - high: the rests can go to completions neither side lists, each to its
      own, and overlap nothing, so the overlap is the known Σ_{A∩B} min(p, q).
    - low: the overlap is largest when Q's rest first covers P's mass on A\\B
      (u = min(Σ_{A\\B} p, rest_q)), P's rest covers Q's mass on B\\A
      (v = min(Σ_{B\\A} q, rest_p)), and what is left of the two rests meets on
      the same unlisted keys (min(rest_q - u, rest_p - v)). Each unit of rest
      adds at most one unit of overlap wherever it goes, so covering first
      never loses: this greedy allocation is optimal.

    The high bound assumes the set of possible completions is larger than
    what is listed, which holds for generated text.
    """
    rp = _rest(p, rest_p, "rest_p")
    rq = _rest(q, rest_q, "rest_q")
    _check_mapping(p)
    _check_mapping(q)
    both = [k for k in p if k in q]
    known_overlap = math.fsum(min(p[k], q[k]) for k in both)
    only_p = math.fsum(v for k, v in p.items() if k not in q)
    only_q = math.fsum(v for k, v in q.items() if k not in p)
    half_mass = (math.fsum(p.values()) + rp + math.fsum(q.values()) + rq) / 2
    u = min(only_p, rq)
    v = min(only_q, rp)
    max_overlap = known_overlap + u + v + min(rq - u, rp - v)
    # Clamp rounding crumbs, keeping low <= high.
    high = max(half_mass - known_overlap, 0.0)
    low = min(max(half_mass - max_overlap, 0.0), high)
    return TVBound(low=low, high=high)


def _rest(dist: Mapping[Hashable, float], rest: float | None, name: str) -> float:
    if rest is None:
        return max(1.0 - math.fsum(dist.values()), 0.0)
    if not (isinstance(rest, Real) and math.isfinite(rest) and rest >= 0):
        raise ParameterError(f"{name} must be a number >= 0, got {rest!r}")
    return float(rest)


def _check_mapping(dist: Mapping[Hashable, float]) -> None:
    for key, value in dist.items():
        if not (isinstance(value, Real) and math.isfinite(value) and value >= 0):
            raise ParameterError(f"probabilities must be finite and >= 0, got {value!r} for {key!r}")


def _pair(p: Distribution, q: Distribution) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(p, Mapping) != isinstance(q, Mapping):
        raise ParameterError("compare a mapping with a mapping, or an array with an array")
    if isinstance(p, Mapping):
        keys = list(p) + [k for k in q if k not in p]
        return _array([p.get(k, 0.0) for k in keys]), _array([q.get(k, 0.0) for k in keys])
    a, b = _array(p), _array(q)
    if a.shape != b.shape:
        raise ParameterError(f"probability arrays must have the same shape, got {a.shape} and {b.shape}")
    return a, b


def _array(p: Distribution) -> np.ndarray:
    if isinstance(p, Mapping):
        p = list(p.values())
    elif hasattr(p, "detach"):  # a torch tensor; torch itself is not imported here
        p = p.detach().cpu().double().numpy()
    a = np.asarray(p, dtype=np.float64)
    if a.ndim == 0:
        raise ParameterError("a probability vector needs at least one dimension")
    if not np.all(np.isfinite(a)) or np.any(a < 0):
        raise ParameterError("probabilities must be finite and >= 0")
    return a


def _log_base(base: float) -> float:
    if not (isinstance(base, Real) and base > 0 and base != 1):
        raise ParameterError(f"base must be > 0 and != 1, got {base!r}")
    return math.log(base)


def _result(values: np.ndarray) -> float | np.ndarray:
    return float(values) if values.ndim == 0 else values
