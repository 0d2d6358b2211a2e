"""Where generations fork: first divergence and per-step token choices.

A determinism audit asks where two runs of the same prompt first chose
different tokens; a distribution study asks which tokens follow a given
prefix and how often. Sequences here are generated token ids only (the prompt
excluded), and a sequence ends where it stops (EOS or the length limit).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any, Final

from tokendice.errors import ParameterError

ENDED: Final = "<ended>"
"""Key counted by `next_token_counts_after` when a sequence stops right after the prefix."""


def first_divergence(a: Sequence[int], b: Sequence[int]) -> int | None:
    """Index of the first differing token of two sequences; None if they are identical.

    When one is a strict prefix of the other, they diverge where the shorter
    one ends (one run stopped, the other went on): the result is its length.
    """
    a, b = _tokens(a), _tokens(b)
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def first_divergence_step(sequences: Sequence[Sequence[int]]) -> int | None:
    """First step at which the sequences do not all agree; None if all are identical.

    Ending at a step counts as a choice that differs from any token. The result
    equals the smallest pairwise `first_divergence`.
    """
    if len(sequences) < 2:
        return None
    sequences = [_tokens(s) for s in sequences]
    shortest = min(len(s) for s in sequences)
    for step in range(shortest):
        first = sequences[0][step]
        if any(s[step] != first for s in sequences):
            return step
    return None if all(len(s) == shortest for s in sequences) else shortest


def step_token_distribution(sequences: Sequence[Sequence[int]], step: int) -> Counter[int]:
    """Counts of the token chosen at `step` (0-based) among the sequences that reach it."""
    if step < 0:
        raise ParameterError(f"step must be >= 0, got {step}")
    return Counter(s[step] for s in map(_tokens, sequences) if len(s) > step)


def next_token_counts_after(sequences: Sequence[Sequence[int]], prefix: Sequence[int]) -> Counter[int | str]:
    """Counts of what follows `prefix` among the sequences that start with it.

    A sequence that stops right after the prefix counts under `ENDED`. An empty
    prefix gives the first-token counts.
    """
    prefix = _tokens(prefix)
    k = len(prefix)
    counts: Counter[int | str] = Counter()
    for s in map(_tokens, sequences):
        if len(s) < k or s[:k] != prefix:
            continue
        counts[s[k] if len(s) > k else ENDED] += 1
    return counts


def _tokens(sequence: Sequence[int] | Any) -> list[int]:
    """Plain ints, so that numpy arrays and torch tensors count and compare like lists."""
    return list(sequence.tolist()) if hasattr(sequence, "tolist") else list(sequence)
