"""td.diff: stored runs, samples and trace files that fork at a known step."""

from __future__ import annotations

import pytest

import tokendice as td
from tokendice.engines.fake import FakeEngine
from tokendice.errors import ParameterError, StoreError
from tokendice.experiments.compare.diff import diff_sides, load_side
from tokendice.store import SampleRecord, Store


def diff(a, b, store):
    return td.diff(a, b, db=store.path)


def sample(tokens, logprobs, sample_id=0, prompt_index=0):
    texts = [f"<{t}>" for t in tokens]
    return SampleRecord(sample_id=sample_id, tokens=tokens, token_texts=texts, text="".join(texts),
                        model_logprobs=logprobs, sampling_logprobs=[0.0] * len(tokens),
                        finish_reason="length", prompt_index=prompt_index)


def stored_run(store, *samples, kind="sample"):
    run_id = store.create_run(kind, {"params": {}}, "the prompt", "hf", "m")
    store.add_samples(run_id, list(samples))
    return run_id


@pytest.fixture()
def store(tmp_path):
    with Store(tmp_path / "runs.db") as s:
        yield s


def test_two_stored_runs_fork_at_the_right_step(store):
    a = stored_run(store, sample([5, 6, 7, 8, 9], [-0.1, -0.2, -0.3, -0.4, -0.5]))
    b = stored_run(store, sample([5, 6, 7, 3, 9], [-0.1, -0.25, -0.3, -1.0, -0.5]))
    report = diff(a, b, store)
    assert report.first_divergence == 3 and report.common_steps == 3 and not report.identical
    assert [d["abs_diff"] for d in report.drift] == pytest.approx([0.0, 0.05, 0.0])
    assert report.max_drift == pytest.approx(0.05)
    div = report.divergence
    assert div["a"]["token_id"] == 8 and div["b"]["token_id"] == 3
    assert div["top_a"] is None  # samples carry no top-k lists
    assert report.to_dict()["a"]["text"] == "<5><6><7><8><9>"


def test_samples_of_one_run_and_prefixes(store):
    run = stored_run(store, sample([1, 2, 3], [-1, -1, -1]), sample([1, 4, 3], [-1, -2, -1], sample_id=1),
                     sample([1, 2], [-1, -1], sample_id=2))
    assert diff(f"{run}:0", f"{run}:1", store).first_divergence == 1
    ended = diff(f"{run[:6]}:0", f"{run}:2", store)  # a unique prefix of the id works too
    assert ended.first_divergence == 2 and ended.divergence["b"]["text"] == "(end)"
    assert diff(run, f"{run}:0", store).identical  # a bare id means sample 0 when there is no trace
    with pytest.raises(StoreError, match="no sample 7"):
        diff(run, f"{run}:7", store)


def test_prompt_index_form(store):
    run = stored_run(store, sample([1, 2], [-1, -1]), sample([1, 3], [-1, -1], prompt_index=1))
    assert diff(f"{run}:0:0", f"{run}:1:0", store).first_divergence == 1


VOCAB = ["<eos>", "x", "a", "b", "c"]


def _trace(c_wins: bool):
    tail = {"b": 0.4, "c": 0.6} if c_wins else {"b": 0.6, "c": 0.4}
    engine = FakeEngine.from_table(VOCAB, {(): {"a": 1.0}, ("a",): tail, ("a", "b"): {"<eos>": 1.0}, ("a", "c"): {"<eos>": 1.0}})
    return td.trace("x", engine=engine, do_sample=False, max_new_tokens=4, top=3, save=False)


def test_traces_show_both_top_lists_at_the_divergence(store, tmp_path):
    ta, tb = _trace(False), _trace(True)
    a = store.create_run("trace", {"params": {}}, "x", "fake", "fake")
    store.save_result(a, "trace", ta.to_dict())
    path = tmp_path / "b.json"
    path.write_text(tb.to_json())
    report = diff(a, str(path), store)
    assert report.first_divergence == 1
    div = report.divergence
    assert [c["text"] for c in div["top_a"][:2]] == ["b", "c"] and [c["text"] for c in div["top_b"][:2]] == ["c", "b"]
    assert div["margin_a"] == pytest.approx(0.4054651, abs=1e-5)  # ln(0.6/0.4)
    assert report.drift[0]["abs_diff"] == 0.0


def test_bad_specs(store, tmp_path):
    with pytest.raises(ParameterError, match="neither"):
        load_side("not a run!", store)
    bad = tmp_path / "bad.json"
    bad.write_text('{"hello": 1}')
    with pytest.raises(ParameterError, match="not a tokendice trace"):
        load_side(str(bad), store)
    with pytest.raises(StoreError):
        load_side("abcdef123456", store)


def test_notes_on_different_prompts(store):
    a = load_side(stored_run(store, sample([1], [-1.0])), store)
    b = load_side(stored_run(store, sample([1], [-1.0])), store)
    b.prompt = "another"
    assert diff_sides(a, b).notes == ["the two sides have different prompts"]
