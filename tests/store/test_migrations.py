from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
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
    assert names == [m.__name__ for m in MIGRATIONS] == ["m001_initial", "m002_run_process"]
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_migrate_returns_only_pending(db_path: Path) -> None:
    Store(db_path).close()
    conn = sqlite3.connect(db_path, isolation_level=None)
    assert migrate(conn) == []
    conn.close()
    fresh = sqlite3.connect(":memory:", isolation_level=None)
    assert migrate(fresh) == ["m001_initial", "m002_run_process"]
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


def test_a_database_of_the_first_schema_gains_the_run_process_columns(db_path: Path) -> None:
    from tokendice.store.migrations import m001_initial

    db_path.parent.mkdir(parents=True)
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    m001_initial(conn)
    conn.execute("INSERT INTO _migrations VALUES ('m001_initial', 'then')")
    conn.execute("INSERT INTO runs (id, kind, created_at, status, manifest) VALUES ('abcd1234abcd', 'sample', 'then', 'complete', '{}')")
    conn.close()
    with Store(db_path) as store:  # m002 applies; the old run reads back as it was
        assert store.get_run("abcd").status == "complete"


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """Make a file read-only for this process: chmod, or for root (who writes read-only files)
    the immutable attribute."""
    import subprocess

    root = os.geteuid() == 0
    if root:
        subprocess.run(["chattr", "+i", str(path)], check=True)
    else:
        path.chmod(0o444)
    try:
        yield
    finally:
        if root:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        else:
            path.chmod(0o644)


def test_a_read_only_store_is_one_store_error(tmp_path: Path) -> None:
    path = tmp_path / "ro.db"
    with Store(path) as store:
        store.create_run("trace", {}, "p", "fake", "m")
    with read_only(path):
        with pytest.raises(StoreError, match="ro.db"):
            with Store(path) as store:
                store.create_run("trace", {}, "p", "fake", "m")
