"""Does semantic entropy predict wrong answers? 105 short factual questions, three tiers.

Run by hand (not in CI), on the embedded SmolLM2-135M:

    python bench/semantic_auroc.py                 # every question, about 10-15 minutes on 2 cores
    python bench/semantic_auroc.py --limit 9       # a quick look

The questions (bench/semantic_questions.json, written for this project) are arithmetic, capitals
and years, in three tiers from common to obscure facts (tier 1: one-digit sums, large countries,
famous dates; tier 3: two-digit products, small countries, treaties). For each question:

- accuracy: the greedy answer (argmax decoding), read by the question's answer spec, against the
  known answer (a number equal to it; a capital named in the first line, accents ignored);
- the uncertainty measures, from `n` samples at temperature 0.7 with top-k 10, 12 new tokens
  (chat template, "Answer in a few words."; a sampler narrow enough that an enumeration finds
  much of its mass): naive predictive entropy (-mean log p(sampling) of the samples), its
  length-normalised variant, discrete semantic entropy (cluster frequencies) and likelihood-weighted
  semantic entropy (cluster probabilities), answers clustered by the exact judge (numbers) or the
  embedding judge (capitals: all-MiniLM-L6-v2, cosine >= 0.85);
- exact semantic entropy: from an exact enumeration under the same sampler (a budget of
  `--max-nodes` prefixes), its lower bound (the mass left unexplored put in one cluster: the
  tightest statement the enumeration allows), and the mass the enumeration found.

Then the AUROC of each measure for predicting a wrong greedy answer (higher uncertainty, more likely
wrong; 0.5 = no better than chance), overall and per tier. Prints the tables and writes
bench/results/semantic_auroc.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import unicodedata
from pathlib import Path

import tokendice as td
from tokendice.analysis.extract import AnswerSpec

HERE = Path(__file__).resolve().parent
EXTRACT = {
    "arithmetic": r"regex:(?m)^.*?(-?\d[\d,]*)\D*$",  # the last number of the first line holding one ("17 + 25 = 42")
    "year": "number",  # the first number
    "capital": "first-line",
}
JUDGE = {"arithmetic": "exact", "year": "exact", "capital": "embedding"}
ENGINE = td.EngineSpec()
MEASURES = ("naive_pe", "length_normalised_pe", "discrete_se", "weighted_se", "exact_se_low")


def fold(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text.casefold()) if not unicodedata.combining(c))


def correct(kind: str, answer: str, truth: str) -> bool:
    if kind == "capital":
        return fold(truth) in fold(answer)
    return answer == truth


def auroc(scores: list[float | None], wrong: list[bool]) -> float | None:
    """P(score of a wrong answer > score of a right one), ties counted half (Mann-Whitney);
    questions without a score are left out."""
    bad = [s for s, w in zip(scores, wrong) if w and s is not None]
    good = [s for s, w in zip(scores, wrong) if not w and s is not None]
    if not bad or not good:
        return None
    wins = sum((b > g) + 0.5 * (b == g) for b in bad for g in good)
    return wins / (len(bad) * len(good))


def measure(item: dict, n: int, max_nodes: int, seed: int) -> dict:
    prompt = f"{item['question']} Answer in a few words."
    spec, judge = EXTRACT[item["kind"]], JUDGE[item["kind"]]
    sampler = {"temperature": 0.7, "top_k": 10, "max_new_tokens": 12}
    greedy = td.trace(prompt, engine=ENGINE, chat=True, do_sample=False, max_new_tokens=16, save=False)
    answer = AnswerSpec.parse(spec)(greedy.text.replace("<|im_end|>", ""))
    run = td.sample(prompt, n=n, engine=ENGINE, chat=True, method="branching", seed=seed, save=False, progress=False, **sampler)
    exact = td.enumerate_completions(prompt, engine=ENGINE, chat=True, max_nodes=max_nodes, mass=0.999, save=False, progress=False, **sampler)
    sem = td.semantic(run, judge=judge, extract=spec, exact=exact, vocab_size=49152)
    se, pe = sem.semantic_entropy, sem.predictive_entropy
    return {
        **item, "greedy": greedy.text, "answer": answer, "correct": correct(item["kind"], answer, item["answer"]),
        "naive_pe": pe.get("naive"), "length_normalised_pe": pe.get("length_normalised"), "discrete_se": se.get("discrete"),
        "weighted_se": se.get("weighted"), "exact_se_low": se.get("exact_low"), "exact_se_high": se.get("exact_high"),
        "found_mass": 1.0 - exact.unexplored_mass, "semantic_sets": sem.num_semantic_sets,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20, help="samples per question (default 20)")
    parser.add_argument("--max-nodes", type=int, default=200, help="enumeration budget per question (default 200)")
    parser.add_argument("--limit", type=int, default=None, help="only the first K questions of each tier")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (1 is faster on a busy machine)")
    args = parser.parse_args()
    global ENGINE
    ENGINE = td.EngineSpec(threads=args.threads)
    questions = json.loads((HERE / "semantic_questions.json").read_text(encoding="utf-8"))
    if args.limit:
        questions = [q for t in (1, 2, 3) for q in [q for q in questions if q["tier"] == t][: args.limit]]
    started, rows = time.perf_counter(), []
    for i, item in enumerate(questions, 1):
        rows.append(measure(item, args.n, args.max_nodes, args.seed))
        r = rows[-1]
        print(f"{i:3}/{len(questions)} tier {r['tier']} {r['kind']:10} {'ok   ' if r['correct'] else 'WRONG'} "
              f"{r['answer']!r:24.24} SE {r['discrete_se']:.2f} exact>= {r['exact_se_low']:.2f} ({r['question']})", flush=True)
    elapsed = time.perf_counter() - started
    print(f"\n{len(rows)} questions, n={args.n} samples each, {elapsed:.0f} s, load {os.getloadavg()[0]:.1f}\n")
    print("| tier | questions | greedy accuracy | " + " | ".join(f"mean {m}" for m in MEASURES) + " | mean mass enumerated |")
    print("|---|---|---|" + "---|" * len(MEASURES) + "---|")
    summary = {}
    for tier in (1, 2, 3, "all"):
        sel = [r for r in rows if tier == "all" or r["tier"] == tier]
        if not sel:
            continue
        means = {m: sum(r[m] for r in sel if r[m] is not None) / max(1, sum(r[m] is not None for r in sel)) for m in MEASURES}
        acc = sum(r["correct"] for r in sel) / len(sel)
        mass = sum(r["found_mass"] for r in sel) / len(sel)
        aurocs = {m: auroc([r[m] for r in sel], [not r["correct"] for r in sel]) for m in MEASURES}
        summary[str(tier)] = {"questions": len(sel), "accuracy": acc, "means": means, "auroc": aurocs, "mass": mass}
        print(f"| {tier} | {len(sel)} | {acc:.2f} | " + " | ".join(f"{means[m]:.3f}" for m in MEASURES) + f" | {mass:.3f} |")
    print("\nAUROC for predicting a wrong greedy answer (0.5 = chance):\n")
    print("| tier | " + " | ".join(MEASURES) + " |")
    print("|---|" + "---|" * len(MEASURES))
    for tier, s in summary.items():
        print(f"| {tier} | " + " | ".join("–" if s["auroc"][m] is None else f"{s['auroc'][m]:.3f}" for m in MEASURES) + " |")
    out = HERE / "results" / "semantic_auroc.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"settings": vars(args), "seconds": elapsed, "summary": summary, "rows": rows}, indent=1, ensure_ascii=False))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
