"""Render a black-box trace (what an OpenAI-compatible server reported) in the terminal."""

from __future__ import annotations

import math
from typing import Any

from rich.console import Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from tokendice.render.registry import renderer
from tokendice.render.text import logprob, prob, prob_style, show_token


@renderer("blackbox_trace")
def blackbox_trace_renderable(trace: Any) -> Group:
    """A `BlackBoxTrace`: chosen tokens with reported logprobs and candidates, labelled."""
    server = trace.server or {}
    dist = trace.logprobs_distribution
    label = trace.label
    header = Text.from_markup(
        f"[bold]tokendice trace[/] · {escape(trace.model)} (openai-compatible server at {escape(str(server.get('base_url', '?')))}, "
        f"{escape(str(server.get('server', 'unknown')))}) · seed {trace.seed} (sent as {trace.request_seed})\n"
        f"logprobs: the server reports the [bold]{escape(dist.get('distribution', 'unknown'))}[/] distribution "
        f"({escape(dist.get('source', 'source unknown'))}): shown as p({escape(label)})\n"
        f"sent: {escape(', '.join(f'{k}={v}' for k, v in trace.request.items()))}"
    )
    completion = Text("prompt: ", style="bold")
    completion.append(trace.prompt)
    completion.append("\ncompletion: ", style="bold")
    for s in trace.steps:
        completion.append(s.text, style=f"underline {prob_style(s.prob or 0.0)}")
    completion.append(f"   [{trace.finish_reason}]", style="dim")

    table = Table(title=f"per step, as reported: p({label}) of the chosen token and of the top candidates", title_justify="left", title_style="dim")
    for col, justify in [("step", "right"), ("token", "left"), ("id", "right"), (f"p({label})", "right"), ("logprob", "right"),
                         ("rank", "right"), ("top mass", "right"), (f"reported candidates: p({label})", "left")]:  # fmt: skip
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for s in trace.steps:
        alts = Text()
        for text, lp in s.top:
            if text == s.text:
                continue
            p = math.exp(lp)
            alts.append(show_token(text), style=prob_style(p))
            alts.append(f" {prob(p)}  ")
        table.add_row(
            str(s.step), Text(show_token(s.text), style=prob_style(s.prob or 0.0)), "-" if s.token_id is None else str(s.token_id),
            prob(s.prob), logprob(s.logprob), "-" if s.rank is None else str(s.rank), prob(s.top_mass), alts,
        )  # fmt: skip
    total = trace.reported_logprob
    fingerprint = f" · system_fingerprint {trace.system_fingerprint}" if trace.system_fingerprint else ""
    summary = Text(f"{len(trace.steps)} tokens · log p({label}) = {logprob(total)}{fingerprint}")
    parts: list[Any] = [header, completion, table, summary, Text(f"note: {trace.note}", style="dim")]
    if trace.warnings:
        parts.append(Text("the chosen tokens contradict the reported logprobs:\n" + "\n".join(f"  {w}" for w in trace.warnings), style="yellow"))
    return Group(*parts)
