"""A process killed with SIGKILL while writing leaves only whole batches."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tokendice.store import Store

from ._factory import make_sample

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")

BATCH = 20
STEPS = 30

# Writes batches forever, printing after each commit. With STALL_AT=k it
# blocks inside batch k's transaction, after its samples rows went in and as the
# first step row is inserted, and says "mid": the kill lands mid-transaction.
CHILD = textwrap.dedent(
    f"""
    import sys, time
    sys.path.insert(0, sys.argv[3])
    from tokendice.store import Store
    from _factory import make_sample
    store = Store(sys.argv[1])
    run, stall_at = sys.argv[2], int(sys.argv[4])
    batch = 0
    def trace(sql):
        if batch == stall_at and sql.startswith("INSERT INTO steps"):
            print("mid", flush=True)
            time.sleep(60)
    store._conn.set_trace_callback(trace)
    while True:
        store.add_samples(run, [make_sample(batch * {BATCH} + i, {STEPS}) for i in range({BATCH})])
        print("committed", batch, flush=True)
        batch += 1
    """
)


def _run_and_kill(db_path: Path, run_id: str, stall_at: int, kill_after: int) -> int:
    """Start the writer, SIGKILL it after `kill_after` commits (or at "mid"); return commits seen."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db_path), run_id, str(Path(__file__).parent), str(stall_at)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    committed, deadline = 0, time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            line = proc.stdout.readline()  # type: ignore[union-attr]
            if not line:
                pytest.fail(f"writer exited early: {proc.stderr.read()}")  # type: ignore[union-attr]
            if line.startswith("committed"):
                committed += 1
            if line.startswith("mid") or committed >= kill_after:
                break
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
    assert proc.returncode == -signal.SIGKILL
    return committed


def _check_whole_batches(db_path: Path, run_id: str) -> int:
    with Store(db_path) as store:
        assert store._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        ids = store.sample_ids(run_id)
        assert len(ids) % BATCH == 0
        assert ids == set(range(len(ids)))
        samples = store.samples(run_id)
        assert samples == [make_sample(i, STEPS) for i in range(len(ids))]
        return len(ids) // BATCH


def test_kill_mid_transaction_loses_only_that_batch(db_path: Path) -> None:
    with Store(db_path) as store:
        run = store.create_run("sample", {}, "p", "fake", "m")
    committed = _run_and_kill(db_path, run, stall_at=3, kill_after=10**9)
    assert committed == 3
    assert _check_whole_batches(db_path, run) == 3
    with Store(db_path) as store:  # resuming fills in the lost batch
        missing = sorted(set(range(4 * BATCH)) - store.sample_ids(run))
        assert missing == list(range(3 * BATCH, 4 * BATCH))
        store.add_samples(run, [make_sample(i, STEPS) for i in missing])
    assert _check_whole_batches(db_path, run) == 4


def test_kill_at_a_random_moment(db_path: Path) -> None:
    with Store(db_path) as store:
        run = store.create_run("sample", {}, "p", "fake", "m")
    committed = _run_and_kill(db_path, run, stall_at=-1, kill_after=4)
    stored = _check_whole_batches(db_path, run)
    assert stored >= committed == 4
