"""compare between FakeEngines whose divergences are computed by hand."""

from __future__ import annotations

import json
import math

import pytest

from tokendice.cli import main
from tokendice.engines.fake import FakeEngine
from tokendice.errors import EngineError, ParameterError
from tokendice.experiments.compare.compare import CompletionBudget, engine_specs, run_compare, store_compare
from tokendice.params import SamplingParams
from tokendice.store import Store

VOCAB = ["<eos>", "a", "b"]
P = [0.2, 0.5, 0.3]  # A's next-token distribution, at every step
Q = [0.1, 0.6, 0.3]  # B's
TOL = 1e-6  # FakeEngine logits are float32


def constant(probs: list[float], model_id: str, vocab: list[str] = VOCAB) -> FakeEngine:
    return FakeEngine(vocab, lambda prompt, generated: [math.log(p) for p in probs], model_id=model_id)


def test_per_step_divergences_match_hand_computed_values() -> None:
    report = run_compare([constant(P, "A"), constant(Q, "B")], "a", SamplingParams(max_new_tokens=3), completions=None)
    assert report.continuation == "aaa" and report.continuation_source.startswith("greedy continuation of fake:A")
    pair = report.pairs[0]
    assert (pair.a, pair.b) == ("fake:A", "fake:B") and len(pair.steps) == 3
    # KL(A||B) = .2 ln(.2/.1) + .5 ln(.5/.6) + .3 ln(.3/.3) = .138629 - .091161 = 0.047468
    # KL(B||A) = .1 ln(.1/.2) + .6 ln(.6/.5)                 = -.069315 + .109393 = 0.040078
    # JS: m = (.15, .55, .3); ½[.2 ln(.2/.15) + .5 ln(.5/.55)] + ½[.1 ln(.1/.15) + .6 ln(.6/.55)]
    #   = ½(.057536 - .047655) + ½(-.040547 + .052207) = 0.0107708
    for s in pair.steps:
        assert s.kl_ab == pytest.approx(0.047468, abs=TOL)
        assert s.kl_ba == pytest.approx(0.040078, abs=TOL)
        assert s.js == pytest.approx(0.0107708, abs=TOL)
        assert s.top1_a == s.top1_b == "a" and s.top1_agree
        # |ln .2 - ln .1| = ln 2 = 0.693147 is the largest difference among the three tokens
        assert s.max_logprob_diff == pytest.approx(math.log(2), abs=TOL) and s.max_diff_token == "<eos>"
        assert (s.logprob_a, s.logprob_b) == pytest.approx((math.log(0.5), math.log(0.6)), abs=TOL)
    summary = pair.summary()
    assert summary["top1_agreement"] == 1.0 and summary["first_greedy_difference"] is None
    assert summary["mean_js"] == pytest.approx(0.0107708, abs=TOL)
    assert summary["continuation_logprob_b"] == pytest.approx(3 * math.log(0.6), abs=TOL)


def test_total_variation_between_exact_enumerations() -> None:
    # Completions of 2 tokens: "<eos>" (stops), or x y for x in {a, b}, y in any token.
    # TV = ½ Σ|P - Q| over the 7 completions:
    #   <eos> .2/.1, a<eos> .10/.06, aa .25/.36, ab .15/.18, b<eos> .06/.03, ba .15/.18, bb .09/.09
    #   ½(.1 + .04 + .11 + .03 + .03 + .03 + 0) = 0.17
    budget = CompletionBudget(max_new_tokens=2, max_nodes=100)
    report = run_compare([constant(P, "A"), constant(Q, "B")], "a", SamplingParams(max_new_tokens=2), completions=budget)
    c = report.pairs[0].completions
    assert c is not None and c.completions_a == c.completions_b == 7
    assert c.tv == pytest.approx(0.17, abs=TOL) and c.tv_low == pytest.approx(c.tv_high, abs=TOL)
    assert c.top[0] == {"text": "aa", "prob_a": pytest.approx(0.25, abs=TOL), "prob_b": pytest.approx(0.36, abs=TOL)}


