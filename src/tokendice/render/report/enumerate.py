"""The enumeration view: the explored tree as an icicle (width = probability under the sampling
distribution) with the unexplored mass as its own grey block, the cumulative mass against the
number of completions, the most probable completions, and where the rest of the mass is."""

from __future__ import annotations

import math
from html import escape
from typing import Any, Sequence

from tokendice.render.registry import view
from tokendice.render.report.page import card, note
from tokendice.render.report.sample import MIN_SHARE, branch_color, sampler_text
from tokendice.render.report.svg import Block, TreeNode, icicle, num, step_chart, tree_blocks
from tokendice.render.text import show_token

DEPTH = 10  # tokens of the tree drawn (enumerations default to max_new_tokens=10)
TOP = 25  # completions listed
FRONTIER, PRUNED = "#b5b5b5", "#dadada"


class _Prefix:
    __slots__ = ("completions", "children")

    def __init__(self) -> None:
        self.completions: list[Any] = []
        self.children: dict[int, _Prefix] = {}


def _common_prefix(texts: Sequence[str]) -> str:
    first, last = min(texts), max(texts)
    k = 0
    while k < min(len(first), len(last)) and first[k] == last[k]:
        k += 1
    return first[:k]


def tree_nodes(completions: Sequence[Any], depth: int = DEPTH) -> list[TreeNode]:
    """The prefix tree of the found completions. An enumeration keeps token ids and whole texts, not
    each token's text: a block is labelled with the text its completions share beyond its parent's;
    a prefix that leads to one completion ends in one block labelled with the rest of that text."""
    root = _Prefix()
    for c in completions:
        level = root
        for token in c.tokens[:depth]:
            level = level.children.setdefault(token, _Prefix())
            level.completions.append(c)

    def nodes(level: _Prefix, parent_text: str, tokens: tuple[int, ...], branch: int | None, d: int) -> list[TreeNode]:
        kids = sorted(level.children.items(), key=lambda kv: -math.fsum(c.prob for c in kv[1].completions))
        out = []
        for i, (token, p) in enumerate(kids):
            b = i if branch is None else branch
            mass = math.fsum(c.prob for c in p.completions)
            ids = tokens + (token,)
            if len(p.completions) == 1:
                c = p.completions[0]
                tip = (f"completion {show_token(c.text)}\np(sampling) {num(c.prob)} · p(model) {num(c.model_prob)} · "
                       f"{len(c.tokens)} tokens, ended by {c.finish_reason}")
                out.append(TreeNode(mass, show_token(c.text[len(parent_text):]), tip, branch_color(b, d)))
                continue
            text = _common_prefix([c.text for c in p.completions])
            tip = (f"prefix of {len(ids)} tokens (ids {' '.join(map(str, ids))}); its completions begin with {show_token(text)}\n"
                   f"{len(p.completions)} found completions beneath hold p(sampling) {num(mass)} "
                   "(part of the unexplored mass may lie beneath too)")
            out.append(TreeNode(mass, show_token(text[len(parent_text):]), tip, branch_color(b, d), nodes(p, text, ids, b, d + 1)))
        return out

    return nodes(root, "", (), None, 0)


