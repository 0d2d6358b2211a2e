"""Shared helpers for showing generated text safely and unambiguously."""

from __future__ import annotations

import json


def show_token(text: str) -> str:
    """A token as a quoted literal: whitespace and control characters made visible."""
    return json.dumps(text, ensure_ascii=False)


def prob(p: float | None) -> str:
    if p is None:
        return "-"
    if p == 0:
        return "0"
    if p < 1e-4:
        return f"{p:.1e}"
    return f"{p:.4f}"


def logprob(lp: float | None) -> str:
    if lp is None or lp == float("-inf"):
        return "-inf"
    return f"{lp:.3f}"


def prob_style(p: float) -> str:
    """A rich color for a probability: red unlikely, yellow middling, green likely."""
    if p >= 0.6:
        return "green"
    if p >= 0.25:
        return "yellow"
    if p >= 0.05:
        return "dark_orange"
    return "red"
