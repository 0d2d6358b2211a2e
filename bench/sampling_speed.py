"""Benchmark: 1,000 samples x 20 new tokens, the notebook's way versus tokendice's.

Run by hand (not in CI), on an otherwise idle machine:

    python bench/sampling_speed.py                 # the full benchmark (~10 minutes on 2 cores)
    python bench/sampling_speed.py --n 200         # a quicker look

Side by side in one process, on the embedded SmolLM2-135M (float32) with the
notebook's prompt and parameters (seed-notebook.md, cell 14):
  (a) a loop of `model.generate` calls, one sample each, as the notebook does:
      timed over --loop-calls calls and extrapolated to N (said so in the output);
  (b) one batched `generate(num_return_sequences=N)`;
  (c) tokendice, independent per-sample streams;
  (d) tokendice, branching sampler.
Prints wall time, samples/s and ratios, and writes bench/results/sampling_speed.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from tokendice.engines.hf import HFEngine
from tokendice.experiments.decoding.branching import BranchStats, branch_sample
from tokendice.experiments.decoding.decode import decode
from tokendice.params import NOTEBOOK_PARAMS, RandomSpec

PROMPT = "The capital of France is"


def gen_kwargs(engine: HFEngine) -> dict:
    p = NOTEBOOK_PARAMS
    return {
        "max_new_tokens": p.max_new_tokens,
        "do_sample": True,
        "temperature": p.temperature,
        "top_p": p.top_p,
        "top_k": p.top_k,
        "repetition_penalty": p.repetition_penalty,
        "no_repeat_ngram_size": p.no_repeat_ngram_size,
        "pad_token_id": engine.pad_id,
        "eos_token_id": list(engine.tokenizer.eos_token_ids),
    }


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000, help="samples (default 1000)")
    ap.add_argument("--loop-calls", type=int, default=20, help="generate calls timed for (a) (default 20)")
    ap.add_argument("--batch-size", type=int, default=1000, help="tokendice independent batch size (default 1000)")
    ap.add_argument("--skip-batched-generate", action="store_true", help="skip (b), the slowest part")
    args = ap.parse_args()

    engine = HFEngine()
    ids = engine.tokenizer.encode(PROMPT)
    inp = torch.tensor([ids])
    kwargs = gen_kwargs(engine)
    rows = {}

    with torch.inference_mode():
        engine.model.generate(inp, attention_mask=torch.ones_like(inp), **{**kwargs, "max_new_tokens": 2})  # warm-up
        t, _ = timed(lambda: [engine.model.generate(inp, attention_mask=torch.ones_like(inp), **kwargs) for _ in range(args.loop_calls)])
        per_call = t / args.loop_calls
        rows["a_generate_loop"] = {"wall_s": per_call * args.n, "measured_calls": args.loop_calls, "measured_s": t, "extrapolated": True}
        if not args.skip_batched_generate:
            t, _ = timed(lambda: engine.model.generate(inp, attention_mask=torch.ones_like(inp), num_return_sequences=args.n, **kwargs))
            rows["b_generate_batched"] = {"wall_s": t, "extrapolated": False}
    t, _ = timed(lambda: decode(engine, ids, NOTEBOOK_PARAMS, RandomSpec(42), range(args.n), batch_size=args.batch_size))
    rows["c_tokendice_independent"] = {"wall_s": t, "extrapolated": False, "batch_size": args.batch_size}
    stats = BranchStats()
    t, out = timed(lambda: branch_sample(engine, ids, NOTEBOOK_PARAMS, args.n, seed=42, stats=stats))
    rows["d_tokendice_branching"] = {"wall_s": t, "extrapolated": False, "forward_rows": stats.forward_rows, "rows_per_step": stats.rows_per_step}

    base = rows["a_generate_loop"]["wall_s"]
    print(f"{args.n} samples x {NOTEBOOK_PARAMS.max_new_tokens} new tokens, notebook parameters, {PROMPT!r}, "
          f"SmolLM2-135M float32, torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    print(f"{'method':28} {'wall (s)':>10} {'samples/s':>10} {'vs (a)':>8} {'vs (b)':>8}")
    for name, row in rows.items():
        speed = args.n / row["wall_s"]
        vs_b = rows["b_generate_batched"]["wall_s"] / row["wall_s"] if "b_generate_batched" in rows else float("nan")
        note = f"  (extrapolated from {row['measured_calls']} calls)" if row["extrapolated"] else ""
        print(f"{name:28} {row['wall_s']:10.1f} {speed:10.2f} {base / row['wall_s']:7.1f}x {vs_b:7.2f}x{note}")
        row["samples_per_s"] = speed
        row["speedup_vs_a"] = base / row["wall_s"]
    out_dir = Path(__file__).parent / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "sampling_speed.json").write_text(json.dumps({"n": args.n, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
