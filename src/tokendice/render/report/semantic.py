"""The semantic-entropy view: the clusters of meaning as bars (share of the samples with its 95%
Wilson interval, the exact probability marked with [p, p + unexplored]; or the exact probability
alone for an enumeration) with their members listed, the measures with their bootstrap
intervals, and the convergence of the sampled estimate against N with the exact value (or its
bounds) as a reference band."""

from __future__ import annotations

from html import escape
from typing import Any

from tokendice.render.registry import view
from tokendice.render.report.page import card, note
from tokendice.render.report.svg import GREEN, ORANGE, Bar, IntervalSeries, bar_chart, interval_chart, nice_ceiling, num
from tokendice.render.text import show_token

TOP = 20  # clusters drawn
MEMBERS = 12  # members listed per cluster (the rest counted)
NO_ANSWER = "<no answer>"


def item_text(answer: str) -> str:
    return "(no answer)" if answer == NO_ANSWER else show_token(answer)


def _cluster_label(c: Any) -> str:
    more = len(c.answers) - 1
    return item_text(c.answers[0]) + (f" +{more}" if more else "")


def _member_line(m: Any, sampled: bool, exact: bool) -> str:
    parts = [f"{m.count}×"] if sampled else []
    if exact and m.exact_prob is not None:
        parts.append(f"p {num(m.exact_prob)}")
    return f"{item_text(m.answer)}" + (f" ({', '.join(parts)})" if parts else "")


def _tip(r: Any, c: Any) -> str:
    sampled, exact = r.source == "samples", r.exact is not None
    lines = [f"cluster {c.cluster}: {len(c.answers)} {'answers' if r.extract else 'completions'} that mean the same (judge {r.judge})"]
    if sampled:
        lines.append(f"{c.count} of n={r.n} samples: share {num(c.share)}, 95% Wilson interval [{num(c.ci_low)}, {num(c.ci_high)}]")
        if c.weighted_prob is not None:
            lines.append(f"likelihood-weighted p {num(c.weighted_prob)} (sequence probabilities of its sampled completions, normalised)")
    if exact and c.exact_prob is not None:
        lines.append(f"exact p(sampling) {num(c.exact_prob)} (its enumerated completions); with the unexplored mass: "
                     f"[{num(c.exact_prob)}, {num(c.exact_prob + r.exact['unexplored'])}]")  # fmt: skip
    shown = [_member_line(m, sampled, exact) for m in c.members[:MEMBERS]]
    lines.append("members: " + ", ".join(shown) + (f", … {len(c.members) - MEMBERS} more" if len(c.members) > MEMBERS else ""))
    return "\n".join(lines)


def clusters_part(r: Any) -> str:
    top = r.clusters[:TOP]
    if not top:
        return note("no clusters")
    more = f"top {len(top)} of {len(r.clusters)} clusters" if len(r.clusters) > len(top) else f"the {len(r.clusters)} clusters"
    what = f"answers ({escape(r.extract)})" if r.extract else "completions"
    if r.source == "samples":
        exact = r.exact is not None
        unexplored = r.exact["unexplored"] if exact else 0.0
        bars = [Bar(_cluster_label(c), c.share or 0.0, c.ci_low, c.ci_high, c.exact_prob if exact else c.weighted_prob, _tip(r, c),
                    marker_high=(c.exact_prob + unexplored) if exact and unexplored > 0 and c.exact_prob is not None else None)
                for c in top]  # fmt: skip
        marker = ("exact p(sampling)" + (f", line: [p, p + unexplored {num(unexplored)}]" if unexplored > 0 else "")) if exact \
            else "likelihood-weighted p (sampled completions' probabilities, normalised)"  # fmt: skip
        chart = bar_chart(bars, title=f"{more} of meaning ({r.judge})", value_label=f"share of n={r.n} samples",
                          interval_label="95% Wilson interval", marker_label=marker, x_max=_axis_max(bars))  # fmt: skip
    else:
        unexplored = r.exact["unexplored"] if r.exact else 0.0
        bars = [Bar(_cluster_label(c), c.exact_prob or 0.0, c.exact_prob, (c.exact_prob or 0.0) + unexplored, tooltip=_tip(r, c), color=GREEN)
                for c in top]  # fmt: skip
        chart = bar_chart(bars, title=f"{more} of meaning ({r.judge})", value_label="exact p(sampling) of the enumerated completions",
                          interval_label=f"[p, p + unexplored mass {num(unexplored)}]", x_max=_axis_max(bars))  # fmt: skip
    return chart + note(f"Each bar is one meaning: {what} the judge {r.judge} holds equivalent, clustered greedily (each compared with "
                        "the first member of every cluster so far; the first member names the cluster, +k: k more members). "
                        "Hover a bar for its members.") + members_part(r)  # fmt: skip


