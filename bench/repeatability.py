"""Measure what makes samples repeat: the same seed under other thread counts and batch sizes.

Run by hand (not in CI), on the embedded SmolLM2-135M (float32, transformers):

    python bench/repeatability.py                          # 300 samples; threads 1 vs 2; batch 250 vs 1
    python bench/repeatability.py --n 100 --threads 1 2 4 --batch-sizes 250 16 1 --dtypes float32 bfloat16

Every configuration draws the same samples (notebook parameters, seed 42, per-sample
streams) with `td.sample(..., save=False)`; each is compared, sample by sample, with the
first configuration: how many completions differ (as text and as tokens), and at which step
the first difference appears. Then the raw logits themselves: the largest difference
between thread counts, and between a batch and one sequence at a time. Prints a table and writes bench/results/repeatability.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import tokendice as td
from tokendice.params import NOTEBOOK_PARAMS

PROMPT = "The capital of France is"


def first_difference(a: list[int], b: list[int]) -> int | None:
    for step, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return step
    return None if len(a) == len(b) else min(len(a), len(b))


def logit_differences(completions: list[list[int]], threads: list[int]) -> dict[str, float]:
    """Largest |difference| of raw logits (after prompt + completion) between thread counts (the
    sequences as one batch) and between a batch and one sequence at a time (first thread count)."""
    import torch

    from tokendice.engines.hf import HFEngine

    engines = {t: HFEngine(threads=t) for t in threads}
    ids = engines[threads[0]].tokenizer.encode(PROMPT)
    sequences = [ids + c for c in completions]

    def batch(engine: HFEngine) -> torch.Tensor:
        return engine.logits(engine.prefill(sequences))

    first = batch(engines[threads[0]])
    out = {f"threads {threads[0]} vs {t}": float((batch(engines[t]) - first).abs().max()) for t in threads[1:]}
    alone = torch.cat([engines[threads[0]].logits(engines[threads[0]].prefill([s])) for s in sequences])
    out[f"batch of {len(sequences)} vs one at a time"] = float((alone - first).abs().max())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[250, 1])
    parser.add_argument("--dtypes", nargs="+", default=["float32"], help="the first is the reference; others are compared with it")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    # thread counts at the first batch size, then the other batch sizes at the first thread count
    # and the other dtypes at the first thread count and batch size
    first = (args.threads[0], args.batch_sizes[0])
    configs = [(t, args.batch_sizes[0], args.dtypes[0]) for t in args.threads]
    configs += [(*first[:1], b, args.dtypes[0]) for b in args.batch_sizes[1:]] + [(*first, d) for d in args.dtypes[1:]]
    runs = []
    for threads, batch_size, dtype in configs:
        engine = td.EngineSpec("hf", threads=threads, dtype=dtype)
        started = time.perf_counter()
        run = td.sample(PROMPT, args.n, engine=engine, params=NOTEBOOK_PARAMS, seed=args.seed, batch_size=batch_size, save=False, progress=False)
        runs.append({"threads": threads, "batch_size": batch_size, "dtype": dtype, "seconds": round(time.perf_counter() - started, 1), "run": run})
        print(f"threads {threads}, batch size {batch_size}, {dtype}: {runs[-1]['seconds']} s", flush=True)

    reference = runs[0]["run"].samples
    rows = []
    for r in runs:
        samples = r["run"].samples
        steps = [first_difference(a.tokens, b.tokens) for a, b in zip(reference, samples)]
        differing = [s for s in steps if s is not None]
        rows.append({
            "threads": r["threads"], "batch_size": r["batch_size"], "dtype": r["dtype"], "seconds": r["seconds"],
            "texts_differing": sum(a.text != b.text for a, b in zip(reference, samples)),
            "token_sequences_differing": len(differing), "earliest_step": min(differing, default=None),
            "distinct_completions": r["run"].analyses[0].distinct,
        })  # fmt: skip
    print(f"\n{args.n} samples, notebook parameters, {NOTEBOOK_PARAMS.max_new_tokens} new tokens, seed {args.seed}; "
          f"compared with threads {runs[0]['threads']}, batch size {runs[0]['batch_size']}, {runs[0]['dtype']}")  # fmt: skip
    print(f"{'threads':>7} {'batch':>6} {'dtype':>9} {'texts differing':>16} {'tokens differing':>17} {'first step':>10} {'seconds':>8}")
    for row in rows:
        step = "-" if row["earliest_step"] is None else str(row["earliest_step"])
        print(f"{row['threads']:>7} {row['batch_size']:>6} {row['dtype']:>9} {row['texts_differing']:>16} "
              f"{row['token_sequences_differing']:>17} {step:>10} {row['seconds']:>8}")
    logits = logit_differences([s.tokens for s in reference[:32]], args.threads)
    for what, value in logits.items():
        print(f"largest raw-logit difference, {what}: {value:.3g}")
    out = Path(__file__).parent / "results" / "repeatability.json"
    out.parent.mkdir(exist_ok=True)
    machine = {"platform": platform.platform(), "cpu_count": os.cpu_count(), "load": os.getloadavg()[0]}
    out.write_text(json.dumps({"n": args.n, "seed": args.seed, "prompt": PROMPT, "params": NOTEBOOK_PARAMS.to_dict(),
                               "machine": machine, "rows": rows, "logit_differences": logits}, indent=2))  # fmt: skip
    print(f"written to {out}")


if __name__ == "__main__":
    main()
