"""The trace report in a real browser: it opens from disk without a request or a console error,
shows the right numbers, and runs nothing that model text carries."""

from __future__ import annotations

import pytest

import tokendice as td
from tokendice.engines.fake import FakeEngine

XSS = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(2)>"
VOCAB = ["<eos>", " Paris", ".", " Lyon", XSS, IMG, " is", "The capital ", " "]
TABLE = {
    (): {" Paris": 0.7, " Lyon": 0.2, XSS: 0.1},
    (" Paris",): {".": 0.6, IMG: 0.3, "<eos>": 0.1},
    (" Paris", "."): {"<eos>": 1.0},
    (" Paris", IMG): {"<eos>": 1.0},
}


@pytest.fixture
def trace() -> td.Trace:
    engine = FakeEngine.from_table(VOCAB, TABLE)
    return td.trace(f"The capital {IMG} is", engine=engine, do_sample=False, top=4, top_k=3, save=False)


def test_the_trace_page_is_clean_and_shows_the_numbers(trace, open_page, tmp_path):
    path = trace.save_html(tmp_path / "trace.html")
    opened = open_page(path)
    opened.assert_clean()
    page = opened.page
    tokens = page.locator(".td-tokens.td-by-model a")
    assert tokens.count() == 3 and tokens.nth(0).inner_text() == " Paris"
    panel = page.locator(".td-step.td-first")
    assert panel.is_visible() and "p(model) 0.7" in panel.inner_text()
    chosen = panel.locator("tr.td-chosen td").all_inner_texts()
    assert chosen[1] == '" Paris"' and chosen[2] == "0.7"  # rank 1, p(model) 0.7
    opened.screenshot("trace")


def test_selecting_a_step_shows_its_candidates_and_stages(trace, open_page, tmp_path):
    opened = open_page(trace.save_html(tmp_path / "trace.html"))
    page = opened.page
    page.locator(".td-tokens.td-by-model a").nth(1).click()  # the "." token
    step1 = page.locator(".td-step:target")
    assert step1.is_visible() and "step 1: chose" in step1.inner_text()
    assert not page.locator(".td-step.td-first").is_visible()  # the selection replaced step 0
    removed = step1.locator("tr.td-removed").all_inner_texts()
    assert any("top_k=3" in row for row in removed) is False  # 3 candidates with mass: top-k 3 removes none here
    opened.screenshot("step-1")
    page.locator("label", has_text="colour by p(sampling)").click()
    assert page.locator(".td-tokens.td-by-sampling").is_visible() and not page.locator(".td-tokens.td-by-model").is_visible()
    opened.assert_clean()


def test_model_text_is_shown_as_text_and_runs_nothing(trace, open_page, tmp_path):
    engine = FakeEngine.from_table(VOCAB, {(): {XSS: 0.9, "<eos>": 0.1}, (XSS,): {IMG: 1.0}, (XSS, IMG): {"<eos>": 1.0}})
    hostile = td.trace(f"{XSS} {IMG}", engine=engine, do_sample=False, save=False)
    opened = open_page(hostile.save_html(tmp_path / "hostile.html"))
    opened.assert_clean()  # no dialog: neither the script nor the onerror ran
    text = opened.page.locator(".td-tokens.td-by-model").inner_text()
    assert XSS in text and IMG in text  # shown, as text
    assert opened.page.locator("img").count() == 0 and opened.page.locator(".td script").count() == 0
    opened.screenshot("hostile")
