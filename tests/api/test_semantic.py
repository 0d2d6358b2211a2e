"""td.semantic on the FakeEngine: exact semantic entropy equal to hand-computed values, bounds that
hold the truth when part of the mass is unexplored, sampled estimates with their intervals and
convergence, the CLI (`tokendice semantic`), and what is refused before any model loads."""

from __future__ import annotations

import json
import math

import pytest

import tokendice as td
from tokendice.cli import main
from tokendice.engines.fake import FakeEngine
from tokendice.errors import ModelNotFoundError, ParameterError

LN2 = math.log(2)
# Every probability a power of 2: the FakeEngine's float32 logits then give them to ~2e-10.
VOCAB = ["<eos>", "x", "a", "b", "c", "d"]
TABLE = {
    (): {"a": 0.5, "b": 0.25, "c": 0.25},
    ("a",): {"a": 0.5, "<eos>": 0.5},
    ("b",): {"c": 0.5, "<eos>": 0.5},
    ("a", "a"): {"b": 0.25, "<eos>": 0.25, "c": 0.25, "d": 0.25},
}
# Completions: a 1/4, c 1/4, b 1/8, bc 1/8, aa 1/16, aab 1/16, aac 1/16, aad 1/16 (each ends with <eos>).
FIRST_LETTER = lambda a, b: a[0] == b[0]  # noqa: E731 - clusters a* (1/2), b* (1/4), c (1/4)
COLUMNS = ["cluster", "representative", "answers", "n_answers", "count", "share", "ci_low", "ci_high", "prob", "weighted_prob", "exact_prob"]


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine.from_table(VOCAB, TABLE)


def numbers_engine() -> FakeEngine:
    vocab = ["", "Q", " 12.", " 12\n", " twelve", " It is 12", " 13", " none"]
    table = {(): {" 12.": 0.25, " 12\n": 0.125, " twelve": 0.125, " It is 12": 0.125, " 13": 0.25, " none": 0.125}}
    return FakeEngine.from_table(vocab, table, eos="")


# -- exact -------------------------------------------------------------------------------------


def test_exact_semantic_entropy_equals_the_hand_computed_value(engine):
    e = td.enumerate_completions("x", engine=engine, mass=1.0, max_new_tokens=20)
    whole = td.semantic(e)  # every completion its own meaning (exact judge)
    # 2 x 1/4 ln 4 + 2 x 1/8 ln 8 + 4 x 1/16 ln 16 = (1 + 0.75 + 1) ln 2
    assert whole.semantic_entropy["exact"] == pytest.approx(2.75 * LN2, abs=1e-9)
    assert whole.semantic_entropy["exact_low"] == whole.semantic_entropy["exact_high"] == whole.semantic_entropy["exact"]
    assert whole.num_semantic_sets == 8 and whole.n == 0 and whole.semantic_entropy["discrete"] is None
    grouped = td.semantic(e, judge=FIRST_LETTER)
    assert grouped.semantic_entropy["exact"] == pytest.approx(1.5 * LN2, abs=1e-9)  # clusters 1/2, 1/4, 1/4
    assert [(c.answers[0], round(c.exact_prob, 9)) for c in grouped.clusters] == [("a", 0.5), ("c", 0.25), ("b", 0.25)]
    # Whole completions are clustered without the end-of-sequence token's text ("a<eos>" reads "a").
    assert grouped.clusters[0].answers == ["a", "aa", "aab", "aac", "aad"]


def test_exact_semantic_entropy_of_extracted_answers():
    e = td.enumerate_completions("Q", engine=numbers_engine(), mass=1.0)
    r = td.semantic(e, extract="number")
    # 12: 1/4 + 1/8 + 1/8 + 1/8 = 5/8; 13: 1/4; no answer: 1/8
    expected = -(5 / 8 * math.log(5 / 8) + 1 / 4 * math.log(1 / 4) + 1 / 8 * math.log(1 / 8))
    assert r.semantic_entropy["exact"] == pytest.approx(expected, abs=1e-9)
    assert {c.answers[0]: round(c.exact_prob, 9) for c in r.clusters} == {"12": 0.625, "13": 0.25, "<no answer>": 0.125}
    assert r.extract == "number" and r.judge == "exact"


