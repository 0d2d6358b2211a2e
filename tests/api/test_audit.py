"""td.audit and td.agreement through the public API, on the FakeEngine: exact values, what the CLI
prints, storage and loading back, the views, and inputs checked before any model loads."""

from __future__ import annotations

import json
import os

import pytest

import tokendice as td
from tokendice.engines.fake import FakeEngine
from tokendice.errors import BusyMachineWarning

SCRIPT = "<script>alert(1)</script>"
VOCAB = ["<eos>", "x", "a", "b", "c", "d", SCRIPT]


def next_logits(prompt, generated):
    """a, b, then a near-tie c (+0.001) vs d, then x, then end."""
    logits = [-10.0] * len(VOCAB)
    logits[[2, 3, 4, 1, 0, 0, 0][min(len(generated), 6)]] = 0.0
    if len(generated) == 2:
        logits[5] = -0.001
    return logits


def noisy() -> FakeEngine:
    """Batches of 2 or more raise "d" by 0.01: the tie at step 2 flips."""
    return FakeEngine(VOCAB, next_logits, noise=lambda batch, seq: [0, 0, 0, 0, 0, 0.01, 0] if batch > 1 else None)


@pytest.fixture(autouse=True)
def quiet_machine(monkeypatch):
    """Idle cores: no busy-machine warning, whatever the load where the tests run."""
    monkeypatch.setattr("os.getloadavg", lambda: (0.0, 0.0, 0.0))


def untimed(data: dict) -> dict:
    """A report's dict without what depends on the clock (and the run id)."""
    out = {k: v for k, v in data.items() if k not in ("wall_seconds", "run_id")}
    if "conditions" in out:
        out["conditions"] = [{k: v for k, v in c.items() if k != "seconds"} for c in out["conditions"]]
    return out


def test_exact_verdicts_margins_and_recipe():
    report = td.audit("x", engine=noisy(), repeats=2, conditions="batch,threads", batch_sizes=[1, 2], do_sample=False,
                      max_new_tokens=6, save=False)
    assert isinstance(report, td.AuditReport) and report.run_id is None
    assert [(c.label, c.status, c.n_identical, c.first_divergence) for c in report.conditions] == [
        ("baseline", "ran", 2, None), ("batch 2", "ran", 0, 2), ("1 thread", "ran", 2, None),
    ]
    batch = report.condition("batch 2")
    assert batch.verdict == "DIVERGES at step 2 (margin 0.001)"
    assert batch.margin == pytest.approx(0.001, abs=1e-6) and batch.condition_margin == pytest.approx(0.009, abs=1e-6)
    assert batch.outputs == ["abdx<eos>"] and batch.sample_ids == [2, 3]
    assert report.baseline["text"] == "abcx<eos>" and report.baseline["token_texts"] == ["a", "b", "c", "x", "<eos>"]
    assert report.summary == {
        "baseline_reproducible": True, "changes_output": ["batch 2"], "drift_only": [], "identical": ["baseline", "1 thread"],
        "not_tested": {}, "recipe": report.recipe,
    }
    assert report.recipe.startswith("greedy, batch 1, any thread count (")


def test_agreement_exact_tarr_and_tara():
    report = td.agreement(["x", "xx", "xxx"], engine=noisy(), repeats=3, batch_size=2, answer_regex="^(ab)",
                          do_sample=False, max_new_tokens=6, save=False)
    assert isinstance(report, td.AgreementReport)
    assert (report.tarr, report.tara, report.batch_size) == (0.0, 1.0, 2)
    assert [(p.unique_outputs, p.unique_answers, p.first_divergence) for p in report.prompts] == [(2, 1, 2)] * 3


def test_save_false_writes_nothing():
    td.audit("x", engine=noisy(), repeats=1, conditions="baseline", do_sample=False, save=False)
    td.agreement(["x"], engine=noisy(), repeats=1, do_sample=False, save=False)
    assert not os.path.exists(os.environ["TOKENDICE_DB"])


