"""The OpenAI-compatible engine against scripted HTTP answers (httpx.MockTransport)."""

from __future__ import annotations

import json
import math

import httpx
import pytest

from tokendice.engines import load_engine
from tokendice.engines.blackbox import BlackBoxCompletion, check_consistency, request_seed
from tokendice.engines.openai import OpenAIEngine
from tokendice.errors import ParameterError, ServerError
from tokendice.params import SamplingParams

BASE = "http://testserver:8000/v1"
GREEDY = SamplingParams(do_sample=False, max_new_tokens=2)


def completion_body(tokens=(" Paris", "."), logprobs=(-0.26, -1.0), with_logprobs=True) -> dict:
    lp = {
        "tokens": list(tokens),
        "token_logprobs": list(logprobs),
        "top_logprobs": [{t: v, " the": v - 1.5} for t, v in zip(tokens, logprobs)],
        "text_offset": [0, 6],
    }
    return {
        "id": "cmpl-1",
        "object": "text_completion",
        "model": "smollm2-135m",
        "system_fingerprint": "b1234",
        "choices": [
            {"index": 0, "text": "".join(tokens), "logprobs": lp if with_logprobs else None, "finish_reason": "length"}
        ],
    }


MODELS = {"object": "list", "data": [{"id": "smollm2-135m", "object": "model", "owned_by": "me"}]}


class Server:
    """A scripted server: a queue of (status, body) answers for completions."""

    def __init__(self, answers=None, models=MODELS) -> None:
        self.answers = list(answers or [])
        self.models = models
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json=self.models) if self.models else httpx.Response(404, json={"detail": "Not Found"})
        status, body = self.answers.pop(0) if self.answers else (200, completion_body())
        if isinstance(body, Exception):
            raise body
        return httpx.Response(status, json=body)

    def bodies(self) -> list[dict]:
        return [json.loads(r.content) for r in self.requests if r.method == "POST"]


def engine(scripted: Server, **options) -> OpenAIEngine:
    e = OpenAIEngine("smollm2-135m", base_url=BASE, transport=httpx.MockTransport(scripted), **options)
    e.delays = []
    e._sleep = e.delays.append
    return e


def test_parses_a_completion_and_detects_the_server() -> None:
    e = engine(Server())
    c = e.generate("The capital of France is", GREEDY, seed=0, sample_id=3)
    assert c.tokens == [" Paris", "."]
    assert c.logprobs == [-0.26, -1.0]
    assert c.top_logprobs[0] == [(" Paris", -0.26), (" the", -1.76)]
    assert c.text == " Paris." and c.finish_reason == "length" and c.system_fingerprint == "b1234"
    assert c.seed == request_seed(0, 3)
    d = e.describe()
    assert d["server"] == "llama-cpp-python"
    assert d["logprobs_distribution"]["distribution"] == "raw"
    assert d["system_fingerprint"] == ["b1234"] and d["reported_models"] == ["smollm2-135m"]


def test_every_sampler_parameter_is_sent_explicitly() -> None:
    server = Server()
    e = engine(server)
    params = SamplingParams(temperature=0.7, top_k=50, top_p=0.9, min_p=0.0, repetition_penalty=1.0, max_new_tokens=7)
    e.generate("hi", params, seed=5, sample_id=0, top_logprobs=3)
    body = server.bodies()[0]
    assert body["temperature"] == 0.7 and body["top_p"] == 0.9 and body["top_k"] == 50
    assert body["min_p"] == 0.0 and body["repeat_penalty"] == 1.0 and body["repetition_penalty"] == 1.0
    assert body["frequency_penalty"] == 0.0 and body["presence_penalty"] == 0.0
    assert body["max_tokens"] == 7 and body["logprobs"] == 3 and body["seed"] == request_seed(5, 0)
    e.generate("hi", GREEDY, seed=None, sample_id=0)
    greedy = server.bodies()[1]
    assert greedy["temperature"] == 0.0 and "seed" not in greedy
    assert greedy["top_k"] == 0  # llama-cpp-python's "off" (it rejects -1)


def test_vllm_is_detected_and_gets_its_own_top_k_off() -> None:
    vllm = {"object": "list", "data": [{"id": "smollm2-135m", "owned_by": "vllm"}]}
    server = Server(models=vllm)
    e = engine(server)
    e.generate("hi", GREEDY, seed=0, sample_id=0)
    assert server.bodies()[0]["top_k"] == -1
    assert e.describe()["server"] == "vllm" and e.logprobs_distribution == "raw"
    assert "logprobs-mode" in e.describe()["logprobs_distribution"]["source"]


