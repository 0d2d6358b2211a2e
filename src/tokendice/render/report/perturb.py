"""The prompt-sensitivity views: a perturbation report (variants ranked by how far they move the
output, the POSIX matrix, the probability each variant gives the original's top completions; a
summary per variant kind over a suite) and a variant listing (what `perturb` would measure)."""

from __future__ import annotations

import math
from html import escape
from typing import Any, Sequence

from tokendice.render.registry import view
from tokendice.render.report.page import card, note, uid
from tokendice.render.report.svg import BLUE, GREEN, RED, Bar, Cell, bar_chart, heatmap, num
from tokendice.render.report.trace import token_text

HEAT_MAX = 24
"""The POSIX matrix is drawn for at most this many prompts (to_dict has it all)."""
SUITE_OPEN = 1
"""In a suite, this many prompts' cards are open; the others open on a click (their headline shows regardless)."""
TABLE_MAX = 60

JS_NOTE = "first-step Jensen-Shannon divergence between the next-token distributions of the original and the variant, nats"


def nice_max(x: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × 10^k at or above `x`: an axis end whose five ticks read well."""
    if not math.isfinite(x) or x <= 0:
        return 1.0
    scale = 10.0 ** math.floor(math.log10(x))
    return next(m * scale for m in (1, 2, 2.5, 5, 10) if m * scale >= x * (1 - 1e-9))


def _scroll(svg: str) -> str:
    """A chart wider than the page scrolls on its own rather than stretching the page."""
    return f'<div style="overflow-x:auto">{svg}</div>'


def _code(text: str) -> str:
    return f'<code>{escape(token_text(text))}</code>'


def _stages(params: Any) -> list[str]:
    from tokendice.sampling.chain import SamplerChain

    return list(SamplerChain.from_params(params).labels)


def _sampler(params: Any) -> str:
    labels = _stages(params)
    return " → ".join(labels) if labels else "none (p(sampling) = p(model))"


def _tv_how(p: Any) -> str:
    """How the TV of a prompt's variants was measured, in one sentence."""
    d = p.distribution
    method = d.get("method")
    if method == "skipped":
        return ("Completion distributions not measured (distribution=False): no TV, no top-completion heatmap; "
                "variants are ranked by the first-step JS divergence.")
    if method == "exact":
        return (f"TV (total variation between the completion distributions, p(sampling)) exact: the original's enumeration "
                f"lists {d.get('completions')} completions holding {num(d.get('scored_mass'))} of its mass, each scored under every "
                "variant; whiskers [low, high] are hard bounds (the unlisted mass could fall either way), the bar their midpoint.")
    e = d.get("enumeration")
    why = (f"the enumeration reached {num(e['found_mass'])} of {d.get('target_mass')} in {e['expanded']} prefixes" if e else
           f"not enumerated: {num(100 * d.get('good_turing_unseen', 0), 3)}% of the samples are singletons, too diffuse")
    return (f"TV (total variation between the completion distributions, p(sampling)) from n={d.get('samples')} samples of the "
            f"original ({d.get('distinct')} distinct, seed {d.get('seed')}), each scored exactly under every variant: unbiased "
            f"mean of (1 − q/p)+, whiskers: normal 95% interval ({why}).")


def _tv_how_short(r: Any) -> str:
    t = r.tv
    if t is None:
        return "not measured"
    return f"exact: hard bounds over {t.n} enumerated completions" if t.method == "exact" else f"n={t.n} samples: 95% interval"


def _tv_text(r: Any, digits: int = 4) -> str:
    t = r.tv
    return "–" if t is None else f"{num(t.value, digits)} [{num(t.low, digits)}, {num(t.high, digits)}]"


def _greedy(r: Any) -> str:
    if r.greedy_same:
        return '<span class="td-good">same</span>'
    return f'<span class="td-bad" style="white-space:nowrap">differs at step {r.greedy_divergence}</span>'


def _delta(value: float) -> str:
    if value is None or math.isnan(value):
        return "–"
    if math.isinf(value):
        return "−∞" if value < 0 else "+∞"
    return f"{value:+.3f}"


def _variant_charts(p: Any, stages: bool) -> str:
    parts = []
    if any(r.tv is not None for r in p.variants):
        exact = all(r.tv is None or r.tv.method == "exact" for r in p.variants)
        bars = [Bar(f"{r.rank}. {r.variant.name}", r.tv.value if r.tv else 0.0, r.tv.low if r.tv else None, r.tv.high if r.tv else None,
                    tooltip=f"{r.rank}. {r.variant.name} ({r.variant.kind}), prompt {token_text(r.variant.prompt)}\n"
                            f"TV {_tv_text(r)} ({_tv_how_short(r)})\n"
                            f"first-step JS: p(model) {num(r.js_model)} · p(sampling) {num(r.js_sampling)} nats",
                    color=RED if not r.greedy_same else BLUE)
                for r in p.variants]
        parts.append(_scroll(bar_chart(
            bars, title="variants ranked by distribution shift: TV of the completion distribution (p(sampling))",
            value_label="TV (red: greedy output changed)", x_max=nice_max(max(b.high or b.value for b in bars)),
            interval_label="hard bounds (exact)" if exact else f"95% interval (n={p.distribution.get('samples')} samples)",
        )))  # fmt: skip
    if any(r.answer_tv is not None for r in p.variants):
        parts.append(_scroll(_answer_chart(p)))
    bars = [Bar(f"{r.rank}. {r.variant.name}", r.js_model, marker=r.js_sampling if stages else None, color=GREEN,
                tooltip=f"{r.rank}. {r.variant.name}: first-step JS p(model) {num(r.js_model)} nats · p(sampling) {num(r.js_sampling)} nats\n"
                        f"its top-1 {token_text(r.top1['text'])} (p(model) {num(r.top1['model_prob'])}); "
                        f"the original's top-1 gets p(model) {num(r.orig_top1_model_prob)}")
            for r in p.variants]
    top = max([b.value for b in bars] + [b.marker or 0.0 for b in bars])
    parts.append(_scroll(bar_chart(bars, title="first-step JS divergence of the next-token distribution (nats)",
                                   value_label="JS of p(model)" + ("" if stages else " (= JS of p(sampling): no sampler stages)"),
                                   marker_label="JS of p(sampling)" if stages else "", x_max=nice_max(top))))
    return "".join(parts)


def _answer_tv_text(r: Any, digits: int = 4) -> str:
    t = r.answer_tv
    return "–" if t is None else f"{num(t.value, digits)} [{num(t.low, digits)}, {num(t.high, digits)}]"


def _answer_chart(p: Any) -> str:
    a = p.answers
    bars = [Bar(f"{r.rank}. {r.variant.name}", r.answer_tv.value if r.answer_tv else 0.0, r.answer_tv.low if r.answer_tv else None,
                r.answer_tv.high if r.answer_tv else None, marker=r.tv.value if r.tv else None, color=GREEN,
                tooltip=f"{r.rank}. {r.variant.name} ({r.variant.kind}), prompt {token_text(r.variant.prompt)}\n"
                        f"answer TV {_answer_tv_text(r)} (hard bounds over {r.answer_tv.n if r.answer_tv else '–'} completions: the "
                        f"original's {a.get('listed_from')} ones and the variant's own)\n"
                        f"completion TV {_tv_text(r)}\nthe variant gives the listed completions p(sampling) {num(r.answer_listed_mass)}")
            for r in p.variants]
    return bar_chart(bars, title=f"the same variants: TV of the answer distribution ({a.get('extract')})",
                     value_label="answer TV (midpoint of its bounds)", interval_label="hard bounds", marker_label="completion TV",
                     x_max=nice_max(max([b.high or b.value for b in bars] + [b.marker or 0.0 for b in bars])))  # fmt: skip


def _answer_how(p: Any) -> str:
    a = p.answers
    if not a:
        return ""
    return note(f"Answer TV: the total variation between the answer distributions ({a.get('extract')}, p(sampling)), over the "
                f"original's {_listed(p)} {a.get('listed_from')} completions and the variant's own "
                "enumerated ones, each scored under both prompts and grouped by answer (a variant may give the original's answers "
                "in words the original never uses). Both answer distributions are known on them; the rest of the original's mass "
                "and of the variant's may give any answer, so the whiskers are hard bounds: [max(0, S − the variant's rest), "
                "min(1, S + the original's rest)], S the TV over the listed completions; the bar is their midpoint. The true answer "
                "TV is never above the true completion TV (◆): grouping completions can only bring distributions closer.")


def _listed(p: Any) -> Any:
    """How many of the original's completions the answers were read from."""
    listed = p.answers.get("listed") or [{}]
    return listed[0].get("completions", p.distribution.get("completions"))


def _answers_heatmap(p: Any, names_ranked: list[str]) -> str:
    a = p.answers
    if not a or not a.get("answers"):
        return ""
    names, answers, probs, listed = a["names"], a["answers"], a["probs"], a["listed_mass"]
    row_of = {name: i for i, name in enumerate(names)}
    order = ["original"] + [n for n in names_ranked if n in row_of]
    high = max([x for row in probs for x in row] + [1e-9])
    columns = [f"{k + 1}. " + ("(no answer)" if t == "<no answer>" else token_text(t)) for k, t in enumerate(answers)]
    cells = []
    for name in order:
        i = row_of[name]
        row = []
        for k, answer in enumerate(answers):
            tip = (f"{name}: p(sampling) of answer {columns[k]} = {num(probs[i][k])}, over the listed completions that give it\n"
                   f"the original gives it {num(probs[0][k])}; the listed completions hold {num(listed[i])} of this prompt's p(sampling)")
            row.append(Cell(probs[i][k], num(probs[i][k], 2), tip))
        cells.append(row)
    chart = heatmap(order, columns, cells, title=f"variant × the original's most probable answers ({a['extract']}): p(sampling) of each",
                    scale_label="p(sampling) of the answer, over the listed completions", low=0.0, high=high, cell_w=72)
    return ("<h3>the original's most probable answers, under every variant</h3>" + _scroll(chart)
            + note(f"columns: the original's {len(answers)} most probable of its {a['distinct']} answers among its {a['listed_from']} "
                   "completions; cells: the p(sampling) each prompt gives the listed completions that say it (the original's, and for "
                   "a variant also its own enumerated ones): a lower bound on the answer's probability, as unlisted completions "
                   "may say it too."))


def _variant_table(p: Any, stages: bool) -> str:
    rows = []
    for r in p.variants:
        top = r.top1
        changed = ' class="td-bad"' if r.top1_changed else ""
        rows.append(
            f'<tr><td class="n">{r.rank}</td><td>{escape(r.variant.name)}</td><td>{escape(r.variant.kind)}</td>'
            f'<td>{_code(r.variant.prompt)}{" (chat)" if r.variant.chat else ""}</td><td class="n" style="white-space:nowrap" title="{escape(_tv_how_short(r), quote=True)}">{escape(_tv_text(r, 3))}</td>'
            + (f'<td class="n" style="white-space:nowrap">{escape(_answer_tv_text(r, 3))}</td>' if p.answers else "")
            + f'<td class="n">{num(r.js_model)}</td>' + (f'<td class="n">{num(r.js_sampling)}</td>' if stages else "")
            + f'<td{changed}>{_code(top["text"])} {num(top["model_prob"])}</td><td class="n">{num(r.orig_top1_model_prob)}</td>'
            f"<td>{_greedy(r)}<br>{_code(r.greedy_text)}</td><td class=\"n\">{_delta(r.orig_response_delta)}</td></tr>"
        )
    head = ("<th>#</th><th>variant</th><th>kind</th><th>prompt</th><th>TV [low, high]</th>"
            + ("<th>answer TV [bounds]</th>" if p.answers else "") + "<th>JS p(model)</th>"
            + ("<th>JS p(sampling)</th>" if stages else "")
            + "<th>top-1, p(model)</th><th>orig. top-1 p(model)</th><th>greedy output</th><th>Δ log p / token</th>")
    return (f'<div style="overflow-x:auto"><table class="td-variants"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody>'
            "</table></div>"
            + note("JS: " + JS_NOTE + ("" if stages else " (no sampler stages: p(sampling) = p(model))") + ". top-1: the variant's most likely first token under p(model) (red: not the original's). "
                   "orig. top-1 p(model): the probability the variant gives the original's top-1 token. Δ log p / token: how much "
                   "less (or more) likely the original's greedy output is under the variant, per token, p(model), nats."))


def _posix(p: Any) -> str:
    px = p.posix
    names, loglik, lengths, responses = px["names"], px["loglik"], px["response_lengths"], px.get("responses") or []
    psi = num(px["psi"]) if math.isfinite(px["psi"]) else "∞ (a greedy response is impossible under another prompt)"
    head = (f"<h3>POSIX (Chatterjee et al. 2024): ψ = {escape(psi)}</h3>"
            + note(f"over {len(names)} prompts: the mean, over ordered pairs of prompts i ≠ j, of |log P(y_j | x_i) − "
                   "log P(y_j | x_j)| / len(y_j), y_j the greedy response of prompt j, under p(model) (natural log). "
                   "0: every prompt scores every response alike."))
    if len(names) > HEAT_MAX:
        return head + note(f"(the matrix of {len(names)} prompts is not drawn: to_dict() has it all)")
    deltas = [[(loglik[i][j] - loglik[j][j]) / lengths[j] for j in range(len(names))] for i in range(len(names))]
    finite = [abs(d) for row in deltas for d in row if math.isfinite(d)]
    high = max(finite + [1e-6])
    cells = []
    for i, row in enumerate(deltas):
        out = []
        for j, d in enumerate(row):
            said = token_text(responses[j]) if j < len(responses) else f"the greedy response of {names[j]}"
            base = (f"prompt {names[i]} · response of {names[j]}: {said} ({lengths[j]} tokens)\n"
                    f"log p(model) = {num(loglik[i][j])} nats (probability {num(math.exp(loglik[i][j]))})")
            if i == j:
                out.append(Cell(0.0, "·", base + "\nits own prompt: the reference of this column"))
            elif not math.isfinite(d):
                out.append(Cell(None, _delta(d), base + f"\nper token vs its own prompt: {_delta(d)}", "#f3c1bd"))
            else:
                out.append(Cell(abs(d), f"{d:+.2f}", base + f"\nper token vs its own prompt ({names[j]}): {d:+.4f} nats"))
        cells.append(out)
    cell_w = 64 if len(names) <= 12 else 48
    chart = heatmap(names, names, cells, title="POSIX matrix: row = prompt, column = greedy response of that column's prompt",
                    scale_label="|Δ log p(model) per token| vs the column's own prompt (nats)", low=0.0, high=high, cell_w=cell_w)
    return head + _scroll(chart)


def _top_completions(p: Any, names_ranked: list[str]) -> str:
    title = "<h3>the original's most likely completions, under every variant</h3>"
    top = p.top_completions
    if p.distribution.get("method") == "skipped":
        return title + note("Not available: the completion distributions were not measured (distribution=False).")
    if not top or not top.get("texts"):
        return title + note("Not available: this run was stored before tokendice kept the top completions of each prompt "
                            "(measure it again to draw this heatmap).")
    names, texts, probs = top["names"], top["texts"], top["probs"]
    row_of = {name: i for i, name in enumerate(names)}
    order = ["original"] + [n for n in names_ranked if n in row_of]
    high = max([x for row in probs for x in row if math.isfinite(x)] + [1e-9])
    columns = [f"{k + 1}. {token_text(t)}" for k, t in enumerate(texts)]
    cells = []
    for name in order:
        i = row_of[name]
        row = []
        for k, text in enumerate(texts):
            p_ik, p_0k = probs[i][k], probs[0][k]
            tip = (f"{name}: p(sampling) of completion {k + 1} {token_text(text)} = {num(p_ik)}\n"
                   f"the original gives it {num(p_0k)} ({'same' if name == 'original' else f'{p_ik - p_0k:+.4f}'}); exact, "
                   "scored token by token (not a sample share)")
            row.append(Cell(p_ik, num(p_ik, 2), tip))
        cells.append(row)
    among = "enumerated" if p.distribution.get("method") == "exact" else f"{p.distribution.get('distinct')} distinct sampled"
    covered = math.fsum(probs[0])
    chart = heatmap(order, columns, cells, title="variant × the original's top completions: p(sampling) of each",
                    scale_label="p(sampling) of the completion (exact)", low=0.0, high=high, cell_w=72)
    return title + _scroll(chart) + note(
        f"columns: the original's {len(texts)} most likely completions (of its {among} ones), holding {num(covered)} of its "
        "p(sampling) mass; rows: the original, then the variants most disruptive first; cells: the exact probability that "
        "prompt gives the completion under the sampler chain.")


def _skipped(p: Any) -> str:
    if not p.skipped:
        return ""
    rows = "".join(f'<tr class="td-removed"><td>{escape(s["name"])}</td><td>{_code(s["prompt"])}</td><td>skipped: {escape(s["note"])}</td></tr>'
                   for s in p.skipped)
    return f"<h3>skipped variants</h3><table><tbody>{rows}</tbody></table>"


def _prompt_body(p: Any, stages: bool) -> str:
    o = p.original
    top1 = o["top1"]
    intro = (f'<p>prompt {_code(p.prompt)}{" (chat template)" if p.chat else ""} · {o["prompt_tokens"]} tokens · original top-1 '
             f'{_code(top1["text"])} p(model) {num(top1["model_prob"])}, p(sampling) {num(top1.get("sampling_prob"))} · greedy '
             f'{_code(o["greedy_text"])}</p>')
    ranked = [r.variant.name for r in p.variants]
    return (intro + _variant_charts(p, stages) + note(_tv_how(p)) + _answer_how(p) + _variant_table(p, stages) + _skipped(p)
            + _top_completions(p, ranked) + _answers_heatmap(p, ranked) + _posix(p))


def _prompt_line(p: Any) -> str:
    top = ", ".join(f"{r.variant.name} (TV {num(r.tv.value, 3)})" if r.tv else f"{r.variant.name} (JS {num(r.js_model, 3)})"
                    for r in p.variants[:3])
    return f"ψ {num(p.posix['psi'])} · {len(p.variants)} variants · most disruptive: {top}"


def _meta(report: Any) -> str:
    s = report.settings
    dist = (f"{s.samples} samples, enumeration to mass {s.mass} within {s.max_nodes} prefixes" if s.distribution
            else "not measured (distribution=False)")
    run = f" · run {escape(report.run_id)}" if report.run_id else ""
    return escape(f"{report.model} ({report.engine}) · {s.params.max_new_tokens} new tokens · seed {s.seed} · sampler chain: "
                  f"{_sampler(s.params)} · completion distributions: {dist} · {report.seconds:.1f}s") + run


def _summary(report: Any, stages: bool) -> str:
    summary = report.summary
    kinds = summary.get("by_kind") or []
    parts = []
    if any(k["mean_tv"] is not None for k in kinds):
        bars = [Bar(k["kind"], k["mean_tv"] or 0.0, tooltip=_kind_tip(k, "kind")) for k in kinds]
        parts.append(_scroll(bar_chart(bars, title="per variant kind: mean TV of the completion distribution (p(sampling))",
                                       value_label="mean TV over the kind's variants × prompts",
                                       x_max=nice_max(max(b.value for b in bars)))))
    bars = [Bar(k["kind"], k["mean_js_model"] or 0.0, marker=k["mean_js_sampling"] if stages else None, color=GREEN,
                tooltip=_kind_tip(k, "kind"))
            for k in kinds]
    top = max([b.value for b in bars] + [b.marker or 0.0 for b in bars] + [0.0])
    parts.append(_scroll(bar_chart(bars, title="per variant kind: mean first-step JS divergence (nats)",
                                   value_label="mean JS of p(model)" + ("" if stages else " (= p(sampling): no sampler stages)"),
                                   marker_label="mean JS of p(sampling)" if stages else "", x_max=nice_max(top))))
    psi = [Bar(f"{i + 1}. {p.prompt}", p.posix["psi"] if math.isfinite(p.posix["psi"]) else 0.0,
               tooltip=f"prompt {i + 1} {token_text(p.prompt)}: ψ {num(p.posix['psi'])} over {len(p.posix['names'])} prompts",
               color=BLUE if math.isfinite(p.posix["psi"]) else RED)
           for i, p in enumerate(report.prompts)]
    parts.append(_scroll(bar_chart(psi, title="POSIX ψ of each prompt (p(model), per-token log-likelihood changes)",
                                   value_label="ψ (red: infinite, a response impossible under another prompt)",
                                   x_max=nice_max(max([b.value for b in psi] + [0.0])))))
    parts.append(_summary_table(kinds, "kind") + note(summary.get("note", "")))
    by_variant = summary.get("by_variant") or []
    parts.append("<h3>per variant</h3>" + _summary_table(by_variant[:TABLE_MAX], "variant")
                 + (note(f"first {TABLE_MAX} of {len(by_variant)} variants") if len(by_variant) > TABLE_MAX else ""))
    lines = "".join(f'<tr><td class="n">{i + 1}</td><td>{_code(p.prompt)}</td><td>{escape(_prompt_line(p))}</td></tr>'
                    for i, p in enumerate(report.prompts))
    parts.append(f"<h3>each prompt</h3><table><thead><tr><th>#</th><th>prompt</th><th>ψ and the most disruptive variants</th></tr>"
                 f"</thead><tbody>{lines}</tbody></table>")
    meta = _meta(report) + escape(f" · most disruptive kind: {summary.get('most_disruptive_kind')} · POSIX over the suite (mean ψ) "
                                  f"{num(summary.get('posix'))}")
    return card(f"Prompt sensitivity over {len(report.prompts)} prompts", meta, *parts)


def _kind_tip(row: dict[str, Any], key: str) -> str:
    return (f"{row[key]}: n={row['n']} (variant, prompt) pairs · mean TV {num(row['mean_tv'])} · mean JS p(model) "
            f"{num(row['mean_js_model'])}, p(sampling) {num(row['mean_js_sampling'])} nats · top-1 changed "
            f"{_pct(row['top1_change_rate'])} · greedy changed {_pct(row['greedy_change_rate'])}")


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.0f}%"


