"""The determinism audit on a FakeEngine with controlled, batch-size-dependent logit noise.

Through the public API (`td.audit(engine=a FakeEngine)`) wherever it reaches; the audit's
internals (providers that vary dtype, the controls) directly.
"""

from __future__ import annotations

import math

import pytest
import torch

import tokendice as td
from tokendice.engines.fake import FakeEngine
from tokendice.engines.spec import OPENAI
from tokendice.errors import EngineError, ParameterError
from tokendice.experiments.audit.audit import run_audit
from tokendice.experiments.audit.conditions import batch_prompts, parse_groups
from tokendice.experiments.audit.controls import Setup, applied
from tokendice.experiments.audit.providers import DTYPE, WHITE_BOX_CONTROLS, FixedProvider
from tokendice.params import SamplingParams
from tokendice.store import Store

VOCAB = ["<eos>", "x", "a", "b", "c", "d"]
TIE = 0.001  # logit lead of "c" over "d" at step 2: the baseline's top-1/top-2 margin there
GREEDY = SamplingParams(do_sample=False, max_new_tokens=6)


@pytest.fixture(autouse=True)
def quiet_machine(monkeypatch):
    """A machine with idle cores: no busy-machine warning, whatever the load where the tests run."""
    monkeypatch.setattr("os.getloadavg", lambda: (0.0, 0.0, 0.0))


def next_logits(prompt, generated):
    """a, b, then a near-tie c (+0.001) vs d, then x, then end."""
    logits = [-10.0] * len(VOCAB)
    step = len(generated)
    if step == 0:
        logits[2] = 0.0
    elif step == 1:
        logits[3] = 0.0
    elif step == 2:
        logits[4], logits[5] = TIE, 0.0
    elif step == 3:
        logits[1] = 0.0
    else:
        logits[0] = 0.0
    return logits


def batch_noise(min_batch: int, amount: float = 0.01):
    """Raise "d" by `amount` whenever the batch holds at least `min_batch` rows."""
    return lambda batch, seq: [0, 0, 0, 0, 0, amount] if batch >= min_batch else None


def fake(noise=None, model_id: str = "fake") -> FakeEngine:
    return FakeEngine(VOCAB, next_logits, noise=noise, model_id=model_id)


def audit(engine, **kw):
    kw.setdefault("repeats", 3)
    return td.audit("x", engine=engine, params=GREEDY, save=False, **kw)


def test_flags_exactly_the_batch_conditions_with_divergence_step_and_margin():
    report = audit(fake(batch_noise(2)))
    changed = report.summary["changes_output"]
    assert changed == ["batch 2", "batch 8", "batch 32"] == report.changes_output
    for label in changed:
        c = report.condition(label)
        assert c.first_divergence == 2
        assert (c.baseline_token, c.condition_token) == ("c", "d")
        assert c.margin == pytest.approx(TIE, abs=1e-6)
        assert c.condition_margin == pytest.approx(0.01 - TIE, abs=1e-6)
        assert c.verdict == "DIVERGES at step 2 (margin 0.001)"
        assert c.n_identical == 0 and c.unique_outputs == 1 and c.tarr == 1.0
        assert c.max_logprob_diff_forced is not None and c.max_logprob_diff_forced >= c.max_logprob_diff > 0
    assert report.condition("baseline").verdict == "identical"
    assert report.condition("baseline").tarr == 1.0
    assert report.condition("1 thread").verdict == "identical"
    assert report.baseline["text"] == "abcx<eos>" and report.baseline["tokens"] == [2, 3, 4, 1, 0]


def test_conditions_an_engine_cannot_vary_are_not_applicable():
    report = audit(fake())
    by_group = {c.group: c for c in report.conditions}
    for group in ("dtype", "kv_cache", "attention", "engines"):
        assert by_group[group].status == "not applicable"
        assert by_group[group].verdict == "not applicable for engine fake"
    assert set(report.summary["not_tested"]) == {"dtype", "kv cache", "attention", "engines"}
    assert report.summary["changes_output"] == []
    assert report.recipe.startswith("greedy, any batch size (1, 2, 8, 32), any thread count (")


