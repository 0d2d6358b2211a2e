"""The explorer's HTTP routes (Starlette TestClient, FakeEngine): who may call them, what a fork
streams, that the numbers are the API's, and that bad input is a 400 with the message."""

from __future__ import annotations

import json

import pytest
from starlette.testclient import TestClient

from tests.experiments.fake_models import FORK_TABLE, FORK_VOCAB
from tokendice.api import explore
from tokendice.engines.fake import FakeEngine
from tokendice.explore.app import build_app

VOCAB, TABLE = FORK_VOCAB, FORK_TABLE
A, B, C, EOS = 1, 2, 3, 0
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def explorer():  # type: ignore[no-untyped-def]
    return explore("a", engine=FakeEngine.from_table(VOCAB, TABLE), seed=3, max_new_tokens=4, save=False)


@pytest.fixture
def client(explorer):  # type: ignore[no-untyped-def]
    with TestClient(build_app(explorer), base_url="http://127.0.0.1:8000") as c:
        yield c


def lines(response) -> list[dict]:  # type: ignore[no-untyped-def]
    return [json.loads(line) for line in response.text.splitlines() if line.strip()]


# -- who may call it --------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.1.evil.example", "192.168.1.5:8000", ""])
def test_a_foreign_host_header_is_refused(client, host):
    for method, path in [("GET", "/"), ("GET", "/api/tree"), ("GET", "/api/export"), ("POST", "/api/params")]:
        r = client.request(method, path, headers={"Host": host, **JSON}, content=b"{}")
        assert r.status_code == 400, (method, path, host)
        assert "unknown Host" in r.json()["error"]


@pytest.mark.parametrize("host", ["127.0.0.1:8000", "localhost", "LOCALHOST:1", "[::1]:8000"])
def test_loopback_names_are_served(client, host):
    assert client.get("/api/tree", headers={"Host": host}).status_code == 200


def test_a_non_json_or_cross_origin_post_is_refused(client, explorer):
    before = explorer.tree.to_dict()
    refused = [
        ({"Content-Type": "text/plain"}, b'{"branch": 0, "step": 0, "token_id": 2}'),  # a "simple" request any page can send
        ({"Content-Type": "application/x-www-form-urlencoded"}, b"branch=0&step=0&token_id=2"),
        ({}, b'{"branch": 0, "step": 0, "token_id": 2}'),
        ({**JSON, "Origin": "http://evil.example"}, b'{"branch": 0, "step": 0, "token_id": 2}'),
        ({**JSON, "Origin": "null"}, b'{"branch": 0, "step": 0, "token_id": 2}'),  # a sandboxed frame or a file
    ]
    for headers, body in refused:
        for path in ("/api/fork", "/api/params", "/api/sample", "/api/import"):
            r = client.post(path, headers=headers, content=body)
            assert r.status_code == 403, (path, headers)
            assert "not a request from the explorer's page" in r.json()["error"]
    assert client.options("/api/fork", headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}).status_code == 403
    assert explorer.tree.to_dict() == before  # nothing changed
    same = client.post("/api/params", headers={**JSON, "Origin": "http://127.0.0.1:8000"}, content=b'{"top_k": 2}')
    assert same.status_code == 200 and same.json()["params"]["top_k"] == 2


