"""Export a run's samples (or steps) as JSONL, CSV or Parquet.

One row per sample (`export_run`) or per (sample, step) (`export_steps`); rows
are homogeneous, so every line of a JSONL file is a sample and the files load
directly into pandas, DuckDB or jq. The manifest is not repeated in JSONL or CSV
and no sidecar file is written (it stays in the store: `Store.get_run`); a
Parquet file carries it in its schema metadata under `tokendice.run`.

In JSONL, NaN and infinite log-probabilities are written as null (strict JSON);
in CSV the token list is a JSON array in one cell. `out=None` (or "-") writes
JSONL and CSV to stdout; Parquet needs a path. Both functions return the number
of rows written.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from tokendice.errors import StoreError
from tokendice.jsonutil import finite_or_none
from tokendice.store.db import Store

FORMATS = ("jsonl", "csv", "parquet")
SAMPLE_COLUMNS = (
    "run_id", "prompt_index", "sample_id", "text", "tokens",
    "model_logprob", "sampling_logprob", "finish_reason", "n_tokens",
)
STEP_COLUMNS = (
    "run_id", "prompt_index", "sample_id", "step", "token_id",
    "token_text", "model_logprob", "sampling_logprob",
)
_FLOATS = ("model_logprob", "sampling_logprob")


def export_run(store: Store, run_id: str, fmt: str, out: str | Path | None = None) -> int:
    """Write one row per sample of a run; return the number of rows."""
    return _export(store, run_id, fmt, out, store.sample_rows(run_id), SAMPLE_COLUMNS)


def export_steps(store: Store, run_id: str, fmt: str, out: str | Path | None = None) -> int:
    """Write one row per (sample, step) of a run; return the number of rows."""
    return _export(store, run_id, fmt, out, store.step_rows(run_id), STEP_COLUMNS)


def _export(
    store: Store, run_id: str, fmt: str, out: str | Path | None,
    rows: Iterator[dict[str, Any]], columns: tuple[str, ...],
) -> int:
    if fmt not in FORMATS:
        raise StoreError(f"unknown export format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if fmt == "parquet":
        if out is None or str(out) == "-":
            raise StoreError("parquet export needs an output file (it cannot go to stdout)")
        return _write_parquet(store, run_id, rows, columns, Path(out))
    with _open_text(out) as fh:
        return _write_jsonl(rows, fh) if fmt == "jsonl" else _write_csv(rows, columns, fh)


@contextmanager
def _open_text(out: str | Path | None) -> Iterator[IO[str]]:
    if out is None or str(out) == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    try:
        fh = open(out, "w", encoding="utf-8", newline="")
    except OSError as exc:
        raise StoreError(f"cannot write {out}: {exc.strerror or exc}") from exc
    with fh:
        yield fh


def _write_jsonl(rows: Iterable[dict[str, Any]], fh: IO[str]) -> int:
    n = 0
    for row in rows:
        for key in _FLOATS:
            row[key] = finite_or_none(row[key])
        fh.write(json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n")
        n += 1
    return n


def _write_csv(rows: Iterable[dict[str, Any]], columns: tuple[str, ...], fh: IO[str]) -> int:
    writer = csv.DictWriter(fh, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    n = 0
    for row in rows:
        if "tokens" in row:
            row["tokens"] = json.dumps(row["tokens"], separators=(",", ":"))
        writer.writerow(row)
        n += 1
    return n


def _write_parquet(
    store: Store, run_id: str, rows: Iterator[dict[str, Any]], columns: tuple[str, ...], out: Path
) -> int:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise StoreError("parquet export needs pyarrow: pip install 'tokendice[parquet]'") from exc
    types = {
        "run_id": pa.string(), "prompt_index": pa.int64(), "sample_id": pa.int64(), "text": pa.string(),
        "tokens": pa.list_(pa.int64()), "model_logprob": pa.float64(), "sampling_logprob": pa.float64(),
        "finish_reason": pa.string(), "n_tokens": pa.int64(), "step": pa.int64(), "token_id": pa.int64(),
        "token_text": pa.string(),
    }
    data: dict[str, list[Any]] = {c: [] for c in columns}
    for row in rows:
        for c in columns:
            data[c].append(row[c])
    run = store.get_run(run_id)
    meta = {"id": run.id, "kind": run.kind, "created_at": run.created_at, "status": run.status,
            "prompt": run.prompt, "engine": run.engine, "model": run.model, "manifest": run.manifest}
    schema = pa.schema([(c, types[c]) for c in columns], metadata={"tokendice.run": json.dumps(meta)})
    table = pa.table(data, schema=schema)
    try:
        pq.write_table(table, out)
    except OSError as exc:
        raise StoreError(f"cannot write {out}: {exc}") from exc
    return table.num_rows
