"""Render prompt-sensitivity reports in the terminal: ranked variants, the POSIX heat table, suite summaries."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from tokendice.render.registry import renderer
from tokendice.render.text import prob, show_token

if TYPE_CHECKING:
    from tokendice.experiments.perturb.perturb import PromptReport, VariantResult
    from tokendice.experiments.perturb.suite import PerturbReport
    from tokendice.experiments.perturb.variants import VariantList

NO_STAGES = "the model's own distribution (no stages)"
HEAT_MAX = 24
"""The POSIX matrix is drawn for at most this many prompts (JSON has it all)."""


def _short(text: str, width: int = 40) -> str:
    shown = show_token(text)
    return shown if len(shown) <= width else shown[: width - 2] + '…"'


def _num(x: float | None, fmt: str = ".3f") -> str:
    return "-" if x is None else format(x, fmt)


def _tv(r: VariantResult) -> Text:
    if r.tv is None:
        return Text("-")
    t = r.tv
    style = "bold red" if t.low >= 0.5 else ("yellow" if t.low >= 0.1 else "")
    return Text(f"{t.value:.3f} [{t.low:.3f}, {t.high:.3f}]", style=style)


def _greedy(r: VariantResult) -> Text:
    if r.greedy_same:
        return Text("same", style="green")
    return Text(f"differs at {r.greedy_divergence}", style="bold red" if r.greedy_divergence == 0 else "yellow")


def _heat(value: float) -> str:
    """A background for a per-token log-likelihood change: the larger |Δ|, the hotter."""
    size = abs(value)
    if size < 0.1:
        return ""
    if size < 0.5:
        return "on grey30"
    if size < 1.5:
        return "on dark_orange3"
    return "on red3"


def variants_table(report: PromptReport, sampling_column: bool = True) -> Table:
    """The ranked variants; `sampling_column` False drops JS(sampling) when it equals JS(model) (no sampler stages)."""
    title = "variants, most disruptive first · TV: completion distributions · JS (nats), top-1: first step"
    table = Table(title=title, title_justify="left", title_style="dim")
    columns = [("#", "right", None), ("variant", "left", 26), ("prompt", "left", 30), ("TV [95%]", "right", None),
               ("JS model", "right", None), ("JS sampling", "right", None), ("top-1", "left", 12),
               ("p(orig top-1)", "right", None), ("greedy", "left", None), ("Δlogp/tok", "right", None)]
    if not sampling_column:
        columns = [c for c in columns if c[0] != "JS sampling"]
    answers = any(r.answer_tv is not None for r in report.variants)
    if answers:
        columns.insert(4, (escape("answer TV [bounds]"), "right", None))
    for name, justify, width in columns:
        table.add_column(name, justify=justify, no_wrap=True, overflow="ellipsis", max_width=width)  # type: ignore[arg-type]
    for r in report.variants:
        top = Text(show_token(r.top1["text"]), style="bold red" if r.top1_changed else "")
        cells: list[Any] = [
            str(r.rank), Text(r.variant.name), Text(("chat " if r.variant.chat else "") + show_token(r.variant.prompt)),
            _tv(r), _num(r.js_model, ".4f"), _num(r.js_sampling, ".4f"), top, prob(r.orig_top1_model_prob), _greedy(r),
            _num(r.orig_response_delta, "+.3f"),
        ]
        if not sampling_column:
            del cells[5]
        if answers:
            t = r.answer_tv
            cells.insert(4, "-" if t is None else f"{t.value:.3f} [{t.low:.3f}, {t.high:.3f}]")
        table.add_row(*cells)
    return table


def posix_table(report: PromptReport) -> Group | Text:
    """Rows: prompts; columns: the greedy response of prompt j; cells: per-token change of its log-likelihood."""
    names = report.posix["names"]
    if len(names) > HEAT_MAX:
        return Text(f"(POSIX matrix of {len(names)} prompts: see --json)", style="dim")
    loglik, lengths = report.posix["loglik"], report.posix["response_lengths"]
    table = Table(padding=(0, 0), show_edge=False)
    table.add_column("prompt i \\ response j", no_wrap=True)
    for j in range(len(names)):
        table.add_column(str(j), justify="right", min_width=6)
    for i, name in enumerate(names):
        cells: list[Any] = []
        for j in range(len(names)):
            if i == j:
                cells.append(Text("·", style="dim"))
                continue
            delta = (loglik[i][j] - loglik[j][j]) / lengths[j]
            cells.append(Text(f"{delta:+.2f}", style=_heat(delta)))
        table.add_row(Text(f"{i} {name}"), *cells)
    legend = Text("cell = [log P(y_j | x_i) - log P(y_j | x_j)] / len(y_j): row i = prompt, column j = greedy response "
                  "of prompt j, model log-probabilities per token", style="dim")
    return Group(legend, table)


def d_completions(report: PromptReport) -> str:
    """How many of the original's completions the answers were read from."""
    listed = report.answers.get("listed") or [{}]
    return str(listed[0].get("completions", report.distribution.get("completions", "listed")))


def _distribution_line(report: PromptReport) -> str:
    d = report.distribution
    if d.get("method") == "skipped":
        return "completion distributions not measured (--no-distribution)"
    sampled = f"{d['samples']} samples of the original ({d['distinct']} distinct, seed {d['seed']})"
    e = d.get("enumeration")
    if d["method"] == "exact":
        return (f"TV exact: the original's enumeration lists {d['completions']} completions holding {d['scored_mass']:.3f} "
                "of its mass; [low, high] are hard bounds, the value their midpoint")
    why = (f"the enumeration reached {e['found_mass']:.3f} of {d['target_mass']} in {e['expanded']} prefixes" if e else
           f"not enumerated: {d['good_turing_unseen']:.0%} of the samples are singletons, too diffuse")
    return (f"TV from {sampled}, each scored exactly under every variant: unbiased mean of (1 - q/p)+, normal 95% "
            f"interval ({why})")


