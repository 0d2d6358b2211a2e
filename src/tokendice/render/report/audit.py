"""The audit views: a determinism audit (conditions against a baseline) and a prompt set's
agreement (TARr@N / TARa@N). Agreement is the share of a condition's repeats whose tokens are
identical to the baseline's first run; margins and drift are the model's (softmax of the raw
logits)."""

from __future__ import annotations

import math
from html import escape
from typing import Any, Sequence

from tokendice.render.registry import view
from tokendice.render.report.compare import MAX_DOTS, wide
from tokendice.render.report.page import card, note
from tokendice.render.report.svg import BLUE, GREEN, RED, Bar, Cell, LineChart, Series, bar_chart, good_bad_color, heatmap, line_chart, num, shorten
from tokendice.render.report.trace import token_text
from tokendice.render.text import setup_words

MAX_PROMPTS = 60
"""Prompts drawn as bars in an agreement view (the table lists up to MAX_ROWS)."""
MAX_ROWS = 300
MAX_OUTPUTS = 3
"""Distinct outputs listed per prompt or condition (the rest are counted)."""


def sampler_words(params: dict[str, Any], seed: int, rng: str) -> str:
    """"greedy", or the seed, RNG mode and the sampler settings that differ from none."""
    if params.get("do_sample") is False or params.get("temperature") == 0:
        return "greedy"
    knobs = [f"temperature {params['temperature']}"] if params.get("temperature", 1.0) != 1.0 else []
    knobs += [f"{k} {params[k]}" for k in ("top_k", "top_p", "min_p") if params.get(k) not in (None, 0, 0.0, 1.0)]
    return ", ".join([f"seed {seed}", f"rng {rng}", *knobs])


def _verdict_class(c: Any) -> str:
    if c.changes_output:
        return "td-bad"
    if not c.ran:
        return ""
    return "td-drift" if c.max_logprob_diff else "td-good"


def _span(text: str, cls: str) -> str:
    style = ' style="color:#a86b00;font-weight:600"' if cls == "td-drift" else ""
    return f'<span class="{cls}"{style}>{escape(text)}</span>'


def _cell(c: Any, repeats: int) -> Cell:
    """One condition on one prompt: coloured by agreement, with the fork and its margin."""
    lines = [f"{c.label}: {c.verdict}"]
    if not c.ran:
        return Cell(None, c.status, "\n".join(lines))
    share = c.n_identical / c.repeats if c.repeats else None
    lines.append(f"{c.n_identical}/{c.repeats} repeats identical to the baseline's first run (agreement {num(share or 0)})")
    lines.append(f"{c.unique_outputs} distinct output{'s' if c.unique_outputs != 1 else ''} over {c.repeats} repeats · TARr@{c.repeats} {num(c.tarr)}")
    text = f"{c.n_identical}/{c.repeats} identical"
    if c.first_divergence is not None:
        lines.append(f"first divergence at step {c.first_divergence}: baseline {token_text(c.baseline_token or '')} vs "
                     f"{token_text(c.condition_token or '')} ({c.divergent_repeats}/{c.repeats} repeats fork)")
        if c.margin is not None:
            lines.append(f"top-1 − top-2 model log-prob there: baseline {num(c.margin, 3)}"
                         + (f", under {c.label} {num(c.condition_margin, 3)}" if c.condition_margin is not None else ""))
        text = f"{c.n_identical}/{c.repeats} · step {c.first_divergence}" + (f" · margin {num(c.margin, 3)}" if c.margin is not None else "")
    elif c.max_logprob_diff:
        text += f" · drift {num(c.max_logprob_diff, 2)}"
    if c.max_logprob_diff is not None:
        lines.append(f"max |Δ log p(model)| of the baseline's tokens over the common steps: {num(c.max_logprob_diff)}")
    if c.max_logprob_diff_forced is not None:
        lines.append(f"… along all the baseline's tokens (teacher-forced): {num(c.max_logprob_diff_forced)}")
    lines.append(f"setup: {setup_words(c.setup)}")
    lines += [f"note: {n}" for n in c.notes]
    return Cell(share, text, "\n".join(lines))


