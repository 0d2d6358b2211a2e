"""The audit reports in a real browser: a determinism audit (conditions × prompt coloured by
agreement, forks, margins, recipe) and a prompt set's agreement (TARr@N / TARa@N), on the
FakeEngine: clean pages, the right numbers, model text shown as text."""

from __future__ import annotations

import pytest

import tokendice as td
from tokendice.cli import main
from tokendice.engines.fake import FakeEngine
from tokendice.experiments.audit.agreement import AgreementReport, PromptAgreement
from tokendice.render.report.svg import good_bad_color, num

XSS = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(2)>"
VOCAB = ["<eos>", "x", "a", "b", "c", IMG, XSS, " "]


def next_logits(prompt, generated):  # type: ignore[no-untyped-def]
    """a, b, then a near-tie: c against IMG (-0.001), then XSS, then the end."""
    logits = [-10.0] * len(VOCAB)
    logits[[2, 3, 4, 6, 0, 0][min(len(generated), 5)]] = 0.0
    if len(generated) == 2:
        logits[5] = -0.001
    return logits


def noisy() -> FakeEngine:
    """Batches of 2 or more raise IMG by 0.01: the tie at step 2 flips."""
    return FakeEngine(VOCAB, next_logits, noise=lambda batch, seq: [0, 0, 0, 0, 0, 0.01, 0, 0] if batch > 1 else None)


