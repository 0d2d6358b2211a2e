"""compare: transformers vs llama.cpp on the embedded SmolLM2 weights, through the CLI."""

from __future__ import annotations

import json
import math
import time

import pytest

from tokendice.cli import main

pytestmark = pytest.mark.model
PROMPT = "The capital of France is"


@pytest.fixture
def one_torch_thread():  # type: ignore[no-untyped-def]
    """One torch thread: on a shared 2-core machine, two spin-waiting threads run 5-10x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def llamacpp():  # type: ignore[no-untyped-def]
    pytest.importorskip("llama_cpp", reason="llama_cpp not importable: pip install 'tokendice[llamacpp]'")
    from tokendice.engines.llamacpp import LlamaCppEngine

    return LlamaCppEngine(threads=1)


def test_hf_vs_llamacpp_per_step_and_summary(hf_engine, llamacpp, one_torch_thread, monkeypatch, capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    engines = {"hf": hf_engine, "llamacpp": llamacpp}
    monkeypatch.setattr("tokendice.api.get_engine", lambda engine, model=None, **options: engines[engine])
    db = str(tmp_path / "c.db")
    start = time.perf_counter()
    args = ["compare", PROMPT, "--engine", "hf", "--engine", "llamacpp", "--max-new-tokens", "8", "--db", db]
    assert main([*args, "--completion-tokens", "2", "--max-nodes", "12", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    pair = data["pairs"][0]
    assert (pair["a"], pair["b"]) == ("hf:smollm2-135m", "llamacpp:smollm2-135m")
    steps, summary = pair["steps"], pair["summary"]
    assert data["continuation"].startswith(" Paris.") and len(steps) == 8
    # DESIGN.md: p(" Paris") is 0.7725 in transformers and 0.7677 in llama.cpp
    assert math.exp(steps[0]["logprob_a"]) == pytest.approx(0.7725, abs=5e-4)
    assert math.exp(steps[0]["logprob_b"]) == pytest.approx(0.7677, abs=5e-4)
    # Same weights, two engines: close but not equal (Q4_1 dequantised in float32 vs llama.cpp's kernels)
    assert all(0 < s["js"] < 0.01 and s["kl_ab"] > 0 and s["kl_ba"] > 0 for s in steps)
    assert 0 < summary["max_logprob_diff"] < 1.0 and summary["top1_agreement"] >= 0.75
    first = summary["first_greedy_difference"]  # measured here: step 5, " answer" (hf) vs " United" (llama.cpp)
    assert all(s["top1_agree"] for s in steps[: first if first is not None else len(steps)])
    if first is not None:
        assert steps[first]["top1_a"] != steps[first]["top1_b"]
    c = pair["completions"]
    assert 0 <= c["tv_low"] <= c["tv_high"] <= 1 and c["found_mass_a"] > 0.5 and c["found_mass_b"] > 0.5
    assert c["top"][0]["text"] == " Paris."

    assert main([*args, "--no-completions"]) == 0
    out = capsys.readouterr().out
    assert "KL(A‖B)" in out and "summary hf:smollm2-135m vs llamacpp:smollm2-135m" in out and "top-1 agreement" in out
    assert time.perf_counter() - start < 60
