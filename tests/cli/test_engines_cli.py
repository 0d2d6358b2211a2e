"""The engines through the CLI: black-box (openai) trace and sample against a scripted
HTTP server, their errors, and the llama.cpp engine on the embedded model."""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path

import httpx
import pytest

from tokendice.cli import main
from tokendice.engines.blackbox import request_seed, text_token_id
from tokendice.engines.openai import OpenAIEngine
from tokendice.store import Store

PROMPT = "The capital of France is"
URL = "http://scripted:8000/v1"
OPENAI = ["--engine", "openai", "--base-url", URL, "--model", "smollm2-135m"]
ANSWERS = [[" Paris", "."], [" Paris", ","], [" the", " capital"]]  # chosen by the request's seed


class ScriptedServer:
    """An OpenAI-compatible server (llama-cpp-python flavour) whose answer depends on the seed."""

    def __init__(self, fail_after: int | None = None, contradict: bool = False, models: tuple[str, ...] = ("smollm2-135m",)) -> None:
        self.fail_after, self.contradict, self.models = fail_after, contradict, models
        self.bodies: list[dict] = []
        self.auth: list[str | None] = []
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json={"object": "list", "data": [{"id": m, "owned_by": "me"} for m in self.models]})
        body = json.loads(request.content)
        with self._lock:
            self.bodies.append(body)
            self.auth.append(request.headers.get("authorization"))
            if self.fail_after is not None and len(self.bodies) > self.fail_after:
                raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        tokens = ANSWERS[body.get("seed", 0) % 3][: body["max_tokens"]]
        logprobs = [-0.3, -0.5][: len(tokens)]
        top = [{t: lp, " x": lp - 2.0} for t, lp in zip(tokens, logprobs)]
        if self.contradict:  # a better token the server did not pick
            top[0][" London"] = -0.1
        lp = {"tokens": tokens, "token_logprobs": logprobs, "top_logprobs": top, "text_offset": [0] * len(tokens)}
        choice = {"index": 0, "text": "".join(tokens), "logprobs": lp, "finish_reason": "length"}
        return httpx.Response(200, json={"model": "smollm2-135m", "system_fingerprint": "fp-1", "choices": [choice]})


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Route every openai engine the CLI builds to a ScriptedServer; records the options it was built with."""
    import tokendice.api._common as common

    state = {"server": ScriptedServer(), "options": []}

    def load(spec):  # type: ignore[no-untyped-def]
        assert spec.engine == "openai"
        state["options"].append(dict(spec.options))
        e = OpenAIEngine(model=spec.model, transport=httpx.MockTransport(lambda request: state["server"](request)), **spec.options)
        e._sleep = lambda _: None
        return e

    monkeypatch.setattr(common, "_LOADED", {})
    monkeypatch.setattr("tokendice.engines.spec.EngineSpec.load", load)
    return state


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tokendice: error: ") and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(
    "args,needle",
    [
        (["enumerate", PROMPT, *OPENAI], "exact enumeration (every completion with its probability) needs next-token logits"),
        (["sample", PROMPT, "--exact", *OPENAI], "--exact (an exact enumeration) needs next-token logits"),
        (["sample", PROMPT, "--at-prefix", " Paris", *OPENAI], "--at-prefix (predicted next-token probabilities) needs next-token logits"),
        (["sample", PROMPT, "--method", "branching", *OPENAI], "the branching sampler splits samples by next-token distributions"),
        (["trace", PROMPT, "--rng", "torch", *OPENAI], "use --rng per-sample"),
        (["trace", PROMPT, "--no-repeat-ngram-size", "2", *OPENAI], "no_repeat_ngram_size has no equivalent"),
        (["trace", PROMPT, "--html", "x.html", *OPENAI], "--html shows per-stage probabilities"),
    ],
)
def test_what_a_black_box_engine_cannot_do_is_one_line(args, needle, capsys, scripted) -> None:  # type: ignore[no-untyped-def]
    assert main(args) == 2
    assert needle in one_line_error(capsys)
    assert scripted["server"].bodies == []  # refused before any completion was asked for


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--engine", "openai", "--model", "m"], "needs --base-url"),
        (["--engine", "openai", "--base-url", "ftp://x", "--model", "m"], "base_url must be an http(s) URL"),
        (["--engine", "openai", "--base-url", URL, "--model", "m", "--concurrency", "0"], "--concurrency must be >= 1"),
    ],
)
def test_openai_engine_options_are_checked(args, needle, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["trace", PROMPT, *args]) == 2
    assert needle in one_line_error(capsys)


def test_black_box_trace_json_labels_the_distribution(scripted, capsys, monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-123")
    db = tmp_path / "t.db"
    assert main(["trace", PROMPT, "--greedy", "--max-new-tokens", "2", "--json", "--db", str(db), *OPENAI]) == 0
    out = capsys.readouterr()
    data = json.loads(out.out)
    assert data["white_box"] is False and data["logprobs_distribution"]["distribution"] == "raw"
    assert [s["text"] for s in data["steps"]] == ANSWERS[request_seed(0, 0) % 3]
    assert data["steps"][0]["rank"] == 1 and data["steps"][0]["top"][1]["text"] == " x"
    assert "per-stage attribution" in data["note"] and data["warnings"] == [] and out.err == ""
    assert data["request"]["repeat_penalty"] == 1.0 and data["request"]["temperature"] == 0.0  # sent explicitly
    assert scripted["server"].auth == ["Bearer sk-secret-123"]  # the key is sent ...
    assert "sk-secret-123" not in out.out and b"sk-secret-123" not in db.read_bytes()  # ... never printed or stored
    with Store(db) as store:
        run = store.get_run(data["run_id"])
        assert run.manifest["request"]["sampler_fields"]["repeat_penalty"] == 1.0
        assert run.manifest["engine"]["system_fingerprint"] == ["fp-1"]
        (sample,) = store.samples(run.id)
        assert sample.token_texts == [s["text"] for s in data["steps"]] and sample.tokens[0] == text_token_id(sample.token_texts[0])


def test_black_box_trace_table_and_contradiction_warning(scripted, capsys) -> None:  # type: ignore[no-untyped-def]
    scripted["server"].contradict = True
    assert main(["trace", PROMPT, "--greedy", "--max-new-tokens", "2", *OPENAI]) == 0
    out = capsys.readouterr()
    assert "p(model)" in out.out and "reported candidates" in out.out and "per-stage attribution" in out.out
    assert out.err.startswith("tokendice: warning: step 0: greedy decoding chose") and "' London'" in out.err


def test_black_box_sample_sends_per_sample_seeds_and_stores_batches(scripted, capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    db = str(tmp_path / "s.db")
    assert main(["sample", PROMPT, "-n", "9", "--seed", "4", "--max-new-tokens", "2", "--concurrency", "2", "--json", "--db", db, *OPENAI]) == 0
    report = json.loads(capsys.readouterr().out)
    bodies = scripted["server"].bodies
    assert sorted(b["seed"] for b in bodies) == sorted(request_seed(4, i) for i in range(9))
    assert report["server"]["server"]["system_fingerprint"] == ["fp-1"] and report["warnings"] == []
    assert report["server"]["consistency"]["checked"] == 9
    analysis = report["prompts"][0]
    assert analysis["n"] == 9 and analysis["exact_probabilities"].startswith("sampling distribution, from none")
    expected = {"".join(ANSWERS[request_seed(4, i) % 3]) for i in range(9)}
    assert {c["text"] for c in analysis["completions"]} == expected
    with Store(db) as store:
        run = store.get_run(report["run_id"])
        assert run.status == "complete" and run.n_samples == 9
        assert run.manifest["request"]["sampler_fields"]["top_k"] == 0 and run.manifest["request"]["top_logprobs"] == 5
        steps = list(store.step_rows(run.id))
        assert all(r["token_id"] < 0 for r in steps)  # the server reported text, not ids
        assert all(math.isnan(r["sampling_logprob"]) for r in steps)  # not reported: unknown
        assert {r["model_logprob"] for r in steps} == {-0.3, -0.5}  # raw logprobs: the model column


def test_server_failure_keeps_samples_and_resume_finishes_identically(scripted, capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    args = ["-n", "12", "--seed", "9", "--max-new-tokens", "2", "--concurrency", "2", "--max-retries", "0", "--json"]
    killed, clean = str(tmp_path / "killed.db"), str(tmp_path / "clean.db")
    scripted["server"] = ScriptedServer(fail_after=5)
    assert main(["sample", PROMPT, *args, "--db", killed, *OPENAI]) == 2
    err = one_line_error(capsys)
    assert "cannot reach the server at http://scripted:8000/v1 (connection refused)" in err
    with Store(killed) as store:
        run = store.list_runs()[0]
        assert run.status == "interrupted" and run.n_samples == 5
        assert f"5 of 12 samples are stored: continue with tokendice sample --resume {run.id}" in err

    scripted["server"] = ScriptedServer()  # back up
    assert main(["sample", "--resume", run.id, "--json", "--db", killed]) == 0
    assert scripted["options"][-1]["base_url"] == URL and scripted["options"][-1]["concurrency"] == 2  # from the manifest
    assert scripted["options"][-1]["max_retries"] == 0 and scripted["options"][-1]["server"] == "llama-cpp-python"
    assert len(scripted["server"].bodies) == 7  # only the missing samples
    assert main(["sample", PROMPT, *args, "--db", clean, *OPENAI]) == 0
    capsys.readouterr()
    with Store(killed) as a, Store(clean) as b:
        resumed = [(s.sample_id, s.token_texts, s.text) for s in a.samples(run.id)]
        fresh = [(s.sample_id, s.token_texts, s.text) for s in b.samples(b.list_runs()[0].id)]
        assert a.get_run(run.id).status == "complete"
    assert len(resumed) == 12 and resumed == fresh


def test_resume_applies_new_transport_settings_and_refuses_other_ones(scripted, capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Defect 8: --resume ignored --timeout and --concurrency (a run whose timeout was too short
    could not be finished with a longer one)."""
    db = str(tmp_path / "r.db")
    scripted["server"] = ScriptedServer(fail_after=4)
    args = ["-n", "12", "--seed", "9", "--max-new-tokens", "2", "--concurrency", "2", "--max-retries", "0", "--timeout", "3", "--json"]
    assert main(["sample", PROMPT, *args, "--db", db, *OPENAI]) == 2
    capsys.readouterr()
    with Store(db) as store:
        run = store.list_runs()[0]
    scripted["server"] = ScriptedServer()
    for wrong, needle in [(["--model", "other"], "--model other (the run used --model smollm2-135m)"), (["--seed", "1"], "--seed 1 (the run used --seed 9)"),
                          (["--engine", "hf"], "--engine hf (the run used --engine openai)"), (["--chat"], "--chat")]:  # fmt: skip
        assert main(["sample", "--resume", run.id, "--db", db, *wrong]) == 2
        assert needle in one_line_error(capsys)
    assert scripted["server"].bodies == [] and len(scripted["options"]) == 1  # refused before the engine was built
    assert main(["sample", "--resume", run.id, "--db", db, "--timeout", "30", "--concurrency", "3", "--max-retries", "2",
                 "--base-url", "http://127.0.0.1:8000/v1", "--json"]) == 0  # fmt: skip
    options = scripted["options"][-1]
    assert (options["timeout"], options["concurrency"], options["max_retries"]) == (30.0, 3, 2)  # given anew: they apply
    assert options["base_url"] == "http://127.0.0.1:8000/v1" and options.get("endpoint", "completions") == "completions"
    report = json.loads(capsys.readouterr().out)
    assert report["prompts"][0]["n"] == 12 and report["server"]["consistency"]["checked"] == 12


