"""The semantic-entropy view in a real browser: the clusters of meaning with their shares, intervals and
exact probabilities and their members, the measures with their bootstrap intervals, the convergence
chart with the exact value (or its bounds) as a reference band; from disk, without a request, running
nothing that model text carries; and the size of a 1,000-sample report."""

from __future__ import annotations

import pytest

import tokendice as td
from tests.browser.test_sample_report import IMG, XSS, titles
from tokendice.engines.fake import FakeEngine
from tokendice.render.report.semantic import semantic_section
from tokendice.render.report.svg import num

PROMPT = "The capital of France is"
VOCAB = ["", PROMPT, " Paris", " the city of Paris", " London", " Paris.", " Lyon", " France"]
TABLE = {(): {" Paris": 0.5, " the city of Paris": 0.125, " London": 0.125, " Paris.": 0.125, " Lyon": 0.0625, " France": 0.0625}}
FIRST_WORD = lambda a, b: a.split()[-1].strip(".") == b.split()[-1].strip(".")  # noqa: E731 - " the city of Paris" ~ " Paris"


@pytest.fixture(scope="module")
def engine() -> FakeEngine:
    return FakeEngine.from_table(VOCAB, TABLE, eos="")


@pytest.fixture(scope="module")
def sampled(engine):  # type: ignore[no-untyped-def]
    run = td.sample(PROMPT, n=500, engine=engine, seed=4, save=False)
    whole = td.enumerate_completions(PROMPT, engine=engine, mass=1.0, max_new_tokens=20, save=False)
    return td.semantic(run, judge=FIRST_WORD, exact=whole)


def test_the_page_shows_clusters_measures_and_the_exact_value(sampled, open_page, tmp_path):
    r = sampled
    assert r.semantic_entropy["exact"] is not None and [c.answers for c in r.clusters][0] == [" Paris", " Paris.", " the city of Paris"]
    opened = open_page(r.save_html(tmp_path / "semantic.html"))
    opened.assert_clean()
    page = opened.page
    text = page.locator(".td-card").inner_text()
    se = r.semantic_entropy
    iv = r.intervals["discrete"]
    assert f"500 samples, whole completions, in 4 semantic sets. Discrete semantic entropy {num(se['discrete'])} [{num(iv['low'])}, {num(iv['high'])}] nats; exact: {num(se['exact'])}" in text
    paris = r.clusters[0]
    bar = next(t for t in titles(page) if t.startswith("cluster 0: 3 completions"))
    assert f"{paris.count} of n=500 samples: share {num(paris.share)}, 95% Wilson interval [{num(paris.ci_low)}, {num(paris.ci_high)}]" in bar
    assert "exact p(sampling) 0.75" in bar and '" Paris" (' in bar
    row = page.locator("tr", has=page.locator("td:nth-child(2)", has_text='" the city of Paris"')).first.locator("td").all_inner_texts()
    assert row[0] == "0" and row[2:] == [str(paris.count), num(paris.share), num(paris.weighted_prob), "0.75"]
    measures = page.locator("tr", has=page.locator("td:first-child", has_text="discrete semantic entropy")).first.locator("td").all_inner_texts()
    assert measures[1:3] == [num(se["discrete"]), f"[{num(iv['low'])}, {num(iv['high'])}]"]
    assert "1000 resamples of the n=500 samples (seed 0" in text
    tips = titles(page)
    assert any(t.startswith(f"exact {num(se['exact'])}") for t in tips)  # the reference line
    last = r.convergence[-1]
    assert f"N, the first N samples 500: discrete SE {num(last['discrete'])} [{num(last['discrete_low'])}, {num(last['discrete_high'])}]" in tips
    assert any(t.startswith("N, the first N samples 10: discrete SE") for t in tips)
    opened.screenshot("semantic")


def test_bounds_are_a_band_when_part_of_the_mass_is_unexplored(engine, open_page, tmp_path):
    run = td.sample(PROMPT, n=300, engine=engine, seed=5, save=False)
    partial = td.enumerate_completions(PROMPT, engine=engine, max_nodes=3, min_prob=0.1, max_new_tokens=20, save=False)
    r = td.semantic(run, judge=FIRST_WORD, exact=partial, vocab_size=len(VOCAB))
    se = r.semantic_entropy
    assert se["exact"] is None and se["exact_low"] < se["exact_high"]
    opened = open_page(r.save_html(tmp_path / "bounds.html"))
    opened.assert_clean()
    page = opened.page
    text = page.locator(".td-card").inner_text()
    assert f"exact in [{num(se['exact_low'])}, {num(se['exact_high'])}]" in text
    assert f"found mass {r.exact['found']:.6f}, unexplored {num(r.exact['unexplored'])}" in text
    tips = titles(page)
    band = f"[{num(se['exact_low'])}, {num(se['exact_high'])}]"
    assert f"exact SE in {band}: {band}" in tips  # the reference band's tooltip
    chart = page.locator("svg", has_text="the sampled estimate against the number of samples").text_content()
    assert f"upper end {num(se['exact_high'])}: above the chart" in chart  # a loose upper bound does not squash the estimates
    opened.screenshot("bounds")


def test_an_enumeration_alone(engine, open_page, tmp_path):
    r = td.semantic(td.enumerate_completions(PROMPT, engine=engine, mass=1.0, save=False), judge=FIRST_WORD)
    opened = open_page(r.save_html(tmp_path / "enumeration.html"))
    opened.assert_clean()
    text = opened.page.locator(".td-card").inner_text()
    assert "The enumerated completions (whole completions) in 4 semantic sets." in text
    assert f"exact semantic entropy\t{num(r.semantic_entropy['exact'])}\texact" in text
    assert "the sampled estimate against" not in text
    opened.screenshot("enumeration")


def test_hostile_text_is_shown_as_text_and_runs_nothing(open_page, tmp_path):
    engine = FakeEngine.from_table(["<eos>", "x", XSS, IMG], {(): {XSS: 0.5, IMG: 0.5}})
    run = td.sample(f"x{XSS}{IMG}", n=40, engine=engine, save=False)
    r = td.semantic(run)
    html = r._repr_html_()
    assert "<script" not in html and "<img" not in html and semantic_section(r) in html
    opened = open_page(r.save_html(tmp_path / "hostile.html"))
    opened.assert_clean()
    page = opened.page
    text = page.locator(".td-card").inner_text()
    assert f'"x{XSS}{IMG}"' in text and f'"{XSS}"' in text and f'"{IMG}"' in text
    assert page.locator("img").count() == 0 and page.locator(".td script").count() == 0
    opened.screenshot("hostile")


def test_a_report_of_1000_samples_of_many_meanings_stays_small(tmp_path):
    # 1,000 samples over 400 distinct completions (each its own meaning): clusters capped at 20 bars and rows.
    vocab = ["", "x", *[f" w{i}" for i in range(400)]]
    engine = FakeEngine.from_table(vocab, {(): {f" w{i}": 1 / 400 for i in range(400)}}, eos="")
    r = td.semantic(td.sample("x", n=1000, engine=engine, save=False))
    assert r.num_semantic_sets > 300
    path = td.report(r, output=tmp_path / "big.html")
    size = path.stat().st_size
    assert size < 300_000, size  # measured 27 kB (the page draws the top 20 clusters; to_dict has all 400)
