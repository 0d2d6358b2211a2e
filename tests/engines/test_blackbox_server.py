"""Black-box trace and sample through the CLI against a real llama-cpp-python server on 127.0.0.1:
the server killed mid-sample, restarted, and the run resumed to the same samples."""

from __future__ import annotations

import json
import math

import pytest

from tokendice.cli import main
from tokendice.engines.openai import OpenAIEngine
from tokendice.experiments.trace.blackbox import run_blackbox_trace
from tokendice.params import SamplingParams
from tokendice.store import Store

pytestmark = pytest.mark.server
SERVER_MODEL = "smollm2-135m"  # the --model_alias of the servers in conftest.py
PROMPT = "The capital of France is"
SAMPLE = ["-n", "12", "--seed", "3", "--max-new-tokens", "4", "--top-k", "40", "--concurrency", "2", "--json"]


def openai(url: str) -> list[str]:
    return ["--engine", "openai", "--base-url", url, "--model", SERVER_MODEL]


def test_black_box_trace_from_the_cli(llamacpp_server: str, capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    db = str(tmp_path / "t.db")
    assert main(["trace", PROMPT, "--greedy", "--max-new-tokens", "6", "--json", "--db", db, *openai(llamacpp_server)]) == 0
    out = capsys.readouterr()
    data = json.loads(out.out)
    assert data["logprobs_distribution"]["distribution"] == "raw" and data["server"]["server"] == "llama-cpp-python"
    first = data["steps"][0]
    assert first["text"] == " Paris" and first["rank"] == 1 and len(first["top"]) == 5
    assert first["prob"] == pytest.approx(0.7677, abs=5e-4)  # the llama.cpp engine's p(model), DESIGN.md
    assert data["warnings"] == [] and out.err == ""  # every sampler field sent: no hidden repeat penalty
    with Store(db) as store:
        manifest = store.get_run(data["run_id"]).manifest
    assert manifest["request"]["sampler_fields"]["repeat_penalty"] == 1.0 and manifest["request"]["sampler_fields"]["min_p"] == 0.0
    assert manifest["engine"]["reported_models"] == [SERVER_MODEL]


def test_hidden_server_processing_is_flagged(llamacpp_server: str) -> None:
    # Left to its defaults (repeat_penalty 1.1), the server contradicts the raw logprobs it reports.
    implicit = OpenAIEngine(SERVER_MODEL, base_url=llamacpp_server, sampler_extensions=False)
    trace = run_blackbox_trace(implicit, PROMPT, SamplingParams(do_sample=False, max_new_tokens=20))
    assert trace.warnings and "greedy decoding chose" in trace.warnings[0]
    assert any(s.rank is not None and s.rank > 1 for s in trace.steps)


def test_black_box_sample_from_the_cli(llamacpp_server: str, capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert main(["sample", PROMPT, *SAMPLE, "--db", str(tmp_path / "s.db"), *openai(llamacpp_server)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["prompts"][0]["n"] == 12 and report["warnings"] == []
    assert report["server"]["consistency"]["checked"] == 12 and report["server"]["consistency"]["contradicting"] == []


def test_killed_server_keeps_samples_and_resume_completes_them(  # type: ignore[no-untyped-def]
    start_llamacpp_server, llamacpp_server: str, capsys, monkeypatch, tmp_path
) -> None:
    killed, clean = str(tmp_path / "killed.db"), str(tmp_path / "clean.db")
    server = start_llamacpp_server()
    batches: list[int] = []
    add_samples = Store.add_samples

    def add_then_kill(self, run_id, samples, results=None):  # type: ignore[no-untyped-def]
        add_samples(self, run_id, samples, results)
        batches.append(len(samples))
        if len(batches) == 2:  # two batches (of --concurrency 2) are stored: kill the server
            server.stop()

    try:
        monkeypatch.setattr(Store, "add_samples", add_then_kill)
        code = main(["sample", PROMPT, *SAMPLE, "--max-retries", "0", "--db", killed, *openai(server.base_url)])
        monkeypatch.undo()
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
        assert f"cannot reach the server at {server.base_url}" in err and "--resume" in err
        with Store(killed) as store:
            run = store.list_runs()[0]
            assert run.status == "interrupted" and 4 <= run.n_samples < 12  # requests in flight may still land
            assert f"{run.n_samples} of 12 samples are stored" in err
            assert store.get_result(run.id, "server")["consistency"]["checked"] == run.n_samples  # the tally keeps step

        server = start_llamacpp_server(port=server.port)  # back, where the manifest says it is
        assert main(["sample", "--resume", run.id, "--json", "--db", killed]) == 0
        resumed_report = json.loads(capsys.readouterr().out)
        assert resumed_report["prompts"][0]["n"] == 12
    finally:
        server.stop()
    # The same run, uninterrupted, on another server process: seeds are per sample.
    assert main(["sample", PROMPT, *SAMPLE, "--db", clean, *openai(llamacpp_server)]) == 0
    capsys.readouterr()
    with Store(killed) as a, Store(clean) as b:
        assert a.get_run(run.id).status == "complete"
        resumed = [(s.sample_id, s.token_texts, s.model_logprobs) for s in a.samples(run.id)]
        fresh = [(s.sample_id, s.token_texts, s.model_logprobs) for s in b.samples(b.list_runs()[0].id)]
    assert [r[0] for r in resumed] == list(range(12))
    assert [r[:2] for r in resumed] == [r[:2] for r in fresh]
    assert all(math.isclose(x, y, abs_tol=1e-4) for r, f in zip(resumed, fresh) for x, y in zip(r[2], f[2]))
