"""td.answers through the public API, on the FakeEngine: exact answer distributions equal to
hand-computed values, sampled shares inside their Wilson intervals at the stated rate, the
goodness-of-fit test, the views, the CLI (answers, sample --answer, enumerate --answer), and
what is refused before anything is computed."""

from __future__ import annotations

import json
import math

import pytest
from scipy.stats import binom

import tokendice as td
from tokendice.analysis import wilson_interval
from tokendice.analysis.extract import AnswerSpec
from tokendice.engines.fake import FakeEngine
from tokendice.experiments.meaning.answers import AnswerDistribution, answer_distribution
from tokendice.experiments.meaning.items import from_samples

XSS = "<script>alert(1)</script>"
VOCAB = ["<eos>", "x", " 12", " twelve", " 13", " I", ".", "0", " think", " don't", " it", XSS]
TABLE = {  # every row uniform over its tokens: the probabilities below are exact in floating point
    (): {" 12": 1 / 4, " twelve": 1 / 4, " 13": 1 / 4, " I": 1 / 4},
    (" 12",): {"<eos>": 1 / 2, ".": 1 / 2},
    (" 13",): {"<eos>": 1 / 3, ".": 1 / 3, "0": 1 / 3},
    (" I",): {" think": 1 / 2, " don't": 1 / 2},
    (" I", " think"): {" 12": 1 / 2, " it": 1 / 2},
}
"""Completions: " 12" 1/8, " 12." 1/8, " twelve" 1/4, " 13" 1/12, " 13." 1/12, " 130" 1/12, " I think 12" 1/16,
" I think it" 1/16, " I don't" 1/8 (each ends with <eos>, whose text answers do not read)."""
NUMBER = {"12": 1 / 8 + 1 / 8 + 1 / 4 + 1 / 16, "<no answer>": 1 / 16 + 1 / 8, "13": 1 / 12 + 1 / 12, "130": 1 / 12}
EXACT = {"12": 1 / 4, "twelve": 1 / 4, "i don't": 1 / 8, "13": 1 / 12 + 1 / 12, "130": 1 / 12, "i think 12": 1 / 16, "i think it": 1 / 16}
COLUMNS = ["rank", "answer", "count", "share", "ci_low", "ci_high", "exact_prob", "exact_high", "completions", "n"]


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine.from_table(VOCAB, TABLE)


def test_the_exact_answer_distribution_equals_the_hand_computed_one(engine):
    e = td.enumerate_completions("x", engine=engine, mass=1.0, save=False)
    d = td.answers(e, "number")
    assert isinstance(d, td.AnswerDistribution) and d.source == "enumeration" and d.n is None and d.fit is None
    assert [a.answer for a in d.answers] == ["12", "<no answer>", "13", "130"]  # most probable first
    for a in d.answers:
        assert a.exact_prob == pytest.approx(NUMBER[a.answer], abs=1e-9)
        assert (a.count, a.share, a.ci_low, a.ci_high) == (None, None, None, None)
    assert d.unexplored_mass == pytest.approx(0.0, abs=1e-9)
    assert math.fsum(a.exact_prob for a in d.answers) + d.unexplored_mass == pytest.approx(1.0, abs=1e-9)
    assert {c.answer: c.distinct for c in d.completions} == {"12": 4, "<no answer>": 2, "13": 2, "130": 1}
    exact = td.answers(e)  # the default spec: the whole completion, normalised, without its <eos>
    assert {a.answer: a.exact_prob for a in exact.answers} == pytest.approx(EXACT, abs=1e-9)


def test_a_partial_enumeration_bounds_each_answer_by_the_unexplored_mass(engine):
    # min_prob 0.1 prunes " 13"'s children (1/12 each) and " I think"'s (1/16 each): found 0.625, unexplored 0.375
    e = td.enumerate_completions("x", engine=engine, mass=1.0, min_prob=0.1, save=False)
    d = td.answers(e, "number")
    assert d.unexplored_mass == pytest.approx(0.375, abs=1e-9)
    assert {a.answer: a.exact_prob for a in d.answers} == pytest.approx({"12": 0.5, "<no answer>": 0.125}, abs=1e-9)
    assert {r["answer"]: r["exact_high"] for r in d.rows()} == pytest.approx({"12": 0.875, "<no answer>": 0.5}, abs=1e-9)
    for a, truth in (("12", NUMBER["12"]), ("<no answer>", NUMBER["<no answer>"])):  # the true probability lies inside
        row = next(r for r in d.rows() if r["answer"] == a)
        assert row["exact_prob"] <= truth <= row["exact_high"]


