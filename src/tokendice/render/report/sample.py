"""The sample-run view: per prompt, the top completions (observed share with its Wilson interval,
the exact probability marked), the goodness-of-fit test in words, the prefix tree of the samples
as an icicle, how many distinct prefixes each step holds, and the `at_prefix` check."""

from __future__ import annotations

import math
from html import escape
from itertools import islice
from typing import Any, Sequence

from tokendice.params import SamplingParams
from tokendice.render.registry import view
from tokendice.render.report.page import card, note
from tokendice.render.report.svg import BLUE, Bar, LineChart, Series, TreeNode, bar_chart, icicle, line_chart, num, tree_blocks
from tokendice.render.text import show_token

TOP = 15  # completions drawn as bars and listed
DEPTH = 8  # tokens of the prefix tree drawn
MIN_SHARE = 0.004  # prefixes narrower than this (about 3 px) are merged into an "other" block
PALE = ("#a9c4eb", "#f6c08f", "#a8d5b1", "#d5c4ea", "#f2aaa6", "#d9d49c", "#9fd3d6", "#e8b7d4")


def branch_color(branch: int, depth: int) -> str:
    """A pale colour per top-level branch, paler with depth: dark text stays readable on it."""
    base = PALE[branch % len(PALE)]
    r, g, b = (int(base[i : i + 2], 16) for i in (1, 3, 5))
    t = min(0.5, 0.07 * depth)
    return "#" + "".join(f"{int(c + (255 - c) * t):02x}" for c in (r, g, b))


def sampler_text(params: dict[str, Any]) -> str:
    """The sampler settings that differ from sampling the model's own distribution."""
    if not params:
        return "sampler: unknown"
    defaults = SamplingParams().to_dict()
    if not params.get("do_sample", True) or params.get("temperature") == 0:
        changed = ["greedy"]
    else:
        changed = [f"{k}={v}" for k, v in params.items() if k in defaults and v != defaults[k] and k not in ("max_new_tokens", "do_sample")]
    changed.append(f"max_new_tokens={params.get('max_new_tokens')}")
    return "sampler: " + (", ".join(changed) if len(changed) > 1 else f"the model's own distribution, {changed[0]}")


def interval(low: float, high: float) -> str:
    return f"[{num(low)}, {num(high)}]"


def _table(head: Sequence[str], rows: Sequence[str]) -> str:
    return f'<table><thead><tr>{"".join(f"<th>{escape(h)}</th>" for h in head)}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _ncell(text: str, cls: str = "n") -> str:
    return f'<td class="{cls}">{escape(text)}</td>'


def completions_part(a: Any) -> str:
    """The top completions as bars (observed share, Wilson interval, exact probability) and a table."""
    top = a.completions[:TOP]
    if not top:
        return note("no samples")
    source = a.exact_source or "unknown"
    bars = []
    for c in top:
        f = c.frequency
        exact = "unknown" if c.exact_prob is None else num(c.exact_prob)
        tip = (f"{show_token(c.text)}\n{f.count} of n={a.n} samples: observed share {num(f.share)}, 95% Wilson interval "
               f"{interval(f.low, f.high)}\nexact p(sampling) {exact} (from {source})")
        bars.append(Bar(show_token(c.text), f.share, f.low, f.high, c.exact_prob, tip))
    title = f"top {len(top)} of {a.distinct} distinct completions" if a.distinct > len(top) else f"the {a.distinct} distinct completions"
    marker = "exact p(sampling)" if any(c.exact_prob is not None for c in top) else ""
    chart = bar_chart(bars, title=title, value_label=f"observed share of n={a.n} samples", interval_label="95% Wilson interval", marker_label=marker)
    rows = []
    for rank, c in enumerate(top, 1):
        f = c.frequency
        rows.append(f"<tr>{_ncell(str(rank))}<td class=\"tok\">{escape(show_token(c.text))}</td>{_ncell(str(f.count))}{_ncell(num(f.share))}"
                    f"{_ncell(interval(f.low, f.high))}{_ncell('–' if c.exact_prob is None else num(c.exact_prob))}</tr>")
    rest = a.completions[len(top):]
    if rest:
        count = sum(c.frequency.count for c in rest)
        rows.append(f"<tr><td></td><td>… {len(rest)} more distinct completions</td>{_ncell(str(count))}{_ncell(num(count / a.n))}"
                    "<td></td><td></td></tr>")
    table = _table(["#", "completion", "count", f"observed share (n={a.n})", "95% Wilson interval", "exact p(sampling)"], rows)
    return (chart + note(f"Bars: the share of the n={a.n} samples that are this completion, with its 95% Wilson interval. "
                         f"◆ exact probability under the sampling distribution (after the whole sampler chain), from {source}.")
            + table)  # fmt: skip


