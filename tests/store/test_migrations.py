from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tokendice.errors import StoreError
from tokendice.store import Store
from tokendice.store.migrations import MIGRATIONS, migrate


def test_migrations_recorded_once(db_path: Path) -> None:
    with Store(db_path) as store:
        run = store.create_run("trace", {}, "p", "fake", "m")
    with Store(db_path) as store:  # second open applies nothing and keeps data
        assert store.get_run(run).kind == "trace"
    conn = sqlite3.connect(db_path)
    names = [r[0] for r in conn.execute("SELECT name FROM _migrations ORDER BY rowid")]
    assert names == [m.__name__ for m in MIGRATIONS] == ["m001_initial"]
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_migrate_returns_only_pending(db_path: Path) -> None:
    Store(db_path).close()
    conn = sqlite3.connect(db_path, isolation_level=None)
    assert migrate(conn) == []
    conn.close()
    fresh = sqlite3.connect(":memory:", isolation_level=None)
    assert migrate(fresh) == ["m001_initial"]
    fresh.close()


def test_default_path_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "deep" / "er" / "env.db"
    monkeypatch.setenv("TOKENDICE_DB", str(target))
    with Store() as store:
        assert Path(store.path) == target
    assert target.exists()


def test_unreadable_file_is_store_error(tmp_path: Path) -> None:
    bad = tmp_path / "not.db"
    bad.write_bytes(b"this is not a sqlite database at all" * 100)
    with pytest.raises(StoreError, match="cannot open run store"):
        Store(bad)
