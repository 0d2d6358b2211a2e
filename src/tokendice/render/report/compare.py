"""The comparison view: per pair of engines or models, KL both ways and JS per step along the
shared continuation (their model distributions: softmax of the raw logits, teacher-forced), the
aligned tokens, and the total variation distance between their completion distributions
(sampling distribution, by exact enumeration)."""

from __future__ import annotations

import math
from html import escape
from typing import Any

from tokendice.render.registry import view
from tokendice.render.report.page import card, note
from tokendice.render.report.svg import BLUE, GREEN, ORANGE, Bar, LineChart, Series, bar_chart, line_chart, nice_ceiling, num, shorten
from tokendice.render.report.trace import token_text

MAX_STEPS = 400
MAX_DOTS = 200
"""Points per series that carry a dot and a tooltip (the line passes through all; the table lists them)."""
"""Steps listed per pair in the aligned-token table (the chart draws them all)."""


"""Long tokens in the tables below break anywhere, so that a table fits its card (a section holds it once)."""


def wide(table: str) -> str:
    """A table that wraps its long tokens and, if still too wide, scrolls sideways rather than overflow its card."""
    return f'<div class="td-wide" style="overflow-x:auto">{table}</div>'


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _nats(x: float | None) -> str:
    if x is None or math.isinf(x):
        return "∞"
    return num(x)


def _lp(x: float | None) -> str:
    return "-∞" if x is None or x == -math.inf else num(x)


def _agree(ok: bool) -> str:
    return '<span class="td-good">yes</span>' if ok else '<span class="td-bad">no</span>'


def _steps_table(pair: Any) -> str:
    head = ["step", "token", "log p_A", "log p_B", "KL(A‖B)", "KL(B‖A)", "JS", "top-1 A", "top-1 B", "top-1 agree", "max |Δ log p| at"]
    rows = []
    for s in pair.steps[:MAX_STEPS]:
        rows.append(
            f'<tr><td class="n">{s.step}</td><td class="tok">{escape(token_text(s.text))}</td>'
            f'<td class="n">{_lp(s.logprob_a)}</td><td class="n">{_lp(s.logprob_b)}</td>'
            f'<td class="n">{_nats(s.kl_ab)}</td><td class="n">{_nats(s.kl_ba)}</td><td class="n">{_nats(s.js)}</td>'
            f'<td class="tok">{escape(token_text(s.top1_a))}</td><td class="tok">{escape(token_text(s.top1_b))}</td>'
            f"<td>{_agree(s.top1_agree)}</td>"
            f'<td class="tok">{_nats(s.max_logprob_diff)} at {escape(token_text(s.max_diff_token))}</td></tr>'
        )
    more = note(f"the first {MAX_STEPS} of {len(pair.steps)} steps (to_dataframe() has all)") if len(pair.steps) > MAX_STEPS else ""
    return wide(f'<table class="td-aligned"><thead><tr>{"".join(f"<th>{escape(h)}</th>" for h in head)}</tr></thead>'
                f'<tbody>{"".join(rows)}</tbody></table>') + more


def _summary(pair: Any) -> str:
    s = pair.summary()
    if not s.get("steps"):
        return note("no steps compared")
    first = s["first_greedy_difference"]
    differ = (f'<span class="td-bad">greedy choices first differ at step {first}</span>' if first is not None
              else '<span class="td-good">greedy choices agree at every step</span>')
    agree = round(s["top1_agreement"] * s["steps"])
    return (
        f'<p class="td-pair-summary">JS mean {_nats(s["mean_js"])}, max {_nats(s["max_js"])} (step {s["max_js_step"]}) · '
        f'KL(A‖B) mean {_nats(s["mean_kl_ab"])} · KL(B‖A) mean {_nats(s["mean_kl_ba"])} nats<br>'
        f'top-1 agreement {s["top1_agreement"]:.3f} ({agree}/{s["steps"]} steps) · {differ}<br>'
        f'max |Δ log p| {_nats(s["max_logprob_diff"])} at step {s["max_logprob_diff_step"]} '
        f'(<code>{escape(token_text(s["max_logprob_diff_token"]))}</code>) · log p(continuation): A {_lp(s["continuation_logprob_a"])}, '
        f'B {_lp(s["continuation_logprob_b"])}</p>'
    )


