from __future__ import annotations

import json
import math

import pytest

from tokendice.engines.fake import FakeEngine
from tokendice.experiments.trace.trace import run_trace
from tokendice.params import SamplingParams

VOCAB = ["<eos>", "x", "a", "b", "c", "<b>"]


def _engine():
    table = {
        (): {"a": 0.5, "b": 0.3, "c": 0.15, "<b>": 0.05},
        ("a",): {"a": 0.6, "b": 0.4},
        ("b",): {"<eos>": 1.0},
        ("c",): {"<eos>": 1.0},
        ("<b>",): {"<eos>": 1.0},
        ("a", "a"): {"<eos>": 1.0},
        ("a", "b"): {"<eos>": 1.0},
    }
    return FakeEngine.from_table(VOCAB, table)


def test_greedy_trace_reports_model_and_stage_probabilities():
    trace = run_trace(_engine(), "x", SamplingParams(do_sample=False, no_repeat_ngram_size=1), top=3)
    assert [s.text for s in trace.steps] == ["a", "b", "<eos>"]  # a repeat of "a" is banned by the 1-gram rule
    first = trace.steps[0]
    assert first.chosen.model_prob == pytest.approx(0.5)
    assert [c.text for c in first.top] == ["a", "b", "c"]
    second = trace.steps[1]
    banned = next(c for c in second.top if c.text == "a")
    assert banned.model_prob == pytest.approx(0.6)
    assert banned.removed_by == "no_repeat_ngram_size=1"
    assert second.chosen.model_prob == pytest.approx(0.4)
    assert second.chosen.sampling_prob == pytest.approx(1.0)  # the ban leaves only b
    assert trace.model_logprob == pytest.approx(math.log(0.5) + math.log(0.4))
    assert trace.finish_reason == "eos"


def test_top_p_attribution_and_sampling_distribution():
    trace = run_trace(_engine(), "x", SamplingParams(top_p=0.7, max_new_tokens=1), seed=3, top=4)
    step = trace.steps[0]
    probs = {c.text: c for c in step.top}
    # nucleus 0.7 keeps a (0.5) and b (0.3): renormalised 0.625 / 0.375
    assert probs["a"].sampling_prob == pytest.approx(0.625)
    assert probs["b"].sampling_prob == pytest.approx(0.375)
    assert probs["c"].removed_by == "top_p=0.7" and probs["c"].sampling_prob == 0
    assert step.model_entropy == pytest.approx(-sum(p * math.log(p) for p in (0.5, 0.3, 0.15, 0.05)))
    assert step.sampling_entropy == pytest.approx(-(0.625 * math.log(0.625) + 0.375 * math.log(0.375)))


def test_json_holds_every_documented_field():
    trace = run_trace(_engine(), "x", SamplingParams(top_k=2, temperature=0.5), seed=1, top=2)
    data = json.loads(trace.to_json())
    step = data["steps"][0]
    for key in ("token_id", "text", "model_prob", "model_logprob", "sampling_prob", "sampling_logprob", "stage_probs", "removed_by", "model_rank"):
        assert key in step["chosen"]
    assert {"model_entropy", "sampling_entropy", "top"} <= set(step)
    assert {"model_prob", "sampling_prob"} <= set(step["top"][0])
    assert data["stages"] == ["temperature=0.5", "top_k=2"]
    assert data["summary"]["n_tokens"] == len(data["steps"])


def test_html_escapes_generated_text():
    vocab = ["<eos>", "x", "<script>alert(1)</script>"]
    engine = FakeEngine.from_table(vocab, {(): {"<script>alert(1)</script>": 1.0}})
    html = run_trace(engine, "x", SamplingParams(max_new_tokens=1))._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_dataframe_is_long_form_with_the_alternatives():
    trace = run_trace(_engine(), "x", SamplingParams(temperature=0.5), seed=5, top=3)
    df = trace.to_dataframe()
    assert list(df.columns) == [*trace.COLUMNS, "p_after[temperature=0.5]"]
    assert df["chosen"].sum() == len(trace.steps)  # one chosen token per step, the rest alternatives
    for s in trace.steps:
        rows = df[df["step"] == s.step]
        listed = {s.chosen.token_id} | {c.token_id for c in s.top}
        assert set(rows["token_id"]) == listed and len(rows) == len(listed)
        chosen = rows[rows["chosen"]].iloc[0]
        assert chosen["token_id"] == s.chosen.token_id and chosen["model_prob"] == s.chosen.model_prob
