"""The comparison report in a real browser, on FakeEngines with constant, known distributions:
KL both ways and JS per step, the aligned tokens, the completions' total variation distance
(exact, or bounds), model text shown as text, and nothing fetched or run."""

from __future__ import annotations

import math

import pytest

import tokendice as td
from tokendice.cli import main
from tokendice.engines.fake import FakeEngine
from tokendice.experiments.compare.compare import CompareReport, CompletionOverlap, PairComparison, StepComparison
from tokendice.render.report.svg import num

XSS = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(2)>"
VOCAB = ["<eos>", "a", XSS, IMG]
P = [0.1, 0.2, 0.4, 0.3]  # A: top-1 XSS
Q = [0.1, 0.1, 0.3, 0.5]  # B: top-1 IMG
R = [0.5, 0.5, 0.0, 0.0]  # C: gives the continuation's token probability 0


def constant(probs: list[float], model_id: str) -> FakeEngine:
    return FakeEngine(VOCAB, lambda prompt, generated: [math.log(p) if p > 0 else -math.inf for p in probs], model_id=model_id)


def kl(p: list[float], q: list[float]) -> float:
    return math.fsum(x * math.log(x / y) for x, y in zip(p, q) if x > 0)


def js(p: list[float], q: list[float]) -> float:
    m = [(x + y) / 2 for x, y in zip(p, q)]
    return (kl(p, m) + kl(q, m)) / 2


@pytest.fixture
def report() -> td.CompareReport:
    return td.compare(f"a{IMG}", engines=[constant(P, "A"), constant(Q, "B")], max_new_tokens=3, completion_tokens=1, top=3,
                      save=False)


def test_the_compare_page_shows_divergences_tokens_and_tv(report, open_page, tmp_path) -> None:  # type: ignore[no-untyped-def]
    opened = open_page(report.save_html(tmp_path / "compare.html"))
    opened.assert_clean()
    page = opened.page
    step0 = page.locator("table.td-aligned tbody tr").first.locator("td").all_inner_texts()
    assert step0[:7] == ["0", f'"{XSS}"', num(math.log(0.4)), num(math.log(0.3)), num(kl(P, Q)), num(kl(Q, P)), num(js(P, Q))]
    assert step0[7:10] == [f'"{XSS}"', f'"{IMG}"', "no"]  # top-1 of each side, and they disagree
    assert page.locator("table.td-aligned tbody tr").count() == 3
    summary = page.locator(".td-pair-summary").inner_text()
    assert f"JS mean {num(js(P, Q))}" in summary and "top-1 agreement 0.000 (0/3 steps)" in summary
    assert "greedy choices first differ at step 0" in summary
    assert "total variation distance = 0.2000 (exact)" in page.locator(".td-tv").inner_text()  # ½ Σ|P − Q|
    completions = page.locator("table.td-completions tbody tr")
    assert completions.nth(0).locator("td").all_inner_texts() == [f'"{IMG}"', "0.3", "0.5"]
    chart = page.locator("svg[aria-label^='divergence of the two model distributions']")
    tips = chart.locator("title").all_text_contents()
    assert f'step 1 "{XSS}": JS = {num(js(P, Q))}' in tips and f"step 0 \"{XSS}\": KL(A‖B) = {num(kl(P, Q))}" in tips
    tokens = page.locator(".td-tokens").inner_text()
    assert tokens == f"a{IMG}{XSS * 3}"  # prompt and continuation as text
    assert page.locator("img").count() == 0 and page.locator(".td script").count() == 0
    opened.screenshot("compare")


def test_tokendice_report_draws_bounds_and_infinite_kl(open_page, tmp_path) -> None:  # type: ignore[no-untyped-def]
    stored = td.compare("a", engines=[constant(P, "A"), constant(Q, "B"), constant(R, "C")], max_new_tokens=2,
                        completion_tokens=2, max_nodes=2, top=2)
    assert stored.run_id
    out = tmp_path / "report.html"
    assert main(["report", stored.run_id, "-o", str(out)]) == 0
    opened = open_page(out)
    opened.assert_clean()
    page = opened.page
    assert page.locator(".td-pair h3").all_inner_texts()[0] == "A = fake:A · B = fake:B"
    assert page.locator(".td-pair").count() == 2
    tv = page.locator(".td-tv").first.inner_text()
    overlap = stored.pairs[0].completions
    assert overlap.tv is None and f"total variation distance in [{overlap.tv_low:.4f}, {overlap.tv_high:.4f}]" in tv
    c_pair = page.locator(".td-pair").nth(1)
    assert "KL is infinite at steps 0, 1" in c_pair.inner_text()
    row = c_pair.locator("table.td-aligned tbody tr").first.locator("td").all_inner_texts()
    assert row[3] == "-∞" and row[4] == "∞" and row[6] == num(js(P, R))  # log p_C of the token, KL(A‖C), JS finite
    opened.screenshot("compare-bounds")


def test_notebook_view_holds_no_script(report) -> None:  # type: ignore[no-untyped-def]
    html = report._repr_html_()
    assert "<script" not in html and "<img" not in html and "&lt;script&gt;" in html
    assert "divergence of the two model distributions" in html and html.count('class="td-card"') == 1


def test_a_long_comparison_stays_small(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Three pairs over 1,000 steps: the page stays well under 3 MB."""
    steps = [StepComparison(t, 5, f" tok{t}", -0.5, -0.7, 0.01, 0.02, 0.005, " x", " y", t % 2 == 0, 0.2, " z")
             for t in range(1000)]
    top = [{"text": f" completion {i}", "prob_a": 0.1, "prob_b": 0.05} for i in range(5)]
    pairs = [PairComparison("A", f"B{j}", steps, CompletionOverlap(2, 50, 0.9, 0.8, 40, 40, None, 0.1, 0.3, top)) for j in range(3)]
    big = CompareReport(prompt="p", chat=False, params={}, engines=[{"label": "A"}, *({"label": f"B{j}"} for j in range(3))],
                        prompt_ids=[1], continuation="".join(s.text for s in steps), continuation_ids=[5] * 1000,
                        continuation_source="given", top_k=10, pairs=pairs)  # fmt: skip
    size = big.save_html(tmp_path / "big.html").stat().st_size
    assert size < 1_000_000, size