def test_openai_without_model_uses_the_one_the_server_serves(scripted, capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Defect 8: --engine openai without --model was an error even when the server serves one model."""
    db = str(tmp_path / "m.db")
    assert main(["sample", PROMPT, "-n", "3", "--max-new-tokens", "2", "--json", "--db", db, "--engine", "openai", "--base-url", URL]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"] == "smollm2-135m" and report["prompts"][0]["n"] == 3
    assert {b["model"] for b in scripted["server"].bodies} == {"smollm2-135m"}
    assert main(["sample", "--resume", report["run_id"], "--db", db, "--json"]) == 0  # the manifest names the model
    capsys.readouterr()
    import tokendice.api._common as common

    common.forget_engines()  # loaded engines are kept per spec: ask the server again
    scripted["server"] = ScriptedServer(models=("a", "b"))
    assert main(["sample", PROMPT, "-n", "3", "--db", db, "--engine", "openai", "--base-url", URL]) == 2
    assert f"{URL} serves several models (a, b): choose one, e.g. --model a" in one_line_error(capsys)


def test_the_consistency_tally_is_stored_with_the_samples_it_counts(scripted, monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Defect 8: after kill -9 the stored consistency count missed the killed process's samples
    (it was written at the end). Now each batch carries it, in the same transaction."""
    import tokendice as td
    from tokendice.engines.spec import EngineSpec

    scripted["server"].contradict = True
    seen = []
    add = Store.add_samples

    def add_and_look(self, run_id, samples, results=None):  # type: ignore[no-untyped-def]
        add(self, run_id, samples, results)
        consistency = self.get_result(run_id, "server")["consistency"]
        seen.append((self.count_samples(run_id), consistency["checked"], len(consistency["contradicting"])))

    monkeypatch.setattr(Store, "add_samples", add_and_look)
    spec = EngineSpec("openai", "smollm2-135m", base_url=URL, concurrency=2)
    run = td.sample(PROMPT, n=7, engine=spec, seed=2, max_new_tokens=2, do_sample=False, db=str(tmp_path / "c.db"))
    assert [stored for stored, _, _ in seen] == [2, 4, 6, 7]
    assert all(stored == checked == contradicting for stored, checked, contradicting in seen)  # in step after every batch
    assert run.server["consistency"]["checked"] == 7 and "7 of 7 samples contradict" in run.warnings[0]


# -- the llama.cpp engine (white-box) through the CLI, on the embedded GGUF -----------------

LLAMACPP = ["--engine", "llamacpp", "--threads", "1"]


@pytest.fixture
def llama_cpp() -> None:
    pytest.importorskip("llama_cpp", reason="llama_cpp not importable: pip install 'tokendice[llamacpp]'")


@pytest.mark.model
def test_llamacpp_trace_sample_and_enumerate(llama_cpp, capsys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db = ["--db", str(tmp_path / "l.db")]
    assert main(["trace", PROMPT, "--greedy", "--max-new-tokens", "3", "--json", *LLAMACPP, *db]) == 0
    trace = json.loads(capsys.readouterr().out)
    assert trace["engine"] == "llamacpp" and trace["steps"][0]["chosen"]["text"] == " Paris"
    assert trace["steps"][0]["chosen"]["model_prob"] == pytest.approx(0.7677, abs=5e-4)  # DESIGN.md (hf: 0.7725)
    for method in ("independent", "branching"):
        assert main(["sample", PROMPT, "-n", "30", "--max-new-tokens", "3", "--temperature", "0.7", "--top-k", "5",
                     "--method", method, "--json", *LLAMACPP, *db]) == 0  # fmt: skip
        analysis = json.loads(capsys.readouterr().out)["prompts"][0]
        assert analysis["n"] == 30 and analysis["goodness_of_fit"]["p_value"] > 1e-4
    assert main(["enumerate", PROMPT, "--max-new-tokens", "2", "--temperature", "0.5", "--top-k", "3", "--json", *LLAMACPP, *db]) == 0
    exact = json.loads(capsys.readouterr().out)
    assert exact["found_mass"] == pytest.approx(1.0, abs=1e-6) and exact["completions"][0]["text"] == " Paris."
