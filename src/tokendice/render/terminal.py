"""Results in the terminal: one rich renderable per kind of result, and a console that
does not squeeze tables to 80 columns when output is piped."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from rich.console import Console

from tokendice.render.registry import TERMINAL


def make_console() -> Console:
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    return console


MODULES = {
    "trace": "trace_terminal", "blackbox_trace": "blackbox_terminal", "sample": "sample_terminal", "enumerate": "sample_terminal",
    "audit": "audit_terminal", "audit_prompts": "audit_terminal", "compare": "compare_terminal", "diff": "diff_terminal",
    "perturb": "perturb_terminal", "variants": "perturb_terminal", "run_list": "runs_terminal",
    "answers": "answers_terminal", "semantic": "semantic_terminal",
}  # fmt: skip
"""Which module draws which kind of result (each registers its kinds with @renderer); only the one
a result needs is imported, so printing a light result imports nothing heavy."""


def print_result(result: Any, console: Console | None = None, **options: Any) -> None:
    """Print any result with the renderer registered for its kind (`options` go to it)."""
    import_module(f"tokendice.render.{MODULES[result.kind]}")
    (console or make_console()).print(TERMINAL[result.kind](result, **options))