def test_stored_and_read_back_as_the_same_class():
    report = td.audit("x", engine=noisy(), repeats=2, conditions="batch", batch_sizes=(1, 2), do_sample=False, max_new_tokens=6)
    again = td.load_run(report.run_id)
    assert type(again) is td.AuditReport and again.run_id == report.run_id
    assert untimed(again.to_dict()) == untimed(report.to_dict())
    agreement = td.agreement(["x", "xx"], engine=noisy(), repeats=2, batch_size=2, do_sample=False, max_new_tokens=6)
    back = td.load_run(agreement.run_id)
    assert type(back) is td.AgreementReport and untimed(back.to_dict()) == untimed(agreement.to_dict())


def test_runs_stored_by_the_previous_version_load():
    """The previous version stored both kinds as runs of kind 'audit' with their report's dict
    ('kind' last; the prompt set's 'audit-prompts'; the thread count flagged 'all_threads')."""
    from tokendice.store import Store

    with Store() as store:
        ids = []
        for mode, data in (("conditions", OLD_REPORTS["audit"]), ("prompts", OLD_REPORTS["prompts"])):
            run = store.create_run("audit", {"mode": mode}, "x", "fake", "fake")
            store.save_result(run, "report", data)
            store.set_status(run, "complete")
            ids.append(run)
    first, second = td.load_run(ids[0]), td.load_run(ids[1])
    assert type(first) is td.AuditReport and first.run_id == ids[0]
    assert first.changes_output == ["batch 2"] and first.condition("batch 2").margin == pytest.approx(0.001, abs=1e-6)
    assert type(second) is td.AgreementReport and second.prompts[1].outputs == ["abdx<eos>"] and second.tara == 1.0
    assert "2 threads (torch's default)" in _printed(first) and "TARa@2 = 1.000" in _printed(second)


def _printed(result) -> str:
    from rich.console import Console

    from tokendice.render.terminal import print_result

    console = Console(record=True, width=200)
    print_result(result, console)
    return console.export_text()


