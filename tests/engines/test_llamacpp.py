"""The llama.cpp engine on the embedded GGUF, against the transformers engine on the same weights."""

from __future__ import annotations

import sys

import pytest
import torch

from tokendice.engines import load_engine
from tokendice.errors import EngineUnavailableError, ModelNotFoundError
from tokendice.experiments.decoding.decode import decode
from tokendice.params import RandomSpec, SamplingParams

PROMPT = "The capital of France is"
GREEDY = SamplingParams(do_sample=False, max_new_tokens=20)


def test_missing_library_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from tokendice.engines.llamacpp import LlamaCppEngine

    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # makes `import llama_cpp` fail
    with pytest.raises(EngineUnavailableError, match=r"pip install 'tokendice\[llamacpp\]'"):
        LlamaCppEngine()


def test_missing_gguf_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("llama_cpp", reason="llama_cpp not importable: pip install 'tokendice[llamacpp]'")
    with pytest.raises(ModelNotFoundError, match="GGUF file not found"):
        load_engine("llamacpp", str(tmp_path / "nope.gguf"))
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a gguf file")
    with pytest.raises(ModelNotFoundError, match="llama.cpp cannot load"):
        load_engine("llamacpp", str(broken))


@pytest.mark.model
def test_tokenizer_matches_transformers(llamacpp_engine, hf_engine) -> None:  # type: ignore[no-untyped-def]
    ours, theirs = llamacpp_engine.tokenizer, hf_engine.tokenizer
    for text in [PROMPT, " Paris", "Hello, world!\n\nÉtoile 2018-01-22", "<|im_start|>user\nhi<|im_end|>"]:
        assert ours.encode(text) == theirs.encode(text), text
        assert ours.decode(ours.encode(text)) == text
    assert ours.apply_chat_template("What is the capital of France?") == theirs.apply_chat_template(
        "What is the capital of France?"
    )
    assert ours.vocab_size == theirs.vocab_size
    assert set(theirs.eos_token_ids) <= set(ours.eos_token_ids)


@pytest.mark.model
def test_greedy_paris_in_both_engines(llamacpp_engine, hf_engine, record_property) -> None:  # type: ignore[no-untyped-def]
    results = {}
    for engine in (hf_engine, llamacpp_engine):
        ids = engine.tokenizer.encode(PROMPT)
        paris = engine.tokenizer.encode(" Paris")
        assert len(paris) == 1
        p = torch.softmax(engine.logits(engine.prefill([ids])), dim=-1)[0, paris[0]].item()
        (completion,) = decode(engine, ids, GREEDY, RandomSpec(), [0])
        results[engine.name] = (p, completion.tokens, engine.tokenizer.decode(completion.tokens))
        assert engine.tokenizer.decode(completion.tokens[:1]) == " Paris"
    (p_hf, hf_tokens, hf_text), (p_ll, ll_tokens, ll_text) = results["hf"], results["llamacpp"]
    assert abs(p_hf - p_ll) < 0.02, (p_hf, p_ll)  # DESIGN.md: 0.7725 vs 0.7677
    fork = next((i for i, (a, b) in enumerate(zip(hf_tokens, ll_tokens)) if a != b), None)
    report = f"p(' Paris'): hf {p_hf:.4f}, llamacpp {p_ll:.4f}; greedy hf {hf_text!r}, llamacpp {ll_text!r}; "
    report += "identical" if fork is None else f"first differ at step {fork}: {hf_tokens[fork]} vs {ll_tokens[fork]}"
    record_property("engines", report)
    print(report)


@pytest.mark.model
def test_logits_do_not_depend_on_the_path_to_a_sequence(llamacpp_engine) -> None:  # type: ignore[no-untyped-def]
    engine = llamacpp_engine
    ids = engine.tokenizer.encode(PROMPT)
    paris, city, dot = (engine.tokenizer.encode(t)[0] for t in (" Paris", " city", "."))
    base = engine.prefill([ids])
    base_logits = engine.logits(base).clone()

    # Fork the prompt into two rows, extend them differently, evaluate, then come back.
    forked = engine.extend(engine.select(base, torch.tensor([0, 0])), torch.tensor([paris, city]))
    forked_logits = engine.logits(forked).clone()
    longer = engine.extend(forked, torch.tensor([[dot, dot]]).T)
    longer_logits = engine.logits(longer).clone()
    assert torch.equal(engine.logits(base), base_logits)  # old states stay valid
    assert torch.equal(engine.logits(forked), forked_logits)

    # Recomputed from an empty context and in other orders, the same state gives the same logits.
    for order in ([1, 0], [0, 1]):
        engine._memo.clear()
        engine._llm.reset()
        again = engine.extend(engine.extend(engine.prefill([ids, ids]), torch.tensor([paris, city])[order]), torch.tensor([dot, dot]))
        assert torch.equal(engine.logits(again), longer_logits[order])
    engine._memo.clear()
    assert torch.equal(engine.logits(engine.prefill([ids])), base_logits)
    engine._memo.clear()
    assert torch.equal(engine.logits(engine.extend(engine.prefill([ids]), [paris])), forked_logits[:1])
    assert not torch.allclose(forked_logits[0], forked_logits[1])


