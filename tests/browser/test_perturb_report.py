"""The perturbation and variant-list reports in a real browser: they open from disk without a request
or a console error, show the numbers of the FakeEngines of tests/experiments/test_perturb.py (worked
out by hand there), and run nothing that a prompt, a variant or a completion carries."""

from __future__ import annotations

import math

import pytest

import tokendice as td
from tests.api.test_perturb import NAMES, OLD_RUN
from tests.experiments.test_perturb import prompt_dependent
from tokendice.engines.fake import FakeEngine
from tokendice.experiments.perturb.variants import UserVariant
from tokendice.render.report.page import fragment
from tokendice.render.report.perturb import perturb_section
from tokendice.store import Store

XSS = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(2)>"


@pytest.fixture(scope="module")
def report() -> td.PerturbReport:
    return td.perturb("ab", engine=prompt_dependent(), variants=NAMES, max_new_tokens=2, save=False)


def svg_titles(opened, selector: str) -> list[str]:
    return opened.page.locator(f"{selector} title").all_text_contents()


def test_the_perturb_page_is_clean_and_shows_the_numbers(report, open_page, tmp_path):
    opened = open_page(report.save_html(tmp_path / "perturb.html"))
    opened.assert_clean()
    page = opened.page
    rows = page.locator("table.td-variants tbody tr")
    assert rows.count() == 3
    first = rows.nth(0).locator("td").all_inner_texts()
    assert first[:6] == ["1", "punct.question", "punct", '"ab?"', "0.52 [0.52, 0.52]", "0.0863"]  # TV exact, JS by hand
    assert first[6] == '"b" 0.8' and first[7] == "0.2"  # its top-1 and the p(model) it gives the original's top-1 "a"
    assert "differs at step 0" in first[8] and first[9] == "-0.347"
    text = page.locator(".td-card").inner_text()
    assert "POSIX (Chatterjee et al. 2024): ψ = 0.2567" in text
    assert "exact: the original's enumeration lists 4 completions" in text
    skipped = page.locator("tr.td-removed")
    assert skipped.count() == 1 and "same as the original" in skipped.inner_text()
    assert page.locator("tr.td-removed td").first.evaluate("e => getComputedStyle(e).color") == "rgb(170, 170, 170)"
    # the variant × top-completion heatmap: p(sampling) of each of the original's completions under each prompt
    tips = svg_titles(opened, "svg[aria-label^='variant × the original']")
    assert 'punct.question: p(sampling) of completion 2 "b<eos>" = 0.8' in "\n".join(tips)
    assert 'case.upper: p(sampling) of completion 1 "a<eos>" = 0.27' in "\n".join(tips)
    cells = page.locator("svg[aria-label^='variant × the original'] text").all_text_contents()
    assert ["0.36", "0.28", "0.24", "0.12"] == cells[cells.index("original") + 1 : cells.index("original") + 5]
    # the POSIX matrix: per-token change of log p(model) of each greedy response
    posix = "\n".join(svg_titles(opened, "svg[aria-label^='POSIX matrix']"))
    assert "prompt punct.question · response of original" in posix
    tv = "\n".join(svg_titles(opened, "svg[aria-label^='variants ranked']"))
    assert "TV 0.52 [0.52, 0.52] (exact: hard bounds over 4 enumerated completions)" in tv
    opened.screenshot("perturb")


def test_a_sampler_chain_shows_both_distributions_and_sampled_tv(open_page, tmp_path):
    r = td.perturb("ab", engine=prompt_dependent(), variants=NAMES, max_new_tokens=2, temperature=2.0, samples=60,
                   mass=0.5, max_nodes=1, save=False)  # the enumeration cannot reach its mass: TV from the samples
    opened = open_page(r.save_html(tmp_path / "chain.html"))
    opened.assert_clean()
    page = opened.page
    assert "JS p(sampling)" in page.locator("table.td-variants thead").inner_text()
    legend = page.locator("svg[aria-label^='variants ranked'] text").all_text_contents()
    assert any("whiskers: 95% interval (n=60 samples)" in t for t in legend)
    first = r.prompts[0].variants[0]
    row = page.locator("table.td-variants tbody tr").nth(0).locator("td").all_inner_texts()
    assert row[4] == f"{first.tv.value:.3g} [{first.tv.low:.3g}, {first.tv.high:.3g}]"
    assert "TV (total variation between the completion distributions, p(sampling)) from n=60 samples" in page.locator(".td-card").inner_text()
    opened.screenshot("sampler-chain")
    assert page.locator("table.td-variants").evaluate("t => t.parentElement.scrollWidth <= t.parentElement.clientWidth")  # fits


