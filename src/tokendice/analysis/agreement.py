"""Agreement across repeated runs: TARr@N and TARa@N.

From Atil et al. 2024, "Non-Determinism of 'Deterministic' LLM Settings":
run every prompt N times under a setting meant to be deterministic, then

- TARr@N (total agreement rate, raw): the share of prompts whose N raw output
  strings are all identical;
- TARa@N (total agreement rate, answer): the same after parsing each output
  down to its answer, so that runs differing only in wording still agree.

A determinism audit reports both: TARr@N < 1 proves the setting is not
deterministic; TARa@N says whether it matters for the answers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from tokendice.errors import ParameterError


def unique_outputs(outputs: Sequence[str]) -> int:
    """Number of distinct output strings (exact comparison, whitespace included)."""
    return len(set(outputs))


def tarr_at_n(outputs_per_prompt: Sequence[Sequence[str]]) -> float:
    """TARr@N: share of prompts whose N raw outputs are all identical."""
    _check(outputs_per_prompt)
    agreeing = sum(1 for outputs in outputs_per_prompt if unique_outputs(outputs) == 1)
    return agreeing / len(outputs_per_prompt)


def extract_answer(output: str, pattern: str | re.Pattern[str]) -> str | None:
    """The answer in `output`: the first group of the first match of `pattern`.

    A pattern without groups yields the whole match; no match (or a first group
    that did not take part in the match) yields None.
    """
    regex = re.compile(pattern) if isinstance(pattern, str) else pattern
    match = regex.search(output)
    if match is None:
        return None
    return match.group(1) if regex.groups else match.group(0)


def tara_at_n(outputs_per_prompt: Sequence[Sequence[str]], pattern: str | re.Pattern[str]) -> float:
    """TARa@N: share of prompts whose N parsed answers are all identical.

    Answers come from `extract_answer`; an output where the pattern finds
    nothing counts as the answer None, equal to other None answers and
    different from every parsed one.
    """
    _check(outputs_per_prompt)
    regex = re.compile(pattern) if isinstance(pattern, str) else pattern
    agreeing = sum(
        1 for outputs in outputs_per_prompt if len({extract_answer(o, regex) for o in outputs}) == 1
    )
    return agreeing / len(outputs_per_prompt)


def _check(outputs_per_prompt: Sequence[Sequence[str]]) -> None:
    if len(outputs_per_prompt) == 0:
        raise ParameterError("outputs_per_prompt must hold at least one prompt")
    for i, outputs in enumerate(outputs_per_prompt):
        if isinstance(outputs, str):
            raise ParameterError(f"prompt {i}: expected a sequence of output strings, got one string")
        if len(outputs) == 0:
            raise ParameterError(f"prompt {i} has no outputs")