def test_the_bounds_hold_the_truth_when_part_of_the_mass_is_unexplored(engine):
    truth = td.semantic(td.enumerate_completions("x", engine=engine, mass=1.0, max_new_tokens=4), judge=FIRST_LETTER)
    exact = truth.semantic_entropy["exact"]
    seen = set()
    for max_nodes in (1, 2, 3, 4, 5):
        partial = td.enumerate_completions("x", engine=engine, max_nodes=max_nodes, max_new_tokens=4)  # stored: the manifest has V
        r = td.semantic(partial, judge=FIRST_LETTER)
        se = r.semantic_entropy
        assert r.exact["vocab_size"] == len(VOCAB) and r.exact["log_max_completions"] == pytest.approx(4 * math.log(len(VOCAB)))
        if partial.unexplored_mass > 1e-6:
            assert se["exact"] is None
            assert se["exact_low"] - 1e-9 <= exact <= se["exact_high"] + 1e-9, (max_nodes, se, exact)
            seen.add(max_nodes)
        else:
            assert se["exact"] == pytest.approx(exact, abs=1e-9)
    assert len(seen) >= 4  # at least four partial enumerations were checked
    # By hand for max_nodes=2 (root and "a" expanded): found a<eos> 1/4; unexplored 3/4.
    r = td.semantic(td.enumerate_completions("x", engine=engine, max_nodes=2, max_new_tokens=4), judge=FIRST_LETTER)
    f = lambda p: -p * math.log(p)  # noqa: E731
    assert r.semantic_entropy["exact_low"] == pytest.approx(0.0, abs=1e-9)  # all of it in a's cluster
    assert r.semantic_entropy["exact_high"] == pytest.approx(f(0.25) + f(0.75) + 0.75 * 4 * math.log(6), abs=1e-8)


def test_without_the_vocabulary_size_only_the_lower_bound_is_known(engine):
    partial = td.enumerate_completions("x", engine=engine, max_nodes=2, max_new_tokens=4, save=False)
    r = td.semantic(partial, judge=FIRST_LETTER)
    assert r.semantic_entropy["exact_low"] is not None and r.semantic_entropy["exact_high"] is None
    given = td.semantic(partial, judge=FIRST_LETTER, vocab_size=6)
    assert given.semantic_entropy["exact_high"] == pytest.approx(td.semantic(partial, judge=FIRST_LETTER, vocab_size=6).semantic_entropy["exact_high"])
    assert given.semantic_entropy["exact_high"] > given.semantic_entropy["exact_low"]


# -- sampled, next to exact -----------------------------------------------------------------------


def test_sampled_estimates_with_intervals_and_convergence_next_to_the_exact_value(engine):
    e = td.enumerate_completions("x", engine=engine, mass=1.0, max_new_tokens=20)
    run = td.sample("x", n=400, engine=engine, seed=1)
    r = td.semantic(run, judge=FIRST_LETTER, exact=e)
    se, iv = r.semantic_entropy, r.intervals
    assert r.n == 400 and r.num_semantic_sets == 3 and r.source == "samples"
    assert sum(c.count for c in r.clusters) == 400
    assert se["exact"] == pytest.approx(1.5 * LN2, abs=1e-9)
    # Seeded: the discrete estimate's 95% interval holds the exact value here (it does so in ~95% of seeds:
    # tests/analysis/test_semantic.py measures the rate).
    assert iv["discrete"]["low"] <= se["exact"] <= iv["discrete"]["high"]
    # Every completion was sampled: the likelihood-weighted estimate is the exact value.
    assert se["weighted"] == pytest.approx(se["exact"], abs=1e-8)
    # The naive entropy estimates the entropy of whole completions, 2.75 ln 2.
    assert iv["naive"]["low"] <= 2.75 * LN2 <= iv["naive"]["high"]
    assert r.bootstrap["resamples"] == 1000 and r.bootstrap["level"] == 0.95 and r.bootstrap["seed"] == 0
    assert [p["n"] for p in r.convergence] == [10, 20, 50, 100, 200, 400]
    last = r.convergence[-1]
    assert (last["discrete"], last["discrete_low"], last["discrete_high"]) == (se["discrete"], iv["discrete"]["low"], iv["discrete"]["high"])
    for c in r.clusters:
        assert c.prob == c.exact_prob and c.share == c.count / 400 and c.ci_low <= c.share <= c.ci_high


