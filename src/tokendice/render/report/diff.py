"""The diff view: two generations side by side, token by token, the first divergence marked,
both sides' top candidates there (from traces), and the drift of their model log-probs
(softmax of the raw logits) along the common prefix."""

from __future__ import annotations

import math
from html import escape
from typing import Any

from tokendice.render.registry import view
from tokendice.render.report.compare import MAX_DOTS, wide
from tokendice.render.report.page import card, note
from tokendice.render.report.svg import BLUE, ORANGE, RED, LineChart, Series, line_chart, nice_ceiling, num
from tokendice.render.report.trace import token_text

DRIFT_ROWS = 40
"""A diff lists every common step up to this many; past it, the largest drifts (all of them folded)."""

FORK = "background:#ffd9d6;outline:2px solid #c8423b;border-radius:2px"
AFTER = "background:#fff1d6;border-radius:2px"


def _p(lp: float | None) -> float | None:
    return None if lp is None else math.exp(lp)


def _describe(side: Any) -> str:
    what = [escape(side.source)]
    if side.model:
        what.append(escape(side.model) + (f" ({escape(side.engine)})" if side.engine else ""))
    if side.condition:
        what.append(f"audit condition: {escape(side.condition)}")
    what.append(f"{len(side.tokens)} tokens" + (f", finished by {escape(side.finish_reason)}" if side.finish_reason else ""))
    return " · ".join(what)


def _side(name: str, side: Any, fork: int | None) -> str:
    """One generation: the prompt, then its tokens; from the fork on, marked."""
    spans = []
    for t, text in enumerate(side.token_texts):
        lp = side.model_logprobs[t] if t < len(side.model_logprobs) else None
        tip = f"{name} step {t}: {token_text(text)}" + (f" · p(model) {num(math.exp(lp))} (log {num(lp)})" if lp is not None else " · p(model) not reported")
        style = ""
        if fork is not None and t == fork:
            style, tip = FORK, tip + "\nthe first divergence"
        elif fork is not None and t > fork:
            style = AFTER
        cls = ' class="td-fork"' if fork is not None and t == fork else ""
        spans.append(f'<span{cls} title="{escape(tip, quote=True)}"' + (f' style="{style}"' if style else "") + f">{escape(text)}</span>")
    if fork is not None and fork >= len(side.tokens):
        spans.append(f'<span class="td-fork" title="{escape(f"{name} had ended at step {fork}", quote=True)}" style="{FORK}">(end)</span>')
    prompt = f'<span class="td-prompt">{escape(side.prompt)}</span>' if side.prompt is not None else ""
    return (f'<div class="td-side"><h3>{name}</h3><div class="td-meta">{_describe(side)}</div>'
            f'<div class="td-tokens">{prompt}{"".join(spans)}</div></div>')


def _tops(report: Any) -> str:
    d = report.divergence or {}
    top_a, top_b = d.get("top_a") or [], d.get("top_b") or []
    if not top_a and not top_b:
        return note("the top candidates at the fork are known only for traces (stored samples keep the chosen tokens' log-probs)")
    chosen = {d["a"].get("token_id"), d["b"].get("token_id")}
    margins = [f" (margin {num(d[k], 3)})" if d.get(k) is not None else "" for k in ("margin_a", "margin_b")]
    rows = []
    for i in range(max(len(top_a), len(top_b))):
        cells = [f'<td class="n">{i + 1}</td>']
        for top in (top_a, top_b):
            if i < len(top):
                c = top[i]
                text = escape(token_text(c["text"]))
                text = f"<b>{text}</b>" if c["token_id"] in chosen else text
                p = c.get("model_prob")
                cells.append(f'<td class="tok">{text}</td><td class="n">{num(p) if p is not None else "–"}</td>')
            else:
                cells.append("<td></td><td></td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return (f"<h3>top candidates at step {d['step']}</h3>"
            + note("the model distribution (softmax of the raw logits) of each side at the fork; bold: the tokens the two chose; "
                   "margin: top-1 minus top-2 log-prob")
            + wide(f'<table class="td-tops"><thead><tr><th>rank</th><th>A{escape(margins[0])}</th><th>p(model)</th>'
            f'<th>B{escape(margins[1])}</th><th>p(model)</th></tr></thead><tbody>{"".join(rows)}</tbody></table>'))


