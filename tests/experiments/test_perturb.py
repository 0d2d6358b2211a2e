"""perturb on a FakeEngine whose next-token distribution depends on the prompt text in a known way:
JS divergence, total variation and POSIX equal the values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.experiments.fake_models import markov_chain
from tokendice.engines.fake import FakeEngine
from tokendice.engines.spec import OPENAI
from tokendice.errors import EngineError, ParameterError
from tokendice.experiments.decoding.enumerate import enumerate_completions
from tokendice.experiments.perturb.perturb import UNITS_PER_PROMPT, PerturbSettings, PromptReport, VariantResult, analyse_prompt
from tokendice.experiments.perturb.score import PromptBatch, score_completions
from tokendice.experiments.perturb.suite import resume_perturb, run_perturb
from tokendice.experiments.perturb.tv import TVEstimate, tv_exact, tv_samples
from tokendice.experiments.perturb.variants import UserVariant, Variant, VariantSet, build_variant_sets, make_variants
from tokendice.params import SamplingParams
from tokendice.store import Store, jsonutil

VOCAB = ["<eos>", "a", "b", "x", "?", ".", "A", "B"]
EOS, A, B, X = 0, 1, 2, 3


def first_step(text: str) -> dict[str, float]:
    if text.endswith("?"):
        return {"a": 0.2, "b": 0.8}
    if text.isupper():
        return {"a": 0.45, "b": 0.55}
    return {"a": 0.6, "b": 0.4}


def second_step(text: str, first: str) -> dict[str, float]:
    if text.endswith("?"):
        return {"<eos>": 0.9, "x": 0.1} if first == "a" else {"<eos>": 1.0}
    return {"<eos>": 0.6, "x": 0.4} if first == "a" else {"<eos>": 0.7, "x": 0.3}


def prompt_dependent(stop_at: str | None = None) -> FakeEngine:
    """Two tokens at most: the first depends on the prompt's last character and case, the second on both.

    With `stop_at`, any prompt starting with it (in any case) raises KeyboardInterrupt, as Ctrl-C would mid-suite.
    """

    def next_logits(prompt, generated):
        text = "".join(VOCAB[i] for i in prompt)
        if stop_at is not None and text.lower().startswith(stop_at):
            raise KeyboardInterrupt
        probs = first_step(text) if not generated else second_step(text, VOCAB[generated[0]])
        if len(generated) >= 2:
            probs = {"<eos>": 1.0}
        return [math.log(probs[t]) if t in probs else -math.inf for t in VOCAB]

    return FakeEngine(VOCAB, next_logits, eos_token_ids=(EOS,), model_id="fake-prompt-dependent")


def completion_distribution(text: str) -> dict[str, float]:
    out = {}
    for first, p1 in first_step(text).items():
        for second, p2 in second_step(text, first).items():
            out[first + second] = out.get(first + second, 0.0) + p1 * p2
    return out


def hand_tv(p: dict[str, float], q: dict[str, float]) -> float:
    return 0.5 * sum(abs(p.get(k, 0) - q.get(k, 0)) for k in set(p) | set(q))


def hand_js(p: list[float], q: list[float]) -> float:
    m = [(a + b) / 2 for a, b in zip(p, q)]
    kl = lambda u, v: sum(a * math.log(a / b) for a, b in zip(u, v) if a > 0)
    return (kl(p, m) + kl(q, m)) / 2


NAMES = ["punct.question", "case.upper", "punct.period", "case.lower"]
SETTINGS = PerturbSettings(SamplingParams(max_new_tokens=2))


@pytest.fixture(scope="module")
def report():
    return analyse_prompt(prompt_dependent(), make_variants("ab", names=NAMES), SETTINGS)


def test_variants_are_ranked_by_tv_and_the_no_op_is_skipped(report):
    assert [r.variant.name for r in report.variants] == ["punct.question", "case.upper", "punct.period"]
    assert [r.rank for r in report.variants] == [1, 2, 3]
    assert report.skipped == [{"name": "case.lower", "prompt": "ab", "note": "same as the original"}]


def test_total_variation_equals_the_hand_computed_value(report):
    original = completion_distribution("ab")
    by_name = {r.variant.name: r for r in report.variants}
    expected = {"punct.question": "ab?", "case.upper": "AB", "punct.period": "ab."}
    assert hand_tv(original, completion_distribution("ab?")) == pytest.approx(0.52)
    assert hand_tv(original, completion_distribution("AB")) == pytest.approx(0.15)
    for name, text in expected.items():
        tv = by_name[name].tv
        assert tv.method == "exact" and tv.low == pytest.approx(tv.high, abs=1e-6)
        assert tv.value == pytest.approx(hand_tv(original, completion_distribution(text)), abs=1e-6)
    assert report.distribution["method"] == "exact" and report.distribution["scored_mass"] == pytest.approx(1.0, abs=1e-6)


def test_first_step_js_top1_and_original_top1_probability(report):
    by_name = {r.variant.name: r for r in report.variants}
    q = by_name["punct.question"]
    assert q.js_model == pytest.approx(hand_js([0.6, 0.4], [0.2, 0.8]), abs=1e-6)
    assert q.js_model == pytest.approx(0.0863047, abs=1e-6)
    assert q.js_sampling == pytest.approx(q.js_model, abs=1e-9)  # the chain is empty: sampling = model
    assert q.top1_changed and q.top1["text"] == "b" and q.orig_top1_model_prob == pytest.approx(0.2, abs=1e-6)
    upper = by_name["case.upper"]
    assert upper.js_model == pytest.approx(hand_js([0.6, 0.4], [0.45, 0.55]), abs=1e-6)
    assert upper.top1_changed and upper.orig_top1_model_prob == pytest.approx(0.45, abs=1e-6)
    period = by_name["punct.period"]
    assert period.js_model == pytest.approx(0.0, abs=1e-9) and not period.top1_changed and period.tv.value == pytest.approx(0.0, abs=1e-7)


def test_greedy_outputs_and_first_divergence(report):
    assert report.original["greedy_text"] == "a<eos>"
    by_name = {r.variant.name: r for r in report.variants}
    assert by_name["punct.question"].greedy_text == "b<eos>" and by_name["punct.question"].greedy_divergence == 0
    assert by_name["punct.period"].greedy_same and by_name["punct.period"].greedy_divergence is None


def test_posix_equals_the_hand_computed_index(report):
    names = report.posix["names"]
    assert names == ["original", "punct.question", "case.upper", "punct.period"]
    texts = ["ab", "ab?", "AB", "ab."]
    responses = [("a", "<eos>"), ("b", "<eos>"), ("b", "<eos>"), ("a", "<eos>")]  # greedy of each prompt

    def loglik(text, response):
        return math.log(first_step(text)[response[0]] * second_step(text, response[0])[response[1]])

    matrix = [[loglik(x, y) for y in responses] for x in texts]
    n = len(texts)
    psi = sum(abs(matrix[i][j] - matrix[j][j]) / 2 for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    assert np.allclose(report.posix["loglik"], matrix, atol=1e-6)
    assert report.posix["response_lengths"] == [2, 2, 2, 2]
    assert report.posix["psi"] == pytest.approx(psi, abs=1e-6)
    upper = next(r for r in report.variants if r.variant.name == "case.upper")
    assert upper.orig_response_delta == pytest.approx((math.log(0.45 * 0.6) - math.log(0.36)) / 2, abs=1e-6)


def test_sampled_tv_is_unbiased_and_its_interval_covers_the_truth():
    # 4,000 samples: each term lies in [0, 1], so the standard error is at most 0.5/sqrt(4000) = 0.008;
    # the 4-SE tolerance (0.032) fails by chance with probability < 1e-4 (and the seed is fixed).
    settings = PerturbSettings(SamplingParams(max_new_tokens=2), samples=4000, max_nodes=1)
    report = analyse_prompt(prompt_dependent(), make_variants("ab", names=NAMES), settings)
    assert report.distribution["method"] == "samples" and report.distribution["samples"] == 4000
    by_name = {r.variant.name: r.tv for r in report.variants}
    for name, truth in [("punct.question", 0.52), ("case.upper", 0.15), ("punct.period", 0.0)]:
        tv = by_name[name]
        assert tv.method == "samples" and abs(tv.value - truth) < 0.032
        assert tv.low <= truth + 1e-9 and truth - 1e-9 <= tv.high


def test_the_sampler_chain_is_what_is_compared():
    # top_k=1 makes every distribution one-hot: TV is 1 where the greedy output changes, JS(sampling) is ln 2
    settings = PerturbSettings(SamplingParams(max_new_tokens=2, top_k=1))
    report = analyse_prompt(prompt_dependent(), make_variants("ab", names=NAMES), settings)
    by_name = {r.variant.name: r for r in report.variants}
    assert by_name["punct.question"].tv.value == pytest.approx(1.0) and by_name["case.upper"].tv.value == pytest.approx(1.0)
    assert by_name["punct.question"].js_sampling == pytest.approx(math.log(2), abs=1e-9)
    assert by_name["punct.question"].js_model == pytest.approx(0.0863047, abs=1e-6)
    assert by_name["punct.period"].tv.value == pytest.approx(0.0)


def test_teacher_forcing_matches_enumeration_with_penalties_at_any_row_budget():
    engine = markov_chain()
    params = SamplingParams(max_new_tokens=3, repetition_penalty=1.7, temperature=0.8)
    prompts = [[1], [2, 3], [4, 4, 5]]
    batch = PromptBatch.prefill(engine, prompts)
    for index, prompt in enumerate(prompts):
        exact = enumerate_completions(engine, prompt, params, mass=1.0, max_nodes=10_000, min_prob=1e-12)
        completions = [c.tokens for c in exact.completions]
        for max_rows in (5, 256):
            scores = score_completions(engine, batch, completions, params, max_rows=max_rows)
            assert np.allclose(scores.sampling[index], [c.logprob for c in exact.completions], atol=1e-5)
            assert np.allclose(scores.model[index], [c.model_logprob for c in exact.completions], atol=1e-5)


def test_a_diffuse_original_is_not_enumerated_and_same_token_variants_are_skipped():
    settings = PerturbSettings(SamplingParams(max_new_tokens=4), samples=20)
    vset = make_variants("xa", names=["more", "chat", "template.chat"],
                         user=[UserVariant("more", "{p}b"), UserVariant("chat", "{p}", chat=True)])
    assert [v.name for v in vset.variants] == ["more", "chat"]  # template.chat duplicates the user's "chat"
    report = analyse_prompt(markov_chain(), vset, settings)
    d = report.distribution
    assert d["method"] == "samples" and d["enumeration"] is None and d["good_turing_unseen"] > 0.5
    assert [r.variant.name for r in report.variants] == ["more"]
    assert report.skipped[-1] == {"name": "chat", "prompt": "xa", "note": "same tokens as the original"}  # no chat template here


def test_tv_estimators_by_hand():
    p = np.log([0.5, 0.3])
    q = np.log([[0.1, 0.3], [0.5, 0.3]])
    low_high = [(t.low, t.high) for t in tv_exact(p, q)]
    assert low_high[0] == pytest.approx((0.4, 0.6)) and low_high[1] == pytest.approx((0.0, 0.2))
    samples = tv_samples(np.log([0.5, 0.5]), np.log([[0.25, 0.5]]), np.array([3.0, 1.0]))[0]
    assert samples.value == pytest.approx(0.375) and samples.n == 4  # three draws of 1 - 0.5, one of 0


def test_suite_summarises_per_kind_and_progress_adds_up():
    engine = prompt_dependent()
    vsets = build_variant_sets(["ab", "ba"], names=["punct.question", "case.upper", "punct.period"])
    ticks: list[int] = []
    report = run_perturb(engine, vsets, SETTINGS, lambda k, label: ticks.append(k))
    assert sum(ticks) == 2 * UNITS_PER_PROMPT
    summary = report.summary
    assert summary["prompts"] == 2 and summary["most_disruptive_kind"] == "punct"
    kinds = {row["kind"]: row for row in summary["by_kind"]}
    assert kinds["punct"]["n"] == 4 and kinds["case"]["n"] == 2
    assert kinds["case"]["mean_tv"] == pytest.approx(0.15, abs=1e-6)  # "BA" moves "ba" exactly as "AB" moves "ab"
    assert kinds["punct"]["mean_tv"] == pytest.approx((0.52 + 0.0) / 2, abs=1e-6)
    assert kinds["punct"]["greedy_change_rate"] == pytest.approx(0.5)
    assert summary["posix"] == pytest.approx(np.mean(summary["posix_per_prompt"]))
    assert report.to_dict()["prompts"][0]["variants"][0]["tv"]["method"] == "exact"


def test_a_suite_is_stored_after_every_prompt_and_an_interruption_is_recorded(tmp_path):
    vsets = build_variant_sets(["ab", "ba"], names=["punct.question"])
    labels: list[str] = []

    def progress(units: int, label: str) -> None:
        labels.append(label)
        if label.startswith("prompt 2/2"):
            raise KeyboardInterrupt

    with Store(str(tmp_path / "s.db")) as store:
        with pytest.raises(KeyboardInterrupt):
            run_perturb(prompt_dependent(), vsets, SETTINGS, progress, store)
        run = store.list_runs(kind="perturb")[0]
        assert run.status == "interrupted" and run.manifest["perturb"]["prompts"] == ["ab", "ba"]
        saved = store.get_result(run.id, "report")
        assert [p["prompt"] for p in saved["prompts"]] == ["ab"] and saved["summary"]["prompts"] == 1
        report = run_perturb(prompt_dependent(), vsets, SETTINGS, None, store)
        assert store.get_run(report.run_id).status == "complete"
        assert len(store.get_result(report.run_id, "report")["prompts"]) == 2


def test_errors():
    with pytest.raises(ParameterError, match="templates"):
        build_variant_sets(["a", "b"], user=[UserVariant("fixed", "literal")])
    with pytest.raises(ParameterError, match="no variant"):
        analyse_prompt(prompt_dependent(), make_variants("ab", names=["case.lower"]), SETTINGS)
    with pytest.raises(ParameterError, match="samples"):
        PerturbSettings(samples=1)

    class BlackBox:
        name, model_id, kind = "openai", "m", OPENAI

    with pytest.raises(EngineError, match="next-token logits"):
        run_perturb(BlackBox(), build_variant_sets(["ab"], names=["case.upper"]), SETTINGS)  # type: ignore[arg-type]


def stored(value):
    """What the run store gives back: the value through its JSON encoding."""
    return jsonutil.loads(jsonutil.dumps(value))


def without_wall_times(data):
    """A stored report less what differs between two runs of the same measurement: run id and wall times."""
    if isinstance(data, dict):
        return {k: without_wall_times(v) for k, v in data.items() if k not in ("seconds", "run_id")}
    if isinstance(data, list):
        return [without_wall_times(v) for v in data]
    return data


def test_from_dict_inverts_to_dict_through_the_store(report):
    for result in report.variants:
        assert VariantResult.from_dict(stored(result.to_dict())) == result
        assert TVEstimate.from_dict(stored(result.tv.to_dict())) == result.tv
        assert Variant.from_dict(stored(result.variant.to_dict())) == result.variant
    back = PromptReport.from_dict(stored(report.to_dict()))
    assert back == report and back.to_dict() == report.to_dict()
    data = report.to_dict()
    PromptReport.from_dict(data).posix["loglik"][0][0] = 99.0  # a copy, as asdict makes one
    assert data["posix"]["loglik"][0][0] != 99.0


def test_from_dict_inverts_to_dict_for_settings_variant_sets_and_missing_tv():
    settings = PerturbSettings(SamplingParams(temperature=0.5, top_k=3, max_new_tokens=2, order="llamacpp"),
                               seed=7, samples=50, mass=0.9, max_nodes=20, distribution=False, max_rows=16)
    for s in (settings, SETTINGS, PerturbSettings()):
        assert PerturbSettings.from_dict(stored(s.to_dict())) == s
    vset = make_variants("ab", names=NAMES + ["case.lower+punct.question", "mine"], user=[UserVariant("mine", "{p}.", chat=True)])
    assert vset.skipped and VariantSet.from_dict(stored(vset.to_dict())) == vset
    no_tv = analyse_prompt(prompt_dependent(), vset, settings).variants[0]
    assert no_tv.tv is None and VariantResult.from_dict(stored(no_tv.to_dict())) == no_tv
    with pytest.raises(ParameterError, match="samples"):
        PerturbSettings.from_dict({**settings.to_dict(), "samples": 1})  # validated again


SUITE = ["ab", "ba", "aab"]
SUITE_SETTINGS = PerturbSettings(SamplingParams(max_new_tokens=2, top_p=0.95), seed=3, samples=50)


def test_an_interrupted_suite_resumes_to_the_report_of_an_uninterrupted_run(tmp_path):
    vsets = build_variant_sets(SUITE, names=["punct.question", "case.upper", "punct.period"])
    with Store(str(tmp_path / "s.db")) as store:
        with pytest.raises(KeyboardInterrupt):
            run_perturb(prompt_dependent(stop_at="ba"), vsets, SUITE_SETTINGS, None, store)
        run_id = store.list_runs(kind="perturb")[0].id
        assert store.get_run(run_id).status == "interrupted"
        assert [p["prompt"] for p in store.get_result(run_id, "report")["prompts"]] == ["ab"]
        ticks: list[int] = []
        resumed = resume_perturb(prompt_dependent(), store, run_id, lambda k, label: ticks.append(k))
        assert resumed.run_id == run_id and store.get_run(run_id).status == "complete"
        assert sum(ticks) == 2 * UNITS_PER_PROMPT  # only the two prompts left were measured
        clean = run_perturb(prompt_dependent(), vsets, SUITE_SETTINGS, None, store)
        after_resume, uninterrupted = store.get_result(run_id, "report"), store.get_result(clean.run_id, "report")
    assert [p["prompt"] for p in after_resume["prompts"]] == SUITE and after_resume["run_id"] == run_id
    assert without_wall_times(after_resume) == without_wall_times(uninterrupted)
    assert after_resume["summary"]["prompts"] == 3 and after_resume["params"]["top_p"] == 0.95
    assert without_wall_times(resumed.to_dict()) == without_wall_times(clean.to_dict())


def test_a_suite_interrupted_before_its_first_prompt_is_measured_whole_on_resume(tmp_path):
    vsets = build_variant_sets(["ba", "ab"], names=["punct.question"])
    with Store(str(tmp_path / "s.db")) as store:
        with pytest.raises(KeyboardInterrupt):
            run_perturb(prompt_dependent(stop_at="ba"), vsets, SETTINGS, None, store)
        run_id = store.list_runs(kind="perturb")[0].id
        assert store.get_result(run_id, "report") is None
        report = resume_perturb(prompt_dependent(), store, run_id)
        assert [p.prompt for p in report.prompts] == ["ba", "ab"] and store.get_run(run_id).status == "complete"


def test_resume_refuses_what_it_cannot_continue(tmp_path):
    vsets = build_variant_sets(["ab"], names=["punct.question"])
    with Store(str(tmp_path / "s.db")) as store:
        with pytest.raises(ParameterError, match="no run with id 'nosuchrun'"):
            resume_perturb(prompt_dependent(), store, "nosuchrun")
        sample_run = store.create_run("sample", {"kind": "sample"}, "ab", "fake", "fake-prompt-dependent")
        with pytest.raises(ParameterError, match="is a sample run, not a perturb run"):
            resume_perturb(prompt_dependent(), store, sample_run)
        done = run_perturb(prompt_dependent(), vsets, SETTINGS, None, store).run_id
        with pytest.raises(ParameterError, match="already complete"):
            resume_perturb(prompt_dependent(), store, done)
        store.set_status(done, "interrupted")
        other = FakeEngine(VOCAB, lambda p, g: [0.0] * len(VOCAB), eos_token_ids=(EOS,), model_id="another")
        with pytest.raises(ParameterError, match="made with fake/fake-prompt-dependent, not fake/another"):
            resume_perturb(other, store, done)