def test_chat_endpoint_body_and_parsing() -> None:
    hi, hey, bang = ({"token": t, "logprob": lp} for t, lp in (("Hi", -0.1), ("Hey", -2.5), ("!", -0.3)))
    content = [{**hi, "id": 17, "top_logprobs": [hi, hey]}, {**bang, "id": 18, "top_logprobs": [bang]}]
    message = {"role": "assistant", "content": "Hi!"}
    choice = {"message": message, "logprobs": {"content": content}, "finish_reason": "stop"}
    body = {"model": "smollm2-135m", "choices": [choice]}
    server = Server([(200, body)])
    e = engine(server, endpoint="chat")
    c = e.generate("hello", GREEDY, seed=1, sample_id=0, top_logprobs=2)
    sent = server.bodies()[0]
    assert sent["messages"] == [{"role": "user", "content": "hello"}]
    assert sent["logprobs"] is True and sent["top_logprobs"] == 2
    assert c.tokens == ["Hi", "!"] and c.token_ids == [17, 18] and c.top_logprobs[0][1] == ("Hey", -2.5)


def test_no_repeat_ngram_size_is_refused() -> None:
    e = engine(Server())
    with pytest.raises(ParameterError, match="no_repeat_ngram_size"):
        e.generate("hi", SamplingParams(no_repeat_ngram_size=2), seed=0, sample_id=0)


def test_openai_itself_gets_no_extension_fields() -> None:
    server = Server(models=None)
    e = engine(server, server="openai")
    e.generate("hi", GREEDY, seed=0, sample_id=0)
    assert "top_k" not in server.bodies()[0] and "repeat_penalty" not in server.bodies()[0]
    with pytest.raises(ParameterError, match="top_k"):
        e.generate("hi", SamplingParams(top_k=5), seed=0, sample_id=0)


@pytest.mark.parametrize("status", [429, 503])
def test_retries_with_exponential_backoff(status: int) -> None:
    server = Server([(status, {"error": {"message": "busy"}})] * 3)
    e = engine(server)
    c = e.generate("hi", GREEDY, seed=0, sample_id=0)
    assert c.tokens == [" Paris", "."]
    assert len(server.bodies()) == 4 and len(e.delays) == 3
    for attempt, delay in enumerate(e.delays):  # base * 2^attempt, plus up to 50% jitter
        assert 0.5 * 2**attempt <= delay <= 0.75 * 2**attempt


def test_retry_after_header_is_respected() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json=MODELS)
        handler.calls += 1
        if handler.calls == 1:
            return httpx.Response(429, headers={"retry-after": "7"}, json={"error": "slow down"})
        return httpx.Response(200, json=completion_body())

    handler.calls = 0
    e = OpenAIEngine("smollm2-135m", base_url=BASE, transport=httpx.MockTransport(handler))
    delays: list[float] = []
    e._sleep = delays.append
    e.generate("hi", GREEDY, seed=0, sample_id=0)
    assert delays == [7.0]


def test_gives_up_after_max_retries() -> None:
    e = engine(Server([(503, {"error": {"message": "overloaded"}})] * 10), max_retries=2)
    with pytest.raises(ServerError, match=r"503: overloaded \(after 3 attempts\)"):
        e.generate("hi", GREEDY, seed=0, sample_id=0)


def test_unreachable_server_names_the_url() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    e = OpenAIEngine("smollm2-135m", base_url=BASE, transport=httpx.MockTransport(refuse), max_retries=1)
    e._sleep = lambda _: None
    with pytest.raises(ServerError, match="cannot reach the server at http://testserver:8000/v1 \\(connection refused\\)"):
        e.generate("hi", GREEDY, seed=0, sample_id=0)


def test_unreachable_real_port() -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    e = OpenAIEngine("m", base_url=f"http://127.0.0.1:{port}", max_retries=0)
    with pytest.raises(ServerError, match=f"http://127.0.0.1:{port}/v1 \\(connection refused\\)"):
        e.generate("hi", GREEDY, seed=0, sample_id=0)


def test_wrong_model_name_from_model_list() -> None:
    e = OpenAIEngine("gpt-17", base_url=BASE, transport=httpx.MockTransport(Server()))
    with pytest.raises(ServerError, match="'gpt-17' is not served by .*it serves: smollm2-135m"):
        e.generate("hi", GREEDY, seed=0, sample_id=0)


def test_no_model_name_takes_the_one_model_served() -> None:
    server = Server()
    e = OpenAIEngine(None, base_url=BASE, transport=httpx.MockTransport(server))
    assert e.model_id == "smollm2-135m" and e.describe()["model"] == "smollm2-135m"
    e.generate("hi", GREEDY, seed=0, sample_id=0)
    assert server.bodies()[0]["model"] == "smollm2-135m"
    several = {"object": "list", "data": [{"id": "a"}, {"id": "b"}]}
    with pytest.raises(ParameterError, match=r"serves several models \(a, b\): choose one, e.g. model='a'") as caught:
        OpenAIEngine(None, base_url=BASE, transport=httpx.MockTransport(Server(models=several)))
    assert caught.value.param == "model"
    with pytest.raises(ParameterError, match="does not list its models"):
        OpenAIEngine(None, base_url=BASE, transport=httpx.MockTransport(Server(models=None)))


def test_wrong_model_name_from_error_body() -> None:
    server = Server([(404, {"error": {"message": "The model `gpt-17` does not exist."}})], models=None)
    e = engine(server)
    with pytest.raises(ServerError, match="model 'smollm2-135m' not available \\(404: The model `gpt-17`"):
        e.generate("hi", GREEDY, seed=0, sample_id=0)
    assert e.delays == []  # a 404 is not retried


