"""Stored runs: list them, read one back as the result it was, resume one, export its samples."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from tokendice.api._registry import LOADERS, RESUMERS
from tokendice.errors import ParameterError, StoreError
from tokendice.experiments.catalog.runs import RunInfo, RunList
from tokendice.experiments.results import Result
from tokendice.params import require_int
from tokendice.store import Store


def _registered() -> None:
    """Import the API modules, which register their loaders and resumers."""
    for module in ("audit", "compare", "explore", "perturb", "sample", "trace"):
        import_module(f"tokendice.api._{module}")


def load_run(run_id: str, *, db: str | None = None) -> Result:
    """A stored run as the result it was when it ran (the same class; `to_dict()` equal but for
    timing fields). `run_id` may be a unique prefix of 4 characters or more."""
    _registered()
    with Store(db) as store:
        record = store.get_run(run_id)
        loader = LOADERS.get(record.kind)
        if loader is None:
            raise StoreError(f"run {record.id} is of kind {record.kind!r}, which tokendice cannot read back")
        return loader(store, record)


def resume(run_id: str, *, kind: str | None = None, db: str | None = None, progress: Any = None, **settings: Any) -> Result:
    """Finish an interrupted run with the settings it was made with.

    Every setting that decides results (engine, model, dtype, threads, the sampler, seed,
    method, batch size, ...) comes from the run's manifest: giving one that differs is a
    ParameterError naming the setting and both values. Settings that only decide
    transport (timeout, max_retries, concurrency, base_url, api_key_env) may be given
    anew and apply. `kind` ("sample", "perturb"): refuse a run of another kind.
    """
    _registered()
    with Store(db) as store:
        record = store.get_run(run_id)
    if kind is not None and record.kind != kind:
        raise ParameterError(f"run {record.id} is a {record.kind} run, not a {kind} run", param="run_id")
    resumer = RESUMERS.get(record.kind)
    if resumer is None:
        kinds = ", ".join(sorted(RESUMERS))
        raise ParameterError(f"run {record.id} is a {record.kind} run; runs that can be resumed: {kinds}", param="run_id")
    return resumer(record.id, db=db, progress=progress, **settings)


def runs(*, limit: int | None = 20, kind: str | None = None, db: str | None = None) -> RunList:
    """The latest runs of the store, newest first (`limit=None`: all of them)."""
    if limit is not None:
        require_int("limit", limit, 1)
    with Store(db) as store:
        return RunList(store.path, [RunInfo.of(r) for r in store.list_runs(limit=limit, kind=kind)])


def show_run(run_id: str, *, db: str | None = None) -> RunInfo:
    """One run: its manifest, status, and every result it stored."""
    with Store(db) as store:
        record = store.get_run(run_id)
        return RunInfo.of(record, {key: store.get_result(record.id, key) for key in store.result_keys(record.id)})


def export_run(run_id: str, format: str = "jsonl", *, steps: bool = False, output: str | None = None, db: str | None = None) -> int:
    """Write a run's samples (or, with `steps`, one row per generated token) as jsonl, csv or
    parquet to `output` (None: standard output; parquet needs a file). Returns the rows written."""
    from tokendice.store import export_run as export_samples
    from tokendice.store import export_steps

    if output is not None:
        from tokendice.inputs import check_output_path

        check_output_path(output, "output")
    with Store(db) as store:
        return (export_steps if steps else export_samples)(store, run_id, format, output)
