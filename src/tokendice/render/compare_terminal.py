"""Render a CompareReport in the terminal: one table per pair, then its summary."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from tokendice.experiments.compare.compare import CompareReport, PairComparison
from tokendice.render.registry import renderer
from tokendice.render.text import logprob, prob, show_token


@renderer("compare")
def compare_renderable(report: CompareReport, rows: int | None = None) -> Group:
    """A `CompareReport`; `rows` limits the steps shown per pair (None: all)."""
    header = Text.assemble(  # plain Text: a prompt's "[b]" or ":smile:" is shown as written
        ("tokendice compare", "bold"), f" · {' vs '.join(e['label'] for e in report.engines)}\n",
        f"prompt: {report.prompt}\n",
        f"continuation ({report.continuation_source}, {len(report.continuation_ids)} tokens): {show_token(report.continuation)}",
    )  # fmt: skip
    parts: list[Any] = [header]
    for pair in report.pairs:
        parts.append(_pair_table(pair, report.top_k, rows))
        parts.append(Text(_summary(pair)))
        if pair.completions is not None:
            parts.append(_completions(pair))
    return Group(*parts)


def _pair_table(pair: PairComparison, top_k: int, rows: int | None) -> Table:
    table = Table(
        title=Text(f"A = {pair.a}, B = {pair.b}: model distributions (raw logits) before each continuation token; divergences in nats"),
        title_justify="left",
        title_style="dim",
    )
    columns = [("step", "right"), ("token", "left"), ("log p_A", "right"), ("log p_B", "right"), ("KL(A‖B)", "right"),
               ("KL(B‖A)", "right"), ("JS", "right"), ("top-1 A", "left"), ("top-1 B", "left"),
               (f"max |Δ log p| (top-{top_k} of A ∪ B)", "left")]  # fmt: skip
    for name, justify in columns:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    shown = pair.steps if rows is None else pair.steps[:rows]
    for s in shown:
        agree = "" if s.top1_agree else "bold red"
        table.add_row(
            str(s.step), Text(show_token(s.text)), logprob(s.logprob_a), logprob(s.logprob_b), _nats(s.kl_ab), _nats(s.kl_ba), _nats(s.js),
            Text(show_token(s.top1_a), style=agree), Text(show_token(s.top1_b), style=agree),
            Text(f"{s.max_logprob_diff:.4f} at {show_token(s.max_diff_token)}"),
        )  # fmt: skip
    if len(shown) < len(pair.steps):
        table.add_row("", f"… {len(pair.steps) - len(shown)} more steps", *[""] * (len(columns) - 2))
    return table


def _summary(pair: PairComparison) -> str:
    s = pair.summary()
    if not s.get("steps"):
        return "no steps compared"
    first = s["first_greedy_difference"]
    differ = f"greedy choices first differ at step {first}" if first is not None else "greedy choices agree at every step"
    return (
        f"summary {pair.a} vs {pair.b}: JS mean {_nats(s['mean_js'])}, max {_nats(s['max_js'])} (step {s['max_js_step']}) · "
        f"KL(A‖B) mean {_nats(s['mean_kl_ab'])} · KL(B‖A) mean {_nats(s['mean_kl_ba'])}\n"
        f"top-1 agreement {s['top1_agreement']:.3f} ({round(s['top1_agreement'] * s['steps'])}/{s['steps']}) · "
        f"max |Δ log p| {s['max_logprob_diff']:.4f} at step {s['max_logprob_diff_step']} ({show_token(s['max_logprob_diff_token'])}) · {differ}\n"
        f"log p(continuation): A {logprob(s['continuation_logprob_a'])}, B {logprob(s['continuation_logprob_b'])}"
    )


def _completions(pair: PairComparison) -> Group:
    c = pair.completions
    assert c is not None
    if c.tv is not None:
        tv = f"total variation distance = {c.tv:.4f} (exact)"
    else:
        tv = (f"total variation distance in [{c.tv_low:.4f}, {c.tv_high:.4f}] (the enumerations stopped with "
              f"{1 - c.found_mass_a:.4f} and {1 - c.found_mass_b:.4f} of the mass unexplored)")  # fmt: skip
    line = Text(
        f"completions of {c.max_new_tokens} tokens (sampling distribution; enumerated up to {c.max_nodes} prefixes each: "
        f"A found {c.found_mass_a:.4f} of its mass in {c.completions_a} completions, B {c.found_mass_b:.4f} in {c.completions_b}):\n  {tv}"
    )
    table = Table(title_justify="left", show_edge=False, box=None, padding=(0, 2))
    table.add_column("most likely completions")
    table.add_column("p_A", justify="right")
    table.add_column("p_B", justify="right")
    for row in c.top:
        table.add_row(Text(show_token(row["text"])), prob(row["prob_a"]), prob(row["prob_b"]))
    return Group(line, table)


def _nats(x: float | None) -> str:
    if x is None:
        return "inf"
    if x == float("inf"):
        return "inf"
    if x == 0:
        return "0"
    if abs(x) < 1e-3:
        return f"{x:.1e}"
    return f"{x:.4f}"