FIT_NAMES = {"g": "G-test (likelihood ratio)", "chi2": "Pearson's chi-square test"}


def fit_verdict(p_value: float, against: str) -> str:
    """A goodness-of-fit test's verdict at the 5% level, in words (HTML)."""
    if p_value >= 0.05:
        return f'<span class="td-good">consistent with {against}</span> (p ≥ 0.05)'
    return f'<span class="td-bad">the counts depart from {against}</span> (p &lt; 0.05: chance alone does this in 1 run of 20)'


def fit_part(a: Any) -> str:
    """The goodness-of-fit test in words."""
    fit = a.fit
    if fit is None:
        if a.distinct <= 1:
            why = "every sample is the same completion"
        else:
            why = f"no exact probabilities ({a.exact_source})"
        return f'<p><b>Goodness of fit:</b> no test: {escape(why)}.</p>'
    name = FIT_NAMES.get(fit.method, fit.method)
    verdict = fit_verdict(fit.p_value, "the exact probabilities")
    stat = "G" if fit.method == "g" else "χ²"
    return (f"<p><b>Goodness of fit:</b> {escape(name)} of the observed counts (n={fit.n}) against the exact probabilities "
            f"(p(sampling), from {escape(a.exact_source)}): {stat} = {num(fit.statistic)}, {fit.dof} degrees of freedom, "
            f"{fit.categories} categories (rare completions pooled), p = {num(fit.p_value, 3)}: {verdict}.</p>")  # fmt: skip


class _Prefix:
    __slots__ = ("count", "text", "token", "sampling", "model", "children")

    def __init__(self, text: str, token: str, sampling: float, model: float) -> None:
        self.count, self.text, self.token, self.sampling, self.model = 0, text, token, sampling, model
        self.children: dict[int, _Prefix] = {}


def prefix_tree(samples: Sequence[Any], depth: int = DEPTH) -> dict[int, _Prefix]:
    """The samples' prefixes up to `depth` tokens: counts and the exact probability of each prefix,
    exp(sum of its tokens' recorded log-probabilities) under both distributions."""
    roots: dict[int, _Prefix] = {}
    for s in samples:
        level, text, lp_s, lp_m = roots, "", 0.0, 0.0
        for token, piece, ls, lm in islice(zip(s.tokens, s.token_texts, s.sampling_logprobs, s.model_logprobs, strict=True), depth):
            text, lp_s, lp_m = text + piece, lp_s + ls, lp_m + lm
            node = level.get(token)
            if node is None:
                node = level[token] = _Prefix(text, piece, lp_s, lp_m)
            node.count += 1
            level = node.children
    return roots


def _prob(logprob: float) -> str:
    return "unknown (not reported)" if logprob is None or math.isnan(logprob) else num(math.exp(logprob))


