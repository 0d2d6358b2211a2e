"""tokendice: a lab for the randomness of language models.

    import tokendice as td
    t = td.trace("The capital of France is", temperature=0.7, top_p=0.9)
    run = td.sample("The capital of France is", n=1000, temperature=0.7)

Everything public is listed in `__all__` (and `dir(tokendice)`): the API functions,
the result classes they return, `SamplingParams`, `EngineSpec` and the errors. Heavy
libraries (torch, transformers) load on first use, not at import.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from tokendice._version import __version__
from tokendice.engines.spec import EngineSpec
from tokendice.errors import (
    BusyMachineWarning,
    EngineError,
    EngineUnavailableError,
    ModelNotFoundError,
    ParameterError,
    RunInterrupted,
    ServerError,
    StoreError,
    TokendiceError,
)
from tokendice.experiments.results import Result, set_views
from tokendice.params import NOTEBOOK_PARAMS, RandomSpec, SamplingParams
from tokendice.render.notebook import result_html, write_report

set_views(result_html, write_report)  # results draw themselves (notebook, save_html) with tokendice.render's views

_LAZY = {
    # the API
    "trace": "tokendice.api",
    "sample": "tokendice.api",
    "enumerate_completions": "tokendice.api",
    "audit": "tokendice.api",
    "agreement": "tokendice.api",
    "answers": "tokendice.api",
    "semantic": "tokendice.api",
    "compare": "tokendice.api",
    "perturb": "tokendice.api",
    "variants": "tokendice.api",
    "diff": "tokendice.api",
    "load_run": "tokendice.api",
    "resume": "tokendice.api",
    "runs": "tokendice.api",
    "show_run": "tokendice.api",
    "export_run": "tokendice.api",
    "models": "tokendice.api",
    "report": "tokendice.api",
    "explore": "tokendice.api",
    "Explorer": "tokendice.api",
    # results
    "Trace": "tokendice.experiments.trace.trace",
    "BlackBoxTrace": "tokendice.experiments.trace.blackbox",
    "Enumeration": "tokendice.experiments.decoding.enumerate",
    "SampleRun": "tokendice.experiments.distribution.run",
    "AnswerDistribution": "tokendice.experiments.meaning.answers",
    "SemanticResult": "tokendice.experiments.meaning.semantic",
    "AuditReport": "tokendice.experiments.audit.report",
    "AgreementReport": "tokendice.experiments.audit.agreement",
    "CompareReport": "tokendice.experiments.compare.compare",
    "RunDiff": "tokendice.experiments.compare.diff",
    "PerturbReport": "tokendice.experiments.perturb.suite",
    "VariantList": "tokendice.experiments.perturb.variants",
    "RunInfo": "tokendice.experiments.catalog.runs",
    "RunList": "tokendice.experiments.catalog.runs",
    "ModelList": "tokendice.experiments.catalog.models",
    "Exploration": "tokendice.experiments.explore.tree",
    "read_prompts": "tokendice.inputs",
}

__all__ = sorted([
    "BusyMachineWarning", "EngineError", "EngineSpec", "EngineUnavailableError", "ModelNotFoundError", "NOTEBOOK_PARAMS", "ParameterError",
    "RandomSpec", "Result", "RunInterrupted", "SamplingParams", "ServerError", "StoreError", "TokendiceError",
    "__version__", *_LAZY,
])  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tokendice' has no attribute {name!r}")


def __dir__() -> list[str]:
    return list(__all__)
