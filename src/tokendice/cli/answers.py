"""tokendice answers: what a stored sample run's or enumeration's completions say, as an answer
distribution; and the `--answer SPEC` flag that sample and enumerate share."""

from __future__ import annotations

import argparse
import json
from typing import Any, Sequence

from tokendice.cli.common import add_store_args, show
from tokendice.inputs import check_output_path

HELP = "the answer distribution of a stored sample run or enumeration: counts with Wilson intervals, exact probabilities, the fit between them"
SPECS = ("exact (the whole completion, normalised), first-line, first-word, number (\"12\", \"12.0\", \"twelve\" are 12), "
         "choice:A,B,C,D, regex:PATTERN (its first group), json:FIELD")  # fmt: skip


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("answers", help=HELP, description=HELP + ". Answers are normalised (Unicode NFKC, case, whitespace, "
                       "surrounding punctuation); a completion without one counts as <no answer>. Computed, not stored.")  # fmt: skip
    p.add_argument("run_id", metavar="RUN_ID", help="a sample run or an enumeration (tokendice runs lists them)")
    p.add_argument("--answer", metavar="SPEC", dest="extract", default=None, help=f"what the answer of a completion is: {SPECS} (default exact)")
    p.add_argument("--exact", metavar="RUN_ID", default=None, help="an enumeration of the same prompt and sampler: its exact answer probabilities beside the counts, with a goodness-of-fit test")
    p.add_argument("--prompt-index", type=int, default=None, help="the prompt of a run of several (default 0, the first)")
    p.add_argument("--rows", type=int, default=15, help="answers shown (default 15)")
    p.add_argument("--html", metavar="FILE", help="also write an HTML view (the answer distribution, charts included) to FILE")
    p.add_argument("--json", action="store_true", help="print the answer distribution as JSON")
    add_store_args(p)
    p.set_defaults(run=run)


def add_answer_flag(p: argparse.ArgumentParser) -> None:
    """`--answer SPEC` on a command whose result has completions (sample, enumerate)."""
    p.add_argument("--answer", metavar="SPEC", dest="extract", default=None,
                   help=f"also show the answer distribution (in --json: under \"answers\"): {SPECS}")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from tokendice import api
    from tokendice.cli.common import given

    if args.html:
        check_output_path(args.html, "html")
    result = api.answers(args.run_id, **given(args, "extract", "exact", "prompt_index"), db=args.db)
    if args.html:
        result.save_html(args.html)
    return show(result, args, rows=args.rows)


def show_with_answers(result: Any, answers: Any | Sequence[Any], args: argparse.Namespace, **options: Any) -> int:
    """Print a command's result and the answer distribution(s) read from it: with --json, the result's
    JSON with "answers" added (one distribution, or a list of one per prompt)."""
    listed = list(answers) if isinstance(answers, (list, tuple)) else [answers]
    if getattr(args, "json", False):
        data = result.to_dict()
        data["answers"] = [d.to_dict() for d in listed] if isinstance(answers, (list, tuple)) else answers.to_dict()
        print(json.dumps(data, indent=2, ensure_ascii=False))
        return 0
    from tokendice.render.terminal import make_console, print_result

    console = make_console()
    print_result(result, console, **options)
    for d in listed:
        print_result(d, console, **{k: v for k, v in options.items() if k == "rows"})
    if getattr(result, "run_id", None):
        console.print(f"[dim]stored as run {result.run_id} (tokendice runs show {result.run_id}; "
                      f"tokendice answers {result.run_id} --answer SPEC reads it again)[/]")  # fmt: skip
    return 0
