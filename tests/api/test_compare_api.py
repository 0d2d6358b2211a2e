"""td.compare's contract: one result class, the CLI's --json, storage, the views, strict inputs."""

from __future__ import annotations

import json
import math
import os

import pytest

import tokendice as td
from tokendice.cli import main
from tokendice.engines.fake import FakeEngine

VOCAB = ["<eos>", "a", "b", "<script>alert(1)</script>"]
P = [0.2, 0.5, 0.3, 0.0]
Q = [0.1, 0.6, 0.3, 0.0]
TOL = 1e-6
COMPARE_COLUMNS = ["a", "b", "step", "token", "logprob_a", "logprob_b", "kl_ab", "kl_ba", "js", "top1_a", "top1_b",
                   "top1_agree", "max_logprob_diff"]  # fmt: skip


def constant(probs: list[float], model_id: str) -> FakeEngine:
    return FakeEngine(VOCAB, lambda prompt, generated: [math.log(p) if p > 0 else -math.inf for p in probs], model_id=model_id)


@pytest.fixture
def fakes():  # type: ignore[no-untyped-def]
    return {"hf": constant(P, "A"), "llamacpp": constant(Q, "B")}


@pytest.fixture
def served(fakes, monkeypatch):  # type: ignore[no-untyped-def]
    """Every EngineSpec loads the FakeEngine of its engine name; the specs loaded are listed."""
    import tokendice.api._common as common

    loaded: list[td.EngineSpec] = []

    def load(self):  # type: ignore[no-untyped-def]
        loaded.append(self)
        return fakes[self.engine]

    monkeypatch.setattr(common, "_LOADED", {})
    monkeypatch.setattr("tokendice.engines.spec.EngineSpec.load", load)
    monkeypatch.setattr(common, "preflight", lambda *args: None)  # it would read the real model's tokenizer
    return loaded


def without_run_id(data: dict) -> dict:  # type: ignore[type-arg]
    return {k: v for k, v in data.items() if k != "run_id"}


