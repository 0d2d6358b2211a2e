"""The audit and diff commands: a FakeEngine stands in for the model, except in the model test."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tokendice import api
from tokendice.cli import main
from tokendice.engines.fake import FakeEngine
from tokendice.experiments.audit.controls import Setup
from tokendice.experiments.audit.providers import FixedProvider
from tokendice.store import SampleRecord, Store

VOCAB = ["<eos>", "x", "a", "b", "c", "d"]


def _next(prompt, generated):
    logits = [-10.0] * len(VOCAB)
    logits[[2, 3, 4, 1, 0, 0, 0][min(len(generated), 6)]] = 0.0
    if len(generated) == 2:
        logits[5] = -0.001  # a near-tie of "c" and "d"
    return logits


@pytest.fixture()
def fake_engine(monkeypatch):
    engine = FakeEngine(VOCAB, _next, noise=lambda batch, seq: [0, 0, 0, 0, 0, 0.01] if batch > 1 else None)

    def provider(engine_name, model, dtype, threads, deterministic, base_url, options):
        return FixedProvider(engine), Setup(engine="fake", dtype=dtype, threads=threads, deterministic=deterministic)

    monkeypatch.setattr(api, "_audit_provider", provider)
    return engine


def test_audit_json_flags_the_batch_conditions(fake_engine, capsys, tmp_path):
    db = str(tmp_path / "runs.db")
    code = main(["audit", "x", "--greedy", "--max-new-tokens", "6", "--repeats", "2", "--json", "--db", db])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["summary"]["changes_output"] == ["batch 2", "batch 8", "batch 32"]
    verdicts = {c["label"]: c["verdict"] for c in data["conditions"]}
    assert verdicts["batch 8"] == "DIVERGES at step 2 (margin 0.001)"
    assert verdicts["dtype"] == "not applicable for engine fake"
    with Store(db) as store:
        assert store.get_run(data["run_id"]).kind == "audit"


def test_audit_table_prints_verdicts_recipe_and_run_id(fake_engine, capsys):
    assert main(["audit", "x", "--greedy", "--max-new-tokens", "6", "--repeats", "2", "--conditions", "batch",
                 "--batch-sizes", "1,4"]) == 0
    out = capsys.readouterr().out
    assert "DIVERGES at step 2" in out and "recipe: greedy, batch 1" in out and "stored as run " in out


def test_audit_prompt_set_reports_tarr_and_tara(fake_engine, capsys, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("x\nxx\nxxx\n")
    code = main(["audit", "--prompts", str(prompts), "--repeats", "3", "--batch-size", "2", "--answer-regex", "^(ab)",
                 "--greedy", "--max-new-tokens", "6", "--json"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["tarr_at_3"] == 0.0 and data["tara_at_3"] == 1.0


def test_diff_of_two_stored_runs(capsys, tmp_path):
    db = str(tmp_path / "runs.db")
    ids = []
    with Store(db) as store:
        for tokens in ([2, 3, 4, 1], [2, 3, 5, 1]):
            run = store.create_run("sample", {"params": {}}, "x", "fake", "fake")
            store.add_samples(run, [SampleRecord(0, tokens, [VOCAB[t] for t in tokens], "", [-0.1] * 4, [0.0] * 4, "length")])
            ids.append(run)
    assert main(["diff", *ids, "--db", db]) == 0
    assert "first divergence at step 2" in capsys.readouterr().out
    assert main(["diff", *ids, "--db", db, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["first_divergence"] == 2


@pytest.mark.parametrize(
    "args,needle",
    [
        (["audit"], "prompt"),
        (["audit", "x", "--prompts", "f.txt"], "one of the two"),
        (["audit", "x", "--answer-regex", "a"], "--prompts"),
        (["audit", "x", "--repeats", "0"], "repeats"),
        (["audit", "x", "--conditions", "colour"], "conditions"),
        (["audit", "x", "--batch-sizes", "2,zero"], "batch-sizes"),
        (["audit", "--prompts", "/no/such/file"], "not found"),
        (["audit", "--prompts", __file__, "--answer-regex", "("], "regular expression"),
        (["diff", "nope!", "nada!"], "neither"),
        (["diff", "abcdef0123", "abcdef0124"], "no run"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, needle, capsys, fake_engine, monkeypatch):
    monkeypatch.setattr("os.getloadavg", lambda: (99.0, 99.0, 99.0))  # a busy machine: errors still come first
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err and "Traceback" not in err


def test_commands_load_without_torch():
    code = "import sys, tokendice.cli.audit, tokendice.cli.diff; from tokendice.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.model
def test_greedy_batch_one_float32_is_reproducible_on_the_embedded_model(capsys, tmp_path):
    code = main(["audit", "The capital of France is", "--greedy", "--max-new-tokens", "10", "--repeats", "5",
                 "--conditions", "baseline,threads", "--json", "--db", str(tmp_path / "r.db")])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    base = data["conditions"][0]
    assert base["label"] == "baseline" and base["tarr"] == 1.0 and base["verdict"] == "identical"
    assert base["n_identical"] == 5 and data["summary"]["baseline_reproducible"]
    assert data["baseline"]["token_texts"][0] == " Paris"
    threads = data["conditions"][1]
    assert threads["group"] == "threads" and threads["repeats"] == 5 and threads["verdict"]
    assert data["baseline"]["setup"]["dtype"] == "float32" and data["baseline"]["setup"]["batch_size"] == 1


@pytest.mark.model
def test_a_left_padded_row_of_a_real_batch_keeps_its_tokens(tmp_path):
    report = api.audit("The capital of France is", repeats=2, conditions="batch", batch_sizes=(1, 3),
                       do_sample=False, max_new_tokens=4, db=str(tmp_path / "r.db"))
    batch = report.condition("batch 3")
    assert batch.n_identical == 2  # the margins here are far larger than batch-size drift
    assert batch.max_logprob_diff < 1e-3


def test_a_busy_machine_gets_a_note_on_threads(fake_engine, capsys, monkeypatch):
    monkeypatch.setattr("os.getloadavg", lambda: (9.0, 9.0, 9.0))
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert main(["audit", "x", "--greedy", "--max-new-tokens", "3", "--repeats", "1", "--conditions", "baseline", "--json"]) == 0
    assert "--threads 1" in capsys.readouterr().err
    assert main(["audit", "x", "--greedy", "--max-new-tokens", "3", "--repeats", "1", "--conditions", "baseline",
                 "--json", "--threads", "1"]) == 0
    assert capsys.readouterr().err == ""
