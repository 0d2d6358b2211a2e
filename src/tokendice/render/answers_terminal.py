"""Render answer distributions in the terminal: one row per answer, counts with Wilson intervals
and exact probabilities with their [p, p + unexplored] interval, then the fit test."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from tokendice.render.registry import renderer
from tokendice.render.text import prob, show_token

NO_ANSWER = "<no answer>"
MAX_TEXT = 40


def _answer(answer: str) -> Text:
    if answer == NO_ANSWER:
        return Text("(no answer)", style="dim italic")
    shown = show_token(answer)
    return Text(shown if len(shown) <= MAX_TEXT else shown[: MAX_TEXT - 2] + '…"')


@renderer("answers")
def answers_renderable(d: Any, rows: int = 15) -> Group:
    samples, exact = d.n is not None, d.unexplored_mass is not None
    bounded = exact and d.unexplored_mass > 0  # [p, p + unexplored] says more than p
    title = f"answers ({d.extract}) of prompt {show_token(d.prompt)}"
    table = Table(title=escape(title), title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("answer")
    if samples:
        table.add_column("count", justify="right")
        table.add_column(f"observed share (n={d.n}) [95% Wilson]", justify="right")
    if exact:
        table.add_column("p(sampling) exact", justify="right")
    if bounded:
        table.add_column(escape("[p, p + unexplored]"), justify="right")
    table.add_column("completions", justify="right")
    distinct = {c.answer: c.distinct for c in d.completions}
    for rank, a in enumerate(d.answers[:rows], 1):
        cells: list[Any] = [str(rank), _answer(a.answer)]
        if samples:
            cells += [str(a.count), f"{a.share:.4f} [{a.ci_low:.4f}, {a.ci_high:.4f}]"]
        if exact:
            cells.append(prob(a.exact_prob))
        if bounded:
            cells.append(f"[{prob(a.exact_prob)}, {prob(d.exact_high(a))}]")
        cells.append(str(distinct.get(a.answer, "")))
        table.add_row(*cells)
    if len(d.answers) > rows:
        rest = d.answers[rows:]
        cells = ["", Text(f"… {len(rest)} more answers", style="dim")]
        if samples:
            cells += [str(sum(a.count or 0 for a in rest)), ""]
        if exact:
            cells.append(prob(sum(a.exact_prob or 0.0 for a in rest)))
        if bounded:
            cells.append("")
        table.add_row(*cells, "")
    lines = []
    if exact:
        lines.append(f"exact probabilities: {d.exact_source}; unexplored mass {d.unexplored_mass:.6f} (each answer's true "
                     "probability lies in [p, p + unexplored])")  # fmt: skip
    if d.fit is not None:
        f = d.fit
        lines.append(f"goodness of fit of the answer counts ({'G-test' if f.method == 'g' else 'chi-square'}, n={f.n}, {f.categories} "
                     f"categories after pooling rare ones): statistic {f.statistic:.2f}, dof {f.dof}, p = {f.p_value:.3g}")  # fmt: skip
    sources = [f"samples: run {d.sample_run_id}" if d.sample_run_id else "", f"enumeration: run {d.enumeration_run_id}" if d.enumeration_run_id else ""]
    if any(sources):
        lines.append(" · ".join(s for s in sources if s))
    return Group(table, Text("\n".join(lines))) if lines else Group(table)