def test_to_dict_is_what_the_cli_prints(fakes, served, capsys) -> None:  # type: ignore[no-untyped-def]
    args = ["compare", "a", "--engine", "hf", "--engine", "llamacpp", "--max-new-tokens", "2", "--completion-tokens", "1",
            "--top", "2", "--temperature", "0.5"]  # fmt: skip
    assert main([*args, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    live = td.compare("a", engines=[fakes["hf"], fakes["llamacpp"]], max_new_tokens=2, completion_tokens=1, top=2, temperature=0.5)
    assert printed["kind"] == "compare" and without_run_id(printed) == without_run_id(live.to_dict())
    assert td.load_run(printed["run_id"]).to_dict() == printed
    # 1-token completions at temperature 0.5: p ∝ P², q ∝ Q²: (.04, .25, .09)/.38 vs (.01, .36, .09)/.46
    p2, q2 = [x * x / 0.38 for x in (0.2, 0.5, 0.3)], [x * x / 0.46 for x in (0.1, 0.6, 0.3)]
    assert printed["pairs"][0]["completions"]["tv"] == pytest.approx(sum(abs(x - y) for x, y in zip(p2, q2)) / 2, abs=TOL)

    assert main(args) == 0  # the table, drawn by the renderer registered for "compare"
    out = capsys.readouterr().out
    assert "KL(A‖B)" in out and "summary fake:A vs fake:B" in out and "top-1 agreement 1.000 (2/2)" in out
    assert "total variation distance" in out and "(exact)" in out and "stored as run " in out


def test_cli_gives_each_engine_the_options_it_takes(served, capsys) -> None:  # type: ignore[no-untyped-def]
    args = ["compare", "a", "--engine", "hf", "--engine", "llamacpp", "--dtype", "bfloat16", "--threads", "1",
            "--no-completions", "--json"]  # fmt: skip
    assert main(args) == 0
    assert served == [td.EngineSpec("hf", dtype="bfloat16", threads=1), td.EngineSpec("llamacpp", threads=1)]
    served.clear()
    assert main(["compare", "a", "--model", "m1", "--model", "m2", "--dtype", "float16", "--no-completions", "--json"]) == 0
    assert served == [td.EngineSpec("hf", "m1", dtype="float16"), td.EngineSpec("hf", "m2", dtype="float16")]
    capsys.readouterr()
    assert main(["compare", "a", "--engine", "llamacpp", "--engine", "llamacpp", "--dtype", "float16"]) == 2
    assert "the llamacpp engine takes no option --dtype" in capsys.readouterr().err


def test_dataframe_repr_and_html(fakes) -> None:  # type: ignore[no-untyped-def]
    prompt = "<script>alert(1)</script>"
    report = td.compare(prompt, engines=[fakes["hf"], fakes["llamacpp"]], max_new_tokens=2, completion_tokens=1, save=False)
    df = report.to_dataframe()
    assert list(df.columns) == COMPARE_COLUMNS == list(td.CompareReport.COLUMNS) and len(df) == 2
    assert df["js"].tolist() == pytest.approx([0.0107708] * 2, abs=TOL)
    html = report._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;" in html
    text = repr(report)
    assert text.count("\n") == 0 and len(text) < 200
    assert text.startswith("<CompareReport: ") and "fake:A vs fake:B: mean JS 0.01077, TV 0.1000" in text


def test_stored_report_reads_back_equal_and_old_reports_load(fakes) -> None:  # type: ignore[no-untyped-def]
    report = td.compare("a", engines=[fakes["hf"], fakes["llamacpp"]], max_new_tokens=2, completion_tokens=1)
    again = td.load_run(report.run_id)
    assert type(again) is td.CompareReport and again.to_dict() == report.to_dict() and again.run_id == report.run_id
    assert again.to_dataframe().equals(report.to_dataframe())

    from tokendice.store import Store

    old = {k: v for k, v in report.to_dict().items() if k not in ("kind", "distributions")}  # as stored before results had a kind
    for pair in old["pairs"]:
        del pair["summary"]
    with Store() as store:
        run_id = store.create_run("compare", {"params": old["params"]}, "a", "fake", "A,B")
        store.save_result(run_id, "report", old)
        store.set_status(run_id, "complete")
    loaded = td.load_run(run_id)
    assert without_run_id(loaded.to_dict()) == without_run_id(report.to_dict()) and loaded.run_id == run_id


def test_save_false_writes_nothing_and_progress_is_reported(fakes) -> None:  # type: ignore[no-untyped-def]
    heard: list[tuple[int, str]] = []
    report = td.compare("a", engines=[fakes["hf"], fakes["llamacpp"]], max_new_tokens=3, completion_tokens=1, max_nodes=4,
                        save=False, progress=lambda units, label: heard.append((units, label)))  # fmt: skip
    assert report.run_id is None and not os.path.exists(os.environ["TOKENDICE_DB"])
    # greedy continuation 3 + teacher forcing 2 x 3 + enumerations 2 x 4 (each one expansion, then the rest of its budget)
    assert sum(units for units, _ in heard) == 3 + 2 * 3 + 2 * 4
    assert [label for units, label in heard if units == 0] == [
        "greedy continuation of fake:A", "teacher forcing fake:A", "teacher forcing fake:B", "completions of fake:A", "completions of fake:B"
    ]


def test_models_pair_with_an_engine_spec(served) -> None:  # type: ignore[no-untyped-def]
    td.compare("a", engines=[td.EngineSpec("hf", dtype="bfloat16")], models=["m1", "m2"], completions=False, save=False)
    assert served == [td.EngineSpec("hf", "m1", dtype="bfloat16"), td.EngineSpec("hf", "m2", dtype="bfloat16")]


@pytest.mark.parametrize(
    "kwargs,error,needle",
    [
        ({"completion_token": 1}, td.ParameterError, "unexpected keyword 'completion_token'; did you mean 'completion_tokens'?"),
        ({"temprature": 0.5}, td.ParameterError, "did you mean 'temperature'?"),
        ({"top": "10"}, td.ParameterError, "top must be an integer"),
        ({"completion_tokens": 0}, td.ParameterError, "completion_tokens must be an integer >= 1"),
        ({"max_nodes": 1.5}, td.ParameterError, "max_nodes must be an integer"),
        ({"mass": 0}, td.ParameterError, "mass must be a number in (0, 1]"),
        ({"completions": "no"}, td.ParameterError, "completions must be True or False"),
        ({"continuation": ""}, td.ParameterError, "continuation must be a non-empty string"),
        ({"save": "yes"}, td.ParameterError, "save must be True or False"),
        ({"engines": "hf"}, td.ParameterError, "engines must be a list"),
        ({"engines": ["hf"]}, td.ParameterError, "needs two models or two engines"),
        ({"engines": ["hf", "hff"]}, td.ParameterError, "did you mean 'hf'?"),
        ({"engines": ["hf", "llamacpp"], "models": ["a", "b", "c"]}, td.ParameterError, "as many engines as models"),
        ({"engines": [td.EngineSpec("hf", "x"), "hf"], "models": ["a", "b"]}, td.ParameterError, "already names its model"),
        ({"engines": ["hf", "openai"]}, td.EngineError, "the openai engine (a server) reports at most 20 logprobs"),
        ({"engines": ["hf", td.EngineSpec("openai", base_url="http://127.0.0.1:1/v1")]}, td.EngineError, "reports at most 20 logprobs"),
        ({"engines": ["hf", "hf"], "progress": "yes"}, td.ParameterError, "progress must be"),
    ],
)
def test_bad_input_fails_before_any_engine_loads(kwargs, error, needle, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def refuse(self):  # type: ignore[no-untyped-def]
        raise AssertionError("loaded")

    monkeypatch.setattr("tokendice.engines.spec.EngineSpec.load", refuse)
    kwargs = {"engines": ["hf", "llamacpp"], **kwargs}
    with pytest.raises(error) as caught:
        td.compare("a", **kwargs)
    assert needle in str(caught.value)


@pytest.mark.parametrize(
    "args,needle",
    [
        (["compare", "hi"], "needs two models or two engines"),
        (["compare", "hi", "--engine", "hf", "--engine", "openai"], "the openai engine (a server) reports at most 20 logprobs"),
        (["compare", "hi", "--engine", "hf", "--engine", "hf", "--completion-tokens", "0"], "--completion-tokens must be an integer >= 1"),
        (["compare", "", "--engine", "hf", "--engine", "llamacpp"], "prompt must be a non-empty string"),
        (["compare", "hi", "--engine", "hf", "--engine", "hf", "--seed", "3"], "--seed does not apply to compare"),
        (["compare", "hi", "--engine", "hf", "--engine", "hf", "--top-p", "2"], "--top-p"),
    ],
)
def test_cli_errors_are_one_line(args, needle, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr("tokendice.engines.spec.EngineSpec.load", lambda self: pytest.fail("loaded"))
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err
