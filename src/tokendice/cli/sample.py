"""tokendice sample: draw many completions, store them, and analyse their distribution."""

from __future__ import annotations

import argparse
import sys

from tokendice.cli.answers import add_answer_flag
from tokendice.cli.common import (
    add_model_args,
    add_sampling_args,
    add_store_args,
    engine_flags_given,
    engine_from_args,
    given,
    random_keywords,
    sampling_keywords,
)
from tokendice.cli.semantic import add_judge_flag, check_meaning_flags, show_with_meaning

HELP = "sample N completions (independent or branching), store them, and compare frequencies with exact probabilities"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help=HELP, description=HELP)
    p.add_argument("prompt", nargs="?", help="the prompt text (or use --prompts FILE)")
    p.add_argument("-n", type=int, default=None, help="samples per prompt (default 100)")
    p.add_argument("--method", default=None, choices=["independent", "branching"], help="independent streams per sample (default) or the branching sampler (same distribution, cost grows with distinct prefixes)")
    p.add_argument("--prompts", metavar="FILE", help="many prompts: one a line, or JSONL with a \"prompt\" field")
    p.add_argument("--batch-size", type=int, default=None, help="rows decoded together and committed per transaction (default 250)")
    p.add_argument("--resume", metavar="RUN_ID", help="finish an interrupted run with its own settings: same samples as an uninterrupted run (a setting given that differs from the run's is an error; --timeout, --concurrency, --max-retries, --base-url apply)")
    p.add_argument("--at-prefix", metavar="TEXT", default=None, help="predicted vs observed next-token frequencies right after this generated text")
    p.add_argument("--exact", action="store_true", default=None, help="also enumerate exactly and test the samples against it")
    p.add_argument("--mass", type=float, default=None, help="with --exact: probability mass to enumerate (default 0.99)")
    p.add_argument("--max-nodes", type=int, default=None, help="with --exact: prefixes to expand at most (default 2000)")
    p.add_argument("--rows", type=int, default=15, help="distinct completions shown (default 15)")
    p.add_argument("--json", action="store_true", help="print the run and its analysis as JSON")
    add_answer_flag(p)
    add_judge_flag(p)
    add_sampling_args(p)
    add_model_args(p)
    add_store_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tokendice import api
    from tokendice.errors import EngineError, ParameterError

    check_meaning_flags(args)
    keywords = {**given(args, "n", "method", "batch_size", "at_prefix", "exact", "mass", "max_nodes"), **random_keywords(args), **sampling_keywords(args)}
    progress = False if args.json else None
    try:
        if args.resume:
            if args.prompts:
                from tokendice.inputs import read_prompts

                keywords["prompt"] = read_prompts(args.prompts)
            elif args.prompt is not None:
                keywords["prompt"] = args.prompt
            result = api.resume(args.resume, kind="sample", db=args.db, progress=progress, **engine_flags_given(args), **keywords)
        else:
            if args.prompts and args.prompt is not None:
                raise ParameterError("give a prompt or --prompts FILE, not both")
            if args.prompts:
                from tokendice.inputs import read_prompts

                prompt: str | list[str] = read_prompts(args.prompts)
            elif args.prompt is not None:
                prompt = args.prompt
            else:
                raise ParameterError("give a prompt, --prompts FILE, or --resume RUN_ID")
            result = api.sample(prompt, engine=engine_from_args(args), db=args.db, progress=progress, **keywords)
    except EngineError as exc:  # the continuation in the command line's words
        raise type(exc)(_in_commands(str(exc))) from exc
    for warning in result.warnings:
        print(f"tokendice: warning: {warning}", file=sys.stderr)
    return show_with_meaning(result, args, rows=args.rows)  # with each prompt's answers and meaning, when asked


def _in_commands(message: str) -> str:
    """`td.resume('ID')` in a message, as the command that does it."""
    import re

    return re.sub(r"td\.resume\('(\w+)'\)", r"tokendice sample --resume \1", message)
