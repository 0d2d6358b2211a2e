"""td.sample through the public API, on the FakeEngine: exact numbers, storage, the views, and
what is refused before any model loads."""

from __future__ import annotations

import json
import math
import os

import pytest

import tokendice as td
from tests.experiments.fake_models import HTML_VOCAB, SHALLOW_EXACT, SHALLOW_TABLE, markov_chain
from tokendice.analysis import wilson_interval
from tokendice.engines.fake import FakeEngine

VOCAB, TABLE = HTML_VOCAB, SHALLOW_TABLE
EXACT = SHALLOW_EXACT
COLUMNS = ["prompt_index", "prompt", "rank", "text", "count", "share", "ci_low", "ci_high", "exact_prob", "n"]


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine.from_table(VOCAB, TABLE)


def without_id(data: dict) -> dict:
    return {k: v for k, v in data.items() if k != "run_id"}


def test_counts_intervals_and_exact_probabilities(engine):
    run = td.sample("x", n=400, engine=engine, seed=1)
    assert isinstance(run, td.SampleRun) and run.run_id is not None
    (a,) = run.analyses
    assert a.n == 400 and sum(c.frequency.count for c in a.completions) == 400
    assert {c.text for c in a.completions} == set(EXACT)
    for c in a.completions:
        assert c.exact_prob == pytest.approx(EXACT[c.text], abs=1e-6)  # recorded while sampling: the tree's products
        assert c.frequency.share == c.frequency.count / 400
        assert (c.frequency.low, c.frequency.high) == wilson_interval(c.frequency.count, 400)
    counts = [c.frequency.count for c in a.completions]
    assert counts == sorted(counts, reverse=True)  # most frequent first
    assert a.fit is not None and a.fit.p_value > 1e-3  # the counts fit the exact probabilities
    assert [s.distinct_prefixes for s in a.spread][:2] == [3, 5]  # a, b, c; then aa, a<eos>, bc, b<eos>, c<eos>
    assert len(run.samples) == 400 and [s.sample_id for s in run.samples] == list(range(400))


def test_same_seed_same_samples_in_any_batch_and_by_either_method(engine):
    one = td.sample("x", n=60, engine=engine, seed=5, batch_size=7, save=False)
    other = td.sample("x", n=60, engine=engine, seed=5, batch_size=60, save=False)
    assert [s.tokens for s in one.samples] == [s.tokens for s in other.samples]
    branching = td.sample("x", n=60, engine=engine, seed=5, method="branching", save=False)
    assert sum(c.frequency.count for c in branching.analyses[0].completions) == 60


def test_greedy_samples_are_one_completion_with_probability_one(engine):
    run = td.sample("x", n=5, engine=engine, do_sample=False)
    (c,) = run.analyses[0].completions
    assert c.frequency.count == 5 and c.exact_prob == 1.0 and run.analyses[0].tarr == 1.0 and run.tarr_at_n == 1.0


def test_exact_enumeration_gives_the_probabilities(engine):
    run = td.sample("x", n=300, engine=engine, seed=2, exact=True, mass=1.0)
    a = run.analyses[0]
    assert a.exact_source == "exact enumeration (1.0000 of the mass found)"
    assert {c.text: c.exact_prob for c in a.completions} == pytest.approx(EXACT)
    assert a.fit is not None and a.fit.p_value > 1e-3


def test_at_prefix_predicts_and_counts_the_next_token():
    # the Markov chain: after "a", <eos> 0.1, a 0.1, b 0.5, c 0.2, d 0.1
    run = td.sample("x", n=300, engine=markov_chain(), seed=2, max_new_tokens=3, at_prefix="a")
    check = run.analyses[0].at_prefix
    rows = {r["token"]: r for r in check.rows}
    predicted = {t: r["predicted_sampling_prob"] for t, r in rows.items()}
    assert predicted == pytest.approx({"<eos>": 0.1, "a": 0.1, "b": 0.5, "c": 0.2, "d": 0.1}, abs=1e-6)
    assert check.prefix == "a" and check.prefix_tokens == [2]
    assert check.reached == sum(1 for s in run.samples if s.tokens[0] == 2) > 0
    assert sum(r["observed"] for r in rows.values()) == check.reached
    assert rows["b"]["observed"] == sum(1 for s in run.samples if s.tokens[:2] == [2, 3])


