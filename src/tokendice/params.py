"""Sampling parameters, validated once at the edge.

`SamplingParams` is the single description of a sampler chain's settings; every
experiment and engine takes one. Bad values raise `ParameterError` naming the
parameter and its valid range, before any model is loaded.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

from tokendice.errors import ParameterError

ORDERS = ("hf", "llamacpp")
RNG_MODES = ("per-sample", "torch")


@dataclass(frozen=True)
class SamplingParams:
    """How the next token is chosen. Defaults sample from the model's own distribution.

    temperature 0 (or do_sample=False) means greedy decoding; top_k 0, top_p 1,
    min_p 0, repetition_penalty 1 and no_repeat_ngram_size 0 each switch their
    stage off. `order` picks the stage order: "hf" (transformers' generate) or
    "llamacpp" (penalties, top-k, top-p, min-p, then temperature).
    """

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    max_new_tokens: int = 20
    do_sample: bool = True
    order: str = "hf"
    stop_at_eos: bool = True

    def __post_init__(self) -> None:
        _check(_finite(self.temperature) and self.temperature >= 0, "temperature", self.temperature, ">= 0")
        _check(_is_int(self.top_k) and self.top_k >= 0, "top_k", self.top_k, "an integer >= 0 (0 = off)")
        _check(_finite(self.top_p) and 0 < self.top_p <= 1, "top_p", self.top_p, "in (0, 1]")
        _check(_finite(self.min_p) and 0 <= self.min_p <= 1, "min_p", self.min_p, "in [0, 1] (0 = off)")
        _check(
            _finite(self.repetition_penalty) and self.repetition_penalty > 0,
            "repetition_penalty",
            self.repetition_penalty,
            "> 0 (1 = off)",
        )
        _check(
            _is_int(self.no_repeat_ngram_size) and self.no_repeat_ngram_size >= 0,
            "no_repeat_ngram_size",
            self.no_repeat_ngram_size,
            "an integer >= 0 (0 = off)",
        )
        _check(
            _is_int(self.max_new_tokens) and self.max_new_tokens >= 1,
            "max_new_tokens",
            self.max_new_tokens,
            "an integer >= 1",
        )
        _check(self.order in ORDERS, "order", self.order, f"one of {', '.join(ORDERS)}")

    @property
    def greedy(self) -> bool:
        """True when the chain ends in argmax rather than a random draw."""
        return not self.do_sample or self.temperature == 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_(self, **changes: Any) -> SamplingParams:
        return replace(self, **changes)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SamplingParams:
        unknown = sorted(set(data) - set(SAMPLING_FIELDS))
        if unknown:
            raise ParameterError(f"unknown sampling parameter(s): {', '.join(unknown)}", param=unknown[0])
        return cls(**data)


@dataclass(frozen=True)
class RandomSpec:
    """Where randomness comes from: a seed and a mode.

    "per-sample": sample i draws from its own stream derived from (seed, i), so it
    is the same alone, in any batch, or after a resume. "torch": the global torch
    generator seeded with `torch.manual_seed(seed)`, drawing like `generate`.
    """

    seed: int = 0
    mode: str = "per-sample"

    def __post_init__(self) -> None:
        _check(_is_int(self.seed) and 0 <= self.seed < 2**63, "seed", self.seed, "an integer in [0, 2^63)")
        _check(self.mode in RNG_MODES, "rng", self.mode, f"one of {', '.join(RNG_MODES)}")


def require_int(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """`value` if it is an integer within [low, high], else a ParameterError naming `name`."""
    ok = _is_int(value) and (low is None or value >= low) and (high is None or value <= high)
    if not ok:
        bounds = " ".join(b for b in (f">= {low}" if low is not None else "", f"<= {high}" if high is not None else "") if b)
        _check(False, name, value, f"an integer {bounds}".strip())
    return int(value)


def require_number(name: str, value: Any, low: float | None = None, high: float | None = None, low_open: bool = False) -> float:
    """`value` as a float if it is a finite number within its bounds, else a ParameterError."""
    ok = _finite(value) and (low is None or (value > low if low_open else value >= low)) and (high is None or value <= high)
    if not ok:
        lower = "" if low is None else (f"in ({low:g}, " if low_open else f"in [{low:g}, ") + (f"{high:g}]" if high is not None else "inf)")
        _check(False, name, value, f"a number {lower}".strip() if lower else "a finite number")
    return float(value)


def require_bool(name: str, value: Any) -> bool:
    _check(isinstance(value, bool), name, value, "True or False")
    return value


def require_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    _check(value in choices, name, value, f"one of {', '.join(choices)}")
    return value


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _check(ok: bool, name: str, value: Any, expected: str) -> None:
    if not ok:
        raise ParameterError(f"{name} must be {expected}, got {value!r}", param=name)


SAMPLING_FIELDS = tuple(SamplingParams.__dataclass_fields__)
"""The keywords that make a SamplingParams (temperature, top_k, ...)."""

NOTEBOOK_PARAMS = SamplingParams(
    temperature=0.7,
    top_p=0.9,
    top_k=50,
    repetition_penalty=1.2,
    no_repeat_ngram_size=2,
    max_new_tokens=20,
)
"""The notebook's `gen_kwargs` (seed-notebook.md, cell 14)."""
