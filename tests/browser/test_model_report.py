"""One report on the embedded model, end to end: a real trace and sample run drawn, opened in the
browser, the numbers on the page those of the result."""

from __future__ import annotations

import pytest

import tokendice as td


@pytest.mark.model
def test_a_report_of_a_real_trace_and_sample_run(open_page, tmp_path):
    t = td.trace("The capital of France is", params=td.NOTEBOOK_PARAMS.with_(max_new_tokens=6), seed=42)
    run = td.sample("The capital of France is", n=200, params=td.NOTEBOOK_PARAMS.with_(max_new_tokens=4), seed=42, method="branching")
    path = td.report(t.run_id, run.run_id, output=tmp_path / "report.html")
    assert path.stat().st_size < 3_000_000
    opened = open_page(path)
    opened.assert_clean()
    page = opened.page
    first = page.locator(".td-step.td-first")
    assert f"p(model) {t.steps[0].chosen.model_prob:.4g}" in first.inner_text()  # 0.7725: " Paris" under the model
    assert "n=200" in page.inner_text("body") and page.locator("svg").count() >= 4
    opened.screenshot("embedded-model-report")