def test_without_distributions_the_heatmap_says_it_is_not_available(open_page, tmp_path):
    r = td.perturb("ab", engine=prompt_dependent(), variants=NAMES, max_new_tokens=2, distribution=False, save=False)
    opened = open_page(r.save_html(tmp_path / "nodist.html"))
    opened.assert_clean()
    text = opened.page.locator(".td-card").inner_text()
    assert "Not available: the completion distributions were not measured (distribution=False)" in text
    assert opened.page.locator("svg[aria-label^='variants ranked']").count() == 0  # no TV to draw
    assert opened.page.locator("svg[aria-label^='first-step JS']").count() == 1
    opened.screenshot("no-distribution")


def test_a_suite_shows_the_summary_per_kind_and_a_card_per_prompt(open_page, tmp_path):
    r = td.perturb(prompts=["ab", "ba", "aab"], engine=prompt_dependent(), variants="punct.question,case.upper,punct.period",
                   max_new_tokens=2, samples=30, save=False)
    opened = open_page(r.save_html(tmp_path / "suite.html"))
    opened.assert_clean()
    page = opened.page
    kinds = "\n".join(svg_titles(opened, "svg[aria-label^='per variant kind: mean TV']"))
    assert "punct: n=6 (variant, prompt) pairs · mean TV 0.26" in kinds and "case: n=3 (variant, prompt) pairs · mean TV 0.15" in kinds
    summary = page.locator(".td-card").first.locator("table").first.locator("tbody tr").all_inner_texts()
    assert summary[0].split("\t")[:3] == ["punct", "6", "0.26"] and summary[1].split("\t")[:3] == ["case", "3", "0.15"]
    cards = page.locator("details")
    assert cards.count() == 3 and cards.nth(0).locator(".td-card").is_visible()
    assert not cards.nth(1).locator(".td-card").is_visible()  # closed; its headline shows
    assert "prompt 2 of 3: \"ba\" · ψ 0.2567" in cards.nth(1).locator("summary").inner_text()
    opened.screenshot("suite")
    cards.nth(1).locator("summary").click()
    assert cards.nth(1).locator(".td-card").is_visible()
    opened.assert_clean()


def test_prompts_variants_and_completions_show_as_text_and_run_nothing(open_page, tmp_path):
    vocab = ["<eos>", XSS, XSS.upper(), IMG, IMG.upper(), "?", " "]

    def next_logits(prompt, generated):  # "?" at the end tilts the first token; then the end
        if generated:
            return [0.0] + [-math.inf] * 6
        probs = {1: 0.7, 0: 0.3} if prompt[-1] == 5 else {3: 0.6, 1: 0.3, 0: 0.1}
        return [math.log(probs[i]) if i in probs else -math.inf for i in range(7)]

    engine = FakeEngine(vocab, next_logits, eos_token_ids=(0,), model_id="fake-hostile")
    r = td.perturb(f"{XSS} {IMG}", engine=engine, variants=["case.upper", "hostile", IMG], max_new_tokens=2, save=False,
                   user_variants=[UserVariant("hostile", "{p}?"), UserVariant(IMG, f"{IMG}?")])
    assert r.prompts[0].top_completions["texts"][:2] == [f"{IMG}<eos>", f"{XSS}<eos>"]
    opened = open_page(r.save_html(tmp_path / "hostile.html"))
    opened.assert_clean()  # no dialog: no script, no onerror ran
    page = opened.page
    assert page.locator("img").count() == 0 and page.locator(".td script").count() == 0
    text = page.locator(".td-card").inner_text()
    assert XSS in text and IMG in text and XSS.upper() in text
    heat = "\n".join(svg_titles(opened, "svg[aria-label^='variant × the original']"))
    assert f'p(sampling) of completion 1 "{IMG}<eos>"' in heat and f"{IMG}: p(sampling)" in heat  # completion and variant name
    opened.screenshot("hostile")
    listing = td.variants(f"{XSS} {IMG}", names=["case.upper", "case.lower", IMG], user_variants=[UserVariant(IMG, XSS)])
    opened = open_page(listing.save_html(tmp_path / "hostile-variants.html"))
    opened.assert_clean()
    assert XSS in opened.page.locator(".td-card").inner_text() and opened.page.locator("img").count() == 0