def test_samples_give_counts_shares_and_wilson_intervals(engine):
    run = td.sample("x", n=400, engine=engine, seed=4, save=False)
    d = td.answers(run, "number")
    assert d.source == "samples" and d.n == 400 and d.unexplored_mass is None and d.fit is None
    assert sum(a.count for a in d.answers) == 400
    by_hand: dict[str, int] = {}
    for s in run.samples:  # each sample read by hand: its text less the <eos> token's
        text = s.text[: -len("<eos>")] if s.finish_reason == "eos" else s.text
        answer = AnswerSpec.parse("number")(text)
        by_hand[answer] = by_hand.get(answer, 0) + 1
    assert {a.answer: a.count for a in d.answers} == by_hand
    for a in d.answers:
        assert a.share == a.count / 400 and (a.ci_low, a.ci_high) == wilson_interval(a.count, 400) and a.exact_prob is None
    counts = [a.count for a in d.answers]
    assert counts == sorted(counts, reverse=True)


def test_samples_and_their_exact_enumeration_in_one_table_with_a_fit(engine):
    run = td.sample("x", n=300, engine=engine, seed=2, exact=True, mass=1.0)
    both = td.answers(run, "number", exact=True)  # the enumeration td.sample(exact=True) made
    assert both.source == "samples and enumeration" and both.n == 300 and both.sample_run_id == run.run_id
    assert {a.answer: a.exact_prob for a in both.answers} == pytest.approx(NUMBER, abs=1e-9)
    assert sum(a.count for a in both.answers) == 300
    assert both.fit is not None and both.fit.n == 300 and both.fit.categories == 4 and both.fit.p_value > 1e-3
    enumeration = td.enumerate_completions("x", engine=engine, mass=1.0, max_new_tokens=20)  # the run's sampler: 20 tokens
    by_id = td.answers(run.run_id, "number", exact=enumeration.run_id)  # both from the store
    assert by_id.enumeration_run_id == enumeration.run_id
    assert [a.to_dict() for a in by_id.answers] == [a.to_dict() for a in both.answers] and by_id.fit == both.fit


def test_the_fit_pools_answers_the_enumeration_did_not_list(engine):
    run = td.sample("x", n=200, engine=engine, seed=1, save=False)
    partial = td.enumerate_completions("x", engine=engine, mass=1.0, min_prob=0.1, max_new_tokens=20, save=False)
    d = td.answers(run, "number", exact=partial)
    rows = {a.answer: a for a in d.answers}
    assert rows["13"].exact_prob == 0.0 and rows["13"].count > 0  # sampled, not enumerated: all in the unexplored mass
    assert d.rows()[[r["answer"] for r in d.rows()].index("13")]["exact_high"] == pytest.approx(0.375, abs=1e-9)
    # cells: 12 (p 0.5, its listed completions), <no answer> (0.125, " I don't"), and the samples whose completion is not
    # listed (" I think 12" says 12, " I think it" nothing, " 13..." 13 or 130), expected from the unexplored mass 0.375
    listed = {" 12<eos>", " 12.<eos>", " twelve<eos>", " I don't<eos>"}
    unlisted = sum(1 for s in run.samples if s.text not in listed)
    assert d.fit is not None and d.fit.categories == 3 and d.fit.n == 200 and d.fit.p_value > 1e-3
    twelve = sum(1 for s in run.samples if s.text in {" 12<eos>", " 12.<eos>", " twelve<eos>"})
    dont = sum(1 for s in run.samples if s.text == " I don't<eos>")
    g = 2 * sum(o * math.log(o / e) for o, e in ((twelve, 100), (dont, 25), (unlisted, 75)) if o)
    assert twelve + dont + unlisted == 200 and d.fit.statistic == pytest.approx(g, rel=1e-6)


