"""The transformers engine on the embedded SmolLM2 model."""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.model


def test_paris_probability_matches_design_note(hf_engine):
    ids = hf_engine.tokenizer.encode("The capital of France is")
    probs = torch.softmax(hf_engine.logits(hf_engine.prefill([ids])), -1)[0]
    paris = hf_engine.tokenizer.encode(" Paris")[-1]
    assert probs[paris].item() == pytest.approx(0.7725, abs=5e-4)


def test_select_and_extend_do_not_mutate_the_state(hf_engine):
    ids = hf_engine.tokenizer.encode("The capital of France is")
    base = hf_engine.prefill([ids])
    logits_before = hf_engine.logits(base).clone()
    forked = hf_engine.select(base, torch.zeros(3, dtype=torch.long))
    a = hf_engine.extend(forked, torch.tensor([7042, 30, 198]))
    b = hf_engine.extend(base, torch.tensor([7042]))  # base still usable after the fork was extended
    assert torch.equal(hf_engine.logits(base), logits_before)
    assert torch.allclose(hf_engine.logits(a)[0], hf_engine.logits(b)[0], atol=1e-4)


def test_padded_batch_gives_the_same_logits_as_alone(hf_engine):
    tok = hf_engine.tokenizer
    short, long = tok.encode("The capital of France is"), tok.encode("Once upon a time, in a land far away, there")
    alone = hf_engine.logits(hf_engine.prefill([short]))[0]
    batched_state = hf_engine.prefill([long, short])
    assert torch.allclose(hf_engine.logits(batched_state)[1], alone, atol=1e-3)
    # and after extending both rows by the same token
    step_alone = hf_engine.logits(hf_engine.extend(hf_engine.prefill([short]), torch.tensor([7042])))[0]
    step_batched = hf_engine.logits(hf_engine.extend(batched_state, torch.tensor([7042, 7042])))[1]
    assert torch.allclose(step_batched, step_alone, atol=1e-3)


def test_full_recompute_matches_kv_cache():
    from tokendice.engines.hf import HFEngine

    no_cache = HFEngine(kv_cache=False)
    ids = no_cache.tokenizer.encode("The capital of France is")
    s = no_cache.extend(no_cache.prefill([ids]), torch.tensor([7042]))
    cached = HFEngine()
    c = cached.extend(cached.prefill([ids]), torch.tensor([7042]))
    assert torch.allclose(no_cache.logits(s), cached.logits(c), atol=1e-4)


def test_rewind_cuts_the_cache_back_to_the_same_logits(hf_engine):
    """The explorer forks by rewinding a branch's state: extending the rewound state must give the
    logits a state that never went further gives, bitwise, and leave the longer state usable."""
    tok = hf_engine.tokenizer
    ids = tok.encode("The capital of France is")
    paris, city, dot = tok.encode(" Paris")[-1], tok.encode(" city")[-1], tok.encode(".")[-1]
    one = hf_engine.extend(hf_engine.prefill([ids]), torch.tensor([paris]))
    three = hf_engine.extend(hf_engine.extend(one, torch.tensor([dot])), torch.tensor([dot]))
    three_logits = hf_engine.logits(three).clone()
    forked = hf_engine.extend(hf_engine.rewind(three, 2), torch.tensor([city]))  # " Paris" then " city"
    direct = hf_engine.extend(one, torch.tensor([city]))
    assert torch.equal(hf_engine.logits(forked), hf_engine.logits(direct))
    assert int(forked.lengths[0]) == int(direct.lengths[0]) == len(ids) + 2
    assert torch.equal(hf_engine.logits(three), three_logits)  # the longer state is untouched
    with pytest.raises(ValueError, match="cannot rewind"):
        hf_engine.rewind(one, len(ids) + 1)
