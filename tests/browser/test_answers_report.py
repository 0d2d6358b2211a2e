"""The answer-distribution view in a real browser: answer bars with their Wilson intervals and the
exact probabilities marked (with [p, p + unexplored] for a partial enumeration), the fit in
words, the completions behind each answer; from disk, without a request, running nothing that
model text carries; and the answer TV in the perturbation report."""

from __future__ import annotations

import pytest

import tokendice as td
from tests.api.test_answers import TABLE, VOCAB
from tests.api.test_perturb_answers import VARIANTS
from tests.api.test_perturb_answers import engine as answer_engine
from tokendice.engines.fake import FakeEngine
from tokendice.render.report.answers import answers_section
from tokendice.render.report.page import fragment

XSS = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(2)>"


def engine() -> FakeEngine:
    return FakeEngine.from_table(VOCAB, TABLE)


def cells(page, text: str) -> list[str]:  # type: ignore[no-untyped-def]
    """The cells of the first table row whose second cell is `text`."""
    row = page.locator("tr", has=page.locator("td:nth-child(2)", has_text=text)).first
    return row.locator("td").all_inner_texts()


def titles(page, label: str) -> str:  # type: ignore[no-untyped-def]
    return "\n".join(page.locator(f"svg[aria-label^='{label}'] title").all_text_contents())


@pytest.fixture(scope="module")
def both() -> td.AnswerDistribution:
    run = td.sample("x", n=300, engine=engine(), seed=2, exact=True, mass=1.0, save=False)
    return td.answers(run, "number", exact=True)


def test_samples_and_exact_probabilities_on_one_page(both, open_page, tmp_path):
    counts = {a.answer: a.count for a in both.answers}
    opened = open_page(both.save_html(tmp_path / "answers.html"))
    opened.assert_clean()
    page = opened.page
    twelve = cells(page, '"12"')
    a = both.answers[0]  # the numbers on the page are the result's, to 4 significant digits
    assert twelve[:6] == ["1", '"12"', str(counts["12"]), f"{a.share:.4g}", f"[{a.ci_low:.4g}, {a.ci_high:.4g}]", "0.5625"]
    assert twelve[6].startswith("4: ")  # 4 distinct completions say 12
    assert cells(page, "(no answer)")[5] == "0.1875" and cells(page, '"130"')[5] == "0.08333"
    assert "[p, p + unexplored]" not in page.locator("table").first.inner_text()  # nothing unexplored: p says it all
    text = page.locator(".td-card").inner_text()
    assert "n=300 samples" in text and "unexplored mass 0" in text and "4 distinct answers read with number" in text
    assert f"p = {both.fit.p_value:.3g}" in text and "consistent with the exact answer probabilities" in text
    tips = titles(page, "the 4 answers")
    assert f'answer "12" (number)\n{counts["12"]} of n=300 samples: observed share' in tips
    assert "exact p(sampling) 0.5625 (sum over its enumerated completions)" in tips
    opened.screenshot("answers-samples-and-exact")


def test_a_partial_enumeration_shows_each_answers_interval(open_page, tmp_path):
    partial = td.answers(td.enumerate_completions("x", engine=engine(), mass=1.0, min_prob=0.1, save=False), "number")
    opened = open_page(partial.save_html(tmp_path / "partial.html"))
    opened.assert_clean()
    page = opened.page
    assert cells(page, '"12"')[:4] == ["1", '"12"', "0.5", "[0.5, 0.875]"]
    assert cells(page, "(no answer)")[:4] == ["2", "(no answer)", "0.125", "[0.125, 0.5]"]
    text = page.locator(".td-card").inner_text()
    assert "unexplored mass 0.375" in text and "true probability lies in [p, p + unexplored]" in text
    assert "Goodness of fit" not in text  # no samples: no test
    assert "whiskers: [p, p + unexplored 0.375]" in page.locator("svg").first.text_content()
    opened.screenshot("answers-partial-enumeration")
    # the samples beside the partial enumeration: the exact interval drawn under each diamond
    run = td.sample("x", n=200, engine=engine(), seed=1, save=False)
    exact = td.enumerate_completions("x", engine=engine(), mass=1.0, min_prob=0.1, max_new_tokens=20, save=False)
    opened = open_page(td.answers(run, "number", exact=exact).save_html(tmp_path / "partial-both.html"))
    opened.assert_clean()
    assert "line: [p, p + unexplored 0.375]" in opened.page.locator("svg").first.text_content()
    assert cells(opened.page, '"13"')[5:7] == ["0", "[0, 0.375]"]  # sampled, not enumerated
    opened.screenshot("answers-samples-and-partial")