def test_shares_and_weighted_probabilities_by_hand():
    # The answers of the samples (numbers read from " 12.", " twelve", " It is 12", " 13", ...) counted here
    # against the clusters' counts, shares and likelihood-weighted probabilities.
    from tokendice.analysis.extract import AnswerSpec

    number = AnswerSpec.parse("number")
    run = td.sample("Q", n=50, engine=numbers_engine(), seed=3)
    r = td.semantic(run, extract="number")
    counts: dict[str, int] = {}
    for s in run.samples:
        counts[number(s.text)] = counts.get(number(s.text), 0) + 1
    assert {c.answers[0]: c.count for c in r.clusters} == counts and set(counts) == {"12", "13", "<no answer>"}
    shares = [c / 50 for c in counts.values()]
    assert r.semantic_entropy["discrete"] == pytest.approx(-sum(s * math.log(s) for s in shares), abs=1e-12)
    seen = {s.text: math.exp(s.sampling_logprob) for s in run.samples}  # each distinct completion once
    by_answer: dict[str, float] = {}
    for text, p in seen.items():
        by_answer[number(text)] = by_answer.get(number(text), 0.0) + p
    total = sum(by_answer.values())
    assert {c.answers[0]: c.weighted_prob for c in r.clusters} == pytest.approx({k: v / total for k, v in by_answer.items()}, abs=1e-12)
    assert r.clusters[0].members[0].count == max(m.count for c in r.clusters for m in c.members)


def test_the_enumeration_sample_made_in_memory_serves_as_exact(engine):
    run = td.sample("x", n=100, engine=engine, exact=True, mass=1.0, save=False)
    r = td.semantic(run, judge=FIRST_LETTER, exact=True)
    assert r.semantic_entropy["exact"] == pytest.approx(1.5 * LN2, abs=1e-9) and r.exact_run_id is None
    with pytest.raises(ParameterError, match="exact=True reads the enumeration"):
        td.semantic(td.sample("x", n=10, engine=engine, save=False), exact=True)


def test_an_exact_enumeration_of_another_distribution_is_refused(engine):
    run = td.sample("x", n=20, engine=engine)
    with pytest.raises(ParameterError, match="max_new_tokens=10, not 20") as caught:
        td.semantic(run, exact=td.enumerate_completions("x", engine=engine, mass=1.0))
    assert caught.value.param == "exact"
    with pytest.raises(ParameterError, match="temperature"):
        td.semantic(run, exact=td.enumerate_completions("x", engine=engine, mass=1.0, max_new_tokens=20, temperature=0.5))
    with pytest.raises(ParameterError, match="the enumeration has prompt .x., not .y."):
        other = FakeEngine.from_table(["<eos>", "x", "y", "a", "b", "c", "d"], TABLE)
        td.semantic(td.sample("y", n=5, engine=other), exact=td.enumerate_completions("x", engine=other, max_new_tokens=20))


# -- the result --------------------------------------------------------------------------------