def _axis_max(bars: list[Bar]) -> float:
    """A round axis end (0.2, 0.25, 0.5, 1) past every bar, whisker and marker: probabilities never pass 1."""
    high = max([b.high or b.value for b in bars] + [max(b.marker or 0.0, b.marker_high or 0.0) for b in bars] + [1e-12])
    return min(1.0, nice_ceiling(high))


def members_part(r: Any) -> str:
    sampled, exact = r.source == "samples", r.exact is not None
    rows = []
    for c in r.clusters[:TOP]:
        members = ", ".join(escape(_member_line(m, sampled, exact)) for m in c.members[:MEMBERS])
        if len(c.members) > MEMBERS:
            members += f", … {len(c.members) - MEMBERS} more"
        cells = [f'<td class="n">{c.cluster}</td>', f'<td class="tok">{members}</td>']
        if sampled:
            cells += [f'<td class="n">{c.count}</td>', f'<td class="n">{num(c.share)}</td>', f'<td class="n">{num(c.weighted_prob)}</td>']
        if exact:
            cells.append(f'<td class="n">{num(c.exact_prob)}</td>')
        rows.append(f"<tr>{''.join(cells)}</tr>")
    if len(r.clusters) > TOP:
        rows.append(f"<tr><td></td><td>… {len(r.clusters) - TOP} more clusters (to_dataframe() has all)</td></tr>")
    head = ["#", "members (" + ", ".join((["samples ×"] if sampled else []) + (["exact p"] if exact else [])) + ")"] + (["count", f"share of n={r.n}", "weighted p"] if sampled else []) + (["exact p(sampling)"] if exact else [])
    header = "".join(f"<th>{h}</th>" for h in head)
    return (f'<details open><summary>members of each cluster</summary><table class="td-wide"><thead><tr>{header}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></details>")  # fmt: skip


def _iv(r: Any, name: str) -> str:
    iv = r.intervals.get(name) or {}
    return "–" if iv.get("low") is None else f"[{num(iv['low'])}, {num(iv['high'])}]"


def measures_part(r: Any) -> str:
    se, pe = r.semantic_entropy, r.predictive_entropy
    sampled = r.source == "samples"
    level = f"{r.bootstrap.get('level', 0.95):.0%}" if sampled else "95%"
    rows: list[tuple[str, str, str, str]] = []
    if sampled:
        rows += [
            ("discrete semantic entropy", num(se.get("discrete")), _iv(r, "discrete"), f"entropy of the clusters' shares of the n={r.n} samples"),
            ("likelihood-weighted semantic entropy", num(se.get("weighted")), _iv(r, "weighted"),
             "cluster p = sum of the sequence probabilities p(sampling) of its distinct sampled completions, normalised over all sampled"),
            ("semantic sets", str(r.num_semantic_sets), "–", "clusters with at least one sample"),
            ("naive predictive entropy", num(pe.get("naive")), _iv(r, "naive"), "−mean log p(sampling) of the samples (whole completions)"),
            ("length-normalised predictive entropy", num(pe.get("length_normalised")), _iv(r, "length_normalised"),
             "−mean of log p(sampling) / tokens"),
        ]  # fmt: skip
    if r.exact is not None:
        e = r.exact
        if se.get("exact") is not None:
            rows.append(("exact semantic entropy", num(se["exact"]), "exact", "from the enumeration, which holds all the mass"))
        else:
            high = "no upper bound (vocabulary size unknown)" if se.get("exact_high") is None else num(se["exact_high"])
            rows.append(("exact semantic entropy", f"[{num(se.get('exact_low'))}, {high}]", "bounds",
                         f"found mass {e['found']:.6f}, unexplored {num(e['unexplored'])}: lower bound with all of it in one cluster, "
                         f"upper with it spread evenly over every completion it can hold (ln K = {num(e.get('log_max_completions'))})"))  # fmt: skip
        if not sampled:
            rows.append(("semantic sets", str(r.num_semantic_sets), "–", "clusters among the completions found"))
            rows.append(("semantic entropy of the found completions", num(se.get("weighted")), "–", "their exact probabilities, normalised"))
    body = "".join(f"<tr><td>{escape(a)}</td><td class=\"n\" style=\"white-space:nowrap\">{escape(b)}</td><td class=\"n\" style=\"white-space:nowrap\">{escape(c)}</td><td>{escape(d)}</td></tr>"
                   for a, b, c, d in rows)  # fmt: skip
    boot = r.bootstrap
    words = (f"nats. Intervals: {level} bootstrap, {boot.get('resamples')} resamples of the n={r.n} samples (seed {boot.get('seed')}; "
             f"{boot.get('method')})." if sampled else "nats.")  # fmt: skip
    return (f"<h3>Measures</h3><table><thead><tr><th>measure</th><th>value</th><th>{level} interval</th><th>what it is</th></tr></thead>"
            f"<tbody>{body}</tbody></table>" + note(words))  # fmt: skip


def convergence_part(r: Any) -> str:
    if r.source != "samples" or not r.convergence:
        return ""
    se = r.semantic_entropy
    reference, label = None, ""
    if r.exact is not None:
        if se.get("exact") is not None:
            reference, label = (se["exact"], se["exact"]), f"exact {num(se['exact'])}"
        else:
            low, high = se.get("exact_low"), se.get("exact_high")
            reference = (low, high)
            label = f"exact SE in [{num(low)}, {num(high)}]" if high is not None else f"exact SE ≥ {num(low)}"
    series = [IntervalSeries("discrete SE", [(p["n"], p["discrete"], p["discrete_low"], p["discrete_high"]) for p in r.convergence])]
    if any(p["weighted"] is not None for p in r.convergence):
        series.append(IntervalSeries("weighted SE", [(p["n"], p["weighted"], p["weighted_low"], p["weighted_high"]) for p in r.convergence],
                                     color=ORANGE, band=False))  # fmt: skip
    chart = interval_chart(series, title="the sampled estimate against the number of samples", x_label="N, the first N samples",
                           y_label="semantic entropy (nats)", reference=reference, reference_label=label)  # fmt: skip
    words = ("Each point: the estimate from the first N samples, with its bootstrap interval (band: discrete SE). "
             + ("Red: the exact semantic entropy from the enumeration" + (" (a line)." if se.get("exact") is not None else
                ", between its bounds (the band): the unexplored mass could lie in any cluster.") if r.exact is not None else
                "No enumeration given: pass exact= (or --exact RUN_ID) to draw the exact value."))  # fmt: skip
    return chart + note(words)


@view("semantic")
def semantic_section(r: Any) -> str:
    sources = []
    if r.source_run_id:
        sources.append(f"{'samples' if r.source == 'samples' else 'enumeration'}: run {escape(r.source_run_id)}")
    if r.exact_run_id:
        sources.append(f"enumeration: run {escape(r.exact_run_id)}")
    threshold = f" (threshold {num(r.threshold)})" if r.threshold is not None else ""
    meta = " · ".join([f"{escape(r.model or 'model?')} ({escape(r.engine or 'engine?')})", f"judge {escape(r.judge)}{threshold}",
                       f"{r.judged_pairs} pair{'' if r.judged_pairs == 1 else 's'} judged", *sources])  # fmt: skip
    what = f"answers read with <code>{escape(r.extract)}</code>" if r.extract else "whole completions"
    if r.source == "samples":
        se = r.semantic_entropy
        exact = ""
        if se.get("exact") is not None:
            exact = f"; exact: <b>{num(se['exact'])}</b>"
        elif se.get("exact_low") is not None:
            exact = f"; exact in <b>[{num(se['exact_low'])}, {num(se.get('exact_high'))}]</b>"
        words = (f"<p>{r.n} samples, {what}, in <b>{r.num_semantic_sets}</b> semantic set{'' if r.num_semantic_sets == 1 else 's'}{_more(r)}. "
                 f"Discrete semantic entropy <b>{num(se.get('discrete'))}</b> {escape(_iv(r, 'discrete'))} nats{exact}.</p>")  # fmt: skip
    else:
        words = f"<p>The enumerated completions ({what}) in <b>{r.num_semantic_sets}</b> semantic sets.</p>"
    prompt = f'<p>prompt: <span class="tok">{escape(show_token(r.prompt))}</span></p>'
    return card("Semantic entropy", meta, prompt, words, clusters_part(r), measures_part(r), convergence_part(r))


def _more(r: Any) -> str:
    """The clusters only the enumeration found, when there are any."""
    extra = len(r.clusters) - r.num_semantic_sets
    return f" (and {extra} more that only the enumeration found)" if extra > 0 else ""