def test_hostile_answers_are_text_and_run_nothing(open_page, tmp_path):
    hostile = FakeEngine.from_table([*VOCAB, IMG], {(): {XSS: 0.5, IMG: 0.5}})
    run = td.sample(f"x{XSS}", n=40, engine=hostile, seed=1, save=False)
    d = td.answers(run, "exact")
    html = d._repr_html_()
    assert "<script" not in html and "<img" not in html and answers_section(d) in html and html == fragment(answers_section(d))
    opened = open_page(d.save_html(tmp_path / "hostile.html"))
    opened.assert_clean()
    page = opened.page
    text = page.locator(".td-card").inner_text()
    assert f'"x{XSS}"' in text and f'"{XSS}"' in text and f'"{IMG}"' in text
    assert page.locator("img").count() == 0 and page.locator(".td script").count() == 0
    opened.screenshot("answers-hostile")


def test_td_report_draws_answers_beside_their_run(both, open_page, tmp_path):
    run = td.sample("x", n=100, engine=engine(), seed=5)
    path = td.report(run.run_id, td.answers(run.run_id, "number"), output=tmp_path / "report.html")
    opened = open_page(path)
    opened.assert_clean()
    headings = opened.page.locator(".td-card h2").all_inner_texts()
    assert headings == ["Sample run", "Answers"]
    assert f"samples: run {run.run_id}" in opened.page.locator(".td-card").nth(1).locator(".td-meta").inner_text()


def test_a_report_of_many_answers_stays_small():
    # 1,000 samples of a model that says 500 different numbers: the view lists the top 20
    vocab = ["<eos>", "x", *[f" {k}" for k in range(500)]]
    many = FakeEngine.from_table(vocab, {(): {f" {k}": 1 / 500 for k in range(500)}})
    d = td.answers(td.sample("x", n=1000, engine=many, seed=1, max_new_tokens=2, save=False), "number")
    html = d._repr_html_()
    assert len(d.answers) > 400 and len(html) < 60_000 and "more answers (to_dataframe() has all)" in html


def test_the_perturb_page_shows_the_answer_tv(open_page, tmp_path):
    r = td.perturb("x", engine=answer_engine(), variants=VARIANTS, answer="number", max_new_tokens=3, save=False)
    opened = open_page(r.save_html(tmp_path / "perturb-answers.html"))
    opened.assert_clean()
    page = opened.page
    body = page.locator("table.td-variants tbody tr")
    rows = {row[1]: row for row in (body.nth(i).locator("td").all_inner_texts() for i in range(body.count()))}
    assert rows["whitespace.trailing_space"][4:6] == ["1 [1, 1]", "0 [0, 0]"]  # other tokens, the same answers
    assert rows["punct.question"][4:6] == ["0.25 [0.25, 0.25]", "0.25 [0.25, 0.25]"]  # completion TV, answer TV
    assert rows["case.upper"][4] == "0.25 [0.25, 0.25]"  # 12 said another way: the same answers, up to float rounding
    assert [float(x) for x in rows["case.upper"][5].replace("[", "").replace("]", "").replace(",", "").split()] == pytest.approx([0, 0, 0], abs=1e-12)
    tips = titles(page, "the same variants: TV of the answer distribution")
    assert "(hard bounds over 6 completions: the original's enumerated ones and the variant's own)" in tips and "answer TV 0.25 [0.25, 0.25]" in tips
    heat = titles(page, "variant × the original\\'s most probable answers")
    assert 'punct.question: p(sampling) of answer 1. "12" = 0.5' in heat and 'case.upper: p(sampling) of answer 1. "12" = 0.75' in heat
    text = page.locator(".td-card").inner_text()
    assert "Answer TV: the total variation between the answer distributions (number, p(sampling)), over the original's 6 enumerated completions and the variant's own" in text
    opened.screenshot("perturb-answers")