def test_the_variant_list_greys_what_is_skipped(open_page, tmp_path):
    listing = td.variants(["ab", "The end."], names="case.lower+punct.question,template.chat,case.upper,case.lower")
    opened = open_page(listing.save_html(tmp_path / "variants.html"))
    opened.assert_clean()
    page = opened.page
    assert page.locator("table").count() == 2
    first = page.locator("table").nth(0).locator("tbody tr").all_inner_texts()
    assert [row.split("\t") for row in first] == [
        ["original", "original", "raw text", '"ab"', "the prompt as given"],
        ["case.lower+punct.question", "case+punct", "raw text", '"ab?"', "lower-case everything, then end with a question mark"],
        ["template.chat", "template", "chat template", '"ab"', "the model's chat template instead of raw text"],
        ["case.upper", "case", "raw text", '"AB"', "upper-case everything"],
        ["case.lower", "case", "", '"ab"', "skipped: same as the original"],
    ]
    assert page.locator("tr.td-removed").count() == 1  # "The end." has a lower-case variant of its own
    assert page.locator("tr.td-removed td").first.evaluate("e => getComputedStyle(e).color") == "rgb(170, 170, 170)"
    opened.screenshot("variants")
    html = listing._repr_html_()
    assert "<script" not in html and "Prompt variants" in html


def test_tokendice_report_draws_a_stored_run_and_one_stored_before_top_completions(open_page, tmp_path, capsys):
    from tokendice.cli import main

    live = td.perturb(prompts=["ab", "ba"], engine=prompt_dependent(), variants=NAMES, max_new_tokens=2, samples=20)
    with Store() as store:
        old = store.create_run("perturb", OLD_RUN["manifest"], "(2 prompts) ab", "fake", "fake-prompt-dependent")
        store.save_result(old, "report", OLD_RUN["report"])
        store.set_status(old, "interrupted")
    out = tmp_path / "report.html"
    assert main(["report", live.run_id, old, "-o", str(out)]) == 0
    opened = open_page(out)
    opened.assert_clean()
    page = opened.page
    assert live.run_id in page.locator("body").inner_text() and old in page.locator("body").inner_text()
    text = page.locator("body").inner_text()
    assert "this run was stored before tokendice kept the top completions" in text  # the old run, prompt "ab"
    assert page.locator("svg[aria-label^='variant × the original']").count() == 2  # the new run's two prompts, none for the old
    opened.screenshot("cli-report")


def test_the_notebook_view_is_the_section_without_script(report):
    html = report._repr_html_()
    assert html == fragment(perturb_section(report)) and "<script" not in html
    assert "ψ = 0.2567" in html and "variant × the original" in html


def test_a_1000_sample_report_stays_small(tmp_path):
    vocab = ["<eos>", "?", "Q"] + [f" w{i:02d}" for i in range(40)]

    def next_logits(prompt, generated):  # 40 tokens a step for three steps: 64,000 completions, nearly every sample distinct
        if len(generated) >= 3:
            return [0.0] + [-math.inf] * (len(vocab) - 1)
        tilt = 1.0 if prompt[-1] == 1 else 0.0
        return [-math.inf] * 3 + [tilt * (i % 3) / 2 for i in range(40)]

    engine = FakeEngine(vocab, next_logits, eos_token_ids=(0,), model_id="fake-wide")
    r = td.perturb(prompts=["Q", "QQ"], engine=engine, variants=["punct.question", "user.1"], samples=1000,
                   max_new_tokens=4, save=False, user_variants=["{p} w00"])
    assert r.prompts[0].distribution["distinct"] > 900 and r.prompts[0].distribution["method"] == "samples"
    assert len(r.prompts[0].top_completions["texts"]) == 8
    size = r.save_html(tmp_path / "big.html").stat().st_size
    assert size < 300_000, size  # well under 3 MB: the report keeps the top completions, not every sample
