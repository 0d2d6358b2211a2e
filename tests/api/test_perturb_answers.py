"""perturb with an answer spec: the TV between answer distributions next to the completion TV,
hand-computed on the FakeEngine; the hard bounds when the original's completions are partly
listed; storage, the CLI, the dataframe, and that a report without answers is as it was."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import tokendice as td
from tokendice.engines.fake import FakeEngine
from tokendice.experiments.perturb.tv import tv_answers

VOCAB = ["<eos>", "x", "X", "?", " ", " 12", " twelve", " 13", ".", "12", "twelve", "13"]
FIRST = {  # the first token, by the prompt's last character
    "x": {" 12": 0.5, " twelve": 0.25, " 13": 0.25},
    "X": {" 12": 0.25, " twelve": 0.5, " 13": 0.25},  # case.upper: 12 said another way, same answers
    "?": {" 12": 0.25, " twelve": 0.25, " 13": 0.5},  # punct.question: 13 gains from 12
    " ": {"12": 0.5, "twelve": 0.25, "13": 0.25},  # whitespace.trailing_space: the original's answers, in other tokens
}
"""Then <eos> or "." (1/2 each), then <eos>. Completion TV of case.upper and punct.question: 0.25; of the trailing space: 1
(no completion in common). Answer (number) distributions: original 12: 0.75, 13: 0.25; case.upper and the trailing space
the same (answer TV 0); punct.question 12: 0.5, 13: 0.5 (answer TV 0.25)."""
ANSWER_TV = {"case.upper": 0.0, "punct.question": 0.25, "whitespace.trailing_space": 0.0}
COMPLETION_TV = {"case.upper": 0.25, "punct.question": 0.25, "whitespace.trailing_space": 1.0}
VARIANTS = "case.upper,punct.question,whitespace.trailing_space"


def engine(stop_at: str | None = None) -> FakeEngine:
    """`stop_at`: a prompt starting with it raises KeyboardInterrupt, as Ctrl-C would mid-suite."""

    def next_logits(prompt, generated):
        if stop_at is not None and "".join(VOCAB[i] for i in prompt).startswith(stop_at):
            raise KeyboardInterrupt
        if not generated:
            probs = FIRST[VOCAB[prompt[-1]]]
        elif len(generated) == 1:
            probs = {"<eos>": 0.5, ".": 0.5}
        else:
            probs = {"<eos>": 1.0}
        return [math.log(probs[t]) if t in probs else -math.inf for t in VOCAB]

    return FakeEngine(VOCAB, next_logits, eos_token_ids=(0,), model_id="fake-answers")


def without_timing(data):
    if isinstance(data, dict):
        return {k: without_timing(v) for k, v in data.items() if k not in ("seconds", "run_id")}
    if isinstance(data, list):
        return [without_timing(v) for v in data]
    return data


def test_answer_tv_next_to_the_completion_tv_exactly():
    r = td.perturb("x", engine=engine(), variants=VARIANTS, answer="number", max_new_tokens=3, save=False)
    (p,) = r.prompts
    assert p.distribution["method"] == "exact" and r.settings.answer == "number"
    for v in p.variants:
        assert v.tv.value == pytest.approx(COMPLETION_TV[v.variant.name], abs=1e-6)
        t = v.answer_tv
        # the original's 6 enumerated completions, and the trailing space's own 6 (the others' are the original's)
        assert t.method == "bounds" and t.n == (12 if v.variant.name == "whitespace.trailing_space" else 6)
        assert (t.value, t.low, t.high) == pytest.approx((ANSWER_TV[v.variant.name],) * 3, abs=1e-6)
        assert v.answer_listed_mass == pytest.approx(1.0, abs=1e-6)
    a = p.answers
    assert a["extract"] == "number" and a["answers"] == ["12", "13"] and a["listed_from"] == "enumerated"
    rows = dict(zip(a["names"], a["probs"]))
    assert rows == {"original": pytest.approx([0.75, 0.25], abs=1e-6), "case.upper": pytest.approx([0.75, 0.25], abs=1e-6),
                    "punct.question": pytest.approx([0.5, 0.5], abs=1e-6),
                    "whitespace.trailing_space": pytest.approx([0.75, 0.25], abs=1e-6)}
    assert [d["completions"] for d in a["listed"]] == [6, 6, 6, 12]
    assert {k["kind"]: k["mean_answer_tv"] for k in r.summary["by_kind"]} == pytest.approx(
        {"case": 0.0, "punct": 0.25, "whitespace": 0.0}, abs=1e-6)


def test_hard_bounds_from_partly_listed_completions_by_hand():
    # P lists 0.4 + 0.2 (answer a) and 0.1 (b): rest 0.3. Variant 1 lists 0.1 + 0.1 (a), 0.3 (b): rest 0.5.
    # S = (0.6 - 0.2)+ + (0.1 - 0.3)+ = 0.4 -> [max(0, 0.4 - 0.5), min(1, 0.4 + 0.3)] = [0, 0.7].
    # Variant 2 = P: S = 0 -> [0, 0.3] (it may put its rest elsewhere than P does).
    p = [0.4, 0.2, 0.1]
    tv, p_answers, q_answers = tv_answers(p, [0.1, 0.1, 0.3], ["a", "a", "b"])
    assert p_answers == pytest.approx({"a": 0.6, "b": 0.1}) and q_answers == pytest.approx({"a": 0.2, "b": 0.3})
    assert (tv.low, tv.high, tv.value, tv.method, tv.n) == (0.0, pytest.approx(0.7), pytest.approx(0.35), "bounds", 3)
    same, _, _ = tv_answers(p, p, ["a", "a", "b"])
    assert (same.low, same.high, same.value) == (0.0, pytest.approx(0.3), pytest.approx(0.15))
    # the bounds hold wherever the unlisted completions' answers fall (a, b or a new answer c), and both are reached
    def true_tv(p_rest, q_rest):  # type: ignore[no-untyped-def]
        return 0.5 * sum(abs(x - y) for x, y in zip(np.add([0.6, 0.1, 0], p_rest), np.add([0.2, 0.3, 0], q_rest)))

    tried = [true_tv(pr, qr) for pr in ([0.3, 0, 0], [0, 0.3, 0], [0, 0, 0.3], [0, 0.2, 0.1])
             for qr in ([0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5], [0.4, 0, 0.1])]
    assert all(0.0 <= t <= 0.7 + 1e-12 for t in tried)
    assert min(tried) == pytest.approx(0.0, abs=1e-12) and max(tried) == pytest.approx(0.7)


def test_sampled_completions_give_bounds_that_hold_the_true_answer_tv():
    # the enumeration cannot reach mass 1 in one expansion: the listed completions are the sampled ones
    r = td.perturb("x", engine=engine(), variants=VARIANTS, answer="number", max_new_tokens=3, samples=40, mass=1.0, max_nodes=1, save=False)
    (p,) = r.prompts
    assert p.distribution["method"] == "samples" and p.answers["listed_from"] == "sampled"
    for v in p.variants:
        t = v.answer_tv
        assert t.method == "bounds" and t.n == p.distribution["distinct"]  # the variants' enumerations found nothing in 1 prefix
        assert t.low - 1e-6 <= ANSWER_TV[v.variant.name] <= t.high + 1e-6
        assert t.value == pytest.approx((t.low + t.high) / 2)


def test_stored_read_back_and_the_cli(serve_engine, capsys):
    from tokendice.cli import main

    stored = td.perturb("x", engine=engine(), variants=VARIANTS, answer="number", max_new_tokens=3)
    again = td.load_run(stored.run_id)
    assert again.to_dict() == stored.to_dict() and again.settings.answer == "number"
    assert again.prompts[0].variants[0].answer_tv == stored.prompts[0].variants[0].answer_tv
    serve_engine(engine())
    assert main(["perturb", "x", "--variants-only", VARIANTS, "--answer", "number", "--max-new-tokens", "3", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert without_timing(printed) == without_timing(stored.to_dict())
    assert printed["settings"]["answer"] == "number" and "answer_tv" in printed["prompts"][0]["variants"][0]
    assert main(["perturb", "x", "--variants-only", VARIANTS, "--answer", "number", "--max-new-tokens", "3"]) == 0
    out = capsys.readouterr().out
    assert "answer TV [bounds]" in out and "answer TV (number)" in out


def test_dataframe_gains_answer_columns_only_with_an_answer():
    with_answers = td.perturb("x", engine=engine(), variants=VARIANTS, answer="number", max_new_tokens=3, save=False)
    frame = with_answers.to_dataframe()
    assert list(frame.columns)[-3:] == ["answer_tv", "answer_tv_low", "answer_tv_high"]
    assert frame.set_index("variant")["answer_tv"].to_dict() == pytest.approx(ANSWER_TV, abs=1e-6)
    plain = td.perturb("x", engine=engine(), variants=VARIANTS, max_new_tokens=3, save=False)
    assert "answer_tv" not in plain.to_dataframe().columns
    data = plain.to_dict()  # exactly as reports without answers always were
    assert "answer" not in data["settings"] and "answers" not in data["prompts"][0]
    assert not any(k.startswith("answer") for v in data["prompts"][0]["variants"] for k in v)
    assert not any("mean_answer_tv" in k for k in data["summary"]["by_kind"])
    html = with_answers._repr_html_()
    assert "TV of the answer distribution (number)" in html and "answer TV [bounds]" in html


@pytest.mark.parametrize(
    "keywords,message",
    [({"answer": "numbr"}, "did you mean 'number'"), ({"answer": "number", "distribution": False}, "distribution=False skips")],
)
def test_bad_answers_fail_before_the_model_loads(keywords, message, monkeypatch):
    monkeypatch.setattr("tokendice.engines.spec.EngineSpec.load", lambda self: pytest.fail("a model was loaded"))
    with pytest.raises(td.ParameterError, match=message) as caught:
        td.perturb("x", **keywords)
    assert caught.value.param == "answer"


def test_a_resume_keeps_the_answer_spec_of_the_run():
    options = {"variants": VARIANTS, "answer": "number", "max_new_tokens": 3}
    with pytest.raises(td.RunInterrupted) as stopped:
        td.perturb(prompts=["x", "xx"], engine=engine(stop_at="xx"), **options)
    run_id = stopped.value.run_id
    with pytest.raises(td.ParameterError, match=r"answer='first-word' \(the run used answer='number'\)") as refused:
        td.resume(run_id, engine=engine(), answer="first-word")
    assert refused.value.param == "answer"
    resumed = td.resume(run_id, engine=engine(), answer="Number")  # the same spec, spelt otherwise
    clean = td.perturb(prompts=["x", "xx"], engine=engine(), **options)
    assert without_timing(resumed.to_dict()) == without_timing(clean.to_dict())
    assert [v.answer_tv is not None for p in resumed.prompts for v in p.variants] == [True] * 6


def test_an_enumeration_short_of_the_mass_adds_its_completions_to_the_sampled_ones(monkeypatch):
    monkeypatch.setattr("tokendice.experiments.perturb.perturb.ENUMERATE_IF_UNSEEN", 1.0)  # enumerate even after 2 samples
    r = td.perturb("x", engine=engine(), variants=VARIANTS, answer="number", max_new_tokens=3, samples=2, mass=1.0, max_nodes=3,
                   seed=0, save=False)
    (p,) = r.prompts
    d = p.distribution
    assert d["method"] == "samples" and d["enumeration"]["found_mass"] == pytest.approx(0.375, abs=1e-6)
    a = p.answers
    assert a["listed_from"] == "sampled and enumerated" and a["listed"][0]["completions"] > d["distinct"]
    for v in p.variants:  # more completions listed, the same truth inside the bounds
        assert v.answer_tv.low - 1e-6 <= ANSWER_TV[v.variant.name] <= v.answer_tv.high + 1e-6
