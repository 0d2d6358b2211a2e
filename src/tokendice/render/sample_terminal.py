"""Render sample runs and enumerations in the terminal."""

from __future__ import annotations

import math
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from tokendice.render.registry import renderer
from tokendice.render.text import prob, show_token

MAX_TEXT = 70


def _short(text: str) -> str:
    shown = show_token(text)
    return shown if len(shown) <= MAX_TEXT else shown[: MAX_TEXT - 2] + '…"'


@renderer("sample")
def sample_renderable(run: Any, rows: int = 15) -> Group:
    """A SampleRun: each prompt's table and summary; TARr@N over several prompts."""
    parts: list[Any] = [
        analysis_renderable(a, f"prompt: {a.prompt!r} · {run.method} sampling · seed {run.seed}", rows=rows) for a in run.analyses
    ]
    if len(run.analyses) > 1 and run.tarr_at_n is not None:
        parts.append(Text(f"TARr@{run.n_per_prompt} over {len(run.analyses)} prompts = {run.tarr_at_n:.3f}"))
    return Group(*parts)


def analysis_renderable(a: Any, title: str, rows: int = 15) -> Group:
    """A SampleAnalysis: distinct completions, fit test, spread, prefix check."""
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("completion")
    table.add_column("count", justify="right")
    table.add_column(f"observed share (n={a.n}) [95% Wilson]", justify="right")
    table.add_column("p(sampling) exact", justify="right")
    for i, c in enumerate(a.completions[:rows]):
        f = c.frequency
        table.add_row(str(i + 1), _short(c.text), str(f.count), f"{f.share:.4f} [{f.low:.4f}, {f.high:.4f}]", prob(c.exact_prob))
    if len(a.completions) > rows:
        rest = sum(c.frequency.count for c in a.completions[rows:])
        table.add_row("", f"… {len(a.completions) - rows} more distinct completions", str(rest), "", "")
    parts: list[Any] = [table]
    lines = [
        f"{a.n} samples, {a.distinct} distinct; TARr@{a.n} = {a.tarr:g} (1 = all identical)",
        f"exact probabilities: {a.exact_source}",
    ]
    if a.fit is not None:
        lines.append(
            f"goodness of fit ({'G-test' if a.fit.method == 'g' else 'chi-square'}, n={a.fit.n}, {a.fit.categories} categories after pooling "
            f"rare ones): statistic {a.fit.statistic:.2f}, dof {a.fit.dof}, p = {a.fit.p_value:.3g}"
        )
    if a.first_divergence_step is not None:
        lines.append(f"samples first diverge at step {a.first_divergence_step}")
    spread = [s for s in a.spread[:12]]
    if spread:
        lines.append("distinct prefixes by step: " + ", ".join(f"{s.step}:{s.distinct_prefixes}" for s in spread))
    parts.append(Text("\n".join(lines)))
    if a.at_prefix is not None:
        parts.append(prefix_renderable(a.at_prefix))
    return Group(*parts)


def prefix_renderable(check: Any) -> Any:
    if not check.reached:
        return Text(f"--at-prefix {show_token(check.prefix)}: no sample generated this prefix")
    table = Table(
        title=f"next token after {show_token(check.prefix)}: predicted vs observed ({check.reached} samples reached it)",
        title_justify="left",
    )
    for col in ("token", "p(sampling) predicted", "p(model)", "observed", "observed share [95% Wilson]"):
        table.add_column(col, justify="left" if col == "token" else "right")
    for r in check.rows:
        token = show_token(r["token"]) + (" (end)" if r["eos"] else "")
        lo, hi = r["wilson95"]
        table.add_row(token, prob(r["predicted_sampling_prob"]), prob(r["model_prob"]), str(r["observed"]), f"{r['observed_share']:.4f} [{lo:.4f}, {hi:.4f}]")
    return table


@renderer("enumerate")
def enumeration_renderable(e: Any, rows: int = 20) -> Group:
    table = Table(title="completions by exact probability under the sampling distribution", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("completion")
    table.add_column("p(sampling)", justify="right")
    table.add_column("p(model)", justify="right")
    table.add_column("end")
    for i, c in enumerate(e.completions[:rows]):
        table.add_row(str(i + 1), _short(c.text), prob(c.prob), prob(math.exp(c.model_logprob)), c.finish_reason)
    if len(e.completions) > rows:
        rest = math.fsum(c.prob for c in e.completions[rows:])
        table.add_row("", f"… {len(e.completions) - rows} more completions", prob(rest), "", "")
    summary = Text(
        f"found {len(e.completions)} completions holding {e.found_mass:.6f} of the mass (target {e.target_mass}); "
        f"unexplored {e.unexplored_mass:.6f} = frontier {e.frontier_mass:.6f} + pruned {e.pruned_mass:.6f}; "
        f"{e.expanded} prefixes expanded; stopped: {e.stopped_because}"
    )
    return Group(table, summary)