def test_unfinished_enumerations_give_bounds() -> None:
    # One expansion (the root): only "<eos>" is complete, P .2 and Q .1; the rest (.8, .9) is unexplored.
    budget = CompletionBudget(max_new_tokens=2, max_nodes=1)
    report = run_compare([constant(P, "A"), constant(Q, "B")], "a", SamplingParams(max_new_tokens=2), completions=budget)
    c = report.pairs[0].completions
    assert c is not None and c.tv is None
    assert c.found_mass_a == pytest.approx(0.2, abs=TOL) and c.found_mass_b == pytest.approx(0.1, abs=TOL)
    assert c.tv_high == pytest.approx(0.9, abs=TOL)
    # high = ½(1 + 1) - min(.2, .1) = 0.9 (the rests overlap nothing). low: the rests can meet on
    # the same unlisted completions, overlap .1 + min(.8, .9) = .9, so low = 1 - .9 = 0.1.
    assert c.tv_low == pytest.approx(0.1, abs=TOL)
    assert c.tv_low <= 0.17 <= c.tv_high  # the exact value from the test above


def test_greedy_choices_that_differ_and_a_given_continuation() -> None:
    a, b = constant(P, "A"), constant([0.2, 0.3, 0.5], "B")
    report = run_compare([a, b], "a", SamplingParams(max_new_tokens=4), continuation="ba", completions=None)
    assert report.continuation_ids == [2, 1] and report.continuation_source.startswith("given")
    pair = report.pairs[0]
    assert [s.text for s in pair.steps] == ["b", "a"]
    assert pair.summary()["first_greedy_difference"] == 0 and pair.summary()["top1_agreement"] == 0.0
    # swapped probabilities: |ln .5 - ln .3| = 0.510826 for both a and b
    assert pair.steps[0].max_logprob_diff == pytest.approx(math.log(5 / 3), abs=TOL)
    assert pair.steps[0].kl_ab == pytest.approx(0.2 * math.log(5 / 3), abs=TOL)


def test_identical_engines_have_zero_distance() -> None:
    report = run_compare([constant(P, "A"), constant(P, "A")], "a", SamplingParams(max_new_tokens=2),
                         completions=CompletionBudget(max_new_tokens=2, max_nodes=50))  # fmt: skip
    pair = report.pairs[0]
    assert (pair.a, pair.b) == ("fake:A#1", "fake:A#2")
    assert all(s.kl_ab == s.kl_ba == s.js == 0 and s.max_logprob_diff == 0 for s in pair.steps)
    assert pair.completions is not None and pair.completions.tv == pytest.approx(0.0, abs=TOL)


def test_first_is_compared_with_each_other() -> None:
    engines = [constant(P, "A"), constant(Q, "B"), constant(P, "C")]
    report = run_compare(engines, "a", SamplingParams(max_new_tokens=1), completions=None)
    assert [(p.a, p.b) for p in report.pairs] == [("fake:A", "fake:B"), ("fake:A", "fake:C")]
    assert report.pairs[1].steps[0].js == 0


def test_different_vocabularies_are_refused() -> None:
    other = constant(P, "X", vocab=["<eos>", "a", "c"])
    with pytest.raises(EngineError, match=r"do not share a vocabulary \(token 2 is 'b' in one and 'c' in the other\)"):
        run_compare([constant(P, "A"), other], "a", SamplingParams(max_new_tokens=1), completions=None)
    bigger = constant(P + [0.0001], "Y", vocab=VOCAB + ["c"])
    with pytest.raises(EngineError, match="vocabulary sizes 3 and 4"):
        run_compare([constant(P, "A"), bigger], "a", SamplingParams(max_new_tokens=1), completions=None)


