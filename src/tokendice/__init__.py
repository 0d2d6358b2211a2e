"""tokendice: a lab for the randomness of language models.

Heavy libraries (torch, transformers) load on first use, not at import.
"""

from __future__ import annotations

from tokendice.errors import (
    EngineError,
    EngineUnavailableError,
    ModelNotFoundError,
    ParameterError,
    ServerError,
    StoreError,
    TokendiceError,
)
from tokendice.params import NOTEBOOK_PARAMS, RandomSpec, SamplingParams

__version__ = "0.1.0"

_API = ("trace", "sample", "enumerate", "get_engine", "audit", "agreement", "diff", "perturb", "compare")


def __getattr__(name: str):
    if name in _API:
        from tokendice import api

        return getattr(api, "enumerate_completions" if name == "enumerate" else name)
    raise AttributeError(f"module 'tokendice' has no attribute {name!r}")


__all__ = [
    "EngineError",
    "EngineUnavailableError",
    "ModelNotFoundError",
    "NOTEBOOK_PARAMS",
    "ParameterError",
    "RandomSpec",
    "SamplingParams",
    "ServerError",
    "StoreError",
    "TokendiceError",
    "__version__",
    *_API,
]
