"""tokendice answers: what a stored sample run's or enumeration's completions say, as an answer
distribution; and the `--answer SPEC` flag that sample and enumerate share (with --judge: cli/semantic.py)."""

from __future__ import annotations

import argparse

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
