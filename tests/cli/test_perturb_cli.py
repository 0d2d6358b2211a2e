"""tokendice perturb through the CLI: a FakeEngine stands in for the model, except in the model tests."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.experiments.test_perturb import prompt_dependent, without_wall_times
from tokendice import api
from tokendice.cli import main
from tokendice.store import Store

QUICK = ["--max-new-tokens", "2"]


@pytest.fixture()
def fake(monkeypatch):
    engine = prompt_dependent()
    monkeypatch.setattr(api, "get_engine", lambda *args, **kwargs: engine)
    return engine


def test_list_shows_variants_and_skips_without_a_model(capsys):
    assert main(["perturb", "The end.", "--list"]) == 0
    out = capsys.readouterr().out
    assert "case.upper" in out and '"THE END."' in out and "punct.period" in out and "skipped: same as the original" in out
    assert main(["perturb", "The end.", "--list", "--json", "--variants-only", "case.lower+punct.question,template.chat"]) == 0
    data = json.loads(capsys.readouterr().out)[0]
    assert [(v["name"], v["prompt"], v["chat"]) for v in data["variants"]] == [
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
        assert run.kind == "perturb" and run.status == "complete"
        assert store.get_result(run.id, "report")["prompts"][0]["posix"]["psi"] == prompt["posix"]["psi"]
        assert run.manifest["perturb"]["prompts"] == ["ab"] and run.manifest["params"]["max_new_tokens"] == 2


def test_table_shows_ranking_posix_and_run_id(fake, capsys, tmp_path):
    assert main(["perturb", "ab", "--variants-only", "punct.question,case.upper", "--db", str(tmp_path / "p.db"), *QUICK]) == 0
    out = capsys.readouterr().out
    assert out.index("punct.question") < out.index("case.upper")
    assert "0.520 [0.520, 0.520]" in out and "POSIX" in out and "psi =" in out and "stored as run " in out
    assert "[log P(y_j | x_i) - log P(y_j | x_j)]" in out  # not eaten as markup


def test_suite_summarises_per_kind(fake, capsys, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("ab\nba\n")
    variants = tmp_path / "variants.txt"
    variants.write_text("{p}?\n")
    code = main(["perturb", "--prompts", str(prompts), "--variants", str(variants), "--kinds", "case,user",
                 "--no-save", *QUICK])
    assert code == 0
    out = capsys.readouterr().out
    assert "per variant kind" in out and "most disruptive kind: user" in out
    assert main(["perturb", "--prompts", str(prompts), "--variants", str(variants), "--kinds", "user", "--json", "--no-save", *QUICK]) == 0
    summary = json.loads(capsys.readouterr().out)["summary"]
    assert summary["by_kind"][0]["kind"] == "user" and summary["by_kind"][0]["mean_tv"] == pytest.approx(0.52, abs=1e-6)


@pytest.mark.parametrize(
    "args,needle",
    [
        (["perturb"], "prompt"),
        (["perturb", "x", "--prompts", "f.txt"], "one of the two"),
        (["perturb", "x", "--kinds", "colour", "--list"], "unknown variant kind"),
        (["perturb", "x", "--variants-only", "case.shout", "--list"], "unknown variant"),
        (["perturb", "x", "--variants", "/no/such/file"], "cannot read"),
        (["perturb", "ab", "--samples", "1"], "samples"),
        (["perturb", "ab", "--top-p", "1.5"], "top_p"),
        (["perturb", "ab", "--variants-only", "case.lower"], "no variant"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, needle, capsys, fake):
    assert main(args + QUICK) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err and "Traceback" not in err


def test_list_loads_without_torch():
    code = "import sys; from tokendice.cli import main; main(['perturb', 'x', '--list']); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("False")


SUITE_ARGS = ["--variants-only", "punct.question,case.upper,punct.period", "--samples", "50", "--seed", "3", *QUICK]


def suite_file(tmp_path) -> str:
    path = tmp_path / "prompts.txt"
    path.write_text("ab\nba\naab\n")
    return str(path)


def test_an_interrupted_suite_says_how_to_resume_and_resumes_to_the_uninterrupted_report(monkeypatch, capsys, tmp_path):
    db, clean_db = str(tmp_path / "p.db"), str(tmp_path / "clean.db")
    monkeypatch.setattr(api, "get_engine", lambda *args, **kwargs: prompt_dependent(stop_at="ba"))
    assert main(["perturb", "--prompts", suite_file(tmp_path), *SUITE_ARGS, "--db", db]) == 130
    with Store(db) as store:
        run_id = store.list_runs(kind="perturb")[0].id
        assert store.get_run(run_id).status == "interrupted"
    err = capsys.readouterr().err
    assert f"1 of 3 prompts are stored in run {run_id}: continue with tokendice perturb --resume {run_id} --db {db}\n" in err
    loaded: list[tuple] = []
    monkeypatch.setattr(api, "get_engine", lambda *args, **kwargs: loaded.append(args) or prompt_dependent())
    assert main(["perturb", "--resume", run_id, "--db", db, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert loaded == [("fake", "fake-prompt-dependent")]  # the run's engine and model
    assert main(["perturb", "--prompts", suite_file(tmp_path), *SUITE_ARGS, "--db", clean_db]) == 0
    with Store(db) as store, Store(clean_db) as clean:
        assert store.get_run(run_id).status == "complete" and len(store.list_runs()) == 1
        resumed = store.get_result(run_id, "report")
        uninterrupted = clean.get_result(clean.list_runs()[0].id, "report")
    assert printed["run_id"] == resumed["run_id"] == run_id and len(resumed["prompts"]) == 3
    assert without_wall_times(resumed) == without_wall_times(uninterrupted) == without_wall_times(printed)
    assert main(["perturb", "--resume", run_id, "--db", db]) == 2
    assert "already complete" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra,needle",
    [
        ([], "no run with id 'nosuchrun'"),
        (["ab"], "drop a prompt"),
        (["--prompts", "p.txt"], "drop --prompts"),
        (["--variants-only", "case.lower"], "drop --variants-only"),
        (["--kinds", "case", "--variants", "v.txt"], "drop --variants, --kinds"),
        (["--samples", "50", "--no-distribution"], "drop --samples, --no-distribution"),
        (["--top-p", "0.9", "--greedy", "--max-new-tokens", "2", "--seed", "1", "--chat"], "drop --top-p, --max-new-tokens, --greedy, --seed, --chat"),
        (["--no-save"], "drop --no-save"),
    ],
)
def test_resume_refuses_a_missing_run_and_flags_that_would_change_the_measurement(extra, needle, capsys, fake):
    assert main(["perturb", "--resume", "nosuchrun", *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err and "Traceback" not in err


def test_resume_refuses_other_kinds_complete_runs_and_another_model(capsys, fake, tmp_path):
    db = str(tmp_path / "p.db")
    with Store(db) as store:
        sample_run = store.create_run("sample", {"kind": "sample"}, "ab", "fake", "fake-prompt-dependent")
    assert main(["perturb", "ab", "--variants-only", "punct.question", "--db", db, *QUICK]) == 0
    capsys.readouterr()
    with Store(db) as store:
        done = store.list_runs(kind="perturb")[0].id
    for args, needle in [
        ([sample_run], f"run {sample_run} is a sample run, not a perturb run"),
        ([done], f"run {done} is already complete"),
        ([done[:6]], f"run {done} is already complete"),  # a unique prefix names it
    ]:
        assert main(["perturb", "--resume", *args, "--db", db]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and needle in err
    with Store(db) as store:
        store.set_status(done, "interrupted")
    assert main(["perturb", "--resume", done, "--db", db, "--model", "other"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "drop --model other (the run used fake-prompt-dependent)" in err


@pytest.mark.model
def test_suite_of_three_prompts_on_the_embedded_model(tmp_path, capsys):
    """About 10 s on an idle 2-core CPU (3 prompts x 3 variants, 50 samples of 4 tokens)."""
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("The capital of France is\nWater boils at\nThe opposite of hot is\n")
    code = main(["perturb", "--prompts", str(prompts), "--variants-only", "case.lower,punct.question,whitespace.trailing_space",
                 "--samples", "50", "--max-nodes", "50", "--max-new-tokens", "4", "--json", "--db", str(tmp_path / "r.db")])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    first = data["prompts"][0]
    assert first["original"]["top1"]["text"] == " Paris"
    assert first["original"]["top1"]["model_prob"] == pytest.approx(0.7725, abs=2e-3)
    for prompt in data["prompts"]:
        assert len(prompt["variants"]) == 3 and prompt["posix"]["psi"] > 0
        for v in prompt["variants"]:
            assert 0 <= v["tv"]["low"] <= v["tv"]["value"] <= v["tv"]["high"] <= 1
            assert v["js_model"] >= 0
    kinds = {row["kind"] for row in data["summary"]["by_kind"]}
    assert kinds == {"case", "punct", "whitespace"} and data["summary"]["posix"] > 0
    with Store(str(tmp_path / "r.db")) as store:
        assert store.get_run(data["run_id"]).kind == "perturb"
