"""Notebook views of results: `Result._repr_html_` draws with these (registered by the package).

A view is plain HTML with inline styles, no script, so it shows wherever a notebook
is rendered (JupyterLab, VS Code, GitHub's viewer). Every text that comes from a
prompt or a model is escaped: it is untrusted.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any, Callable

MAX_ROWS = 40

_VIEWS: dict[str, Callable[[Any], str]] = {}


def view(kind: str) -> Callable[[Callable[[Any], str]], Callable[[Any], str]]:
    """Register the notebook view of results of `kind`."""

    def register(fn: Callable[[Any], str]) -> Callable[[Any], str]:
        _VIEWS[kind] = fn
        return fn

    return register


def result_html(result: Any) -> str:
    """The notebook view of any result: its own view if it has one, else its headline and table."""
    _load_views()
    own = _VIEWS.get(result.kind)
    return own(result) if own is not None else table_view(result)


def table_view(result: Any, title: str | None = None) -> str:
    """The headline, then the first MAX_ROWS rows of `rows()` as a table."""
    rows = result.rows()
    return frame(title or f"{type(result).__name__}", result.headline(), table(result.columns(), rows), len(rows), getattr(result, "run_id", None))


def frame(title: str, headline: str, body: str, n_rows: int | None = None, run_id: str | None = None) -> str:
    more = f" · first {MAX_ROWS} of {n_rows} rows (to_dataframe() has all)" if n_rows is not None and n_rows > MAX_ROWS else ""
    run = f" · run {escape(run_id)}" if run_id else ""
    return (
        '<div class="tokendice" style="font-family:system-ui,sans-serif;font-size:13px">'
        f"<div><b>{escape(title)}</b>{run}</div>"
        f'<div style="color:#444;margin:2px 0 6px 0">{escape(headline)}{escape(more)}</div>{body}</div>'
    )


def table(columns: list[str], rows: list[dict[str, Any]], limit: int = MAX_ROWS) -> str:
    head = "".join(f'<th style="text-align:left;padding:2px 8px">{escape(c)}</th>' for c in columns)
    body = []
    for row in rows[:limit]:
        cells = "".join(f'<td style="padding:2px 8px;{_align(row.get(c))}">{escape(cell(row.get(c)))}</td>' for c in columns)
        body.append(f"<tr>{cells}</tr>")
    return f'<table style="border-collapse:collapse"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def cell(value: Any) -> str:
    """A value as table text: probabilities to 4 significant digits, strings as quoted literals."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "-inf" if value < 0 else "inf"
        return f"{value:.4g}"
    if isinstance(value, str):
        import json

        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return ", ".join(cell(v) for v in value)
    return str(value)


def _align(value: Any) -> str:
    return "text-align:right" if isinstance(value, (int, float)) and not isinstance(value, bool) else ""


def _load_views() -> None:
    """Import the modules that register kind-specific views (once; cheap after)."""
    from tokendice.render import html  # noqa: F401  (the trace view)
