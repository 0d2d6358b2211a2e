"""The answer-distribution view: one bar per answer (the observed share of the samples with its
95% Wilson interval; the exact probability from an enumeration marked, with its interval
[p, p + unexplored mass]), the goodness-of-fit test in words, and a table with the completions
behind each answer."""

from __future__ import annotations

from html import escape
from typing import Any

from tokendice.render.registry import view
from tokendice.render.report.page import card, note
from tokendice.render.report.perturb import nice_max
from tokendice.render.report.sample import FIT_NAMES, fit_verdict, interval, sampler_text
from tokendice.render.report.svg import GREEN, Bar, bar_chart, num
from tokendice.render.text import show_token

TOP = 20  # answers drawn and listed
NO_ANSWER = "<no answer>"


def answer_text(answer: str) -> str:
    """An answer as a quoted literal; the missing answer as a phrase (it is no text of the model's)."""
    return "(no answer)" if answer == NO_ANSWER else show_token(answer)


def _tip(d: Any, a: Any, examples: dict[str, Any]) -> str:
    lines = [f"answer {answer_text(a.answer)} ({d.extract})"]
    if a.count is not None:
        lines.append(f"{a.count} of n={d.n} samples: observed share {num(a.share)}, 95% Wilson interval {interval(a.ci_low, a.ci_high)}")
    if a.exact_prob is not None:
        lines.append(f"exact p(sampling) {num(a.exact_prob)} (sum over its enumerated completions); "
                     f"with the unexplored mass: {interval(a.exact_prob, d.exact_high(a))}")  # fmt: skip
    behind = examples.get(a.answer)
    if behind is not None:
        shown = ", ".join(show_token(e.text) for e in behind.examples)
        lines.append(f"{behind.distinct} distinct completion{'' if behind.distinct == 1 else 's'}: {shown}" + (", …" if behind.distinct > len(behind.examples) else ""))
    return "\n".join(lines)


def chart_part(d: Any) -> str:
    top = d.answers[:TOP]
    if not top:
        return note("no answers")
    examples = {c.answer: c for c in d.completions}
    exact = d.unexplored_mass is not None
    unexplored = d.unexplored_mass or 0.0
    more = f"top {len(top)} of {len(d.answers)} answers" if len(d.answers) > len(top) else f"the {len(d.answers)} answers"
    if d.n is not None:
        bars = [Bar(answer_text(a.answer), a.share, a.ci_low, a.ci_high, a.exact_prob, _tip(d, a, examples),
                    marker_high=d.exact_high(a) if exact and unexplored > 0 else None) for a in top]
        marker = ""
        if exact:
            marker = "exact p(sampling)" + (f", line: [p, p + unexplored {num(unexplored)}]" if unexplored > 0 else "")
        return bar_chart(bars, title=f"{more} ({d.extract})", value_label=f"observed share of n={d.n} samples",
                         interval_label="95% Wilson interval", marker_label=marker, x_max=_axis_end(bars))  # fmt: skip
    bars = [Bar(answer_text(a.answer), a.exact_prob, a.exact_prob, d.exact_high(a), tooltip=_tip(d, a, examples), color=GREEN)
            for a in top]
    return bar_chart(bars, title=f"{more} ({d.extract})", value_label="exact p(sampling)",
                     interval_label=f"[p, p + unexplored {num(unexplored)}]", x_max=_axis_end(bars))  # fmt: skip


def _axis_end(bars: list[Bar]) -> float:
    return min(1.0, nice_max(max([b.high or b.value for b in bars] + [max(b.marker or 0.0, b.marker_high or 0.0) for b in bars])))


def words_part(d: Any) -> str:
    parts = []
    if d.n is not None:
        parts.append(f"<b>n={d.n}</b> samples")
    if d.unexplored_mass is not None:
        parts.append(f"exact probabilities from an enumeration, unexplored mass <b>{num(d.unexplored_mass)}</b>")
    parts.append(f"<b>{len(d.answers)}</b> distinct answer{'' if len(d.answers) == 1 else 's'} read with <code>{escape(d.extract)}</code>")
    return "<p>" + " · ".join(parts) + "</p>"


