"""Shared helpers for showing generated text safely and unambiguously."""

from __future__ import annotations

import json
from typing import Any


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


def setup_words(setup: dict[str, Any] | None) -> str:
    """A setup in words: engine, batch, dtype, threads, KV cache, attention, deterministic."""
    if not setup:
        return "–"
    n = setup.get("threads")
    threads = f"{n} thread{'' if n == 1 else 's'}"
    if setup.get("threads_default", setup.get("all_threads")):  # all_threads: reports of earlier versions
        threads += " (torch's default)"
    cache = "KV cache on" if setup.get("kv_cache") else "KV cache off"
    det = ", deterministic algorithms" if setup.get("deterministic") else ""
    return (f"{setup.get('engine')}, batch {setup.get('batch_size')}, {setup.get('dtype')}, {threads}, {cache}, "
            f"{setup.get('attention')} attention{det}")
