"""How far a variant moves the completion distribution: total variation from scored completions.

TV(P, Q) = Σ_x (P(x) - Q(x))_+ = E_{x~P}[(1 - Q(x)/P(x))_+]: both forms need
completions x of the original prompt (distribution P) scored exactly under P and
under the variant's prompt (Q), which teacher forcing gives.

- exact: when an enumeration of P holds the target mass, the listed completions
  give S = Σ_listed (P - Q)_+ and the unlisted rest r = 1 - P(listed) bounds the
  remainder: TV ∈ [S, S + r], hard bounds (the point value is their midpoint).
- answers (with an answer spec): see `tv_answers`, hard bounds from the listed completions.
- samples: N draws from P give the unbiased Monte Carlo mean of (1 - Q/P)_+ with
  a normal-approximation 95% interval from its standard error (each term lies in
  [0, 1], so the standard error is at most 0.5/√N). There is no plug-in bias:
  P and Q are exact for every sampled completion, only the average is random.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

Z95 = 1.959963984540054
CRUMBS = 1e-6
"""An unlisted mass, or a TV over the listed answers, below this is rounding (the logits are float32)."""


@dataclass(frozen=True)
class TVEstimate:
    """Total variation between the original's and a variant's completion distributions."""

    value: float
    low: float
    high: float
    method: str  # "exact" (enumeration, hard bounds) or "samples" (Monte Carlo, 95% interval)
    n: int  # completions listed (exact) or samples drawn (samples)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TVEstimate:
        """The inverse of `to_dict` (a stored report read back, e.g. to resume a suite)."""
        return cls(**data)


def _ratio_terms(p_logp: np.ndarray, q_logp: np.ndarray) -> np.ndarray:
    """(1 - Q/P)_+ per completion; a completion impossible under P contributes 0."""
    with np.errstate(invalid="ignore", over="ignore"):
        ratio = np.exp(np.minimum(q_logp - p_logp, 0.0))
    terms = 1.0 - ratio
    return np.where(np.isfinite(p_logp), np.nan_to_num(terms, nan=0.0), 0.0)


def tv_exact(p_logp: np.ndarray, q_logp: np.ndarray) -> list[TVEstimate]:
    """Hard bounds from a partial enumeration of P: `p_logp` [C], `q_logp` [variants, C]."""
    p = np.exp(p_logp)
    rest = max(0.0, 1.0 - math.fsum(p.tolist()))
    listed = np.clip(p[None, :] - np.exp(q_logp), 0.0, None).sum(axis=-1)
    return [TVEstimate(float(s + rest / 2), float(s), float(min(1.0, s + rest)), "exact", len(p)) for s in listed]


def tv_samples(p_logp: np.ndarray, q_logp: np.ndarray, counts: np.ndarray) -> list[TVEstimate]:
    """Monte Carlo over samples from P: distinct completions with their `counts` [C]."""
    n = int(counts.sum())
    weights = counts / n
    terms = _ratio_terms(p_logp[None, :], q_logp)
    mean = (terms * weights).sum(axis=-1)
    var = (weights * (terms - mean[:, None]) ** 2).sum(axis=-1) * (n / (n - 1) if n > 1 else 0.0)
    se = np.sqrt(var / n)
    return [
        TVEstimate(float(m), float(max(0.0, m - Z95 * s)), float(min(1.0, m + Z95 * s)), "samples", n)
        for m, s in zip(mean, se)
    ]


def tv_answers(p: Sequence[float], q: Sequence[float], answers: Sequence[str]) -> tuple[TVEstimate, dict[str, float], dict[str, float]]:
    """Hard bounds on the TV between the answer distributions of P and Q, from listed completions
    whose probabilities under both are known exactly (`p`, `q`: probabilities, not logs) and whose
    `answers` are read: the original's completions (enumerated or sampled) and the variant's own.

    On the listed completions both answer distributions are known: P_L(a), Q_L(a). The rest of
    P's mass, r_P = 1 - P(listed), and of Q's, r_Q = 1 - Q(listed), may give any answer, listed
    or not. With S = Σ_a (P_L(a) - Q_L(a))_+:
    TV = Σ_a (P(a) - Q(a))_+ ≤ S + r_P (P's rest adds at most itself) and ≥ S - r_Q (Q's rest
    cancels at most itself), so TV ∈ [max(0, S - r_Q), min(1, S + r_P)] (a rest or an S below
    CRUMBS counts as 0): the value is the midpoint, method "bounds", n the completions listed.
    Returns also P_L and Q_L, by answer (first listed first).
    """
    p_answers: dict[str, float] = {}
    q_answers: dict[str, float] = {}
    for a, pa, qa in zip(answers, p, q, strict=True):
        p_answers[a] = p_answers.get(a, 0.0) + float(pa)
        q_answers[a] = q_answers.get(a, 0.0) + float(qa)
    r_p, r_q = (_rest(math.fsum(side.values())) for side in (p_answers, q_answers))
    s = math.fsum(max(0.0, p_answers[a] - q_answers[a]) for a in p_answers)
    s = 0.0 if s < CRUMBS else s
    low, high = max(0.0, s - r_q), min(1.0, s + r_p)
    return TVEstimate((low + high) / 2, low, high, "bounds", len(answers)), p_answers, q_answers


def _rest(listed: float) -> float:
    rest = min(1.0, max(0.0, 1.0 - listed))
    return 0.0 if rest < CRUMBS else rest  # a whole enumeration's sum misses 1 by float32 rounding of the logits
