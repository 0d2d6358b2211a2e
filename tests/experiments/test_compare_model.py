"""compare: transformers vs llama.cpp on the embedded SmolLM2 weights, end to end through the CLI."""

from __future__ import annotations

import json
import math
import time

import pytest

import tokendice as td
from tokendice.cli import main

pytestmark = pytest.mark.model
PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def llamacpp():  # type: ignore[no-untyped-def]
    pytest.importorskip("llama_cpp", reason="llama_cpp not importable: pip install 'tokendice[llamacpp]'")
    from tokendice.engines.llamacpp import LlamaCppEngine

    return LlamaCppEngine(threads=1)


def test_hf_vs_llamacpp(hf_engine, llamacpp, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    # One thread each: on a shared 2-core machine, two spin-waiting threads run 5-10x slower.
    monkeypatch.setattr(hf_engine, "threads", 1)  # the engine sets torch's thread count before each forward
    engines = {"hf": hf_engine, "llamacpp": llamacpp}  # the session's engines, not a second load
    monkeypatch.setattr("tokendice.engines.spec.EngineSpec.load", lambda spec: engines[spec.engine])
    start = time.perf_counter()
    args = ["compare", PROMPT, "--engine", "hf", "--engine", "llamacpp", "--max-new-tokens", "3", "--completion-tokens", "1",
            "--top-k", "20", "--json"]
    assert main(args) == 0
    data = json.loads(capsys.readouterr().out)
    pair = data["pairs"][0]
    assert (pair["a"], pair["b"]) == ("hf:smollm2-135m", "llamacpp:smollm2-135m")
    steps, summary = pair["steps"], pair["summary"]
    assert data["continuation"] == " Paris.\n" and len(steps) == 3
    # DESIGN.md: p(" Paris") is 0.7725 in transformers and 0.7677 in llama.cpp
    assert math.exp(steps[0]["logprob_a"]) == pytest.approx(0.7725, abs=5e-4)
    assert math.exp(steps[0]["logprob_b"]) == pytest.approx(0.7677, abs=5e-4)
    # Same weights, two engines: close but not equal (Q4_1 dequantised in float32 vs llama.cpp's kernels)
    assert all(0 < s["js"] < 0.01 and s["kl_ab"] > 0 and s["kl_ba"] > 0 for s in steps)
    assert 0 < summary["max_logprob_diff"] < 1.0 and summary["top1_agreement"] == 1.0
    c = pair["completions"]  # under top_k=20, one expansion holds every 1-token completion: the distance is exact
    assert c["tv"] is not None and 0 < c["tv"] < 0.05 and c["top"][0]["text"] == " Paris"

    report = td.load_run(data["run_id"])
    assert report.to_dict() == data
    from tokendice.render.terminal import make_console, print_result

    print_result(report, make_console())
    out = capsys.readouterr().out
    assert "KL(A‖B)" in out and "summary hf:smollm2-135m vs llamacpp:smollm2-135m" in out and "(exact)" in out
    assert time.perf_counter() - start < 30
