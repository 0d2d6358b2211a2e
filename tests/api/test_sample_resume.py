"""Resuming sample runs: every setting that decides results comes from the run, one given that
differs is an error (before anything loads, nothing added), runs of the previous version resume,
and a process killed with SIGKILL leaves a run that reads 'interrupted' and resumes identically."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import tokendice as td
from tests.experiments.fake_models import VOCAB, markov_chain
from tokendice.engines.fake import FakeEngine
from tokendice.store import Store

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = {"n": 30, "seed": 8, "batch_size": 5, "temperature": 0.9, "max_new_tokens": 4}


class FakeHF(FakeEngine):
    """The Markov chain dressed as the transformers engine on the embedded model, float32, 1 thread."""

    name = "hf"

    def describe(self) -> dict:
        return {"engine": "hf", "model": self.model_id, "dtype": "float32", "attention": "sdpa", "kv_cache": True,
                "threads": 1, "threads_chosen": "given", "vocab_size": self.tokenizer.vocab_size}  # fmt: skip


def fake_hf() -> FakeHF:
    chain = markov_chain()
    return FakeHF(VOCAB, chain._next_logits, eos_token_ids=(0,), model_id="smollm2-135m")


def interrupted_run(engine, monkeypatch, batches: int = 2, **settings) -> str:
    """A sample run stopped (as by Ctrl-C) once `batches` batches are stored; its id."""
    add = Store.add_samples
    calls = []

    def add_then_interrupt(self, run_id, samples, results=None):  # type: ignore[no-untyped-def]
        add(self, run_id, samples, results)
        calls.append(1)
        if len(calls) == batches:
            raise KeyboardInterrupt

    with monkeypatch.context() as patched, pytest.raises(td.RunInterrupted) as caught:
        patched.setattr(Store, "add_samples", add_then_interrupt)
        td.sample("x", engine=engine, **{**SETTINGS, **settings})
    return caught.value.run_id


def stored(run_id: str) -> int:
    return td.show_run(run_id).n_samples


def tokens(run) -> list:  # type: ignore[no-untyped-def]
    return [(s.prompt_index, s.sample_id, s.tokens) for s in run.samples]


def uninterrupted(**settings) -> td.SampleRun:
    return td.sample("x", engine=markov_chain(), save=False, **{**SETTINGS, **settings})


@pytest.mark.parametrize("method", ["independent", "branching"])
def test_resume_finishes_with_the_runs_own_settings(method, monkeypatch):
    run_id = interrupted_run(markov_chain(), monkeypatch, method=method)
    assert stored(run_id) == 10 and td.runs()[0].status == "interrupted"
    finished = td.resume(run_id, engine=markov_chain())
    assert tokens(finished) == tokens(uninterrupted(method=method))
    assert finished.run_id == run_id and td.show_run(run_id).status == "complete" and stored(run_id) == 30
    assert td.load_run(run_id).to_dict() == finished.to_dict()
    again = td.resume(run_id, engine=markov_chain())  # nothing missing: the same run, analysed again
    assert again.to_dict() == finished.to_dict() and stored(run_id) == 30


@pytest.mark.parametrize(
    "given,recorded",
    [
        ({"temperature": 0.5}, "temperature=0.9"), ({"seed": 9}, "seed=8"), ({"n": 40}, "n=30"), ({"batch_size": 6}, "batch_size=5"),
        ({"method": "branching"}, "method='independent'"), ({"rng": "torch"}, "rng='per-sample'"), ({"chat": True}, "chat=False"),
        ({"max_new_tokens": 5}, "max_new_tokens=4"), ({"do_sample": False}, "do_sample=True"), ({"prompt": "xa"}, "prompt=['x']"),
        ({"params": td.SamplingParams(temperature=0.9, max_new_tokens=4, top_k=3)}, "top_k=0"),
    ],
)
def test_a_setting_that_differs_from_the_runs_is_an_error(given, recorded, monkeypatch):
    run_id = interrupted_run(markov_chain(), monkeypatch)
    with pytest.raises(td.ParameterError) as caught:
        td.resume(run_id, engine=markov_chain(), **given)
    assert recorded in str(caught.value) and caught.value.param in (*given, "top_k")
    assert stored(run_id) == 10
    td.resume(run_id, engine=markov_chain(), **SETTINGS, prompt="x")  # the run's own settings may be repeated


def test_the_analysis_is_kept_or_asked_anew(monkeypatch):
    run_id = interrupted_run(markov_chain(), monkeypatch, at_prefix="a")
    kept = td.resume(run_id, engine=markov_chain())
    assert kept.analyses[0].at_prefix.prefix == "a"  # as the run was asked to be analysed
    anew = td.resume(run_id, engine=markov_chain(), at_prefix="ab", exact=True, mass=1.0, max_nodes=500)
    assert anew.analyses[0].at_prefix.prefix == "ab" and anew.analyses[0].exact_source.startswith("exact enumeration")
    assert tokens(anew) == tokens(kept) and td.load_run(run_id).to_dict() == anew.to_dict()


def test_a_run_still_being_written_is_not_resumed():
    spec = {"prompts": ["x"], "params": td.SamplingParams().to_dict(), "n": 3, "seed": 0, "rng": "per-sample",
            "method": "independent", "chat": False, "batch_size": 2}  # fmt: skip
    with Store() as store:
        run_id = store.start_run("sample", "x", markov_chain().describe(), {}, {"sample": spec})  # running, by this live process
    with pytest.raises(td.StoreError, match="still running"):
        td.resume(run_id, engine=markov_chain())


def test_the_engine_must_be_the_runs(monkeypatch):
    run_id = interrupted_run(markov_chain(), monkeypatch)
    other = FakeEngine.from_table(VOCAB, {}, model_id="fake-table")
    with pytest.raises(td.ParameterError, match="engine='fake/fake-table' \\(the run used engine='fake/fake-markov'\\)"):
        td.resume(run_id, engine=other)
    with pytest.raises(td.ParameterError, match="the fake engine, which cannot be loaded by name"):
        td.resume(run_id)
    with pytest.raises(td.ParameterError, match="did you mean 'temperature'"):
        td.resume(run_id, engine=markov_chain(), temprature=0.9)
    assert stored(run_id) == 10


def test_engine_settings_come_from_the_manifest_and_transport_ones_are_refused_by_hf(monkeypatch, serve_engine):
    engine = fake_hf()
    run_id = interrupted_run(engine, monkeypatch)
    loaded = []
    serve_engine(engine)
    monkeypatch.setattr("tokendice.engines.spec.EngineSpec.load", lambda self: loaded.append(self) or engine)
    for wrong, needle in [({"dtype": "bfloat16"}, "dtype='bfloat16' (the run used dtype='float32')"), ({"threads": 2}, "threads=2 (the run used threads=1)"),
                          ({"attention": "eager"}, "attention='sdpa'"), ({"kv_cache": False}, "kv_cache=True"),
                          ({"engine": td.EngineSpec("hf", dtype="float16")}, "dtype='float32'"), ({"engine": "llamacpp"}, "engine='hf'"),
                          ({"model": "HuggingFaceTB/SmolLM2-360M"}, "model='smollm2-135m'"), ({"timeout": 5.0}, "takes no option 'timeout'")]:  # fmt: skip
        with pytest.raises(td.ParameterError, match=re.escape(needle)):
            td.resume(run_id, **wrong)
    assert loaded == [] and stored(run_id) == 10  # refused before loading, nothing added
    finished = td.resume(run_id, dtype="float32", trust_remote_code=False)  # the same value, and a transport setting
    (spec,) = loaded
    from tokendice.engines.threads import default_threads

    assert spec.engine == "hf" and spec.get("dtype") == "float32" and spec.get("attention") == "sdpa" and spec.get("kv_cache") is True
    assert spec.options.get("threads", default_threads()) == 1  # the recorded thread count
    assert tokens(finished) == tokens(uninterrupted())


def test_a_run_of_the_previous_version_resumes(monkeypatch, serve_engine):
    """Stored by 0.x: the engine's description said attn_implementation, threads were counted at load."""
    engine = fake_hf()
    old = {"engine": "hf", "model": "smollm2-135m", "dtype": "float32", "attn_implementation": "eager", "kv_cache": True, "threads": 1,
           "threads_chosen": "1.00 cores idle at load", "deterministic_algorithms": False, "vocab_size": 6}  # fmt: skip
    params = td.SamplingParams(temperature=0.9, max_new_tokens=4)
    sample = {"prompts": ["x"], "params": params.to_dict(), "n": 30, "seed": 8, "rng": "per-sample", "method": "independent",
              "chat": False, "batch_size": 5}  # fmt: skip
    first = uninterrupted().samples[:10]
    with Store() as store:
        run_id = store.start_run("sample", "x", old, params.to_dict(), {"sample": sample}, n_requested=30)
        store.add_samples(run_id, first)
        store.set_status(run_id, "interrupted")
    loaded = []
    serve_engine(engine)
    monkeypatch.setattr("tokendice.engines.spec.EngineSpec.load", lambda self: loaded.append(self) or engine)
    with pytest.raises(td.ParameterError, match="attention='sdpa' \\(the run used attention='eager'\\)"):
        td.resume(run_id, attention="sdpa")
    finished = td.resume(run_id)
    assert loaded[0].get("attention") == "eager" and loaded[0].get("dtype") == "float32"
    assert tokens(finished) == tokens(uninterrupted()) and td.show_run(run_id).status == "complete"


