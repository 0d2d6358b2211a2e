"""The sampling machinery under td.sample: the spec, where samples go (store or memory), the
manifest, and the engine settings a run recorded."""

from __future__ import annotations

import pytest

from tests.experiments.fake_models import markov_chain
from tokendice.api._resume import recorded_engine
from tokendice.errors import ParameterError, StoreError
from tokendice.experiments.distribution.run import AnalysisOptions, summarise
from tokendice.experiments.distribution.sample import MemorySink, SampleSpec, StoreSink, draw_samples, load_sample_spec, start_sample_run
from tokendice.params import SamplingParams
from tokendice.store import Store

PARAMS = SamplingParams(max_new_tokens=5, temperature=0.9)


def key(samples):  # type: ignore[no-untyped-def]
    return [(s.prompt_index, s.sample_id, s.tokens, s.sampling_logprobs) for s in samples]


@pytest.mark.parametrize("method", ["independent", "branching"])
def test_store_and_memory_get_the_same_samples_and_only_the_missing_ones(tmp_path, method):
    spec = SampleSpec(("x", "xa"), PARAMS, n=12, seed=9, method=method, batch_size=5)
    memory = MemorySink()
    seen = []
    assert draw_samples(markov_chain(), spec, memory, progress=seen.append) is None  # white-box: no server report
    assert sum(seen) == 24
    with Store(tmp_path / "a.db") as store:
        run_id = start_sample_run(store, markov_chain(), spec, AnalysisOptions().to_manifest())
        store.add_samples(run_id, [s for s in memory.ordered() if s.sample_id in (0, 7)])  # some already there
        draw_samples(markov_chain(), spec, StoreSink(store, run_id))
        assert key(store.samples(run_id)) == key(memory.ordered())


def test_manifest_holds_everything_needed_to_redo_the_run(tmp_path):
    spec = SampleSpec(("x", "xa"), PARAMS, n=5, seed=3)
    with Store(tmp_path / "m.db") as store:
        run_id = start_sample_run(store, markov_chain(), spec, AnalysisOptions(at_prefix="a").to_manifest())
        run = store.get_run(run_id)
        assert load_sample_spec(store, run_id) == spec
        assert AnalysisOptions.from_manifest(run.manifest["analysis"]) == AnalysisOptions(at_prefix="a")
        assert run.manifest["params"]["temperature"] == 0.9 and run.manifest["engine"]["model"] == "fake-markov"
        assert run.n_requested == 10 and run.prompt == "2 prompts" and run.status == "running"


def test_summary_of_samples_without_an_engine():
    spec = SampleSpec(("x",), PARAMS, n=20, seed=1)
    memory = MemorySink()
    draw_samples(markov_chain(), spec, memory)
    run = summarise(spec, memory.ordered(), engine_name="fake", model="fake-markov", white_box=True, options=AnalysisOptions(at_prefix="a"))
    assert run.analyses[0].n == 20 and run.analyses[0].at_prefix is None  # the check needs the engine
    assert run.to_dict()["prompts"][0]["prompt"] == "x" and "server" not in run.to_dict()


@pytest.mark.parametrize(
    "fields,param",
    [({"n": 0}, "n"), ({"n": "3"}, "n"), ({"prompts": ("",)}, "prompt"), ({"method": "branching", "rng": "torch"}, "rng"),
     ({"batch_size": 2.0}, "batch_size"), ({"method": "x"}, "method"), ({"seed": None}, "seed")],
)
def test_spec_validation(fields, param):
    base = {"prompts": ("x",), "params": PARAMS, "n": 3}
    with pytest.raises(ParameterError) as caught:
        SampleSpec(**{**base, **fields})
    assert caught.value.param == param


def test_a_run_of_another_kind_has_no_sample_spec(tmp_path):
    with Store(tmp_path / "k.db") as store:
        run_id = store.create_run("trace", {}, "x", "fake", "fake")
        with pytest.raises(StoreError):
            load_sample_spec(store, run_id)


def test_recorded_engine_settings_of_this_and_the_previous_version(tmp_path):
    now = {"engine": "hf", "model": "m", "dtype": "bfloat16", "attention": "eager", "kv_cache": False, "threads": 3, "vocab_size": 9}
    before = {"engine": "hf", "model": "m", "dtype": "float32", "attn_implementation": "sdpa", "kv_cache": True, "threads": 2,
              "threads_chosen": "1.50 cores idle at load"}  # fmt: skip
    server = {"engine": "openai", "model": "s", "base_url": "http://h:1/v1", "endpoint": "chat", "server": "unknown", "timeout": 9.0,
              "concurrency": 2, "max_retries": 1, "sampler_extensions": True, "served_model": None}  # fmt: skip
    with Store(tmp_path / "e.db") as store:
        records = [store.get_run(store.start_run("sample", "x", d, {})) for d in (now, before, server)]
    assert recorded_engine(records[0]) == {"dtype": "bfloat16", "attention": "eager", "kv_cache": False, "threads": 3}
    assert recorded_engine(records[1]) == {"dtype": "float32", "attention": "sdpa", "kv_cache": True, "threads": 2}
    assert recorded_engine(records[2]) == {"base_url": "http://h:1/v1", "endpoint": "chat", "timeout": 9.0, "max_retries": 1,
                                           "concurrency": 2, "sampler_extensions": True}  # fmt: skip