def test_noise_only_in_large_batches_gives_a_recipe_with_the_small_ones():
    report = audit(fake(batch_noise(8)), conditions="batch")
    assert report.summary["changes_output"] == ["batch 8", "batch 32"]
    assert report.condition("batch 2").verdict == "identical"
    assert report.recipe == "greedy, batch 1 or 2"
    assert [c.group for c in report.conditions] == ["baseline", "batch", "batch", "batch"]


def test_batch_sizes_pick_the_batch_conditions():
    report = audit(fake(batch_noise(4)), conditions=["batch"], batch_sizes=(1, 3, 4))
    assert [c.label for c in report.conditions] == ["baseline", "batch 3", "batch 4"]
    assert report.changes_output == ["batch 4"] and report.recipe == "greedy, batch 1 or 3"


def test_noise_that_moves_no_argmax_is_drift_not_divergence():
    # lower "b" at every step: never the argmax after step 1, so the tokens hold
    noise = lambda batch, seq: [0, 0, 0, -0.5, 0, 0] if batch > 1 and len(seq) != 2 else None  # noqa: E731
    report = audit(fake(noise), conditions="batch")
    c = report.condition("batch 2")
    assert c.first_divergence is None and c.n_identical == c.repeats
    assert c.verdict.startswith("same tokens, log-probs drift")
    assert c.max_logprob_diff > 0
    assert report.summary["drift_only"] == ["batch 2", "batch 8", "batch 32"]


def test_a_baseline_that_changes_between_repeats_has_no_recipe():
    calls = {"n": 0}

    def flaky(batch, seq):  # every third call at the tie flips it: run-to-run nondeterminism
        if len(seq) == 3:
            calls["n"] += 1
            return [0, 0, 0, 0, 0, 0.01] if calls["n"] % 3 == 2 else None
        return None

    report = audit(fake(flaky), conditions="baseline", repeats=3)
    base = report.condition("baseline")
    assert base.first_divergence == 2 and base.divergent_repeats == 1 and base.unique_outputs == 2
    assert base.tarr == 0.0
    assert base.verdict == "DIVERGES at step 2 (margin 0.001) in 1/3 repeats"
    assert not report.reproducible
    assert report.recipe.startswith("none: the baseline itself changes")


def test_other_engines_given_as_engines_are_run():
    shifted = lambda p, g: [x + (0.01 if i == 5 else 0) for i, x in enumerate(next_logits(p, g))]  # noqa: E731
    other = FakeEngine(VOCAB, shifted, model_id="other")
    report = audit(fake(), repeats=2, conditions="engines", others=[fake(model_id="twin"), other])
    assert [c.label for c in report.conditions] == ["baseline", "fake twin", "fake other"]
    assert report.condition("fake twin").verdict == "identical"
    assert report.condition("fake other").first_divergence == 2
    assert report.recipe == "greedy, engine fake or fake twin"


def test_other_engines_from_a_spec_default_to_every_engine_and_take_given_specs(monkeypatch):
    from tokendice.experiments.audit.providers import NEEDS_BASE_URL, other_engines

    base = fake()
    base.name = "hf"  # stands for the transformers engine of the spec
    spec = td.EngineSpec("hf", "some/model")
    found = other_engines(spec, base, None)
    assert found == {"llamacpp": td.EngineSpec("llamacpp", "some/model"), "openai": NEEDS_BASE_URL}
    server = td.EngineSpec("openai", base_url="http://127.0.0.1:9/v1")
    found = other_engines(spec, base, [server, td.EngineSpec("openai", base_url="http://127.0.0.1:8/v1")])
    assert list(found) == ["llamacpp", "openai", "openai default"] and found["openai"] is server


def test_an_unavailable_other_engine_is_reported():
    provider = FixedProvider(fake(), others={"gone": "unavailable: no such library"})
    report = run_audit(provider, "x", GREEDY, repeats=2, groups=parse_groups("engines"))
    gone = report.condition("gone")
    assert gone.status == "unavailable" and gone.verdict == "unavailable: no such library"
    assert report.summary["not_tested"] == {"gone": "unavailable: no such library"}


