from __future__ import annotations

import re

import pytest

from tokendice.errors import StoreError
from tokendice.store import Store, db

from ._factory import make_sample


def test_create_and_get(store: Store) -> None:
    manifest = {"params": {"top_k": 5, "max_new_tokens": 8}, "seed": 3}
    run = store.create_run("sample", manifest, "Hi", "fake", "fake-model", n_requested=100)
    assert re.fullmatch(r"[0-9a-f]{12}", run)
    rec = store.get_run(run)
    assert (rec.id, rec.kind, rec.status, rec.prompt, rec.engine, rec.model) == (
        run, "sample", "running", "Hi", "fake", "fake-model")
    assert rec.manifest == manifest
    assert rec.n_requested == 100 and rec.n_samples == 0
    assert rec.created_at.endswith("+00:00")


def test_list_newest_first_and_by_kind(store: Store) -> None:
    ids = [store.create_run(kind, {}, "p", "fake", "m") for kind in ("trace", "sample", "trace")]
    assert [r.id for r in store.list_runs()] == ids[::-1]
    assert [r.id for r in store.list_runs(kind="trace")] == [ids[2], ids[0]]
    assert [r.id for r in store.list_runs(limit=1)] == [ids[2]]
    assert store.list_runs(kind="audit") == []


def test_prefix_lookup(store: Store, run_id: str) -> None:
    assert store.get_run(run_id[:4]).id == run_id
    store.set_status(run_id[:6], "complete")
    assert store.get_run(run_id).status == "complete"


def test_short_unknown_and_ambiguous_ids(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = iter(["abcd00000001", "abcd00000002", "ffff00000000"])
    monkeypatch.setattr(db, "_new_id", lambda: next(ids))
    a = store.create_run("trace", {}, "p", "fake", "m")
    store.create_run("trace", {}, "p", "fake", "m")
    with pytest.raises(StoreError, match="ambiguous.*abcd00000001, abcd00000002"):
        store.get_run("abcd")
    assert store.get_run("abcd00000001").id == a
    with pytest.raises(StoreError, match="at least 4"):
        store.get_run("abc")
    with pytest.raises(StoreError, match="no run with id '1234'"):
        store.get_run("1234")
    with pytest.raises(StoreError, match="no run"):
        store.count_samples("abc%")  # LIKE wildcards are not special


def test_id_collision_draws_again(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = iter(["aaaa00000000", "aaaa00000000", "bbbb00000000"])
    monkeypatch.setattr(db, "_new_id", lambda: next(ids))
    assert store.create_run("trace", {}, "p", "e", "m") == "aaaa00000000"
    assert store.create_run("trace", {}, "p", "e", "m") == "bbbb00000000"


def test_status_validation(store: Store, run_id: str) -> None:
    for status in ("complete", "failed", "interrupted", "running"):
        store.set_status(run_id, status)
        assert store.get_run(run_id).status == status
    with pytest.raises(StoreError, match="unknown run status 'done'"):
        store.set_status(run_id, "done")


def test_results(store: Store, run_id: str) -> None:
    assert store.get_result(run_id, "trace") is None
    value = {"steps": [{"p": 0.5, "top": [1, 2]}], "kl": float("inf")}
    store.save_result(run_id, "trace", value)
    store.save_result(run_id, "audit", [1, 2, 3])
    store.save_result(run_id, "audit", {"replaced": True})
    assert store.get_result(run_id[:5], "trace") == value
    assert store.get_result(run_id, "audit") == {"replaced": True}
    assert store.result_keys(run_id) == ["audit", "trace"]
    with pytest.raises(StoreError, match="cannot store result 'bad'"):
        store.save_result(run_id, "bad", object())


def test_numpy_values_are_json_able(store: Store, run_id: str) -> None:
    np = pytest.importorskip("numpy")
    store.save_result(run_id, "arr", {"a": np.arange(3), "x": np.float64(0.25)})
    assert store.get_result(run_id, "arr") == {"a": [0, 1, 2], "x": 0.25}


def test_delete_removes_everything(store: Store, run_id: str) -> None:
    other = store.create_run("sample", {}, "p", "fake", "m")
    store.add_samples(run_id, [make_sample(0), make_sample(1)])
    store.add_samples(other, [make_sample(0)])
    store.save_result(run_id, "k", 1)
    store.delete_run(run_id[:8])
    with pytest.raises(StoreError):
        store.get_run(run_id)
    conn = store._conn
    for table in ("samples", "steps", "results"):
        n = conn.execute(f"SELECT COUNT(*) FROM {table} WHERE run_id = ?", (run_id,)).fetchone()[0]
        assert n == 0
    assert store.count_samples(other) == 1
    assert len(store.samples(other)[0].tokens) == 3
