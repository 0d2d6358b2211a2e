"""The tokendice exception hierarchy.

    TokendiceError                 anything tokendice raises on purpose
    ├── ParameterError             a bad parameter value (names the parameter and its range)
    ├── ModelNotFoundError         an unknown model id, a missing file or directory
    ├── EngineError                an engine failed or cannot do what was asked
    │   ├── EngineUnavailableError an optional engine whose library is not installed
    │   └── ServerError            an OpenAI-compatible server: unreachable, refused, no logprobs
    └── StoreError                 the run store: unknown run id, unreadable or read-only database

    RuntimeWarning
    └── BusyMachineWarning         other processes keep the cores busy: the thread count will be slow

    KeyboardInterrupt
    └── RunInterrupted             Ctrl-C (or a kernel interrupt) during a stored run: says its
                                   id and how to resume it

The CLI turns every TokendiceError into one line on stderr and exit code 2, and an
interruption into exit code 130. Messages name parameters as the Python API does
(`top_p`); the CLI shows them as its flags (`--top-p`).
"""

from __future__ import annotations

import difflib
from typing import Iterable


def suggest(name: str, known: Iterable[str]) -> str:
    """'; did you mean X?' for the closest of `known`, or '' (for messages about a misspelt name)."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


class TokendiceError(Exception):
    """Base class of every error tokendice raises on purpose."""


class ParameterError(TokendiceError, ValueError):
    """A parameter is outside its valid range; `param` names it (as a Python keyword)."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class ModelNotFoundError(TokendiceError):
    """The model id, directory or file cannot be found or loaded."""


class EngineError(TokendiceError):
    """An engine failed, or cannot run the requested experiment."""


class EngineUnavailableError(EngineError):
    """An optional engine whose library is not installed."""


class StoreError(TokendiceError):
    """The run store cannot do what was asked (unknown run, bad or read-only file)."""


class ServerError(EngineError):
    """An OpenAI-compatible server is unreachable or answered with an error."""


class RunInterrupted(KeyboardInterrupt):
    """A stored run was interrupted; what it finished is kept and `resume(run_id)` goes on."""

    def __init__(self, run_id: str, message: str, resume_hint: str | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.message = message
        self.resume_hint = resume_hint

    def __str__(self) -> str:
        return self.message


class BusyMachineWarning(RuntimeWarning):
    """Other processes keep the cores busy: runs on several threads will be slow (the message
    says what helps). Also kept in the report's `notes`."""