def test_per_sample_streams_make_sampling_batch_invariant():
    # no noise: sampled runs at any batch size equal the baseline (sample 0's own stream)
    report = td.audit("x", engine=fake(), repeats=2, conditions="batch", temperature=1.0, max_new_tokens=6, save=False)
    assert report.summary["changes_output"] == []
    assert report.recipe.startswith("seed 0, rng per-sample, any batch size")


def test_batch_places_the_prompt_among_longer_and_shorter_prompts():
    tok = fake().tokenizer
    prompts, row = batch_prompts(tok, [1, 1, 1], 8)
    assert len(prompts) == 8 and row == 4 and prompts[row] == [1, 1, 1]
    lengths = [len(p) for i, p in enumerate(prompts) if i != row]
    assert max(lengths) > 3 and min(lengths) < 3 and len(set(lengths)) > 3


def test_parse_groups():
    assert parse_groups("batch,kv-cache") == ("baseline", "batch", "kv_cache")
    assert parse_groups(["threads", "batch"]) == ("baseline", "batch", "threads")
    assert parse_groups(None) == parse_groups("all")
    with pytest.raises(ParameterError, match="did you mean 'batch'"):
        parse_groups("bach")
    with pytest.raises(ParameterError, match="conditions"):
        parse_groups(3)  # type: ignore[arg-type]


def test_black_box_baselines_are_refused():
    class BlackBox:
        name, model_id, kind = "server", "m", OPENAI

    with pytest.raises(EngineError, match="white-box"):
        td.audit("x", engine=BlackBox(), save=False)
    with pytest.raises(ParameterError, match="white-box"):
        td.audit("x", engine=td.EngineSpec("openai", base_url="http://127.0.0.1:9/v1"), save=False)


def test_controls_set_torch_threads_for_an_engine_without_its_own_and_restore():
    threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    with applied(Setup(threads=1, deterministic=True)):
        assert torch.get_num_threads() == 1 and torch.are_deterministic_algorithms_enabled()
    assert torch.get_num_threads() == threads and torch.are_deterministic_algorithms_enabled() == det


class Threaded(FakeEngine):
    """An engine that owns its thread count, as HFEngine does, and records it at every forward."""

    def __init__(self, threads: int) -> None:
        super().__init__(VOCAB, next_logits)
        self.threads, self.threads_given, self.seen = threads, False, []

    def logits(self, state):
        self.seen.append(self.threads)
        return super().logits(state)

    def describe(self):
        return {**super().describe(), "threads": self.threads, "threads_given": self.threads_given}


def test_controls_set_an_engines_own_threads_and_restore():
    engine, torch_threads = Threaded(3), torch.get_num_threads()
    with applied(Setup(threads=1), engine):
        assert engine.threads == 1 and engine.threads_given and torch.get_num_threads() == torch_threads
    assert engine.threads == 3 and not engine.threads_given


def test_the_threads_condition_runs_on_the_engines_own_thread_count():
    engine = Threaded(3)
    report = audit(engine, conditions="threads", repeats=2)
    assert [c.label for c in report.conditions] == ["baseline", "1 thread"]
    assert engine.seen == [3] * 10 + [1] * 10  # 2 repeats x 5 steps each
    assert engine.threads == 3  # restored
    assert report.baseline["setup"]["threads"] == 3 and report.baseline["engine"]["threads"] == 3
    one = report.condition("1 thread")
    assert one.setup["threads"] == 1 and one.engine["threads"] == 1 and one.engine["threads_given"] is True
    assert report.recipe == "greedy, any thread count (3, 1)"


