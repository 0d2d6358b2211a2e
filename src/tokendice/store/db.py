"""The run store: one SQLite file in WAL mode holding runs, samples, steps and results.

Samples go in by batches, each batch (samples and their per-step rows) in one
transaction, so a process killed mid-run loses at most the batch in flight and a
resumed run can ask `sample_ids` which samples are still missing. Wherever a run
id is taken, a unique prefix of at least 4 characters is accepted.

A run records the process writing it (store/process.py): a 'running' run whose
process is gone reads back as 'interrupted'. `recording(run_id)` is how a run is
written: 'running' inside the block, then 'complete', or 'interrupted' if anything
(Ctrl-C included) stopped it.
"""

from __future__ import annotations

import math
import os
import sqlite3
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tokendice.errors import StoreError
from tokendice.store import jsonutil, process
from tokendice.store.manifest import build_manifest
from tokendice.store.migrations import migrate
from tokendice.store.records import RUN_STATUSES, RunRecord, SampleRecord
from tokendice.store.sanitize import sanitize

MIN_PREFIX = 4
_RUN_COLUMNS = (
    "id, kind, created_at, status, prompt, engine, model, manifest, n_requested,"
    " (SELECT COUNT(*) FROM samples s WHERE s.run_id = runs.id), host, pid, pid_started"
)
_SAMPLE_COLUMNS = "prompt_index, sample_id, tokens, text, model_logprob, sampling_logprob, finish_reason"
_STEP_COLUMNS = "prompt_index, sample_id, step, token_id, token_text, model_logprob, sampling_logprob"


def _new_id() -> str:
    return uuid.uuid4().hex[:12]


def _float(x: float | None) -> float:
    # SQLite stores NaN as NULL; give it back as NaN.
    return math.nan if x is None else x


