"""Render semantic entropy in the terminal: the clusters of meaning, the measures with their
bootstrap intervals, the exact value (or its bounds), and the convergence of the sampled estimate."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from tokendice.render.registry import renderer
from tokendice.render.text import prob, show_token

NO_ANSWER = "<no answer>"
MEMBERS_SHOWN = 3
MAX_TEXT = 60


def _num(x: float | None, digits: int = 4) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _members(answers: list[str]) -> Text:
    shown = ["(no answer)" if a == NO_ANSWER else show_token(a) for a in answers[:MEMBERS_SHOWN]]
    text = ", ".join(shown)
    if len(text) > MAX_TEXT:
        text = text[: MAX_TEXT - 1] + "…"
    more = len(answers) - MEMBERS_SHOWN
    return Text(text + (f" (+{more} more)" if more > 0 else ""))


def _interval(r: Any, name: str) -> str:
    iv = r.intervals.get(name) or {}
    return "" if iv.get("low") is None else f" [{_num(iv['low'])}, {_num(iv['high'])}]"


@renderer("semantic")
def semantic_renderable(r: Any, rows: int = 15) -> Group:
    what = f"answers ({r.extract})" if r.extract else "completions"
    title = f"{what} of prompt {show_token(r.prompt)} clustered by meaning (judge {r.judge})"
    table = Table(title=escape(title), title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("members (first is the cluster's representative)")
    sampled = r.source == "samples"
    if sampled:
        table.add_column("count", justify="right")
        table.add_column(f"share (n={r.n})", justify="right")
        table.add_column("p weighted", justify="right")
    if r.exact is not None:
        table.add_column("p(sampling) exact", justify="right")
    for c in r.clusters[:rows]:
        cells: list[Any] = [str(c.cluster), _members(c.answers)]
        if sampled:
            cells += [str(c.count), prob(c.share), prob(c.weighted_prob)]
        if r.exact is not None:
            cells.append(prob(c.exact_prob))
        table.add_row(*cells)
    if len(r.clusters) > rows:
        table.add_row("", Text(f"… {len(r.clusters) - rows} more clusters (--json has all)", style="dim"))
    se, pe = r.semantic_entropy, r.predictive_entropy
    lines = []
    if sampled:
        b = r.bootstrap
        lines.append(f"semantic entropy, nats (n={r.n} samples; [{b.get('level', 0.95):.0%} bootstrap, {b.get('resamples')} resamples]):")
        lines.append(f"  discrete (cluster shares)       {_num(se.get('discrete'))}{_interval(r, 'discrete')}")
        lines.append(f"  weighted (sequence probability) {_num(se.get('weighted'))}{_interval(r, 'weighted')}")
        extra = len(r.clusters) - r.num_semantic_sets
        lines.append(f"  semantic sets                   {r.num_semantic_sets}" + (f" (and {extra} more that only the enumeration found)" if extra > 0 else ""))
        lines.append(f"predictive entropy (-mean log p(sampling)): naive {_num(pe.get('naive'))}{_interval(r, 'naive')}, "
                     f"length-normalised {_num(pe.get('length_normalised'))}{_interval(r, 'length_normalised')}")  # fmt: skip
    if r.exact is not None:
        e = r.exact
        if se.get("exact") is not None:
            lines.append(f"exact semantic entropy: {_num(se['exact'], 6)} nats (the enumeration holds all the mass)")
        else:
            high = "unbounded (vocabulary size unknown)" if se.get("exact_high") is None else _num(se["exact_high"], 6)
            lines.append(f"exact semantic entropy in [{_num(se.get('exact_low'), 6)}, {high}] nats: found mass {e['found']:.6f}, "
                         f"unexplored {e['unexplored']:.3g} (lower: all of it in one cluster; upper: spread over every completion it can hold)")  # fmt: skip
        if not sampled:
            lines.append(f"{r.num_semantic_sets} semantic sets among the completions found")
    if sampled and len(r.convergence) > 1:
        lines.append("convergence of the discrete estimate: " + " · ".join(
            f"N={p['n']}: {_num(p['discrete'], 3)}" for p in r.convergence))  # fmt: skip
    lines.append(f"judge {r.judge}" + (f" (threshold {r.threshold:g})" if r.threshold is not None else "") + f": {r.judged_pairs} pairs judged")
    sources = [f"samples: run {r.source_run_id}" if r.source_run_id and sampled else "",
               f"enumeration: run {r.exact_run_id or (r.source_run_id if not sampled else '')}" if r.exact is not None and (r.exact_run_id or not sampled) else ""]  # fmt: skip
    if any(sources):
        lines.append(" · ".join(s for s in sources if s))
    return Group(table, Text("\n".join(lines)))
