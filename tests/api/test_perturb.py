"""td.perturb and td.variants through the public API, on FakeEngines whose next-token distribution
depends on the prompt in a known way (tests/experiments/test_perturb.py): exact values, storage,
resume, the views."""

from __future__ import annotations

import json
import math
import os
import sys

import pytest

import tokendice as td
from tests.experiments.test_perturb import completion_distribution, first_step, hand_tv, prompt_dependent, second_step
from tokendice.engines.fake import FakeEngine
from tokendice.store import Store

NAMES = ["punct.question", "case.upper", "punct.period", "case.lower"]
SUITE = ["ab", "ba", "aab"]
SUITE_OPTIONS = {"variants": "punct.question,case.upper,punct.period", "samples": 50, "seed": 3, "max_new_tokens": 2}


def without_timing(data):
    """A report's dict less what two runs of the same measurement do not share: run id and wall times."""
    if isinstance(data, dict):
        return {k: without_timing(v) for k, v in data.items() if k not in ("seconds", "run_id")}
    if isinstance(data, list):
        return [without_timing(v) for v in data]
    return data


@pytest.fixture(scope="module")
def report():
    return td.perturb("ab", engine=prompt_dependent(), variants=NAMES, max_new_tokens=2, save=False)


def test_exact_values_per_variant(report):
    assert type(report) is td.PerturbReport and report.run_id is None
    rows = {row["variant"]: row for row in report.rows()}
    assert list(rows) == ["punct.question", "case.upper", "punct.period"]  # ranked; case.lower of "ab" is a no-op
    q, upper, period = rows["punct.question"], rows["case.upper"], rows["punct.period"]
    assert q["tv"] == pytest.approx(hand_tv(completion_distribution("ab"), completion_distribution("ab?")), abs=1e-6)
    assert q["tv"] == pytest.approx(0.52, abs=1e-6) and upper["tv"] == pytest.approx(0.15, abs=1e-6)
    assert period["tv"] == pytest.approx(0.0, abs=1e-7)
    assert q["tv_low"] == pytest.approx(q["tv_high"], abs=1e-6) and q["tv_method"] == "exact"
    m = [0.4, 0.6]  # JS of (0.6, 0.4) and (0.2, 0.8), by hand: mixture (0.4, 0.6)
    js = 0.5 * (0.6 * math.log(0.6 / m[0]) + 0.4 * math.log(0.4 / m[1])) + 0.5 * (0.2 * math.log(0.2 / m[0]) + 0.8 * math.log(0.8 / m[1]))
    assert q["js_model"] == pytest.approx(js, abs=1e-6) and q["js_sampling"] == pytest.approx(js, abs=1e-6)
    assert [rows[n]["orig_top1_model_prob"] for n in rows] == pytest.approx([0.2, 0.45, 0.6], abs=1e-6)
    assert [rows[n]["top1_changed"] for n in rows] == [True, True, False]
    assert [rows[n]["greedy_same"] for n in rows] == [False, False, True]
    assert [rows[n]["greedy_divergence"] for n in rows] == [0, 0, None]
    assert [rows[n]["rank"] for n in rows] == [1, 2, 3] and {row["prompt"] for row in rows.values()} == {"ab"}


def test_posix_and_summary_by_hand(report):
    texts, responses = ["ab", "ab?", "AB", "ab."], [("a", "<eos>"), ("b", "<eos>"), ("b", "<eos>"), ("a", "<eos>")]
    loglik = [[math.log(first_step(x)[y[0]] * second_step(x, y[0])[y[1]]) for y in responses] for x in texts]
    psi = sum(abs(loglik[i][j] - loglik[j][j]) / 2 for i in range(4) for j in range(4) if i != j) / 12
    assert report.prompts[0].posix["psi"] == pytest.approx(psi, abs=1e-6)
    assert report.summary["posix"] == pytest.approx(psi, abs=1e-6) and report.summary["most_disruptive_kind"] == "punct"
    assert report.settings.params.max_new_tokens == 2 and report.settings.samples == 200


