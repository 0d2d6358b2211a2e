"""The trace view: the completion coloured by probability, p and H over steps, and at every step
the top candidates under both distributions with what each stage of the sampler chain did."""

from __future__ import annotations

import json
from html import escape
from typing import Any

from tokendice.render.registry import view
from tokendice.render.report.page import card, note, uid
from tokendice.render.report.svg import BLUE, GREEN, ORANGE, PURPLE, LineChart, Series, line_chart, num


def prob_color(p: float) -> str:
    """Red (unlikely) through yellow to green (likely), pale enough to read text on."""
    return f"hsl({int(120 * max(0.0, min(1.0, p)))}, 70%, 84%)"


def token_text(text: str) -> str:
    """A token for a table: quoted, with whitespace visible."""
    return json.dumps(text, ensure_ascii=False)


def _tooltip(step: Any) -> str:
    c = step.chosen
    lines = [f"step {step.step}: {token_text(c.text)} (id {c.token_id})",
             f"p(model) {num(c.model_prob)} · p(sampling) {num(c.sampling_prob)} · model rank {c.model_rank}",
             "top candidates, p(model) / p(sampling):"]
    for a in step.top:
        mark = "→" if a.token_id == c.token_id else " "
        removed = f"  removed by {a.removed_by}" if a.removed_by else ""
        lines.append(f"{mark} {token_text(a.text)} {num(a.model_prob)} / {num(a.sampling_prob)}{removed}")
    return "\n".join(lines)


def _tokens(trace: Any, ids: str, by: str) -> str:
    spans = []
    for s in trace.steps:
        c = s.chosen
        spans.append(
            f'<a href="#{ids}s{s.step}" data-step="{s.step}" title="{escape(_tooltip(s), quote=True)}" '
            f'style="--pm:{prob_color(c.model_prob)};--ps:{prob_color(c.sampling_prob)}">{escape(c.text)}</a>'
        )
    return f'<div class="td-tokens td-by-{by}"><span class="td-prompt">{escape(trace.prompt)}</span>{"".join(spans)}</div>'


def step_table(step: Any, stages: list[str], forkable: bool = False) -> str:
    """A step's candidates (the model's top tokens and the chosen one) with the probability after
    every stage of the chain; removed ones greyed. Rows carry their token id (`data-token`);
    `forkable` marks them as clickable (the explorer forks there)."""
    head = "".join(f"<th>after {escape(label)}</th>" for label in stages)
    rows = []
    listed = [step.chosen] + [c for c in step.top if c.token_id != step.chosen.token_id]
    for c in sorted(listed, key=lambda c: c.model_rank):
        cls = "td-chosen" if c.token_id == step.chosen.token_id else ("td-removed" if c.removed_by else "")
        if forkable:
            cls += " td-forkable"
        after = "".join(f'<td class="n">{num(p)}</td>' for p in c.stage_probs)
        rows.append(
            f'<tr class="{cls.strip()}" data-step="{step.step}" data-token="{c.token_id}"><td class="n">{c.model_rank}</td>'
            f'<td class="tok">{escape(token_text(c.text))}</td><td class="n">{num(c.model_prob)}</td>{after}'
            f'<td class="n">{num(c.sampling_prob)}</td><td>{escape(c.removed_by or "")}</td></tr>'
        )
    return (f'<table class="td-candidates"><thead><tr><th>rank</th><th>token</th><th>p(model)</th>{head}<th>p(sampling)</th>'
            f'<th>removed by</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')


def _step_panel(trace: Any, step: Any, ids: str) -> str:
    first = " td-first" if step.step == 0 else ""
    chosen = step.chosen
    return (
        f'<div class="td-step{first}" id="{ids}s{step.step}" data-step="{step.step}"><h3>step {step.step}: chose {escape(token_text(chosen.text))} '
        f"(p(model) {num(chosen.model_prob)}, p(sampling) {num(chosen.sampling_prob)}, model rank {chosen.model_rank})</h3>"
        f'<div class="td-note">H(model) {num(step.model_entropy)} nats · H(sampling) {num(step.sampling_entropy)} nats · '
        f"the model's top {len(step.top)} tokens (and the chosen one), with the probability after every stage of the chain; "
        "grey: removed, with the stage that removed it</div>"
        f"{step_table(step, list(trace.stages))}</div>"
    )


@view("trace")
def trace_section(trace: Any) -> str:
    ids = uid()
    chain = " → ".join(trace.stages) or "none: sampling from the model's own distribution"
    meta = (f"{escape(trace.model)} ({escape(trace.engine)}) · seed {trace.seed} · rng {escape(trace.rng)} · chain: {escape(chain)}"
            + (f" · run {escape(trace.run_id)}" if trace.run_id else ""))
    toggle = (
        f'<input type="radio" name="{ids}by" id="{ids}m" class="td-model" checked><label class="td-toggle" for="{ids}m"> colour by p(model)</label> '
        f'<input type="radio" name="{ids}by" id="{ids}p" class="td-sampling"><label class="td-toggle" for="{ids}p"> colour by p(sampling)</label>'
    )
    labels = [token_text(s.text) for s in trace.steps]
    probs = line_chart(LineChart(
        "probability of the chosen token", "step", "probability",
        [Series("p(model)", [s.chosen.model_prob for s in trace.steps], BLUE),
         Series("p(sampling)", [s.chosen.sampling_prob for s in trace.steps], ORANGE)],
        y_max=1.0, x_labels=labels, link_prefix=f"{ids}s",
    ))  # fmt: skip
    entropies = line_chart(LineChart(
        "entropy of the next-token distribution", "step", "nats",
        [Series("H(model)", [s.model_entropy for s in trace.steps], GREEN),
         Series("H(sampling)", [s.sampling_entropy for s in trace.steps], PURPLE, dashed=True)],
        x_labels=labels, link_prefix=f"{ids}s",
    ), height=180)  # fmt: skip
    summary = (f"{len(trace.steps)} tokens, finished by {trace.finish_reason} · log p(model) {num(trace.model_logprob)} "
               f"(perplexity {num(trace.model_perplexity)}) · log p(sampling) {num(trace.sampling_logprob)} "
               f"(perplexity {num(trace.sampling_perplexity)})")
    steps = "".join(_step_panel(trace, s, ids) for s in trace.steps)
    return card(
        "Trace",
        meta,
        f"<div>{toggle}",
        _tokens(trace, ids, "model"),
        _tokens(trace, ids, "sampling") + "</div>",
        note("p(model): softmax of the raw logits, what the model believed. p(sampling): the distribution the token was drawn "
             "from, after the whole sampler chain. Hover a token for its alternatives; click it (or a point) for its step."),
        note(summary),
        probs,
        entropies,
        f'<div class="td-steps">{steps}</div>',
    )
