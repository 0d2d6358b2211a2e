"""tokendice perturb through the CLI: a FakeEngine stands in for the model, except in the model tests."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.experiments.test_perturb import prompt_dependent
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