def _summary_table(rows: Sequence[dict[str, Any]], key: str) -> str:
    answers = any("mean_answer_tv" in r for r in rows)
    body = "".join(
        f'<tr><td>{escape(r[key])}</td><td class="n">{r["n"]}</td><td class="n">{num(r["mean_tv"])}</td>'
        + (f'<td class="n">{num(r.get("mean_answer_tv"))}</td>' if answers else "")
        + f'<td class="n">{num(r["mean_js_model"])}</td><td class="n">{num(r["mean_js_sampling"])}</td>'
        f'<td class="n">{_pct(r["top1_change_rate"])}</td><td class="n">{_pct(r["greedy_change_rate"])}</td>'
        f'<td class="n">{_delta(r["mean_orig_response_delta"]) if r["mean_orig_response_delta"] is not None else "–"}</td></tr>'
        for r in rows
    )
    return (f"<table><thead><tr><th>{key}</th><th>n</th><th>mean TV</th>" + ("<th>mean answer TV</th>" if answers else "")
            + "<th>mean JS p(model)</th><th>mean JS p(sampling)</th>"
            f"<th>top-1 changed</th><th>greedy changed</th><th>mean Δ log p(model)/token</th></tr></thead><tbody>{body}</tbody></table>")


@view("perturb")
def perturb_section(report: Any) -> str:
    if not report.prompts:
        return card("Prompt sensitivity", _meta(report), note("No prompt measured yet."))
    stages = bool(_stages(report.settings.params))
    if len(report.prompts) == 1:
        p = report.prompts[0]
        return card("Prompt sensitivity", _meta(report), _prompt_body(p, stages))
    ids = uid("tdp")
    cards = []
    for i, p in enumerate(report.prompts):
        head = f"prompt {i + 1} of {len(report.prompts)}: {token_text(p.prompt)} · {_prompt_line(p)}"
        opened = " open" if i < SUITE_OPEN else ""
        cards.append(f'<details id="{ids}{i}"{opened}><summary>{escape(head)}</summary>'
                     f'{card(f"prompt {i + 1}", escape(_prompt_line(p)), _prompt_body(p, stages))}</details>')
    return _summary(report, stages) + "".join(cards)