def test_sampled_shares_fall_in_their_wilson_intervals_at_the_stated_rate(engine):
    """400 independent replicates of n=100 (one run of 40,000 samples with per-sample streams, cut
    into consecutive blocks). For each answer the number of replicates whose 95% Wilson interval
    misses the exact probability is Binomial(400, q), q the interval's exact miss rate at n=100
    (computed below: between 3% and 7% for these probabilities, the stated ~5%). Each count must
    lie in its central 99.9% binomial range: a false alarm in at most 4 x 0.1% of seeds."""
    n, replicates = 100, 400
    run = td.sample("x", n=n * replicates, engine=engine, seed=11, batch_size=2000, save=False, progress=False)
    misses = dict.fromkeys(NUMBER, 0)
    for r in range(replicates):
        block = from_samples("x", run.samples[r * n : (r + 1) * n])
        d = answer_distribution("number", block)
        seen = {a.answer: a for a in d.answers}
        for answer, p in NUMBER.items():
            low, high = (seen[answer].ci_low, seen[answer].ci_high) if answer in seen else wilson_interval(0, n)
            misses[answer] += not low <= p <= high
    for answer, p in NUMBER.items():
        q = sum(binom.pmf(k, n, p) for k in range(n + 1) if not wilson_interval(k, n)[0] <= p <= wilson_interval(k, n)[1])
        assert 0.03 <= q <= 0.07, (answer, q)
        low, high = binom.ppf(0.0005, replicates, q), binom.ppf(0.9995, replicates, q)
        assert low <= misses[answer] <= high, (answer, misses[answer], q * replicates)
    rate = sum(misses.values()) / (replicates * len(NUMBER))
    assert 0.03 <= rate <= 0.07, rate