def condition_matrix(reports: Sequence[Any]) -> str:
    """Conditions × prompts, one column per audit, coloured by agreement (share of repeats
    identical to that audit's baseline); hover a cell for the fork, its margin and the drift."""
    labels = list(dict.fromkeys(c.label for r in reports for c in r.conditions))
    columns = [f"prompt {token_text(r.prompt)}" for r in reports]
    cells = []
    for label in labels:
        row = []
        for r in reports:
            found = next((c for c in r.conditions if c.label == label), None)
            row.append(_cell(found, r.repeats) if found is not None else Cell(None, "–", f"{label}: not in this audit"))
        cells.append(row)
    widest = max((len(c.text) for row in cells for c in row), default=10)
    cell_w = int(min(340, max(110, widest * 6.4 + 18)))
    for row in cells:
        for c in row:
            c.text = shorten(c.text, int((cell_w - 12) / 6.4))
    return heatmap(labels, columns, cells, title="agreement with the baseline: conditions × prompt",
                   scale_label="share of repeats identical to the baseline's first run", cell_w=cell_w,
                   row_label_w=min(260, max(120, 8 + 6.6 * max((len(x) for x in labels), default=8))), palette=good_bad_color)


def _baseline_tokens(report: Any) -> str:
    """The baseline's output, each token with its p(model); tokens where a condition forked are marked."""
    base = report.baseline
    texts, lps = base.get("token_texts") or [], base.get("model_logprobs") or []
    forks: dict[int, list[Any]] = {}
    for c in report.conditions:
        if c.first_divergence is not None:
            forks.setdefault(c.first_divergence, []).append(c)
    spans = []
    for t, text in enumerate(list(texts) + ([""] if len(texts) in forks else [])):
        lp = lps[t] if t < len(lps) else None
        tip = [f"step {t}: {token_text(text)}" + (f" · p(model) {num(math.exp(lp))} (log {num(lp)})" if lp is not None else "")]
        if t == len(texts):
            tip = [f"step {t}: the baseline had ended"]
            text = "(end)"
        for c in forks.get(t, []):
            tip.append(f"forks here under {c.label}: {token_text(c.condition_token or '')}"
                       + (f" (baseline margin {num(c.margin, 3)})" if c.margin is not None else ""))
        body = escape(text)
        if t in forks:
            body = f'<mark style="outline:1px solid #c8423b">{body}</mark>'
        spans.append(f'<span title="{escape(chr(10).join(tip), quote=True)}">{body}</span>')
    return f'<div class="td-tokens"><span class="td-prompt">{escape(report.prompt)}</span>{"".join(spans)}</div>'


def _pair(a: float | None, b: float | None) -> str:
    return "–" if a is None and b is None else f"{num(a, 3)} / {num(b, 3)}"


def _conditions_table(report: Any) -> str:
    r = report.repeats
    head = ["condition", "verdict", "same tokens", "distinct outputs", f"TARr@{r}", "first div.", "baseline → condition",
            "margin: baseline / condition", "max |Δ log p|: common steps / forced", "time"]
    rows = []
    for c in report.conditions:
        ran = c.ran
        fork = (f"{token_text(c.baseline_token or '')} → {token_text(c.condition_token or '')}" if c.first_divergence is not None else "")
        cells = [
            f'<td>{escape(c.label)}</td><td style="min-width:14em">{_span(c.verdict, _verdict_class(c))}</td>',
            f'<td class="n">{f"{c.n_identical}/{c.repeats}" if ran else "–"}</td>',
            f'<td class="n">{c.unique_outputs if ran else "–"}</td>',
            f'<td class="n">{num(c.tarr)}</td>',
            f'<td class="n">{"–" if c.first_divergence is None else c.first_divergence}</td>',
            f'<td class="tok">{escape(fork)}</td>',
            f'<td class="n">{_pair(c.margin, c.condition_margin)}</td>',
            f'<td class="n">{_pair(c.max_logprob_diff, c.max_logprob_diff_forced)}</td>',
            f'<td class="n">{f"{c.seconds:.1f} s" if ran else "–"}</td>',
        ]
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return wide(f'<table class="td-conditions"><thead><tr>{"".join(f"<th>{escape(h)}</th>" for h in head)}</tr></thead>'
                f'<tbody>{"".join(rows)}</tbody></table>')


def _outputs(outputs: Sequence[str]) -> str:
    shown = ", ".join(f'<code>{escape(token_text(shorten(o, 120)))}</code>' for o in outputs[:MAX_OUTPUTS])
    more = len(outputs) - MAX_OUTPUTS
    return shown + (f" and {more} more" if more > 0 else "")


