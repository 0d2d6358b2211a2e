"""HTML views of results, for notebooks (`Result._repr_html_`) and report pages (`save_html`).

A kind's view is the section registered with `@view(kind)` (render/report/); a kind
without one is shown as its headline and the first rows of its table. Views hold no
script, so they show wherever HTML is rendered; every text from a prompt or a model
is escaped: it is untrusted.
"""

from __future__ import annotations

import json
import math
from html import escape
from pathlib import Path
from typing import Any, Iterable

from tokendice.render.registry import HTML

MAX_ROWS = 40


def section(result: Any) -> str:
    """The HTML section of any result."""
    _load_views()
    own = HTML.get(result.kind)
    return own(result) if own is not None else table_section(result)


def result_html(result: Any) -> str:
    """The notebook view of a result: its section with the report style."""
    from tokendice.render.report.page import fragment

    return fragment(section(result))


def report_html(results: Iterable[Any], title: str | None = None) -> str:
    """One self-contained page holding a section per result."""
    from tokendice.render.report.page import page

    results = list(results)
    if title is None:
        kinds = ", ".join(dict.fromkeys(type(r).__name__ for r in results))
        title = f"tokendice report: {kinds}"
    return page(title, [section(r) for r in results])


def write_report(results: Iterable[Any], path: str | Path, title: str | None = None) -> Path:
    target = Path(path).expanduser()
    target.write_text(report_html(results, title), encoding="utf-8")
    return target


def table_section(result: Any, title: str | None = None) -> str:
    """The headline, then the first MAX_ROWS rows of `rows()` as a table."""
    from tokendice.render.report.page import card

    rows = result.rows()
    more = f" · first {MAX_ROWS} of {len(rows)} rows (to_dataframe() has all)" if len(rows) > MAX_ROWS else ""
    run = f" · run {escape(result.run_id)}" if getattr(result, "run_id", None) else ""
    return card(title or type(result).__name__, escape(result.headline()) + run + escape(more), table(result.columns(), rows))


def table(columns: list[str], rows: list[dict[str, Any]], limit: int = MAX_ROWS) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = []
    for row in rows[:limit]:
        cells = "".join(f'<td{_align(row.get(c))}>{escape(cell(row.get(c)))}</td>' for c in columns)
        body.append(f"<tr>{cells}</tr>")
    return f'<table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def cell(value: Any) -> str:
    """A value as table text: numbers to 4 significant digits, strings as quoted literals."""
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
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return ", ".join(cell(v) for v in value)
    return str(value)


def _align(value: Any) -> str:
    return ' class="n"' if isinstance(value, (int, float)) and not isinstance(value, bool) else ""


def _load_views() -> None:
    """Import the view modules (each registers its kinds with @view)."""
    from tokendice.render.report import (  # noqa: F401  # noqa: F401  # noqa: F401
        answers,
        audit,
        compare,
        diff,
        enumerate,
        explore,
        perturb,  # noqa: F401
        sample,
        semantic,
        trace,  # noqa: F401
    )