def test_cli_resume_with_another_dtype_exits_2_and_adds_nothing(monkeypatch, serve_engine, capsys):
    from tokendice.cli import main

    engine = fake_hf()
    run_id = interrupted_run(engine, monkeypatch)
    loaded = []
    serve_engine(engine)
    monkeypatch.setattr("tokendice.engines.spec.EngineSpec.load", lambda self: loaded.append(self) or engine)
    started = time.monotonic()
    assert main(["sample", "--resume", run_id, "--dtype", "bfloat16"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tokendice: error: ") and err.count("\n") == 1
    assert "--dtype bfloat16 (the run used --dtype float32)" in err, err
    assert loaded == [] and stored(run_id) == 10 and time.monotonic() - started < 1
    assert main(["sample", "--resume", run_id, "--temperature", "0.5"]) == 2
    assert "--temperature 0.5 (the run used --temperature 0.9)" in capsys.readouterr().err
    assert main(["sample", "--resume", run_id, "--seed", "8", "--json"]) == 0  # the run's own seed: fine
    resumed = json.loads(capsys.readouterr().out)
    assert resumed["run_id"] == run_id and resumed["prompts"][0]["n"] == 30 and stored(run_id) == 30


def test_cli_ctrl_c_says_how_to_resume(monkeypatch, serve_engine, capsys):
    from tokendice.cli import main

    serve_engine(markov_chain())
    add = Store.add_samples

    def add_then_interrupt(self, run_id, samples, results=None):  # type: ignore[no-untyped-def]
        add(self, run_id, samples, results)
        raise KeyboardInterrupt

    monkeypatch.setattr(Store, "add_samples", add_then_interrupt)
    assert main(["sample", "x", "-n", "10", "--batch-size", "4"]) == 130
    run_id = td.runs()[0].id
    assert f"continue with: tokendice sample --resume {run_id}" in capsys.readouterr().err


KILLED_SCRIPT = """
import sys, time
sys.path.insert(0, {root!r})
import tokendice as td
from tests.experiments.fake_models import markov_chain
engine = markov_chain()
next_logits = engine._next_logits
def slow(prompt, generated):
    time.sleep(0.01)
    return next_logits(prompt, generated)
engine._next_logits = slow
td.sample("x", n=60, engine=engine, seed=8, batch_size=5, temperature=0.9, max_new_tokens=4, progress=False)
"""


def test_a_killed_process_leaves_an_interrupted_run_that_resumes_identically(capsys):
    """Defect 6: a run whose process was killed (SIGKILL) said 'running' forever."""
    proc = subprocess.Popen([sys.executable, "-c", KILLED_SCRIPT.format(root=str(ROOT))], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    db = os.environ["TOKENDICE_DB"]
    deadline, before = time.monotonic() + 60, 0
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if os.path.exists(db):
                try:
                    with Store(db) as store:
                        runs = store.list_runs()
                        before = runs[0].n_samples if runs else 0
                except Exception:  # noqa: BLE001  (the file is being created)
                    before = 0
                if before >= 5:
                    break
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, err.decode()
    (info,) = td.runs()
    assert 0 < info.n_samples < 60 and info.n_samples % 5 == 0, "killed mid-run, after whole batches"
    assert info.status == "interrupted"
    from tokendice.cli import main

    assert main(["runs", "list"]) == 0
    assert "interrupted" in capsys.readouterr().out
    finished = td.resume(info.id, engine=markov_chain())
    assert tokens(finished) == tokens(uninterrupted(n=60))
    assert td.runs()[0].status == "complete" and td.runs()[0].n_samples == 60