def test_to_dict_is_what_the_cli_prints(engine, serve_engine, capsys, tmp_path):
    from tokendice.cli import main

    serve_engine(engine)
    run = td.sample("x", n=120, engine=engine, seed=3)
    enumeration = td.enumerate_completions("x", engine=engine, mass=1.0, max_new_tokens=20)
    assert main(["answers", run.run_id, "--answer", "number", "--exact", enumeration.run_id, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    live = td.answers(run, "number", exact=enumeration)
    assert printed == live.to_dict()
    assert printed["kind"] == "answers" and printed["run_id"] is None and printed["n"] == 120
    assert [set(a) for a in printed["answers"]] == [{"answer", "count", "share", "ci_low", "ci_high", "exact_prob"}] * 4
    assert AnswerDistribution.from_dict(printed).to_dict() == printed
    assert main(["answers", run.run_id, "--answer", "number", "--exact", enumeration.run_id]) == 0
    out = capsys.readouterr().out
    assert "answers (number)" in out and "(no answer)" in out and "goodness of fit of the answer counts" in out
    page = tmp_path / "answers.html"
    assert main(["answers", run.run_id, "--answer", "number", "--exact", enumeration.run_id, "--html", str(page)]) == 0
    assert page.read_text() == live.save_html(tmp_path / "api.html").read_text()
    assert main(["answers", run.run_id, "--html", str(tmp_path / "no-such-folder" / "a.html")]) == 2


def test_sample_and_enumerate_answer_flags(engine, serve_engine, capsys):
    from tokendice.cli import main

    serve_engine(engine)
    assert main(["sample", "x", "-n", "200", "--answer", "number", "--exact", "--mass", "1", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    (answers,) = printed["answers"]  # one per prompt
    assert sum(a["count"] for a in answers["answers"]) == 200 and answers["source"] == "samples and enumeration"
    assert answers["sample_run_id"] == printed["run_id"] and answers["goodness_of_fit"]["n"] == 200
    assert {a["answer"]: a["exact_prob"] for a in answers["answers"]} == pytest.approx(NUMBER, abs=1e-9)
    stored = td.answers(printed["run_id"], "number")  # read back: the same counts (the enumeration was kept in memory only)
    assert {a.answer: a.count for a in stored.answers} == {a["answer"]: a["count"] for a in answers["answers"]}
    assert main(["enumerate", "x", "--answer", "number", "--mass", "1", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    answers = printed["answers"]
    assert answers == td.answers(printed["run_id"], "number").to_dict() and answers["enumeration_run_id"] == printed["run_id"]
    assert math.fsum(a["exact_prob"] for a in answers["answers"]) + answers["unexplored_mass"] == pytest.approx(1.0, abs=1e-9)
    assert main(["sample", "x", "-n", "20", "--answer", "first-word"]) == 0
    out = capsys.readouterr().out
    assert "answers (first-word)" in out and "tokendice answers" in out


def test_dataframe_repr_and_html(engine):
    e = td.enumerate_completions(f"x{XSS}", engine=engine, mass=1.0, max_new_tokens=20, save=False)
    run = td.sample(f"x{XSS}", n=50, engine=engine, seed=1, save=False)
    d = td.answers(run, "exact", exact=e)
    frame = d.to_dataframe()
    assert list(frame.columns) == COLUMNS and len(frame) == len(EXACT)
    assert list(frame["rank"]) == list(range(1, len(EXACT) + 1)) and set(frame["n"]) == {50}
    assert frame.set_index("answer")["exact_prob"].to_dict() == pytest.approx(EXACT, abs=1e-9)
    html = d._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;" in html
    shown = repr(d)
    assert "\n" not in shown and len(shown) < 200 and "n=50" in shown and "7 answers" in shown


def test_escaped_answers_of_a_hostile_model(engine):
    hostile = FakeEngine.from_table(VOCAB, {(): {XSS: 1.0}})
    d = td.answers(td.enumerate_completions("x", engine=hostile, mass=1.0, save=False), "exact")
    assert [a.answer for a in d.answers] == [XSS]  # < and > are symbols, not punctuation: normalising keeps them
    html = d._repr_html_()
    assert "<script" not in html and "alert(1)" in html


def test_a_run_of_several_prompts(engine):
    run = td.sample(["x", "xx"], n=30, engine=engine, seed=2, save=False)
    second = td.answers(run, "number", prompt_index=1)
    assert second.prompt == "xx" and second.prompt_index == 1 and second.n == 30
    with pytest.raises(td.ParameterError, match=r"prompt_index must be in \[0, 1\]") as caught:
        td.answers(run, "number", prompt_index=2)
    assert caught.value.param == "prompt_index"


@pytest.mark.parametrize(
    "keywords,param,message",
    [
        ({"extract": "numbr"}, "extract", "did you mean 'number'"),
        ({"extract": "regex:("}, "extract", "not a valid regular expression"),
        ({"prompt_index": -1}, "prompt_index", "prompt_index"),
        ({"prompt_index": 1.0}, "prompt_index", "prompt_index"),
        ({"exact": 3}, "exact", "an Enumeration, an enumeration's run id, True or None"),
    ],
)
def test_bad_arguments_fail_before_anything_is_read(keywords, param, message, monkeypatch):
    monkeypatch.setattr("tokendice.api._runs.load_run", lambda *a, **k: pytest.fail("a run was read"))
    with pytest.raises(td.ParameterError, match=message) as caught:
        td.answers("abcdef", **keywords)
    assert caught.value.param == param


def test_what_cannot_be_read_together(engine):
    run = td.sample("x", n=20, engine=engine, seed=1, save=False)
    enumeration = td.enumerate_completions("x", engine=engine, mass=1.0, save=False)  # 10 new tokens; the run drew 20
    with pytest.raises(td.ParameterError, match=r"max_new_tokens=10, not 20") as caught:
        td.answers(run, "number", exact=enumeration)
    assert caught.value.param == "exact"
    other = td.enumerate_completions("y", engine=FakeEngine.from_table([*VOCAB, "y"], TABLE), mass=1.0, max_new_tokens=20, save=False)
    with pytest.raises(td.ParameterError, match="prompt 'y', not 'x'"):
        td.answers(run, "number", exact=other)
    with pytest.raises(td.ParameterError, match="exact=True reads the enumeration td.sample"):
        td.answers(run, "number", exact=True)
    with pytest.raises(td.ParameterError, match="exact= goes with a sample run") as caught:
        td.answers(enumeration, "number", exact=enumeration)
    with pytest.raises(td.ParameterError, match="not from RunDiff|not from"):
        td.answers(td.trace("x", engine=engine, save=False), "number")
    trace = td.trace("x", engine=engine)
    with pytest.raises(td.ParameterError, match="answers and meanings are read from a sample run or an enumeration"):
        td.answers(trace.run_id)
    with pytest.raises(td.StoreError):
        td.answers("nosuchrun", "number")


def test_answers_are_computed_not_stored(engine):
    run = td.sample("x", n=20, engine=engine, seed=1)
    before = [r.run_id for r in td.runs(limit=None)]
    d = td.answers(run.run_id, "number")
    assert d.run_id is None and [r.run_id for r in td.runs(limit=None)] == before
    assert td.answers(run.run_id, "number").to_dict() == d.to_dict()  # the same every time
