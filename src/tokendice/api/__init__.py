"""The public Python API: every function validates its inputs before a model loads and
returns a typed result (`to_dict`, `to_json`, `to_dataframe`, a notebook view).

The CLI is a thin shell over these functions: each command parses its flags, makes one
call here, and renders what comes back. Each function's module is imported when the
function is first used, so a command that loads no model (`perturb --list`) imports no torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_WHERE = {
    "agreement": "audit",
    "answers": "answers",
    "audit": "audit",
    "check_judge": "semantic",
    "compare": "compare",
    "diff": "compare",
    "enumerate_completions": "sample",
    "explore": "explore",
    "Explorer": "explore",
    "export_run": "runs",
    "load_run": "runs",
    "models": "models",
    "perturb": "perturb",
    "report": "report",
    "resume": "runs",
    "runs": "runs",
    "sample": "sample",
    "semantic": "semantic",
    "show_run": "runs",
    "trace": "trace",
    "variants": "variants",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(import_module(f"tokendice.api._{_WHERE[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tokendice.api' has no attribute {name!r}")


def __dir__() -> list[str]:
    return list(__all__)