def test_audit_is_stored_with_its_controls(tmp_path):
    db = str(tmp_path / "runs.db")
    report = td.audit("x", engine=fake(batch_noise(2)), repeats=2, conditions="batch,threads",
                      deterministic=True, seed=7, do_sample=False, max_new_tokens=6, db=db)
    with Store(db) as store:
        run = store.get_run(report.run_id)
        assert run.kind == "audit" and run.status == "complete"
        assert store.get_result(run.id, "report") == report.to_dict()
        m = run.manifest
        assert (m["seed"], m["rng"], m["deterministic"], m["repeats"], m["mode"]) == (7, "per-sample", True, 2, "conditions")
        assert {"dtype", "batch_size", "attention", "threads", "threads_default", "kv_cache", "deterministic"} <= set(m["controls"])
        assert m["controls"]["threads"] >= 1
        assert m["params"]["do_sample"] is False
        assert [c["label"] for c in m["conditions"]] == ["baseline", "batch 2", "batch 8", "batch 32", "1 thread"]
        samples = store.samples(run.id)
        assert len(samples) == 2 * 5
        batch2 = report.condition("batch 2").sample_ids
        assert [samples[i].text for i in batch2] == ["abdx<eos>"] * 2
    assert math.isclose(report.condition("batch 2").margin, TIE, abs_tol=1e-6)


class Server:
    """A scripted black-box engine: the baseline's text, or one that flips the tie at step 2."""

    name, kind = "server", OPENAI

    def __init__(self, pieces, model_id):
        self.pieces, self.model_id, self.closed = pieces, model_id, False

    def generate(self, prompt, params, seed, sample_id, top_logprobs=5):
        from tokendice.engines.blackbox import BlackBoxCompletion

        return BlackBoxCompletion(sample_id, seed, "".join(self.pieces), list(self.pieces), [-0.001] * len(self.pieces))

    def close(self):
        self.closed = True


def test_black_box_engines_are_compared_by_text_and_left_open():
    same, flipped = Server(["a", "b", "c", "x", "<eos>"], "same"), Server(["a", "b", "d", "x", "<eos>"], "flipped")
    report = audit(fake(), repeats=2, conditions="engines", others=[same, flipped])
    assert report.condition("server").identical and report.condition("server").max_logprob_diff < 0.01
    c = report.condition("server flipped")
    assert c.first_divergence == 2 and (c.baseline_token, c.condition_token) == ("c", "d")
    assert c.margin == pytest.approx(TIE, abs=1e-6) and c.notes[0].startswith("black-box")
    assert not same.closed and not flipped.closed  # the caller's engines: the caller closes them


def test_engines_the_audit_loads_itself_are_closed():
    server = Server(["a", "b", "c", "x", "<eos>"], "s")
    provider = FixedProvider(fake(), others={"loaded here": lambda: server})
    run_audit(provider, "x", GREEDY, repeats=1, groups=parse_groups("engines"))
    assert server.closed


def test_a_stored_report_reloads():
    from tokendice.experiments.audit.report import AuditReport

    report = audit(fake(batch_noise(2)), conditions="batch", repeats=1)
    again = AuditReport.from_dict(report.to_dict())
    assert again.to_dict() == report.to_dict()
    assert again.condition("batch 2").changes_output


def test_a_condition_that_fails_is_reported_and_the_audit_goes_on():
    class Broken(FakeEngine):
        def prefill(self, prompts):
            if len(prompts) > 2:
                raise RuntimeError("out of memory\nsecond line")
            return super().prefill(prompts)

    report = audit(Broken(VOCAB, next_logits), conditions="batch")
    assert report.condition("batch 2").verdict == "identical"
    assert report.condition("batch 8").status == "failed" and report.condition("batch 8").verdict == "failed: out of memory"
    assert "batch 8" in report.summary["not_tested"]


def test_a_variant_that_cannot_load_is_reported_failed():
    from tokendice.errors import ModelNotFoundError

    class Provider(FixedProvider):
        def engine(self, setup):
            if setup.dtype != "float32":
                raise ModelNotFoundError(f"no {setup.dtype} weights")
            return super().engine(setup)

    report = run_audit(Provider(fake(), controls=WHITE_BOX_CONTROLS | {DTYPE}), "x", GREEDY, repeats=1, groups=parse_groups("dtype"))
    assert report.condition("bfloat16").verdict == "failed to load: no bfloat16 weights"
    assert report.condition("baseline").verdict == "identical"


def test_an_engine_that_memoises_logits_forgets_them_before_every_repeat():
    class Memoising(FakeEngine):
        forgotten = 0

        def forget(self) -> None:
            self.forgotten += 1

    engine = Memoising(VOCAB, next_logits)
    audit(engine, conditions="baseline", repeats=4)
    assert engine.forgotten == 4
