"""Shared fixtures. Tests never touch the user's files: every test gets its own run store,
the model cache is the project's own (.cache/tests, kept between runs so the embedded
model is converted once), and the Hugging Face cache is an empty folder."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEST_CACHE = ROOT / ".cache" / "tests"
# Set before anything is imported that reads them (engines read them when they load).
os.environ["TOKENDICE_CACHE"] = str(TEST_CACHE)
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="tokendice-tests-hf-")  # an empty Hugging Face cache
os.environ.pop("HF_HUB_CACHE", None)
os.environ.pop("TOKENDICE_VERBOSE", None)


@pytest.fixture(autouse=True)
def _isolated_store(tmp_path, monkeypatch):
    monkeypatch.setenv("TOKENDICE_DB", str(tmp_path / "tokendice.db"))


@pytest.fixture(scope="session")
def hf_engine():
    """The embedded SmolLM2-135M through transformers (converted once into the test cache)."""
    from tokendice.engines.hf import HFEngine

    return HFEngine()


@pytest.fixture
def serve_engine(monkeypatch):
    """`serve_engine(engine)`: every EngineSpec loads `engine` (a FakeEngine, say), so the CLI,
    which names engines by spec, runs on it."""
    import tokendice.api._common as common

    def install(engine):  # type: ignore[no-untyped-def]
        monkeypatch.setattr(common, "_LOADED", {})
        monkeypatch.setattr("tokendice.engines.spec.EngineSpec.load", lambda self: engine)
        return engine

    return install
