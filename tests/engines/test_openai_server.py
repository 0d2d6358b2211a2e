"""The OpenAI-compatible engine against a real llama-cpp-python server on 127.0.0.1."""

from __future__ import annotations

import math

import pytest
import torch

from tokendice.engines.blackbox import check_consistency
from tokendice.engines.openai import OpenAIEngine
from tokendice.errors import ServerError
from tokendice.experiments.decoding.decode import decode
from tokendice.params import RandomSpec, SamplingParams

pytestmark = pytest.mark.server
SERVER_MODEL = "smollm2-135m"  # the --model_alias of the server in conftest.py
PROMPT = "The capital of France is"
GREEDY = SamplingParams(do_sample=False, max_new_tokens=20)
SAMPLING = SamplingParams(temperature=1.0, top_k=50, top_p=0.95, max_new_tokens=8)


@pytest.fixture
def engine(llamacpp_server: str) -> OpenAIEngine:
    return OpenAIEngine(SERVER_MODEL, base_url=llamacpp_server, concurrency=2)


@pytest.mark.model
def test_greedy_trace_matches_the_white_box_engines(engine, hf_engine, llamacpp_engine) -> None:  # type: ignore[no-untyped-def]
    c = engine.generate(PROMPT, GREEDY, seed=0, sample_id=0)
    assert c.tokens[0] == " Paris"
    assert len(c.logprobs) == len(c.tokens) == len(c.top_logprobs) and all(lp is not None for lp in c.logprobs)
    hf_first = hf_engine.tokenizer.decode([int(hf_engine.logits(hf_engine.prefill([hf_engine.tokenizer.encode(PROMPT)])).argmax())])
    assert hf_first == c.tokens[0]
    # The server reports raw logprobs: those of the llama.cpp engine's logits, same weights.
    tok = llamacpp_engine.tokenizer
    ids = tok.encode(PROMPT)
    raw = torch.log_softmax(llamacpp_engine.logits(llamacpp_engine.prefill([ids]))[0], dim=-1)
    for token, lp in c.top_logprobs[0]:
        assert math.isclose(lp, raw[tok.encode(token)[0]].item(), abs_tol=1e-3), token
    # ... along the whole greedy trace: same schedule (prompt batch, then one token at a time).
    (white,) = decode(llamacpp_engine, ids, GREEDY, RandomSpec(), [0])
    assert tok.decode(white.tokens) == c.text
    assert all(math.isclose(a, b, abs_tol=1e-3) for a, b in zip(white.model_logprobs, c.logprobs))  # type: ignore[arg-type]
    assert engine.describe()["logprobs_distribution"]["distribution"] == "raw"


def test_greedy_repeats_are_identical(engine) -> None:  # type: ignore[no-untyped-def]
    runs = [engine.generate(PROMPT, GREEDY, seed=None, sample_id=i) for i in range(3)]
    assert len({tuple(r.tokens) for r in runs}) == 1
    assert len({tuple(r.logprobs) for r in runs}) == 1  # type: ignore[arg-type]


def test_seeds_give_reproducible_samples(engine) -> None:  # type: ignore[no-untyped-def]
    first = {c.sample_id: c.text for c in engine.generate_many(PROMPT, SAMPLING, seed=7, sample_ids=range(5))}
    again = {c.sample_id: c.text for c in engine.generate_many(PROMPT, SAMPLING, seed=7, sample_ids=range(5))}
    alone = engine.generate(PROMPT, SAMPLING, seed=7, sample_id=3)
    assert first == again and alone.text == first[3]
    assert len(set(first.values())) > 1  # different sample ids draw differently
    other = {c.sample_id: c.text for c in engine.generate_many(PROMPT, SAMPLING, seed=8, sample_ids=range(5))}
    assert other != first


def test_explicit_repeat_penalty_removes_the_hidden_default(llamacpp_server: str) -> None:
    explicit = OpenAIEngine(SERVER_MODEL, base_url=llamacpp_server)
    c = explicit.generate(PROMPT, GREEDY, seed=0, sample_id=0)
    assert check_consistency(c, GREEDY) == []  # greedy picks the top reported logprob at every step

    # The DESIGN.md anomaly: without repeat_penalty the server's default 1.1 acts,
    # while the logprobs it reports stay raw. The consistency check flags it.
    implicit = OpenAIEngine(SERVER_MODEL, base_url=llamacpp_server, sampler_extensions=False)
    hidden = implicit.generate(PROMPT, GREEDY, seed=0, sample_id=0)
    assert "repeat_penalty" not in implicit.request_body(PROMPT, GREEDY, 0)
    warnings = check_consistency(hidden, GREEDY)
    assert warnings and "greedy decoding chose" in warnings[0]
    assert hidden.tokens != c.tokens

    # Requested explicitly, the same penalty gives the same tokens, and it explains them.
    penalised = GREEDY.with_(repetition_penalty=1.1)
    asked = explicit.generate(PROMPT, penalised, seed=0, sample_id=0)
    assert asked.tokens == hidden.tokens
    assert check_consistency(asked, penalised) == []


def test_chat_endpoint_reports_logprobs(llamacpp_server: str) -> None:
    chat = OpenAIEngine(SERVER_MODEL, base_url=llamacpp_server, endpoint="chat")
    c = chat.generate("What is the capital of France?", GREEDY.with_(max_new_tokens=6), seed=0, sample_id=0)
    assert c.tokens and all(lp is not None for lp in c.logprobs) and c.top_logprobs[0]
    assert "".join(c.tokens) == c.text


def test_wrong_model_name(llamacpp_server: str) -> None:
    # llama-cpp-python would silently answer with its only model: the engine checks /models first.
    wrong = OpenAIEngine("gpt-4o", base_url=llamacpp_server)
    with pytest.raises(ServerError, match=f"'gpt-4o' is not served by .*it serves: {SERVER_MODEL}"):
        wrong.generate(PROMPT, GREEDY, seed=0, sample_id=0)


def test_killed_server_keeps_completed_samples(start_llamacpp_server) -> None:  # type: ignore[no-untyped-def]
    server = start_llamacpp_server()
    try:
        e = OpenAIEngine(SERVER_MODEL, base_url=server.base_url, concurrency=1, max_retries=1)
        e._sleep = lambda _: None
        got = []
        with pytest.raises(ServerError, match=f"cannot reach the server at {server.base_url}"):
            for c in e.generate_many(PROMPT, SAMPLING.with_(max_new_tokens=4), seed=0, sample_ids=range(20)):
                got.append(c.sample_id)
                if len(got) == 3:
                    server.stop()
        assert got[:3] == [0, 1, 2]
    finally:
        server.stop()
