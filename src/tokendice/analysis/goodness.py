"""Goodness of fit: do sampled counts agree with exactly computed probabilities?

tokendice obtains a prompt's completion distribution both by sampling and by
exact enumeration; this test is how the two are held to each other. The
question it answers: "if the sampler really drew from `expected_probs`, how
surprising are these counts?"

False-alarm rate: under the null hypothesis (the sampler is correct) the
p-value is approximately uniform on [0, 1], so rejecting when p < alpha raises
a false alarm with probability about alpha (alpha = 0.01 -> about 1 run in 100).
The approximation is the chi-square limit of the G (or Pearson) statistic; it
is why categories with an expected count below `min_expected` are pooled. The
pooling looks only at `n` and the expected probabilities, never at the
observed counts, so it does not bias the test.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Literal

from tokendice.errors import ParameterError

_SUM_TOLERANCE = 1e-6


class _Other:
    """The pooled bucket: rare categories, unlisted observations and the unexplored mass."""

    _instance: _Other | None = None

    def __new__(cls) -> _Other:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<other>"


OTHER = _Other()
"""Label of the pooled bucket in `FitResult.cells` (distinct from any real key)."""


@dataclass(frozen=True)
class FitResult:
    """The outcome of `goodness_of_fit`.

    `cells` holds the tested categories as (label, observed, expected count);
    the label is a key, or `OTHER` for the pooled bucket. `pooled` lists the
    listed keys that went into the pool, `unlisted` the observed keys absent
    from the expected probabilities, `merged_into` the category the pool was
    merged into when it was itself too small (None otherwise).
    """

    statistic: float
    dof: int
    p_value: float
    n: int
    categories: int
    method: str
    pooled: tuple[Hashable, ...]
    unlisted: tuple[Hashable, ...]
    merged_into: Hashable | None
    impossible_observed: bool
    impossible: tuple[Hashable, ...]
    cells: tuple[tuple[Hashable, int, float], ...]

    def rejects(self, alpha: float = 0.01) -> bool:
        """True when the counts are implausible at level alpha (false-alarm rate about alpha)."""
        return self.p_value < alpha


def goodness_of_fit(
    observed: Mapping[Hashable, int],
    expected_probs: Mapping[Hashable, float],
    unexplored_mass: float = 0.0,
    min_expected: float = 5.0,
    method: Literal["g", "chi2"] = "g",
) -> FitResult:
    """Test observed counts against exact probabilities (G-test or Pearson chi-square).

    Categories with expected count n·p < `min_expected` are pooled into one
    bucket together with `unexplored_mass` and every observed key missing from
    `expected_probs`; if that bucket's expected count is still below
    `min_expected` it is merged into the smallest remaining category. Keys with
    probability 0 are not categories: observing one (or an unlisted key when
    `unexplored_mass` is 0) is impossible under H0, so p_value is 0 and
    `impossible_observed` is set. Degrees of freedom = categories - 1; with a
    single category nothing can be tested and p_value is 1.
    """
    if method not in ("g", "chi2"):
        raise ParameterError(f"method must be 'g' or 'chi2', got {method!r}")
    if not (isinstance(min_expected, Real) and math.isfinite(min_expected) and min_expected >= 0):
        raise ParameterError(f"min_expected must be a number >= 0, got {min_expected!r}")
    if not (isinstance(unexplored_mass, Real) and 0 <= unexplored_mass <= 1):
        raise ParameterError(f"unexplored_mass must be in [0, 1], got {unexplored_mass!r}")
    for key, count in observed.items():
        if isinstance(count, bool) or not isinstance(count, Integral) or count < 0:
            raise ParameterError(f"observed counts must be integers >= 0, got {count!r} for {key!r}")
    for key, prob in expected_probs.items():
        if not (isinstance(prob, Real) and 0 <= prob <= 1):
            raise ParameterError(f"expected probabilities must be in [0, 1], got {prob!r} for {key!r}")
    total = math.fsum(expected_probs.values()) + unexplored_mass
    if abs(total - 1) > _SUM_TOLERANCE:
        raise ParameterError(f"expected probabilities plus unexplored_mass must sum to 1, got {total!r}")

    n = int(sum(observed.values()))
    unlisted = tuple(k for k, c in observed.items() if c > 0 and k not in expected_probs)
    impossible = tuple(
        k
        for k, c in observed.items()
        if c > 0 and (expected_probs[k] == 0 if k in expected_probs else unexplored_mass == 0)
    )

    kept: list[tuple[Hashable, float]] = []
    pooled: list[Hashable] = []
    for key, prob in expected_probs.items():
        if prob == 0:
            continue
        if n * prob >= min_expected:
            kept.append((key, float(prob)))
        else:
            pooled.append(key)
    other_prob = float(unexplored_mass) + math.fsum(expected_probs[k] for k in pooled)
    # Zero-probability keys land here too, so that every observation is in some cell.
    other_count = int(sum(c for k, c in observed.items() if k not in expected_probs or expected_probs[k] == 0))
    other_count += int(sum(observed.get(k, 0) for k in pooled))

    cells = [(key, int(observed.get(key, 0)), prob) for key, prob in kept]
    merged_into: Hashable | None = None
    if other_prob > 0 or other_count > 0:
        if n * other_prob < min_expected and cells:
            smallest = min(range(len(cells)), key=lambda i: cells[i][2])
            key, count, prob = cells[smallest]
            cells[smallest] = (key, count + other_count, prob + other_prob)
            merged_into = key
        else:
            cells.append((OTHER, other_count, other_prob))

    table = tuple((label, count, n * prob / total) for label, count, prob in cells)
    dof = max(len(table) - 1, 0)
    if impossible:
        statistic, p_value = math.inf, 0.0
    elif n == 0 or dof == 0:
        statistic, p_value = 0.0, 1.0
    else:
        statistic = _statistic(table, method)
        p_value = _chi2_sf(statistic, dof)
    return FitResult(
        statistic=statistic,
        dof=dof,
        p_value=p_value,
        n=n,
        categories=len(table),
        method=method,
        pooled=tuple(pooled),
        unlisted=unlisted,
        merged_into=merged_into,
        impossible_observed=bool(impossible),
        impossible=impossible,
        cells=table,
    )


def _statistic(table: tuple[tuple[Hashable, int, float], ...], method: str) -> float:
    if method == "g":
        # G = 2 Σ O ln(O/E); a cell with O = 0 contributes 0 (the limit of O ln O).
        return 2 * math.fsum(o * math.log(o / e) for _, o, e in table if o > 0)
    return math.fsum((o - e) ** 2 / e for _, o, e in table)


def _chi2_sf(statistic: float, dof: int) -> float:
    from scipy.stats import chi2  # scipy is slow to import; only this test needs it

    return float(chi2.sf(statistic, dof))
