"""tokendice sample / enumerate on the embedded model, end to end: what only the real model can
show. Everything else (counts, intervals, fit, manifests, resume, kill -9) is tested exactly
on the FakeEngine in tests/api/test_sample*.py and tests/api/test_enumerate.py."""

from __future__ import annotations

import json

import pytest

from tokendice.cli import main
from tokendice.store import Store

pytestmark = pytest.mark.model

NOTEBOOK = ["--temperature", "0.7", "--top-p", "0.9", "--top-k", "50", "--repetition-penalty", "1.2", "--no-repeat-ngram-size", "2", "--seed", "42"]
PROMPT = "The capital of France is"


def test_sample_notebook_params_stores_run_with_manifest(tmp_path, capsys):
    db = str(tmp_path / "s.db")
    args = ["sample", PROMPT, "-n", "100", "--method", "branching", "--max-new-tokens", "6", "--at-prefix", " Paris.", "--json", "--db", db]
    assert main([*args, *NOTEBOOK]) == 0
    report = json.loads(capsys.readouterr().out)
    analysis = report["prompts"][0]
    assert analysis["n"] == 100 and sum(c["count"] for c in analysis["completions"]) == 100
    assert analysis["goodness_of_fit"]["p_value"] > 1e-3
    rows = {r["token"]: r for r in analysis["at_prefix"]["rows"]}
    assert rows["\n"]["predicted_sampling_prob"] == pytest.approx(0.794, abs=0.01)
    with Store(db) as store:
        run = store.get_run(report["run_id"])
        assert run.status == "complete" and run.n_samples == 100 and run.model == "smollm2-135m"
        engine = run.manifest["engine"]
        assert engine["dtype"] == "float32" and engine["threads"] >= 1 and engine["attention"] == "sdpa"  # what resume reuses
        assert store.get_result(run.id, "analysis") == report


def test_interrupted_model_run_resumes_to_the_uninterrupted_samples(tmp_path, monkeypatch, hf_engine):
    """The resumed batches hold other rows than the uninterrupted run's: on the real model, with
    its batch-dependent float sums, the samples must still be the same (per-sample streams)."""
    import tokendice as td

    settings = {"n": 24, "batch_size": 8, "seed": 5, "temperature": 0.9, "max_new_tokens": 8}
    add = Store.add_samples

    def add_then_interrupt(self, run_id, samples, results=None):  # type: ignore[no-untyped-def]
        add(self, run_id, samples, results)
        raise KeyboardInterrupt

    with monkeypatch.context() as patched, pytest.raises(td.RunInterrupted) as caught:
        patched.setattr(Store, "add_samples", add_then_interrupt)
        td.sample(PROMPT, engine=hf_engine, **settings)
    assert td.show_run(caught.value.run_id).n_samples == 8
    resumed = td.resume(caught.value.run_id, engine=hf_engine)
    clean = td.sample(PROMPT, engine=hf_engine, save=False, **settings)
    assert [(s.sample_id, s.tokens) for s in resumed.samples] == [(s.sample_id, s.tokens) for s in clean.samples]


def test_enumerate_reaches_99_percent_of_a_low_entropy_prompt(tmp_path, capsys):
    db = str(tmp_path / "e.db")
    assert main(["enumerate", PROMPT, "--json", "--db", db, "--temperature", "0.5", "--top-k", "5", "--max-new-tokens", "4"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["found_mass"] >= 0.99 and data["stopped_because"] == "reached the target mass"
    assert data["found_mass"] + data["unexplored_mass"] == pytest.approx(1.0, abs=1e-9)
    assert data["completions"][0]["text"].startswith(" Paris")
