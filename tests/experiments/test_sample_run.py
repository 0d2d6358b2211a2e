from __future__ import annotations

import pytest

from tests.experiments.fake_models import markov_chain
from tokendice.errors import ParameterError, StoreError
from tokendice.experiments.distribution.sample import SampleSpec, fill_sample_run, load_sample_spec, start_sample_run
from tokendice.params import SamplingParams
from tokendice.store import Store

PARAMS = SamplingParams(max_new_tokens=5, temperature=0.9)


def _run(store, spec, stop_after_batches=None):
    """Run to the end, or interrupt (as Ctrl-C would) once some batches are committed."""
    engine = markov_chain()
    run_id = start_sample_run(store, engine, spec)
    add_samples = store.add_samples
    committed = []

    def add_then_maybe_stop(rid, batch):
        add_samples(rid, batch)
        committed.append(len(batch))
        if stop_after_batches is not None and len(committed) >= stop_after_batches:
            raise KeyboardInterrupt

    store.add_samples = add_then_maybe_stop
    try:
        fill_sample_run(store, engine, run_id)
    except KeyboardInterrupt:
        pass
    finally:
        store.add_samples = add_samples
    return run_id


@pytest.mark.parametrize("method", ["independent", "branching"])
def test_interrupted_run_resumes_to_identical_samples(tmp_path, method):
    spec = SampleSpec(("x",), PARAMS, n=40, seed=9, method=method, batch_size=8)
    with Store(tmp_path / "a.db") as store:
        full = _run(store, spec)
        expected = [(s.sample_id, s.tokens, s.sampling_logprobs) for s in store.samples(full)]
        partial = _run(store, spec, stop_after_batches=2)
        assert store.get_run(partial).status == "interrupted"
        assert store.count_samples(partial) == 16
        fill_sample_run(store, markov_chain(), partial)
        assert store.get_run(partial).status == "complete"
        assert [(s.sample_id, s.tokens, s.sampling_logprobs) for s in store.samples(partial)] == expected


def test_manifest_holds_everything_needed_to_redo_the_run(tmp_path):
    spec = SampleSpec(("x", "xa"), PARAMS, n=5, seed=3)
    with Store(tmp_path / "m.db") as store:
        run_id = _run(store, spec)
        run = store.get_run(run_id)
        assert load_sample_spec(store, run_id) == spec
        assert run.manifest["params"]["temperature"] == 0.9
        assert {"environment", "engine"} <= set(run.manifest) or "engine" in str(run.manifest)
        assert run.n_samples == 10 and run.n_requested == 10
        assert sorted(store.sample_ids(run_id, prompt_index=1)) == list(range(5))


def test_spec_validation():
    with pytest.raises(ParameterError):
        SampleSpec(("x",), PARAMS, n=0)
    with pytest.raises(ParameterError):
        SampleSpec(("",), PARAMS, n=3)
    with pytest.raises(ParameterError):
        SampleSpec(("x",), PARAMS, n=3, method="branching", rng="torch")


def test_resuming_a_run_of_another_kind_fails(tmp_path):
    with Store(tmp_path / "k.db") as store:
        run_id = store.create_run("trace", {}, "x", "fake", "fake")
        with pytest.raises(StoreError):
            load_sample_spec(store, run_id)