def test_server_without_logprobs() -> None:
    e = engine(Server([(200, completion_body(with_logprobs=False))]))
    with pytest.raises(ServerError, match="no logprobs"):
        e.generate("hi", GREEDY, seed=0, sample_id=0)


def test_api_key_is_sent_but_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-test-very-secret-123"
    monkeypatch.setenv("TOKENDICE_TEST_KEY", secret)
    server = Server()
    e = engine(server, api_key_env="TOKENDICE_TEST_KEY")
    e.generate("hi", GREEDY, seed=0, sample_id=0)
    assert all(r.headers["authorization"] == f"Bearer {secret}" for r in server.requests)
    assert secret not in repr(e) and secret not in json.dumps(e.describe())
    assert secret not in repr(vars(e))
    monkeypatch.delenv("TOKENDICE_TEST_KEY")
    e.generate("hi", GREEDY, seed=0, sample_id=1)
    assert "authorization" not in server.requests[-1].headers


def test_generate_many_yields_every_sample_and_bounds_concurrency() -> None:
    import threading
    import time

    lock, active, peak = threading.Lock(), [0], [0]

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json=MODELS)
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.01)
        with lock:
            active[0] -= 1
        return httpx.Response(200, json=completion_body())

    e = OpenAIEngine("smollm2-135m", base_url=BASE, transport=httpx.MockTransport(handler), concurrency=3)
    stored: list[BlackBoxCompletion] = []
    results = list(e.generate_many("hi", GREEDY, seed=0, sample_ids=range(10), on_result=stored.append))
    assert sorted(r.sample_id for r in results) == list(range(10))
    assert stored == results and peak[0] <= 3


def test_generate_many_keeps_completed_samples_when_the_server_dies() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json=MODELS)
        if json.loads(request.content)["seed"] == request_seed(0, 5):
            raise httpx.ConnectError("Connection refused", request=request)
        return httpx.Response(200, json=completion_body())

    e = OpenAIEngine("smollm2-135m", base_url=BASE, transport=httpx.MockTransport(handler), concurrency=1, max_retries=0)
    got: list[int] = []
    with pytest.raises(ServerError, match="connection refused"):
        for c in e.generate_many("hi", GREEDY, seed=0, sample_ids=range(10)):
            got.append(c.sample_id)
    assert got == [0, 1, 2, 3, 4]


def test_load_engine_openai() -> None:
    e = load_engine("openai", "smollm2-135m", base_url="http://127.0.0.1:9")
    assert isinstance(e, OpenAIEngine) and e.base_url == "http://127.0.0.1:9/v1" and not e.kind.white_box
    with pytest.raises(ParameterError, match="base_url"):
        load_engine("openai", "m")


def make(tokens, lps, tops) -> BlackBoxCompletion:
    return BlackBoxCompletion(sample_id=0, seed=0, tokens=tokens, logprobs=lps, top_logprobs=tops)


def test_consistency_flags_a_greedy_choice_below_another_candidate() -> None:
    # DESIGN.md: at temperature 0 the server picked "-" (-2.32) over "\n" (-0.71).
    c = make(["-"], [-2.32], [[("\n", -0.71), ("-", -2.32)]])
    (warning,) = check_consistency(c, GREEDY)
    assert "greedy decoding chose '-'" in warning and "'\\n'" in warning
    ok = make(["\n"], [-0.71], [[("\n", -0.71), ("-", -2.32)]])
    assert check_consistency(ok, GREEDY) == []


def test_consistency_accepts_a_requested_penalty_that_explains_the_choice() -> None:
    c = make([" Paris", "-"], [-0.3, -2.32], [[(" Paris", -0.3)], [(" Paris", -0.5), ("-", -2.32)]])
    params = GREEDY.with_(repetition_penalty=1.3)
    assert check_consistency(c, params) == []  # " Paris" occurred before: the penalty explains it
    assert len(check_consistency(c, GREEDY)) == 1


def test_consistency_checks_top_k_and_min_p_when_sampling() -> None:
    tops = [[("a", -0.5), ("b", -1.5), ("c", -3.0), ("d", -6.0)]]
    assert check_consistency(make(["c"], [-3.0], tops), SamplingParams(top_k=3)) == []
    assert "top_k=2" in check_consistency(make(["c"], [-3.0], tops), SamplingParams(top_k=2))[0]
    # p(d)/p(a) = e^-5.5 ~ 0.004 < min_p 0.05 at temperature 1
    assert "min_p" in check_consistency(make(["d"], [-6.0], tops), SamplingParams(min_p=0.05))[0]
    assert check_consistency(make(["c"], [-3.0], tops), SamplingParams(min_p=0.05)) == []
    assert math.isfinite(tops[0][0][1])


def test_consistency_reports_missing_logprobs() -> None:
    c = make(["a"], [None], [[]])
    assert "no logprobs" in check_consistency(c, GREEDY)[0]
