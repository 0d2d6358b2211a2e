"""tokendice enumerate: every completion with its exact probability, best first."""

from __future__ import annotations

import argparse

from tokendice.cli.answers import add_answer_flag
from tokendice.cli.common import add_model_args, add_sampling_args, add_store_args, engine_from_args, given, sampling_keywords
from tokendice.cli.semantic import add_judge_flag, check_meaning_flags, show_with_meaning

HELP = "enumerate completions exactly (best-first over the prefix tree) with their probabilities and the mass left"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("enumerate", help=HELP, description=HELP)
    p.add_argument("prompt", help="the prompt text")
    p.add_argument("--mass", type=float, default=None, help="stop once the completions found hold this much probability (default 0.99)")
    p.add_argument("--max-nodes", type=int, default=None, help="prefixes to expand at most (default 2000)")
    p.add_argument("--min-prob", type=float, default=None, help="ignore prefixes less likely than this (default 1e-7)")
    p.add_argument("--rows", type=int, default=20, help="completions shown (default 20)")
    p.add_argument("--json", action="store_true", help="print the enumeration as JSON")
    add_answer_flag(p)
    add_judge_flag(p)
    add_sampling_args(p, max_new_tokens=10)
    add_model_args(p)
    add_store_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tokendice import api

    check_meaning_flags(args)
    chat = {"chat": True} if args.chat else {}
    result = api.enumerate_completions(
        args.prompt, engine=engine_from_args(args), db=args.db, progress=False if args.json else None,
        **given(args, "mass", "max_nodes", "min_prob"), **chat, **sampling_keywords(args),
    )  # fmt: skip
    return show_with_meaning(result, args, rows=args.rows)  # with its answers and meaning, when asked
