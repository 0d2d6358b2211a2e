"""The enumeration report in a real browser: the explored tree with the unexplored mass as its own
block, the cumulative mass, the most probable completions with both probabilities, from disk,
without a request, running nothing that model text carries."""

from __future__ import annotations

import pytest

import tokendice as td
from tests.browser.test_sample_report import EXACT, IMG, XSS, titles, tree_engine
from tokendice.cli import main
from tokendice.experiments.decoding.enumerate import Enumeration
from tokendice.render.report.enumerate import enumeration_section


@pytest.fixture(scope="module")
def whole() -> Enumeration:
    return td.enumerate_completions("x", engine=tree_engine(), mass=1.0, save=False)


@pytest.fixture(scope="module")
def partial() -> Enumeration:
    # Expands the root, then "a" and "b": finds a<eos> (0.25); leaves aa (0.25), bc (0.27) and c (0.2) on the
    # frontier; prunes b<eos> (0.03 < min_prob).
    return td.enumerate_completions("x", engine=tree_engine(), max_nodes=3, min_prob=0.05, save=False)


def cells(page, text: str) -> list[str]:  # type: ignore[no-untyped-def]
    row = page.locator("tr", has=page.locator("td:nth-child(2)", has_text=text)).first
    return row.locator("td").all_inner_texts()


def test_the_enumeration_page_lists_every_completion_with_both_probabilities(whole, open_page, tmp_path):
    assert {c.text: round(c.prob, 6) for c in whole.completions} == EXACT
    opened = open_page(whole.save_html(tmp_path / "enumerate.html"))
    opened.assert_clean()
    page = opened.page
    assert cells(page, '"bc<eos>"') == ["1", '"bc<eos>"', "0.27", "0.27", "3", "eos"]
    assert cells(page, '"aab<eos>"')[2] == "0.175"
    text = page.locator(".td-card").inner_text()
    assert "Found 6 completions, holding 1 of the probability under the sampling distribution (target 1)" in text
    tips = titles(page)
    assert any(t.startswith('completion "bc<eos>"\np(sampling) 0.27 · p(model) 0.27') for t in tips)
    a = next(t for t in tips if t.startswith("prefix of 1 tokens") and 'begin with "a"' in t)
    assert "3 found completions beneath hold p(sampling) 0.5" in a
    assert "target mass 1" in page.locator("svg", has_text="cumulative probability").text_content()
    opened.screenshot("enumeration")


def test_the_unexplored_mass_is_its_own_block(partial, open_page, tmp_path):
    assert round(partial.found_mass, 6) == 0.25 and round(partial.frontier_mass, 6) == 0.72 and round(partial.pruned_mass, 6) == 0.03
    opened = open_page(partial.save_html(tmp_path / "partial.html"))
    opened.assert_clean()
    page = opened.page
    text = page.locator(".td-card").inner_text()
    assert "Unexplored: 0.75 = frontier 0.72 (prefixes found but not expanded) + pruned 0.03" in text
    assert "stopped: expansion budget of 3 prefixes spent" in text
    tips = titles(page)
    assert any(t.startswith("frontier: p(sampling) 0.72") for t in tips) and any(t.startswith("pruned: p(sampling) 0.03") for t in tips)
    frontier = page.locator("svg g", has=page.locator("title", has_text="frontier: p(sampling)")).locator("rect")
    tree = page.locator("svg g", has=page.locator("title", has_text='completion "a<eos>"')).locator("rect")
    # widths in proportion to the mass: 0.72 of the frontier (drawn as its share of 0.75) against 0.25 found
    ratio = float(frontier.get_attribute("width")) / float(tree.get_attribute("width"))
    assert ratio == pytest.approx(0.72 / 0.25, rel=0.02)
    opened.screenshot("unexplored")


def test_an_enumeration_of_hostile_text_shows_it_as_text_and_runs_nothing(open_page, tmp_path):
    hostile = {(): {XSS: 0.6, IMG: 0.4}, (XSS,): {IMG: 0.5, "<eos>": 0.5}}
    e = td.enumerate_completions(f"x{XSS}{IMG}", engine=tree_engine(hostile, prompt_tokens=3), mass=1.0, save=False)
    html = e._repr_html_()
    assert "<script" not in html and "<img" not in html and enumeration_section(e) in html
    opened = open_page(e.save_html(tmp_path / "hostile.html"))
    opened.assert_clean()
    page = opened.page
    text = page.locator(".td-card").inner_text()
    assert f'"x{XSS}{IMG}"' in text and f'"{XSS}{IMG}<eos>"' in text
    assert page.locator("img").count() == 0 and page.locator(".td script").count() == 0
    opened.screenshot("hostile-enumeration")


def test_tokendice_report_draws_a_stored_enumeration(open_page, tmp_path):
    stored = td.enumerate_completions("x", engine=tree_engine(), mass=0.9)
    out = tmp_path / "report.html"
    assert main(["report", stored.run_id, "-o", str(out)]) == 0
    opened = open_page(out)
    opened.assert_clean()
    page = opened.page
    assert stored.run_id in page.locator(".td-meta").first.inner_text()
    assert cells(page, '"a<eos>"')[2] == "0.25"
    assert "target mass 0.9" in page.locator("svg", has_text="cumulative probability").text_content()