def test_to_dict_is_what_the_cli_prints(serve_engine, capsys):
    from tokendice.cli import main

    engine = serve_engine(noisy())
    assert main(["audit", "x", "--greedy", "--max-new-tokens", "6", "--repeats", "2", "--conditions", "batch,threads",
                 "--batch-sizes", "1,2", "--seed", "3", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    live = td.audit("x", engine=engine, repeats=2, conditions="batch,threads", batch_sizes=(1, 2), seed=3,
                    do_sample=False, max_new_tokens=6)
    assert printed["kind"] == "audit" and list(printed)[0] == "kind"
    assert untimed(printed) == untimed(live.to_dict())
    assert td.load_run(printed["run_id"]).to_dict() == printed


def test_agreement_to_dict_is_what_the_cli_prints(serve_engine, capsys, tmp_path):
    from tokendice.cli import main

    engine = serve_engine(noisy())
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("x\nxx\nxxx\n")
    assert main(["audit", "--prompts", str(prompts), "--repeats", "3", "--batch-size", "2", "--answer-regex", "^(ab)",
                 "--greedy", "--max-new-tokens", "6", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    live = td.agreement(["x", "xx", "xxx"], engine=engine, repeats=3, batch_size=2, answer_regex="^(ab)",
                        do_sample=False, max_new_tokens=6)
    assert printed["kind"] == "audit_prompts" and printed["tarr_at_3"] == 0.0 and printed["tara_at_3"] == 1.0
    assert untimed(printed) == untimed(live.to_dict())
    assert td.load_run(printed["run_id"]).to_dict() == printed


def test_dataframes_views_and_repr():
    report = td.audit(SCRIPT, engine=noisy(), repeats=1, conditions="batch", batch_sizes=(1, 2), do_sample=False, save=False)
    df = report.to_dataframe()
    assert list(df.columns) == list(td.AuditReport.COLUMNS) == [
        "group", "label", "status", "verdict", "repeats", "n_identical", "unique_outputs", "tarr", "first_divergence",
        "margin", "max_logprob_diff", "seconds",
    ]
    assert list(df["label"]) == ["baseline", "batch 2"] and list(df["first_divergence"].fillna(-1)) == [-1, 2]
    agreement = td.agreement([SCRIPT, "x"], engine=noisy(), repeats=2, do_sample=False, save=False)
    frame = agreement.to_dataframe()
    assert list(frame.columns) == list(td.AgreementReport.COLUMNS) == [
        "index", "prompt", "unique_outputs", "unique_answers", "first_divergence", "agree", "answers_agree", "outputs", "answers",
    ]
    assert list(frame["prompt"]) == [SCRIPT, "x"] and list(frame["agree"]) == [True, True]
    for result in (report, agreement):
        html = result._repr_html_()
        assert "<script>" not in html and "&lt;script&gt;" in html
        text = repr(result)
        assert text.count("\n") == 0 and len(text) < 250 and type(result).__name__ in text
    assert "changes the output: batch 2" in repr(report) and "TARr@2 1.000" in repr(agreement)


def test_progress_counts_every_run_and_names_it():
    seen: list = []
    td.audit("x", engine=noisy(), repeats=2, conditions="batch", batch_sizes=(1, 2), do_sample=False, save=False,
             progress=lambda units, label: seen.append((units, label)))
    assert sum(units for units, _ in seen) == 4 and (0, "batch 2 (2/2)") in seen
    seen.clear()
    td.agreement(["x", "xx", "xxx"], engine=noisy(), repeats=2, batch_size=2, do_sample=False, save=False,
                 progress=lambda units, label: seen.append((units, label)))
    assert sum(units for units, _ in seen) == 2 * 2 and (0, "repeat 2/2") in seen  # 2 batches per repeat


def test_a_busy_machine_warns_before_the_runs_and_the_note_is_kept(monkeypatch):
    monkeypatch.setattr("os.getloadavg", lambda: (9.0, 9.0, 9.0))
    monkeypatch.setattr("os.cpu_count", lambda: 2)

    class Threaded(FakeEngine):
        threads = 2  # owns its thread count, as the transformers engine does

    with pytest.warns(BusyMachineWarning, match="busy .* 2 threads will be slow"):
        report = td.audit("x", engine=Threaded(VOCAB, next_logits), repeats=1, conditions="baseline", do_sample=False, save=False)
    assert len(report.notes) == 1 and report.notes[0].startswith("this machine is busy")
    with pytest.warns(BusyMachineWarning):
        agreement = td.agreement(["x"], engine=Threaded(VOCAB, next_logits), repeats=1, do_sample=False, save=False)
    assert agreement.notes == report.notes


def test_a_single_thread_gets_no_note(monkeypatch, recwarn):
    monkeypatch.setattr("os.getloadavg", lambda: (9.0, 9.0, 9.0))

    class Threaded(FakeEngine):
        threads = 1

    report = td.audit("x", engine=Threaded(VOCAB, next_logits), repeats=1, conditions="baseline", do_sample=False, save=False)
    assert report.notes == [] and not [w for w in recwarn if w.category is BusyMachineWarning]


@pytest.mark.parametrize(
    "call,kwargs,needle,param",
    [
        ("audit", {"repeats": "5"}, "repeats must be an integer >= 1, got '5'", "repeats"),
        ("audit", {"repeats": 0}, "repeats must be", "repeats"),
        ("audit", {"repeats": 2.0}, "repeats must be", "repeats"),
        ("audit", {"conditions": "batch,colour"}, "conditions must be among", "conditions"),
        ("audit", {"conditions": "bach"}, "did you mean 'batch'", "conditions"),
        ("audit", {"batch_sizes": (1, 0)}, "batch_sizes must be", "batch_sizes"),
        ("audit", {"batch_sizes": "1,2"}, "batch_sizes must be", "batch_sizes"),
        ("audit", {"temprature": 0.7}, "did you mean 'temperature'", "temprature"),
        ("audit", {"repeat": 3}, "did you mean 'repeats'", "repeat"),
        ("audit", {"dtype": "bfloat16"}, "EngineSpec", "dtype"),
        ("audit", {"seed": -1}, "seed must be", "seed"),
        ("audit", {"rng": "global"}, "rng must be", "rng"),
        ("audit", {"deterministic": "yes"}, "deterministic must be True or False", "deterministic"),
        ("audit", {"others": ["llamacpp"]}, "others must be a list of EngineSpecs", "others"),
        ("audit", {"conditions": "batch", "others": [td.EngineSpec("openai", base_url="http://127.0.0.1:9/v1")]},
         "add 'engines'", "others"),
        ("audit", {"progress": "yes"}, "progress must be", "progress"),
        ("audit", {"engine": td.EngineSpec("openai", base_url="http://127.0.0.1:9/v1")}, "white-box", "engine"),
        ("audit", {"max_new_tokens": "5"}, "max_new_tokens", "max_new_tokens"),
        ("agreement", {"repeats": "5"}, "repeats must be", "repeats"),
        ("agreement", {"batch_size": 0}, "batch_size must be", "batch_size"),
        ("agreement", {"answer_regex": "("}, "not a valid regular expression", "answer_regex"),
        ("agreement", {"answer_regex": 3}, "answer_regex must be a string", "answer_regex"),
        ("agreement", {"temprature": 0.7}, "did you mean 'temperature'", "temprature"),
    ],
)
def test_bad_input_fails_before_any_engine_loads(monkeypatch, call, kwargs, needle, param):
    def refuse(spec):  # type: ignore[no-untyped-def]
        raise AssertionError("loaded")

    monkeypatch.setattr("tokendice.engines.spec.EngineSpec.load", refuse)
    first = "x" if call == "audit" else ["x", "xx"]
    with pytest.raises(td.ParameterError, match=needle) as caught:
        getattr(td, call)(first, **kwargs)
    assert caught.value.param == param


def test_bad_prompts_fail_before_any_engine_loads(monkeypatch):
    monkeypatch.setattr("tokendice.engines.spec.EngineSpec.load", lambda spec: (_ for _ in ()).throw(AssertionError("loaded")))
    with pytest.raises(td.ParameterError, match="prompt must be a non-empty string"):
        td.audit("  ")
    with pytest.raises(td.ParameterError, match="prompts"):
        td.agreement([])
    with pytest.raises(td.ParameterError, match=r"prompts\[1\]"):
        td.agreement(["x", ""])


# What version 0.1.0 (commit 387b186) stored for an audit and a prompt set on a FakeEngine.
OLD_REPORTS = json.loads(
    '{"audit":{"prompt":"x","prompt_ids":[1],"engine":"fake","model":"fake","params":{"temperature":1.0,"top_k":0,"top_p"'
    ':1.0,"min_p":0.0,"repetition_penalty":1.0,"no_repeat_ngram_size":0,"max_new_tokens":6,"do_sample":false,"order":"hf"'
    ',"stop_at_eos":true},"seed":0,"rng":"per-sample","repeats":1,"deterministic":false,"baseline":{"setup":{"engine":"fa'
    'ke","dtype":"float32","attention":"sdpa","kv_cache":true,"threads":2,"batch_size":1,"deterministic":false,"all_threa'
    'ds":true},"engine":{"engine":"fake","model":"fake","vocab_size":6},"text":"abcx<eos>","tokens":[2,3,4,1,0],"token_te'
    'xts":["a","b","c","x","<eos>"],"model_logprobs":[-0.0002269738882905191,-0.0002269738882905191,-0.6927381466694756,-'
    '0.0002269738882905191,-0.0002269738882905191],"finish_reason":"eos"},"conditions":[{"group":"baseline","label":"base'
    'line","status":"ran","verdict":"identical","setup":{"engine":"fake","dtype":"float32","attention":"sdpa","kv_cache":'
    'true,"threads":2,"batch_size":1,"deterministic":false,"all_threads":true},"engine":{"engine":"fake","model":"fake","'
    'vocab_size":6},"repeats":1,"n_identical":1,"unique_outputs":1,"tarr":1.0,"first_divergence":null,"divergent_repeats"'
    ':0,"divergent_repeat":null,"baseline_token":null,"condition_token":null,"margin":null,"condition_margin":null,"max_l'
    'ogprob_diff":0.0,"max_logprob_diff_forced":null,"outputs":["abcx<eos>"],"sample_ids":[0],"seconds":0.003321010999570'
    '717,"notes":[]},{"group":"batch","label":"batch 2","status":"ran","verdict":"DIVERGES at step 2 (margin 0.001)","set'
    'up":{"engine":"fake","dtype":"float32","attention":"sdpa","kv_cache":true,"threads":2,"batch_size":2,"deterministic"'
    ':false,"all_threads":true},"engine":{"engine":"fake","model":"fake","vocab_size":6},"repeats":1,"n_identical":0,"uni'
    'que_outputs":1,"tarr":1.0,"first_divergence":2,"divergent_repeats":1,"divergent_repeat":0,"baseline_token":"c","cond'
    'ition_token":"d","margin":0.0010000000474974513,"condition_margin":0.008999999612569809,"max_logprob_diff":0.0050095'
    '45839599894,"max_logprob_diff_forced":0.005009545839599894,"outputs":["abdx<eos>"],"sample_ids":[1],"seconds":0.0020'
    '996429993829224,"notes":[]},{"group":"dtype","label":"dtype","status":"not applicable","verdict":"not applicable for'
    ' engine fake","setup":null,"engine":null,"repeats":0,"n_identical":0,"unique_outputs":0,"tarr":null,"first_divergenc'
    'e":null,"divergent_repeats":0,"divergent_repeat":null,"baseline_token":null,"condition_token":null,"margin":null,"co'
    'ndition_margin":null,"max_logprob_diff":null,"max_logprob_diff_forced":null,"outputs":[],"sample_ids":[],"seconds":0'
    '.0,"notes":[]}],"summary":{"baseline_reproducible":true,"changes_output":["batch '
    '2"],"drift_only":[],"identical":["baseline"],"not_tested":{"dtype":"not applicable for engine '
    'fake"},"recipe":"greedy, batch 1"},"wall_seconds":1.9052968960004364,"run_id":null,"kind":"audit"},"prompts":{"engin'
    'e":"fake","model":"fake","params":{"temperature":1.0,"top_k":0,"top_p":1.0,"min_p":0.0,"repetition_penalty":1.0,"no_'
    'repeat_ngram_size":0,"max_new_tokens":6,"do_sample":false,"order":"hf","stop_at_eos":true},"seed":0,"rng":"per-sampl'
    'e","repeats":2,"batch_size":2,"setup":{"engine":"fake","dtype":"float32","attention":"sdpa","kv_cache":true,"threads'
    '":2,"batch_size":2,"deterministic":false,"all_threads":true,"engine_description":{"engine":"fake","model":"fake","vo'
    'cab_size":6}},"answer_regex":"^(ab)","tarr":1.0,"tara":1.0,"prompts":[{"index":0,"prompt":"x","unique_outputs":1,"un'
    'ique_answers":1,"first_divergence":null,"outputs":["abdx<eos>"],"answers":["ab"]},{"index":1,"prompt":"xx","unique_o'
    'utputs":1,"unique_answers":1,"first_divergence":null,"outputs":["abdx<eos>"],"answers":["ab"]}],"wall_seconds":0.006'
    '94040500002302,"run_id":null,"kind":"audit-prompts","tarr_at_2":1.0,"tara_at_2":1.0}}'
)
