"""The explorer in a real browser: uvicorn serves it on a free loopback port (in a thread), Playwright
clicks through it. Forks stream into the page and add a branch whose shown probability is the API's;
samples show their counts; the sampler form changes the per-stage view; export and import give the
same tree; a foreign Host is refused; model text runs nothing. Screenshots: build/screenshots/<test>/."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.browser.conftest import browser_path
from tokendice.api import explore
from tokendice.engines.fake import FakeEngine
from tokendice.explore.app import build_app
from tokendice.render.report.svg import num

XSS = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(2)>"
PROMPT = "The capital of France is"
VOCAB = ["<eos>", " Paris", " Lyon", " Nice", ".", " is", " big", " old", PROMPT]
TABLE = {
    (): {" Paris": 0.6, " Lyon": 0.3, " Nice": 0.1},
    (" Paris",): {".": 0.7, " is": 0.3},
    (" Paris", "."): {"<eos>": 1.0},
    (" Paris", " is"): {" big": 0.5, " old": 0.5},
    (" Lyon",): {" is": 0.5, ".": 0.5},
    (" Lyon", " is"): {" old": 0.8, " big": 0.2},
    (" Lyon", "."): {"<eos>": 1.0},
    (" Nice",): {".": 1.0},
}
LYON = VOCAB.index(" Lyon")


class Gated(FakeEngine):
    """A FakeEngine whose steps a test can let through one by one (`gate`: one permit a step),
    to watch a continuation arrive token by token."""

    gate: threading.Semaphore | None = None

    def logits(self, state):  # type: ignore[no-untyped-def]
        if self.gate is not None:
            assert self.gate.acquire(timeout=30), "the test never let this step through"
        return super().logits(state)

    def let_through(self, steps: int = 1) -> None:
        assert self.gate is not None
        for _ in range(steps):
            self.gate.release()


def exact(texts: list[str]) -> float:
    """The probability of a completion, from TABLE (no sampler stage on)."""
    p = 1.0
    for i, text in enumerate(texts):
        p *= TABLE.get(tuple(texts[:i]), {"<eos>": 1.0}).get(text, 0.0)
    return p


def engine(vocab: list[str] = VOCAB, table: dict = TABLE) -> Gated:  # type: ignore[type-arg]
    base = FakeEngine.from_table(vocab, table)
    return Gated(vocab, base._next_logits, eos_token_ids=(0,), model_id="fake-table")


@pytest.fixture
def serve() -> Any:
    """`serve(explorer) -> url`: the explorer app on uvicorn, on a free port of 127.0.0.1."""
    import uvicorn

    running = []

    def start(explorer: Any) -> str:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        server = uvicorn.Server(uvicorn.Config(build_app(explorer), log_level="warning"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        running.append((server, thread, sock))
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline, "the explorer did not start"
            time.sleep(0.02)
        return f"http://127.0.0.1:{sock.getsockname()[1]}/"

    yield start
    for server, thread, sock in running:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture
def explorer_page(serve, open_page) -> Callable[..., Any]:  # type: ignore[no-untyped-def]
    """`explorer_page(explorer)`: the page served and opened, the first branch shown with its step 0."""

    def open_(explorer: Any, width: int = 1280, height: int = 900) -> Any:
        url = serve(explorer)
        opened = open_page(url, width=width, height=height)
        opened.url = url
        page = opened.page
        page.wait_for_selector("body[data-ready=true]")
        page.wait_for_selector("#ex-step table.td-candidates")
        return opened

    return open_


def assert_clean(opened: Any, console_errors: bool = False) -> None:
    """Nothing requested but the explorer's own origin, no page error, no dialog (no script ran);
    no console error unless the test provoked one (a refused request logs one)."""
    outside = [r for r in opened.requests if not r.startswith(opened.url)]
    assert outside == [], f"requests that left the explorer: {outside}"
    assert opened.errors == [], f"page errors: {opened.errors}"
    assert opened.dialogs == [], f"a script ran: {opened.dialogs}"
    if not console_errors:
        assert [c for c in opened.console if c.startswith("error")] == [], opened.console


def node(page: Any, branch: int) -> Any:
    return page.locator(f'.ex-node[data-branch="{branch}"]')


def select_step(page: Any, step: int) -> None:
    page.locator(f'#ex-trace .td-tokens.td-by-model a[data-step="{step}"]').click()
    page.wait_for_selector("body[data-idle=true]")  # no request in flight: the panel is this step's
    page.locator(f'#ex-step[data-step="{step}"]').wait_for()


def fork(page: Any, token_id: int) -> int:
    """Click the candidate `token_id` in the step panel; the id of the branch it made, once shown."""
    before = page.locator(".ex-node").count()
    page.locator(f'#ex-step tr.td-forkable[data-token="{token_id}"]').click()
    page.locator(".ex-node").nth(before).wait_for()
    made = before  # ids are given in order
    page.locator(f'.ex-node.ex-selected[data-branch="{made}"]').wait_for()
    page.locator("#ex-step .ex-done").wait_for()
    return made


def test_clicking_an_alternative_forks_streams_and_shows_the_exact_probability(explorer_page):
    from playwright.sync_api import expect

    e = engine()
    x = explore(PROMPT, engine=e, seed=3, max_new_tokens=5, save=False)
    opened = explorer_page(x)
    page = opened.page
    first = x.tree.branch(0)
    expect(node(page, 0).locator(".ex-p .ex-v")).to_have_text(num(first.prob))
    opened.screenshot("1-first-branch")

    e.gate = threading.Semaphore(0)  # the model decodes a step only when the test lets it
    page.locator(f'#ex-step tr.td-forkable[data-token="{LYON}"]').click()
    e.let_through()
    page.locator("#ex-live .ex-tok.ex-forced").wait_for()  # the forced token, on screen before the rest is decoded
    assert page.locator("#ex-live .ex-tok.ex-forced").inner_text() == " Lyon"
    e.let_through()
    page.locator("#ex-live .ex-tok").nth(1).wait_for()  # the first generated one
    assert page.locator(".ex-node").count() == 1 and page.locator("#ex-live .ex-tok").count() == 2  # streamed, one by one
    opened.screenshot("2-streaming")
    page.locator('#ex-trace .td-tokens.td-by-model a[data-step="1"]').click()  # mid-stream: the fork keeps the panel
    assert page.locator('#ex-step[data-step="0"] #ex-live .ex-tok').count() == 2
    gate, e.gate = e.gate, None
    gate.release(10)
    page.locator('.ex-node.ex-selected[data-branch="1"]').wait_for()

    made = x.tree.branch(1)
    assert made.parent == 0 and made.fork_step == 0 and made.tokens[0] == LYON
    shown = node(page, 1).locator(".ex-p")
    assert shown.locator(".ex-v").inner_text() == num(made.prob)  # the API's value, as the report views write it
    assert float(shown.get_attribute("data-prob")) == made.prob  # and exactly
    assert made.prob == pytest.approx(exact([s.chosen.text for s in made.steps]))  # by hand, from the table
    head = page.locator(".ex-branch .ex-big[data-prob]")
    assert float(head.get_attribute("data-prob")) == made.prob and head.locator(".ex-v").inner_text() == num(made.prob)
    assert node(page, 1).locator(".ex-lp .ex-v").inner_text() == num(made.model_logprob)
    assert "forked from branch 0 at step 0" in page.locator(".ex-branch").inner_text()
    strip = page.locator("#ex-trace .td-tokens.td-by-model a").all_inner_texts()
    assert strip == [s.chosen.text for s in made.steps]  # the new branch's trace is shown
    opened.screenshot("3-forked")

    select_step(page, 1)  # a fork of the fork: deeper in the tree
    other = next(c.token_id for c in x.step_view(1, 1).top if c.token_id != made.tokens[1] and c.sampling_prob > 0)
    deeper = fork(page, other)
    assert x.tree.branch(deeper).parent == 1
    assert float(node(page, deeper).locator(".ex-p").get_attribute("data-prob")) == x.tree.branch(deeper).prob
    assert page.locator(f'.ex-node[data-branch="1"] + ul .ex-node[data-branch="{deeper}"]').count() == 1  # drawn under its parent
    opened.screenshot("4-tree")
    assert_clean(opened)


def test_sampling_n_from_a_node_shows_n_samples_and_their_counts(explorer_page):
    x = explore(PROMPT, engine=engine(), seed=3, max_new_tokens=5, save=False)
    opened = explorer_page(x)
    page = opened.page
    select_step(page, 1)
    page.fill("#ex-n", "300")
    page.click("#ex-sample")
    page.locator(".ex-sample-table").wait_for()
    drawn = x.tree.samples[-1]
    assert (drawn.branch, drawn.step, drawn.n) == (0, 1, 300)
    counts = [int(c) for c in page.locator(".ex-sample-table tbody .ex-count").all_inner_texts()]
    assert sum(counts) == 300 and page.locator(".ex-sample-table .ex-total").inner_text() == "300"
    assert counts == [c["count"] for c in drawn.completions]
    texts = [json.loads(t) for t in page.locator(".ex-sample-table tbody td.tok").all_inner_texts()]
    assert texts == [c["text"] for c in drawn.completions]
    exact = page.locator(".ex-sample-table tbody tr").first.locator("td").nth(3).inner_text()
    assert exact == num(drawn.completions[0]["exact_prob"])
    assert page.locator(".ex-samples-head").inner_text().startswith("300 samples")
    assert page.locator(".ex-bars svg").count() == 1
    page.locator(".ex-samples").scroll_into_view_if_needed()
    opened.screenshot("samples")
    assert_clean(opened)


def test_changing_a_sampler_value_updates_the_per_stage_view(explorer_page):
    from playwright.sync_api import expect

    x = explore(PROMPT, engine=engine(), seed=3, max_new_tokens=5, save=False)
    opened = explorer_page(x)
    page = opened.page
    assert page.locator("#ex-step th", has_text="after top_k").count() == 0
    page.fill('input[name="top_k"]', "2")
    page.press('input[name="top_k"]', "Tab")  # a change applies at once
    expect(page.locator("#ex-step th", has_text="after top_k=2")).to_have_count(1)
    assert x.params.top_k == 2
    nice = page.locator(f'#ex-step .ex-candidates tr[data-token="{VOCAB.index(" Nice")}"]')
    assert "td-removed" in nice.get_attribute("class") and "top_k=2" in nice.inner_text()
    lyon = page.locator(f'#ex-step .ex-candidates tr[data-token="{LYON}"] td.n').all_inner_texts()
    assert lyon[-1] == num(0.3 / 0.9)  # p(sampling) renormalised over the two kept
    expect(node(page, 0).locator(".ex-tag")).to_have_text("other sampler")  # branch 0 was grown under the old one
    page.fill('input[name="temperature"]', "0.5")
    page.press('input[name="temperature"]', "Tab")
    expect(page.locator("#ex-step th", has_text="after temperature=0.5")).to_have_count(1)
    opened.screenshot("per-stage")

    page.fill('input[name="top_p"]', "1.5")  # a bad value: refused, said in the page, nothing changed
    page.press('input[name="top_p"]', "Tab")
    error = page.locator("#ex-error")
    expect(error).to_be_visible()
    assert "top_p" in error.inner_text() and "(0, 1]" in error.inner_text()
    assert page.locator('input[name="top_p"]').get_attribute("aria-invalid") == "true" and x.params.top_p == 1.0
    opened.screenshot("bad-value")
    page.fill('input[name="top_p"]', "0.9")
    page.press('input[name="top_p"]', "Tab")
    expect(error).to_be_hidden()
    page.check('input[name="greedy"]')
    expect(page.locator("#ex-step .td-note", has_text="greedy")).to_have_count(1)
    assert x.params.do_sample is False
    assert_clean(opened, console_errors=True)  # the refused value logged a 400


def test_exporting_and_reopening_gives_the_same_tree(explorer_page, tmp_path):
    from playwright.sync_api import expect

    x = explore(PROMPT, engine=engine(), seed=3, max_new_tokens=5, save=False)
    opened = explorer_page(x)
    page = opened.page
    fork(page, LYON)
    page.click("#ex-sample")
    page.locator(".ex-sample-table").wait_for()
    shown = page.locator(".ex-node .ex-p").evaluate_all("els => els.map(e => e.dataset.prob)")
    with page.expect_download() as download:
        page.click("#ex-export")
    path = tmp_path / "tree.json"
    download.value.save_as(path)
    data = json.loads(path.read_text())
    assert data == x.tree.to_dict()  # the whole tree: branches, steps, samples

    select_step(page, 0)
    fork(page, VOCAB.index(" Nice"))  # grow on, then go back to the file
    expect(page.locator(".ex-node")).to_have_count(3)
    page.set_input_files("#ex-import-file", str(path))
    expect(page.locator(".ex-node")).to_have_count(2)
    page.locator('.ex-node.ex-selected[data-branch="0"]').wait_for()
    assert page.locator(".ex-node .ex-p").evaluate_all("els => els.map(e => e.dataset.prob)") == shown
    conn = http.client.HTTPConnection("127.0.0.1", int(opened.url.rsplit(":", 1)[1].strip("/")))
    conn.request("GET", "/api/export")
    assert json.loads(conn.getresponse().read()) == data  # the server's tree is the exported one again
    opened.screenshot("reopened")

    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    page.set_input_files("#ex-import-file", str(bad))
    expect(page.locator("#ex-error")).to_contain_text("bad.json is not JSON")
    opened.screenshot("import-error")
    assert_clean(opened)


def test_a_request_with_a_foreign_host_header_is_refused(serve, browser):
    url = serve(explore(PROMPT, engine=engine(), seed=3, max_new_tokens=5, save=False))
    port = int(url.rsplit(":", 1)[1].strip("/"))
    for host in ("evil.example", f"evil.example:{port}", f"localhost.evil.example:{port}"):
        conn = http.client.HTTPConnection("127.0.0.1", port)
        conn.request("GET", "/api/tree", headers={"Host": host})
        response = conn.getresponse()
        assert response.status == 400 and "unknown Host" in json.loads(response.read())["error"]
    # DNS rebinding, as a browser sees it: a name of the attacker's that resolves to 127.0.0.1
    rebound = browser.browser_type.launch(executable_path=browser_path(),
                                          args=["--no-sandbox", "--host-resolver-rules=MAP evil.example 127.0.0.1"])  # fmt: skip
    try:
        page = rebound.new_page()
        response = page.goto(f"http://evil.example:{port}/")
        assert response.status == 400 and "unknown Host" in page.content()
        same = page.goto(f"http://evil.example:{port}/api/export")
        assert same.status == 400
    finally:
        rebound.close()


def test_model_text_runs_nothing(explorer_page):
    vocab = ["<eos>", XSS, IMG, " ", " x", "<b>b</b>"]
    table = {(): {XSS: 0.6, IMG: 0.3, "<b>b</b>": 0.1}, (XSS,): {IMG: 1.0}, (IMG,): {XSS: 0.5, " x": 0.5}, (XSS, IMG): {"<eos>": 1.0}}
    x = explore(f"{XSS} {IMG}", engine=engine(vocab, table), seed=1, max_new_tokens=3, save=False)
    opened = explorer_page(x)
    page = opened.page
    fork(page, vocab.index(IMG))
    page.click("#ex-sample")
    page.locator(".ex-sample-table").wait_for()
    page.wait_for_timeout(200)  # an onerror would have fired by now
    assert_clean(opened)
    assert page.locator("img").count() == 0 and page.locator("b:text-is('b')").count() == 0
    assert page.locator("script").count() == 1  # the page's own, nothing else
    assert XSS in page.locator("#ex-prompt").inner_text() and IMG in page.locator("#ex-prompt").inner_text()
    assert IMG in node(page, 1).locator(".ex-text").inner_text() and IMG in node(page, 1).locator(".ex-fork").inner_text()
    assert XSS in page.locator("#ex-trace .td-tokens.td-by-model").inner_text()
    assert IMG in page.locator(".ex-sample-table").inner_text()
    assert page.title() == f"tokendice explore · {XSS} {IMG}"
    opened.screenshot("hostile")


@pytest.mark.model
def test_on_the_embedded_model(hf_engine, explorer_page):
    from playwright.sync_api import expect

    x = explore("The capital of France is", engine=hf_engine, seed=0, max_new_tokens=5, save=False,
                temperature=0.7, top_k=50, top_p=0.9, repetition_penalty=1.2)  # the notebook's sampler, shorter
    opened = explorer_page(x)
    page = opened.page
    first = x.tree.branch(0)
    step, alternative = next((k, c) for k in range(len(first.steps)) for c in x.step_view(0, k).top
                             if c.token_id != first.tokens[k] and c.sampling_prob > 0)  # the first step the sampler leaves a choice at
    select_step(page, step)
    made = fork(page, alternative.token_id)
    branch = x.tree.branch(made)
    assert branch.tokens[step] == alternative.token_id and branch.prob > 0
    assert page.locator("#ex-step th", has_text="after top_p=0.9").count() == 1  # the per-stage view of the chain
    assert float(node(page, made).locator(".ex-p").get_attribute("data-prob")) == branch.prob
    assert node(page, made).locator(".ex-p .ex-v").inner_text() == num(branch.prob)
    opened.screenshot("forked")
    page.fill("#ex-n", "100")
    page.click("#ex-sample")
    page.locator(".ex-sample-table").wait_for(timeout=60000)
    assert page.locator(".ex-sample-table .ex-total").inner_text() == "100"
    expect(page.locator(".ex-samples-head")).to_contain_text("100 samples")
    opened.screenshot("samples")
    assert_clean(opened)
