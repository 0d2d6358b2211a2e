"""The diff report in a real browser: two generations side by side with the first divergence
marked, both top-k lists there, the log-prob drift along the common prefix; on FakeEngine
traces and stored audit samples. A diff is not a stored run: it is drawn by `save_html` and
`td.report(diff, output=...)`."""

from __future__ import annotations

import math

import pytest

import tokendice as td
from tokendice.engines.fake import FakeEngine
from tokendice.experiments.compare.diff import DiffSide, diff_sides
from tokendice.render.report.svg import num

XSS = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(2)>"
VOCAB = ["<eos>", "x", "a", "b", XSS, IMG, " "]


def engine(first: float, tail: dict[str, float], model_id: str) -> FakeEngine:
    """'a' with probability `first` (else 'b'), then `tail`, then the end."""
    return FakeEngine.from_table(VOCAB, {(): {"a": first, "b": 1 - first}, ("a",): tail, ("a", XSS): {"<eos>": 1.0},
                                         ("a", IMG): {"<eos>": 1.0}}, model_id=model_id)  # fmt: skip


@pytest.fixture
def forked() -> td.RunDiff:
    """Greedy traces that share "a" (0.9 vs 0.8), then fork: XSS (0.6) against IMG (0.7)."""
    prompt = f"x {XSS}"
    a = td.trace(prompt, engine=engine(0.9, {XSS: 0.6, IMG: 0.4}, "model-A"), do_sample=False, top=3, save=False)
    b = td.trace(prompt, engine=engine(0.8, {XSS: 0.3, IMG: 0.7}, "model-B"), do_sample=False, top=3, save=False)
    return td.diff(a, b)


def test_the_diff_page_marks_the_fork_and_shows_both_tops_and_the_drift(forked, open_page, tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert forked.first_divergence == 1
    opened = open_page(forked.save_html(tmp_path / "diff.html"))
    opened.assert_clean()
    page = opened.page
    assert page.locator(".td-verdict").inner_text().startswith("first divergence at step 1 (after 1 common tokens): "
                                                               f'A "{XSS}" (p(model) 0.6) vs B "{IMG}" (p(model) 0.7)')
    forks = page.locator(".td-side .td-fork")
    assert forks.all_inner_texts() == [XSS, IMG]  # the first divergence, marked on each side
    sides = page.locator(".td-side .td-tokens").all_inner_texts()
    assert sides == [f"x {XSS}a{XSS}<eos>", f"x {XSS}a{IMG}<eos>"]  # prompt and tokens, as text
    box_a, box_b = (page.locator(".td-side").nth(i).bounding_box() for i in (0, 1))
    assert box_b["x"] > box_a["x"] + box_a["width"] - 1 and abs(box_a["y"] - box_b["y"]) < 1  # side by side
    tops = page.locator("table.td-tops")
    assert f"A (margin {num(math.log(0.6 / 0.4), 3)})" in tops.inner_text()
    assert f"B (margin {num(math.log(0.7 / 0.3), 3)})" in tops.inner_text()
    assert tops.locator("tbody tr").first.locator("td").all_inner_texts() == ["1", f'"{XSS}"', "0.6", f'"{IMG}"', "0.7"]
    drift = page.locator("table.td-drift tbody tr").first.locator("td").all_inner_texts()
    assert drift == ["0", '"a"', num(math.log(0.9)), num(math.log(0.8)), num(math.log(0.9 / 0.8))]
    assert "different models: model-A vs model-B" in page.locator(".td-card").inner_text()
    assert page.locator("img").count() == 0 and page.locator(".td script").count() == 0
    opened.screenshot("diff")


def test_td_report_of_stored_audit_samples(open_page, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Samples of a stored audit (no top-k: the page says why), written by td.report."""
    monkeypatch.setattr("os.getloadavg", lambda: (0.0, 0.0, 0.0))

    def logits(prompt, generated):  # type: ignore[no-untyped-def]
        out = [-10.0] * len(VOCAB)
        out[[2, 3, 4, 0, 0][min(len(generated), 4)]] = 0.0
        if len(generated) == 1:
            out[5] = -0.001  # b against IMG: a near-tie
        return out

    noisy = FakeEngine(VOCAB, logits, noise=lambda batch, seq: [0, 0, 0, 0, 0, 0.01, 0] if batch > 1 else None)
    audit = td.audit("x", engine=noisy, repeats=1, conditions="batch", batch_sizes=[1, 2], do_sample=False)
    d = td.diff(f"{audit.run_id}:0", f"{audit.run_id}:1")
    assert d.first_divergence == 1 and d.b.condition == "batch 2"
    path = td.report(d, output=tmp_path / "report.html")
    opened = open_page(path)
    opened.assert_clean()
    page = opened.page
    assert page.locator(".td-side .td-fork").all_inner_texts() == ["b", IMG]
    text = page.locator(".td-card").inner_text()
    assert "audit condition: batch 2" in text and "top candidates at the fork are known only for traces" in text
    drift = d.drift[0]["abs_diff"]  # batch 2 raises IMG's logit by 0.01 at every step: p("a") moves a little
    assert 0 < drift < 1e-6 and page.locator("table.td-drift tbody tr").first.locator("td").all_inner_texts()[-1] == num(drift)
    opened.screenshot("diff-audit-samples")


def test_identical_sides_and_the_notebook_view(forked) -> None:  # type: ignore[no-untyped-def]
    side = forked.a
    same = diff_sides(side, DiffSide(**{**side.__dict__, "source": "again"}))
    html = same._repr_html_()
    assert "identical: the same 3 tokens" in html and "td-fork" not in html and "top candidates" not in html
    for result in (forked, same):
        html = result._repr_html_()
        assert "<script" not in html and "<img" not in html and "&lt;script&gt;" in html and html.count('class="td-card"') == 1


def test_a_long_diff_stays_small(open_page, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Two 1,000-token generations that fork at step 900: under 3 MB; the drift table shows the largest, folds the rest."""
    def side(name: str, fork: str) -> DiffSide:
        texts = [f" w{t}" for t in range(900)] + [fork] * 100
        return DiffSide(name, "p", "m", "fake", list(range(900)) + [900 + ord(fork[-1])] * 100, texts,
                        [-0.1 - t * 1e-4 * (name == "A") for t in range(1000)],
                        top=[[{"token_id": i, "text": f" c{i}", "model_prob": 0.1, "model_logprob": math.log(0.1)} for i in range(10)]] * 1000)
    big = diff_sides(side("A", " a"), side("B", " b"))
    path = big.save_html(tmp_path / "big.html")
    size = path.stat().st_size
    assert size < 750_000, size
    opened = open_page(path)
    opened.assert_clean()
    assert "the 20 largest drifts of 900 steps" in opened.page.locator(".td-card").inner_text()
    opened.screenshot("long-diff")
