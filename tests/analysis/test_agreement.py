"""TARr@N, TARa@N and unique outputs (Atil et al. 2024) on hand-made runs."""

from __future__ import annotations

import re

import pytest

from tokendice.analysis import extract_answer, tara_at_n, tarr_at_n, unique_outputs
from tokendice.errors import ParameterError

RUNS = [
    ["The answer is (A).", "The answer is (A).", "The answer is (A)."],  # identical
    ["The answer is (B).", "So the answer is (B).", "The answer is (B)."],  # same answer, other words
    ["The answer is (C).", "The answer is (D).", "The answer is (C)."],  # answers differ
    ["I cannot tell.", "No idea.", "The answer is (A)."],  # two unparsable, one parsed
]
PATTERN = r"answer is \(([A-D])\)"


def test_unique_outputs() -> None:
    assert [unique_outputs(r) for r in RUNS] == [1, 2, 2, 3]
    assert unique_outputs(["x", "x "]) == 2  # whitespace counts: raw comparison
    assert unique_outputs([]) == 0


def test_tarr_at_n() -> None:
    assert tarr_at_n(RUNS) == pytest.approx(1 / 4)
    assert tarr_at_n([["same"] * 10, ["same"] * 10]) == 1.0
    assert tarr_at_n([["only one run"]]) == 1.0


def test_tara_at_n() -> None:
    assert tara_at_n(RUNS, PATTERN) == pytest.approx(2 / 4)
    assert tara_at_n(RUNS, re.compile(PATTERN)) == pytest.approx(2 / 4)
    # Unparsable outputs agree with each other (answer None) ...
    assert tara_at_n([["no idea", "beats me"]], PATTERN) == 1.0
    # ... but not with a parsed answer.
    assert tara_at_n([["no idea", "answer is (A)"]], PATTERN) == 0.0
    # TARa@N is never below TARr@N: equal strings give equal answers.
    assert tara_at_n(RUNS, PATTERN) >= tarr_at_n(RUNS)


def test_extract_answer() -> None:
    assert extract_answer("So the answer is (B).", PATTERN) == "B"
    assert extract_answer("42 and 43", r"\d+") == "42"  # no group: whole first match
    assert extract_answer("nothing here", PATTERN) is None
    assert extract_answer("x", r"(a)?x") is None  # first group did not take part


def test_rejects_bad_input() -> None:
    with pytest.raises(ParameterError):
        tarr_at_n([])
    with pytest.raises(ParameterError):
        tarr_at_n([["a"], []])
    with pytest.raises(ParameterError):
        tara_at_n(["abc"], PATTERN)  # type: ignore[list-item]
