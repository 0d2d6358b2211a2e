"""Where tokendice keeps its files: the model cache and the run store."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Converted models live here: $TOKENDICE_CACHE, else the user cache directory."""
    explicit = os.environ.get("TOKENDICE_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tokendice"


def default_db_path() -> Path:
    """The run store: $TOKENDICE_DB, else tokendice.db in the user data directory."""
    explicit = os.environ.get("TOKENDICE_DB")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "tokendice" / "tokendice.db"