def test_inf_divergence_is_null_in_json() -> None:
    zero = FakeEngine(VOCAB, lambda p, g: [math.log(0.5), math.log(0.5), -math.inf], model_id="Z")
    report = run_compare([constant(P, "A"), zero], "a", SamplingParams(max_new_tokens=1), completions=None)
    assert report.pairs[0].steps[0].kl_ab == math.inf  # A gives "b" mass, Z none
    data = json.loads(report.to_json())
    assert data["pairs"][0]["steps"][0]["kl_ab"] is None and data["pairs"][0]["steps"][0]["kl_ba"] is not None


def test_engine_specs_pair_engines_and_models() -> None:
    assert engine_specs(["hf", "llamacpp"], []) == [("hf", None), ("llamacpp", None)]
    assert engine_specs([], ["a", "b"]) == [("hf", "a"), ("hf", "b")]
    assert engine_specs(["hf", "llamacpp"], ["x", "y.gguf"]) == [("hf", "x"), ("llamacpp", "y.gguf")]
    with pytest.raises(ParameterError, match="needs two models or two engines"):
        engine_specs(["hf"], [])
    with pytest.raises(ParameterError, match="as many engines as models"):
        engine_specs(["hf", "llamacpp"], ["a", "b", "c"])


def test_stored_as_a_compare_run(tmp_path) -> None:  # type: ignore[no-untyped-def]
    engines = [constant(P, "A"), constant(Q, "B")]
    budget = CompletionBudget(max_new_tokens=1, max_nodes=5)
    report = run_compare(engines, "a", SamplingParams(max_new_tokens=2), completions=budget)
    with Store(tmp_path / "c.db") as store:
        run_id = store_compare(store, engines, report, budget)
        run = store.get_run(run_id)
        assert run.kind == "compare" and run.status == "complete" and run.engine == "fake" and run.model == "A,B"
        assert run.manifest["compare"]["completions"] == {"max_new_tokens": 1, "max_nodes": 5, "mass": 0.99}
        assert [e["model"] for e in run.manifest["engine"]["engines"]] == ["A", "B"]
        stored = store.get_result(run_id, "report")
    assert stored["run_id"] == run_id and stored["pairs"][0]["summary"]["steps"] == 2
    # 1-token completions: TV = ½(|.2-.1| + |.5-.6| + 0) = 0.1
    assert stored["pairs"][0]["completions"]["tv"] == pytest.approx(0.1, abs=TOL)


def test_cli_compare_table_and_json(monkeypatch, capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    fakes = {"hf": constant(P, "A"), "llamacpp": constant(Q, "B")}
    monkeypatch.setattr("tokendice.api.get_engine", lambda engine, model=None, **options: fakes[engine])
    db = str(tmp_path / "cli.db")
    assert main(["compare", "a", "--engine", "hf", "--engine", "llamacpp", "--max-new-tokens", "2", "--completion-tokens", "1", "--db", db]) == 0
    out = capsys.readouterr().out
    assert "KL(A‖B)" in out and "JS" in out and "summary fake:A vs fake:B" in out
    assert "total variation distance = 0.1000 (exact)" in out and "top-1 agreement 1.000 (2/2)" in out
    assert main(["compare", "a", "--engine", "hf", "--engine", "llamacpp", "--max-new-tokens", "2", "--no-completions", "--json", "--db", db]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["pairs"][0]["completions"] is None and data["pairs"][0]["summary"]["mean_kl_ab"] == pytest.approx(0.047468, abs=TOL)
    with Store(db) as store:
        assert [r.kind for r in store.list_runs()] == ["compare", "compare"]


@pytest.mark.parametrize(
    "args,needle",
    [
        (["compare", "hi"], "needs two models or two engines"),
        (["compare", "hi", "--engine", "hf", "--engine", "openai"], "the openai engine (a server) reports at most 20 logprobs"),
        (["compare", "hi", "--engine", "hf", "--engine", "hf", "--completion-tokens", "0"], "completion_tokens must be >= 1"),
        (["compare", "", "--engine", "hf", "--engine", "llamacpp"], "prompt"),
    ],
)
def test_cli_compare_errors_are_one_line(args, needle, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err
