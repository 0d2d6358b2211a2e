"""Semantic entropy and its relatives: uncertainty over meanings, sampled and exact.

Completions (or the answers read out of them) are grouped into clusters of equal meaning
(`greedy_clusters`, with any judge); the measures below take the clusters as given.
Every entropy is in nats.

Sampled (n samples, each with its cluster, its distinct completion and log p(sampling)):

- discrete semantic entropy: the entropy of the clusters' shares of the n samples;
- likelihood-weighted semantic entropy (Farquhar et al., Nature 2024): each cluster's
  probability is the sum of the sequence probabilities of the distinct completions sampled in
  it, normalised over every distinct completion sampled, p(C) = sum_{s in C} p(s) / sum_s p(s);
  unlike the paper's code (which sums over the 10 generations, repeats included, with
  length-normalised likelihoods) each distinct completion counts once, so the estimate is the
  exact semantic entropy once every completion has been seen;
- the number of semantic sets (clusters with at least one sample);
- naive predictive entropy, -mean log p(s) over the samples (a Monte Carlo estimate of the
  entropy of whole completions), and the length-normalised variant, -mean log p(s) / len(s).

Each has a bootstrap interval (`bootstrap_intervals`): the n samples resampled with
replacement `resamples` times from a seeded generator, clusters kept as they are; the
percentile interval of the resampled estimates, shifted by the bootstrap estimate of the
bias (estimate - mean of the resampled estimates). Plug-in entropies are biased low, and
resampling lowers them once more: unshifted, the 95% interval of a discrete semantic entropy
held the true value in ~90% of trials at n = 50-400; shifted, in ~94-96% (tests/analysis/
test_semantic.py measures it). The estimate always lies inside its interval.

Exact, from an enumeration: cluster probabilities q_c (the sums of their completions'
exact probabilities) and the unexplored mass r, whose completions may belong to any
cluster. `exact_semantic_entropy` bounds the entropy over every way of placing r:

- lower bound: the entropy is concave in the placement, so its minimum over the polytope
  of placements lies at a vertex: all of r in one cluster, an existing one or a new one.
  low = min( H_known + f(r),  min_c H_known - f(q_c) + f(q_c + r) ),  f(p) = -p ln p.
- upper bound: f is subadditive, f(q + x) <= f(q) + f(x) (since ln(q+x) >= ln q, ln x), so
  H <= H_known + sum_j f(x_j) over the pieces x_j of r, however they join the clusters.
  There are at most K pieces, K the number of completions the unexplored mass can hold,
  and sum_j f(x_j) with sum_j x_j = r is largest when the pieces are level (water-filling:
  pour r into K equal parts): r ln(K / r). So high = H_known - r ln r + r ln K.
  Completions stop at an end token or after max_new_tokens L, so no completion is a prefix
  of another: they are the leaves of a V-ary tree of depth <= L, at most V^L of them, and
  r ln K = r L ln V (V the vocabulary, or top_k when the sampler keeps only top_k tokens).

With r = 0 both bounds are the exact value, H_known.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence, TypeVar

import numpy as np

from tokendice.errors import ParameterError

T = TypeVar("T")

RESAMPLES = 1000
"""Bootstrap resamples by default."""
LEVEL = 0.95
"""Bootstrap interval level by default (percentile interval)."""
CONVERGENCE_STEPS = (10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000)
"""Sample counts at which the convergence of the sampled estimate is shown (those below n, then n)."""


def plogp(p: float) -> float:
    """f(p) = -p ln p, 0 at 0."""
    return -p * math.log(p) if p > 0 else 0.0


def entropy(probs: Sequence[float]) -> float:
    """Entropy in nats of probabilities summing to 1 (zeros ignored)."""
    return math.fsum(plogp(float(p)) for p in probs)


# -- clustering ------------------------------------------------------------------------------


def greedy_clusters(items: Sequence[T], same: Callable[[T, T], bool] | None = None, *,
                    first: Callable[[T, Sequence[T]], int | None] | None = None) -> list[list[int]]:
    """The paper's greedy clustering: each item, in order, is compared with the first member of
    every cluster so far and joins the first cluster whose first member it means the same as;
    otherwise it starts a new cluster. Returns the clusters as lists of item indices.

    `same(first_member, item)` judges one pair; or `first(item, first_members)` returns the
    index of the first cluster that matches (a judge that asks in batches).
    The judge need not be transitive: with A~B, B~C and not A~C, the order A, B, C gives
    {A, B}, {C} (C is compared with A, the first member, only)."""
    if first is None:
        if same is None:
            raise ParameterError("greedy_clusters needs same= or first=", param="same")
        first = lambda item, firsts: next((k for k, f in enumerate(firsts) if same(f, item)), None)  # noqa: E731
    clusters: list[list[int]] = []
    for i, item in enumerate(items):
        k = first(item, [items[members[0]] for members in clusters])
        if k is None:
            clusters.append([i])
        else:
            clusters[k].append(i)
    return clusters


def labels_of(clusters: Sequence[Sequence[int]], size: int) -> list[int]:
    """Each item's cluster index."""
    out = [-1] * size
    for c, members in enumerate(clusters):
        for i in members:
            out[i] = c
    if any(label < 0 for label in out):
        raise ParameterError("every item must be in a cluster", param="clusters")
    return out