def test_top_completions_are_the_originals_most_likely_with_every_prompts_probability(report):
    top = report.prompts[0].top_completions
    texts = ["ab", "ab?", "AB", "ab."]  # the original, then the variants in the order measured (before ranking)
    assert top["names"] == ["original", "punct.question", "case.upper", "punct.period"]
    assert top["texts"] == ["a<eos>", "b<eos>", "ax", "bx"]  # the original's completions, most likely first: .36 .28 .24 .12
    assert top["tokens"] == [[1, 0], [2, 0], [1, 3], [2, 3]]
    by_hand = [[completion_distribution(x).get(c, 0.0) for c in top["texts"]] for x in texts]
    assert top["probs"] == [pytest.approx(row, abs=1e-6) for row in by_hand]
    assert top["probs"][1] == pytest.approx([0.18, 0.8, 0.02, 0.0], abs=1e-6)  # "ab?": 0.2 * 0.9, 0.8 * 1, 0.2 * 0.1, 0.8 * 0


def test_top_completions_are_exp_of_the_scored_sampling_logprobs(monkeypatch):
    import numpy as np

    from tokendice.experiments.perturb import perturb as module
    from tokendice.experiments.perturb.score import PromptBatch, score_completions

    monkeypatch.setattr(module, "TOP_COMPLETIONS", 3)
    engine = prompt_dependent()
    r = td.perturb("ab", engine=engine, variants=["punct.question", "case.upper"], max_new_tokens=2, temperature=2.0, save=False)
    top = r.prompts[0].top_completions
    assert len(top["texts"]) == 3 and top["texts"] == ["a<eos>", "b<eos>", "ax"]
    ids = [engine.tokenizer.encode(x) for x in ("ab", "ab?", "AB")]
    scored = score_completions(engine, PromptBatch.prefill(engine, ids), top["tokens"], r.settings.params)
    assert np.allclose(top["probs"], np.exp(scored.sampling), atol=1e-12)

    def tempered(probs):  # temperature 2: p^(1/2), renormalised
        z = sum(math.sqrt(v) for v in probs.values())
        return {k: math.sqrt(v) / z for k, v in probs.items()}

    for row, x in zip(top["probs"], ("ab", "ab?", "AB")):  # p(sampling), not p(model): by hand, step by step
        first = tempered(first_step(x))
        hand = [first[c[0]] * tempered(second_step(x, c[0]))[c[1]] for c in (("a", "<eos>"), ("b", "<eos>"), ("a", "x"))]
        assert row == pytest.approx(hand, abs=1e-6)


def test_without_distributions_there_are_no_top_completions_and_old_reports_load_without_them(report):
    r = td.perturb("ab", engine=prompt_dependent(), variants="punct.question", max_new_tokens=2, distribution=False, save=False)
    assert r.prompts[0].top_completions == {} and r.to_dict()["prompts"][0]["top_completions"] == {}
    data = report.to_dict()
    del data["prompts"][0]["top_completions"]  # as a report stored before the field existed
    assert td.PerturbReport.from_dict(data).prompts[0].top_completions == {}
    assert td.PerturbReport.from_dict(report.to_dict()).prompts[0].top_completions == report.prompts[0].top_completions


def test_top_completions_survive_the_store():
    live = td.perturb("ab", engine=prompt_dependent(), variants=NAMES, max_new_tokens=2, samples=20)
    again = td.load_run(live.run_id)
    assert again.to_dict() == live.to_dict() and again.prompts[0].top_completions == live.prompts[0].top_completions
    assert again.prompts[0].top_completions["texts"] == ["a<eos>", "b<eos>", "ax", "bx"]


def test_max_new_tokens_is_8_unless_given():
    r = td.perturb("ab", engine=prompt_dependent(), variants="punct.question", save=False, distribution=False)
    assert r.settings.params.max_new_tokens == 8 and not r.settings.distribution
    assert r.prompts[0].variants[0].tv is None and r.rows()[0]["tv"] is None and r.rows()[0]["tv_method"] is None


def test_suite_summarises_per_kind_and_progress_adds_up():
    ticks: list[tuple[int, str]] = []
    r = td.perturb(prompts=["ab", "ba"], engine=prompt_dependent(), variants=["punct.question", "case.upper", "punct.period"],
                   max_new_tokens=2, save=False, progress=lambda units, label: ticks.append((units, label)))
    assert sum(units for units, _ in ticks) == 200 and any(label.startswith("prompt 2/2") for _, label in ticks)
    kinds = {row["kind"]: row for row in r.summary["by_kind"]}
    assert kinds["case"]["mean_tv"] == pytest.approx(0.15, abs=1e-6) and kinds["punct"]["mean_tv"] == pytest.approx(0.26, abs=1e-6)
    assert [row["prompt_index"] for row in r.rows()] == [0, 0, 0, 1, 1, 1]
    assert "2 prompts" in repr(r) and "most disruptive kind: punct" in repr(r)