def _forks(report: Any) -> str:
    items = []
    for c in report.conditions:
        if not c.changes_output:
            continue
        words = (f"<b>{escape(c.label)}</b>: step {c.first_divergence}: baseline <code>{escape(token_text(c.baseline_token or ''))}</code> vs "
                 f"<code>{escape(token_text(c.condition_token or ''))}</code> in {c.divergent_repeats}/{c.repeats} repeats")
        if c.margin is not None:
            words += f"; baseline margin {escape(num(c.margin, 3))}"
        if c.condition_margin is not None:
            words += f", under {escape(c.label)} {escape(num(c.condition_margin, 3))}"
        words += f"; {c.unique_outputs} distinct output{'s' if c.unique_outputs != 1 else ''}: {_outputs(c.outputs)}"
        if report.run_id and c.divergent_repeat is not None and c.divergent_repeat < len(c.sample_ids):
            words += (f' · see <code>tokendice diff {escape(report.run_id)}:0 '
                      f"{escape(report.run_id)}:{c.sample_ids[c.divergent_repeat]}</code>")
        items.append(f"<li>{words}</li>")
    if not items:
        return ""
    return ("<h3>where the runs fork</h3>" + note("margin: the baseline's top-1 minus top-2 model log-prob at that step "
            "(softmax of the raw logits); a near-tie explains a flip.") + f"<ul>{''.join(items)}</ul>")


def _summary(report: Any) -> str:
    s = report.summary
    parts = []
    if not s.get("baseline_reproducible"):
        parts.append('<p class="td-bad">the baseline itself is not reproducible on this machine</p>')
    changed = s.get("changes_output") or []
    parts.append("<p><b>changes the output here:</b> "
                 + (_span(", ".join(changed), "td-bad") if changed else _span("nothing tested", "td-good")) + "</p>")
    if s.get("drift_only"):
        parts.append("<p><b>same tokens, drifting log-probs:</b> " + _span(", ".join(s["drift_only"]), "td-drift") + "</p>")
    if s.get("identical"):
        parts.append("<p><b>bit-identical:</b> " + _span(", ".join(s["identical"]), "td-good") + "</p>")
    return "".join(parts)


@view("audit")
def audit_section(report: Any) -> str:
    base = report.baseline
    run = f" · run {escape(report.run_id)}" if report.run_id else ""
    meta = (f"{escape(report.model)} ({escape(report.engine)}) · {escape(sampler_words(report.params, report.seed, report.rng))} · "
            f"{report.repeats} repeats per condition{run}")
    texts = base.get("token_texts") or []
    baseline = (
        "<h3>baseline</h3>"
        f"<p>{escape(setup_words(base.get('setup')))} · {len(base.get('tokens') or [])} tokens, finished by "
        f"{escape(str(base.get('finish_reason')))} · its first run is the reference</p>"
        + _baseline_tokens(report)
        + note("Hover a token for its p(model) (softmax of the raw logits); marked tokens are where a condition chose differently.")
    )
    forks = [c.first_divergence for c in report.conditions if c.first_divergence is not None]
    chart = ""
    if texts and base.get("model_logprobs"):
        chart = line_chart(LineChart(
            "baseline: p(model) of each chosen token", "step", "p(model)",
            [Series("p(model), softmax of the raw logits", [math.exp(x) if x is not None else None for x in base["model_logprobs"]], BLUE)],
            y_max=1.0, x_labels=[token_text(t) for t in texts], highlight=min(forks) if forks else None, max_dots=MAX_DOTS,
        ), height=190)  # fmt: skip
    not_tested = {c.label: c.verdict for c in report.conditions if not c.ran}  # what summary["not_tested"] holds
    untested = ("<h3>not tested</h3><ul>" + "".join(f"<li>{escape(k)}: {escape(str(v))}</li>" for k, v in not_tested.items()) + "</ul>"
                if not_tested else "")
    notes = "".join(note(f"note: {n}") for n in report.notes)
    return card(
        "Determinism audit",
        meta,
        _summary(report),
        baseline,
        chart,
        "<h3>conditions</h3>",
        note(f"Each condition changes one control of the baseline and runs {report.repeats} times; agreement is the share of "
             "its repeats whose tokens are identical to the baseline's first run. Hover a cell for the fork, its margin and the drift."),
        condition_matrix([report]),
        _conditions_table(report),
        note("margins and |Δ log p| are the model's log-probabilities (softmax of the raw logits) along the baseline's tokens; "
             "teacher-forced: the condition forced along every baseline token (measured for conditions that diverge)."),
        _forks(report),
        untested,
        f'<h3>recipe</h3><p class="td-recipe"><b>{escape(report.recipe)}</b></p>'
        + note("the settings that reproduced the baseline's output in every repeat here"),
        notes,
        note(f"{report.wall_seconds:.0f} s in all"),
    )


