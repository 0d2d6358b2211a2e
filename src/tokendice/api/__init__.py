"""The public Python API: every function validates its inputs before a model loads and
returns a typed result (`to_dict`, `to_json`, `to_dataframe`, a notebook view).

The CLI is a thin shell over these functions: each command parses its flags, makes one
call here, and renders what comes back.
"""

from __future__ import annotations

from tokendice.api.audit import agreement, audit
from tokendice.api.compare import compare, diff
from tokendice.api.explore import Explorer, explore
from tokendice.api.models import models
from tokendice.api.report import report
from tokendice.api.perturb import perturb, variants
from tokendice.api.runs import export_run, load_run, resume, runs, show_run
from tokendice.api.sample import enumerate_completions, sample
from tokendice.api.trace import trace

__all__ = [
    "agreement", "audit", "compare", "diff", "enumerate_completions", "explore", "Explorer", "export_run", "load_run", "models", "perturb", "report", "resume",
    "runs", "sample", "show_run", "trace", "variants",
]