class Store:
    """The run store. Use as a context manager, or call close()."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        if path is None:
            from tokendice.paths import default_db_path

            path = default_db_path()
        self.path = str(path) if str(path) == ":memory:" else str(Path(path).expanduser())
        if self.path != ":memory:":
            _check_writable(Path(self.path))
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            # Autocommit mode: transactions are explicit (see _transaction).
            self._conn = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open run store {self.path}: {exc}") from exc
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            # In WAL mode NORMAL is safe against a killed process; only an OS
            # crash or power loss can roll back the last few commits.
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            migrate(self._conn)
        except sqlite3.Error as exc:
            self._conn.close()
            raise StoreError(f"cannot open run store {self.path}: {exc}") from exc

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:  # read-only file or folder, locked, disk full
            raise StoreError(f"cannot write run store {self.path}: {exc}") from exc
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        try:
            self._conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            raise StoreError(f"cannot write run store {self.path}: {exc}") from exc

    # -- runs ---------------------------------------------------------------

    def resolve_run_id(self, run_id: str) -> str:
        """The full id of the run that `run_id` names exactly or by unique prefix."""
        if self._conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone():
            return run_id
        if len(run_id) < MIN_PREFIX:
            raise StoreError(f"no run with id {run_id!r} (a prefix needs at least {MIN_PREFIX} characters)")
        rows = self._conn.execute(
            "SELECT id FROM runs WHERE substr(id, 1, ?) = ? ORDER BY id LIMIT 6", (len(run_id), run_id)
        ).fetchall()
        if not rows:
            raise StoreError(f"no run with id {run_id!r} in {self.path}")
        if len(rows) > 1:
            shown = ", ".join(r[0] for r in rows[:5]) + (", ..." if len(rows) > 5 else "")
            raise StoreError(f"run id prefix {run_id!r} is ambiguous: it matches {shown}")
        return str(rows[0][0])

    def start_run(
        self,
        kind: str,
        prompt: str,
        engine: Mapping[str, Any],
        params: Mapping[str, Any],
        extra: Mapping[str, Any] | None = None,
        n_requested: int | None = None,
    ) -> str:
        """Create a run with its manifest (`build_manifest`); `engine` is the engine's `describe()`."""
        manifest = build_manifest(kind, params, engine, extra)
        return self.create_run(kind, manifest, prompt, str(engine.get("engine", "")), str(engine.get("model", "")), n_requested)

    def create_run(
        self,
        kind: str,
        manifest: dict[str, Any],
        prompt: str,
        engine: str,
        model: str,
        n_requested: int | None = None,
    ) -> str:
        """Record a new 'running' run, written by this process, and return its id (12 hex characters).

        Credential keys (api_key, Authorization, password, ...) are dropped from
        the manifest first; see tokendice.store.sanitize.
        """
        if not kind:
            raise StoreError("a run needs a kind")
        manifest_json = jsonutil.dumps(sanitize(manifest), "the run manifest")
        created_at = datetime.now(timezone.utc).isoformat(timespec="microseconds")
        for _ in range(10):
            run_id = _new_id()
            try:
                with self._transaction() as conn:
                    conn.execute(
                        "INSERT INTO runs (id, kind, created_at, status, prompt, engine, model,"
                        " manifest, n_requested, host, pid, pid_started) VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?)",
                        (run_id, kind, created_at, prompt, engine, model, manifest_json, n_requested, *process.writer()),
                    )
                return run_id
            except sqlite3.IntegrityError:
                continue  # an id collision: draw another
        raise StoreError("could not draw a unique run id")

    def set_status(self, run_id: str, status: str) -> None:
        """Set a run's status: one of running, complete, failed, interrupted."""
        if status not in RUN_STATUSES:
            raise StoreError(f"unknown run status {status!r}: choose one of {', '.join(RUN_STATUSES)}")
        full = self.resolve_run_id(run_id)
        with self._transaction() as conn:
            conn.execute("UPDATE runs SET status = ? WHERE id = ?", (status, full))

    def claim(self, run_id: str) -> None:
        """Mark a run 'running', written by this process (a resumed run is claimed again)."""
        full = self.resolve_run_id(run_id)
        with self._transaction() as conn:
            conn.execute("UPDATE runs SET status = 'running', host = ?, pid = ?, pid_started = ? WHERE id = ?", (*process.writer(), full))

    @contextmanager
    def recording(self, run_id: str) -> Iterator[str]:
        """Write run `run_id` inside the block: 'running' (by this process) meanwhile, 'complete'
        after, 'interrupted' when anything, Ctrl-C included, stops the block (it can be resumed)."""
        self.claim(run_id)
        try:
            yield run_id
        except BaseException:
            try:
                self.set_status(run_id, "interrupted")
            except StoreError:
                pass  # the store itself failed: keep the original error
            raise
        self.set_status(run_id, "complete")

    def get_run(self, run_id: str) -> RunRecord:
        full = self.resolve_run_id(run_id)
        row = self._conn.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (full,)).fetchone()
        return self._run_record(row)

    def list_runs(self, limit: int | None = 50, kind: str | None = None) -> list[RunRecord]:
        """The latest runs, newest first (all of them if limit is None)."""
        where, params = ("WHERE kind = ?", [kind]) if kind else ("", [])
        sql = f"SELECT {_RUN_COLUMNS} FROM runs {where} ORDER BY created_at DESC, rowid DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [self._run_record(row) for row in self._conn.execute(sql, params)]

    def delete_run(self, run_id: str) -> None:
        """Delete a run with its samples, steps and results."""
        full = self.resolve_run_id(run_id)
        with self._transaction() as conn:
            for table in ("steps", "samples", "results"):
                conn.execute(f"DELETE FROM {table} WHERE run_id = ?", (full,))
            conn.execute("DELETE FROM runs WHERE id = ?", (full,))

    def _run_record(self, row: Sequence[Any]) -> RunRecord:
        status = row[3]
        host, pid, started = row[10:13]
        if status == "running" and pid is not None and host == process.this_host() and not process.alive(pid, started):
            status = "interrupted"  # its process is gone (killed): say so, and store it
            try:
                self.set_status(row[0], status)
            except (StoreError, sqlite3.Error):
                pass  # a read-only store: show it, leave the file
        return RunRecord(
            id=row[0], kind=row[1], created_at=row[2], status=status, prompt=row[4], engine=row[5],
            model=row[6], manifest=jsonutil.loads(row[7]), n_requested=row[8], n_samples=row[9],
        )

    # -- samples ------------------------------------------------------------

    def add_samples(self, run_id: str, samples: Sequence[SampleRecord], results: Mapping[str, Any] | None = None) -> None:
        """Insert samples and their steps, and replace the `results` given, in one transaction: all
        of them or none (so a tally kept beside the samples is never behind them).

        A (prompt_index, sample_id) already stored, or repeated in the batch,
        raises StoreError and leaves the store unchanged.
        """
        full = self.resolve_run_id(run_id)
        sample_rows, step_rows = [], []
        for s in samples:
            key = (full, int(s.prompt_index), int(s.sample_id))
            sample_rows.append((
                *key, jsonutil.dumps([int(t) for t in s.tokens], "tokens"), s.text,
                float(s.model_logprob), float(s.sampling_logprob), s.finish_reason,
            ))
            step_rows.extend(
                (*key, i, int(tok), txt, float(mlp), float(slp))
                for i, (tok, txt, mlp, slp) in enumerate(
                    zip(s.tokens, s.token_texts, s.model_logprobs, s.sampling_logprobs)
                )
            )
        result_rows = [(full, key, jsonutil.dumps(value, f"result {key!r}")) for key, value in (results or {}).items()]
        try:
            with self._transaction() as conn:
                conn.executemany("INSERT OR REPLACE INTO results (run_id, key, value) VALUES (?, ?, ?)", result_rows)
                conn.executemany(
                    "INSERT INTO samples (run_id, prompt_index, sample_id, tokens, text,"
                    " model_logprob, sampling_logprob, finish_reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    sample_rows,
                )
                conn.executemany(
                    "INSERT INTO steps (run_id, prompt_index, sample_id, step, token_id, token_text,"
                    " model_logprob, sampling_logprob) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    step_rows,
                )
        except sqlite3.IntegrityError as exc:
            raise StoreError(
                f"run {full}: a sample in this batch is already stored or repeated ({exc}); nothing was written"
            ) from exc

    def sample_ids(self, run_id: str, prompt_index: int | None = None) -> set[int]:
        """The sample ids stored for a run (for one prompt, or for any prompt)."""
        sql, params = self._sample_filter(run_id, prompt_index)
        return {row[0] for row in self._conn.execute(f"SELECT sample_id FROM samples {sql}", params)}

    def count_samples(self, run_id: str) -> int:
        full = self.resolve_run_id(run_id)
        return int(self._conn.execute("SELECT COUNT(*) FROM samples WHERE run_id = ?", (full,)).fetchone()[0])

    def samples(self, run_id: str, prompt_index: int | None = None) -> list[SampleRecord]:
        """Whole samples with their steps, ordered by (prompt_index, sample_id)."""
        sql, params = self._sample_filter(run_id, prompt_index)
        steps: dict[tuple[int, int], list[tuple[Any, ...]]] = {}
        for row in self._conn.execute(
            f"SELECT {_STEP_COLUMNS} FROM steps {sql} ORDER BY prompt_index, sample_id, step", params
        ):
            steps.setdefault((row[0], row[1]), []).append(row)
        records = []
        for p, sid, _tokens, text, _m, _s, finish in self._conn.execute(
            f"SELECT {_SAMPLE_COLUMNS} FROM samples {sql} ORDER BY prompt_index, sample_id", params
        ):
            rows = steps.get((p, sid), [])
            records.append(SampleRecord(
                sample_id=sid, tokens=[r[3] for r in rows], token_texts=[r[4] for r in rows], text=text,
                model_logprobs=[_float(r[5]) for r in rows], sampling_logprobs=[_float(r[6]) for r in rows],
                finish_reason=finish, prompt_index=p,
            ))
        return records

    def sample_rows(self, run_id: str) -> Iterator[dict[str, Any]]:
        """One flat dict per sample (no steps), streamed, for export."""
        full = self.resolve_run_id(run_id)
        cursor = self._conn.execute(
            f"SELECT {_SAMPLE_COLUMNS} FROM samples WHERE run_id = ? ORDER BY prompt_index, sample_id", (full,)
        )
        for p, sid, tokens, text, mlp, slp, finish in cursor:
            token_list = jsonutil.loads(tokens)
            yield {
                "run_id": full, "prompt_index": p, "sample_id": sid, "text": text, "tokens": token_list,
                "model_logprob": _float(mlp), "sampling_logprob": _float(slp),
                "finish_reason": finish, "n_tokens": len(token_list),
            }

    def step_rows(self, run_id: str) -> Iterator[dict[str, Any]]:
        """One flat dict per (sample, step), streamed, for export."""
        full = self.resolve_run_id(run_id)
        cursor = self._conn.execute(
            f"SELECT {_STEP_COLUMNS} FROM steps WHERE run_id = ? ORDER BY prompt_index, sample_id, step", (full,)
        )
        for p, sid, step, tok, txt, mlp, slp in cursor:
            yield {
                "run_id": full, "prompt_index": p, "sample_id": sid, "step": step, "token_id": tok,
                "token_text": txt, "model_logprob": _float(mlp), "sampling_logprob": _float(slp),
            }

    def _sample_filter(self, run_id: str, prompt_index: int | None) -> tuple[str, tuple[Any, ...]]:
        full = self.resolve_run_id(run_id)
        if prompt_index is None:
            return "WHERE run_id = ?", (full,)
        return "WHERE run_id = ? AND prompt_index = ?", (full, prompt_index)

    # -- results ------------------------------------------------------------

    def save_result(self, run_id: str, key: str, value: Any) -> None:
        """Store a JSON-able result under `key`, replacing any earlier value."""
        full = self.resolve_run_id(run_id)
        text = jsonutil.dumps(value, f"result {key!r}")
        with self._transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO results (run_id, key, value) VALUES (?, ?, ?)", (full, key, text))

    def get_result(self, run_id: str, key: str) -> Any | None:
        """The stored result, or None if there is none under `key`."""
        full = self.resolve_run_id(run_id)
        row = self._conn.execute("SELECT value FROM results WHERE run_id = ? AND key = ?", (full, key)).fetchone()
        return None if row is None else jsonutil.loads(row[0])

    def result_keys(self, run_id: str) -> list[str]:
        """The result keys stored for a run, sorted."""
        full = self.resolve_run_id(run_id)
        return [r[0] for r in self._conn.execute("SELECT key FROM results WHERE run_id = ? ORDER BY key", (full,))]


def _check_writable(path: Path) -> None:
    """A store is written as soon as it opens (migrations, WAL): say at once if it cannot be."""
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if path.is_dir():
        raise StoreError(f"run store {path} is a directory, not a database file")
    if path.exists() and not os.access(path, os.W_OK):
        raise StoreError(f"run store {path} is read-only: choose another file (db= / --db / $TOKENDICE_DB)")
    if not os.access(folder, os.W_OK):
        raise StoreError(f"run store {path} cannot be written: folder {folder} is read-only (db= / --db / $TOKENDICE_DB)")
