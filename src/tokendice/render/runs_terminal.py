"""Render stored runs in the terminal: the list of runs."""

from __future__ import annotations

import json
from typing import Any

from rich.table import Table

from tokendice.render.registry import renderer


@renderer("run_list")
def run_list_renderable(runs: Any) -> Table:
    table = Table(title=f"runs in {runs.store}", title_justify="left")
    for col in ("id", "kind", "created (UTC)", "status", "engine/model", "samples", "prompt"):
        table.add_column(col)
    for r in runs.runs:
        n = f"{r.n_samples}/{r.n_requested}" if r.n_requested else str(r.n_samples)
        table.add_row(r.id, r.run_kind, r.created_at[:19], r.status, f"{r.engine}/{r.model}", n, json.dumps(r.prompt or "", ensure_ascii=False)[:50])
    return table