def icicle_part(a: Any, samples: Sequence[Any], max_blocks: int = 800) -> str:
    """The prefix tree of the samples: width = count / n at each depth, in at most `max_blocks` blocks."""
    if not samples:
        return note("Prefix tree: not drawn, this result does not hold its samples (td.load_run(run_id) reads a stored run back with them).")
    if not any(s.tokens for s in samples):
        return note("Prefix tree: not drawn, the samples hold no tokens (the engine reported none).")
    n = len(samples)

    def nodes(level: dict[int, _Prefix], branch: int | None, depth: int) -> list[TreeNode]:
        out = []
        for i, p in enumerate(sorted(level.values(), key=lambda p: (-p.count, p.text))):
            b = i if branch is None else branch
            tip = (f"prefix {show_token(p.text)} (token {show_token(p.token)} at step {depth})\n{p.count} of n={n} samples: share "
                   f"{num(p.count / n)}\nexact p(sampling) of this prefix {_prob(p.sampling)} · p(model) {_prob(p.model)}")
            out.append(TreeNode(p.count / n, show_token(p.token), tip, branch_color(b, depth), nodes(p.children, b, depth + 1)))
        return out

    def other(merged: Sequence[TreeNode], weight: float) -> str:
        return f"{len(merged)} other prefixes, merged (too narrow to draw): together {round(weight * n)} of n={n} samples (share {num(weight)})"

    blocks = tree_blocks(nodes(prefix_tree(samples), None, 0), min_share=MIN_SHARE, max_blocks=max_blocks, other=other)
    longest = max(len(s.tokens) for s in samples)
    shown = f"the first {DEPTH} tokens" if longest > DEPTH else "every token"
    chart = icicle(blocks, title=f"prefix tree of the n={n} samples ({shown})",
                   depth_label="row: step (token position) · width: share of the samples with that prefix")  # fmt: skip
    return chart + note(f"Width: the share of the n={n} samples that begin with the prefix. Hover a block for the prefix, its "
                        "count, and its exact probability (the product of the sampling probabilities recorded for its tokens). "
                        "Grey: rare prefixes, merged. A gap below a block: samples that ended.")


def spread_part(a: Any) -> str:
    if not a.spread:
        return ""
    labels = [f"({s.reaching} of n={a.n} samples reach it; most chosen: " + ", ".join(f"{show_token(t)} {c}" for t, c in s.top_tokens) + ")"
              for s in a.spread]
    chart = line_chart(LineChart(
        "distinct prefixes by step", "step (token position)", "distinct prefixes",
        [Series(f"distinct prefixes among the n={a.n} samples", [s.distinct_prefixes for s in a.spread], BLUE)],
        x_labels=labels, highlight=a.first_divergence_step,
    ), height=200)  # fmt: skip
    where = (f"The samples first diverge at step {a.first_divergence_step} (red line)."
             if a.first_divergence_step is not None else "The samples never diverge.")
    return chart + note(f"Distinct prefixes: how many different token sequences of length step + 1 the samples hold. {where}")


def at_prefix_part(a: Any) -> str:
    check = a.at_prefix
    if check is None:
        return ""
    head = f"<h3>Next token after the generated prefix {escape(show_token(check.prefix))}: predicted vs observed</h3>"
    if not check.reached:
        return head + note("No sample generated this prefix.")
    bars, rows = [], []
    for r in check.rows:
        token = show_token(r["token"]) + (" (end)" if r.get("eos") else "")
        low, high = r["wilson95"]
        predicted = r.get("predicted_sampling_prob")
        tip = (f"{token}: observed {r['observed']} of {check.reached} (share {num(r['observed_share'])}, 95% Wilson interval "
               f"{interval(low, high)}); predicted p(sampling) {'–' if predicted is None else num(predicted)}")
        bars.append(Bar(token, r["observed_share"], low, high, predicted, tip))
        inside = predicted is not None and low <= predicted <= high
        verdict = "–" if predicted is None else ("yes" if inside else "no")
        rows.append(f"<tr><td class=\"tok\">{escape(token)}</td>{_ncell('–' if predicted is None else num(predicted))}"
                    f"{_ncell('–' if r.get('model_prob') is None else num(r['model_prob']))}{_ncell(str(r['observed']))}"
                    f"{_ncell(num(r['observed_share']))}{_ncell(interval(low, high))}"
                    f"<td class=\"{'td-good' if inside else 'td-bad' if predicted is not None else ''}\">{verdict}</td></tr>")
    chart = bar_chart(bars, title=f"next token after {show_token(check.prefix)}", value_label=f"share of the {check.reached} samples reaching it",
                      interval_label="95% Wilson", marker_label="predicted p(sampling)")  # fmt: skip
    table = _table(["next token", "predicted p(sampling)", "p(model)", "observed", f"observed share (n={check.reached})",
                    "95% Wilson interval", "predicted inside it"], rows)  # fmt: skip
    return head + note(f"{check.reached} samples generated this prefix. Predicted: the exact next-token distribution after it "
                       "(p(sampling): after the whole sampler chain; p(model): softmax of the raw logits). A prediction outside the "
                       "95% interval of its observed share happens by chance in about 1 row of 20.") + chart + table


