"""Render determinism audits and prompt-set agreement in the terminal with rich."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from tokendice.experiments.audit.agreement import AgreementReport
from tokendice.experiments.audit.report import AuditReport, ConditionResult
from tokendice.render.registry import renderer
from tokendice.render.text import setup_words, show_token


def _num(x: float | None, fmt: str = ".2g") -> str:
    return "-" if x is None else ("0" if x == 0 else format(x, fmt))


def _style(c: ConditionResult) -> str:
    if c.changes_output:
        return "bold red"
    if not c.ran:
        return "dim"
    return "yellow" if c.max_logprob_diff else "green"


@renderer("audit")
def audit_renderable(report: AuditReport, notes: bool = True, **options: Any) -> Group:
    """The report: header, baseline, one row per condition, where runs fork, the summary and
    recipe; `notes=False` leaves out the notes (the CLI printed them on stderr already)."""
    sampler = "greedy" if report.params.get("do_sample") is False or report.params.get("temperature") == 0 else f"seed {report.seed} · rng {report.rng}"
    run = f" · run {report.run_id}" if report.run_id else ""
    header = Text.from_markup(
        f"[bold]tokendice audit[/] · {escape(report.model)} ({report.engine}) · {sampler} · "
        f"{report.repeats} repeats per condition{run}"
    )
    base = report.baseline
    intro = Text("prompt: ", style="bold")
    intro.append(report.prompt)
    intro.append("\nbaseline: ", style="bold")
    intro.append(f"{setup_words(base['setup'])}\n")
    intro.append("output: ", style="bold")
    intro.append(show_token(base["text"]))
    intro.append(f"   [{base['finish_reason']}, {len(base['tokens'])} tokens]", style="dim")

    table = Table(title="each condition vs the baseline's first run; log-probs are the model's (raw logits)",
                  title_justify="left", title_style="dim")
    for col, justify in [("condition", "left"), ("verdict", "left"), ("same tokens", "right"), ("distinct", "right"),
                         ("TARr", "right"), ("first div.", "right"), ("max |Δ log p|", "right"),
                         ("margin", "right"), ("time", "right")]:
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for c in report.conditions:
        table.add_row(
            c.label, Text(c.verdict, style=_style(c)),
            f"{c.n_identical}/{c.repeats}" if c.ran else "-", str(c.unique_outputs) if c.ran else "-",
            _num(c.tarr, "g"), "-" if c.first_divergence is None else str(c.first_divergence),
            _num(c.max_logprob_diff), _num(c.margin, ".3g"), f"{c.seconds:.1f}s" if c.ran else "-",
        )
    parts: list[Any] = [header, intro, table]
    details = [_divergence_line(c, report.run_id) for c in report.conditions if c.changes_output]
    if details:
        parts.append(Text("where runs fork (margin: the baseline's top-1 minus top-2 model log-prob there):\n"
                          + "\n".join(details)))
    parts.append(_summary(report, notes))
    return Group(*parts)


def _divergence_line(c: ConditionResult, run_id: str | None) -> str:
    k = c.first_divergence
    line = f"  {c.label}: step {k}: baseline {show_token(c.baseline_token or '')} vs {show_token(c.condition_token or '')}"
    if c.margin is not None:
        line += f", baseline margin {c.margin:.3g}"
    if c.condition_margin is not None:
        line += f", margin under {c.label} {c.condition_margin:.3g}"
    if c.max_logprob_diff_forced is not None:
        line += f"; drift along the whole baseline {_num(c.max_logprob_diff_forced)}"
    if c.unique_outputs > 1:
        line += f"; {c.unique_outputs} distinct outputs over {c.repeats} repeats"
    if run_id and c.divergent_repeat is not None and c.divergent_repeat < len(c.sample_ids):
        line += f"\n    see: tokendice diff {run_id}:0 {run_id}:{c.sample_ids[c.divergent_repeat]}"
    return line


def _summary(report: AuditReport, notes: bool) -> Text:
    s = report.summary
    out = Text()
    if not s["baseline_reproducible"]:
        out.append("the baseline itself is not reproducible on this machine\n", style="bold red")
    out.append("changes the output here: ", style="bold")
    out.append(", ".join(s["changes_output"]) or "nothing tested", style="red" if s["changes_output"] else "green")
    if s["drift_only"]:
        out.append("\nsame tokens, drifting log-probs: ", style="bold")
        out.append(", ".join(s["drift_only"]), style="yellow")
    if s["identical"]:
        out.append("\nbit-identical: ", style="bold")
        out.append(", ".join(s["identical"]), style="green")
    if s["not_tested"]:
        out.append("\nnot tested: ", style="bold")
        out.append("; ".join(f"{k} ({v})" for k, v in s["not_tested"].items()), style="dim")
    out.append("\nrecipe: ", style="bold")
    out.append(s["recipe"])
    for note in report.notes if notes else ():
        out.append(f"\nnote: {note}", style="dim")
    out.append(f"\n{report.wall_seconds:.0f} s in all", style="dim")
    return out


@renderer("audit_prompts")
def agreement_renderable(report: AgreementReport, notes: bool = True, **options: Any) -> Group:
    """One row per prompt, then TARr@N (and TARa@N); `notes` as in `audit_renderable`."""
    n = report.repeats
    run = f" · run {report.run_id}" if report.run_id else ""
    header = Text.from_markup(
        f"[bold]tokendice audit --prompts[/] · {escape(report.model)} ({report.engine}) · {len(report.prompts)} prompts × "
        f"{n} repeats · batch {report.batch_size}{run}"
    )
    table = Table()
    for col, justify in [("#", "right"), ("prompt", "left"), ("distinct outputs", "right"),
                         ("distinct answers", "right"), ("first div.", "right"), ("outputs", "left")]:
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for p in report.prompts:
        table.add_row(
            str(p.index), _clip(p.prompt, 40), str(p.unique_outputs), "-" if p.unique_answers is None else str(p.unique_answers),
            "-" if p.first_divergence is None else str(p.first_divergence),
            " | ".join(show_token(_clip(o, 40)) for o in p.outputs[:3]) + (" ..." if len(p.outputs) > 3 else ""),
        )
    line = Text(f"TARr@{n} = {report.tarr:.3f}", style="bold")
    if report.tara is not None:
        line.append(f"   TARa@{n} = {report.tara:.3f}  (answers: {report.answer_regex})", style="bold")
    line.append("   share of prompts whose repeats all agree (Atil et al. 2024)", style="dim")
    for note in report.notes if notes else ():
        line.append(f"\nnote: {note}", style="dim")
    return Group(header, table, line)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
