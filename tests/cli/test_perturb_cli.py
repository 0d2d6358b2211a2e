"""tokendice perturb through the CLI: a FakeEngine stands in for the model (served for every EngineSpec),
except in the one end-to-end model test."""

from __future__ import annotations

import json
import sys

import pytest

import tokendice as td
from tests.api.test_perturb import posing, without_timing
from tests.experiments.test_perturb import prompt_dependent
from tokendice.cli import main
from tokendice.store import Store

QUICK = ["--max-new-tokens", "2"]
SUITE_ARGS = ["--variants-only", "punct.question,case.upper,punct.period", "--samples", "50", "--seed", "3", *QUICK]


@pytest.fixture()
def serve(serve_engine, monkeypatch):
    """`serve(engine)`: the CLI runs on `engine` (the context-length check before loading is skipped:
    it would read the embedded model's tokenizer)."""
    monkeypatch.setattr(sys.modules["tokendice.api._perturb"], "preflight", lambda *args, **kwargs: None)
    return serve_engine


@pytest.fixture()
def fake(serve):
    return serve(posing())


def test_list_shows_variants_and_skips_without_a_model(capsys, monkeypatch):
    monkeypatch.setattr("tokendice.engines.spec.EngineSpec.load", lambda spec: pytest.fail("a model was loaded"))
    assert main(["perturb", "The end.", "--list"]) == 0
    out = capsys.readouterr().out
    assert "case.upper" in out and '"THE END."' in out and "punct.period" in out and "skipped: same as the original" in out
    assert main(["perturb", "The end.", "--list", "--json", "--variants-only", "case.lower+punct.question,template.chat"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["kind"] == "variants" and len(data["prompts"]) == 1
    assert [(v["name"], v["prompt"], v["chat"]) for v in data["prompts"][0]["variants"]] == [
        ("case.lower+punct.question", "the end?", False), ("template.chat", "The end.", True)]


def test_json_report_is_ranked_and_stored_as_a_perturb_run(fake, capsys, tmp_path):
    db = str(tmp_path / "p.db")
    assert main(["perturb", "ab", "--variants-only", "punct.question,case.upper,punct.period,case.lower", "--json", "--db", db, *QUICK]) == 0
    data = json.loads(capsys.readouterr().out)
    prompt = data["prompts"][0]
    assert [v["variant"]["name"] for v in prompt["variants"]] == ["punct.question", "case.upper", "punct.period"]
    assert prompt["variants"][0]["tv"]["value"] == pytest.approx(0.52, abs=1e-6)
    assert prompt["skipped"][0]["name"] == "case.lower" and len(prompt["posix"]["loglik"]) == 4
    assert data["params"]["max_new_tokens"] == 2 and data["settings"]["samples"] == 200
    with Store(db) as store:
        run = store.get_run(data["run_id"])
        assert run.kind == "perturb" and run.status == "complete" and store.get_result(run.id, "report") == data
        assert run.manifest["perturb"]["prompts"] == ["ab"] and run.manifest["params"]["max_new_tokens"] == 2


def test_table_shows_ranking_posix_and_run_id(fake, capsys):
    assert main(["perturb", "ab", "--variants-only", "punct.question,case.upper", *QUICK]) == 0
    out = capsys.readouterr().out
    assert out.index("punct.question") < out.index("case.upper")
    assert "0.520 [0.520, 0.520]" in out and "POSIX" in out and "psi =" in out and "stored as run " in out
    assert "[log P(y_j | x_i) - log P(y_j | x_j)]" in out  # not eaten as markup


def test_suite_summarises_per_kind_and_details_shows_every_prompt(fake, capsys, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("ab\nba\n")
    variants = tmp_path / "variants.txt"
    variants.write_text("{p}?\n")
    base = ["perturb", "--prompts", str(prompts), "--variants", str(variants), "--no-save", *QUICK]
    assert main([*base, "--kinds", "case,user"]) == 0
    out = capsys.readouterr().out
    assert "per variant kind" in out and "most disruptive kind: user" in out and "variants, most disruptive first" not in out
    assert main([*base, "--kinds", "case,user", "--details"]) == 0
    assert capsys.readouterr().out.count("variants, most disruptive first") == 2
    assert main([*base, "--kinds", "user", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)["summary"]
    assert summary["by_kind"][0]["kind"] == "user" and summary["by_kind"][0]["mean_tv"] == pytest.approx(0.52, abs=1e-6)


@pytest.mark.parametrize(
    "args,needle",
    [
        (["perturb"], "give a prompt or --prompts"),
        (["perturb", "x", "--prompts", "f.txt"], "prompts file not found: f.txt"),
        (["perturb", "x", "--kinds", "colour", "--list"], "unknown variant kind(s) colour"),
        (["perturb", "x", "--variants-only", "case.shout", "--list"], "unknown variant 'case.shout'"),
        (["perturb", "x", "--variants", "/no/such/file"], "cannot read variants file"),
        (["perturb", "ab", "--samples", "1"], "--samples must be an integer >= 2, got 1"),
        (["perturb", "ab", "--top-p", "1.5"], "--top-p must be"),
        (["perturb", "ab", "--variants-only", "case.lower"], "no variant of 'ab' is left to measure"),
        (["perturb", "ab", "--rng", "torch"], "perturb() got an unexpected keyword --rng"),
        (["perturb", "ab", "--list", "--resume", "abcdef"], "--list"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, needle, capsys, fake):
    assert main(args + QUICK) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err and "Traceback" not in err


def test_a_binary_variants_file_is_one_line(capsys, fake, tmp_path):
    binary = tmp_path / "v.bin"
    binary.write_bytes(b"\x00\x01\xff")
    assert main(["perturb", "ab", "--variants", str(binary), *QUICK]) == 2
    err = capsys.readouterr().err
    assert err == f"tokendice: error: variants file {binary} is a binary file, not text: one variant a line, or JSONL\n"


def suite_file(tmp_path) -> str:
    path = tmp_path / "prompts.txt"
    path.write_text("ab\nba\naab\n")
    return str(path)


def test_an_interrupted_suite_says_how_to_resume_and_resumes_to_the_uninterrupted_report(serve, capsys, tmp_path):
    db, clean_db = str(tmp_path / "p.db"), str(tmp_path / "clean.db")
    serve(posing(stop_at="ba"))
    assert main(["perturb", "--prompts", suite_file(tmp_path), *SUITE_ARGS, "--db", db]) == 130
    with Store(db) as store:
        run_id = store.list_runs(kind="perturb")[0].id
        assert store.get_run(run_id).status == "interrupted"
    err = capsys.readouterr().err
    assert err == (f"tokendice: interrupted: 1 of 3 prompts are stored in run {run_id}; td.resume('{run_id}', db='{db}') measures "
                   f"the rest; continue with: tokendice perturb --resume {run_id} --db {db}\n")
    serve(posing())
    assert main(["perturb", "--resume", run_id, "--db", db, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert main(["perturb", "--prompts", suite_file(tmp_path), *SUITE_ARGS, "--db", clean_db, "--json"]) == 0
    uninterrupted = json.loads(capsys.readouterr().out)
    with Store(db) as store:
        assert store.get_run(run_id).status == "complete" and len(store.list_runs()) == 1
        assert store.get_result(run_id, "report") == printed
    assert printed["run_id"] == run_id and len(printed["prompts"]) == 3
    assert without_timing(printed) == without_timing(uninterrupted)
    assert main(["perturb", "--resume", run_id, "--db", db]) == 2
    assert "already complete" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--samples", "200"], "--samples 200 (the run used --samples 50)"),
        (["--no-distribution"], "--no-distribution (the run used no --no-distribution)"),
        (["--top-p", "0.9", "--greedy"], "--top-p 0.9 (the run used --top-p 1.0); --greedy (the run used no --greedy)"),
        (["--seed", "1", "--chat"], "--chat (the run used no --chat); --seed 1 (the run used --seed 3)"),
        (["--variants-only", "case.lower"], "--variants-only case.lower (the run measured punct.question, case.upper, punct.period)"),
        (["--prompts", "PROMPTS"], "--prompts ['ab', 'ba'] (the run used --prompts ['ab', 'ba', 'aab'])"),
        (["ab"], "prompt='ab' (the run used prompt=['ab', 'ba', 'aab'])"),
        (["--no-save"], "--no-save (a resumed run is stored in the run it continues)"),
        (["--dtype", "float32"], "--dtype float32 (the run used --dtype bfloat16)"),
        (["--model", "other", "--threads", "1"], "--model other (the run used --model smollm2-135m)"),
    ],
)
def test_resume_refuses_a_flag_that_differs_from_the_run_and_adds_nothing(extra, needle, serve, capsys, tmp_path):
    serve(posing(stop_at="ba"))
    db = str(tmp_path / "p.db")
    assert main(["perturb", "--prompts", suite_file(tmp_path), *SUITE_ARGS, "--db", db]) == 130
    with Store(db) as store:
        run_id = store.list_runs(kind="perturb")[0].id
    capsys.readouterr()
    short = tmp_path / "short.txt"
    short.write_text("ab\nba\n")
    extra = [str(short) if e == "PROMPTS" else e for e in extra]
    engine = serve(posing())
    assert main(["perturb", "--resume", run_id, "--db", db, *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"a resumed run keeps the settings of run {run_id}" in err and needle in err
    with Store(db) as store:
        assert store.get_run(run_id).status == "interrupted" and len(store.get_result(run_id, "report")["prompts"]) == 1
    assert engine.forward_rows == 0


def test_resume_accepts_flags_equal_to_the_runs(serve, capsys, tmp_path):
    serve(posing(stop_at="ba"))
    db = str(tmp_path / "p.db")
    assert main(["perturb", "--prompts", suite_file(tmp_path), *SUITE_ARGS, "--db", db]) == 130
    with Store(db) as store:
        run_id = store.list_runs(kind="perturb")[0].id
    serve(posing())
    assert main(["perturb", "--resume", run_id[:6], "--db", db, "--json", "--prompts", suite_file(tmp_path), *SUITE_ARGS,
                 "--model", "smollm2-135m", "--engine", "hf", "--dtype", "bfloat16", "--threads", "1", "--trust-remote-code"]) == 0
    assert len(json.loads(capsys.readouterr().out)["prompts"]) == 3


def test_resume_of_an_unknown_run_or_another_kind(capsys, fake, tmp_path):
    assert main(["perturb", "--resume", "nosuchrun"]) == 2
    assert "no run with id 'nosuchrun'" in capsys.readouterr().err
    trace = td.trace("ab", engine=prompt_dependent(), max_new_tokens=1)
    assert main(["perturb", "--resume", trace.run_id]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"run {trace.run_id} is a trace run" in err


@pytest.mark.model
def test_one_prompt_end_to_end_on_the_embedded_model(tmp_path, capsys):
    """A few seconds: one prompt, two variants, 4 new tokens, 20 samples."""
    db = str(tmp_path / "r.db")
    code = main(["perturb", "The capital of France is", "--variants-only", "case.lower,punct.question", "--samples", "20",
                 "--max-nodes", "20", "--max-new-tokens", "4", "--threads", "1", "--json", "--db", db])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    prompt = data["prompts"][0]
    assert prompt["original"]["top1"]["text"] == " Paris"
    assert prompt["original"]["top1"]["model_prob"] == pytest.approx(0.7725, abs=2e-3)
    assert {v["variant"]["name"] for v in prompt["variants"]} == {"punct.question", "case.lower"} and prompt["posix"]["psi"] > 0
    for v in prompt["variants"]:
        assert 0 <= v["tv"]["low"] <= v["tv"]["value"] <= v["tv"]["high"] <= 1 and v["js_model"] > 0
    assert td.load_run(data["run_id"], db=db).to_dict() == data