def test_the_page_allows_only_its_own_script(client):
    r = client.get("/")
    assert r.status_code == 200 and "script-src 'self'" in r.headers["content-security-policy"]
    assert "default-src 'none'" in r.headers["content-security-policy"]
    assert '<script src="/static/explorer.js"' in r.text and "<script>" not in r.text
    assert "{{" not in r.text and "tokendice explore · a" in r.text
    js = client.get("/static/explorer.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert "innerHTML = data.html" in js.text  # only server-drawn (escaped) HTML goes through innerHTML
    assert client.get("/static/app.py").status_code == 404
    assert client.get("/static/..%2Fapp.py").status_code == 404


def test_the_prompt_in_the_page_title_is_escaped():
    vocab = ["<eos>", "<script>alert(1)</script>", "x"]
    e = FakeEngine.from_table(vocab, {(): {"x": 1.0}})
    x = explore("<script>alert(1)</script>", engine=e, max_new_tokens=2, save=False)
    with TestClient(build_app(x), base_url="http://127.0.0.1") as c:
        page = c.get("/").text
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


# -- what the routes answer -------------------------------------------------------------------------


def test_fork_streams_one_line_per_step_then_the_branch(client, explorer):
    r = client.post("/api/fork", json={"branch": 0, "step": 0, "token_id": B})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    got = lines(r)
    steps, done = got[:-1], got[-1]
    assert [s["type"] for s in steps] == ["step"] * len(steps) and done["type"] == "done"
    made = explorer.tree.branch(done["branch"]["id"])
    assert [s["step"] for s in steps] == list(range(len(made.steps)))  # one line per decoded step, the forced one first
    assert [s["token_id"] for s in steps] == made.tokens and steps[0]["token_id"] == B
    assert [s["text"] for s in steps] == [st.chosen.text for st in made.steps]
    assert steps[0]["model_prob"] == pytest.approx(0.3) and steps[0]["sampling_prob"] == pytest.approx(0.3)
    assert done["branch"]["prob"] == made.prob == pytest.approx(0.3 * 0.5)  # the API's value, exactly
    assert done["branch"]["model_logprob"] == made.model_logprob
    assert done["branch"] | {"forced": "b", "parent": 0, "fork_step": 0} == done["branch"]
    tree = client.get("/api/tree").json()
    assert [b["prob"] for b in tree["branches"]] == [b.prob for b in explorer.tree.branches]


def test_branch_and_step_views(client, explorer):
    b = client.get("/api/branch/0").json()
    assert b["branch"]["prob"] == explorer.tree.branch(0).prob
    assert 'class="td-tokens' in b["html"] and "data-step=" in b["html"]
    step = client.get("/api/step", params={"branch": 0, "step": 0}).json()
    ids = [c["token_id"] for c in step["candidates"]]
    assert ids[0] == explorer.tree.branch(0).tokens[0] and len(ids) == len(set(ids))  # the chosen one first, none twice
    assert step["html"].count("td-forkable") == len(ids)  # every candidate row can be clicked to fork
    assert 'data-token="2"' in step["html"]
    client.post("/api/params", json={"top_k": 2})
    narrowed = client.get("/api/step", params={"branch": 0, "step": 0}).json()
    assert "after top_k=2" in narrowed["html"]  # the per-stage view follows the sampler now
    probs = {c["token_id"]: c["sampling_prob"] for c in narrowed["candidates"]}
    assert probs[C] == 0 and probs[A] == pytest.approx(0.5 / 0.8)


def test_sample_returns_n_in_all(client, explorer):
    r = client.post("/api/sample", json={"branch": 0, "step": 0, "n": 250})
    data = r.json()
    assert r.status_code == 200 and data["n"] == 250
    assert sum(c["count"] for c in data["completions"]) == 250
    assert sum(c["exact_prob"] for c in data["completions"]) == pytest.approx(1.0)  # all five completions drawn
    assert "<svg" in data["html"] and "exact p(sampling | prefix)" in data["html"]
    assert explorer.tree.samples[-1].n == 250


def test_export_then_import_gives_the_same_tree(client, explorer):
    client.post("/api/fork", json={"branch": 0, "step": 0, "token_id": C})
    client.post("/api/sample", json={"branch": 1, "step": 1, "n": 20})
    exported = client.get("/api/export")
    assert exported.status_code == 200 and "attachment" in exported.headers["content-disposition"]
    data = exported.json()
    assert data == explorer.tree.to_dict()
    client.post("/api/fork", json={"branch": 0, "step": 0, "token_id": B})  # the tree grows on
    assert len(client.get("/api/tree").json()["branches"]) == 3
    r = client.post("/api/import", json=data)
    assert r.status_code == 200 and len(r.json()["branches"]) == 2
    assert client.get("/api/export").json() == data  # the same tree (not stored: no run id either way)
    again = lines(client.post("/api/fork", json={"branch": 1, "step": 0, "token_id": B}))  # and it grows from there
    assert again[-1]["branch"]["id"] == 2 and again[-1]["branch"]["prob"] == pytest.approx(0.15)


@pytest.mark.parametrize(
    ("method", "path", "body", "needle"),
    [
        ("POST", "/api/fork", {"branch": 0, "step": 9, "token_id": B}, "step must be in [0, 1]"),
        ("POST", "/api/fork", {"branch": 7, "step": 0, "token_id": B}, "no branch 7"),
        ("POST", "/api/fork", {"branch": 0, "step": 0, "token_id": 99}, "token_id must be a token of the vocabulary"),
        ("POST", "/api/fork", {"branch": 0, "step": 0, "token_id": "b"}, "token_id must be an integer, got 'b'"),
        ("POST", "/api/fork", {"branch": 0, "step": 0}, "token_id must be an integer, got None"),
        ("POST", "/api/fork", [1, 2], "the request body must be a JSON object"),
        ("POST", "/api/sample", {"branch": 0, "step": 0, "n": 0}, "n must be an integer >= 1"),
        ("POST", "/api/sample", {"branch": 0, "step": 0, "n": True}, "n must be an integer"),
        ("POST", "/api/params", {"top_p": 1.5}, "top_p"),
        ("POST", "/api/params", {"topk": 3}, "did you mean 'top_k'"),
        ("POST", "/api/params", {"temperature": None}, "temperature"),
        ("POST", "/api/import", {"kind": "explore", "prompt": "a"}, "not an exported explorer tree"),
        ("GET", "/api/step?branch=0&step=x", None, "step must be an integer, got 'x'"),
        ("GET", "/api/step?branch=0&step=5", None, "step must be in"),
        ("GET", "/api/branch/nine", None, "branch must be an integer"),
        ("GET", "/api/branch/4", None, "no branch 4"),
    ],
)
def test_bad_input_is_a_400_with_the_message(client, explorer, method, path, body, needle):
    before = explorer.tree.to_dict()
    r = client.request(method, path, content=None if body is None else json.dumps(body), headers=JSON)
    assert r.status_code == 400, r.text
    assert needle in r.json()["error"]
    assert explorer.tree.to_dict() == before


def test_a_broken_json_body_is_a_400(client):
    r = client.post("/api/params", content=b"{not json", headers=JSON)
    assert r.status_code == 400 and r.json() == {"error": "the request body must be a JSON object"}


def test_the_explore_command_serves_an_explorer_on_loopback(monkeypatch, serve_engine):
    """`tokendice explore PROMPT [flags]`: one API call, then the server (here: caught, not run)."""
    from tokendice.cli import main
    from tokendice.engines.fake import FakeEngine

    class PosingAsHF(FakeEngine):  # reopening loads the run's engine by name: "hf" here
        name = "hf"

        def describe(self):  # type: ignore[no-untyped-def]
            return {"engine": "hf", "model": self.model_id, "dtype": "float32", "threads": 1}

    table = FakeEngine.from_table(["<eos>", "a", "b"], {(): {"a": 0.75, "b": 0.25}, ("a",): {"<eos>": 1.0}})
    serve_engine(PosingAsHF(["<eos>", "a", "b"], table._next_logits, model_id="smollm2-135m"))
    served = {}
    monkeypatch.setattr("tokendice.explore.serve.serve", lambda explorer, host, port: served.update(explorer=explorer, host=host, port=port))
    assert main(["explore", "a", "--greedy", "--port", "8766"]) == 0
    x = served["explorer"]
    assert served["host"] == "127.0.0.1" and served["port"] == 8766
    assert x.tree.branches[0].text == "a<eos>" and x.tree.branches[0].prob == 1.0 and x.run_id is not None
    assert main(["explore", "--open", x.run_id, "--port", "8767"]) == 0  # reopened from the store
    assert served["explorer"].tree.to_dict() == x.tree.to_dict()