def _drift_rows(rows: list[dict[str, Any]]) -> str:
    body = "".join(
        f'<tr><td class="n">{r["step"]}</td><td class="tok">{escape(token_text(r["text"]))}</td>'
        f'<td class="n">{num(r["logprob_a"])}</td><td class="n">{num(r["logprob_b"])}</td><td class="n">{num(r["abs_diff"])}</td></tr>'
        for r in rows
    )
    return wide('<table class="td-drift"><thead><tr><th>step</th><th>token</th><th>log p A</th><th>log p B</th><th>|Δ|</th></tr></thead>'
            f"<tbody>{body}</tbody></table>")


def _drift(report: Any) -> str:
    rows = report.drift
    if not rows:
        return note("no common steps: the two differ from the first token")
    known = [r for r in rows if r["abs_diff"] is not None]
    title = (f"log-prob drift along the common prefix ({report.common_steps} token{'s' if report.common_steps != 1 else ''}): "
             "max |Δ log p(model)| = "
             f"{num(report.max_drift) if report.max_drift is not None else '– (log-probs not reported)'}")
    parts = [f"<h3>{escape(title)}</h3>"]
    if len(known) > 1:  # one point is no chart: the table says it
        parts.append(line_chart(LineChart(
            "|log p_A − log p_B| of each common token (model distribution)", "step", "",
            [Series("|Δ log p(model)|", [r["abs_diff"] for r in rows], RED)], x_labels=[token_text(r["text"]) for r in rows],
            y_max=nice_ceiling(max(r["abs_diff"] for r in known)), max_dots=MAX_DOTS,
        ), height=180))  # fmt: skip
    if report.max_drift == 0:
        parts.append(note("|Δ| = 0 at every step: the two sides' log-probs of the common tokens are bit-identical."))
    if len(rows) <= DRIFT_ROWS:
        parts.append(_drift_rows(rows))
    else:
        largest = sorted(sorted(rows, key=lambda r: -(r["abs_diff"] or 0))[: DRIFT_ROWS // 2], key=lambda r: r["step"])
        parts.append(note(f"the {len(largest)} largest drifts of {len(rows)} steps") + _drift_rows(largest))
        parts.append(f"<details><summary>all {len(rows)} common steps</summary>{_drift_rows(rows)}</details>")
    return "".join(parts)


def _probs_chart(report: Any) -> str:
    a, b = report.a, report.b
    n = max(len(a.tokens), len(b.tokens))
    if n == 0 or (all(x is None for x in a.model_logprobs) and all(x is None for x in b.model_logprobs)):
        return ""

    def label(t: int) -> str:
        ta = token_text(a.token_texts[t]) if t < len(a.tokens) else "(end)"
        tb = token_text(b.token_texts[t]) if t < len(b.tokens) else "(end)"
        return ta if ta == tb else f"A {ta} / B {tb}"

    labels = [label(t) for t in range(n)]
    return line_chart(LineChart(
        "p(model) of each side's own token", "step", "p(model)",
        [Series("A", [_p(x) for x in a.model_logprobs], BLUE), Series("B", [_p(x) for x in b.model_logprobs], ORANGE, dashed=True)],
        y_max=1.0, x_labels=labels, highlight=report.first_divergence, max_dots=MAX_DOTS,
    ), height=190)  # fmt: skip


@view("diff")
def diff_section(report: Any) -> str:
    a, b = report.a, report.b
    k = report.first_divergence
    if report.identical:
        verdict = f'<p class="td-verdict"><span class="td-good">identical: the same {report.common_steps} tokens</span></p>'
    else:
        d = report.divergence or {}

        def choice(c: dict[str, Any]) -> str:
            lp = c.get("model_logprob")
            return f"<code>{escape(token_text(c.get('text', '')))}</code>" + ("" if lp is None else f" (p(model) {num(math.exp(lp))})")

        verdict = (f'<p class="td-verdict"><span class="td-bad">first divergence at step {k}</span> (after {report.common_steps} '
                   f"common tokens): A {choice(d.get('a', {}))} vs B {choice(d.get('b', {}))}</p>")
    notes = "".join(f'<p class="td-bad">note: {escape(x)}</p>' for x in report.notes)
    sides = f'<div class="td-sides">{_side("A", a, k)}{_side("B", b, k)}</div>'
    return card(
        "Diff of two generations",
        f"A: {escape(a.source)} · B: {escape(b.source)}",
        notes,
        verdict,
        sides,
        note("Hover a token for its p(model) (softmax of the raw logits). Marked in red: the first divergence; after it, shaded."),
        _tops(report) if not report.identical else "",
        _probs_chart(report),
        _drift(report),
    )
