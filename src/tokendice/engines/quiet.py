"""Quiet third-party output: transformers' "Loading weights" bars and library warnings.

tokendice shows its own progress; what libraries print while a model loads is noise
unless the user asks for it (`--verbose`, or TOKENDICE_VERBOSE=1 in the environment).
"""

from __future__ import annotations

import os
import warnings
from contextlib import contextmanager
from typing import Iterator


def verbose() -> bool:
    return os.environ.get("TOKENDICE_VERBOSE", "") not in ("", "0")


@contextmanager
def quiet_third_party() -> Iterator[None]:
    """Hide transformers' progress bars, its info and warning logs, and Python warnings, meanwhile."""
    if verbose():
        yield
        return
    try:
        from transformers.utils import logging
    except ImportError:
        logging = None  # type: ignore[assignment]
    if logging is not None:
        bars, level = logging.is_progress_bar_enabled(), logging.get_verbosity()
        logging.disable_progress_bar()
        logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        if logging is not None:
            logging.set_verbosity(level)
            if bars:
                logging.enable_progress_bar()