def prompt_renderable(report: PromptReport, sampling_column: bool = True) -> Group:
    o = report.original
    intro = Text("prompt: ", style="bold")
    intro.append(show_token(report.prompt) + (" (chat template)" if report.chat else ""))
    intro.append("\noriginal: ", style="bold")
    intro.append(f"top-1 {show_token(o['top1']['text'])} p(model) {prob(o['top1']['model_prob'])}"
                 f" p(sampling) {prob(o['top1']['sampling_prob'])} · greedy {show_token(o['greedy_text'])}")
    parts: list[Any] = [intro, variants_table(report, sampling_column), Text(_distribution_line(report), style="dim")]
    if report.answers:
        a = report.answers
        parts.append(Text(f"answer TV ({a['extract']}): the original's {d_completions(report)} {a['listed_from']} completions and each "
                          "variant's own enumerated ones, scored under both prompts and grouped by answer; [low, high] are hard bounds "
                          "(the unlisted mass of the original and of the variant may give any answer), the value their midpoint",
                          style="dim"))
    if report.skipped:
        parts.append(Text("skipped: " + "; ".join(f"{s['name']} ({s['note']})" for s in report.skipped), style="dim"))
    parts.append(Text(f"POSIX (Chatterjee et al. 2024) over {len(report.posix['names'])} prompts: psi = "
                      f"{report.posix['psi']:.4f} (0 = every prompt scores every response alike)", style="bold"))
    parts.append(posix_table(report))
    return Group(*parts)


def summary_renderable(summary: dict[str, Any]) -> Group:
    parts: list[Any] = []
    for key, title in [("by_kind", "per variant kind"), ("by_variant", "per variant")]:
        table = Table(title=f"over {summary['prompts']} prompts, {title}, most disruptive first", title_justify="left")
        for name, justify in [(key[3:], "left"), ("n", "right"), ("mean TV", "right"), ("mean JS model", "right"),
                              ("top-1 changed", "right"), ("greedy changed", "right"), ("mean Δ log p/tok", "right")]:
            table.add_column(name, justify=justify)  # type: ignore[arg-type]
        for row in summary[key]:
            table.add_row(
                Text(row[key[3:]]), str(row["n"]), _num(row["mean_tv"]), _num(row["mean_js_model"], ".4f"),
                _num(row["top1_change_rate"], ".0%"), _num(row["greedy_change_rate"], ".0%"),
                _num(row["mean_orig_response_delta"], "+.3f"),
            )
        parts.append(table)
    parts.append(Text(f"most disruptive kind: {summary['most_disruptive_kind']} · POSIX over the suite (mean psi) = "
                      f"{summary['posix']:.4f}", style="bold"))
    return Group(*parts)


def _sampler(params: Any) -> str:
    from tokendice.sampling.chain import SamplerChain

    labels = SamplerChain.from_params(params).labels
    return " → ".join(labels) if labels else NO_STAGES


@renderer("perturb")
def perturb_renderable(report: PerturbReport, details: bool = False, **options: Any) -> Group:
    """A single prompt: its ranked variants and POSIX table. A suite: one line per prompt (every
    prompt's tables with `details`) and the summary per variant kind and per variant."""
    s = report.settings
    parts: list[Any] = [
        Text.from_markup(
            f"[bold]tokendice perturb[/] · {escape(report.model)} ({escape(report.engine)}) · {s.params.max_new_tokens} "
            f"new tokens · seed {s.seed} · {report.seconds:.0f}s"
        ),
        Text(f"sampler: {_sampler(s.params)} · distribution: " + (
            f"{s.samples} samples, enumeration to {s.mass} within {s.max_nodes} prefixes" if s.distribution else "not measured"
        ), style="dim"),
    ]  # fmt: skip
    if not report.prompts:
        parts.append(Text("no prompt measured yet", style="dim"))
    elif len(report.prompts) == 1 or details:
        stages = _sampler(s.params) != NO_STAGES
        parts.extend(prompt_renderable(p, sampling_column=stages) for p in report.prompts)
    else:
        for i, p in enumerate(report.prompts, 1):
            top = ", ".join(f"{r.variant.name} {r.tv.value:.2f}" if r.tv else r.variant.name for r in p.variants[:3])
            parts.append(Text(f"{i:>3}. {_short(p.prompt, 50)}  psi {p.posix['psi']:.3f} · most disruptive: {top}"))
    if len(report.prompts) > 1:
        parts.append(summary_renderable(report.summary))
    return Group(*parts)


@renderer("variants")
def variants_renderable(listing: VariantList, **options: Any) -> Group:
    """One table per prompt: each variant's name, kind, encoding and resulting prompt; what is skipped and why."""
    tables = []
    for vset in listing.sets:
        table = Table(title=Text(f"variants of {show_token(vset.original.prompt)}"), title_justify="left")
        for name in ("variant", "kind", "encoding", "prompt"):
            table.add_column(name)
        for v in [vset.original] + vset.variants:
            table.add_row(Text(v.name), v.kind, "chat template" if v.chat else "raw text", Text(show_token(v.prompt)))
        for skipped in vset.skipped:
            table.add_row(Text(skipped["name"], style="dim"), "", "", Text(f"skipped: {skipped['note']}", style="dim"))
        tables.append(table)
    return Group(*tables)
