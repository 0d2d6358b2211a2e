"""The audit and diff commands: a FakeEngine stands in for the model, except in the one model test."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tokendice.cli import main
from tokendice.engines.fake import FakeEngine
from tokendice.store import SampleRecord, Store

VOCAB = ["<eos>", "x", "a", "b", "c", "d"]


def _next(prompt, generated):
    logits = [-10.0] * len(VOCAB)
    logits[[2, 3, 4, 1, 0, 0, 0][min(len(generated), 6)]] = 0.0
    if len(generated) == 2:
        logits[5] = -0.001  # a near-tie of "c" and "d"
    return logits


@pytest.fixture(autouse=True)
def quiet_machine(monkeypatch):
    monkeypatch.setattr("os.getloadavg", lambda: (0.0, 0.0, 0.0))


@pytest.fixture()
def fake_engine(serve_engine):
    return serve_engine(FakeEngine(VOCAB, _next, noise=lambda batch, seq: [0, 0, 0, 0, 0, 0.01] if batch > 1 else None))


def test_audit_json_flags_the_batch_conditions(fake_engine, capsys, tmp_path):
    db = str(tmp_path / "runs.db")
    code = main(["audit", "x", "--greedy", "--max-new-tokens", "6", "--repeats", "2", "--json", "--db", db])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["summary"]["changes_output"] == ["batch 2", "batch 8", "batch 32"]
    verdicts = {c["label"]: c["verdict"] for c in data["conditions"]}
    assert verdicts["batch 8"] == "DIVERGES at step 2 (margin 0.001)"
    assert verdicts["dtype"] == verdicts["engines"] == "not applicable for engine fake"
    with Store(db) as store:
        assert store.get_run(data["run_id"]).kind == "audit"


def test_audit_table_prints_verdicts_recipe_and_run_id(fake_engine, capsys):
    assert main(["audit", "x", "--greedy", "--max-new-tokens", "6", "--repeats", "2", "--conditions", "batch",
                 "--batch-sizes", "1,4"]) == 0
    out = capsys.readouterr().out
    assert "DIVERGES at step 2" in out and "recipe: greedy, batch 1" in out and "stored as run " in out
    assert "see: tokendice diff" in out


def test_audit_threads_flag_sets_the_baseline(fake_engine, capsys):
    assert main(["audit", "x", "--greedy", "--max-new-tokens", "3", "--repeats", "1", "--conditions", "threads",
                 "--threads", "1", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["baseline"]["setup"]["threads"] == 1 and data["baseline"]["setup"]["threads_default"] is False
    assert [c["label"] for c in data["conditions"]] == ["baseline", "2 threads"]


def test_audit_prompt_set_reports_tarr_and_tara(fake_engine, capsys, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("x\nxx\nxxx\n")
    code = main(["audit", "--prompts", str(prompts), "--repeats", "3", "--batch-size", "2", "--answer-regex", "^(ab)",
                 "--greedy", "--max-new-tokens", "6"])
    assert code == 0
    out = capsys.readouterr().out
    assert "TARr@3 = 0.000" in out and "TARa@3 = 1.000" in out and "stored as run " in out


def test_base_url_is_a_server_for_the_engines_condition(fake_engine, monkeypatch, capsys):
    seen = {}

    def audit(prompt, **kwargs):  # the API call the command makes
        seen.update(kwargs)
        raise SystemExit(0)

    monkeypatch.setattr("tokendice.api.audit", audit)
    with pytest.raises(SystemExit):
        main(["audit", "x", "--base-url", "http://127.0.0.1:9/v1", "--timeout", "5", "--dtype", "bfloat16"])
    from tokendice.engines.spec import EngineSpec

    assert seen["engine"] == EngineSpec("hf", dtype="bfloat16")
    assert seen["others"] == [EngineSpec("openai", base_url="http://127.0.0.1:9/v1", timeout=5.0)]


@pytest.fixture()
def python_file(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("a prompt\n")
    return str(path)


@pytest.mark.parametrize(
    "args,needle",
    [
        (["audit"], "prompt"),
        (["audit", "x", "--prompts", "f.txt"], "one of the two"),
        (["audit", "x", "--answer-regex", "a"], "--prompts"),
        (["audit", "x", "--batch-size", "2"], "--batch-size goes with --prompts"),
        (["audit", "--prompts", "PROMPTS", "--conditions", "batch"], "--conditions goes with a prompt"),
        (["audit", "x", "--repeats", "0"], "--repeats"),
        (["audit", "x", "--conditions", "colour"], "conditions"),
        (["audit", "x", "--batch-sizes", "2,zero"], "batch-sizes"),
        (["audit", "x", "--threads", "999"], "--threads"),
        (["audit", "x", "--conditions", "batch", "--base-url", "http://127.0.0.1:9/v1"], "add engines"),
        (["audit", "x", "--timeout", "5"], "--base-url"),
        (["audit", "x", "--engine", "openai", "--base-url", "http://127.0.0.1:9/v1"], "white-box"),
        (["audit", "--prompts", "/no/such/file"], "not found"),
        (["audit", "--prompts", "PROMPTS", "--answer-regex", "("], "regular expression"),
        (["diff", "nope!", "nada!"], "neither"),
        (["diff", "abcdef0123", "abcdef0124"], "no run"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, needle, capsys, fake_engine, monkeypatch, python_file):
    monkeypatch.setattr("os.getloadavg", lambda: (99.0, 99.0, 99.0))  # a busy machine: errors still come first
    assert main([python_file if a == "PROMPTS" else a for a in args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err and "Traceback" not in err


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


def test_commands_load_without_torch():
    code = "import sys, tokendice.cli.audit, tokendice.cli.diff; from tokendice.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_busy_machine_gets_a_note_on_stderr(serve_engine, capsys, monkeypatch):
    class Threaded(FakeEngine):
        threads = 2  # owns its thread count, as the transformers engine does

    serve_engine(Threaded(VOCAB, _next))
    monkeypatch.setattr("os.getloadavg", lambda: (9.0, 9.0, 9.0))
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert main(["audit", "x", "--greedy", "--max-new-tokens", "3", "--repeats", "1", "--conditions", "baseline", "--json"]) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith("tokendice: note: this machine is busy") and "--threads 1 is faster" in captured.err
    assert captured.err.count("\n") == 1
    assert json.loads(captured.out)["notes"][0].startswith("this machine is busy")
    assert main(["audit", "x", "--greedy", "--max-new-tokens", "3", "--repeats", "1", "--conditions", "baseline",
                 "--json", "--threads", "1"]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.model
def test_the_embedded_model_reproduces_at_batch_one_and_in_a_left_padded_batch(capsys, tmp_path):
    """One short end-to-end audit: greedy, 4 tokens, 2 repeats, the batch condition at 3, on one
    thread (a 2-thread run on this shared 2-core machine can take 10x longer when it is busy); then
    the engine's own thread count, as the threads condition sets it, on one forward pass."""
    import torch

    import tokendice as td
    from tokendice.api import _common
    from tokendice.experiments.audit.controls import Setup, applied

    db = str(tmp_path / "r.db")
    code = main(["audit", "The capital of France is", "--greedy", "--max-new-tokens", "4", "--repeats", "2",
                 "--conditions", "batch", "--batch-sizes", "1,3", "--threads", "1", "--json", "--db", db])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    base, batch = data["conditions"]
    assert base["label"] == "baseline" and base["verdict"] == "identical" and base["n_identical"] == 2
    assert data["summary"]["baseline_reproducible"] and data["baseline"]["token_texts"][0] == " Paris"
    assert batch["label"] == "batch 3" and batch["n_identical"] == 2  # the margins here are far larger than batch drift
    assert batch["max_logprob_diff"] < 1e-3
    assert data["baseline"]["setup"]["threads"] == data["baseline"]["engine"]["threads"] == 1
    with Store(db) as store:
        assert store.get_run(data["run_id"]).manifest["engine"]["threads"] == 1
    assert td.load_run(data["run_id"], db=db).to_dict() == data

    engine = _common.load(td.EngineSpec("hf", threads=1))  # the audit's engine, cached
    before = torch.get_num_threads()
    with applied(Setup(threads=2), engine):
        assert engine.describe()["threads"] == 2
        engine.prefill([[1, 2, 3]])
        assert torch.get_num_threads() == 2  # the engine set torch's count for its forward pass
    assert engine.threads == 1 and torch.get_num_threads() == before