# -- sampled measures ------------------------------------------------------------------------


@dataclass(frozen=True)
class Sampled:
    """n samples: each one's cluster (`labels`), its distinct completion (`completion`, an index
    into `completion_probs` / `completion_cluster`), its log p(sampling) (nan: unknown) and its
    length in tokens."""

    labels: np.ndarray  # int, n
    completion: np.ndarray  # int, n
    completion_probs: np.ndarray  # float, distinct completions (nan: unknown)
    completion_cluster: np.ndarray  # int, distinct completions
    logprobs: np.ndarray  # float, n (nan: unknown)
    lengths: np.ndarray  # int, n

    @classmethod
    def of(cls, labels: Sequence[int], completion: Sequence[int], completion_probs: Sequence[float | None],
           completion_cluster: Sequence[int], logprobs: Sequence[float | None], lengths: Sequence[int]) -> Sampled:
        made = cls(
            np.asarray(labels, dtype=np.int64), np.asarray(completion, dtype=np.int64),
            np.asarray([math.nan if p is None else p for p in completion_probs], dtype=np.float64),
            np.asarray(completion_cluster, dtype=np.int64),
            np.asarray([math.nan if lp is None else lp for lp in logprobs], dtype=np.float64),
            np.asarray(lengths, dtype=np.int64),
        )  # fmt: skip
        n = len(made.labels)
        if n == 0:
            raise ParameterError("semantic entropy needs at least one sample", param="result")
        if not (len(made.completion) == len(made.logprobs) == len(made.lengths) == n):
            raise ParameterError("labels, completion, logprobs and lengths must have one entry per sample", param="labels")
        if len(made.completion_probs) != len(made.completion_cluster):
            raise ParameterError("completion_probs and completion_cluster must have one entry per distinct completion", param="completion_probs")
        return made

    @property
    def n(self) -> int:
        return len(self.labels)

    @property
    def clusters(self) -> int:
        return int(max(self.labels.max(), self.completion_cluster.max(initial=-1))) + 1

    def prefix(self, size: int) -> Sampled:
        """The first `size` samples."""
        return Sampled(self.labels[:size], self.completion[:size], self.completion_probs, self.completion_cluster,
                       self.logprobs[:size], self.lengths[:size])  # fmt: skip


