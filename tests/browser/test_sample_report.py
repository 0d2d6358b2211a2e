"""The sample-run report in a real browser: the top completions with their Wilson intervals and exact
probabilities, the fit test, the prefix tree with each prefix's count and exact probability, distinct
prefixes by step and the at_prefix check, from disk, without a request, running nothing that model
text carries; and the size of a 1,000-sample report."""

from __future__ import annotations

import math
from collections import Counter

import pytest

import tokendice as td
from tokendice.cli import main
from tokendice.engines.fake import FakeEngine
from tokendice.experiments.distribution.run import SampleRun
from tokendice.render.report.sample import sample_section
from tokendice.render.report.svg import num
from tokendice.render.text import show_token

XSS = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(2)>"
VOCAB = ["<eos>", "x", "a", "b", "c", XSS, IMG]
TABLE = {
    (): {"a": 0.5, "b": 0.3, "c": 0.2},
    ("a",): {"a": 0.5, "<eos>": 0.5},
    ("b",): {"c": 0.9, "<eos>": 0.1},
    ("a", "a"): {"b": 0.7, "<eos>": 0.3},
}
EXACT = {"a<eos>": 0.25, "aab<eos>": 0.175, "aa<eos>": 0.075, "bc<eos>": 0.27, "b<eos>": 0.03, "c<eos>": 0.2}
"""Every completion of TABLE with its probability (a product along the tree)."""


def tree_engine(table: dict = TABLE, prompt_tokens: int = 1) -> FakeEngine:
    """TABLE keyed by the tokens after the prompt's first `prompt_tokens`, wherever the prompt ends: so the
    at_prefix prediction (the prompt and the prefix prefilled together) sees the same distribution as
    sampling did. Unknown sequences end."""
    index = {t: i for i, t in enumerate(VOCAB)}

    def next_logits(prompt: tuple[int, ...], generated: tuple[int, ...]) -> list[float]:
        after = tuple(VOCAB[i] for i in (prompt + generated)[prompt_tokens:])
        logits = [-math.inf] * len(VOCAB)
        for token, p in table.get(after, {"<eos>": 1.0}).items():
            logits[index[token]] = math.log(p)
        return logits

    return FakeEngine(VOCAB, next_logits, eos_token_ids=(0,), model_id="fake-tree")


def titles(page) -> list[str]:  # type: ignore[no-untyped-def]
    """Every tooltip of the page's charts."""
    return page.locator("svg title").all_text_contents()


def row_of(page, text: str) -> list[str]:  # type: ignore[no-untyped-def]
    """The cells of the first table row whose second cell is `text`."""
    row = page.locator("tr", has=page.locator("td:nth-child(2)", has_text=text)).first
    return row.locator("td").all_inner_texts()


@pytest.fixture(scope="module")
def run() -> SampleRun:
    return td.sample("x", n=1000, engine=tree_engine(), seed=2, at_prefix="a", save=False)


def test_the_sample_page_shows_shares_intervals_exact_probabilities_and_the_fit(run, open_page, tmp_path):
    opened = open_page(run.save_html(tmp_path / "sample.html"))
    opened.assert_clean()
    page = opened.page
    a = run.analyses[0]
    bc = next(c for c in a.completions if c.text == "bc<eos>")
    cells = row_of(page, '"bc<eos>"')
    assert cells[2:] == [str(bc.frequency.count), num(bc.frequency.share), f"[{num(bc.frequency.low)}, {num(bc.frequency.high)}]", "0.27"]
    text = page.locator(".td-card").inner_text()
    assert "n=1000 samples · 6 distinct completions" in text
    assert "the log-probabilities recorded while sampling" in text  # where the exact probabilities come from
    fit = a.fit
    assert f"G = {num(fit.statistic)}, {fit.dof} degrees of freedom, {fit.categories} categories" in text and f"p = {num(fit.p_value, 3)}" in text
    bar = next(t for t in titles(page) if t.startswith('"bc<eos>"\n'))
    assert f"{bc.frequency.count} of n=1000 samples" in bar and "exact p(sampling) 0.27" in bar
    opened.screenshot("sample")


def test_the_prefix_tree_gives_each_prefix_its_count_and_exact_probability(run, open_page, tmp_path):
    opened = open_page(run.save_html(tmp_path / "sample.html"))
    tips = titles(opened.page)
    firsts = Counter(s.token_texts[0] for s in run.samples)
    b = next(t for t in tips if t.startswith('prefix "b" '))
    assert f"{firsts['b']} of n=1000 samples: share {num(firsts['b'] / 1000)}" in b
    assert "exact p(sampling) of this prefix 0.3 · p(model) 0.3" in b
    aa = next(t for t in tips if t.startswith('prefix "aa" '))
    assert "exact p(sampling) of this prefix 0.25" in aa  # 0.5 * 0.5: the product along the prefix
    spread = run.analyses[0].spread
    assert [s.distinct_prefixes for s in spread[:2]] == [3, 5]
    step1 = next(t for t in tips if t.startswith("step 1 "))
    assert step1.endswith("distinct prefixes among the n=1000 samples = 5") and f"{spread[1].reaching} of n=1000 samples reach it" in step1


