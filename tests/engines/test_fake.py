from __future__ import annotations

import math

import pytest
import torch

from tokendice.engines.fake import FakeEngine
from tokendice.errors import ParameterError

VOCAB = ["<eos>", "a", "b", "c"]


def _engine():
    return FakeEngine.from_table(VOCAB, {(): {"a": 0.6, "b": 0.4}, ("a",): {"c": 0.5, "<eos>": 0.5}})


def test_table_logits_are_the_given_probabilities():
    e = _engine()
    s = e.prefill([e.tokenizer.encode("ab")])
    probs = torch.softmax(e.logits(s), -1)[0]
    assert probs.tolist() == pytest.approx([0, 0.6, 0.4, 0])
    s2 = e.extend(s, torch.tensor([1]))
    assert torch.softmax(e.logits(s2), -1)[0].tolist() == pytest.approx([0.5, 0, 0, 0.5])
    # unknown prefixes end
    s3 = e.extend(s, torch.tensor([2]))
    assert torch.softmax(e.logits(s3), -1)[0, 0] == pytest.approx(1.0)


def test_states_are_immutable_under_select_and_extend():
    e = _engine()
    s = e.prefill([[1], [2]])
    before = e.logits(s).clone()
    e.extend(e.select(s, torch.tensor([1, 1, 0])), torch.tensor([1, 2, 3]))
    assert torch.equal(e.logits(s), before)
    picked = e.select(s, torch.tensor([1, 0, 1]))
    assert picked.batch_size == 3 and picked.payload[0] == s.payload[1]


def test_tokenizer_round_trip_and_errors():
    tok = _engine().tokenizer
    assert tok.decode(tok.encode("abca")) == "abca"
    with pytest.raises(ParameterError):
        tok.encode("z")


def test_noise_hook_sees_batch_size():
    seen = []

    def noise(batch, seq):
        seen.append(batch)
        return [0.0, 0.0, math.log(2), 0.0]

    e = FakeEngine(VOCAB, lambda p, g: [0.0, 0.0, 0.0, 0.0], noise=noise)
    logits = e.logits(e.select(e.prefill([[1]]), torch.zeros(3, dtype=torch.long)))
    assert seen == [3, 3, 3]
    assert torch.softmax(logits, -1)[0, 2] == pytest.approx(0.4)
