"""Counter-based random streams: a SplitMix64 hash of integers, the same on every machine and in
every batch. The sampler draws with it (sampling/rng.py), and a black-box run derives the seed it
sends for each sample from it (engines/blackbox.py)."""

from __future__ import annotations

import numpy as np

_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = (x + np.uint64(0x9E3779B97F4A7C15)) & _MASK
        x = ((x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK
        x = ((x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK
        return x ^ (x >> np.uint64(31))


def stream_hash(seed: int, *keys: np.ndarray | int) -> np.ndarray:
    """A 64-bit hash of (seed, *keys), vectorised over array keys."""
    h = _splitmix64(np.asarray([seed], dtype=np.uint64))
    for key in keys:
        h = _splitmix64(h ^ np.asarray(key, dtype=np.uint64))
    return h
