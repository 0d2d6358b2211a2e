"""Results in the terminal: one rich renderable per kind of result, and a console that
does not squeeze tables to 80 columns when output is piped."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from tokendice.render.registry import TERMINAL


def make_console() -> Console:
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    return console


def print_result(result: Any, console: Console | None = None, **options: Any) -> None:
    """Print any result with the renderer registered for its kind (`options` go to it)."""
    _load_renderers()
    (console or make_console()).print(TERMINAL[result.kind](result, **options))


def _load_renderers() -> None:
    """Import the renderer modules (each registers its kinds with @renderer)."""
    from tokendice.render import (  # noqa: F401
        audit_terminal,
        blackbox_terminal,
        compare_terminal,
        diff_terminal,
        perturb_terminal,
        runs_terminal,
        sample_terminal,
        trace_terminal,
    )
