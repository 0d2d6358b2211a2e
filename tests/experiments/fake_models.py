"""Fake next-token distributions with exactly known completion distributions."""

from __future__ import annotations

import math

from tokendice.engines.fake import FakeEngine

VOCAB = ["<eos>", "x", "a", "b", "c", "d"]
HTML_VOCAB = ["<eos>", "x", "a", "b", "c", "<script>alert(1)</script>"]
"""A vocabulary with a token that must come out escaped in every view."""

SHALLOW_TABLE = {
    (): {"a": 0.5, "b": 0.3, "c": 0.2},
    ("a",): {"a": 0.5, "<eos>": 0.5},
    ("b",): {"c": 0.9, "<eos>": 0.1},
    ("a", "a"): {"b": 0.7, "<eos>": 0.3},
}
"""A two-level tree with uneven branches and early stops."""
SHALLOW_EXACT = {"bc<eos>": 0.27, "a<eos>": 0.25, "c<eos>": 0.2, "aab<eos>": 0.175, "aa<eos>": 0.075, "b<eos>": 0.03}
"""Every completion of SHALLOW_TABLE with its probability (a product along the tree), most probable first."""

FORK_VOCAB = ["<eos>", "a", "b", "c"]
FORK_TABLE = {
    (): {"a": 0.5, "b": 0.3, "c": 0.2},
    ("a",): {"b": 0.6, "<eos>": 0.4},
    ("b",): {"a": 0.5, "c": 0.5},
    ("c",): {"<eos>": 1.0},
    ("a", "b"): {"<eos>": 1.0},
    ("b", "a"): {"<eos>": 1.0},
    ("b", "c"): {"<eos>": 1.0},
}
"""A tree of at most three tokens to fork in: every branch's probability is a short product."""


def shallow_tree() -> FakeEngine:
    """A two-level tree with uneven branches and early stops (SHALLOW_TABLE)."""
    return FakeEngine.from_table(VOCAB, SHALLOW_TABLE)


def markov_chain() -> FakeEngine:
    """The next token depends on the previous one only; runs to the length limit unless it stops."""
    probs = {"x": [0.05, 0, 0.4, 0.3, 0.2, 0.05], "a": [0.1, 0, 0.1, 0.5, 0.2, 0.1], "b": [0.2, 0, 0.3, 0.1, 0.3, 0.1],
             "c": [0.05, 0, 0.05, 0.05, 0.05, 0.8], "d": [0.6, 0, 0.1, 0.1, 0.1, 0.1]}

    def next_logits(prompt, generated):
        last = VOCAB[(prompt + generated)[-1]]
        return [math.log(p) if p > 0 else -math.inf for p in probs[last]]

    return FakeEngine(VOCAB, next_logits, eos_token_ids=(0,), model_id="fake-markov")


def flat_with_repeats() -> FakeEngine:
    """Logits that favour repeating the last token: penalties and truncation reshape it strongly."""

    def next_logits(prompt, generated):
        seq = prompt + generated
        logits = [0.0, -math.inf, 0.5, 0.2, 0.1, -0.3]
        logits[seq[-1]] = 1.5 if seq[-1] != 1 else logits[seq[-1]]
        return logits

    return FakeEngine(VOCAB, next_logits, eos_token_ids=(0,), model_id="fake-repeats")