@pytest.fixture(autouse=True)
def quiet_machine(monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr("os.getloadavg", lambda: (0.0, 0.0, 0.0))


def test_the_audit_page_shows_agreement_forks_margins_and_the_recipe(open_page, tmp_path) -> None:  # type: ignore[no-untyped-def]
    report = td.audit(f"x {XSS}", engine=noisy(), repeats=2, conditions="batch,threads,dtype", batch_sizes=[1, 2],
                      do_sample=False, max_new_tokens=6)
    assert report.condition("batch 2").first_divergence == 2 and report.run_id
    opened = open_page(report.save_html(tmp_path / "audit.html"))
    opened.assert_clean()
    page = opened.page
    matrix = page.locator("svg[aria-label^='agreement with the baseline']")
    cells = matrix.locator("g > text").all_text_contents()
    assert "2/2 identical" in cells and "0/2 · step 2 · margin 0.001" in cells and "not applicable" in cells
    tips = matrix.locator("title").all_text_contents()
    assert any("first divergence at step 2: baseline \"c\" vs \"<img src=x onerror=alert(2)>\"" in t for t in tips)
    assert any("baseline 0.001, under batch 2 0.009" in t for t in tips)
    rows = page.locator("table.td-conditions tbody tr")
    batch = rows.nth(1).locator("td").all_inner_texts()
    assert batch[:6] == ["batch 2", "DIVERGES at step 2 (margin 0.001)", "0/2", "1", "1", "2"]
    assert batch[6] == f'"c" → "{IMG}"'
    assert "greedy, batch 1, any thread count" in page.locator(".td-recipe").inner_text()
    text = page.locator(".td-card").inner_text()
    assert "dtype: not applicable for engine fake" in text  # what was not tested, and why
    assert "changes the output here: batch 2" in text and f"tokendice diff {report.run_id}:0 {report.run_id}:2" in text
    marked = page.locator(".td-tokens mark")
    assert marked.count() == 1 and marked.inner_text() == "c"  # the baseline's token where batch 2 forked
    tokens = page.locator(".td-tokens").inner_text()
    assert tokens.startswith(f"x {XSS}") and XSS in tokens[len(f"x {XSS}"):]  # prompt and model text, as text
    assert page.locator("img").count() == 0 and page.locator(".td script").count() == 0
    opened.screenshot("audit")


def test_every_verdict_is_drawn_in_its_colour(open_page, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Batch 2 flips the tie, batch 4 only nudges a token far from any tie (same tokens, drifting
    log-probs), a failed condition and an inapplicable one are grey, with why."""
    from tokendice.experiments.audit.report import ConditionResult

    def noise(batch, seq):  # type: ignore[no-untyped-def]
        return {2: [0, 0, 0, 0, 0, 0.01, 0, 0], 4: [0, 1e-3, 0, 0, 0, 0, 0, 0]}.get(batch)

    report = td.audit("x", engine=FakeEngine(VOCAB, next_logits, noise=noise), repeats=3, conditions="batch,dtype",
                      batch_sizes=[1, 2, 4], do_sample=False, max_new_tokens=6, save=False)
    report.conditions.append(ConditionResult("engines", "llamacpp", "failed", "failed to load: no GGUF file"))
    drift = report.condition("batch 4")
    assert drift.identical and drift.max_logprob_diff > 0
    opened = open_page(report.save_html(tmp_path / "verdicts.html"))
    opened.assert_clean()
    page = opened.page
    cells = page.locator("svg[aria-label^='agreement with'] g > text").all_text_contents()
    assert f"3/3 identical · drift {num(drift.max_logprob_diff, 2)}" in cells and "failed" in cells
    fills = page.locator("svg[aria-label^='agreement with'] g > rect").evaluate_all("els => els.map(e => e.getAttribute('fill'))")
    assert fills[:5] == [good_bad_color(1.0), good_bad_color(0.0), good_bad_color(1.0), "#eeeeee", "#eeeeee"]
    verdicts = page.locator("table.td-conditions tbody tr td:nth-child(2) span")
    assert verdicts.nth(2).inner_text().startswith("same tokens, log-probs drift")
    assert "llamacpp: failed to load: no GGUF file" in page.locator(".td-card").inner_text()  # not tested, and why
    opened.screenshot("verdicts")


def test_tokendice_report_writes_the_audit_and_agreement(open_page, tmp_path, serve_engine, capsys) -> None:  # type: ignore[no-untyped-def]
    engine = serve_engine(noisy())
    audit = td.audit("x", engine=engine, repeats=2, conditions="batch", batch_sizes=[1, 2], do_sample=False, max_new_tokens=6)
    prompts = td.agreement([XSS, "xx", IMG], engine=engine, repeats=3, batch_size=2, answer_regex="^(ab)",
                           do_sample=False, max_new_tokens=6)
    out = tmp_path / "both.html"
    assert main(["report", audit.run_id, prompts.run_id, "-o", str(out)]) == 0
    opened = open_page(out)
    opened.assert_clean()
    page = opened.page
    assert page.locator(".td-card h2").all_inner_texts() == ["Determinism audit", "Agreement over a prompt set"]
    assert "0/2 · step 2 · margin 0.001" in page.locator("svg[aria-label^='agreement with'] text").all_text_contents()
    tar = page.locator(".td-tar").inner_text()
    assert "TARr@3 = 0.000 (0/3 prompts" in tar and "TARa@3 = 1.000 (3/3" in tar
    table = page.locator("table.td-prompts tbody tr")
    assert table.count() == 3
    assert table.nth(0).locator("td").all_inner_texts()[:5] == ["0", f'"{XSS}"', "2", "1", "2"]
    bars = page.locator("svg[aria-label^='distinct outputs per prompt'] title").all_text_contents()
    assert any(t.startswith(f"prompt #2: {IMG}\n2 distinct outputs over 3 repeats, 1 distinct answer") for t in bars)
    assert page.locator("img").count() == 0
    opened.screenshot("audit-and-agreement")


def test_notebook_views_hold_no_script(tmp_path) -> None:  # type: ignore[no-untyped-def]
    audit = td.audit(XSS, engine=noisy(), repeats=1, conditions="batch", batch_sizes=[1, 2], do_sample=False, save=False)
    prompts = td.agreement([XSS, IMG], engine=noisy(), repeats=2, do_sample=False, save=False)
    for result, marker in ((audit, "agreement with the baseline"), (prompts, "distinct outputs per prompt")):
        html = result._repr_html_()
        assert "<script" not in html and "<img" not in html and "&lt;script&gt;" in html and marker in html
        assert html.count('class="td-card"') == 1


def test_a_large_prompt_set_stays_small(open_page, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """1,000 prompts × 5 repeats, every repeat a different long output: the page is capped, well under 3 MB."""
    prompts = [PromptAgreement(i, f"prompt {i} " + "word " * 20, 5, None, 3, [f"output {i}.{r} " + "text " * 40 for r in range(5)], [])
               for i in range(1000)]
    report = AgreementReport(engine="fake", model="fake", params={"do_sample": False}, seed=0, rng="per-sample", repeats=5,
                             batch_size=8, setup={"engine": "fake", "batch_size": 8, "dtype": "float32", "threads": 1,
                                                  "kv_cache": True, "attention": "sdpa"},
                             answer_regex=None, tarr=0.0, tara=None, prompts=prompts)  # fmt: skip
    path = report.save_html(tmp_path / "large.html")
    size = path.stat().st_size
    assert size < 500_000, size
    opened = open_page(path)
    opened.assert_clean()
    assert "the first 300 of 1000 prompts" in opened.page.locator(".td-card").inner_text()