@pytest.mark.model
def test_prompt_boundary_is_part_of_the_schedule(llamacpp_engine, record_property) -> None:  # type: ignore[no-untyped-def]
    """A 6-token prompt and a 5-token prompt extended by 1 are evaluated differently
    (one batch vs 5 + 1): llama.cpp is not batch-invariant, the difference is real."""
    engine = llamacpp_engine
    ids = engine.tokenizer.encode(PROMPT) + engine.tokenizer.encode(" Paris")
    whole = torch.log_softmax(engine.logits(engine.prefill([ids])), dim=-1)
    split = torch.log_softmax(engine.logits(engine.extend(engine.prefill([ids[:-1]]), [ids[-1]])), dim=-1)
    diff = (whole - split).abs().max().item()
    record_property("prompt_boundary_max_logprob_diff", diff)
    assert diff < 1.0
    assert int(whole.argmax()) == int(split.argmax())


@pytest.mark.model
def test_duplicated_rows_cost_nothing(llamacpp_engine) -> None:  # type: ignore[no-untyped-def]
    engine = llamacpp_engine
    ids = engine.tokenizer.encode("Once upon a time")
    state = engine.prefill([ids])
    engine.logits(state)
    before = engine.evaluated_tokens
    many = engine.select(state, torch.zeros(200, dtype=torch.long))
    logits = engine.logits(many)
    assert logits.shape == (200, engine.tokenizer.vocab_size)
    assert engine.evaluated_tokens == before
    extended = engine.extend(many, torch.full((200,), ids[-1]))
    engine.logits(extended)
    assert engine.evaluated_tokens == before + 1  # 200 identical rows: one evaluation


@pytest.mark.model
def test_sampling_decode_runs_and_reproduces(llamacpp_engine) -> None:  # type: ignore[no-untyped-def]
    engine = llamacpp_engine
    ids = engine.tokenizer.encode(PROMPT)
    params = SamplingParams(temperature=0.7, top_k=50, top_p=0.9, max_new_tokens=8)
    first = decode(engine, ids, params, RandomSpec(seed=1), range(6))
    alone = decode(engine, ids, params, RandomSpec(seed=1), [4])
    assert [c.tokens for c in first][4] == alone[0].tokens
    assert len({tuple(c.tokens) for c in first}) > 1
    assert engine.describe()["engine"] == "llamacpp"


@pytest.mark.model
def test_load_engine_without_a_model_runs_the_embedded_gguf() -> None:
    # The audit's engine row loads every engine by name this way.
    pytest.importorskip("llama_cpp", reason="llama_cpp not importable: pip install 'tokendice[llamacpp]'")
    engine = load_engine("llamacpp", None, threads=1)
    assert engine.model_id == "smollm2-135m" and engine.kind.white_box
    described = engine.describe()
    assert described["model_path"].endswith("SmolLM2-135M-Instruct.Q4_1.gguf") and described["threads"] == 1


@pytest.mark.model
def test_every_token_decodes_as_in_transformers(llamacpp_engine, hf_engine) -> None:  # type: ignore[no-untyped-def]
    # llama-cpp-python's own detokenize drops pieces over 32 bytes (47 tokens here, e.g. long runs of spaces).
    ours, theirs = llamacpp_engine.tokenizer, hf_engine.tokenizer
    assert [i for i in range(ours.vocab_size) if ours.decode([i]) != theirs.decode([i])] == []
    dashes = "-" * 64
    assert ours.decode(ours.encode(dashes)) == dashes


@pytest.mark.model
def test_forget_makes_the_next_evaluation_a_fresh_run(llamacpp_engine) -> None:  # type: ignore[no-untyped-def]
    engine = llamacpp_engine
    ids = engine.tokenizer.encode("Once upon a time")
    first = engine.logits(engine.prefill([ids])).clone()
    before = engine.evaluated_tokens
    engine.logits(engine.prefill([ids]))
    assert engine.evaluated_tokens == before  # remembered
    engine.forget()
    again = engine.logits(engine.prefill([ids]))
    assert engine.evaluated_tokens == before + len(ids)  # evaluated again from scratch
    assert torch.equal(again, first)  # and llama.cpp on one thread gives the same logits
