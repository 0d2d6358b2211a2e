from __future__ import annotations

import math

import pytest

from tokendice.errors import StoreError
from tokendice.store import SampleRecord, Store

from ._factory import make_sample


def _table_counts(store: Store) -> tuple[int, int]:
    conn = store._conn
    return tuple(conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("samples", "steps"))  # type: ignore[return-value]


def test_round_trip_with_steps(store: Store, run_id: str) -> None:
    batch = [make_sample(i, n_steps=i + 1) for i in (2, 0, 1)] + [make_sample(0, 4, prompt_index=1)]
    store.add_samples(run_id, batch)
    got = store.samples(run_id)
    assert got == sorted(batch, key=lambda s: (s.prompt_index, s.sample_id))
    assert store.samples(run_id, prompt_index=1) == [batch[3]]
    assert store.sample_ids(run_id) == {0, 1, 2}
    assert store.sample_ids(run_id, prompt_index=0) == {0, 1, 2}
    assert store.sample_ids(run_id[:4], prompt_index=1) == {0}
    assert store.count_samples(run_id) == 4
    assert store.get_run(run_id).n_samples == 4
    assert _table_counts(store) == (4, 3 + 1 + 2 + 4)


def test_sums_stored_per_sample(store: Store, run_id: str) -> None:
    s = make_sample(5, n_steps=4)
    store.add_samples(run_id, [s])
    row = store._conn.execute("SELECT model_logprob, sampling_logprob FROM samples").fetchone()
    assert row == (math.fsum(s.model_logprobs), math.fsum(s.sampling_logprobs))
    assert row[0] == s.model_logprob


def test_empty_and_nan_samples(store: Store, run_id: str) -> None:
    empty = SampleRecord(0, [], [], "", [], [], "stop")
    odd = SampleRecord(1, [3], ["x"], "x", [float("nan")], [float("-inf")], "length")
    store.add_samples(run_id, [empty, odd])
    got = store.samples(run_id)
    assert got[0] == empty
    assert math.isnan(got[1].model_logprobs[0]) and got[1].sampling_logprobs == [float("-inf")]


def test_numpy_ints_accepted(store: Store, run_id: str) -> None:
    np = pytest.importorskip("numpy")
    s = SampleRecord(np.int64(0), list(np.array([4, 5])), ["a", "b"], "ab",
                     list(np.array([-1.0, -2.0])), [-1.0, -2.0], "stop")
    store.add_samples(run_id, [s])
    assert store.samples(run_id)[0].tokens == [4, 5]


def test_duplicate_raises_and_rolls_back(store: Store, run_id: str) -> None:
    store.add_samples(run_id, [make_sample(0), make_sample(1)])
    before = _table_counts(store)
    with pytest.raises(StoreError, match="already stored or repeated"):
        store.add_samples(run_id, [make_sample(2), make_sample(3), make_sample(1)])
    assert _table_counts(store) == before
    assert store.sample_ids(run_id) == {0, 1}
    with pytest.raises(StoreError):  # repeated inside one batch
        store.add_samples(run_id, [make_sample(7), make_sample(7)])
    assert _table_counts(store) == before
    # The same sample id under another prompt index is a different sample.
    store.add_samples(run_id, [make_sample(1, prompt_index=2)])
    assert store.count_samples(run_id) == 3


def test_unknown_run(store: Store) -> None:
    with pytest.raises(StoreError, match="no run"):
        store.add_samples("deadbeef0000", [make_sample(0)])


def test_mismatched_lengths_rejected() -> None:
    with pytest.raises(StoreError, match="differ in length"):
        SampleRecord(0, [1, 2], ["a"], "a", [-1.0, -1.0], [-1.0, -1.0], "stop")


def test_samples_survive_reopen(db_path, store: Store, run_id: str) -> None:  # type: ignore[no-untyped-def]
    store.add_samples(run_id, [make_sample(i) for i in range(5)])
    store.close()
    with Store(db_path) as again:
        assert again.samples(run_id) == [make_sample(i) for i in range(5)]