def test_the_result_as_json_dataframe_repr_and_html(engine, serve_engine, capsys, tmp_path):
    serve_engine(engine)
    run = td.sample("x", n=60, engine=engine)
    e = td.enumerate_completions("x", engine=engine, max_nodes=3, max_new_tokens=20)
    r = td.semantic(run.run_id, exact=e.run_id)
    data = r.to_dict()
    assert data["kind"] == "semantic" and data["run_id"] is None
    assert (data["source_run_id"], data["exact_run_id"]) == (run.run_id, e.run_id)
    for key in ("clusters", "semantic_entropy", "num_semantic_sets", "n", "predictive_entropy", "intervals", "bootstrap",
                "convergence", "judge", "threshold"):
        assert key in data
    assert set(data["semantic_entropy"]) == {"discrete", "weighted", "exact_low", "exact_high", "exact"}
    assert {"cluster", "answers", "count", "prob"} <= set(data["clusters"][0])
    assert td.SemanticResult.from_dict(json.loads(json.dumps(data))).to_dict() == data
    capsys.readouterr()
    assert main(["semantic", run.run_id, "--exact", e.run_id, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == data
    frame = r.to_dataframe()
    assert list(frame.columns) == COLUMNS and len(frame) == len(r.clusters)
    assert repr(r).count("\n") == 0 and repr(r).startswith('<SemanticResult: "x" · judge exact') and len(repr(r)) < 200
    assert main(["semantic", run.run_id, "--exact", e.run_id]) == 0
    out = capsys.readouterr().out
    assert "clustered by meaning (judge exact)" in out and "discrete (cluster shares)" in out and "exact semantic entropy in [" in out
    page = tmp_path / "semantic.html"
    assert main(["semantic", run.run_id, "--exact", e.run_id, "--html", str(page)]) == 0
    assert page.read_text() == r.save_html(tmp_path / "api.html").read_text()


def test_the_view_escapes_model_text(serve_engine):
    xss, img = "<script>alert(1)</script>", "<img src=x onerror=alert(2)>"
    engine = FakeEngine.from_table(["<eos>", "x", xss, img], {(): {xss: 0.5, img: 0.5}})
    run = td.sample(f"x{xss}", n=20, engine=engine, save=False)
    html = td.semantic(run)._repr_html_()
    assert "<script" not in html and "<img" not in html and "&lt;script&gt;" in html


# -- judges through the API --------------------------------------------------------------------


def test_an_llm_judge_through_an_engine_spec(serve_engine):
    from tests.experiments.test_judges import judge_engine

    sampler = FakeEngine.from_table(["", "Q", " Paris", " Paris, France", " London"], {(): {" Paris": 0.5, " Paris, France": 0.25, " London": 0.25}}, eos="")
    e = td.enumerate_completions("Q", engine=sampler, mass=1.0)
    serve_engine(judge_engine())  # what "llm:hf" loads
    r = td.semantic(e, judge="llm:hf")
    assert r.judge == "llm:hf@0.5" and r.threshold == 0.5
    assert [(c.answers, round(c.exact_prob, 9)) for c in r.clusters] == [([" Paris", " Paris, France"], 0.75), ([" London"], 0.25)]
    assert r.semantic_entropy["exact"] == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)), abs=1e-9)


def test_everything_is_checked_before_a_model_loads(engine, monkeypatch):
    import tokendice.api._common as common

    def no_loading(spec):  # type: ignore[no-untyped-def]
        raise AssertionError("a model was loaded")

    run = td.sample("x", n=5, engine=engine, save=False)
    e = td.enumerate_completions("x", engine=engine, save=False)
    monkeypatch.setattr(common, "load", no_loading)
    cases = [
        (dict(judge="llm:hf", extract="regex:("), "extract"),
        (dict(judge="llm:hf", prompt_index=1), "prompt_index"),
        (dict(judge="llm:hf", prompt_index="0"), "prompt_index"),
        (dict(judge="llm:hf", resamples=3), "resamples"),
        (dict(judge="llm:hf", level=1.0), "level"),
        (dict(judge="llm:hf", exact=3), "exact"),
        (dict(judge="nope"), "judge"),
    ]
    for keywords, param in cases:
        with pytest.raises(ParameterError) as caught:
            td.semantic(run, **keywords)
        assert caught.value.param == param, (keywords, caught.value)
    with pytest.raises(ModelNotFoundError, match="downloads nothing"):
        td.semantic(run, judge="nli:someone/no-such-mnli")
    with pytest.raises(ParameterError, match="read from a sample run or an enumeration .or a stored run.s id., not from int"):
        td.semantic(42)
    with pytest.raises(ParameterError, match="exact= goes with a sample run"):
        td.semantic(e, exact=e)


