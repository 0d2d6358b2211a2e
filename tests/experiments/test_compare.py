"""compare between FakeEngines whose divergences are computed by hand (through td.compare)."""

from __future__ import annotations

import json
import math

import pytest

import tokendice as td
from tokendice.engines.fake import FakeEngine
from tokendice.experiments.compare.compare import engine_labels, pair_sides

VOCAB = ["<eos>", "a", "b"]
P = [0.2, 0.5, 0.3]  # A's next-token distribution, at every step
Q = [0.1, 0.6, 0.3]  # B's
TOL = 1e-6  # FakeEngine logits are float32


def constant(probs: list[float], model_id: str, vocab: list[str] = VOCAB) -> FakeEngine:
    return FakeEngine(vocab, lambda prompt, generated: [math.log(p) if p > 0 else -math.inf for p in probs], model_id=model_id)


def compare(engines: list[FakeEngine], **kwargs) -> td.CompareReport:  # type: ignore[no-untyped-def]
    kwargs.setdefault("completions", False)
    return td.compare("a", engines=engines, save=False, **kwargs)


def test_per_step_divergences_match_hand_computed_values() -> None:
    report = compare([constant(P, "A"), constant(Q, "B")], max_new_tokens=3)
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
    report = compare([constant(P, "A"), constant(Q, "B")], max_new_tokens=2, completions=True, completion_tokens=2, max_nodes=100)
    c = report.pairs[0].completions
    assert c is not None and c.completions_a == c.completions_b == 7
    assert c.tv == pytest.approx(0.17, abs=TOL) and c.tv_low == pytest.approx(c.tv_high, abs=TOL)
    assert c.top[0] == {"text": "aa", "prob_a": pytest.approx(0.25, abs=TOL), "prob_b": pytest.approx(0.36, abs=TOL)}


def test_unfinished_enumerations_give_bounds() -> None:
    # One expansion (the root): only "<eos>" is complete, P .2 and Q .1; the rest (.8, .9) is unexplored.
    report = compare([constant(P, "A"), constant(Q, "B")], max_new_tokens=2, completions=True, completion_tokens=2, max_nodes=1)
    c = report.pairs[0].completions
    assert c is not None and c.tv is None
    assert c.found_mass_a == pytest.approx(0.2, abs=TOL) and c.found_mass_b == pytest.approx(0.1, abs=TOL)
    assert c.tv_high == pytest.approx(0.9, abs=TOL)
    # high = ½(1 + 1) - min(.2, .1) = 0.9 (the rests overlap nothing). low: the rests can meet on
    # the same unlisted completions, overlap .1 + min(.8, .9) = .9, so low = 1 - .9 = 0.1.
    assert c.tv_low == pytest.approx(0.1, abs=TOL)
    assert c.tv_low <= 0.17 <= c.tv_high  # the exact value from the test above
    assert "TV in [0.1000, 0.9000]" in repr(report)


def test_greedy_choices_that_differ_and_a_given_continuation() -> None:
    report = compare([constant(P, "A"), constant([0.2, 0.3, 0.5], "B")], max_new_tokens=4, continuation="ba")
    assert report.continuation_ids == [2, 1] and report.continuation_source.startswith("given")
    pair = report.pairs[0]
    assert [s.text for s in pair.steps] == ["b", "a"]
    assert pair.summary()["first_greedy_difference"] == 0 and pair.summary()["top1_agreement"] == 0.0
    # swapped probabilities: |ln .5 - ln .3| = 0.510826 for both a and b
    assert pair.steps[0].max_logprob_diff == pytest.approx(math.log(5 / 3), abs=TOL)
    assert pair.steps[0].kl_ab == pytest.approx(0.2 * math.log(5 / 3), abs=TOL)


def test_identical_engines_have_zero_distance() -> None:
    report = compare([constant(P, "A"), constant(P, "A")], max_new_tokens=2, completions=True, completion_tokens=2)
    pair = report.pairs[0]
    assert (pair.a, pair.b) == ("fake:A#1", "fake:A#2")
    assert all(s.kl_ab == s.kl_ba == s.js == 0 and s.max_logprob_diff == 0 for s in pair.steps)
    assert pair.completions is not None and pair.completions.tv == pytest.approx(0.0, abs=TOL)