def icicle_part(e: Any) -> str:
    from tokendice.experiments.decoding.enumerate import MAX_CHILDREN  # loaded already: it defines the result

    found = e.found_mass
    unexplored = max(0.0, 1.0 - found)

    def other(merged: Sequence[TreeNode], weight: float) -> str:
        return f"{len(merged)} other prefixes, merged (too narrow to draw): together p(sampling) {num(weight)}"

    blocks = tree_blocks(tree_nodes(e.completions), min_share=MIN_SHARE, other=other)
    # The unexplored mass: its own block after the found tree, frontier and pruned in two greys.
    rest = e.frontier_mass + e.pruned_mass
    frontier = unexplored * (e.frontier_mass / rest) if rest > 0 else unexplored
    if frontier > 0:
        blocks.append(Block(found, found + frontier, 0, "frontier", f"frontier: p(sampling) {num(e.frontier_mass)} in prefixes found "
                            "but not expanded (their completions are not listed)", FRONTIER))  # fmt: skip
    if unexplored - frontier > 0:
        blocks.append(Block(found + frontier, found + unexplored, 0, "pruned", f"pruned: p(sampling) {num(e.pruned_mass)} in children "
                            f"not kept (below min_prob, or past the {MAX_CHILDREN} most likely of a prefix)", PRUNED))  # fmt: skip
    chart = icicle(blocks, title="the explored tree (width: probability under the sampling distribution)",
                   depth_label="row: step (token position) · width: p(sampling) of the found completions beneath · grey: unexplored")  # fmt: skip
    return chart + note(
        "Width: the probability, under the sampling distribution (after the whole sampler chain), of the found completions "
        "beneath a prefix. Labels: the text a prefix's completions share beyond its parent's (an enumeration keeps token ids, not "
        "each token's text, so a label can run past its token when sibling continuations begin alike; hover for the token ids). "
        "A prefix that leads to one completion ends in one block holding the rest of its text. Grey on the "
        f"right: the unexplored mass ({num(unexplored)}): frontier {num(e.frontier_mass)} (prefixes not expanded) and pruned "
        f"{num(e.pruned_mass)}. Light grey inside the tree: rare prefixes, merged."
    )


def cumulative_part(e: Any) -> str:
    if not e.completions:
        return ""
    points, total = [], 0.0
    for k, c in enumerate(e.completions, 1):
        total += c.prob
        points.append((float(k), total))
    return step_chart(points, title="cumulative probability of the completions, most probable first", x_label="completions",
                      y_label="p(sampling) found", reference=e.target_mass, reference_label=f"target mass {num(e.target_mass)}")  # fmt: skip


def table_part(e: Any) -> str:
    rows = []
    for rank, c in enumerate(e.completions[:TOP], 1):
        rows.append(f'<tr><td class="n">{rank}</td><td class="tok">{escape(show_token(c.text))}</td><td class="n">{num(c.prob)}</td>'
                    f'<td class="n">{num(c.model_prob)}</td><td class="n">{len(c.tokens)}</td><td>{escape(c.finish_reason)}</td></tr>')
    rest = e.completions[TOP:]
    if rest:
        rows.append(f'<tr><td></td><td>… {len(rest)} more completions (to_dataframe() has all)</td>'
                    f'<td class="n">{num(math.fsum(c.prob for c in rest))}</td><td></td><td></td><td></td></tr>')
    head = "".join(f"<th>{h}</th>" for h in ("#", "completion", "p(sampling)", "p(model)", "tokens", "finish reason"))
    return (f"<h3>The most probable completions</h3><table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
            + note("p(sampling): exact probability under the sampling distribution (after the whole sampler chain); p(model): the "
                   "product of the raw-softmax probabilities of the same tokens."))  # fmt: skip


@view("enumerate")
def enumeration_section(e: Any) -> str:
    from tokendice.experiments.decoding.enumerate import MAX_CHILDREN

    rid = f" · run {escape(e.run_id)}" if e.run_id else ""
    meta = f"{escape(e.model or 'model?')} ({escape(e.engine or 'engine?')}) · {escape(sampler_text(e.params))}{rid}"
    found, count = e.found_mass, len(e.completions)
    words = (
        f"<p>Found <b>{count}</b> completion{'' if count == 1 else 's'}, holding <b>{num(found)}</b> of the probability under the sampling "
        f"distribution (target {num(e.target_mass)}). Unexplored: <b>{num(e.unexplored_mass)}</b> = frontier {num(e.frontier_mass)} "
        f"(prefixes found but not expanded) + pruned {num(e.pruned_mass)} (children below min_prob or past {MAX_CHILDREN} per prefix). "
        f"{e.expanded} prefixes expanded; stopped: {escape(e.stopped_because or '–')}.</p>"
    )
    prompt = f'<p>prompt: <span class="tok">{escape(show_token(e.prompt))}</span></p>'
    return card("Exact enumeration", meta, prompt, words, icicle_part(e), cumulative_part(e), table_part(e))
