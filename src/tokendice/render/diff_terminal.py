"""Render a diff of two generations in the terminal: where they fork, the top candidates there,
and how far their log-probabilities drifted before."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from tokendice.experiments.compare.diff import DiffSide, RunDiff
from tokendice.render.registry import renderer
from tokendice.render.text import logprob, prob, show_token

DRIFT_ROWS = 30
"""A diff lists every common step up to this many; past it, the largest drifts."""


def _num(x: float | None, fmt: str = ".2g") -> str:
    return "-" if x is None else ("0" if x == 0 else format(x, fmt))


@renderer("diff")
def diff_renderable(report: RunDiff) -> Group:
    a, b = report.a, report.b
    header = Text.assemble(("tokendice diff", "bold"), f"\n  A: {_describe(a)}\n  B: {_describe(b)}")  # plain Text: no markup, no emoji codes
    parts: list[Any] = [header]
    for note in report.notes:
        parts.append(Text(f"note: {note}", style="yellow"))
    if report.identical:
        parts.append(Text(f"identical: the same {report.common_steps} tokens", style="bold green"))
    else:
        d = report.divergence or {}
        first = Text(f"first divergence at step {report.first_divergence} ", style="bold red")
        first.append(f"(after {report.common_steps} common tokens): "
                     f"A {_choice(d.get('a', {}))} vs B {_choice(d.get('b', {}))}")
        parts.append(first)
        if d.get("top_a") or d.get("top_b"):
            parts.append(_tops_table(d))
    parts.append(_drift_table(report))
    if not report.identical:
        k = report.common_steps
        tail = Text("after the fork:\n  A: ", style="bold")
        tail.append(show_token("".join(a.token_texts[k:])))
        tail.append("\n  B: ", style="bold")
        tail.append(show_token("".join(b.token_texts[k:])))
        parts.append(tail)
    return Group(*parts)


def _describe(side: DiffSide) -> str:
    what = side.source
    if side.model:
        what += f" · {side.model}" + (f" ({side.engine})" if side.engine else "")
    if side.condition:
        what += f" · audit condition: {side.condition}"
    return f"{what} · {len(side.tokens)} tokens · {show_token(_clip(side.text, 60))}"


def _choice(c: dict[str, Any]) -> str:
    lp = c.get("model_logprob")
    return show_token(c.get("text", "")) + ("" if lp is None else f" (log p {lp:.3f})")


def _tops_table(d: dict[str, Any]) -> Table:
    margins = [f"margin {d[k]:.3g}" if d.get(k) is not None else "" for k in ("margin_a", "margin_b")]
    table = Table(title=f"top candidates at step {d['step']} (model distribution)", title_justify="left", title_style="dim")
    for col, justify in [("rank", "right"), (f"A {margins[0]}", "left"), ("p(model)", "right"), (f"B {margins[1]}", "left"), ("p(model)", "right")]:
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    top_a, top_b = d.get("top_a") or [], d.get("top_b") or []
    chosen = {d["a"].get("token_id"), d["b"].get("token_id")}
    for i in range(max(len(top_a), len(top_b))):
        cells: list[Any] = [str(i + 1)]
        for top in (top_a, top_b):
            if i < len(top):
                c = top[i]
                cells += [Text(show_token(c["text"]), style="bold" if c["token_id"] in chosen else ""), prob(c.get("model_prob"))]
            else:
                cells += ["", ""]
        table.add_row(*cells)
    return table


def _drift_table(report: RunDiff) -> Any:
    rows = report.drift
    if not rows:
        return Text("no common steps", style="dim")
    title = f"log-prob drift along the common prefix: max |Δ| = {_num(report.max_drift)}"
    if len(rows) > DRIFT_ROWS:
        rows = sorted(rows, key=lambda r: -(r["abs_diff"] or 0))[:DRIFT_ROWS // 3]
        rows.sort(key=lambda r: r["step"])
        title += f" (the {len(rows)} largest of {len(report.drift)} steps)"
    table = Table()
    for col, justify in [("step", "right"), ("token", "left"), ("log p A", "right"), ("log p B", "right"), ("|Δ|", "right")]:
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for r in rows:
        table.add_row(str(r["step"]), Text(show_token(r["text"])), logprob(r["logprob_a"]), logprob(r["logprob_b"]), _num(r["abs_diff"]))
    return Group(Text(title, style="dim"), table)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