def test_first_is_compared_with_each_other() -> None:
    report = compare([constant(P, "A"), constant(Q, "B"), constant(P, "C")], max_new_tokens=1)
    assert [(p.a, p.b) for p in report.pairs] == [("fake:A", "fake:B"), ("fake:A", "fake:C")]
    assert report.pairs[1].steps[0].js == 0
    assert [r["b"] for r in report.rows()] == ["fake:B", "fake:C"]


def test_different_vocabularies_are_refused() -> None:
    other = constant(P, "X", vocab=["<eos>", "a", "c"])
    with pytest.raises(td.EngineError, match=r"do not share a vocabulary \(token 2 is 'b' in one and 'c' in the other\)"):
        compare([constant(P, "A"), other], max_new_tokens=1)
    bigger = constant(P + [0.0001], "Y", vocab=VOCAB + ["c"])
    with pytest.raises(td.EngineError, match="vocabulary sizes 3 and 4"):
        compare([constant(P, "A"), bigger], max_new_tokens=1)


def test_inf_divergence_is_null_in_json_and_comes_back_as_inf() -> None:
    zero = constant([0.5, 0.5, 0.0], "Z")
    report = compare([constant(P, "A"), zero], max_new_tokens=1)
    step = report.pairs[0].steps[0]
    assert step.kl_ab == math.inf and step.max_logprob_diff == math.inf  # A gives "b" mass, Z none
    data = json.loads(report.to_json())
    assert data["pairs"][0]["steps"][0]["kl_ab"] is None and data["pairs"][0]["steps"][0]["kl_ba"] is not None
    back = td.CompareReport.from_dict(data)
    assert back.pairs[0].steps[0].kl_ab == math.inf and back.to_dict() == data


def test_pairing_of_engines_and_models() -> None:
    assert pair_sides(["hf", "llamacpp"], []) == [("hf", None), ("llamacpp", None)]
    assert pair_sides([], ["a", "b"]) == [("hf", "a"), ("hf", "b")]
    assert pair_sides(["hf", "llamacpp"], ["x", "y.gguf"]) == [("hf", "x"), ("llamacpp", "y.gguf")]
    with pytest.raises(td.ParameterError, match="needs two models or two engines"):
        pair_sides(["hf"], [])
    with pytest.raises(td.ParameterError, match="as many engines as models"):
        pair_sides(["hf", "llamacpp"], ["a", "b", "c"])


class _Described(FakeEngine):
    def __init__(self, dtype: str) -> None:
        super().__init__(VOCAB, lambda p, g: [0.0, 0.0, 0.0], model_id="m")
        self.dtype = dtype

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "dtype": self.dtype}


def test_labels_name_the_setting_that_differs() -> None:
    assert engine_labels([_Described("float32"), _Described("bfloat16")]) == ["fake:m (dtype=float32)", "fake:m (dtype=bfloat16)"]
    assert engine_labels([_Described("float32"), _Described("float32")]) == ["fake:m#1", "fake:m#2"]


def test_stored_as_a_compare_run() -> None:
    from tokendice.store import Store

    report = td.compare("a", engines=[constant(P, "A"), constant(Q, "B")], max_new_tokens=2, completion_tokens=1, max_nodes=5)
    with Store() as store:
        run = store.get_run(report.run_id)
        assert run.kind == "compare" and run.status == "complete" and run.engine == "fake" and run.model == "A,B"
        assert run.manifest["compare"]["completions"] == {"max_new_tokens": 1, "max_nodes": 5, "mass": 0.99}
        assert [e["model"] for e in run.manifest["engine"]["engines"]] == ["A", "B"]
        stored = store.get_result(report.run_id, "report")
    assert stored == report.to_dict() and stored["pairs"][0]["summary"]["steps"] == 2
    # 1-token completions: TV = ½(|.2-.1| + |.5-.6| + 0) = 0.1
    assert stored["pairs"][0]["completions"]["tv"] == pytest.approx(0.1, abs=TOL)


def test_a_whitespace_continuation_is_a_continuation() -> None:
    ws = ["<eos>", "a", " ", "\n"]
    engines = [FakeEngine(ws, lambda p, g: [0.0, 1.0, 0.0, math.log(3)], model_id=m) for m in "AB"]
    report = td.compare("a", engines=engines, continuation="\n ", save=False, completions=False)
    assert [s.text for s in report.pairs[0].steps] == ["\n", " "] and report.pairs[0].steps[0].js == 0
