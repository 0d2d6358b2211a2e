"""td.enumerate_completions through the public API, on the FakeEngine: exact probabilities,
storage, the views, and what is refused before any model loads."""

from __future__ import annotations

import json
import math
import os

import pytest

import tokendice as td
from tests.experiments.fake_models import HTML_VOCAB, SHALLOW_EXACT, SHALLOW_TABLE
from tokendice.engines.fake import FakeEngine

VOCAB, TABLE = HTML_VOCAB, SHALLOW_TABLE
EXACT = SHALLOW_EXACT
COLUMNS = ["rank", "text", "prob", "logprob", "model_prob", "model_logprob", "finish_reason", "n_tokens", "tokens"]


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine.from_table(VOCAB, TABLE)


def test_every_completion_with_its_exact_probability(engine):
    e = td.enumerate_completions("x", engine=engine, mass=1.0)
    assert isinstance(e, td.Enumeration) and e.run_id is not None
    assert [c.text for c in e.completions] == list(EXACT)  # most probable first
    assert [c.prob for c in e.completions] == pytest.approx(list(EXACT.values()), abs=1e-6)
    assert e.found_mass == pytest.approx(1.0, abs=1e-6) and e.unexplored_mass == pytest.approx(0.0, abs=1e-6)
    assert e.stopped_because == "reached the target mass" or e.stopped_because.startswith("explored")
    assert e.params["max_new_tokens"] == 10  # enumerate's default length


def test_the_sampler_chain_is_applied(engine):
    e = td.enumerate_completions("x", engine=engine, top_k=1, mass=1.0)
    # top-k keeps ties (as transformers does): a; then a and <eos> (0.5 each); after aa, b
    assert {c.text: c.prob for c in e.completions} == pytest.approx({"a<eos>": 0.5, "aab<eos>": 0.5})
    assert {c.text: c.model_prob for c in e.completions} == pytest.approx({"a<eos>": 0.25, "aab<eos>": 0.175})
    budget = td.enumerate_completions("x", engine=engine, max_nodes=1, save=False)
    assert budget.expanded == 1 and "budget" in budget.stopped_because
    assert math.fsum([budget.found_mass, budget.frontier_mass, budget.pruned_mass]) == pytest.approx(1.0)


def test_stored_and_read_back_identically(engine):
    e = td.enumerate_completions("x", engine=engine, mass=0.9, temperature=0.8)
    again = td.load_run(e.run_id)
    assert type(again) is td.Enumeration and again.to_dict() == e.to_dict()
    info = td.show_run(e.run_id)
    assert info.run_kind == "enumerate" and info.status == "complete" and info.results["enumeration"] == e.to_dict()
    assert info.manifest["enumerate"]["mass"] == 0.9 and info.manifest["params"]["temperature"] == 0.8


def test_save_false_writes_nothing(engine):
    e = td.enumerate_completions("x", engine=engine, save=False)
    assert e.run_id is None and not os.path.exists(os.environ["TOKENDICE_DB"])


def test_to_dict_is_what_the_cli_prints(engine, serve_engine, capsys):
    from tokendice.cli import main

    serve_engine(engine)
    assert main(["enumerate", "x", "--mass", "0.95", "--temperature", "0.7", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    live = td.enumerate_completions("x", engine=engine, mass=0.95, temperature=0.7)
    assert {k: v for k, v in printed.items() if k != "run_id"} == {k: v for k, v in live.to_dict().items() if k != "run_id"}
    assert printed["kind"] == "enumerate" and td.load_run(printed["run_id"]).to_dict() == printed
    assert main(["enumerate", "x", "--rows", "2"]) == 0
    out = capsys.readouterr().out
    assert "p(sampling)" in out and "… 4 more completions" in out and "found 6 completions" in out


def test_dataframe_repr_and_html(engine):
    e = td.enumerate_completions("<script>alert(1)</script>", engine=engine, mass=1.0)
    frame = e.to_dataframe()
    assert list(frame.columns) == COLUMNS and len(frame) == 6
    assert list(frame["text"]) == list(EXACT) and frame["prob"].sum() == pytest.approx(1.0)
    assert frame.iloc[0]["tokens"] == [3, 4, 0] and frame.iloc[0]["n_tokens"] == 3
    html = e._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;" in html
    shown = repr(e)
    assert "\n" not in shown and len(shown) < 200 and "6 completions hold 1.0000 of the mass" in shown


@pytest.mark.parametrize(
    "keywords,param",
    [({"mass": 0}, "mass"), ({"mass": "1"}, "mass"), ({"max_nodes": 1.5}, "max_nodes"), ({"min_prob": 0}, "min_prob"),
     ({"chat": 1}, "chat"), ({"temprature": 0.5}, "temprature"), ({"max_new_tokens": 0}, "max_new_tokens"), ({"save": None}, "save")],
)
def test_bad_arguments_fail_before_anything_loads(keywords, param, monkeypatch):
    def no_loading(self):  # type: ignore[no-untyped-def]
        raise AssertionError("a model was loaded")

    monkeypatch.setattr("tokendice.engines.spec.EngineSpec.load", no_loading)
    with pytest.raises(td.ParameterError) as caught:
        td.enumerate_completions("x", **keywords)
    assert caught.value.param == param


def test_a_black_box_engine_is_refused_before_it_loads(monkeypatch):
    monkeypatch.setattr("tokendice.engines.spec.EngineSpec.load", lambda self: pytest.fail("loaded"))
    with pytest.raises(td.EngineError, match="exact enumeration .* needs next-token logits"):
        td.enumerate_completions("x", engine=td.EngineSpec("openai", base_url="http://127.0.0.1:9/v1", model="m"))