def test_a_run_of_another_kind_is_refused(engine):
    t = td.trace("x", engine=engine)
    with pytest.raises(ParameterError, match="is a trace run"):
        td.semantic(t.run_id)
    assert main(["semantic", t.run_id]) == 2


# -- the embedding judge, end to end, offline ----------------------------------------------------


@pytest.mark.embedding
def test_tokendice_semantic_with_the_embedding_judge_works_offline(serve_engine, capsys):
    engine = FakeEngine.from_table(["", "Q", " Paris", " the city of Paris", " London"],
                                   {(): {" Paris": 0.5, " the city of Paris": 0.25, " London": 0.25}}, eos="")  # fmt: skip
    serve_engine(engine)
    run = td.sample("Q", n=40, engine=engine)
    capsys.readouterr()
    assert main(["semantic", run.run_id, "--judge", "embedding", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["judge"] == "embedding@0.85" and data["num_semantic_sets"] == 2
    assert sorted(sorted(c["answers"]) for c in data["clusters"]) == [[" London"], [" Paris", " the city of Paris"]]
    assert sum(c["count"] for c in data["clusters"]) == 40


# -- --judge on sample and enumerate ---------------------------------------------------------------


def test_sample_and_enumerate_take_judge_and_answer_together(serve_engine, capsys):
    serve_engine(numbers_engine())
    capsys.readouterr()
    assert main(["sample", "Q", "-n", "40", "--answer", "number", "--judge", "exact", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["kind"] == "sample" and len(data["semantic"]) == 1 and len(data["answers"]) == 1
    meaning = data["semantic"][0]
    assert meaning["kind"] == "semantic" and meaning["extract"] == "number" and meaning["n"] == 40
    assert sum(c["count"] for c in meaning["clusters"]) == 40 and meaning["source_run_id"] == data["run_id"]
    assert {c["answers"][0] for c in meaning["clusters"]} == {"12", "13", "<no answer>"}

    assert main(["enumerate", "Q", "--judge", "exact", "--answer", "number", "--mass", "1", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["kind"] == "enumerate" and data["semantic"]["source"] == "enumeration" and data["answers"]["kind"] == "answers"
    expected = -(5 / 8 * math.log(5 / 8) + 1 / 4 * math.log(1 / 4) + 1 / 8 * math.log(1 / 8))
    assert data["semantic"]["semantic_entropy"]["exact"] == pytest.approx(expected, abs=1e-9)

    assert main(["sample", "Q", "-n", "20", "--judge", "exact", "--exact", "--mass", "1"]) == 0
    out = capsys.readouterr().out
    assert "clustered by meaning (judge exact)" in out and "exact semantic entropy:" in out and "tokendice semantic" in out


def test_a_bad_judge_fails_before_sampling(serve_engine, capsys):
    engine = serve_engine(numbers_engine())
    assert main(["sample", "Q", "-n", "5", "--judge", "embeding"]) == 2
    assert "--judge must be one of" in capsys.readouterr().err and engine.forward_rows == 0
    assert main(["enumerate", "Q", "--judge", "nli:someone/no-such-mnli"]) == 2
    assert "downloads nothing" in capsys.readouterr().err and engine.forward_rows == 0
