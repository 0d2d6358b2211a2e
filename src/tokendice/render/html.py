"""HTML for notebooks: tokens colored by model probability, alternatives on hover.

All generated and prompt text is escaped: it is untrusted.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

from tokendice.render.notebook import view
from tokendice.render.text import prob, show_token

if TYPE_CHECKING:
    from tokendice.experiments.trace.trace import Trace


def _color(p: float) -> str:
    # hue 0 (red, unlikely) .. 120 (green, likely)
    return f"hsl({int(120 * max(0.0, min(1.0, p)))}, 70%, 85%)"


@view("trace")
def trace_html(trace: Trace) -> str:
    spans = []
    for s in trace.steps:
        c = s.chosen
        lines = [
            f"step {s.step}: {show_token(c.text)} id {c.token_id}",
            f"p(model) {prob(c.model_prob)} · p(sampling) {prob(c.sampling_prob)} · rank {c.model_rank}",
            "alternatives: p(model) / p(sampling)",
        ]
        for a in s.top:
            mark = "→ " if a.token_id == c.token_id else "  "
            removed = f" (removed by {a.removed_by})" if a.removed_by else ""
            lines.append(f"{mark}{show_token(a.text)} {prob(a.model_prob)} / {prob(a.sampling_prob)}{removed}")
        title = escape("\n".join(lines), quote=True)
        spans.append(
            f'<span title="{title}" style="background:{_color(c.model_prob)};border-radius:3px;'
            f'white-space:pre-wrap">{escape(c.text)}</span>'
        )
    chain = escape(" → ".join(trace.stages) or "none")
    return (
        '<div class="tokendice-trace" style="font-family:monospace;line-height:1.8">'
        f"<div><b>{escape(trace.model)}</b> ({escape(trace.engine)}) · seed {trace.seed} · chain: {chain}"
        f"{' · run ' + escape(trace.run_id) if trace.run_id else ''}</div>"
        f'<div><span style="color:#666">{escape(trace.prompt)}</span>{"".join(spans)}</div>'
        f"<div style='color:#666;font-size:90%'>{len(trace.steps)} tokens · log p(model) "
        f"{trace.model_logprob:.3f} · log p(sampling) {trace.sampling_logprob:.3f} · "
        "color = p(model) of the chosen token; hover for alternatives</div></div>"
    )
