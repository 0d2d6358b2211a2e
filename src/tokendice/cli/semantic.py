"""tokendice semantic: semantic entropy of a stored sample run or enumeration."""

from __future__ import annotations

import argparse
import json
from typing import Any

from tokendice.cli.common import add_store_args, given, show
from tokendice.inputs import check_output_path

HELP = "semantic entropy of a stored run: its completions (or answers) clustered by meaning, sampled and exact"
JUDGE_HELP = ("when two answers mean the same: exact (default; equal after normalisation), embedding[:MODEL][@T] (cosine of "
              "all-MiniLM-L6-v2 embeddings >= T, default 0.85), nli:MODEL (bidirectional entailment), llm[:ENGINE[:MODEL]][@T] "
              "(a judge model's P(yes))")  # fmt: skip


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("semantic", help=HELP, description=HELP)
    p.add_argument("run_id", metavar="RUN_ID", help="a sample run or an enumeration (id or unique prefix of 4+ characters)")
    p.add_argument("--judge", default=None, metavar="SPEC", help=JUDGE_HELP)
    p.add_argument("--answer", dest="extract", default=None, metavar="SPEC", help="cluster the answers read with this spec (number, first-line, "
                   "first-word, choice:A,B,C,D, regex:PATTERN, json:FIELD) instead of whole completions")  # fmt: skip
    p.add_argument("--exact", default=None, metavar="RUN_ID", help="an enumeration of the same prompt and sampler: the exact "
                   "semantic entropy, with bounds from its unexplored mass, next to the sampled estimate")  # fmt: skip
    p.add_argument("--prompt-index", type=int, default=None, help="which prompt of a run of several (default 0)")
    p.add_argument("--resamples", type=int, default=None, help="bootstrap resamples (default 1000)")
    p.add_argument("--html", metavar="FILE", help="also write an HTML view (the clusters and measures, charts included) to FILE")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_store_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tokendice import api

    if args.html:
        check_output_path(args.html, "html")
    keywords = given(args, "judge", "extract", "exact", "prompt_index", "resamples")
    result = api.semantic(args.run_id, db=args.db, **keywords)
    if args.html:
        result.save_html(args.html)
    return show(result, args)


def add_judge_flag(p: argparse.ArgumentParser) -> None:
    """`--judge SPEC` on a command whose result has completions (sample, enumerate)."""
    p.add_argument("--judge", metavar="SPEC", default=None, help="also the semantic entropy of the completions (of the answers, "
                   f"with --answer; in --json: under \"semantic\"): {JUDGE_HELP}")  # fmt: skip


def check_meaning_flags(args: argparse.Namespace) -> None:
    """--answer and --judge fail before anything is computed: a bad spec, or a judge whose model is not here."""
    from tokendice import api

    if args.extract is not None:
        from tokendice.analysis.extract import AnswerSpec

        AnswerSpec.parse(args.extract)
    if args.judge is not None:
        api.check_judge(args.judge)


def show_with_meaning(result: Any, args: argparse.Namespace, **options: Any) -> int:
    """Print a sample run or an enumeration, with its answer distribution (--answer) and its semantic
    entropy (--judge) when asked: one of each for an enumeration, one per prompt for a sample run
    (beside the exact enumeration when --exact made one). With --json: the result's JSON with
    "answers" and "semantic" added (an object, or a list of one per prompt)."""
    from tokendice import api

    if args.extract is None and args.judge is None:
        return show(result, args, **options)
    per_prompt = result.kind == "sample"
    if per_prompt:
        exact = True if result.analyses and result.analyses[0].enumeration is not None else None
        keywords = [{"exact": exact, "prompt_index": i} for i in range(len(result.analyses))]
    else:
        keywords = [{}]
    answers = None if args.extract is None else [api.answers(result, args.extract, **k) for k in keywords]
    meaning = None if args.judge is None else [api.semantic(result, args.judge, extract=args.extract, **k) for k in keywords]
    if getattr(args, "json", False):
        data = result.to_dict()
        for name, found in (("answers", answers), ("semantic", meaning)):
            if found is not None:
                data[name] = [r.to_dict() for r in found] if per_prompt else found[0].to_dict()
        print(json.dumps(data, indent=2, ensure_ascii=False))
        return 0
    from tokendice.render.terminal import make_console, print_result

    console = make_console()
    print_result(result, console, **options)
    for extra in (answers or []) + (meaning or []):
        print_result(extra, console, **{k: v for k, v in options.items() if k == "rows"})
    if getattr(result, "run_id", None):
        again = f"tokendice semantic {result.run_id} --judge SPEC" if meaning else f"tokendice answers {result.run_id} --answer SPEC"
        console.print(f"[dim]stored as run {result.run_id} (tokendice runs show {result.run_id}; {again} reads it again)[/]")
    return 0
