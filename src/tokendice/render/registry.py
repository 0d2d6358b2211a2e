"""Which view draws which kind of result: renderer modules register themselves here, and
`terminal.print_result` / `notebook.result_html` look them up (no import circles)."""

from __future__ import annotations

from typing import Any, Callable

View = Callable[..., Any]

TERMINAL: dict[str, View] = {}
HTML: dict[str, View] = {}


def renderer(kind: str) -> Callable[[View], View]:
    """Register the rich renderable of results of `kind` (terminal)."""

    def register(fn: View) -> View:
        TERMINAL[kind] = fn
        return fn

    return register


def view(kind: str) -> Callable[[View], View]:
    """Register the HTML section of results of `kind`: a report page holds it, a notebook shows it."""

    def register(fn: View) -> View:
        HTML[kind] = fn
        return fn

    return register
