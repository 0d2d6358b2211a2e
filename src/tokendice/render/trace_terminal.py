"""Render a Trace in the terminal with rich."""

from __future__ import annotations

from rich.console import Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from tokendice.experiments.trace.trace import Candidate, Trace
from tokendice.render.registry import renderer
from tokendice.render.text import logprob, prob, prob_style, show_token

NOTABLE_MODEL_PROB = 0.05  # removals of tokens the model gave at least this much are called out


@renderer("trace")
def trace_renderable(trace: Trace) -> Group:
    header = Text.from_markup(
        f"[bold]tokendice trace[/] · {escape(trace.model)} ({trace.engine}) · seed {trace.seed} · rng {trace.rng}\n"
        f"chain: {escape(' → '.join(trace.stages) or '(none: sampling from the model distribution)')}"
    )
    completion = Text("prompt: ", style="bold")
    completion.append(trace.prompt)
    completion.append("\ncompletion: ", style="bold")
    for s in trace.steps:
        completion.append(s.text, style=f"underline {prob_style(s.chosen.model_prob)}")
    completion.append(f"   [{trace.finish_reason}]", style="dim")

    greedy = bool(trace.stages) and trace.stages[-1].startswith("greedy")
    drawn = "scores argmax was taken over (greedy)" if greedy else "distribution the token was drawn from"
    table = Table(
        title=f"per step: p(model) = softmax of raw logits; p(sampling) = {drawn}",
        title_justify="left",
        title_style="dim",
    )
    for col, justify in [
        ("step", "right"),
        ("token", "left"),
        ("id", "right"),
        ("p(model)", "right"),
        ("p(sampling)", "right"),
        ("H(model)", "right"),
        ("H(sampling)", "right"),
        ("alternatives: p(model)/p(sampling)", "left"),
    ]:
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for s in trace.steps:
        c = s.chosen
        alts = Text()
        for a in s.top:
            if a.token_id == c.token_id:
                continue
            alts.append(show_token(a.text), style=prob_style(a.model_prob))
            alts.append(f" {short_prob(a.model_prob)}/{short_prob(a.sampling_prob)}  ")
        table.add_row(
            str(s.step),
            Text(show_token(c.text), style=prob_style(c.model_prob)),
            str(c.token_id),
            prob(c.model_prob),
            prob(c.sampling_prob),
            f"{abs(s.model_entropy):.2f}",
            f"{abs(s.sampling_entropy):.2f}",
            alts,
        )
    summary = Text.from_markup(
        f"{len(trace.steps)} tokens · log p(model) = {logprob(trace.model_logprob)} "
        f"(perplexity {trace.model_perplexity:.2f}) · log p(sampling) = {logprob(trace.sampling_logprob)} "
        f"(perplexity {trace.sampling_perplexity:.2f}) · entropies H in nats"
    )
    parts: list = [header, completion, table, summary]
    notes = stage_notes(trace)
    if notes:
        parts.append(Text("what the sampler chain did:\n" + "\n".join(f"  {n}" for n in notes)))
    return Group(*parts)


def stage_notes(trace: Trace) -> list[str]:
    """Plain-language notes: likely tokens a stage removed, unlikely tokens that were chosen."""
    notes = []
    for s in trace.steps:
        for a in s.top:
            if a.removed_by and a.model_prob >= NOTABLE_MODEL_PROB and not a.removed_by.startswith("greedy"):
                notes.append(
                    f"step {s.step}: {show_token(a.text)} (p(model) {prob(a.model_prob)}) removed by {a.removed_by}"
                    + _lowered_by(trace.stages, a)
                )
        c = s.chosen
        if c.model_rank > 1 and s.top and s.top[0].model_prob >= 0.5:
            notes.append(
                f"step {s.step}: chose {show_token(c.text)} (p(model) {prob(c.model_prob)}, rank {c.model_rank}) "
                f"over {show_token(s.top[0].text)} (p(model) {prob(s.top[0].model_prob)})"
            )
    return notes


def _lowered_by(stages: list[str], c: Candidate) -> str:
    """Name an earlier stage that cut the token's probability at least in half, if any."""
    before = c.model_prob
    for label, p in zip(stages, c.stage_probs):
        if label == c.removed_by:
            break
        if p <= before / 2:
            return f", after {label} lowered it from {prob(before)} to {prob(p)}"
        before = p
    return ""


def short_prob(p: float) -> str:
    if p == 0:
        return "0"
    if p < 0.001:
        return "<.001"
    return f"{p:.3f}".lstrip("0")
