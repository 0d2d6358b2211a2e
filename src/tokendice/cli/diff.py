"""tokendice diff: where two generations fork, and how far their log-probs drifted before."""

from __future__ import annotations

import argparse

from tokendice.cli.common import add_store_args

HELP = "compare two generations (stored runs, ID:SAMPLE, or trace JSON files): first divergence, top-k there, log-prob drift"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("diff", help=HELP, description=HELP)
    p.add_argument("a", help="a run id (its trace, else sample 0), ID:SAMPLE, ID:PROMPT:SAMPLE, or a file from tokendice trace --json")
    p.add_argument("b", help="the other side, in the same forms")
    p.add_argument("--json", action="store_true", help="print the diff as JSON")
    add_store_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tokendice import api

    result = api.diff(args.a, args.b, db=args.db)
    if args.json:
        print(result.to_json())
        return 0
    from tokendice.render.terminal import print_result

    print_result(result)
    return 0