def test_the_at_prefix_check_puts_predictions_beside_observations(run, open_page, tmp_path):
    check = run.analyses[0].at_prefix
    page = open_page(run.save_html(tmp_path / "sample.html")).page
    assert f"{check.reached} samples generated this prefix" in page.locator(".td-card").inner_text()
    observed = {r["token"]: r["observed"] for r in check.rows}
    cells = page.locator("tr", has=page.locator("td:first-child", has_text='"<eos>" (end)')).first.locator("td").all_inner_texts()
    assert cells[1:4] == ["0.5", "0.5", str(observed["<eos>"])]  # predicted p(sampling), p(model), observed count


def test_several_prompts_get_a_summary_and_a_card_each(open_page, tmp_path):
    run = td.sample(["x", "c"], n=40, engine=tree_engine(), seed=2, save=False)
    page = open_page(run.save_html(tmp_path / "two.html")).page
    assert page.locator(".td-card").count() == 3
    assert "TARr@40 = 0 (the share of prompts whose 40 completions are all identical)" in page.locator(".td-card").first.inner_text()
    assert page.locator("h2", has_text="prompt 2 of 2").count() == 1


def test_without_its_samples_the_view_says_so_and_draws_the_rest(run, open_page, tmp_path):
    bare = SampleRun.from_dict(run.to_dict())
    assert bare.samples == []
    opened = open_page(bare.save_html(tmp_path / "bare.html"))
    opened.assert_clean()
    text = opened.page.locator(".td-card").inner_text()
    assert "Prefix tree: not drawn" in text and "td.load_run" in text and '"bc<eos>"' in text
    assert not any(t.startswith("prefix ") for t in titles(opened.page))
    html = bare._repr_html_()
    assert "<script" not in html and sample_section(bare) in html


def test_a_sample_of_hostile_text_shows_it_as_text_and_runs_nothing(open_page, tmp_path):
    hostile = {(): {XSS: 0.6, IMG: 0.4}, (XSS,): {IMG: 0.5, "<eos>": 0.5}}
    run = td.sample(f"x{XSS}{IMG}", n=60, engine=tree_engine(hostile, prompt_tokens=3), seed=0, at_prefix=XSS, save=False)
    assert any(XSS in c.text for c in run.analyses[0].completions)
    html = run._repr_html_()
    assert "<script" not in html and "<img" not in html
    opened = open_page(run.save_html(tmp_path / "hostile.html"))
    opened.assert_clean()  # no dialog: nothing ran
    page = opened.page
    text = page.locator(".td-card").inner_text()
    assert f'"x{XSS}{IMG}"' in text and f'"{XSS}{IMG}<eos>"' in text
    assert page.locator("img").count() == 0 and page.locator(".td script").count() == 0
    assert any(t.startswith(f'prefix "{XSS}{IMG}"') for t in titles(page))
    opened.screenshot("hostile-sample")


def test_tokendice_report_draws_a_stored_run_with_its_samples(open_page, tmp_path):
    stored = td.sample("x", n=200, engine=tree_engine(), seed=4)
    loaded = td.load_run(stored.run_id)
    assert len(loaded.samples) == 200
    out = tmp_path / "report.html"
    assert main(["report", stored.run_id, "-o", str(out)]) == 0
    opened = open_page(out)
    opened.assert_clean()
    page = opened.page
    assert stored.run_id in page.locator(".td-meta").first.inner_text()
    top = stored.analyses[0].completions[0]
    assert row_of(page, show_token(top.text))[2] == str(top.frequency.count)
    assert any(t.startswith('prefix "a" ') for t in titles(page))  # the icicle: the stored run holds its samples


@pytest.mark.parametrize("prompts, n", [(["x"], 1000), (["x", "x w1", "x w2", "x w3"], 250)], ids=["one-prompt", "four-prompts"])
def test_a_1000_sample_report_with_hundreds_of_completions_stays_small(prompts, n, open_page, tmp_path):
    vocab = ["<eos>", "x"] + [f" w{i}" for i in range(8)]
    flat = FakeEngine(vocab, lambda prompt, generated: [math.log(0.1), -math.inf] + [math.log(0.9 / 8)] * 8, model_id="fake-flat")
    run = td.sample(prompts, n=n, engine=flat, seed=3, max_new_tokens=6, save=False)
    distinct = [a.distinct for a in run.analyses]
    assert run.n == 1000 and sum(distinct) > 500
    path = run.save_html(tmp_path / "big.html")
    size = path.stat().st_size
    print(f"report of 1000 samples over {len(prompts)} prompt(s), {distinct} distinct completions: {size} bytes")
    assert size < 500_000  # the limit is 3 MB: the prefix trees merge rare prefixes, the tables list the top 15
    opened = open_page(path)
    opened.assert_clean()
    assert f"… {distinct[0] - 15} more distinct completions" in opened.page.locator(".td-card").nth(int(len(prompts) > 1)).inner_text()
    opened.screenshot("many-completions")


def test_the_view_says_where_exact_probabilities_come_from_and_when_there_is_no_test():
    exact = td.sample("x", n=50, engine=tree_engine(), seed=1, exact=True, mass=1.0, save=False)
    assert "from exact enumeration (1.0000 of the mass found)" in sample_section(exact)
    greedy = sample_section(td.sample("x", n=5, engine=tree_engine(), do_sample=False, save=False))
    assert "sampler: greedy, max_new_tokens=20" in greedy and "no test: every sample is the same completion" in greedy
