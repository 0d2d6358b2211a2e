"""Answers on the embedded model, end to end through the CLI (the issue's acceptance, kept short):
sampled answer counts add up to n, and exact answer probabilities plus the unexplored mass add
up to 1. Everything else is tested exactly on the FakeEngine in tests/api/test_answers.py."""

from __future__ import annotations

import json
import math

import pytest

import tokendice as td
from tokendice.cli import main

pytestmark = pytest.mark.model

PROMPT = "Q: What is 7 plus 5?\nA:"


def test_sampled_answer_counts_add_up_to_n(capsys):
    # the acceptance command with 6 new tokens instead of 20 (the answer comes first; 20 tokens take ~50 s here)
    assert main(["sample", PROMPT, "-n", "200", "--max-new-tokens", "6", "--answer", "number", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    (answers,) = printed["answers"]
    assert answers["n"] == 200 and sum(a["count"] for a in answers["answers"]) == 200
    assert all(a["exact_prob"] is None and 0 <= a["ci_low"] <= a["share"] <= a["ci_high"] <= 1 for a in answers["answers"])
    # read back from the store with another spec: the end-of-sequence token's text is no part of any answer
    whole = td.answers(printed["run_id"], "exact")
    assert sum(a.count for a in whole.answers) == 200 and not any("<|" in a.answer for a in whole.answers)


def test_exact_answer_probabilities_and_the_unexplored_mass_add_up_to_one(capsys):
    assert main(["enumerate", PROMPT, "--answer", "number", "--max-new-tokens", "3", "--max-nodes", "40", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    answers = printed["answers"]
    assert answers["kind"] == "answers" and answers["source"] == "enumeration" and answers["n"] is None
    total = math.fsum(a["exact_prob"] for a in answers["answers"]) + answers["unexplored_mass"]
    assert total == pytest.approx(1.0, abs=1e-9) and answers["unexplored_mass"] == pytest.approx(printed["unexplored_mass"], abs=1e-12)
