"""Agreement over a prompt set: TARr@N and TARa@N on a FakeEngine, through `td.agreement`."""

from __future__ import annotations

import json

import pytest

import tokendice as td
from tests.experiments.test_audit import GREEDY, batch_noise, fake, quiet_machine  # noqa: F401  (autouse)
from tokendice.errors import ParameterError
from tokendice.inputs import read_prompts

PROMPTS = ["x", "xx", "xxx"]


def agree(noise=None, batch_size=1, **kw):
    return td.agreement(PROMPTS, engine=fake(noise), params=GREEDY, repeats=3, batch_size=batch_size, save=False, **kw)


def test_batch_one_agrees_everywhere():
    report = agree(batch_noise(2))
    assert report.tarr == 1.0 and report.tara is None
    assert [p.unique_outputs for p in report.prompts] == [1, 1, 1]
    assert report.prompts[0].outputs == ["abcx<eos>"]


def test_rotating_batches_break_raw_agreement_but_not_a_coarse_answer():
    # 3 prompts in batches of 2: each repeat one prompt runs alone (no noise, "c"), the others
    # together ("d"); the rotation gives every prompt both, so none agrees across repeats.
    report = agree(batch_noise(2), batch_size=2, answer_regex=r"ab([cd])")
    assert report.tarr == 0.0 and report.tara == 0.0
    assert all(p.first_divergence == 2 and p.unique_outputs == 2 for p in report.prompts)
    assert [p.answers for p in report.prompts] == [["d", "c"], ["d", "c"], ["c", "d"]]
    coarse = agree(batch_noise(2), batch_size=2, answer_regex=r"^(ab)")
    assert coarse.tarr == 0.0 and coarse.tara == 1.0
    d = coarse.to_dict()
    assert d["kind"] == "audit_prompts" and d["tarr_at_3"] == 0.0 and d["tara_at_3"] == 1.0 and d["batch_size"] == 2


def test_samples_are_one_per_prompt_and_repeat():
    report = agree()
    assert sorted((s.prompt_index, s.sample_id) for s in report.samples) == [(p, r) for p in range(3) for r in range(3)]


def test_sampling_with_the_same_seed_agrees():
    report = td.agreement(PROMPTS, engine=fake(), repeats=3, batch_size=3, temperature=1.0, max_new_tokens=6, save=False)
    assert report.tarr == 1.0


def test_stored_with_its_prompts_and_samples(tmp_path):
    from tokendice.store import Store

    db = str(tmp_path / "r.db")
    report = td.agreement(PROMPTS, engine=fake(batch_noise(2)), params=GREEDY, repeats=2, batch_size=2, db=db)
    with Store(db) as store:
        run = store.get_run(report.run_id)
        assert run.kind == "audit" and run.status == "complete" and run.prompt == "(3 prompts) x"
        assert (run.manifest["mode"], run.manifest["prompts"], run.manifest["controls"]["batch_size"]) == ("prompts", PROMPTS, 2)
        assert len(store.samples(run.id)) == 6


def test_bad_inputs(tmp_path):
    with pytest.raises(ParameterError, match="regular expression"):
        agree(answer_regex="(")
    with pytest.raises(ParameterError, match="not found"):
        read_prompts(tmp_path / "none.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(ParameterError, match="no prompts"):
        read_prompts(empty)


def test_read_prompts_text_and_jsonl(tmp_path):
    text = tmp_path / "p.txt"
    text.write_text("first prompt\n\n  second  \n")
    assert read_prompts(text) == ["first prompt", "  second  "]
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text(json.dumps({"prompt": "a\nb"}) + "\n" + json.dumps("c") + "\n")
    assert read_prompts(jsonl) == ["a\nb", "c"]
    jsonl.write_text("{not json}\n")
    with pytest.raises(ParameterError, match="p.jsonl:1"):
        read_prompts(jsonl)