def fit_part(d: Any) -> str:
    if d.n is None or d.unexplored_mass is None:
        return ""
    fit = d.fit
    if fit is None:
        return "<p><b>Goodness of fit:</b> no test.</p>"
    verdict = fit_verdict(fit.p_value, "the exact answer probabilities")
    stat = "G" if fit.method == "g" else "χ²"
    return (f"<p><b>Goodness of fit:</b> {escape(FIT_NAMES.get(fit.method, fit.method))} of the answer counts (n={fit.n}) against the "
            f"exact answer probabilities: {stat} = {num(fit.statistic)}, {fit.dof} degrees of freedom, {fit.categories} categories "
            f"(the unexplored mass in one cell, with the samples whose completion the enumeration did not list, whatever their "
            f"answer, and the answers expecting fewer than 5 samples), p = {num(fit.p_value, 3)}: "
            f"{verdict}.</p>")  # fmt: skip


def table_part(d: Any) -> str:
    examples = {c.answer: c for c in d.completions}
    samples, exact = d.n is not None, d.unexplored_mass is not None
    head = ["#", "answer"]
    if samples:
        head += ["count", f"observed share (n={d.n})", "95% Wilson interval"]
    bounded = exact and d.unexplored_mass > 0  # [p, p + unexplored] says more than p
    if exact:
        head += ["exact p(sampling)"] + (["[p, p + unexplored]"] if bounded else [])
    head += ["completions behind it"]
    rows = []
    for rank, a in enumerate(d.answers[:TOP], 1):
        cells = [f'<td class="n">{rank}</td>', f'<td class="tok">{escape(answer_text(a.answer))}</td>']
        if samples:
            cells += [f'<td class="n">{a.count}</td>', f'<td class="n">{num(a.share)}</td>', f'<td class="n" style="white-space:nowrap">{interval(a.ci_low, a.ci_high)}</td>']
        if exact:
            cells.append(f'<td class="n">{num(a.exact_prob)}</td>')
        if bounded:
            cells.append(f'<td class="n" style="white-space:nowrap">{interval(a.exact_prob, d.exact_high(a))}</td>')
        behind = examples.get(a.answer)
        shown = ""
        if behind is not None:
            listed = ", ".join(escape(show_token(e.text)) for e in behind.examples)
            shown = f"{behind.distinct}: {listed}" + (", …" if behind.distinct > len(behind.examples) else "")
        cells.append(f'<td class="tok">{shown}</td>')
        rows.append(f"<tr>{''.join(cells)}</tr>")
    rest = d.answers[TOP:]
    if rest:
        rows.append(f"<tr><td></td><td>… {len(rest)} more answers (to_dataframe() has all)</td></tr>")
    head_html = "".join(f"<th>{escape(h)}</th>" for h in head)
    return f'<table class="td-wide"><thead><tr>{head_html}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def explanation(d: Any) -> str:
    said = []
    if d.n is not None:
        said.append(f"Observed share: the share of the n={d.n} samples whose completion gives the answer, with its 95% Wilson interval.")
    if d.unexplored_mass is not None:
        said.append("Exact p(sampling): the sum of the exact probabilities, under the sampling distribution (after the whole sampler "
                    "chain), of the enumerated completions that give the answer; the completions not enumerated hold the unexplored "
                    f"mass ({num(d.unexplored_mass)}), so the answer's true probability lies in [p, p + unexplored].")
    said.append(f"Answers read with {d.extract}: {d.to_dict()['normalisation']}.")
    return note(" ".join(said))


@view("answers")
def answers_section(d: Any) -> str:
    runs = []
    if d.sample_run_id:
        runs.append(f"samples: run {escape(d.sample_run_id)}")
    if d.enumeration_run_id:
        runs.append(f"enumeration: run {escape(d.enumeration_run_id)}")
    meta = (f"{escape(d.model or 'model?')} ({escape(d.engine or 'engine?')}) · {escape(sampler_text(d.params))}"
            + "".join(f" · {r}" for r in runs))  # fmt: skip
    prompt = f'<p>prompt: <span class="tok">{escape(show_token(d.prompt))}</span></p>'
    return card("Answers", meta, prompt, words_part(d), chart_part(d), explanation(d), fit_part(d), table_part(d))
