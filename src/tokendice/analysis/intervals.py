"""Frequencies with confidence intervals.

A share seen in N samples is an estimate; tokendice always shows it with an
interval so that "61% vs 58%" can be read as a difference or as noise. The
Wilson score interval is used because it stays inside [0, 1] and keeps close
to its nominal coverage even for shares near 0 or 1 and for small N, where
the textbook normal interval fails.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Integral, Real
from statistics import NormalDist
from typing import TypeVar

from tokendice.errors import ParameterError

K = TypeVar("K")


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial share `successes / n`.

    With z the two-sided normal quantile, p = successes / n:
    centre = (p + z²/2n) / (1 + z²/n), half-width = z/(1 + z²/n) · sqrt(p(1-p)/n + z²/4n²).
    n = 0 carries no information and gives (0, 1).
    """
    if isinstance(successes, bool) or not isinstance(successes, Integral) or successes < 0:
        raise ParameterError(f"successes must be an integer >= 0, got {successes!r}")
    if isinstance(n, bool) or not isinstance(n, Integral) or n < successes:
        raise ParameterError(f"n must be an integer >= successes ({successes}), got {n!r}")
    if not (isinstance(confidence, Real) and 0 < confidence < 1):
        raise ParameterError(f"confidence must be in (0, 1), got {confidence!r}")
    successes, n = int(successes), int(n)
    if n == 0:
        return (0.0, 1.0)
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    z2 = z * z
    p = successes / n
    denominator = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    # At 0 and n the bound is exact; rounding would otherwise leave 1e-17 crumbs.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return (low, high)


@dataclass(frozen=True)
class Frequency:
    """How often one outcome appeared: `count` of `n`, its `share`, and a Wilson interval."""

    count: int
    n: int
    share: float
    low: float
    high: float

    @classmethod
    def of(cls, count: int, n: int, confidence: float = 0.95) -> Frequency:
        """The frequency of `count` in `n` with its Wilson interval at `confidence`."""
        low, high = wilson_interval(count, n, confidence)
        return cls(count=count, n=n, share=count / n if n else 0.0, low=low, high=high)


def frequencies(counts: Mapping[K, int], confidence: float = 0.95) -> dict[K, Frequency]:
    """Every outcome's `Frequency` among the total of `counts`, most frequent first.

    Ties keep the order of `counts`, so the result is deterministic.
    """
    n = sum(counts.values())
    ordered = sorted(counts.items(), key=lambda item: -item[1])
    return {key: Frequency.of(count, n, confidence) for key, count in ordered}