def analysis_parts(run: Any, index: int, a: Any) -> list[str]:
    samples = [s for s in run.samples if s.prompt_index == index]
    budget = max(120, 800 // len(run.analyses))  # blocks per prefix tree: the page stays small with many prompts
    divergence = "" if a.first_divergence_step is None else f" · first divergence at step {a.first_divergence_step}"
    tarr = "–" if a.tarr is None or math.isnan(a.tarr) else f"{a.tarr:g}"
    summary = (f"<p><b>n={a.n}</b> samples · <b>{a.distinct}</b> distinct completions · TARr@{a.n} = {tarr} "
               f"(1 when all {a.n} completions are identical){divergence}</p>")  # fmt: skip
    prompt = f'<p>prompt: <span class="tok">{escape(show_token(a.prompt))}</span></p>'
    return [prompt, summary, completions_part(a), fit_part(a), icicle_part(a, samples, budget), spread_part(a), at_prefix_part(a)]


def run_meta(run: Any) -> str:
    engine = f"{escape(run.model or 'model?')} ({escape(run.engine or 'engine?')})"
    rid = f" · run {escape(run.run_id)}" if run.run_id else ""
    return (f"{engine} · {escape(run.method)} sampling · seed {run.seed} · rng {escape(run.rng)} · "
            f"{escape(sampler_text(run.params))}{rid}")  # fmt: skip


def _warnings(run: Any) -> str:
    return "".join(f'<p class="td-bad">{escape(w)}</p>' for w in run.warnings)


@view("sample")
def sample_section(run: Any) -> str:
    """One card for a one-prompt run; for several prompts, a summary card and one card per prompt."""
    if len(run.analyses) == 1:
        return card("Sample run", run_meta(run), _warnings(run), *analysis_parts(run, 0, run.analyses[0]))
    tarr = "–" if run.tarr_at_n is None else num(run.tarr_at_n)
    rows = []
    for i, a in enumerate(run.analyses):
        top = a.top
        fit = "–" if a.fit is None else num(a.fit.p_value, 3)
        rows.append(f"<tr>{_ncell(str(i + 1))}<td class=\"tok\">{escape(show_token(a.prompt))}</td>{_ncell(str(a.n))}{_ncell(str(a.distinct))}"
                    f"<td class=\"tok\">{escape(show_token(top.text)) if top else '–'}</td>{_ncell(num(top.frequency.share) if top else '–')}"
                    f"{_ncell(fit)}</tr>")
    summary = card(
        "Sample run",
        run_meta(run),
        _warnings(run),
        f"<p>{len(run.analyses)} prompts × n={run.n_per_prompt} samples each · <b>TARr@{run.n_per_prompt} = {tarr}</b> "
        f"(the share of prompts whose {run.n_per_prompt} completions are all identical)</p>",
        _table(["#", "prompt", "n", "distinct", "most frequent completion", "its observed share", "goodness of fit p"], rows),
    )
    cards = [card(f"prompt {i + 1} of {len(run.analyses)}", run_meta(run), *analysis_parts(run, i, a)) for i, a in enumerate(run.analyses)]
    return summary + "".join(cards)
