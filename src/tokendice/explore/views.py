"""What the explorer's routes send the page: JSON with HTML fragments drawn by the report views
(the trace view, bars, step tables), so the page and a report show the same thing."""

from __future__ import annotations

from typing import Any, Callable

from tokendice.render.report.explore import branch_summary, node_sample_section
from tokendice.render.report.trace import step_table, trace_section


def state(explorer: Any) -> dict[str, Any]:
    tree = explorer.tree
    return {
        "prompt": tree.prompt, "engine": tree.engine, "model": tree.model, "params": tree.params, "run_id": tree.run_id,
        "branches": [branch_summary(tree, b) for b in tree.branches],
    }  # fmt: skip


def branch(explorer: Any, branch_id: int) -> dict[str, Any]:
    tree = explorer.tree
    try:
        chosen = tree.branch(branch_id)
    except KeyError:
        from tokendice.errors import ParameterError

        raise ParameterError(f"no branch {branch_id!r} in this tree (it has {len(tree.branches)})", param="branch") from None
    return {"branch": branch_summary(tree, chosen), "html": trace_section(tree.as_trace(branch_id))}


def step(explorer: Any, branch_id: int, step_index: int) -> dict[str, Any]:
    """The step recomputed under the current sampler: its candidates after every stage."""
    params = explorer.params
    view = explorer.step_view(branch_id, step_index)
    from tokendice.sampling.chain import SamplerChain

    labels = SamplerChain.from_params(params).labels
    return {"branch": branch_id, "step": step_index, "params": params.to_dict(), "html": step_table(view, labels, forkable=True),
            "candidates": [{"token_id": c.token_id, "text": c.text, "model_prob": c.model_prob, "sampling_prob": c.sampling_prob,
                            "stage_probs": c.stage_probs, "removed_by": c.removed_by} for c in [view.chosen, *(c for c in view.top if c.token_id != view.chosen.token_id)]]}  # fmt: skip


def sample(explorer: Any, branch_id: int, step_index: int, n: int) -> dict[str, Any]:
    node = explorer.sample(branch_id, step_index, n)
    return {"html": node_sample_section(node), "n": node.n, "completions": node.completions}


def fork(explorer: Any, branch_id: int, step_index: int, token_id: int, on_step: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    def heard(traced: Any) -> None:
        c = traced.chosen
        on_step({"step": traced.step, "token_id": c.token_id, "text": c.text, "model_prob": c.model_prob, "sampling_prob": c.sampling_prob})

    made = explorer.fork(branch_id, step_index, token_id, on_step=heard)
    return {"branch": branch_summary(explorer.tree, made)}


def reopen(explorer: Any, data: dict[str, Any]) -> Any:
    """The explorer of an exported tree, on the same engine."""
    from tokendice import api

    return api.explore(open=data, engine=explorer.engine, db=explorer._db, save=explorer._save)