def _entropy_rows(weights: np.ndarray) -> np.ndarray:
    """Entropy (nats) of each row of non-negative weights, normalised per row."""
    total = weights.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(total > 0, weights / total, 0.0)
        terms = np.where(p > 0, -p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    out = terms.sum(axis=1)
    out[total[:, 0] <= 0] = np.nan
    return out


def _measures(s: Sampled, idx: np.ndarray) -> dict[str, np.ndarray]:
    """The sampled measures of each row of sample indices `idx` ([rows, m])."""
    rows, m = idx.shape
    k, d = s.clusters, len(s.completion_probs)
    offsets = (np.arange(rows) * k)[:, None]
    counts = np.bincount((s.labels[idx] + offsets).ravel(), minlength=rows * k).reshape(rows, k).astype(np.float64)
    out = {"discrete": _entropy_rows(counts), "sets": (counts > 0).sum(axis=1).astype(np.float64)}
    probs = s.completion_probs
    if d and not np.isnan(probs).any():
        seen = np.bincount((s.completion[idx] + (np.arange(rows) * d)[:, None]).ravel(), minlength=rows * d).reshape(rows, d) > 0
        onehot = np.zeros((d, k))
        onehot[np.arange(d), s.completion_cluster] = 1.0
        out["weighted"] = _entropy_rows((seen * probs) @ onehot)
    else:
        out["weighted"] = np.full(rows, np.nan)
    lp = s.logprobs[idx]
    out["naive"] = -lp.mean(axis=1)  # nan when any log-probability is unknown
    out["length_normalised"] = -(lp / np.maximum(s.lengths[idx], 1)).mean(axis=1)
    return out


MEASURES = ("discrete", "weighted", "naive", "length_normalised")


def sampled_measures(s: Sampled) -> dict[str, float | None]:
    """discrete and weighted semantic entropy, naive and length-normalised predictive entropy
    (None where the probabilities needed are unknown), and `num_semantic_sets`."""
    values = _measures(s, np.arange(s.n)[None, :])
    out: dict[str, float | None] = {name: _value(values[name][0]) for name in MEASURES}
    out["num_semantic_sets"] = int(values["sets"][0])
    return out


def _value(x: float) -> float | None:
    return None if not math.isfinite(float(x)) else float(x)


@dataclass(frozen=True)
class Interval:
    """A bootstrap interval at `level` (see `bootstrap_intervals`); None where the estimate is unknown."""

    low: float | None
    high: float | None


def bootstrap_intervals(s: Sampled, *, resamples: int = RESAMPLES, level: float = LEVEL, seed: int = 0,
                        chunk_cells: int = 2_000_000) -> dict[str, Interval]:
    """Bootstrap intervals of the sampled measures: the n samples resampled with replacement
    `resamples` times (numpy's default generator seeded with `seed`), the clusters and
    probabilities kept; the central `level` of the resampled estimates, shifted by the estimated
    bias (estimate - their mean), never below 0 (every measure here is an entropy)."""
    if not isinstance(resamples, int) or isinstance(resamples, bool) or resamples < 10:
        raise ParameterError(f"resamples must be an int >= 10, got {resamples!r}", param="resamples")
    if not isinstance(level, (int, float)) or isinstance(level, bool) or not 0 < level < 1:
        raise ParameterError(f"level must be in (0, 1), got {level!r}", param="level")
    rng = np.random.default_rng(seed)
    n = s.n
    per_chunk = max(1, chunk_cells // n)
    collected: dict[str, list[np.ndarray]] = {name: [] for name in MEASURES}
    done = 0
    while done < resamples:
        rows = min(per_chunk, resamples - done)
        values = _measures(s, rng.integers(0, n, size=(rows, n)))
        for name in MEASURES:
            collected[name].append(values[name])
        done += rows
    estimate = _measures(s, np.arange(n)[None, :])
    out = {}
    tail = (1 - level) / 2
    for name in MEASURES:
        values = np.concatenate(collected[name])
        if np.isnan(values).any() or np.isnan(estimate[name][0]):
            out[name] = Interval(None, None)
            continue
        low, high = np.quantile(values, [tail, 1 - tail])
        shift = float(estimate[name][0]) - float(values.mean())
        out[name] = Interval(max(0.0, float(low) + shift), max(0.0, float(high) + shift))
    return out


def convergence_sizes(n: int, steps: Sequence[int] = CONVERGENCE_STEPS) -> list[int]:
    """The sample counts at which to show the estimate: the steps below n, then n."""
    return [k for k in steps if k < n] + [n]


# -- exact, from an enumeration --------------------------------------------------------------


@dataclass(frozen=True)
class ExactEntropy:
    """The semantic entropy of an enumeration: `low` <= H <= `high`, and `value` (= both) when
    nothing is unexplored. `high` is None when the number of completions is unbounded (unknown
    vocabulary)."""

    low: float
    high: float | None
    value: float | None
    known: float  # H_known: the terms of the clusters found, -sum q_c ln q_c
    unexplored: float


def log_max_completions(max_new_tokens: int | None, vocab_size: int | None, top_k: int | None = None) -> float | None:
    """ln K, K = V^L: at most that many completions of at most L = max_new_tokens tokens over a
    vocabulary of V tokens (V = min(vocabulary, top_k) when the sampler keeps only top_k);
    None when L or V is unknown."""
    width = vocab_size
    if top_k is not None and top_k > 0:
        width = top_k if width is None else min(width, top_k)
    if not max_new_tokens or not width or width < 1:
        return None
    return max_new_tokens * math.log(width)


def exact_semantic_entropy(cluster_probs: Sequence[float], unexplored: float = 0.0, log_k: float | None = None) -> ExactEntropy:
    """Bounds on the semantic entropy when the clusters hold `cluster_probs` (exact) and
    `unexplored` mass may lie anywhere (see the module docstring for the derivation);
    `log_k` = ln K, K an upper bound on the completions the unexplored mass can hold."""
    probs = [float(q) for q in cluster_probs]
    if any(not math.isfinite(q) or q < 0 for q in probs):
        raise ParameterError(f"cluster probabilities must be finite and >= 0, got {probs!r}", param="cluster_probs")
    r = float(unexplored)
    if not math.isfinite(r) or r < 0 or r > 1 + 1e-9:
        raise ParameterError(f"unexplored must be in [0, 1], got {unexplored!r}", param="unexplored")
    known = math.fsum(plogp(q) for q in probs)
    if r == 0:
        return ExactEntropy(known, known, known, known, 0.0)
    low = known + plogp(r)  # r as a new cluster of its own
    for q in probs:
        low = min(low, known - plogp(q) + plogp(q + r))
    high = None if log_k is None else known + plogp(r) + r * max(0.0, log_k)
    return ExactEntropy(low, high, None, known, r)