def test_user_variants_as_templates_and_from_a_file(tmp_path):
    listed = td.perturb("ab", engine=prompt_dependent(), user_variants=["{p}?"], kinds="user", max_new_tokens=2, save=False)
    assert [(row["variant"], row["kind"]) for row in listed.rows()] == [("user.1", "user")]
    assert listed.rows()[0]["tv"] == pytest.approx(0.52, abs=1e-6)
    path = tmp_path / "v.txt"
    path.write_text('{"name": "ask", "prompt": "{p}?"}\n')
    from_file = td.perturb("ab", engine=prompt_dependent(), user_variants=str(path), kinds=["user"], max_new_tokens=2, save=False)
    assert [row["variant"] for row in from_file.rows()] == ["ask"] and from_file.rows()[0]["tv"] == pytest.approx(0.52, abs=1e-6)


def test_stored_and_read_back_identically():
    live = td.perturb(prompts=["ab", "ba"], engine=prompt_dependent(), variants=NAMES, max_new_tokens=2, samples=20, seed=5)
    assert live.run_id is not None
    again = td.load_run(live.run_id)
    assert type(again) is td.PerturbReport and again.to_dict() == live.to_dict()
    assert again.rows() == live.rows() and again.headline() == live.headline()
    assert td.PerturbReport.from_dict(live.to_dict()).to_dict() == live.to_dict()
    with Store() as store:
        run = store.get_run(live.run_id)
        assert run.kind == "perturb" and run.status == "complete" and run.manifest["perturb"]["prompts"] == ["ab", "ba"]
        assert store.get_result(run.id, "report") == live.to_dict()


def test_impossible_responses_round_trip_as_null_and_back():
    vocab = ["<eos>", "a", "b", "?"]

    def next_logits(prompt, generated):  # "a" answers "a", "a?" answers "b", each with certainty
        if generated:
            return [0.0, -math.inf, -math.inf, -math.inf]
        return [-math.inf, -math.inf, 0.0, -math.inf] if prompt[-1] == 3 else [-math.inf, 0.0, -math.inf, -math.inf]

    live = td.perturb("a", engine=FakeEngine(vocab, next_logits), variants="punct.question", max_new_tokens=2)
    assert live.prompts[0].posix["psi"] == math.inf and live.prompts[0].posix["loglik"][0][1] == -math.inf
    assert live.rows()[0]["tv"] == pytest.approx(1.0) and live.rows()[0]["js_model"] == pytest.approx(math.log(2))
    data = live.to_dict()
    assert data["prompts"][0]["posix"]["psi"] is None and data["summary"]["posix"] is None
    assert data["prompts"][0]["variants"][0]["orig_response_delta"] is None
    json.dumps(data, allow_nan=False)  # strict JSON
    again = td.load_run(live.run_id)
    assert again.to_dict() == data and again.prompts[0].posix["psi"] == math.inf
    assert again.prompts[0].variants[0].orig_response_delta == -math.inf and again.summary["posix"] == math.inf
    assert td.PerturbReport.from_dict(data).to_dict() == data


def test_save_false_writes_nothing():
    r = td.perturb("ab", engine=prompt_dependent(), variants="case.upper", max_new_tokens=2, save=False)
    assert r.run_id is None and not os.path.exists(os.environ["TOKENDICE_DB"])