def test_several_prompts(engine):
    run = td.sample(["x", "xa"], n=10, engine=engine, seed=0, do_sample=False)
    assert run.prompts == ["x", "xa"] and run.tarr_at_n == 1.0
    assert {s.prompt_index for s in run.samples} == {0, 1} and len(run.samples) == 20
    assert "2 prompts" in repr(run) and td.load_run(run.run_id).to_dict() == run.to_dict()


def test_stored_with_its_analysis_and_read_back_identically(engine):
    run = td.sample("x", n=50, engine=engine, seed=3, temperature=0.8, at_prefix="a")
    again = td.load_run(run.run_id)
    assert type(again) is td.SampleRun and again.to_dict() == run.to_dict()
    assert [s.tokens for s in again.samples] == [s.tokens for s in run.samples]
    info = td.show_run(run.run_id)
    assert info.results["analysis"] == run.to_dict()  # the API stores what the CLI stores
    assert info.manifest["sample"]["seed"] == 3 and info.manifest["params"]["temperature"] == 0.8
    assert info.manifest["analysis"]["at_prefix"] == "a" and info.status == "complete" and info.n_samples == 50


def test_the_manifest_records_how_the_run_was_made_and_every_sample_exports(engine, tmp_path):
    run = td.sample("x", n=1000, engine=engine, seed=42, method="branching", top_p=0.9, temperature=0.7)
    assert run.analyses[0].n == 1000 and run.analyses[0].fit.p_value > 1e-3
    manifest = td.show_run(run.run_id).manifest
    assert manifest["params"]["top_p"] == 0.9 and manifest["sample"] == {
        "prompts": ["x"], "params": run.params, "n": 1000, "seed": 42, "rng": "per-sample", "method": "branching", "chat": False,
        "batch_size": 250,
    }  # fmt: skip
    assert manifest["engine"]["engine"] == "fake" and manifest["environment"]["torch"] and "tokendice" in manifest["packages"]
    assert td.export_run(run.run_id, "csv", output=str(tmp_path / "s.csv")) == 1000
    assert (tmp_path / "s.csv").read_text().count("\n") == 1001


def test_save_false_writes_nothing(engine):
    run = td.sample("x", n=20, engine=engine, save=False)
    assert run.run_id is None and len(run.samples) == 20
    assert not os.path.exists(os.environ["TOKENDICE_DB"])


