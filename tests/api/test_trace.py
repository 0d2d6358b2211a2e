"""td.trace through the public API, on the FakeEngine: exact numbers, storage, the views."""

from __future__ import annotations

import json
import math
import os

import pytest

import tokendice as td
from tokendice.engines.fake import FakeEngine

VOCAB = ["<eos>", "a", "b", "<script>alert(1)</script>"]
TABLE = {(): {"a": 0.6, "b": 0.3, "<eos>": 0.1}, ("a",): {"b": 0.75, "<eos>": 0.25}, ("b",): {"a": 1.0}, ("a", "b"): {"<eos>": 1.0}}


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine.from_table(VOCAB, TABLE)


def test_exact_probabilities_of_the_chosen_tokens(engine):
    t = td.trace("a", engine=engine, do_sample=False, top=3)
    assert [s.text for s in t.steps] == ["a", "b", "<eos>"]
    assert [s.chosen.model_prob for s in t.steps] == pytest.approx([0.6, 0.75, 1.0])
    assert t.model_logprob == pytest.approx(math.log(0.6 * 0.75))
    assert t.steps[0].model_entropy == pytest.approx(-(0.6 * math.log(0.6) + 0.3 * math.log(0.3) + 0.1 * math.log(0.1)))
    assert [c.text for c in t.steps[0].top] == ["a", "b", "<eos>"]


def test_top_k_removes_tokens_and_says_which_stage(engine):
    t = td.trace("a", engine=engine, top_k=1, seed=3, top=3)
    first = t.steps[0]
    assert first.chosen.text == "a" and first.chosen.sampling_prob == pytest.approx(1.0)
    removed = {c.text: c.removed_by for c in first.top}
    assert removed == {"a": None, "b": "top_k=1", "<eos>": "top_k=1"}


def test_stored_and_read_back_identically(engine):
    t = td.trace("a", engine=engine, seed=7, temperature=0.8)
    assert t.run_id is not None
    again = td.load_run(t.run_id)
    assert type(again) is td.Trace and again.to_dict() == t.to_dict()
    assert td.load_run(t.run_id[:6]).run_id == t.run_id  # a unique prefix is enough


def test_save_false_writes_nothing(engine):
    t = td.trace("a", engine=engine, save=False)
    assert t.run_id is None and not os.path.exists(os.environ["TOKENDICE_DB"])


def test_to_dict_is_what_the_cli_prints(engine, serve_engine, capsys):
    from tokendice.cli import main

    serve_engine(engine)
    assert main(["trace", "a", "--seed", "4", "--top-p", "0.9", "--top", "2", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    live = td.trace("a", engine=engine, seed=4, top_p=0.9, top=2)
    assert {k: v for k, v in printed.items() if k != "run_id"} == {k: v for k, v in live.to_dict().items() if k != "run_id"}
    assert td.load_run(printed["run_id"]).to_dict() == printed


def test_dataframe_columns_and_views_escape_model_text(engine):
    t = td.trace("<script>alert(1)</script>", engine=engine, do_sample=False, top=2)
    df = t.to_dataframe()
    assert list(df.columns) == list(td.Trace.COLUMNS) + ["p_after[greedy=argmax]"]
    html = t._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;" in html
    text = repr(t)
    assert text.count("\n") == 0 and len(text) < 250 and "Trace" in text


def test_bad_input_fails_before_any_engine_loads(monkeypatch):
    def refuse(spec):  # type: ignore[no-untyped-def]
        raise AssertionError("loaded")

    monkeypatch.setattr("tokendice.engines.spec.EngineSpec.load", refuse)
    for kwargs, needle in [({"top": "5"}, "top must be an integer"), ({"seed": 1.5}, "seed must be"),
                           ({"temprature": 1}, "did you mean 'temperature'"), ({"chat": "yes"}, "chat must be True or False"),
                           ({"engine": "hf", "dtype": "x"}, "unexpected keyword 'dtype'"), ({"db": 3}, "db must be a path")]:
        with pytest.raises(td.ParameterError, match=needle):
            td.trace("a", **kwargs)
    with pytest.raises(td.ParameterError, match="prompt must be a non-empty string"):
        td.trace("")