@view("audit_prompts")
def agreement_section(report: Any) -> str:
    n = report.repeats
    run = f" · run {escape(report.run_id)}" if report.run_id else ""
    meta = (f"{escape(report.model)} ({escape(report.engine)}) · {len(report.prompts)} prompts × {n} repeats · "
            f"batch {report.batch_size} · {escape(sampler_words(report.params, report.seed, report.rng))}{run}")
    agree = sum(p.unique_outputs == 1 for p in report.prompts)
    head = (f'<p class="td-tar"><b>TARr@{n} = {report.tarr:.3f}</b> ({agree}/{len(report.prompts)} prompts whose {n} raw outputs '
            "are all identical)")
    if report.tara is not None:
        agree_a = sum(p.unique_answers == 1 for p in report.prompts)
        head += (f' · <b>TARa@{n} = {report.tara:.3f}</b> ({agree_a}/{len(report.prompts)} whose extracted answers agree; '
                 f"answer regex <code>{escape(str(report.answer_regex))}</code>)")
    head += "</p>"
    setup = {k: v for k, v in report.setup.items() if k != "engine_description"}
    shown = report.prompts[:MAX_PROMPTS]
    bars = [
        Bar(f"#{p.index} {token_text(p.prompt)}", p.unique_outputs, marker=p.unique_answers,
            color=GREEN if p.unique_outputs == 1 else RED,
            tooltip="\n".join([
                f"prompt #{p.index}: {shorten(p.prompt, 200)}",
                f"{p.unique_outputs} distinct output{'s' if p.unique_outputs != 1 else ''} over {n} repeats"
                + (f", {p.unique_answers} distinct answer{'s' if p.unique_answers != 1 else ''}" if p.unique_answers is not None else ""),
                "first divergence: " + ("none" if p.first_divergence is None else f"step {p.first_divergence}"),
                *[f"output: {token_text(shorten(o, 120))}" for o in p.outputs[:5]],
            ]))
        for p in shown
    ]  # fmt: skip
    chart = bar_chart(bars, title=f"distinct outputs per prompt over {n} repeats (1: all agree)",
                      value_label="distinct outputs", marker_label="distinct answers" if report.tara is not None else "",
                      x_max=float(max(n, 1)), label_width=300, ticks=n if 1 <= n <= 10 else 5) if bars else ""
    more = note(f"the first {MAX_PROMPTS} of {len(report.prompts)} prompts are drawn") if len(report.prompts) > MAX_PROMPTS else ""
    rows = []
    for p in report.prompts[:MAX_ROWS]:
        cls = "td-good" if p.unique_outputs == 1 else "td-bad"
        rows.append(
            f'<tr><td class="n">{p.index}</td><td class="tok">{escape(token_text(shorten(p.prompt, 80)))}</td>'
            f'<td class="n"><span class="{cls}">{p.unique_outputs}</span></td>'
            f'<td class="n">{"–" if p.unique_answers is None else p.unique_answers}</td>'
            f'<td class="n">{"–" if p.first_divergence is None else p.first_divergence}</td><td>{_outputs(p.outputs)}</td></tr>'
        )
    table = wide('<table class="td-prompts"><thead><tr><th>#</th><th>prompt</th><th>distinct outputs</th><th>distinct answers</th>'
             f'<th>first div.</th><th>outputs</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')
    if len(report.prompts) > MAX_ROWS:
        table += note(f"the first {MAX_ROWS} of {len(report.prompts)} prompts (to_dataframe() has all)")
    return card(
        "Agreement over a prompt set",
        meta,
        head,
        note(f"TARr@{n}: the share of prompts whose {n} raw outputs are all identical; TARa@{n}: the same for the answers an "
             "answer regex extracts (Atil et al. 2024). " + (f"With batch {report.batch_size}, prompts were decoded together, "
             "left-padded, their order rotated every repeat." if report.batch_size > 1 else "")),
        f"<p>setup: {escape(setup_words(setup))}</p>",
        chart,
        more,
        table,
        "".join(note(f"note: {x}") for x in report.notes),
    )
