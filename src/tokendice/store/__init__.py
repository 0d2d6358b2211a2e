"""The run store: SQLite runs, samples, steps and results; export to JSONL/CSV/Parquet."""

from __future__ import annotations

from tokendice.store.db import Store
from tokendice.store.export import export_run, export_steps
from tokendice.store.manifest import build_manifest, environment_info, package_versions
from tokendice.store.records import RUN_STATUSES, RunRecord, SampleRecord
from tokendice.store.sanitize import sanitize

__all__ = [
    "RUN_STATUSES",
    "RunRecord",
    "SampleRecord",
    "Store",
    "build_manifest",
    "environment_info",
    "export_run",
    "export_steps",
    "package_versions",
    "sanitize",
]