def test_to_dict_is_what_the_cli_prints(serve_engine, capsys, monkeypatch):
    from tokendice.cli import main

    serve_engine(prompt_dependent())
    monkeypatch.setattr(sys.modules["tokendice.api._perturb"], "preflight", lambda *args, **kwargs: None)  # no real tokenizer
    assert main(["perturb", "ab", "--variants-only", ",".join(NAMES), "--max-new-tokens", "2", "--samples", "30", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    live = td.perturb("ab", engine=prompt_dependent(), variants=NAMES, max_new_tokens=2, samples=30)
    assert printed["kind"] == "perturb" and without_timing(printed) == without_timing(live.to_dict())
    assert td.load_run(printed["run_id"]).to_dict() == printed


def test_variant_list_is_what_the_cli_lists(capsys):
    from tokendice.cli import main

    names = "case.lower+punct.question,template.chat,case.upper,case.upper+case.upper"
    listing = td.variants("The end.", names=names)
    assert type(listing) is td.VariantList and listing.run_id is None
    assert [(r["variant"], r["kind"], r["text"], r["chat"], r["skipped"]) for r in listing.rows()] == [
        ("case.lower+punct.question", "case+punct", "the end?", False, None), ("template.chat", "template", "The end.", True, None),
        ("case.upper", "case", "THE END.", False, None), ("case.upper+case.upper", "case", "THE END.", None, "same as case.upper")]
    assert main(["perturb", "The end.", "--list", "--json", "--variants-only", names]) == 0
    assert json.loads(capsys.readouterr().out) == listing.to_dict()
    suite = td.variants(["ab", "ba"], kinds="case")
    assert [(r["prompt_index"], r["variant"], r["skipped"]) for r in suite.rows()] == [
        (0, "case.upper", None), (0, "case.title", None), (0, "case.lower", "same as the original"),
        (1, "case.upper", None), (1, "case.title", None), (1, "case.lower", "same as the original")]
    assert list(suite.to_dataframe().columns) == list(td.VariantList.COLUMNS)
    assert td.VariantList.from_dict(suite.to_dict()).to_dict() == suite.to_dict()
    assert repr(suite) == '<VariantList: 2 prompts ("ab", …) · 4 variants, 2 skipped>'
    with pytest.raises(td.ParameterError, match="unexpected keyword 'name'; did you mean 'names'"):
        td.variants("ab", name="case.lower")
    with pytest.raises(td.ParameterError, match="chat must be True or False"):
        td.variants("ab", chat=1)


def test_dataframe_columns_html_escapes_and_repr_is_one_line():
    script = "<script>alert(1)</script>"
    vocab = ["<eos>", script, script.upper(), "?", "a"]
    engine = FakeEngine.from_table(vocab, {(): {"a": 0.7, "<eos>": 0.3}})
    r = td.perturb(script, engine=engine, variants=["punct.question", "case.upper"], max_new_tokens=2, save=False)
    df = r.to_dataframe()
    assert list(df.columns) == list(td.PerturbReport.COLUMNS) and len(df) == 2
    assert list(df["prompt"]) == [script, script]
    html = r._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;" in html
    text = repr(r)
    assert text.count("\n") == 0 and len(text) < 250 and text.startswith("<PerturbReport: ")
    listing = td.variants(script, names="case.upper")
    assert "<script>" not in listing._repr_html_() and "&lt;script&gt;" in listing._repr_html_()


def test_ctrl_c_keeps_the_finished_prompts_and_resume_finishes_them_as_one_run_would():
    with pytest.raises(td.RunInterrupted) as stopped:
        td.perturb(prompts=SUITE, engine=prompt_dependent(stop_at="ba"), **SUITE_OPTIONS)
    run_id = stopped.value.run_id
    assert f"1 of 3 prompts are stored in run {run_id}; td.resume('{run_id}') measures the rest" == str(stopped.value)
    assert stopped.value.resume_hint == f"tokendice perturb --resume {run_id}"
    kept = td.load_run(run_id)
    assert [p.prompt for p in kept.prompts] == ["ab"] and td.show_run(run_id).status == "interrupted"
    ticks: list[int] = []
    resumed = td.resume(run_id, engine=prompt_dependent(), progress=lambda units, label: ticks.append(units))
    assert resumed.run_id == run_id and sum(ticks) == 200  # only the two prompts left were measured
    clean = td.perturb(prompts=SUITE, engine=prompt_dependent(), **SUITE_OPTIONS)
    assert without_timing(resumed.to_dict()) == without_timing(clean.to_dict())
    assert td.load_run(run_id).to_dict() == resumed.to_dict() and td.show_run(run_id).status == "complete"
    with pytest.raises(td.ParameterError, match="already complete"):
        td.resume(run_id, engine=prompt_dependent())


def interrupted(**options) -> str:
    with pytest.raises(td.RunInterrupted) as stopped:
        td.perturb(prompts=SUITE, engine=options.pop("engine", None) or prompt_dependent(stop_at="ba"), **{**SUITE_OPTIONS, **options})
    return stopped.value.run_id


def unchanged(run_id: str) -> bool:
    """The run is as the interruption left it: interrupted, with the first prompt only."""
    return td.show_run(run_id).status == "interrupted" and [p.prompt for p in td.load_run(run_id).prompts] == ["ab"]


@pytest.mark.parametrize(
    "given,needle",
    [
        ({"samples": 200}, "samples=200 (the run used samples=50)"),
        ({"top_p": 0.9}, "top_p=0.9 (the run used top_p=1.0)"),
        ({"seed": 0, "max_new_tokens": 3}, "seed=0 (the run used seed=3); max_new_tokens=3 (the run used max_new_tokens=2)"),
        ({"distribution": False}, "distribution=False (the run used distribution=True)"),
        ({"variants": "case.lower"}, "variants='case.lower' (the run measured punct.question, case.upper, punct.period)"),
        ({"prompts": ["ab", "ba"]}, "prompts=['ab', 'ba'] (the run used prompts=['ab', 'ba', 'aab'])"),
        ({"chat": True}, "chat=True (the run used chat=False)"),
        ({"save": False}, "save=False (a resumed run is stored in the run it continues)"),
        ({"model": "other"}, "model='other' (the run used model='fake-prompt-dependent')"),
    ],
)
def test_resume_refuses_a_differing_setting_and_changes_nothing(given, needle):
    run_id = interrupted()
    engine = prompt_dependent()
    with pytest.raises(td.ParameterError, match="a resumed run keeps the settings of run") as refused:
        td.resume(run_id, engine=engine, **given)
    assert needle in str(refused.value) and refused.value.param == next(iter(given))
    assert engine.forward_rows == 0 and unchanged(run_id)


def test_resume_accepts_settings_equal_to_the_runs():
    run_id = interrupted()
    done = td.resume(run_id, engine=prompt_dependent(), samples=50, seed=3, max_new_tokens=2, prompts=SUITE,
                     variants=["punct.question", "case.upper", "punct.period"], chat=False, save=True)
    assert len(done.prompts) == 3


def test_resume_refuses_another_engine_and_misspelt_keywords():
    run_id = interrupted()
    other = FakeEngine(["<eos>", "a"], lambda p, g: [0.0, 0.0], model_id="another")
    with pytest.raises(td.ParameterError, match="engine='fake/another' \\(the run used engine='fake/fake-prompt-dependent'\\)"):
        td.resume(run_id, engine=other)
    with pytest.raises(td.ParameterError, match="cannot be loaded by name: pass it, loaded, as engine="):
        td.resume(run_id)  # a FakeEngine run: nothing to load it from
    with pytest.raises(td.ParameterError, match="unexpected keyword 'sample'; did you mean 'samples'"):
        td.resume(run_id, engine=prompt_dependent(), sample=50)
    assert unchanged(run_id)


class PosingAsHF(FakeEngine):
    """A FakeEngine that says it is the embedded model on transformers, in bfloat16 on one thread."""

    name = "hf"

    def describe(self):  # type: ignore[no-untyped-def]
        return {"engine": "hf", "model": self.model_id, "dtype": "bfloat16", "threads": 1, "attention": "sdpa", "kv_cache": True}


def posing(stop_at: str | None = None) -> PosingAsHF:
    base = prompt_dependent(stop_at)
    return PosingAsHF(base.tokenizer.vocab, base._next_logits, eos_token_ids=(0,), model_id="smollm2-135m")


def test_resume_loads_the_runs_engine_with_its_dtype_and_threads(monkeypatch):
    run_id = interrupted(engine=posing(stop_at="ba"))
    loaded: list[td.EngineSpec] = []
    monkeypatch.setattr("tokendice.api._common._LOADED", {})
    monkeypatch.setattr("tokendice.engines.spec.EngineSpec.load", lambda spec: loaded.append(spec) or posing())
    for given, needle in [({"dtype": "float32"}, "dtype='float32' (the run used dtype='bfloat16')"), ({"threads": 2}, "threads=2 (the run used threads=1)"),
                          ({"engine": "llamacpp"}, "engine='llamacpp' (the run used engine='hf')"),
                          ({"attention": "eager"}, "attention='eager' (the run used attention='sdpa')"),
                          ({"n_ctx": 512}, "the hf engine takes no option 'n_ctx'")]:
        with pytest.raises(td.ParameterError) as refused:
            td.resume(run_id, **given)
        assert needle in str(refused.value)
    assert loaded == [] and unchanged(run_id)
    done = td.resume(run_id, trust_remote_code=False, dtype="bfloat16")  # transport-only options may be given anew
    assert loaded == [td.EngineSpec("hf", dtype="bfloat16", threads=1)]  # the defaults as a fresh call writes them
    assert len(done.prompts) == 3


def test_bad_input_fails_before_any_engine_loads(monkeypatch, tmp_path):
    def refuse(spec):  # type: ignore[no-untyped-def]
        raise AssertionError("loaded")

    monkeypatch.setattr("tokendice.engines.spec.EngineSpec.load", refuse)
    binary = tmp_path / "v.bin"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    latin = tmp_path / "v.txt"
    latin.write_bytes("caf\xe9 {p}\n".encode("latin-1"))
    cases = [
        ({"samples": "10"}, "samples must be an integer >= 2"), ({"samples": 1.5}, "samples must be an integer"),
        ({"samples": 1}, "samples must be an integer >= 2"), ({"mass": 2}, "mass must be a number in (0, 1]"),
        ({"max_nodes": 0}, "max_nodes must be an integer >= 1"), ({"distribution": "no"}, "distribution must be True or False"),
        ({"chat": "yes"}, "chat must be True or False"), ({"seed": -1}, "seed must be"), ({"top_p": 1.5}, "top_p must be"),
        ({"temprature": 0.7}, "did you mean 'temperature'"), ({"sample": 10}, "did you mean 'samples'"),
        ({"variants": 3}, "variants must be a list of names"), ({"variants": "case.shout"}, "unknown variant 'case.shout'"),
        ({"kinds": ["colour"]}, "unknown variant kind(s) colour"), ({"variants": "case.lower"}, "no variant of 'ab' is left"),
        ({"user_variants": str(binary)}, "is a binary file, not text"), ({"user_variants": str(latin)}, "is not UTF-8 text (byte 3"),
        ({"user_variants": str(tmp_path / "none.txt")}, "cannot read variants file"), ({"user_variants": [3]}, "user_variants[0] must be"),
        ({"progress": "yes"}, "progress must be"), ({"db": 3}, "db must be a path"), ({"save": "no"}, "save must be True or False"),
        ({"engine": "hf", "dtype": "x"}, "unexpected keyword 'dtype'"), ({"engine": 3}, "engine must be"),
    ]
    for kwargs, needle in cases:
        with pytest.raises(td.ParameterError) as refused:
            td.perturb("ab", **kwargs)
        assert needle in str(refused.value) and "\n" not in str(refused.value), kwargs
    for kwargs, needle in [({}, "give a prompt or prompts"), ({"prompt": ["ab"]}, "prompt must be a string"),
                           ({"prompts": []}, "prompts must be a non-empty"), ({"prompt": "ab", "prompts": ["b"]}, "one of the two"),
                           ({"prompts": ["a", "b"], "user_variants": ["literal"]}, "literal prompts")]:
        with pytest.raises(td.ParameterError) as refused:
            td.perturb(**kwargs)
        assert needle in str(refused.value), kwargs
    with pytest.raises(td.EngineError, match="needs next-token logits"):
        td.perturb("ab", engine=td.EngineSpec("openai", base_url="http://127.0.0.1:9/v1"))


def test_a_run_stored_by_an_older_tokendice_loads_and_resumes():
    with Store() as store:
        run_id = store.create_run("perturb", OLD_RUN["manifest"], "(2 prompts) ab", "fake", "fake-prompt-dependent")
        store.save_result(run_id, "report", OLD_RUN["report"])
        store.set_status(run_id, "interrupted")
    old = td.load_run(run_id)
    assert type(old) is td.PerturbReport and old.run_id == run_id and [p.prompt for p in old.prompts] == ["ab"]
    expected = {"kind": "perturb", **OLD_RUN["report"]}  # the summary recomputed alike; top completions were not kept then
    expected["prompts"] = [{**p, "top_completions": {}} for p in expected["prompts"]]
    assert without_timing(old.to_dict()) == without_timing(expected) and old.prompts[0].top_completions == {}
    resumed = td.resume(run_id, engine=prompt_dependent())
    clean = td.perturb(prompts=["ab", "ba"], engine=prompt_dependent(), variants="punct.question,case.upper", max_new_tokens=2, samples=20)
    assert resumed.prompts[0].top_completions == {} and clean.prompts[0].top_completions["texts"]  # measured before they were kept
    resumed.prompts[0].top_completions = clean.prompts[0].top_completions
    assert without_timing(resumed.to_dict()) == without_timing(clean.to_dict())
    resumed.prompts[0].top_completions = {}
    assert td.load_run(run_id).to_dict() == resumed.to_dict()


# What tokendice stored for a perturb run before results had a kind (commit 387b186; the manifest less its environment
# and package versions): prompts "ab" and "ba" on tests/experiments/test_perturb.py's prompt_dependent(), interrupted
# after "ab".
OLD_RUN = {'manifest': {'kind': 'perturb',
                        'created_by': 'tokendice 0.1.0',
                        'created_at': '2026-12-03T13:28:50+00:00',
                        'params': {'temperature': 1.0,
                                   'top_k': 0,
                                   'top_p': 1.0,
                                   'min_p': 0.0,
                                   'repetition_penalty': 1.0,
                                   'no_repeat_ngram_size': 0,
                                   'max_new_tokens': 2,
                                   'do_sample': True,
                                   'order': 'hf',
                                   'stop_at_eos': True},
                        'engine': {'engine': 'fake', 'model': 'fake-prompt-dependent', 'vocab_size': 8},
                        'perturb': {'seed': 0,
                                    'samples': 20,
                                    'mass': 0.95,
                                    'max_nodes': 300,
                                    'distribution': True,
                                    'max_rows': 256,
                                    'prompts': ['ab', 'ba'],
                                    'chat': False,
                                    'variants': [{'original': {'name': 'original',
                                                               'kind': 'original',
                                                               'prompt': 'ab',
                                                               'chat': False,
                                                               'description': 'the prompt as given'},
                                                  'variants': [{'name': 'punct.question',
                                                                'kind': 'punct',
                                                                'prompt': 'ab?',
                                                                'chat': False,
                                                                'description': 'end with a question mark'},
                                                               {'name': 'case.upper',
                                                                'kind': 'case',
                                                                'prompt': 'AB',
                                                                'chat': False,
                                                                'description': 'upper-case everything'}],
                                                  'skipped': []},
                                                 {'original': {'name': 'original',
                                                               'kind': 'original',
                                                               'prompt': 'ba',
                                                               'chat': False,
                                                               'description': 'the prompt as given'},
                                                  'variants': [{'name': 'punct.question',
                                                                'kind': 'punct',
                                                                'prompt': 'ba?',
                                                                'chat': False,
                                                                'description': 'end with a question mark'},
                                                               {'name': 'case.upper',
                                                                'kind': 'case',
                                                                'prompt': 'BA',
                                                                'chat': False,
                                                                'description': 'upper-case everything'}],
                                                  'skipped': []}]}},
           'report': {'run_id': '556decbb6c0d',
                      'engine': 'fake',
                      'model': 'fake-prompt-dependent',
                      'params': {'temperature': 1.0,
                                 'top_k': 0,
                                 'top_p': 1.0,
                                 'min_p': 0.0,
                                 'repetition_penalty': 1.0,
                                 'no_repeat_ngram_size': 0,
                                 'max_new_tokens': 2,
                                 'do_sample': True,
                                 'order': 'hf',
                                 'stop_at_eos': True},
                      'settings': {'seed': 0, 'samples': 20, 'mass': 0.95, 'max_nodes': 300, 'distribution': True, 'max_rows': 256},
                      'seconds': 0.03870869999991555,
                      'summary': {'prompts': 1,
                                  'posix': 0.3176535088568926,
                                  'posix_per_prompt': [0.3176535088568926],
                                  'most_disruptive_kind': 'punct',
                                  'by_kind': [{'kind': 'punct',
                                               'n': 1,
                                               'mean_tv': 0.5200000719108419,
                                               'mean_js_model': 0.08630462611765836,
                                               'mean_js_sampling': 0.08630462611765836,
                                               'top1_change_rate': 1.0,
                                               'greedy_change_rate': 1.0,
                                               'mean_orig_top1_model_prob': 0.19999999462213913,
                                               'mean_orig_response_delta': -0.34657367691397667},
                                              {'kind': 'case',
                                               'n': 1,
                                               'mean_tv': 0.1500000333455606,
                                               'mean_js_model': 0.011321420382196364,
                                               'mean_js_sampling': 0.011321420382196364,
                                               'top1_change_rate': 1.0,
                                               'greedy_change_rate': 1.0,
                                               'mean_orig_top1_model_prob': 0.44999999413806707,
                                               'mean_orig_response_delta': -0.14384105801582336}],
                                  'by_variant': [{'variant': 'punct.question',
                                                  'n': 1,
                                                  'mean_tv': 0.5200000719108419,
                                                  'mean_js_model': 0.08630462611765836,
                                                  'mean_js_sampling': 0.08630462611765836,
                                                  'top1_change_rate': 1.0,
                                                  'greedy_change_rate': 1.0,
                                                  'mean_orig_top1_model_prob': 0.19999999462213913,
                                                  'mean_orig_response_delta': -0.34657367691397667},
                                                 {'variant': 'case.upper',
                                                  'n': 1,
                                                  'mean_tv': 0.1500000333455606,
                                                  'mean_js_model': 0.011321420382196364,
                                                  'mean_js_sampling': 0.011321420382196364,
                                                  'top1_change_rate': 1.0,
                                                  'greedy_change_rate': 1.0,
                                                  'mean_orig_top1_model_prob': 0.44999999413806707,
                                                  'mean_orig_response_delta': -0.14384105801582336}],
                                  'note': 'ranked by mean TV (completion distribution), then mean first-step JS divergence (model)'},
                      'prompts': [{'prompt': 'ab',
                                   'chat': False,
                                   'original': {'prompt_tokens': 2,
                                                'top1': {'id': 1,
                                                         'text': 'a',
                                                         'model_prob': 0.600000004303064,
                                                         'sampling_prob': 0.600000004303064},
                                                'greedy_tokens': [1, 0],
                                                'greedy_text': 'a<eos>'},
                                   'variants': [{'variant': {'name': 'punct.question',
                                                             'kind': 'punct',
                                                             'prompt': 'ab?',
                                                             'chat': False,
                                                             'description': 'end with a question mark'},
                                                 'prompt_tokens': 3,
                                                 'top1': {'id': 2, 'text': 'b', 'model_prob': 0.800000005377861},
                                                 'js_model': 0.08630462611765836,
                                                 'js_sampling': 0.08630462611765836,
                                                 'top1_changed': True,
                                                 'orig_top1_model_prob': 0.19999999462213913,
                                                 'orig_top1_sampling_prob': 0.19999999462213913,
                                                 'greedy_tokens': [2, 0],
                                                 'greedy_text': 'b<eos>',
                                                 'greedy_same': False,
                                                 'greedy_divergence': 0,
                                                 'orig_response_delta': -0.34657367691397667,
                                                 'tv': {'value': 0.5200000719108419,
                                                        'low': 0.5200000719108419,
                                                        'high': 0.5200000719108419,
                                                        'method': 'exact',
                                                        'n': 4},
                                                 'rank': 1},
                                                {'variant': {'name': 'case.upper',
                                                             'kind': 'case',
                                                             'prompt': 'AB',
                                                             'chat': False,
                                                             'description': 'upper-case everything'},
                                                 'prompt_tokens': 2,
                                                 'top1': {'id': 2, 'text': 'b', 'model_prob': 0.5500000058619329},
                                                 'js_model': 0.011321420382196364,
                                                 'js_sampling': 0.011321420382196364,
                                                 'top1_changed': True,
                                                 'orig_top1_model_prob': 0.44999999413806707,
                                                 'orig_top1_sampling_prob': 0.44999999413806707,
                                                 'greedy_tokens': [2, 0],
                                                 'greedy_text': 'b<eos>',
                                                 'greedy_same': False,
                                                 'greedy_divergence': 0,
                                                 'orig_response_delta': -0.14384105801582336,
                                                 'tv': {'value': 0.1500000333455606,
                                                        'low': 0.1500000333455606,
                                                        'high': 0.1500000333455606,
                                                        'method': 'exact',
                                                        'n': 4},
                                                 'rank': 2}],
                                   'skipped': [],
                                   'posix': {'psi': 0.3176535088568926,
                                             'names': ['original', 'punct.question', 'case.upper'],
                                             'loglik': [[-1.0216511487960815, -1.272965669631958, -1.272965669631958],
                                                        [-1.7147985026240349, -0.2231435477733612, -0.2231435477733612],
                                                        [-1.3093332648277283, -0.9545119404792786, -0.9545119404792786]],
                                             'response_lengths': [2, 2, 2],
                                             'responses': ['a<eos>', 'b<eos>', 'b<eos>'],
                                             'note': 'loglik[i][j] = log P(greedy response of j | prompt i), model distribution, '
                                                     'natural log'},
                                   'distribution': {'samples': 20,
                                                    'distinct': 4,
                                                    'seed': 0,
                                                    'good_turing_unseen': 0.05,
                                                    'target_mass': 0.95,
                                                    'enumeration': {'found_mass': 1.0,
                                                                    'expanded': 3,
                                                                    'stopped_because': 'explored every prefix above min_prob'},
                                                    'method': 'exact',
                                                    'completions': 4,
                                                    'scored_mass': 1.0000000589847988},
                                   'seconds': {'first': 0.006, 'posix': 0.001, 'sample': 0.013, 'enumerate': 0.016, 'score': 0.002}}]}}
