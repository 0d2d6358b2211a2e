"""The tokendice exception hierarchy.

    TokendiceError                 anything tokendice raises on purpose
    ├── ParameterError             a bad parameter value (names the parameter and its range)
    ├── ModelNotFoundError         an unknown model id, a missing file or directory
    ├── EngineError                an engine failed or cannot do what was asked
    │   └── EngineUnavailableError an optional engine whose library is not installed
    ├── StoreError                 the run store: unknown run id, unreadable database
    └── ServerError                an OpenAI-compatible server: unreachable, refused, no logprobs

The CLI turns every TokendiceError into one line on stderr and exit code 2.
"""

from __future__ import annotations


class TokendiceError(Exception):
    """Base class of every error tokendice raises on purpose."""


class ParameterError(TokendiceError, ValueError):
    """A parameter is outside its valid range."""


class ModelNotFoundError(TokendiceError):
    """The model id, directory or file cannot be found or loaded."""


class EngineError(TokendiceError):
    """An engine failed, or cannot run the requested experiment."""


class EngineUnavailableError(EngineError):
    """An optional engine whose library is not installed."""


class StoreError(TokendiceError):
    """The run store cannot do what was asked (unknown run, bad file)."""


class ServerError(EngineError):
    """An OpenAI-compatible server is unreachable or answered with an error."""