@view("variants")
def variants_section(listing: Any) -> str:
    from tokendice.experiments.perturb.variants import kind_of

    parts = []
    for i, vset in enumerate(listing.sets):
        rows = []
        for v in [vset.original] + vset.variants:
            cls = ' class="td-chosen"' if v.name == "original" else ""
            rows.append(f"<tr{cls}><td>{escape(v.name)}</td><td>{escape(v.kind)}</td><td style=\"white-space:nowrap\">{'chat template' if v.chat else 'raw text'}</td>"
                        f"<td>{_code(v.prompt)}</td><td>{escape(v.description)}</td></tr>")
        for s in vset.skipped:
            rows.append(f'<tr class="td-removed"><td>{escape(s["name"])}</td><td>{escape(kind_of(s["name"]))}</td><td></td>'
                        f'<td>{_code(s["prompt"])}</td>'
                        f"<td>skipped: {escape(s['note'])}</td></tr>")
        head = f"<h3>prompt {i + 1}: {_code(vset.original.prompt)}</h3>" if len(listing.sets) > 1 else ""
        parts.append(head + "<table><thead><tr><th>variant</th><th>kind</th><th>encoding</th><th>prompt as it would be measured</th>"
                     f'<th>how it was made</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')
    meta = escape(listing.headline()) + (f" · run {escape(listing.run_id)}" if listing.run_id else "")
    return card("Prompt variants", meta, *parts, note("Grey: skipped (not measured), with the reason. No model was loaded: "
                                                     "these are the prompts `perturb` would measure."))
