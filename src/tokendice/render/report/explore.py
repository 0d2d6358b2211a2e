"""The explorer's tree as a view: every branch with its exact probability, the most likely
branch traced, and the samples drawn from nodes (counts against exact probabilities)."""

from __future__ import annotations

import json
import math
from html import escape
from typing import Any

from tokendice.render.registry import view
from tokendice.render.report.page import card, note
from tokendice.render.report.svg import BLUE, Bar, bar_chart, num
from tokendice.render.report.trace import trace_section


def branch_summary(tree: Any, branch: Any) -> dict[str, Any]:
    """One branch as the page lists it (JSON-able)."""
    forced = branch.forced
    return {
        "id": branch.id, "parent": branch.parent, "fork_step": branch.fork_step,
        "forced": forced.chosen.text if forced is not None else None, "text": branch.text, "prob": branch.prob,
        "logprob": branch.logprob if math.isfinite(branch.logprob) else None, "model_logprob": branch.model_logprob,
        "n_tokens": len(branch.steps), "finish_reason": branch.finish_reason, "current_sampler": branch.params == tree.params,
    }  # fmt: skip


def branches_table(tree: Any) -> str:
    rows = []
    depth: dict[int, int] = {}
    for b in tree.branches:
        depth[b.id] = 0 if b.parent is None else depth.get(b.parent, 0) + 1
        fork = "" if b.fork_step is None else f"from {b.parent} at step {b.fork_step}: {json.dumps(b.forced.chosen.text, ensure_ascii=False)}"
        width = max(1.0, 120 * b.prob) if b.prob > 0 else 0.0
        bar = f'<span style="display:inline-block;height:8px;width:{width:.0f}px;background:{BLUE};vertical-align:middle"></span>'
        rows.append(
            f'<tr data-branch="{b.id}"><td class="n">{b.id}</td><td style="padding-left:{8 + 14 * depth[b.id]}px">{escape(fork or "first branch")}</td>'
            f'<td class="tok">{escape(json.dumps(b.text, ensure_ascii=False))}</td><td class="n">{num(b.prob)} {bar}</td>'
            f'<td class="n">{num(b.model_logprob)}</td><td class="n">{len(b.steps)}</td></tr>'
        )
    return ('<table class="td-branches"><thead><tr><th>branch</th><th>forked</th><th>completion</th>'
            '<th>p(branch) under its sampler</th><th>log p(model)</th><th>tokens</th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def node_sample_section(node: Any) -> str:
    shown = node.completions[:15]
    bars = [Bar(c["text"], c["share"], c["ci_low"], c["ci_high"], c["exact_prob"],
                f'{json.dumps(c["text"], ensure_ascii=False)}: {c["count"]} of {node.n} = {num(c["share"])} '
                f'[{num(c["ci_low"])}, {num(c["ci_high"])}]; exact p(sampling | prefix) {num(c["exact_prob"])}') for c in shown]  # fmt: skip
    chart = bar_chart(bars, title=f"{node.n} samples from branch {node.branch} after step {node.step} ({json.dumps(node.prefix, ensure_ascii=False)})",
                      value_label=f"share of n={node.n} samples", marker_label="exact p(sampling | prefix)")  # fmt: skip
    more = f" · {len(node.completions) - len(shown)} more distinct completions not shown" if len(node.completions) > len(shown) else ""
    return f'<div class="td-node-sample">{chart}{note(f"{len(node.completions)} distinct completions, seed {node.seed}{more}; whiskers: 95% Wilson intervals")}</div>'


@view("explore")
def exploration_section(tree: Any) -> str:
    meta = (f"{escape(tree.model)} ({escape(tree.engine)}) · {len(tree.branches)} branches · seed {tree.seed}"
            + (f" · run {escape(tree.run_id)}" if tree.run_id else ""))
    parts = [
        note("Each branch is a whole completion: the first traced, each other one forked from a branch at a step by taking "
             "another token there, then sampled. p(branch) is exact: the probability that the branch's sampler, run from the "
             "prompt, produces exactly this completion (n × p of n samples would)."),
        branches_table(tree),
    ]
    if tree.branches:
        best = max(tree.branches, key=lambda b: b.logprob)
        parts.append(f"<h3>the most likely branch ({best.id})</h3>")
        parts.append(trace_section(tree.as_trace(best.id)))
    for node in tree.samples:
        parts.append(node_sample_section(node))
    return card(f"Explorer tree: {tree.prompt}", meta, *parts)
