"""Named, ordered schema migrations, each applied once and recorded in `_migrations`.

Append new migrations to MIGRATIONS (never edit or reorder applied ones).
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from typing import Callable

Migration = Callable[[sqlite3.Connection], None]


def m001_initial(conn: sqlite3.Connection) -> None:
    """Runs, samples, per-step rows and whole-experiment results."""
    conn.execute(
        """CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            created_at TEXT NOT NULL,
            status TEXT NOT NULL,
            prompt TEXT,
            engine TEXT,
            model TEXT,
            manifest TEXT NOT NULL,
            n_requested INTEGER
        )"""
    )
    conn.execute("CREATE INDEX runs_created_at ON runs(created_at)")
    conn.execute(
        """CREATE TABLE samples (
            run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            sample_id INTEGER NOT NULL,
            prompt_index INTEGER NOT NULL DEFAULT 0,
            tokens TEXT NOT NULL,
            text TEXT NOT NULL,
            model_logprob REAL,
            sampling_logprob REAL,
            finish_reason TEXT,
            PRIMARY KEY (run_id, prompt_index, sample_id)
        )"""
    )
    conn.execute(
        """CREATE TABLE steps (
            run_id TEXT NOT NULL,
            prompt_index INTEGER NOT NULL,
            sample_id INTEGER NOT NULL,
            step INTEGER NOT NULL,
            token_id INTEGER NOT NULL,
            token_text TEXT,
            model_logprob REAL,
            sampling_logprob REAL,
            PRIMARY KEY (run_id, prompt_index, sample_id, step),
            FOREIGN KEY (run_id, prompt_index, sample_id)
                REFERENCES samples(run_id, prompt_index, sample_id) ON DELETE CASCADE
        )"""
    )
    conn.execute(
        """CREATE TABLE results (
            run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            key TEXT NOT NULL,
            value TEXT,
            PRIMARY KEY (run_id, key)
        )"""
    )


def m002_run_process(conn: sqlite3.Connection) -> None:
    """Which process writes a run (host, pid and its start time), so a run whose process
    died can be told from one still running."""
    conn.execute("ALTER TABLE runs ADD COLUMN host TEXT")
    conn.execute("ALTER TABLE runs ADD COLUMN pid INTEGER")
    conn.execute("ALTER TABLE runs ADD COLUMN pid_started TEXT")


MIGRATIONS: list[Migration] = [m001_initial, m002_run_process]


def applied(conn: sqlite3.Connection) -> set[str]:
    """Names of the migrations already applied to this database."""
    conn.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    return {row[0] for row in conn.execute("SELECT name FROM _migrations")}


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply the pending migrations, each in its own transaction; return their names.

    `conn` must be in autocommit mode (isolation_level=None). BEGIN IMMEDIATE
    takes the write lock before checking, so two processes opening a new
    database at once do not both apply a migration.
    """
    done: list[str] = []
    for migration in MIGRATIONS:
        conn.execute("BEGIN IMMEDIATE")
        try:
            if migration.__name__ not in applied(conn):
                migration(conn)
                conn.execute(
                    "INSERT INTO _migrations (name, applied_at) VALUES (?, ?)",
                    (migration.__name__, datetime.now(timezone.utc).isoformat()),
                )
                done.append(migration.__name__)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return done
