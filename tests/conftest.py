"""Shared fixtures: a temporary store for every test, the embedded model once per session."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_store(tmp_path, monkeypatch):
    monkeypatch.setenv("TOKENDICE_DB", str(tmp_path / "tokendice.db"))


@pytest.fixture(scope="session")
def hf_engine():
    """The embedded SmolLM2-135M through transformers (converted once into the cache)."""
    from tokendice.engines.hf import HFEngine

    return HFEngine()