def test_to_dict_is_what_the_cli_prints(engine, serve_engine, capsys):
    from tokendice.cli import main

    serve_engine(engine)
    assert main(["sample", "x", "-n", "40", "--seed", "4", "--top-p", "0.9", "--at-prefix", "a", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    live = td.sample("x", n=40, engine=engine, seed=4, top_p=0.9, at_prefix="a")
    assert without_id(printed) == without_id(live.to_dict())
    assert printed["kind"] == "sample" and td.load_run(printed["run_id"]).to_dict() == printed


def test_cli_table(engine, serve_engine, capsys):
    from tokendice.cli import main

    serve_engine(engine)
    assert main(["sample", "x", "-n", "30", "--rows", "2"]) == 0
    out = capsys.readouterr().out
    assert "observed share (n=30)" in out and "more distinct completions" in out and "run " in out and "stored" in out


def test_dataframe_repr_and_html(engine):
    run = td.sample("<script>alert(1)</script>", n=30, engine=engine, seed=0)
    frame = run.to_dataframe()
    assert list(frame.columns) == COLUMNS and len(frame) == run.analyses[0].distinct
    assert frame["count"].sum() == 30 and list(frame["rank"]) == list(range(1, len(frame) + 1))
    first = frame.iloc[0]
    top = run.analyses[0].completions[0]
    assert (first["text"], first["count"], first["ci_low"], first["exact_prob"]) == (top.text, top.frequency.count, top.frequency.low, top.exact_prob)
    html = run._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;" in html
    shown = repr(run)
    assert "\n" not in shown and len(shown) < 200 and "n=30" in shown and f"{run.analyses[0].distinct} distinct" in shown


@pytest.mark.parametrize(
    "keywords,param",
    [
        ({"n": "10"}, "n"), ({"n": 1.5}, "n"), ({"n": 0}, "n"), ({"batch_size": 0}, "batch_size"),
        ({"method": "tree"}, "method"), ({"rng": "global"}, "rng"), ({"seed": -1}, "seed"), ({"chat": "yes"}, "chat"),
        ({"temprature": 0.7}, "temprature"), ({"top_p": 1.5}, "top_p"), ({"mass": 0}, "mass"), ({"max_nodes": 0}, "max_nodes"),
        ({"exact": 1}, "exact"), ({"at_prefix": ""}, "at_prefix"), ({"method": "branching", "rng": "torch"}, "rng"),
        ({"save": "no"}, "save"), ({"params": {"temperature": 1}}, "params"), ({"progress": "yes"}, "progress"),
    ],
)
def test_bad_arguments_fail_before_anything_loads(keywords, param, monkeypatch):
    def no_loading(self):  # type: ignore[no-untyped-def]
        raise AssertionError("a model was loaded")

    monkeypatch.setattr("tokendice.engines.spec.EngineSpec.load", no_loading)
    with pytest.raises(td.ParameterError) as caught:
        td.sample("x", **keywords)
    assert caught.value.param == param
    assert not os.path.exists(os.environ["TOKENDICE_DB"])


def test_a_misspelt_keyword_gets_a_suggestion(engine):
    with pytest.raises(td.ParameterError, match="did you mean 'temperature'"):
        td.sample("x", engine=engine, temprature=0.7)
    with pytest.raises(td.ParameterError, match="did you mean 'batch_size'"):
        td.sample("x", engine=engine, batchsize=3)


def test_bad_prompts(engine):
    for bad in ("", "   ", [], ["x", ""], None, "\udcff"):
        with pytest.raises(td.ParameterError):
            td.sample(bad, engine=engine)


def test_ctrl_c_leaves_a_resumable_run_and_says_its_id(engine, monkeypatch):
    from tokendice.store import Store

    add = Store.add_samples
    calls = []

    def add_then_interrupt(self, run_id, samples, results=None):  # type: ignore[no-untyped-def]
        add(self, run_id, samples, results)
        calls.append(len(samples))
        if len(calls) == 2:
            raise KeyboardInterrupt

    with monkeypatch.context() as patched, pytest.raises(td.RunInterrupted) as caught:
        patched.setattr(Store, "add_samples", add_then_interrupt)
        td.sample("x", n=30, engine=engine, seed=8, batch_size=5)
    run_id = caught.value.run_id
    assert f"td.resume('{run_id}')" in str(caught.value) and "10 of 30 samples" in str(caught.value)
    assert caught.value.resume_hint == f"tokendice sample --resume {run_id}"
    assert isinstance(caught.value, KeyboardInterrupt)  # a notebook's interrupt stays one
    partial = td.load_run(run_id)  # what is stored, analysed
    assert partial.analyses[0].n == 10 and td.runs()[0].status == "interrupted"
    finished = td.resume(run_id, engine=engine)
    fresh = td.sample("x", n=30, engine=engine, seed=8, batch_size=5, save=False)
    assert [s.tokens for s in finished.samples] == [s.tokens for s in fresh.samples]
    assert without_id(finished.to_dict()) == without_id(fresh.to_dict())
    assert td.runs()[0].status == "complete" and len(td.runs()) == 1


def test_progress_callback_sees_every_sample(engine):
    seen = []
    td.sample("x", n=23, engine=engine, batch_size=10, save=False, progress=lambda units, label: seen.append((units, label)))
    assert sum(u for u, _ in seen) == 23 and seen[0][1] == "sampling (independent)"
    seen.clear()
    td.sample("x", n=23, engine=engine, method="branching", save=False, progress=lambda units, label: seen.append(units))
    assert sum(seen) == 23


def test_a_black_box_only_option_is_refused_on_the_fake_engine_too():
    engine = markov_chain()
    with pytest.raises(td.ParameterError, match="rng='per-sample'"):
        td.sample("x", engine=engine, method="branching", rng="torch")
    assert math.isclose(td.sample("x", n=3, engine=engine, save=False, max_new_tokens=2).analyses[0].n, 3)
