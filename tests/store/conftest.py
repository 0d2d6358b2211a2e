from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tokendice.store import Store


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "sub" / "runs.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    with Store(db_path) as s:
        yield s


@pytest.fixture
def run_id(store: Store) -> str:
    return store.create_run("sample", {"top_k": 5, "seed": 0}, "Hello", "fake", "fake-model", n_requested=10)