def _divergence_chart(pair: Any) -> str:
    steps = pair.steps
    if not steps:
        return ""
    labels = [token_text(s.text) for s in steps]
    finite = [x for s in steps for x in (s.kl_ab, s.kl_ba, s.js) if x is not None and math.isfinite(x)]
    chart = line_chart(LineChart(
        "divergence of the two model distributions before each continuation token", "step of the shared continuation", "nats",
        [Series("KL(A‖B)", [_finite(s.kl_ab) for s in steps], BLUE),
         Series("KL(B‖A)", [_finite(s.kl_ba) for s in steps], ORANGE, dashed=True),
         Series("JS", [_finite(s.js) for s in steps], GREEN)],
        x_labels=labels, highlight=pair.summary().get("first_greedy_difference"), y_max=nice_ceiling(max(finite, default=0.0)),
        max_dots=MAX_DOTS,
    ))  # fmt: skip
    infinite = [s.step for s in steps if not math.isfinite(s.kl_ab) or not math.isfinite(s.kl_ba)]
    if infinite:
        shown = ", ".join(str(k) for k in infinite[:20]) + (" …" if len(infinite) > 20 else "")
        chart += note(f"KL is infinite at steps {shown} (a token one side gives probability 0): not drawn there; JS stays finite.")
    return chart


def _completions(pair: Any) -> str:
    c = pair.completions
    if c is None:
        return note("completions not compared (--no-completions)")
    if c.tv is not None:
        tv = f'<b>total variation distance = {c.tv:.4f}</b> (exact)'
    else:
        tv = (f"<b>total variation distance in [{c.tv_low:.4f}, {c.tv_high:.4f}]</b> (bounds: the enumerations stopped with "
              f"{1 - c.found_mass_a:.4f} and {1 - c.found_mass_b:.4f} of the mass unexplored)")
    head = (f'<p class="td-tv">{tv}</p>' + note(
        f"completions of {c.max_new_tokens} token{'s' if c.max_new_tokens != 1 else ''} under the sampler chain (sampling "
        f"distribution), enumerated up to {c.max_nodes} prefixes each: A found {num(c.found_mass_a)} of its mass in "
        f"{c.completions_a} completions, B {num(c.found_mass_b)} in {c.completions_b}. Probabilities are exact, not sampled."))
    bars, rows = [], []
    for row in c.top:
        pa, pb = row.get("prob_a"), row.get("prob_b")
        text = token_text(row["text"])
        tip = (f"{text}\np_A {num(pa) if pa is not None else 'not found by A’s enumeration'}"
               f"\np_B {num(pb) if pb is not None else 'not found by B’s enumeration'}")
        bars.append(Bar(text, pa or 0.0, marker=pb, tooltip=tip, color=BLUE))
        rows.append(f'<tr><td class="tok">{escape(text)}</td><td class="n">{num(pa) if pa is not None else "–"}</td>'
                    f'<td class="n">{num(pb) if pb is not None else "–"}</td></tr>')
    if not bars:
        return head
    chart = bar_chart(bars, title="most likely completions under each side (sampling distribution, exact)",
                      value_label="p_A", marker_label="p_B", x_max=1.0)
    table = ('<table class="td-completions"><thead><tr><th>completion</th><th>p_A</th><th>p_B</th></tr></thead>'
             f'<tbody>{"".join(rows)}</tbody></table>' + note("–: not found within that side's enumeration budget"))
    return head + chart + table


def _pair(pair: Any) -> str:
    return (
        f'<div class="td-pair"><h3>A = {escape(pair.a)} · B = {escape(pair.b)}</h3>'
        + _summary(pair) + _divergence_chart(pair)
        + note("KL and JS in nats between the two model distributions (softmax of the raw logits), both fed the same "
               "continuation (teacher forcing); JS is at most ln 2 ≈ 0.693. The dashed red line: the first step whose top-1 differ.")
        + "<h3>aligned tokens</h3>" + _steps_table(pair)
        + "<h3>completions</h3>" + _completions(pair) + "</div>"
    )


@view("compare")
def compare_section(report: Any) -> str:
    run = f" · run {escape(report.run_id)}" if report.run_id else ""
    sides = " vs ".join(escape(e["label"]) for e in report.engines)
    meta = f"{sides} · top-{report.top_k} of each side for max |Δ log p|{run}"
    n = len(report.continuation_ids)
    intro = (
        f'<div class="td-tokens"><span class="td-prompt">{escape(report.prompt)}</span>'
        f'<mark title="{escape(f"the shared continuation: {report.continuation_source}", quote=True)}">{escape(report.continuation)}</mark></div>'
        + note(f"prompt{' (chat template)' if report.chat else ''}, then (marked) the shared continuation, {n} token{'s' if n != 1 else ''}: "
               f"{shorten(report.continuation_source, 200)}")
    )
    return card("Comparison", meta, intro, *(_pair(p) for p in report.pairs))
