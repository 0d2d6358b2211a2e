"""A black-box engine (an OpenAI-compatible server) as one of an audit's other engines.

A server gives no logits, so it cannot be forced along the baseline's tokens: it
runs the request R times and is compared by text, token piece by token piece,
and by the log-probabilities it reports along the common prefix (which
distribution those are depends on the server; see engines/blackbox.py).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

from tokendice.analysis.agreement import tarr_at_n, unique_outputs
from tokendice.analysis.branching import first_divergence
from tokendice.experiments.audit.conditions import TARGET_ID, Outcome
from tokendice.params import RandomSpec, SamplingParams


def black_box_fields(
    engine: Any, prompt: str, params: SamplingParams, rng: RandomSpec, repeats: int, ref: Outcome,
    decode: Callable[[list[int]], str], progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Run the request `repeats` times on the server; the fields of its ConditionResult."""
    started = time.perf_counter()
    completions = []
    for r in range(repeats):
        completions.append(engine.generate(prompt, params, rng.seed, TARGET_ID))
        if progress is not None:
            progress(r + 1)
    ref_pieces = [decode([t]) for t in ref.tokens]
    ref_text = decode(ref.tokens)
    divergences = [None if c.text == ref_text else first_divergence(ref_pieces, list(c.tokens)) for c in completions]
    texts = [c.text for c in completions]
    fields: dict[str, Any] = {
        "repeats": repeats, "n_identical": sum(d is None for d in divergences), "unique_outputs": unique_outputs(texts),
        "tarr": tarr_at_n([texts]), "divergent_repeats": sum(d is not None for d in divergences),
        "outputs": list(dict.fromkeys(texts)), "seconds": time.perf_counter() - started,
        "max_logprob_diff": max((_drift(c.logprobs, ref.model_logprobs, d, len(ref.tokens)) for c, d in zip(completions, divergences)), default=0.0),
        "notes": [f"black-box: compared by text; logprobs as {getattr(engine, 'name', 'the server')} reports them"],
    }
    diverged = [(d, i) for i, d in enumerate(divergences) if d is not None]
    if diverged:
        step, i = min(diverged)
        pieces = completions[i].tokens
        fields.update(
            first_divergence=step, divergent_repeat=i, margin=ref.margin(step),
            baseline_token=ref_pieces[step] if step < len(ref_pieces) else "(end)",
            condition_token=pieces[step] if step < len(pieces) else "(end)",
        )
    describe = getattr(engine, "describe", None)
    fields["engine"] = describe() if callable(describe) else {"engine": getattr(engine, "name", "?")}
    return fields


def _drift(reported: Sequence[float | None], reference: Sequence[float], divergence: int | None, length: int) -> float:
    steps = length if divergence is None else divergence + 1
    gaps = [abs(a - b) for a, b in zip(reported[:steps], reference[:steps]) if a is not None and a != b]
    return max(gaps, default=0.0)
