"""The explorer's Python API on the FakeEngine: forks, exact branch probabilities, sampling from a
node, step views under another sampler, storage and reopening."""

from __future__ import annotations

import json
import math

import pytest

import tokendice as td
from tests.experiments.fake_models import FORK_TABLE, FORK_VOCAB
from tokendice.api import explore
from tokendice.engines.fake import FakeEngine

VOCAB, TABLE = FORK_VOCAB, FORK_TABLE
A, B, C, EOS = 1, 2, 3, 0


class Counting(FakeEngine):
    """Counts the tokens it is asked to process: a fork must not recompute its prefix."""

    def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.prefilled: list[int] = []

    def prefill(self, prompts):  # type: ignore[no-untyped-def]
        self.prefilled += [len(p) for p in prompts]
        return super().prefill(prompts)


def engine() -> Counting:
    base = FakeEngine.from_table(VOCAB, TABLE)
    return Counting(VOCAB, base._next_logits, eos_token_ids=(EOS,), model_id="fake-table")


def test_the_first_branch_is_the_trace_of_the_prompt():
    e = engine()
    x = explore("a", engine=e, seed=3, max_new_tokens=4, save=False)
    t = td.trace("a", engine=e, seed=3, max_new_tokens=4, save=False)
    first = x.tree.branches[0]
    assert first.tokens == t.token_ids and first.text == t.text
    assert first.prob == pytest.approx(math.exp(t.sampling_logprob))


def test_a_fork_takes_the_token_and_its_probability_is_exact():
    x = explore("a", engine=engine(), seed=3, max_new_tokens=4, save=False)
    b = x.fork(0, 0, B)  # " b" at step 0, then sampled: " a" or " c" (0.5 each), then the end
    assert b.parent == 0 and b.fork_step == 0 and b.tokens[0] == B and b.tokens[-1] == EOS
    assert b.prob == pytest.approx(0.3 * 0.5 * 1.0)
    assert b.model_logprob == pytest.approx(math.log(0.3 * 0.5))
    c = x.fork(b.id, 1, C)  # its step 1 replaced: b c <eos>
    assert c.tokens == [B, C, EOS] and c.prob == pytest.approx(0.3 * 0.5) and c.steps[0] == b.steps[0]
    streamed = []
    d = x.fork(0, 0, C, on_step=streamed.append)
    assert [s.token_id for s in streamed] == d.tokens == [C, EOS]  # every step, as it was decoded


def test_a_fork_reuses_the_cached_prefix():
    e = engine()
    x = explore("a", engine=e, seed=3, max_new_tokens=4, save=False)
    assert e.prefilled == [1]  # the prompt, once
    x.fork(0, 1, EOS)
    x.fork(0, 0, C)
    assert e.prefilled == [1]  # forks cut the branch's state back: no prefill of the prefix again


def test_a_token_the_sampler_removed_makes_a_branch_of_probability_zero():
    x = explore("a", engine=engine(), seed=3, max_new_tokens=4, top_k=1, save=False)  # only "a" survives at step 0
    b = x.fork(0, 0, C)
    assert b.prob == 0.0 and b.steps[0].chosen.removed_by == "top_k=1"
    assert b.model_logprob == pytest.approx(math.log(0.2))


def test_sampling_from_a_node_counts_against_exact_probabilities():
    x = explore("a", engine=engine(), seed=3, max_new_tokens=4, save=False)
    b = x.fork(0, 0, B)
    node = x.sample(b.id, 1, n=400, seed=2)  # after " b": " a<eos>" or " c<eos>", 0.5 each
    assert sum(r["count"] for r in node.completions) == 400 and node.prefix == "b"
    assert {r["text"]: r["exact_prob"] for r in node.completions} == pytest.approx({"a<eos>": 0.5, "c<eos>": 0.5})
    for r in node.completions:
        assert r["ci_low"] <= 0.5 <= r["ci_high"]
    root = x.sample(0, 0, n=100, seed=2)
    assert sum(r["exact_prob"] for r in root.completions) == pytest.approx(1.0)  # all five completions were drawn


def test_step_view_and_new_branches_follow_the_sampler_now():
    x = explore("a", engine=engine(), seed=3, max_new_tokens=4, save=False)
    view = x.step_view(0, 0, top_k=2)
    shown = {c.text: c.sampling_prob for c in view.top}
    assert {k: shown[k] for k in "abc"} == pytest.approx({"a": 0.5 / 0.8, "b": 0.3 / 0.8, "c": 0.0})
    x.set_params(top_k=2, max_new_tokens=4)
    b = x.fork(0, 0, B)
    assert b.params["top_k"] == 2 and b.prob == pytest.approx(0.3 / 0.8 * 0.5)
    deep = x.fork(b.id, 1, C)  # the shared step was scored under the same sampler: exact
    assert deep.prob == pytest.approx(0.3 / 0.8 * 0.5)
    with pytest.raises(td.ParameterError, match="did you mean 'top_k'"):
        x.set_params(topk=3)


def test_bad_forks_name_what_is_wrong():
    x = explore("a", engine=engine(), seed=3, max_new_tokens=4, save=False)
    for args, needle in [((9, 0, A), "no branch 9"), ((0, 7, A), "step must be in"), ((0, 0, 99), "token_id must be"),
                         ((0, 0, "a"), "token_id must be")]:
        with pytest.raises(td.ParameterError, match=needle):
            x.fork(*args)


def test_the_tree_is_stored_after_every_change_and_reopens(tmp_path):
    e = engine()
    x = explore("a", engine=e, seed=3, max_new_tokens=4)
    x.fork(0, 0, B)
    x.sample(1, 1, n=20)
    stored = td.load_run(x.run_id)
    assert type(stored).__name__ == "Exploration" and stored.to_dict() == x.tree.to_dict()
    again = explore(open=x.run_id, engine=e)
    assert again.tree.to_dict() == x.tree.to_dict()
    assert again.fork(1, 1, C).prob == pytest.approx(0.3 * 0.5)  # its states were rebuilt for the fork
    path = x.export(tmp_path / "tree.json")
    reopened = explore(open=str(path), engine=e)
    assert {k: v for k, v in reopened.tree.to_dict().items() if k != "run_id"} == {k: v for k, v in json.loads(path.read_text()).items() if k != "run_id"}


def test_results_render_and_escape():
    vocab = ["<eos>", "<script>alert(1)</script>", "x"]
    e = FakeEngine.from_table(vocab, {(): {"<script>alert(1)</script>": 0.7, "x": 0.3}})
    x = explore("x", engine=e, do_sample=False, save=False)
    html = x.tree._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert list(x.tree.to_dataframe().columns) == list(x.tree.COLUMNS)
    assert len(repr(x.tree)) < 200 and "\n" not in repr(x.tree)
